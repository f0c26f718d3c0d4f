"""hdl.delay_line: exact delay, reset behaviour and parameter checks of DelayLine / DelayTimebase
(Amaranth simulator, async testbenches), against a register-chain model."""

from __future__ import annotations

import random
from typing import Any

import pytest
from amaranth.hdl import ClockDomain, Fragment, Module, Signal
from amaranth.sim import Simulator

from hdl.delay_line import DelayLine, DelayTimebase, delay_line_kind


def _model(inputs: list[int], delay: int, resets: set[int]) -> list[int | None]:
    """The register chain: o[t] = i[t - delay]; a reset asserted in cycle r clears every stage at the
    edge ending cycle r (the input of cycle r is not taken). None in the reset cycles (not compared)."""
    chain = [0] * delay
    expect: list[int | None] = []
    for t, value in enumerate(inputs):
        if t in resets:
            chain = [0] * delay
            expect.append(None)
            continue
        expect.append(chain[-1] if delay else value)
        chain = [value, *chain[:-1]] if delay else chain
    return expect


def _with_sync(dut: Any) -> tuple[Module, Signal]:
    """``dut`` in a module with an explicit sync domain (a 0-cycle line has none); its reset."""
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.dut = dut
    return m, cd.rst


def _run(dut: Any, top: Any, width: int, delay: int, ungated: int, cycles: int, resets: set[int],
         seed: int) -> None:
    rng = random.Random(seed)
    inputs = [rng.randrange(1 << width) for _ in range(cycles)]
    expect = _model(inputs, delay, resets)
    mask_after_reset = ((1 << width) - 1) & ~((1 << ungated) - 1)
    got: list[int] = []
    top, rst = _with_sync(top)

    async def tb(ctx):
        since_reset = 10**9   # cycles since the last reset cycle's edge
        for t, value in enumerate(inputs):
            reset = t in resets
            ctx.set(rst, int(reset))
            ctx.set(dut.i, value)
            # during the reset cycle itself the chain shows its old contents: skip that cycle
            if not reset:
                got.append(ctx.get(dut.o))
                o = got[-1]
                want = expect[t]
                if ungated and since_reset < delay:
                    assert o & mask_after_reset == want & mask_after_reset, (t, o, want)
                else:
                    assert o == want, (t, delay, o, want)
            since_reset = 0 if reset else since_reset + 1
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert len(got) == cycles - len(resets)


@pytest.mark.parametrize("read", [None, "async", "sync"])
@pytest.mark.parametrize("delay", list(range(0, 20)) + [31, 32, 33, 64, 65])
def test_exact_delay_and_reset(delay, read):
    width = 7
    if read is not None and delay <= DelayLine.REG_MAX:
        pytest.skip("register chain: no read mode")
    dut = DelayLine(width=width, delay=delay, read=read)
    assert dut.LATENCY == delay
    assert dut.kind == delay_line_kind(delay, read)
    cycles = 3 * delay + 40
    _run(dut, dut, width, delay, 0, cycles, resets={0, delay + 7, delay + 9}, seed=delay)


@pytest.mark.parametrize("delay", [3, 5, 16, 17])
def test_ungated_bits_are_data(delay):
    """Only the bits above ``ungated`` are forced to 0 after reset; the rest is the delayed data once
    written."""
    dut = DelayLine(width=9, delay=delay, ungated=4)
    _run(dut, dut, 9, delay, 4, 3 * delay + 30, resets={0, delay + 3}, seed=100 + delay)


class _Shared:
    """A timebase and several lines of different delays sharing its pointer and fill flags."""

    def __init__(self, delays: list[int], width: int, read: str | None) -> None:
        self.tb = DelayTimebase(max_delay=max(delays))
        self.lines = [DelayLine(width=width, delay=n, read=read, ptr_width=self.tb.ptr_width) for n in delays]

    def module(self) -> Module:
        m = Module()
        m.submodules.tb = self.tb
        for k, line in enumerate(self.lines):
            m.submodules[f"line{k}"] = line
            if line.kind != "registers":
                m.d.comb += [line.ptr.eq(self.tb.ptr), line.primed.eq(self.tb.primed[line.delay])]
            else:
                m.d.comb += [line.ptr.eq(self.tb.ptr), line.primed.eq(1)]
        return m


