"""One stream harness for the Amaranth simulator and cocotb: drivers, monitors, scoreboards.

The transaction core is simulator independent. Once per clock cycle it decides what every
driver puts on its port (a :class:`Source` holds ``valid`` until the transfer, with random stalls
from a seeded RNG; a :class:`Sink` drives ``ready`` from a random pattern; a :class:`PipelineSource`
drives a clock-enable pipeline, whose :class:`ValidMonitor` takes results on enabled edges only),
asks an *adapter* to apply those values, sample the named signals just before the rising edge and
advance one edge, then records the transfers and feeds the :class:`Scoreboard`\\ s. The two
adapters are thin:

* :class:`AmaranthIO` (async testbench: ``ctx.set`` / ``ctx.get`` / ``ctx.tick``),
* :class:`CocotbIO` (signals by name on the dut; drive after the falling edge, sample in
  ``ReadOnly``, ``RisingEdge``),

both naming signals by their Verilog port name (``o__payload``, ``n_keys``), so a block's
transaction script (``async def script(io)``) is written once and runs on either simulator.

Payloads are packed and unpacked through the port's ``amaranth.lib.data`` layout only
(:func:`pack`, :func:`unpack`): items are plain Python values (ints, lists, dicts), compared with
``==`` against the golden model.

Every wait is bounded: a :class:`StreamBench` run fails on a scoreboard mismatch at index i, on
"expected N, got M", on an item after the last expected one (during the run or within the drain
window after it), on a source beat or a sink item waiting longer than its ``wait_cycles``, and on
the whole run exceeding ``deadline_cycles``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from amaranth.hdl import Shape, ShapeCastable, Value
from amaranth.lib import data

__all__ = [
    "StreamError", "pack", "unpack", "layout_of", "Scoreboard", "Source", "Sink", "ValidMonitor", "PipelineSource",
    "StreamBench", "StreamIO", "AmaranthIO", "CocotbIO", "run_amaranth", "wait_for",
]


class StreamError(AssertionError):
    """A stream check failed: mismatch, missing or extra item, or a cycle deadline."""


# ---- one packing path --------------------------------------------------------------------------

def layout_of(port_payload: Any) -> ShapeCastable | Shape:
    """The layout (or plain shape) of a component port's payload (``comp.o.payload``)."""
    shape = port_payload.shape()
    return data.Layout.cast(shape) if isinstance(shape, data.Layout) else Shape.cast(shape)


def pack(layout: Any, value: Any) -> int:
    """``value`` (dict / list / int, as ``layout.const`` takes it) as the port's raw bits."""
    if isinstance(layout, data.Layout):
        return _packer(layout)(value) & ((1 << layout.size) - 1)
    shape = Shape.cast(layout)
    return int(value) & ((1 << shape.width) - 1)


# ``layout.const`` costs ~50 us a beat, too slow for the 10^6-vector soak (sim/vector_tb.py): plain
# dict / list / int values of struct and array layouts are packed by a per-layout function built
# once, with the same result; anything else (unknown keys, long lists, enums, consts) goes through
# ``layout.const`` itself, which also raises its errors.
_PACKERS: dict[int, tuple[Any, Callable[[Any], int]]] = {}


def _const_bits(shape: Any, value: Any) -> int:
    size = shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width
    return int(Value.cast(shape.const(value)).value) & ((1 << size) - 1)


def _packer(shape: Any) -> Callable[[Any], int]:
    hit = _PACKERS.get(id(shape))
    if hit is not None and hit[0] is shape:
        return hit[1]
    fn = _build_packer(shape)
    if len(_PACKERS) > 512:  # layouts built on the fly must not pile up
        _PACKERS.clear()
    _PACKERS[id(shape)] = (shape, fn)  # (holding the layout keeps its id unique)
    return fn


