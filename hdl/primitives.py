"""Platform-aware primitives (issue 13, item 1): vendor-neutral RTL by default, FPGA hard blocks
when the block is elaborated for a known FPGA family.

The choice is made in Amaranth's ``elaborate(platform)``: a block passes the ``platform`` its own
``elaborate`` received on to the primitive (a :class:`RegisteredMultiplier` submodule, or
:func:`registered_multiply` for logic added inline to a block's module).

- ``platform`` is ``None`` (``attn-rtl generate``, the Amaranth simulator, cocotb on the generated
  Verilog): plain RTL, exactly the registers and latency the blocks had before this module existed.
- ``platform.family == "ecp5"``: Lattice ECP5 hard blocks. The family is read from the platform's
  ``family`` attribute, so both an Amaranth ``LatticePlatform`` (``attn-rtl synth --board``, which
  builds through ``amaranth_boards.ulx3s``) and the marker :data:`ECP5_TARGET` (what
  :mod:`synth.flow` passes for ``attn-rtl synth --target ecp5``) select it. Any other platform (or
  family) gets the vendor-neutral RTL.

Latency is identical on every path (``LATENCY`` of each primitive).

:class:`RegisteredReadMemory` is a simple dual-port memory (one write port, one read port) whose
read data is registered once more: on ECP5 a hand-instantiated ``DP16KD`` with its output register
(``REGMODE_B = "OUTREG"``), since yosys' own ECP5 memory mapping always leaves it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal, Value, signed, unsigned
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checked import CheckedComponent

__all__ = ["FPGATarget", "ECP5_TARGET", "platform_family", "is_ecp5", "registered_multiply",
           "RegisteredMultiplier", "MULT18X18D_WIDTH",
           "registered_wide_multiply", "WIDE_MULTIPLY_LATENCY", "REGISTERED_READ_NOTE", "RegisteredReadMemory",
           "DP16KD_ASPECTS", "LUTRAM_MAX_DEPTH", "dp16kd_tiles"]


@dataclass(frozen=True)
class FPGATarget:
    """A minimal platform-like marker: what a primitive needs to know about the target device.

    Passed as ``platform`` to ``elaborate`` (``amaranth.back.verilog.convert(..., platform=...)``)
    when Verilog is written for vendor synthesis without a full Amaranth build platform. It has no
    ``get_memory`` / ``get_ff_sync`` / ``get_io_buffer`` methods, so Amaranth's library components
    elaborate exactly as with ``platform=None``.
    """

    #: FPGA family, spelled like ``amaranth.vendor.LatticePlatform.family`` ("ecp5", "machxo2", ...)
    family: str
    #: device name, documentation only (e.g. "LFE5U-85F")
    device: str = ""


#: what ``attn-rtl synth --target ecp5`` elaborates the blocks for (LFE5U-85F, see synth.flow)
ECP5_TARGET = FPGATarget(family="ecp5", device="LFE5U-85F")

#: operand width of one ECP5 MULT18X18D
MULT18X18D_WIDTH = 18

REGISTERED_READ_NOTE = (
    "RegisteredReadMemory: a block-RAM read whose data is registered once more (read latency 2). On ECP5 "
    "it is a hand-instantiated DP16KD with REGMODE_B='OUTREG' (yosys 0.70's own mapping, "
    "share/lattice/brams_map_16kd.v, hard-codes REGMODE 'NOREG'); elsewhere amaranth.lib.memory with a "
    "sync read port and one fabric register. Post-synthesis simulation uses sim/models/dp16kd.v.")

def platform_family(platform: Any) -> str | None:
    """The FPGA family of ``platform`` (its ``family`` attribute), or None."""
    family = getattr(platform, "family", None)
    return family.lower() if isinstance(family, str) else None


def is_ecp5(platform: Any) -> bool:
    return platform_family(platform) == "ecp5"


def _operand(value: Value, what: str) -> Value:
    value = Value.cast(value)
    if len(value) < 1:
        raise ValueError(f"registered multiply: operand {what} has no bits")
    return value


def registered_multiply(m: Module, a: Value, b: Value, *, platform: Any = None, width: int | None = None,
                        tag: Value | None = None, name: str = "", domain: str = "sync",
                        en: Value | None = None) -> tuple[Value, Value]:
    """Add a registered multiplier ``(a * b)[:width]`` to ``m``; returns ``(product, tag_out)``.

    Latency :attr:`RegisteredMultiplier.LATENCY` (2): operands sampled at clock edge k give the
    product after edge k+2. ``tag`` (optional) is carried along with the operands and comes out with
    the product (e.g. the operation a product belongs to). ``product`` is signed iff ``a`` or ``b``
    is; ``width`` defaults to ``len(a) + len(b)`` (a narrower width truncates, as ``[:width]``).
    ``en`` (optional, 1 bit): clock enable of both stages (operands, product and tag hold while it
    is low), so the multiplier can sit inside a stalled pipeline; on ECP5 it drives CE0, so the
    DSP's own registers hold and no fabric register is needed around them.

    Generic RTL (``platform`` not ECP5): register ``{name}mul_in`` = (a, b, tag), then register
    ``{name}prod`` = (product, tag); the same two registers the PE always had. ECP5: one
    ``MULT18X18D`` with its A/B input registers and its output register clocked by ``domain``
    (CLK0, CE0 = ``en`` or 1, RST0 = the domain's synchronous reset or 0 for a reset-less domain, RESETMODE
    SYNC), pipeline register bypassed, signedness on the SIGNEDA/SIGNEDB pins; only ``tag`` uses
    fabric registers. Operands wider than 18 bits are refused (ValueError at elaboration).

    Input + output rather than input + pipeline registers: nextpnr-ecp5 times the pipeline
    register's clock-to-out into fabric far slower (``attn-rtl synth pe --target ecp5``: 106.6 MHz
    with input + pipeline, 150.8 MHz with input + output, critical path then in the fabric adder).
    """
    a, b = _operand(a, "a"), _operand(b, "b")
    aw, bw = len(a), len(b)
    a_signed, b_signed = a.shape().signed, b.shape().signed
    width = aw + bw if width is None else width
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= aw + bw:
        raise ValueError(f"registered multiply: width={width!r} out of range [1, {aw + bw}]")
    tag = Const(0, 0) if tag is None else Value.cast(tag)
    tw = len(tag)
    pshape = signed(width) if (a_signed or b_signed) else unsigned(width)

    ce = Const(1, 1) if en is None else Value.cast(en)
    if len(ce) != 1:
        raise ValueError(f"registered multiply: en must be 1 bit, not {len(ce)}")

    if not is_ecp5(platform):
        mi = Signal(aw + bw + tw, name=f"{name}mul_in")
        pp = Signal(width + tw, name=f"{name}prod")
        mul_a = mi[:aw].as_signed() if a_signed else mi[:aw]
        mul_b = mi[aw:aw + bw].as_signed() if b_signed else mi[aw:aw + bw]
        stages = [mi.eq(Cat(a, b, *(tag[k] for k in range(tw)))),
                  pp.eq(Cat((mul_a * mul_b)[:width], *(mi[aw + bw + k] for k in range(tw))))]
        if en is None:  # the Verilog the PE always had
            m.d[domain] += stages
        else:
            with m.If(ce):
                m.d[domain] += stages
        product = pp[:width].as_signed() if pshape.signed else pp[:width]
        return product, pp[width:]

    for what, w, sgn in (("a", aw, a_signed), ("b", bw, b_signed)):
        if w > MULT18X18D_WIDTH:
            raise ValueError(
                f"registered multiply{' ' + name.rstrip('_') if name else ''}: operand {what} is {w} bits "
                f"({'signed' if sgn else 'unsigned'}); an ECP5 MULT18X18D takes at most {MULT18X18D_WIDTH}. "
                f"Narrow the operand, or elaborate without an ECP5 platform (vendor-neutral RTL)")
    # Operands extended to the DSP's 18 bits (sign- or zero-extension by Amaranth's assignment).
    a18 = Signal(signed(MULT18X18D_WIDTH) if a_signed else unsigned(MULT18X18D_WIDTH), name=f"{name}mul_a")
    b18 = Signal(signed(MULT18X18D_WIDTH) if b_signed else unsigned(MULT18X18D_WIDTH), name=f"{name}mul_b")
    p36 = Signal(2 * MULT18X18D_WIDTH, name=f"{name}mul_p")
    m.d.comb += [a18.eq(a), b18.eq(b)]
    ports: dict[str, Any] = {}
    for k in range(MULT18X18D_WIDTH):
        ports[f"i_A{k}"] = a18[k]
        ports[f"i_B{k}"] = b18[k]
        ports[f"i_C{k}"] = Const(0, 1)
    for k in range(2 * MULT18X18D_WIDTH):
        ports[f"o_P{k}"] = p36[k]
    regs = {"INPUTA": "CLK0", "INPUTB": "CLK0", "INPUTC": "NONE", "PIPELINE": "NONE", "OUTPUT": "CLK0"}
    params: dict[str, Any] = {}
    for reg, clk in regs.items():
        params[f"p_REG_{reg}_CLK"] = clk
        params[f"p_REG_{reg}_CE"] = "CE0"
        params[f"p_REG_{reg}_RST"] = "RST0"
    m.submodules[f"{name}mult18x18d"] = Instance(
        "MULT18X18D",
        **params,
        p_RESETMODE="SYNC",
        p_GSR="DISABLED",
        p_MULT_BYPASS="DISABLED",
        p_CAS_MATCH_REG="FALSE",
        p_SOURCEB_MODE="B_SHIFT",
        i_SIGNEDA=Const(int(a_signed), 1),
        i_SIGNEDB=Const(int(b_signed), 1),
        i_SOURCEA=Const(0, 1),
        i_SOURCEB=Const(0, 1),
        i_CLK0=ClockSignal(domain),
        i_CE0=ce,
        i_RST0=ResetSignal(domain, allow_reset_less=True),  # 0 for a reset-less domain (as its FFs)
        **ports,
    )
    if tw:
        t1 = Signal(tw, name=f"{name}mul_in")
        t2 = Signal(tw, name=f"{name}prod")
        if en is None:
            m.d[domain] += [t1.eq(tag), t2.eq(t1)]
        else:
            with m.If(ce):
                m.d[domain] += [t1.eq(tag), t2.eq(t1)]
        tag_out: Value = t2
    else:
        tag_out = Const(0, 0)
    product = p36[:width].as_signed() if pshape.signed else p36[:width]
    return product, tag_out


#: clock edges of :func:`registered_wide_multiply`: the chunk multipliers, then the sum register
WIDE_MULTIPLY_LATENCY = 3


def registered_wide_multiply(m: Module, a: Value, b: Value, *, platform: Any = None, name: str = "",
                             domain: str = "sync") -> Value:
    """Registered unsigned ``a * b`` with ``b`` wider than one DSP operand; returns the product.

    ``b`` is cut into :data:`MULT18X18D_WIDTH`-bit chunks, each multiplied by ``a`` on a
    :func:`registered_multiply` (one MULT18X18D each on ECP5), and the shifted chunk products are
    summed into one register: latency :data:`WIDE_MULTIPLY_LATENCY` (3) on every platform, result
    ``len(a) + len(b)`` bits, exact. ``a`` must fit one operand (<= 18 bits); both unsigned.
    """
    a, b = _operand(a, "a"), _operand(b, "b")
    if a.shape().signed or b.shape().signed:
        raise ValueError("registered wide multiply: operands must be unsigned")
    if len(a) > MULT18X18D_WIDTH:
        raise ValueError(f"registered wide multiply{' ' + name.rstrip('_') if name else ''}: operand a is "
                         f"{len(a)} bits; at most {MULT18X18D_WIDTH} (split the narrower operand into a)")
    width = len(a) + len(b)
    total = Signal(unsigned(width), name=f"{name}sum")
    parts = []
    for k, lo in enumerate(range(0, len(b), MULT18X18D_WIDTH)):
        chunk = b[lo:lo + MULT18X18D_WIDTH]
        prod, _ = registered_multiply(m, a, chunk, platform=platform, name=f"{name}part{k}_", domain=domain)
        parts.append(prod << lo if lo else prod)
    acc = parts[0]
    for part in parts[1:]:
        acc = acc + part
    m.d[domain] += total.eq(acc)
    return total


class RegisteredMultiplier(CheckedComponent):
    """``p = (a * b)[:width]``, ``LATENCY`` cycles after ``a``/``b``; see :func:`registered_multiply`.

    ``a_shape``/``b_shape``: operand shapes (signed or not); ``width``: product bits (default the
    full ``len(a) + len(b)``; signed iff an operand is). ECP5: one MULT18X18D (operands <= 18 bits).
    """

    #: clock edges from operands to product, on every platform
    LATENCY = 2

    def __init__(self, a_shape: Any, b_shape: Any, *, width: int | None = None, domain: str = "sync") -> None:
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        width = a_shape.width + b_shape.width if width is None else width
        self._width, self._domain = width, domain
        p_shape = signed(width) if (a_shape.signed or b_shape.signed) else unsigned(width)
        super().__init__({"a": In(a_shape), "b": In(b_shape), "p": Out(p_shape)})

    @classmethod
    def check_params(cls, *, a_shape: Any, b_shape: Any, width: int | None, domain: str) -> None:
        full = Shape.cast(a_shape).width + Shape.cast(b_shape).width
        if width is not None and (not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= full):
            raise ValueError(f"RegisteredMultiplier width={width!r} out of range [1, {full}]")

    width = property(lambda self: self._width)

    def elaborate(self, platform):
        m = Module()
        product, _ = registered_multiply(m, self.a, self.b, platform=platform, width=self._width,
                                         domain=self._domain)
        m.d.comb += self.p.eq(product)
        return m


#: DP16KD true-dual-port aspects: (data bits per port, words); 18 Kbit for x9/x18, 16 Kbit below
DP16KD_ASPECTS: tuple[tuple[int, int], ...] = ((18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
#: RegisteredReadMemory(bram=None): deepest memory left to LUT RAM on ECP5
LUTRAM_MAX_DEPTH = 64
#: DP16KD blocks of the LFE5U-85F (the refusal limit of one memory's tiling)
DP16KD_MAX_BLOCKS = 208


def dp16kd_tiles(width: int, depth: int) -> list[int]:
    """Data widths of the DP16KDs that hold a ``width`` x ``depth`` memory side by side (no depth
    cascade: every tile holds all ``depth`` words, so no output multiplexer follows the register).

    Widest aspect that is deep enough, then the narrowest one that holds the remaining bits
    (37 bits x 512 -> [18, 18, 1]). ValueError when ``depth`` exceeds the deepest aspect."""
    fits = [w for w, words in DP16KD_ASPECTS if words >= depth]
    if not fits:
        raise ValueError(f"RegisteredReadMemory: depth={depth} exceeds the deepest DP16KD aspect "
                         f"({DP16KD_ASPECTS[-1][1]} x {DP16KD_ASPECTS[-1][0]}); split the memory, or "
                         f"elaborate without an ECP5 platform (vendor-neutral RTL)")
    tiles, left = [], width
    while left > 0:
        w = fits[0] if left >= fits[0] else min(x for x in fits if x >= left)
        tiles.append(w)
        left -= w
    if len(tiles) > DP16KD_MAX_BLOCKS:
        raise ValueError(f"RegisteredReadMemory: {width} x {depth} needs {len(tiles)} DP16KD "
                         f"(an LFE5U-85F has {DP16KD_MAX_BLOCKS})")
    return tiles


def dp16kd_initvals(words: Sequence[int]) -> list[int]:
    """``INITVAL_00..3F`` of an x18 DP16KD holding ``words`` (word ``a`` <= 18 bits at address
    ``a``): word ``a`` in ``INITVAL_(a // 16)`` bits ``[(a % 16) * 20 +: 18]`` (20-bit slots, the
    top two bits zero), the layout of yosys' ``share/lattice/brams_map_16kd.v``."""
    if len(words) > DP16KD_ASPECTS[0][1]:
        raise ValueError(f"dp16kd_initvals: {len(words)} words exceed {DP16KD_ASPECTS[0][1]}")
    vals = [0] * 64
    for a, w in enumerate(words):
        if not 0 <= w < (1 << 18):
            raise ValueError(f"dp16kd_initvals: word {a} = {w} is not an unsigned 18-bit value")
        vals[a // 16] |= int(w) << ((a % 16) * 20)
    return vals


class RegisteredReadMemory(CheckedComponent):
    """Simple dual-port RAM (or ROM), read latency ``LATENCY`` = 2: the address is sampled
    at an edge with ``r_en`` (stage 1), the word is registered at a later edge with ``r_data_en``
    (stage 2, the output register) and is on ``r_data`` after it. With both enables high the word
    read at edge k is on ``r_data`` after edge k+1. The write port writes ``w_data`` at ``w_addr``
    at an edge with ``w_en``. The output register is reset to 0 by the domain's reset (like the
    fabric register it replaces); the memory is not. The memory starts with ``init`` (word ``i`` at
    address ``i``, the rest zero); with ``w_en`` left low it is a ROM (the reciprocal LUT of
    :class:`hdl.arith.ReciprocalLookup`). On ECP5 an initialised memory uses x18 tiles only, whose
    ``INITVAL_00..3F`` layout is yosys' own (``dp16kd_initvals``); one deeper than 1024 words keeps
    the neutral RTL (yosys maps it, without the output register).

    Read during write (same edge, same address): **excluded by construction** — the word read is
    unspecified (vendor-neutral: the old word; DP16KD: a cross-port collision, not relied on, and
    ``sim/models/dp16kd.v`` returns X), so a user must forward such writes itself (the PPE
    partial-sum buffer and the CIM layer bypasses do). Writes at earlier edges are always seen.
    Also excluded: an edge with ``r_data_en`` after a reset and before the next ``r_en`` read
    (neutral: the stage-1 word from before the reset; DP16KD: RSTB also clears stage 1).

    Vendor-neutral (``platform`` not ECP5): ``amaranth.lib.memory.Memory`` with a synchronous,
    non-transparent read port (enable ``r_en``) and one register (enable ``r_data_en``).
    ECP5: ``dp16kd_tiles(width, depth)`` DP16KDs side by side, port A write-only, port B read-only
    (CEB = ``r_en``, OCEB = ``r_data_en``, RSTB = the domain's reset, REGMODE_B "OUTREG",
    RESETMODE "SYNC"); ``depth`` <= 16384. ``bram=False`` keeps the neutral RTL on every platform;
    ``bram=None`` (default) does so for ``depth`` <= :data:`LUTRAM_MAX_DEPTH` (shallow memories,
    which yosys puts in LUT RAM with the register in fabric).
    """

    #: clock edges from the read address to its word on ``r_data`` (both enables high)
    LATENCY = 2

    def __init__(self, *, width: int, depth: int, domain: str = "sync", bram: bool | None = None,
                 init: Sequence[int] = ()) -> None:
        if bram is None:
            bram = depth > LUTRAM_MAX_DEPTH
        self._width, self._depth, self._domain, self._bram = width, depth, domain, bool(bram)
        self._init = tuple(int(v) for v in init)
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
            "r_addr": In(range(depth)), "r_en": In(1), "r_data_en": In(1), "r_data": Out(width),
        })

    @classmethod
    def check_params(cls, *, width: int, depth: int, domain: str, bram: bool | None,
                     init: Sequence[int]) -> None:
        for what, value in (("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RegisteredReadMemory: {what}={value!r} must be an integer >= 1")
        init = list(init)
        if len(init) > depth:
            raise ValueError(f"RegisteredReadMemory: init has {len(init)} words, more than depth={depth}")
        for i, v in enumerate(init):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) < (1 << width):
                raise ValueError(f"RegisteredReadMemory: init[{i}]={v!r} is not an unsigned {width}-bit integer")

    width = property(lambda self: self._width)
    depth = property(lambda self: self._depth)
    init = property(lambda self: self._init)

    def elaborate(self, platform):
        ecp5 = self._bram and is_ecp5(platform) and not (self._init and self._depth > DP16KD_ASPECTS[0][1])
        if self._init:    # x18 tiles only: the aspect whose INITVAL layout dp16kd_initvals gives
            tiles = [DP16KD_ASPECTS[0][0]] * -(-self._width // DP16KD_ASPECTS[0][0]) if ecp5 else []
        else:             # (refused before a Module exists)
            tiles = dp16kd_tiles(self._width, self._depth) if ecp5 else []
        m = Module()
        if not ecp5:
            m.submodules.mem = mem = Memory(shape=unsigned(self._width), depth=self._depth, init=self._init)
            wr, rd = mem.write_port(domain=self._domain), mem.read_port(domain=self._domain)
            m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
                         rd.addr.eq(self.r_addr), rd.en.eq(self.r_en)]
            with m.If(self.r_data_en):
                m.d[self._domain] += self.r_data.eq(rd.data)
            return m

        lo = 0
        for k, tw in enumerate(tiles):
            # word address on the top address pins: ADx[13:shift], shift = log2 of the bit width
            # (x9 counts as 8, x18 as 16; ADx[1:0] of x18 are byte enables, both set for writes)
            shift = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}[tw]
            ports: dict[str, Any] = {}
            for port, addr in (("A", self.w_addr), ("B", self.r_addr)):
                a14 = Signal(14, name=f"bram{k}_ad{port.lower()}")
                low = Const(0b0011 if (tw == 18 and port == "A") else 0, shift)
                m.d.comb += a14.eq(Cat(low, addr))
                for b in range(14):
                    ports[f"i_AD{port}{b}"] = a14[b]
                for b in range(3):
                    ports[f"i_CS{port}{b}"] = Const(0, 1)
            dia = Signal(18, name=f"bram{k}_dia")
            dob = Signal(18, name=f"bram{k}_dob")
            m.d.comb += dia.eq(self.w_data[lo:lo + tw])
            for b in range(18):
                ports[f"i_DIA{b}"] = dia[b]
                ports[f"i_DIB{b}"] = Const(0, 1)
                ports[f"o_DOB{b}"] = dob[b]
            m.d.comb += self.r_data[lo:lo + tw].eq(dob[:tw])
            initvals = ({f"p_INITVAL_{row:02X}": Const(v, 320) for row, v in
                         enumerate(dp16kd_initvals([(w >> lo) & ((1 << tw) - 1) for w in self._init]))}
                        if self._init else {})
            lo += tw
            m.submodules[f"dp16kd{k}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=tw, p_DATA_WIDTH_B=tw,
                p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",   # port A only writes
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_GSR="DISABLED",
                i_CLKA=ClockSignal(self._domain), i_CLKB=ClockSignal(self._domain),
                i_CEA=self.w_en, i_WEA=Const(1, 1), i_OCEA=Const(1, 1), i_RSTA=Const(0, 1),
                i_CEB=self.r_en, i_WEB=Const(0, 1), i_OCEB=self.r_data_en,
                # 0 for a reset-less domain, as the fabric register would have no reset
                i_RSTB=ResetSignal(self._domain, allow_reset_less=True),
                **initvals, **ports,
            )
        return m
