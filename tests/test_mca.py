# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the MCA unit against golden.mca.mca_encode_fixed (== everywhere)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.mca import (
    PRNG_WARMUP,
    MCAFormats,
    make_sampling_table,
    mca_encode_fixed,
    sample_counts_fixed,
    theorem2_bound,
    xorshift32_draws,
)
from golden.reference import softmax
from hdl.checked import inspect_only
from hdl.mca import Mca, SampleCount
from hdl.registry import ParamError, get_block
from hdl.softmax_pv import SoftmaxPV

FMTS = MCAFormats()


def make_case(rng: np.random.Generator, m: int, n: int, d_in: int, d: int, alpha: float = 0.5,
              a_scale: float = 2.0, seed: int = 1, zero_row: int | None = None) -> dict:
    w = rng.normal(size=(d_in, d)) * rng.uniform(0.2, 1.5, size=(d_in, 1)) / 4
    if zero_row is not None:
        w[zero_row] = 0.0
    table = make_sampling_table(w, cdf_bits=16, ws_width=18)
    x = rng.normal(size=(n, d_in))
    a = softmax(rng.normal(size=(m, n)) * a_scale)
    return {"w": w, "table": table, "x_raw": FMTS.token_fmt.quantize(x), "a_raw": FMTS.a_fmt.quantize(a),
            "bias_raw": FMTS.h_fmt.quantize(rng.normal(size=d) / 4), "alpha": alpha, "seed": seed}


def golden(case: dict):
    return mca_encode_fixed(case["x_raw"], case["a_raw"], case["table"], case["alpha"], case["seed"],
                            case["bias_raw"], FMTS)


def dut_for(case: dict, lanes: int = 2, n_max: int = 8, m_max: int = 8) -> Mca:
    t = case["table"]
    return Mca(d_in=t.d_in, d_h=t.ws_raw.shape[1], n_max=n_max, m_max=m_max, lanes=lanes,
               ws_frac=t.ws_fmt.frac)