def _build_packer(shape: Any) -> Callable[[Any], int]:
    if isinstance(shape, data.StructLayout):
        fields = [(name, f.offset, _packer(f.shape)) for name, f in shape]
        names = {name for name, _, _ in fields}

        def pack_struct(value: Any) -> int:
            if not isinstance(value, Mapping) or not names.issuperset(value):
                return _const_bits(shape, value)
            raw = 0
            for name, offset, sub in fields:
                if name in value:
                    raw |= sub(value[name]) << offset
            return raw
        return pack_struct
    if isinstance(shape, data.ArrayLayout):
        length, sub = shape.length, _packer(shape.elem_shape)
        width = shape.size // length if length else 0

        def pack_array(value: Any) -> int:
            if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray) or len(value) > length:
                return _const_bits(shape, value)
            raw = 0
            for k, v in enumerate(value):
                raw |= sub(v) << (k * width)
            return raw
        return pack_array
    if isinstance(shape, data.Layout) or (isinstance(shape, ShapeCastable) and not isinstance(shape, Shape)):
        return lambda value: _const_bits(shape, value)
    mask = (1 << Shape.cast(shape).width) - 1

    def pack_int(value: Any) -> int:
        if isinstance(value, int):  # (bool and numpy ints below)
            return value & mask
        try:
            return int(value.__index__()) & mask
        except AttributeError:
            return _const_bits(shape, value)
    return pack_int


def unpack(layout: Any, bits: int) -> Any:
    """Raw bits as plain Python values: dict per struct, list per array, int (signed-aware)."""
    if isinstance(layout, data.Layout):
        return _plain(layout, layout.from_bits(int(bits)))
    shape = Shape.cast(layout)
    bits = int(bits) & ((1 << shape.width) - 1)
    return bits - (1 << shape.width) if shape.signed and bits >> (shape.width - 1) else bits


def _plain(layout: data.Layout, const: Any) -> Any:
    if isinstance(layout, data.ArrayLayout):
        return [_plain_field(layout.elem_shape, const[i]) for i in range(layout.length)]
    return {name: _plain_field(field.shape, const[name]) for name, field in layout}


def _plain_field(shape: Any, value: Any) -> Any:
    if isinstance(shape, ShapeCastable) and not isinstance(shape, Shape):
        layout = data.Layout.cast(shape)
        return _plain(layout, value)
    return int(value)


# ---- scoreboard ---------------------------------------------------------------------------------

class Scoreboard:
    """Items of one stream against the expected ones.

    ``expected``: a list (each item compared ``==`` as it arrives: fails "mismatch at index i")
    or a count (the caller compares the payloads). Fails on an item after the last expected one
    as it arrives, and in :meth:`check_complete` on "expected N, got M".
    """

    def __init__(self, name: str, expected: Sequence[Any] | int) -> None:
        if isinstance(expected, int):
            if expected < 0:
                raise ValueError(f"{name}: expected count must be >= 0, got {expected}")
            self.expected_items: list | None = None
            self.expected = expected
        else:
            self.expected_items = list(expected)
            self.expected = len(self.expected_items)
        self.name = name
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        i = len(self.items)
        if i >= self.expected:
            raise StreamError(f"{self.name}: item {i + 1} arrived after the last expected one "
                              f"(expected {self.expected}): {item!r}")
        if self.expected_items is not None and item != self.expected_items[i]:
            raise StreamError(f"{self.name}: mismatch at index {i}: got {item!r}, expected {self.expected_items[i]!r}")
        self.items.append(item)

    @property
    def complete(self) -> bool:
        return len(self.items) >= self.expected

    def check_complete(self) -> None:
        if len(self.items) != self.expected:
            raise StreamError(f"{self.name}: expected {self.expected}, got {len(self.items)}")


# ---- agents -------------------------------------------------------------------------------------

class _Stall:
    """'Stall this cycle' decisions from a seeded RNG (probability ``p``)."""

    def __init__(self, p: float, rng: random.Random | None, seed: int) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"stall probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is not None else random.Random(seed)

    def __call__(self) -> bool:
        return self.p > 0 and self.rng.random() < self.p


