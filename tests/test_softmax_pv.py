"""The shared back end hdl.softmax_pv.SoftmaxPV on its own: both modes bit-exact, exact row cycles."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.fixed import QFormat, requantize
from golden.softmax_pv import SoftmaxPVFormats, encode_scale, softmax_pv_fixed, weighted_sum_fixed
from hdl.arith import ExpUnit, ReciprocalScaler
from hdl.softmax_pv import Normalizer, ProbNormalizer, PVAccumulator, ScoreExp, SoftmaxPV
from tests.amaranth_helpers import run_sim, wait_until


def run_backend(dut: SoftmaxPV, w: np.ndarray, v: np.ndarray, mant: int = 0, shift: int = 0,
                stall: float = 0.0, seed: int = 0) -> tuple[np.ndarray, list[int], int]:
    """Load V, send the rows of ``w`` (scores or probabilities); returns (outputs, per-row cycles
    from the first score accepted to the cycle after the last output beat, overflow)."""
    rng = random.Random(seed)
    m, n = w.shape
    L, d = dut.lanes, dut.d
    res: dict = {"out": [], "row_cycles": []}

    async def main(ctx):
        ctx.set(dut.n_keys, n)
        ctx.set(dut.n_rows, m)
        if dut.fmts.softmax:
            ctx.set(dut.scale_mant, mant)
            ctx.set(dut.scale_shift, shift)
        for row in v:
            for c in range(0, d, L):
                while stall and rng.random() < stall:
                    await ctx.tick()
                ctx.set(dut.v.valid, 1)
                ctx.set(dut.v.payload, [int(x) for x in row[c:c + L]])
                await wait_until(ctx, dut.v.ready, 10_000, "v.ready")
                ctx.set(dut.v.valid, 0)
        for i in range(m):
            start = None
            cycles = 0
            for j in range(n):
                while stall and rng.random() < stall:
                    await ctx.tick()
                    cycles += 1
                ctx.set(dut.s.valid, 1)
                ctx.set(dut.s.payload, int(w[i, j]))
                for _ in range(10_000):
                    _, _, ready = await ctx.tick().sample(dut.s.ready)
                    if start is None and ready:
                        start = 0
                    if start is not None:
                        cycles += 1
                    if ready:
                        break
                else:
                    raise AssertionError("timeout: s not ready")
                ctx.set(dut.s.valid, 0)
            row: list[int] = []
            for _ in range(10_000):
                ready = 0 if (stall and rng.random() < stall) else 1
                ctx.set(dut.o.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                cycles += 1
                if ready and valid:
                    row += [int(x) for x in payload]
                    if len(row) == d:
                        break
            else:
                raise AssertionError("timeout waiting for o")
            ctx.set(dut.o.ready, 0)
            res["out"].append(row)
            res["row_cycles"].append(cycles)
        res["overflow"] = ctx.get(dut.overflow)

    run_sim(dut, main, deadline_cycles=200_000)
    return np.array(res["out"]), res["row_cycles"], res["overflow"]


def test_latency_constants():
    assert ScoreExp.LATENCY == 7 + ExpUnit.LATENCY == 12 and SoftmaxPV.EXP_LATENCY == 13
    assert PVAccumulator.LATENCY == 3 and SoftmaxPV.PV_LATENCY == 4 and SoftmaxPV.PROB_NORM_LATENCY == 1
    assert Normalizer.LATENCY == ReciprocalScaler.LATENCY
    assert ProbNormalizer.LATENCY == SoftmaxPV.PROB_NORM_LATENCY
    dut = SoftmaxPV(d=8, lanes=4, fmts=SoftmaxPVFormats(8))
    Fragment.get(dut, None)  # built and elaborated: no unused-elaboratable warning
    assert dut.norm_latency == ReciprocalScaler.LATENCY
    assert dut.row_cycles(5) == 5 + (5 + 13 + 1) + (5 * 2 + 4 + 1) + (2 + 10)


@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("n,lanes", [(1, 2), (5, 4), (8, 1)])
def test_bit_exact_and_exact_row_cycles(softmax, n, lanes):
    rng = np.random.default_rng(n * 10 + lanes)
    f = SoftmaxPVFormats(8, score_width=20, softmax=softmax)
    dut = SoftmaxPV(d=8, lanes=lanes, fmts=f)
    m = 3
    v = rng.integers(-3000, 3000, (n, 8))
    if softmax:
        w = rng.integers(-20000, 20000, (m, n))
        mant, shift = encode_scale(1 / 4000, f)
        want = softmax_pv_fixed(w, v, mant, shift, f)
    else:
        w = rng.integers(0, 1 << 15, (m, n))
        mant = shift = 0
        want = weighted_sum_fixed(w, v, f)
    out, cycles, over = run_backend(dut, w, v, mant, shift)
    assert np.array_equal(out, want.out)
    assert over == int(want.overflow.any())
    assert cycles == [dut.row_cycles(n)] * m


@pytest.mark.parametrize("softmax", [True, False])
def test_stalls_and_saturation(softmax):
    rng = np.random.default_rng(4)
    f = SoftmaxPVFormats(6, score_width=16, softmax=softmax, out_fmt=QFormat(12, 6))
    dut = SoftmaxPV(d=4, lanes=2, fmts=f)
    v = rng.integers(-30000, 30000, (6, 4))
    if softmax:
        w = rng.integers(-3000, 3000, (4, 6))
        mant, shift = encode_scale(1 / 500, f)
        want = softmax_pv_fixed(w, v, mant, shift, f)
    else:
        w = rng.integers(0, 1 << 15, (4, 6))
        mant = shift = 0
        want = weighted_sum_fixed(w, v, f)
    assert want.overflow.any()
    out, _, over = run_backend(dut, w, v, mant, shift, stall=0.3, seed=2)
    assert np.array_equal(out, want.out) and over == 1


@pytest.mark.parametrize("n,lanes", [(1, 4), (3, 2), (5, 1)])
def test_load_takes_exactly_n_keys_chunks_back_to_back(n, lanes):
    """With V offered every cycle from reset, LOAD takes a beat at each of the first n_keys·C
    edges (no bubble: ``v.ready`` is high from the first cycle) and not one more, however long
    ``v.valid`` stays high (``v.ready`` comes from a register holding the count compare)."""
    dut = SoftmaxPV(d=4, lanes=lanes, fmts=SoftmaxPVFormats(8, softmax=False))
    taken: list[int] = []

    async def bench(ctx):
        ctx.set(dut.n_keys, n)
        ctx.set(dut.n_rows, 1)
        ctx.set(dut.v.valid, 1)
        for cycle in range(3 * n * dut.chunks + 8):
            ctx.set(dut.v.payload, [cycle % 7] * lanes)
            _, _, ready = await ctx.tick().sample(dut.v.ready)
            if ready:
                taken.append(cycle)

    run_sim(dut, bench, deadline_cycles=1_000)
    assert taken == list(range(n * dut.chunks))


@pytest.mark.parametrize("kwargs,exc,word", [
    ({"d": 6, "lanes": 4, "fmts": SoftmaxPVFormats(4)}, ValueError, "lanes"),
    ({"d": 0, "lanes": 1, "fmts": SoftmaxPVFormats(4)}, ValueError, "d"),
    ({"d": 4, "lanes": 1, "fmts": None}, TypeError, "fmts"),
])
def test_bad_parameters(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        SoftmaxPV(**kwargs)
    with pytest.raises(ValueError, match="n_max"):
        SoftmaxPVFormats(0)
    with pytest.raises(ValueError, match="score_width"):
        SoftmaxPVFormats(4, score_width=60)


@pytest.mark.parametrize("rounding_fmt", [QFormat(12, 6), QFormat(8, 2)])
def test_prob_normalizer_alone_matches_golden_requantize(rounding_fmt):
    """Probability-mode NORM on its own: chunk ``c``'s lanes of the accumulators, requantized to
    ``out_fmt`` (golden ``requantize``: rounding shift and saturation) LATENCY edges after
    ``valid_in``; ``en`` low freezes the result and the valid flag (output back-pressure)."""
    f = SoftmaxPVFormats(6, softmax=False, out_fmt=rounding_fmt)
    d, lanes = 6, 2
    dut = ProbNormalizer(acc_fmt=f.acc_fmt, out_fmt=f.out_fmt, d=d, lanes=lanes)
    rng = np.random.default_rng(rounding_fmt.width)
    lo, hi = f.acc_fmt.min_int, f.acc_fmt.max_int
    shift = f.acc_fmt.frac - f.out_fmt.frac
    assert shift > 0  # rounding bits exist
    # mostly in the output's range (rounding matters: half-way low bits included), two saturating
    acc = (rng.integers(f.out_fmt.min_int, f.out_fmt.max_int, d) << shift) + rng.integers(0, 1 << shift, d)
    acc[2] = (3 << shift) + (1 << (shift - 1))  # exactly half-way: rounds up
    acc[:2] = [lo, hi]
    want_out, want_over = requantize(acc, f.acc_fmt.frac, f.out_fmt)
    seen: list = []

    async def bench(ctx):
        ctx.set(dut.acc, [int(x) for x in acc])
        for c in range(d // lanes):
            ctx.set(dut.chunk, c)
            ctx.set(dut.valid_in, 1)
            await ctx.tick()
            ctx.set(dut.valid_in, 0)
            ctx.set(dut.chunk, (c + 1) % (d // lanes))  # the input moves on while en is low
            ctx.set(dut.en, 0)
            await ctx.tick().repeat(2)
            ctx.set(dut.en, 1)
            seen.append((ctx.get(dut.valid_out), [ctx.get(dut.result[i]) for i in range(lanes)],
                         ctx.get(dut.overflow)))
            await ctx.tick()
            assert ctx.get(dut.valid_out) == 0

    run_sim(dut, bench, deadline_cycles=64)
    assert seen == [(1, [int(x) for x in want_out[c * lanes:(c + 1) * lanes]],
                     int(want_over[c * lanes:(c + 1) * lanes].any())) for c in range(d // lanes)]
