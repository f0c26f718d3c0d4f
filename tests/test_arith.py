"""Amaranth-simulator tests of the shared exp and reciprocal units against golden.lut."""

import gc

import numpy as np
import pytest

from golden.fixed import QFormat, Rounding
from golden.lut import ExpSpec, RecipSpec
from hdl.arith import ExpUnit, ReciprocalApply, ReciprocalLookup, ReciprocalScaler
from sim.tbutil import CycleDeadline, Scoreboard
from tests.amaranth_helpers import SimDeadlineError, run_sim


def _drive_pipeline(dut, inputs: list[dict], outputs: list[str], latency: int, stall_every: int = 0,
                    expect: int | None = None):
    """Feed one input per cycle (optionally dropping en every few cycles); collect outputs when
    valid_out; also check the first output appears exactly ``latency`` enabled cycles later.

    Expects ``expect`` outputs (default: one per input) within a cycle deadline, then watches
    ``latency + 4`` more enabled cycles so that an extra output fails too."""
    board = Scoreboard("valid_out", len(inputs) if expect is None else expect)
    first_valid_cycle = []
    # one result per input after `latency` enabled cycles; stalls at most double the cycle count
    deadline = CycleDeadline(4 * (len(inputs) + latency) + 16, f"{board.expected} valid_out results")

    def sample(ctx):
        return tuple(ctx.get(getattr(dut, o)) for o in outputs)

    async def tb(ctx):
        cycle = 0
        enabled_cycles = 0
        pending = list(inputs)
        while not board.complete:
            stall = stall_every and cycle % stall_every == stall_every - 1
            ctx.set(dut.en, 0 if stall else 1)
            if pending and not stall:
                for k, v in pending.pop(0).items():
                    ctx.set(getattr(dut, k), v)
                ctx.set(dut.valid_in, 1)
            elif not stall:
                ctx.set(dut.valid_in, 0)
            await ctx.tick()
            deadline.tick(f"got {len(board.items)}")
            cycle += 1
            if not stall:
                enabled_cycles += 1
            if ctx.get(dut.valid_out) and not stall:
                if not first_valid_cycle:
                    first_valid_cycle.append(enabled_cycles)
                board.add(sample(ctx))
        ctx.set(dut.en, 1)
        ctx.set(dut.valid_in, 0)
        for _ in range(latency + 4):  # nothing may follow the last expected result
            await ctx.tick()
            if ctx.get(dut.valid_out):
                board.add(sample(ctx))

    run_sim(dut, tb)
    board.check_complete()
    return board.items, first_valid_cycle[0]


@pytest.mark.parametrize("stall_every", [0, 3])
def test_exp_unit_matches_golden(stall_every):
    spec = ExpSpec(QFormat(12, 6), QFormat(16, 12, signed=False), lut_bits=6, lut_frac=14)
    rng = np.random.default_rng(1)
    xs = np.concatenate([[spec.in_fmt.min_int, spec.in_fmt.max_int, 0, -1, 1, 177, 178],
                         rng.integers(spec.in_fmt.min_int, spec.in_fmt.max_int + 1, 120)])
    dut = ExpUnit(spec=spec)
    got, first = _drive_pipeline(dut, [{"x": int(x)} for x in xs], ["y", "overflow"], ExpUnit.LATENCY,
                                 stall_every)
    want_y, want_over = spec(xs)
    assert first == ExpUnit.LATENCY
    assert [g[0] for g in got] == want_y.tolist()
    assert [bool(g[1]) for g in got] == want_over.tolist()
    assert any(want_over) and not all(want_over)  # saturation exercised


@pytest.mark.parametrize("rounding", [Rounding.HALF_UP, Rounding.TRUNCATE])
def test_reciprocal_scaler_matches_golden(rounding):
    spec = RecipSpec(QFormat(14, 3, signed=False), lut_bits=5, mant_bits=12)
    vfmt = QFormat(16, 8)
    ofmt = QFormat(12, 8, rounding=rounding)
    rng = np.random.default_rng(2)
    dens = np.concatenate([[0, 1, 2, 3, spec.den_fmt.max_int, 1 << 13, 31, 33],
                           rng.integers(0, spec.den_fmt.max_int + 1, 100)])
    vals = np.concatenate([[vfmt.min_int, vfmt.max_int, -1, 5, 100, vfmt.min_int, 77, -77],
                           rng.integers(vfmt.min_int, vfmt.max_int + 1, 100)])
    dut = ReciprocalScaler(spec=spec, value_fmt=vfmt, out_fmt=ofmt)
    got, first = _drive_pipeline(
        dut, [{"value": int(v), "den": int(d)} for v, d in zip(vals, dens, strict=True)],
        ["result", "overflow", "div_by_zero"], ReciprocalScaler.LATENCY, stall_every=4)
    want, over, zero = spec.scale(vals, vfmt.frac, dens, ofmt)
    assert first == ReciprocalScaler.LATENCY
    assert [g[0] for g in got] == want.tolist()
    assert [bool(g[1]) for g in got] == over.tolist()
    assert [bool(g[2]) for g in got] == zero.tolist()