class Source:
    """Drives a ``lib.stream`` input port ``NAME__valid/ready/payload``: a queue of payloads
    (plain values packed with ``layout``, or raw ints with ``layout=None``); ``valid`` rises after
    a random stall and stays high until the transfer (AXI-stream rule)."""

    def __init__(self, name: str, layout: Any = None, items: Iterable[Any] = (), *, p_stall: float = 0.0,
                 rng: random.Random | None = None, seed: int = 0, wait_cycles: int = 10_000) -> None:
        if wait_cycles < 1:
            raise ValueError(f"{name}: wait_cycles must be >= 1, got {wait_cycles}")
        self.name, self.layout, self.wait_cycles = name, layout, wait_cycles
        self.stall = _Stall(p_stall, rng, seed)
        self.queue: list[int] = []
        self.sent = 0
        self.transfers: list[int] = []  #: cycle of every transfer
        self.holding = False
        self._waited = 0
        self.push(items)

    def push(self, items: Iterable[Any]) -> None:
        self.queue += [pack(self.layout, x) if self.layout is not None else int(x) for x in items]

    @property
    def done(self) -> bool:
        return self.sent == len(self.queue)

    def signals(self) -> list[str]:
        return [f"{self.name}__ready"]

    def drive(self, cycle: int, drain: bool) -> dict[str, int]:
        if not self.holding and not self.done and not self.stall():
            self.holding = True
        out = {f"{self.name}__valid": int(self.holding)}
        if self.holding:
            out[f"{self.name}__payload"] = self.queue[self.sent]
        return out

    def observe(self, cycle: int, s: Mapping[str, int | None]) -> None:
        if not self.holding:
            return
        ready = s[f"{self.name}__ready"]
        if ready is None:
            raise StreamError(f"{self.name}.ready is X/Z at cycle {cycle}")
        if ready:
            self.transfers.append(cycle)
            self.sent += 1
            self.holding = False
            self._waited = 0
        else:
            self._waited += 1
            if self._waited >= self.wait_cycles:
                raise StreamError(f"timeout: {self.name}.ready low for {self.wait_cycles} cycles "
                                  f"(beat {self.sent + 1} of {len(self.queue)}, cycle {cycle})")

    def pending(self) -> str | None:
        return None if self.done else f"{self.name}: {self.sent} of {len(self.queue)} beats sent"


class _Monitor:
    """Shared part of :class:`Sink` and :class:`ValidMonitor`: unpack, collate, score, time out."""

    def __init__(self, name: str, layout: Any, scoreboard: Scoreboard | None, collate: Callable | None,
                 wait_cycles: int) -> None:
        if wait_cycles < 1:
            raise ValueError(f"{name}: wait_cycles must be >= 1, got {wait_cycles}")
        self.name, self.layout, self.wait_cycles = name, layout, wait_cycles
        self.scoreboard = scoreboard
        self.collate = collate
        self.beats: list[Any] = []  #: every beat received (plain values)
        self.transfers: list[int] = []  #: cycle of every beat
        self._pending: list[Any] = []
        self._waited = 0

    def _unpack(self, cycle: int, bits: int | None) -> Any:
        if bits is None:
            raise StreamError(f"{self.name}: payload is X/Z on a transfer at cycle {cycle}")
        return unpack(self.layout, bits) if self.layout is not None else int(bits)

    def _take(self, cycle: int, beat: Any) -> None:
        self.beats.append(beat)
        self.transfers.append(cycle)
        self._waited = 0
        self._pending.append(beat)
        item = self.collate(self._pending) if self.collate else self._pending[0]
        if item is not None:
            self._pending = []
            if self.scoreboard is not None:
                self.scoreboard.add(item)

    def _tick_wait(self, cycle: int) -> None:
        if self.scoreboard is None or self.scoreboard.complete:
            return
        self._waited += 1
        if self._waited >= self.wait_cycles:
            sb = self.scoreboard
            raise StreamError(f"timeout: waited {self.wait_cycles} cycles for {sb.name} item {len(sb.items) + 1} "
                              f"(expected {sb.expected}, got {len(sb.items)}; cycle {cycle})")

    def pending(self) -> str | None:
        sb = self.scoreboard
        return None if sb is None or sb.complete else f"{sb.name}: expected {sb.expected}, got {len(sb.items)}"


class Sink(_Monitor):
    """Consumes a ``lib.stream`` output port ``NAME__valid/ready/payload`` with a random ready
    pattern (``ready`` = 1 in the drain window); ``collate(beats)`` may group beats into one item
    (return None until complete)."""

    def __init__(self, name: str, layout: Any = None, scoreboard: Scoreboard | None = None, *,
                 p_stall: float = 0.0, rng: random.Random | None = None, seed: int = 0,
                 collate: Callable[[list], Any] | None = None, wait_cycles: int = 10_000) -> None:
        super().__init__(name, layout, scoreboard, collate, wait_cycles)
        self.stall = _Stall(p_stall, rng, seed)
        self.valid_cycles: list[int] = []  #: cycles with valid high (for latency figures)
        self._ready = 0

    def signals(self) -> list[str]:
        return [f"{self.name}__valid", f"{self.name}__payload"]

    def drive(self, cycle: int, drain: bool) -> dict[str, int]:
        self._ready = 1 if drain else int(not self.stall())
        return {f"{self.name}__ready": self._ready}

    def observe(self, cycle: int, s: Mapping[str, int | None]) -> None:
        valid = s[f"{self.name}__valid"]
        if valid is None:
            raise StreamError(f"{self.name}.valid is X/Z at cycle {cycle}")
        if valid:
            self.valid_cycles.append(cycle)
        if valid and self._ready:
            self._take(cycle, self._unpack(cycle, s[f"{self.name}__payload"]))
        elif not valid:  # cycles the sink itself withholds ready are not the DUT's
            self._tick_wait(cycle)


