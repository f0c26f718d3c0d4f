"""Fixed delay lines in memory (issue 13, item 4: skew without flip-flop triangles).

:class:`DelayLine` delays a ``width``-bit value by exactly ``delay`` clock cycles: ``o`` in cycle
t is ``i`` of cycle t - ``delay``, like a chain of ``delay`` registers. It always shifts (no
enable): the systolic array's skew and deskew chains never hold.

Implementation (``LATENCY`` = ``delay`` on every path):

* ``delay <= REG_MAX`` (2): a plain register chain (reset to 0), exactly the old skew registers.
* otherwise a circular buffer in an ``amaranth.lib.memory.Memory`` of ``2**k >= delay`` words:
  one write per cycle at the write pointer ``ptr`` (a k-bit counter), read at ``ptr - delay``.
  With ``read="async"`` (default up to ``ASYNC_MAX`` = 64 cycles) the read port is
  combinational and reads the word written ``delay`` cycles ago (when ``2**k == delay`` it reads
  the slot that this cycle overwrites, before the write: read-before-write); yosys maps it to LUT
  RAM (ECP5 ``TRELLIS_DPR16X4``, 16 words x 4 bits) and adds no flip-flop. With ``read="sync"``
  (default above 64, for block RAM) the read port is registered (not transparent) and reads
  ``ptr - (delay - 1)``; its data register is the last stage of the delay.

Reset: memory words are not reset. The register chain resets to 0 and so does the memory path,
for the bits that matter: bits ``[ungated:]`` of ``o`` are forced to 0 until ``delay`` cycles
have passed since reset (the ``primed`` flag: a saturating counter, or a shared thermometer
given by :class:`DelayTimebase`), so that before that they equal the register chain's reset
value and nothing is taken from a slot not yet written since reset. The low ``ungated`` bits
(default 0: all bits gated, exactly the register chain) are data that the user only consumes
together with a gated control bit; they may show stale words during the first ``delay`` cycles
after reset.

Sharing: with ``ptr_width`` set, the line has no pointer or fill counter of its own; it takes
``ptr`` (the low k bits are its pointer, so lines of different depths share one counter) and
``primed`` from a :class:`DelayTimebase` (one pointer and one thermometer of fill flags for all
the lines of a block).
"""

from __future__ import annotations

from typing import Literal

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checked import CheckedComponent, check_int
from .fixed import index_bits

__all__ = ["DelayLine", "DelayTimebase", "delay_line_kind"]

ReadMode = Literal["async", "sync"]


def _addr_bits(delay: int) -> int:
    """k with 2**k >= delay (at least 1)."""
    return index_bits(delay)


def delay_line_kind(delay: int, read: ReadMode | None = None) -> str:
    """``"registers"``, ``"async"`` (LUT RAM) or ``"sync"`` (block RAM) for a line of ``delay`` cycles."""
    if delay <= DelayLine.REG_MAX:
        return "registers"
    if read is None:
        return "async" if delay <= DelayLine.ASYNC_MAX else "sync"
    return read


class DelayTimebase(CheckedComponent):
    """Shared write pointer and fill flags for :class:`DelayLine` s built with ``ptr_width``.

    ``ptr``: ``ptr_width``-bit counter, +1 every cycle (reset 0). ``primed[n]`` (n = 0 ..
    ``max_delay``): at least n cycles have passed since reset (a thermometer of ``max_delay``
    registers, reset to 0; ``primed[0]`` is 1).
    """

    def __init__(self, *, max_delay: int) -> None:
        self._max_delay = max_delay
        self._ptr_width = _addr_bits(max_delay)
        super().__init__({"ptr": Out(self._ptr_width), "primed": Out(max_delay + 1)})

    @classmethod
    def check_params(cls, *, max_delay: int) -> None:
        check_int("DelayTimebase max_delay", max_delay, 1, 1 << 16)

    max_delay = property(lambda self: self._max_delay)
    ptr_width = property(lambda self: self._ptr_width)

    def elaborate(self, platform):
        m = Module()
        ptr = Signal(self._ptr_width)
        m.d.sync += ptr.eq(ptr + 1)
        therm = Signal(self._max_delay)  # therm[n-1]: n cycles since reset
        m.d.sync += therm.eq(Cat(Const(1, 1), therm[:-1]))
        m.d.comb += [self.ptr.eq(ptr), self.primed.eq(Cat(Const(1, 1), therm))]
        return m