def test_recip_exact_for_small_counts():
    """Counts below 2**(lut_bits+1) are represented exactly, so v/c is correctly rounded."""
    spec = RecipSpec(QFormat(10, 0, signed=False), lut_bits=9, mant_bits=20)
    counts = np.arange(1, 1 << 10)
    vals = np.full_like(counts, 1000)
    res, _, _ = spec.scale(vals, 0, counts, QFormat(16, 4))
    exact = np.floor(1000 * 16 / counts + 0.5)
    assert np.array_equal(res, exact.astype(np.int64))


def test_bad_specs_rejected():
    with pytest.raises(ValueError, match="unsigned"):
        ExpSpec(QFormat(12, 6), QFormat(16, 12))
    with pytest.raises(ValueError, match="lut_bits"):
        RecipSpec(QFormat(10, 0, signed=False), lut_bits=0)
    with pytest.raises(TypeError, match="spec"):
        ExpUnit(spec=None)


def test_shared_reciprocal_scaler_lanes_match_golden():
    """Three lanes divided by one denominator (one lookup, three multipliers) == golden per lane."""
    from hdl.arith import SharedReciprocalScaler

    spec = RecipSpec(QFormat(14, 3, signed=False), lut_bits=5, mant_bits=12)
    vfmt, ofmt = QFormat(16, 8), QFormat(12, 8)
    rng = np.random.default_rng(3)
    dens = np.concatenate([[0, 1, spec.den_fmt.max_int], rng.integers(0, spec.den_fmt.max_int + 1, 60)])
    vals = rng.integers(vfmt.min_int, vfmt.max_int + 1, (len(dens), 3))
    vals[1] = [vfmt.min_int, vfmt.max_int, 0]
    dut = SharedReciprocalScaler(spec=spec, value_fmt=vfmt, out_fmt=ofmt, lanes=3)
    assert SharedReciprocalScaler.LATENCY == ReciprocalScaler.LATENCY
    # lookup: detect, index register, ROM address register, ROM word, outputs; then the apply
    assert ReciprocalLookup.LATENCY == 5 and ReciprocalScaler.LATENCY == 5 + ReciprocalApply.LATENCY == 10
    got, first = _drive_pipeline(
        dut, [{"value": [int(v) for v in row], "den": int(d)} for row, d in zip(vals, dens, strict=True)],
        ["result", "overflow", "div_by_zero"], SharedReciprocalScaler.LATENCY, stall_every=5)
    assert first == SharedReciprocalScaler.LATENCY
    assert len(got) == len(dens)
    for lane in range(3):
        want, over, zero = spec.scale(vals[:, lane], vfmt.frac, dens, ofmt)
        assert [g[0][lane] for g in got] == want.tolist(), f"lane {lane}"
        assert [(g[1] >> lane) & 1 for g in got] == over.astype(int).tolist(), f"lane {lane} overflow"
        assert [bool(g[2]) for g in got] == zero.tolist()


def _exp_inputs(n: int) -> tuple[ExpSpec, list[dict]]:
    spec = ExpSpec(QFormat(12, 6), QFormat(16, 12, signed=False), lut_bits=6, lut_frac=14)
    return spec, [{"x": x} for x in range(n)]


def test_missing_output_fails_within_the_deadline():
    """A checker expecting one result more than the DUT produces fails with a timeout, not a hang."""
    spec, inputs = _exp_inputs(10)
    with pytest.raises(AssertionError, match=r"timeout: waited \d+ cycles for 11 valid_out results \(got 10\)"):
        _drive_pipeline(ExpUnit(spec=spec), inputs, ["y"], ExpUnit.LATENCY, expect=len(inputs) + 1)


def test_extra_output_fails_as_it_arrives():
    spec, inputs = _exp_inputs(10)
    with pytest.raises(AssertionError, match="item 10 arrived after the last expected one"):
        _drive_pipeline(ExpUnit(spec=spec), inputs, ["y"], ExpUnit.LATENCY, expect=len(inputs) - 1)


# the abandoned testbench coroutine complains when garbage-collected; the failure itself is the point
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_run_sim_deadline_ends_a_stuck_testbench():
    spec, _ = _exp_inputs(0)
    dut = ExpUnit(spec=spec)

    async def tb(ctx):
        await ctx.tick().until(dut.valid_out)  # valid_in never set: would wait forever

    with pytest.raises(SimDeadlineError, match="deadline_cycles=50"):
        run_sim(dut, tb, deadline_cycles=50)
    gc.collect()  # collect the abandoned coroutine here, under this test's filter