class ValidMonitor(_Monitor):
    """A valid-only result stream (no backpressure): ``valid`` and one ``payload`` signal with a
    layout, or ``fields`` = {item key: (signal name, shape)} sampled together (item = dict)."""

    def __init__(self, name: str, *, valid: str, payload: str | None = None, layout: Any = None,
                 fields: Mapping[str, tuple[str, Any]] | None = None, scoreboard: Scoreboard | None = None,
                 collate: Callable[[list], Any] | None = None, wait_cycles: int = 10_000,
                 enable: str | None = None) -> None:
        if (payload is None) == (fields is None):
            raise ValueError(f"{name}: give exactly one of payload= or fields=")
        super().__init__(name, layout, scoreboard, collate, wait_cycles)
        self.valid, self.payload, self.fields = valid, payload, dict(fields or {})
        #: a clock-enable pipeline's enable: its output is taken (and waited for) on enabled edges only
        self.enable = enable

    def signals(self) -> list[str]:
        names = [self.valid] + ([self.payload] if self.payload else [sig for sig, _ in self.fields.values()])
        return names + ([self.enable] if self.enable else [])

    def drive(self, cycle: int, drain: bool) -> dict[str, int]:
        return {}

    def observe(self, cycle: int, s: Mapping[str, int | None]) -> None:
        if self.enable is not None and not s[self.enable]:
            return  # a held output register: the same result again, or still none
        valid = s[self.valid]
        if valid is None:
            raise StreamError(f"{self.name}: {self.valid} is X/Z at cycle {cycle}")
        if not valid:
            self._tick_wait(cycle)
        elif self.payload is not None:
            self._take(cycle, self._unpack(cycle, s[self.payload]))
        else:
            raw = {k: s[sig] for k, (sig, _) in self.fields.items()}
            if any(v is None for v in raw.values()):
                raise StreamError(f"{self.name}: X/Z on a transfer at cycle {cycle}: {raw}")
            self._take(cycle, {k: unpack(shape, raw[k]) for k, (_, shape) in self.fields.items()})