class DelayLine(CheckedComponent):
    """``o`` = ``i`` delayed by ``delay`` cycles; see the module docstring.

    Parameters (keyword-only): ``width`` (bits, >= 1), ``delay`` (cycles, >= 0), ``ungated``
    (low bits not forced to 0 after reset, 0 .. width; default 0), ``read`` ("async", "sync" or
    None: automatic), ``ptr_width`` (None: own pointer and fill counter; else the width of the
    shared ``ptr`` input, >= the line's address bits, and a ``primed`` input).
    """

    #: longest delay built from plain registers
    REG_MAX = 2
    #: longest delay read asynchronously (LUT RAM) when ``read`` is not given
    ASYNC_MAX = 64

    def __init__(self, *, width: int, delay: int, ungated: int = 0, read: ReadMode | None = None,
                 ptr_width: int | None = None) -> None:
        self._width, self._delay, self._ungated = width, delay, ungated
        self._kind = delay_line_kind(delay, read)
        self._k = _addr_bits(delay)
        self._ptr_width = ptr_width
        ports = {"i": In(width), "o": Out(width)}
        if ptr_width is not None:
            ports.update({"ptr": In(ptr_width), "primed": In(1)})
        super().__init__(ports)

    @classmethod
    def check_params(cls, *, width: int, delay: int, ungated: int, read: ReadMode | None,
                     ptr_width: int | None) -> None:
        check_int("DelayLine width", width, 1, 1 << 16)
        check_int("DelayLine delay", delay, 0, 1 << 16)
        check_int("DelayLine ungated", ungated, 0, width)
        if read not in (None, "async", "sync"):
            raise ValueError(f"DelayLine read={read!r}: expected 'async', 'sync' or None")
        if ptr_width is not None:
            lo = _addr_bits(delay) if delay_line_kind(delay, read) != "registers" else 1
            check_int("DelayLine ptr_width", ptr_width, lo, 32)

    width = property(lambda self: self._width)
    delay = property(lambda self: self._delay)
    ungated = property(lambda self: self._ungated)
    kind = property(lambda self: self._kind)

    @property
    def LATENCY(self) -> int:  # noqa: N802 (a constant of this configuration)
        return self._delay

    @property
    def depth(self) -> int:
        """Memory words (0 for a register chain)."""
        return 0 if self._kind == "registers" else 1 << self._k

    def elaborate(self, platform):
        m = Module()
        w, n = self._width, self._delay
        if self._kind == "registers":
            v = self.i
            for k in range(n):
                nxt = Signal(w, name=f"stage{k}")
                m.d.sync += nxt.eq(v)
                v = nxt
            m.d.comb += self.o.eq(v)
            return m

        k = self._k
        if self._ptr_width is None:
            ptr = Signal(k)
            m.d.sync += ptr.eq(ptr + 1)
            age = Signal(range(n + 1))  # cycles since reset, saturating at n
            m.d.sync += age.eq(Mux(age == n, n, age + 1))
            primed = age == n
        else:
            ptr, primed = self.ptr[:k], self.primed
        m.submodules.mem = mem = Memory(shape=unsigned(w), depth=1 << k, init=[])
        wr = mem.write_port()
        m.d.comb += [wr.addr.eq(ptr), wr.data.eq(self.i), wr.en.eq(1)]
        if self._kind == "async":
            rd = mem.read_port(domain="comb")
            m.d.comb += rd.addr.eq((ptr - n)[:k])
        else:
            rd = mem.read_port(transparent_for=())
            m.d.comb += [rd.addr.eq((ptr - (n - 1))[:k]), rd.en.eq(1)]
        u = self._ungated
        gated = Mux(primed, rd.data[u:], 0)
        m.d.comb += self.o.eq(Cat(rd.data[:u], gated) if u else gated)
        return m