def run_mca(dut: Mca, cases: list[dict], stall: float = 0.0, seed: int = 0) -> list[dict]:
    """Run the heads of ``cases`` back to back (one sequential driver; random valid gaps and o
    stalls); returns per head the output rows, the probed H̃ rows, flags, samples and cycles."""
    rng = random.Random(seed)
    L, d = dut.lanes, dut.d_h
    results: list[dict] = []
    h_rows: list[list[int]] = []

    async def put(ctx, port, payload, deadline=20_000):
        while stall and rng.random() < stall:
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        for _ in range(deadline):
            _, _, ready = await ctx.tick().sample(port.ready)
            if ready:
                break
        else:
            raise AssertionError("timeout: stream not ready")
        ctx.set(port.valid, 0)

    async def main(ctx):
        for case in cases:
            t = case["table"]
            x, a = case["x_raw"], case["a_raw"]
            mm, n = a.shape
            ctx.set(dut.seed, case["seed"])
            ctx.set(dut.inv_alpha, FMTS.inv_alpha_raw(case["alpha"]))
            ctx.set(dut.n_keys, n)
            ctx.set(dut.n_queries, mm)
            start = h_len = len(h_rows)
            cycles0 = ctx.get(cycle_count)
            for v in t.cdf:
                await put(ctx, dut.cdf, int(v))
            for row in t.ws_raw:
                await put(ctx, dut.ws, [int(v) for v in row])
            await put(ctx, dut.bias, [int(v) for v in case["bias_raw"]])
            for j in range(n):
                for i in range(mm):
                    await put(ctx, dut.a, int(a[i, j]))
            for j in range(n):
                for v in x[j]:
                    await put(ctx, dut.x, int(v))
            out, row = [], []
            for _ in range(50_000):
                ready = 0 if (stall and rng.random() < stall) else 1
                ctx.set(dut.o.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                if ready and valid:
                    row += [int(v) for v in payload]
                    if len(row) == d:
                        out.append(row)
                        row = []
                        if len(out) == mm:
                            break
            else:
                raise AssertionError("timeout waiting for o")
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            del h_len
            results.append({
                "y": np.array(out), "h": np.array(h_rows[start:start + n]),
                "samples": ctx.get(dut.samples_total), "cycles": ctx.get(cycle_count) - cycles0,
                "flags": {"acc_overflow": bool(ctx.get(dut.acc_overflow)), "h_overflow": bool(ctx.get(dut.h_overflow)),
                          "out_overflow": bool(ctx.get(dut.out_overflow))},
            })
            for _ in range(4):
                if ctx.get(dut.idle):
                    break
                await ctx.tick()
            assert ctx.get(dut.idle), "not idle after the head"

    from amaranth.hdl import Signal
    cycle_count = Signal(32)

    async def count(ctx):
        async for _ in ctx.tick():
            ctx.set(cycle_count, ctx.get(cycle_count) + 1)

    async def probe(ctx):
        back_v = dut._probe_v
        row: list[int] = []
        async for _clk, _rst, valid, ready, payload in ctx.tick().sample(back_v.valid, back_v.ready, back_v.payload):
            if valid and ready:
                row += [int(v) for v in payload]
                if len(row) == d:
                    h_rows.append(row)
                    row = []

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(main)
    sim.add_testbench(count, background=True)
    sim.add_testbench(probe, background=True)
    sim.run()
    del L
    return results


def check(res: dict, want) -> None:
    assert np.array_equal(res["h"], want.h_raw), "H̃ mismatch"
    assert np.array_equal(res["y"], want.y_raw), "Y mismatch"
    assert res["samples"] == int(want.r.sum())
    assert res["flags"] == want.flags


def test_latency_constants():
    case = make_case(np.random.default_rng(0), 2, 2, 16, 4)
    dut = dut_for(case)
    assert Mca.R_LATENCY == 10 and Mca.CYCLES_PER_SAMPLE == 1
    assert dut.search_steps == 4 and dut.sample_latency == 1 + 2 * 4 + 5
    assert SoftmaxPV.PV_LATENCY == 4


@pytest.mark.parametrize("m,n,d_in,d,lanes,stall", [(3, 4, 16, 4, 2, 0.0), (2, 5, 12, 6, 3, 0.3),
                                                    (1, 1, 5, 2, 1, 0.2), (4, 3, 9, 4, 4, 0.25)])
def test_heads_bit_exact(m, n, d_in, d, lanes, stall):
    rng = np.random.default_rng(m * 100 + n * 10 + d_in)
    case = make_case(rng, m, n, d_in, d, seed=int(rng.integers(1, 1 << 32)))
    case2 = {**make_case(rng, m, n, d_in, d), "table": case["table"], "seed": 12345}
    dut = dut_for(case, lanes=lanes)
    res = run_mca(dut, [case, case2], stall=stall, seed=n)
    for r, c in zip(res, (case, case2), strict=True):
        check(r, golden(c))


def test_directed_r_extremes_zero_row_and_seeds():
    rng = np.random.default_rng(3)
    base = make_case(rng, 3, 4, 10, 4, zero_row=2)
    assert base["table"].counts[2] == 0
    n = 4
    r_one = {**base, "a_raw": np.full((3, n), 1, dtype=np.int64)}            # column max tiny: r = 1
    r_full = {**base, "a_raw": np.full((3, n), FMTS.a_fmt.max_int), "alpha": 1.0}  # r = d_in
    same = {**base, "seed": 99}
    other = {**base, "seed": 100}
    cases = [r_one, r_full, same, same, other]
    dut = dut_for(base)
    res = run_mca(dut, cases, stall=0.1, seed=4)
    wants = [golden(c) for c in cases]
    for r, w in zip(res, wants, strict=True):
        check(r, w)
    assert np.all(wants[0].r == 1) and np.all(wants[1].r == 10)
    for w in wants:
        assert 2 not in w.indices   # the all-zero weight row is never drawn
    assert np.array_equal(res[2]["y"], res[3]["y"]) and np.array_equal(res[2]["h"], res[3]["h"])
    assert not np.array_equal(res[3]["h"], res[4]["h"])
    # the RTL's sample stream follows the golden PRNG: warm-up then one state per sample
    states = xorshift32_draws(99, PRNG_WARMUP + int(wants[2].r.sum()))
    assert states.shape[0] == PRNG_WARMUP + res[2]["samples"]


def test_one_sample_per_cycle():
    """Without stalls, a head with r = d_in everywhere takes exactly n·(d_in − 1) cycles more than
    the same head with r = 1 everywhere: the sampler draws CYCLES_PER_SAMPLE = 1 sample per cycle."""
    rng = np.random.default_rng(6)
    base = make_case(rng, 2, 3, 12, 4)
    r_one = {**base, "a_raw": np.full((2, 3), 1, dtype=np.int64)}
    r_full = {**base, "a_raw": np.full((2, 3), FMTS.a_fmt.max_int), "alpha": 1.0}
    # (the simulation's first head is measured from time 0, one cycle shorter: compare heads 2, 3)
    res = run_mca(dut_for(base), [r_one, r_one, r_full])
    for r, c in zip(res, (r_one, r_one, r_full), strict=True):
        check(r, golden(c))
    assert res[1]["samples"] == 3 and res[2]["samples"] == 3 * 12
    assert res[2]["cycles"] - res[1]["cycles"] == 3 * (12 - 1) * Mca.CYCLES_PER_SAMPLE


def test_overflow_flags():
    rng = np.random.default_rng(5)
    case = make_case(rng, 2, 3, 8, 4)
    case["bias_raw"] = np.full(4, FMTS.h_fmt.max_int)   # bias add saturates
    want = golden(case)
    assert want.flags["h_overflow"]
    res = run_mca(dut_for(case), [case])
    check(res[0], want)


def test_unbiased_over_seeds_on_rtl_outputs():
    """200 seeds on one small head: the mean of the RTL's H̃ approaches X·W + b (z-test, as the
    golden test), and the mean error of its Y stays within Theorem 2's bound αβ‖W‖_F per row."""
    rng = np.random.default_rng(11)
    base = make_case(rng, 2, 3, 8, 2, alpha=0.8, a_scale=0.5)
    seeds = list(range(1, 201))
    cases = [{**base, "seed": s} for s in seeds]
    dut = dut_for(base, lanes=2)
    res = run_mca(dut, cases)
    wants = [golden(c) for c in cases[:5]]
    for r, w in zip(res[:5], wants, strict=True):
        check(r, w)
    x = FMTS.token_fmt.to_float(base["x_raw"])
    w_true = base["w"]
    b = FMTS.h_fmt.to_float(base["bias_raw"])
    exact_h = x @ w_true + b
    h = np.array([FMTS.h_fmt.to_float(r["h"]) for r in res])
    sem = h.std(axis=0) / math.sqrt(len(seeds))
    z = np.abs(h.mean(axis=0) - exact_h) / (sem + 2 * FMTS.h_fmt.lsb)
    assert np.max(z) < 4.5
    a = FMTS.a_fmt.to_float(base["a_raw"])
    y = np.array([FMTS.out_fmt.to_float(r["y"]) for r in res])
    err = np.linalg.norm(y - a @ (x @ w_true + b), axis=2)
    assert np.all(err.mean(axis=0) <= theorem2_bound(x, w_true, base["alpha"]))


@pytest.mark.parametrize("kwargs,exc,word", [
    ({"d_h": 6, "lanes": 4}, ValueError, "lanes"),
    ({"d_in": 0}, ValueError, "d_in"),
    ({"n_max": "8"}, TypeError, "n_max"),
    ({"cdf_bits": 40}, ValueError, "cdf_bits"),
    ({"d_in": 5000}, ValueError, "d_in"),
])
def test_bad_parameters(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        Mca(**kwargs)


def test_registry():
    with pytest.raises(ParamError, match="lanes"):
        get_block("mca").elaborate({"d_h": 6, "lanes": 4})
    dut, params = get_block("mca").elaborate({})
    inspect_only(dut)
    assert isinstance(dut, Mca) and params["d_in"] == 16


@pytest.mark.parametrize("n_keys,n_queries", [(0, 2), (9, 2), (3, 0), (3, 9)])
def test_config_error(n_keys, n_queries):
    """n_keys or n_queries outside [1, n_max] / [1, m_max]: config_error, no stream taken."""
    case = make_case(np.random.default_rng(0), 2, 2, 8, 4)
    dut = dut_for(case)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.n_keys, n_keys)
        ctx.set(dut.n_queries, n_queries)
        for port in (dut.cdf, dut.ws, dut.bias, dut.a):
            ctx.set(port.valid, 1)
        for _ in range(5):
            await ctx.tick()
        seen["error"] = ctx.get(dut.config_error)
        seen["ready"] = any(ctx.get(p.ready) for p in (dut.cdf, dut.ws, dut.bias, dut.a))
        ctx.set(dut.n_keys, 2)
        ctx.set(dut.n_queries, 2)
        await ctx.tick()
        await ctx.tick()
        seen["cleared"] = ctx.get(dut.config_error)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == {"error": 1, "ready": False, "cleared": 0}


@pytest.mark.parametrize("n,alpha,gap", [(7, 0.5, 0), (16, 0.05, 1), (3, 1.0, 0)])
def test_sample_count_alone_bit_exact(n, alpha, gap):
    """SampleCount (r_j from the column maximum) alone: one column per cycle (gap 0) or with idle
    cycles, every r written to its column LATENCY edges after ``go``, equal to sample_counts_fixed
    (random maxima plus 0, 1 and the format's maximum, i.e. r = 1 and saturation to d_in)."""
    from tests.amaranth_helpers import run_sim

    d_in = 4000
    rng = np.random.default_rng(n)
    # random maxima mostly giving 1 < r < d_in (√r = n·cm/α up to ~70)
    hi = min(FMTS.a_fmt.max_int, int(alpha * 70 / n * (1 << FMTS.a_fmt.frac)))
    cms = np.concatenate([[0, 1, FMTS.a_fmt.max_int], rng.integers(0, hi + 1, n - 3)])[:n]
    want = sample_counts_fixed(cms.reshape(1, -1), alpha, d_in, FMTS)
    assert ((want > 1) & (want < d_in)).sum() >= (n - 3) // 2
    dut = SampleCount(d_in=d_in, n_max=16, fmts=FMTS)
    writes: list[tuple[int, int, int]] = []

    async def tb(ctx):
        ctx.set(dut.inv_alpha, FMTS.inv_alpha_raw(alpha))
        ctx.set(dut.n_keys, n)
        cycle, j = 0, 0
        while cycle < 200 and len(writes) < n:       # deadline: 200 cycles
            go = j < n and cycle % (gap + 1) == 0
            ctx.set(dut.go, go)
            if go:
                ctx.set(dut.col, j)
                ctx.set(dut.cm, int(cms[j]))
            if ctx.get(dut.w_en):
                writes.append((cycle, ctx.get(dut.w_addr), ctx.get(dut.r)))
            # busy: a column in the pipeline (issued at an earlier edge, its write not yet past)
            assert ctx.get(dut.busy) == (j - len(writes) + ctx.get(dut.w_en) > 0)
            await ctx.tick()
            j += go
            cycle += 1

    run_sim(dut, tb)
    assert [(a, r) for _, a, r in writes] == [(j, int(want[j])) for j in range(n)]
    assert [c for c, _, _ in writes] == [j * (gap + 1) + SampleCount.LATENCY for j in range(n)]
    assert Mca.R_LATENCY == SampleCount.LATENCY


def test_head_dimension_name_and_chunks():
    """The head dimension is ``d_h`` (the README vocabulary) and LaneSplit finds it: chunks =
    d_h / lanes; the registry refuses the old name ``d``."""
    dut = inspect_only(Mca(d_in=8, d_h=12, lanes=3))
    assert dut.d_h == 12 and dut.chunks == 4
    with pytest.raises(ParamError, match="d_h"):
        get_block("mca").elaborate({"d": 4})