class PipelineSource:
    """Drives a clock-enable pipeline (no ready): ``enable`` low on random stall cycles, and on
    every enabled cycle the next item on its input signals with ``valid`` high (low once the items
    are out; enabled with ``valid`` low in the drain window). ``fields`` = {item key: (signal name,
    shape)}: each value is packed with its port's shape (:func:`pack`). Pair it with a
    :class:`ValidMonitor` given ``enable=`` the same signal."""

    def __init__(self, name: str, fields: Mapping[str, tuple[str, Any]], items: Iterable[Mapping[str, Any]] = (), *,
                 valid: str = "valid_in", enable: str = "en", p_stall: float = 0.0,
                 rng: random.Random | None = None, seed: int = 0) -> None:
        self.name, self.fields, self.valid, self.enable = name, dict(fields), valid, enable
        self.stall = _Stall(p_stall, rng, seed)
        self.queue: list[dict[str, int]] = []
        self.sent = 0
        self.transfers: list[int] = []  #: cycle of every item (enabled, valid high)
        self.enabled: list[int] = []  #: every enabled cycle (a pipeline's latency is counted in these)
        self.push(items)

    def push(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            unknown = set(item) - set(self.fields)
            if unknown:
                raise ValueError(f"{self.name}: item keys {sorted(unknown)} are not fields {sorted(self.fields)}")
            self.queue.append({sig: pack(shape, item[key]) for key, (sig, shape) in self.fields.items()})

    @property
    def done(self) -> bool:
        return self.sent == len(self.queue)

    def signals(self) -> list[str]:
        return []

    def drive(self, cycle: int, drain: bool) -> dict[str, int]:
        if not drain and self.stall():
            return {self.enable: 0}
        self.enabled.append(cycle)
        if drain or self.done:
            return {self.enable: 1, self.valid: 0}
        self.transfers.append(cycle)
        self.sent += 1
        return {self.enable: 1, self.valid: 1, **self.queue[self.sent - 1]}

    def observe(self, cycle: int, s: Mapping[str, int | None]) -> None:
        pass

    def pending(self) -> str | None:
        return None if self.done else f"{self.name}: {self.sent} of {len(self.queue)} items sent"


# ---- adapters -----------------------------------------------------------------------------------

class StreamIO(Protocol):
    """What the core needs from a simulator: one clock cycle at a time."""

    async def step(self, drive: Mapping[str, int], sample: Sequence[str]) -> dict[str, int | None]:
        """Apply ``drive``, sample ``sample`` just before the next rising edge, pass that edge."""
        ...

    async def peek(self, names: Sequence[str]) -> dict[str, int | None]:
        """Current values (between edges, after the last step), without advancing time."""
        ...


class AmaranthIO:
    """Adapter for an Amaranth async testbench: names resolve on the component (``o__payload``
    -> ``dut.o.payload``, ``front.est.est_en`` -> ``dut.front.est.est_en``); values are raw unsigned bits."""

    def __init__(self, ctx: Any, dut: Any) -> None:
        self.ctx, self.dut = ctx, dut
        self._cache: dict[str, Value] = {}

    def _sig(self, name: str) -> Value:
        sig = self._cache.get(name)
        if sig is None:
            obj = self.dut
            for part in name.replace(".", "__").split("__"):
                try:
                    obj = getattr(obj, part)
                except AttributeError:
                    raise StreamError(f"no signal {name!r} on {type(self.dut).__name__}") from None
            sig = self._cache[name] = Value.cast(obj)
        return sig

    def _get(self, names: Sequence[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for n in names:
            sig = self._sig(n)
            out[n] = self.ctx.get(sig) & ((1 << len(sig)) - 1)
        return out

    async def step(self, drive: Mapping[str, int], sample: Sequence[str]) -> dict[str, int | None]:
        for name, value in drive.items():
            self.ctx.set(self._sig(name), value)
        got = self._get(sample)  # testbench reads see the settled combinational response
        await self.ctx.tick()
        return got

    async def peek(self, names: Sequence[str]) -> dict[str, int | None]:
        return self._get(names)


class CocotbIO:
    """Adapter for cocotb: drives after the falling edge, samples in ``ReadOnly`` before the
    rising edge. Unresolvable (X/Z) values are returned as ``None`` (the core fails on them where
    they matter). Call :meth:`start` once after reset to align on a falling edge."""

    def __init__(self, dut: Any, clk: str = "clk") -> None:
        self.dut = dut
        self.clk = getattr(dut, clk)
        self._handles: dict[str, Any] = {}  # (a handle lookup by name costs more than the read)

    def _handle(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = getattr(self.dut, name)
        return handle

    async def start(self) -> None:
        from cocotb.triggers import FallingEdge

        await FallingEdge(self.clk)

    def _get(self, names: Sequence[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for n in names:
            value = self._handle(n).value
            try:
                out[n] = int(value) if not hasattr(value, "to_unsigned") else value.to_unsigned()
            except ValueError:
                out[n] = None
        return out

    async def step(self, drive: Mapping[str, int], sample: Sequence[str]) -> dict[str, int | None]:
        from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

        for name, value in drive.items():
            self._handle(name).value = value
        await ReadOnly()
        got = self._get(sample)
        await RisingEdge(self.clk)
        await FallingEdge(self.clk)
        return got

    async def peek(self, names: Sequence[str]) -> dict[str, int | None]:
        # at the falling edge the last rising edge's updates have long settled
        return self._get(names)


async def wait_for(io: StreamIO, name: str, *, deadline_cycles: int, what: str,
                   drive: Mapping[str, int] | None = None, value: int = 1) -> int:
    """Step until ``name`` == ``value`` (sampled before an edge); fail after ``deadline_cycles``."""
    for waited in range(deadline_cycles):
        if (await io.peek([name]))[name] == value:
            return waited
        await io.step(drive or {}, [])
    raise StreamError(f"timeout: waited {deadline_cycles} cycles for {what}")


# ---- the run loop -------------------------------------------------------------------------------

class StreamBench:
    """Runs agents cycle by cycle over one adapter until every source is empty and every
    scoreboard complete, then ``drain_cycles`` more (sinks ready, any further item fails).

    ``before(bench)`` may push items or return extra drives (config registers) each cycle;
    ``after(bench, samples)`` sees the sampled values (``watch`` adds signals to sample);
    ``until(bench)`` may require more than complete scoreboards to end the run.
    """

    def __init__(self, *agents: Any, deadline_cycles: int, drain_cycles: int = 0,
                 before: Callable[[StreamBench], Mapping[str, int] | None] | None = None,
                 after: Callable[[StreamBench, Mapping[str, int | None]], None] | None = None,
                 until: Callable[[StreamBench], bool] | None = None, watch: Sequence[str] = ()) -> None:
        if deadline_cycles < 1:
            raise ValueError(f"deadline_cycles must be >= 1, got {deadline_cycles}")
        if drain_cycles < 0:
            raise ValueError(f"drain_cycles must be >= 0, got {drain_cycles}")
        self.agents = list(agents)
        self.deadline_cycles, self.drain_cycles = deadline_cycles, drain_cycles
        self.before, self.after, self.until = before, after, until
        self.watch = list(watch)
        self.cycle = 0  #: steps taken in this run (cycle numbers of transfers are 0-based steps)
        self.samples: dict[str, int | None] = {}

    def _busy(self) -> bool:
        if any(a.pending() for a in self.agents):
            return True
        return self.until is not None and not self.until(self)

    async def run(self, io: StreamIO) -> StreamBench:
        names = [n for a in self.agents for n in a.signals()] + self.watch
        drained = 0
        while True:
            drain = not self._busy()
            if drain:
                if drained >= self.drain_cycles:
                    break
                drained += 1
            if self.cycle >= self.deadline_cycles:
                outstanding = "; ".join(p for a in self.agents if (p := a.pending())) or "the end condition"
                raise StreamError(f"timeout: run exceeded deadline_cycles={self.deadline_cycles} ({outstanding})")
            drives: dict[str, int] = {}
            if self.before is not None:
                drives.update(self.before(self) or {})
            for a in self.agents:
                drives.update(a.drive(self.cycle, drain))
            self.samples = await io.step(drives, names)
            for a in self.agents:
                try:
                    a.observe(self.cycle, self.samples)
                except StreamError as exc:
                    # a stuck stream often stalls the others too: name every one still waiting
                    others = [p for b in self.agents if b is not a and (p := b.pending())]
                    if not str(exc).startswith("timeout") or not others:
                        raise
                    raise StreamError(f"{exc}; also outstanding: {'; '.join(others)}") from None
            if self.after is not None:
                self.after(self, self.samples)
            self.cycle += 1
        # leave the ports quiet: no valid offered, no ready given
        quiet = {f"{a.name}__valid": 0 for a in self.agents if isinstance(a, Source)}
        quiet |= {f"{a.name}__ready": 0 for a in self.agents if isinstance(a, Sink)}
        await io.step(quiet, [])
        for a in self.agents:
            if isinstance(a, _Monitor) and a.scoreboard is not None:
                a.scoreboard.check_complete()
        return self


def add_watchdog(sim: Any, deadline_cycles: int, *, error: type[AssertionError] = StreamError,
                 hint: str = "") -> list[int]:
    """The one simulation watchdog: a background testbench that raises ``error`` once the sync
    clock has ticked ``deadline_cycles`` times. Returns a one-item list holding the cycle count
    so far (read it after ``sim.run()``)."""
    if deadline_cycles < 1:
        raise ValueError(f"deadline_cycles must be >= 1, got {deadline_cycles}")
    cycles = [0]

    async def watchdog(ctx: Any) -> None:
        # background: it never keeps the simulation alive, it only ends a stuck one
        while cycles[0] < deadline_cycles:
            await ctx.tick()
            cycles[0] += 1
        raise error(f"timeout: simulation did not finish within deadline_cycles={deadline_cycles}{hint}")

    sim.add_testbench(watchdog, background=True)
    return cycles


def run_amaranth(dut: Any, script: Callable[[AmaranthIO], Any], *, vcd: str | None = None,
                 deadline_cycles: int = 200_000) -> Any:
    """Simulate ``dut`` (1 MHz sync clock) running ``await script(AmaranthIO)``; returns its
    result. A watchdog ends a stuck simulation after ``deadline_cycles``."""
    from amaranth.sim import Simulator

    if deadline_cycles < 1:
        raise ValueError(f"deadline_cycles must be >= 1, got {deadline_cycles}")
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    result: list[Any] = []

    async def tb(ctx: Any) -> None:
        result.append(await script(AmaranthIO(ctx, dut)))

    sim.add_testbench(tb)
    add_watchdog(sim, deadline_cycles)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result[0]