@pytest.mark.parametrize("read", [None, "sync"])
def test_shared_timebase(read):
    delays = [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 30]
    shared = _Shared(delays, 6, read)
    top, rst = _with_sync(shared.module())
    rng = random.Random(5)
    cycles = 120
    inputs = [rng.randrange(64) for _ in range(cycles)]
    resets = {0, 41, 44}
    expect = {n: _model(inputs, n, resets) for n in delays}

    async def tb(ctx):
        for t, value in enumerate(inputs):
            ctx.set(rst, int(t in resets))
            for line in shared.lines:
                ctx.set(line.i, value)
            if t not in resets:
                for line in shared.lines:
                    assert ctx.get(line.o) == expect[line.delay][t], (t, line.delay)
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_timebase_thermometer():
    tbase = DelayTimebase(max_delay=5)
    assert tbase.ptr_width == 3

    async def tb(ctx):
        for t in range(9):
            assert ctx.get(tbase.primed) == (1 << (min(t, 5) + 1)) - 1, t
            assert ctx.get(tbase.ptr) == t % 8
            await ctx.tick()

    sim = Simulator(tbase)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_bad_parameters():
    with pytest.raises(TypeError, match="width"):
        DelayLine(width=3.0, delay=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay"):
        DelayLine(width=3, delay=-1)
    with pytest.raises(ValueError, match="ungated"):
        DelayLine(width=3, delay=4, ungated=4)
    with pytest.raises(ValueError, match="read"):
        DelayLine(width=3, delay=4, read="comb")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ptr_width"):
        DelayLine(width=3, delay=17, ptr_width=4)
    with pytest.raises(ValueError, match="max_delay"):
        DelayTimebase(max_delay=0)


def _quiet(line: DelayLine) -> DelayLine:
    Fragment.get(line, None)  # elaborated (cheap): a line only looked at would warn "never used"
    return line


def test_memory_kinds_and_depths():
    assert [delay_line_kind(n) for n in (0, 2, 3, 64, 65)] == ["registers", "registers", "async", "async", "sync"]
    assert _quiet(DelayLine(width=4, delay=3)).depth == 4
    assert _quiet(DelayLine(width=4, delay=16)).depth == 16
    assert _quiet(DelayLine(width=4, delay=17)).depth == 32
    assert _quiet(DelayLine(width=4, delay=2)).depth == 0


# ---- the systolic array: delay-line skew == register skew, cycle by cycle, across resets ----------

@pytest.mark.parametrize("b,d", [(2, 4), (3, 5), (4, 8)])
def test_array_skews_are_equivalent(b, d):
    """Random raw beats (any op, any payload, random valid) and reset pulses into the array with the
    delay-line skew and with the register triangles: every output port is equal in every cycle
    (the result/output payloads whenever their valid is set; they are only defined then)."""
    from golden.systolic import SystolicConfig
    from hdl.systolic_array import SystolicArray, beat_layout

    cfg = SystolicConfig(b=b, d=d)
    mem, reg = SystolicArray(cfg=cfg, skew="memory"), SystolicArray(cfg=cfg, skew="registers")
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.mem, m.submodules.reg = mem, reg
    nbits = beat_layout(cfg).size
    rng = random.Random(b * 100 + d)
    cycles = 60 * (b + d)
    resets = {0, 1} | {rng.randrange(10, cycles) for _ in range(3)}
    compared = [0, 0]

    async def tb(ctx):
        for t in range(cycles):
            ctx.set(cd.rst, int(t in resets))
            valid, raw = int(rng.random() < 0.8), rng.getrandbits(nbits)
            for dut in (mem, reg):
                ctx.set(dut.i.valid, valid)
                ctx.set(dut.i.payload.as_value(), raw)
            for name in ("overflow", "residual_overflow", "protocol_error"):
                assert ctx.get(getattr(mem, name)) == ctx.get(getattr(reg, name)), (t, name)
            assert ctx.get(mem.i.ready) == ctx.get(reg.i.ready), t
            for k, port in enumerate(("res", "out")):
                a, r = getattr(mem, port), getattr(reg, port)
                assert ctx.get(a.valid) == ctx.get(r.valid), (t, port)
                if ctx.get(r.valid):
                    assert ctx.get(a.payload.as_value()) == ctx.get(r.payload.as_value()), (t, port)
                    compared[k] += 1
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert compared[0] > 10 and compared[1] > 0, compared   # results and outputs were compared


def test_array_skew_parameter_is_checked():
    from golden.systolic import SystolicConfig
    from hdl.systolic_array import SystolicArray

    with pytest.raises(ValueError, match="skew='flops'"):
        SystolicArray(cfg=SystolicConfig(b=2, d=4), skew="flops")
