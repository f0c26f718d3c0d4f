"""Amaranth-simulator tests of the E-ATT unit (eatt_align, the shared back end, the whole head)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.eatt import EattFormats, eatt, eatt_score_scale
from golden.fixed import QFormat
from golden.reference import HeadInputs
from golden.softmax_pv import encode_scale
from hdl.eatt import Eatt, EattAlign, EattL1, EattSelectSum, tree_stages
from hdl.registry import ParamError, get_block
from sim.tb_eatt import eatt_golden as golden
from sim.tb_eatt import random_case
from tests.amaranth_helpers import run_sim


def _feeder(rng: random.Random, stall: float):
    async def feed(ctx, port, payloads):
        for payload in payloads:
            while stall and rng.random() < stall:
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.payload, payload)
            await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)
    return feed


def _w_rows(w: np.ndarray, b: np.ndarray) -> list[list[int]]:
    return [list(map(int, row)) for row in w] + [list(map(int, b))]


def run_eatt(dut: Eatt, case: dict, stall: float = 0.0, seed: int = 0, heads: int = 1) -> dict:
    """Drive ``heads`` copies of one head through ``dut``; returns outputs and cycle counts."""
    f, lanes = dut.fmts, dut.lanes
    rng = random.Random(seed)
    feed = _feeder(rng, stall)
    xq, xkv, v = case["xq"], case["xkv"], case["v"]
    m_rows, n = xq.shape[0], xkv.shape[0]
    res = {"out": [], "cycles": [], "first_out": None}

    def chunks(x):
        return [list(map(int, row[c:c + lanes])) for row in x for c in range(0, x.shape[1], lanes)]

    async def main(ctx):
        ctx.set(dut.n_keys, n)
        ctx.set(dut.n_queries, m_rows)
        ctx.set(dut.tau, case["tau"])
        ctx.set(dut.scale_mant, case["mant"])
        ctx.set(dut.scale_shift, case["shift"])
        for h in range(heads):
            out, row, cycles = [], [], 0
            while len(out) < m_rows:
                ready = 0 if (stall and rng.random() < stall) else 1
                ctx.set(dut.o.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                cycles += 1
                assert cycles < 50_000, "timeout waiting for o"
                if ready and valid:
                    row += [int(x) for x in payload]
                    if len(row) == f.d_h:
                        out.append(row)
                        row = []
            ctx.set(dut.o.ready, 0)
            res["out"].append(np.array(out))
            res["cycles"].append(cycles)
            res["overflow"] = ctx.get(dut.overflow)
            if h < heads - 1:
                continue  # the next head's weights and V are already streaming in
            for _ in range(4):
                if ctx.get(dut.idle):
                    break
                await ctx.tick()
            assert ctx.get(dut.idle), "not idle after the head"

    async def wq(ctx):
        for _ in range(heads):
            await feed(ctx, dut.wq, _w_rows(case["wq"], case["bq"]))

    async def wk(ctx):
        for _ in range(heads):
            await feed(ctx, dut.wk, _w_rows(case["wk"], case["bk"]))

    async def xk(ctx):
        for _ in range(heads):
            await feed(ctx, dut.xkv, [int(x) for x in xkv.ravel()])

    async def vv(ctx):
        for _ in range(heads):
            await feed(ctx, dut.v, chunks(v))

    async def xqf(ctx):
        for _ in range(heads):
            await feed(ctx, dut.xq, [int(x) for x in xq.ravel()])

    run_sim(dut, main, wq, wk, xk, vv, xqf)
    return res


def test_latency_constants():
    f = EattFormats(d_in=4, d_h=8, n_max=4)
    assert EattAlign.SELECT_LATENCY == EattSelectSum.LATENCY == 3
    assert EattL1.latency_of(8) == 3 + tree_stages(8) + 1 == 6  # class-level: no component built
    assert f.d_h == 8


def test_align_scores_and_l1_latency():
    """eatt_align alone: the scores equal -L1 of the golden alignment, one key per cycle, and the
    first score is seen SELECT_LATENCY + l1_latency edges after the query's last value."""
    rng = np.random.default_rng(12)
    f = EattFormats(d_in=6, d_h=8, n_max=5)
    dut = EattAlign(fmts=f)
    case = random_case(rng, f, 2, 5)
    want = golden(case, f)
    got: list[list[int]] = []
    gaps: list[int] = []
    feed = _feeder(random.Random(0), 0.0)

    async def main(ctx):
        ctx.set(dut.n_keys, 5)
        ctx.set(dut.n_queries, 2)
        ctx.set(dut.tau, case["tau"])
        ctx.set(dut.s.ready, 1)
        for i in range(2):
            await feed(ctx, dut.xq, [int(x) for x in case["xq"][i]])
            row: list[int] = []
            for k in range(1, 200):
                _, _, valid, payload = await ctx.tick().sample(dut.s.valid, dut.s.payload)
                if valid:
                    if not row:
                        gaps.append(k)
                    row.append(int(payload))
                    if len(row) == 5:
                        break
                else:
                    assert not row, "scores not back to back"
            got.append(row)

    async def weights(ctx):
        await feed(ctx, dut.wq, _w_rows(case["wq"], case["bq"]))

    async def weights_k(ctx):
        await feed(ctx, dut.wk, _w_rows(case["wk"], case["bk"]))

    async def keys(ctx):
        await feed(ctx, dut.xkv, [int(x) for x in case["xkv"].ravel()])

    run_sim(dut, main, weights, weights_k, keys)
    assert np.array_equal(np.array(got), -want.align.l1_raw)
    assert gaps == [EattAlign.SELECT_LATENCY + dut.l1_latency] * 2


@pytest.mark.parametrize("m,n,lanes,stall", [(3, 5, 2, 0.0), (2, 8, 4, 0.3), (4, 1, 8, 0.2), (1, 3, 1, 0.25)])
def test_head_bit_exact(m, n, lanes, stall):
    rng = np.random.default_rng(m * 10 + n)
    dut = Eatt(d_in=12, d_h=8, n_max=8, lanes=lanes)
    f = dut.fmts
    case = random_case(rng, f, m, n)
    want = golden(case, f)
    res = run_eatt(dut, case, stall=stall, seed=n, heads=2)
    for out in res["out"]:
        assert np.array_equal(out, want.out)
    assert res["overflow"] == int(want.back.overflow.any())


def test_directed_tau_corners():
    rng = np.random.default_rng(7)
    dut = Eatt(d_in=8, d_h=4, n_max=4, lanes=2)
    f = dut.fmts
    base = random_case(rng, f, 2, 4)
    cases = []
    # every input below τ: empty selection, Q = b_Q, K = b_K, all scores equal
    cases.append({**base, "tau": f.token_fmt.max_int})
    # every input above τ = 0 (all features selected)
    cases.append({**base, "xq": np.abs(base["xq"]) + 1, "xkv": np.abs(base["xkv"]) + 1, "tau": 0})
    # τ exactly at raw values: x == τ is not selected, x == τ + 1 is
    edge = {**base, "tau": 100}
    edge["xq"] = np.where(rng.random(base["xq"].shape) < 0.5, 100, 101)
    edge["xkv"] = np.where(rng.random(base["xkv"].shape) < 0.5, 100, 101)
    cases.append(edge)
    for case in cases:
        want = golden(case, f)
        res = run_eatt(dut, case, stall=0.1, seed=1)
        assert np.array_equal(res["out"][0], want.out)
    # the empty selection gives uniform attention: every row equals the mean of V (as rounded)
    want0 = golden(cases[0], f)
    assert np.all(want0.align.bits_q == 0) and np.all(want0.out == want0.out[0])
    assert np.all(golden(cases[1], f).align.bits_kv == 1)
    assert golden(edge, f).align.bits_q.sum() == int((edge["xq"] == 101).sum())


def test_saturation_flag():
    rng = np.random.default_rng(8)
    dut = Eatt(d_in=4, d_h=4, n_max=4, lanes=4, out_fmt=QFormat(8, 4))
    f = dut.fmts
    case = random_case(rng, f, 2, 3, v_spread=30000)
    want = golden(case, f)
    assert want.back.overflow.any()
    res = run_eatt(dut, case)
    assert np.array_equal(res["out"][0], want.out) and res["overflow"] == 1


def test_cycles_no_stall():
    rng = np.random.default_rng(9)
    dut = Eatt(d_in=8, d_h=8, n_max=8, lanes=4)
    case = random_case(rng, dut.fmts, 3, 6)
    res = run_eatt(dut, case)
    f, n, c = dut.fmts, 6, 2
    # back end per row (scores arrive one per cycle from the L1 pipeline)
    from hdl.softmax_pv import SoftmaxPV
    back = SoftmaxPV(d=8, lanes=4, fmts=f.backend)
    Fragment.get(back, None)  # (row_cycles is an instance method; elaborating it is cheap)
    assert back.row_cycles(n) == n + (n + 14) + (n * c + 5) + (c + 10)
    assert res["cycles"][0] < n * f.d_in + 3 * (f.d_in + 2 + n + 6 + back.row_cycles(n)) + 20


def test_real_minilm_head_small():
    """A real all-MiniLM-L6-v2 head (first tokens, a slice of the features) through the RTL."""
    from golden.corpus import CORPUS
    from golden.minilm import MiniLM

    model = MiniLM.load()
    head = model.head_inputs(CORPUS[0], 1)[3]
    n, d_in, d = 5, 24, 8
    sub = HeadInputs(head.x_q[:3, :d_in], head.x_kv[:n, :d_in], head.wq[:d_in, :d], head.wk[:d_in, :d],
                     head.wv[:d_in, :d], head.bq[:d], head.bk[:d], head.bv[:d])
    dut = Eatt(d_in=d_in, d_h=d, n_max=8, lanes=4)
    f = dut.fmts
    wfmt = QFormat.covering(max(float(np.max(np.abs(a))) for a in (sub.wq, sub.wk, sub.bq, sub.bk)), 12)
    mant, shift = encode_scale(eatt_score_scale(wfmt.frac, d), f.backend)
    case = {"xq": f.token_fmt.quantize(sub.x_q), "xkv": f.token_fmt.quantize(sub.x_kv),
            "wq": wfmt.quantize(sub.wq), "wk": wfmt.quantize(sub.wk), "bq": wfmt.quantize(sub.bq),
            "bk": wfmt.quantize(sub.bk), "v": f.v_fmt.quantize(sub.x_kv @ sub.wv + sub.bv),
            "tau": int(f.token_fmt.quantize(0.1)), "mant": mant, "shift": shift}
    want = golden(case, f)
    res = run_eatt(dut, case, stall=0.2, seed=3)
    assert np.array_equal(res["out"][0], want.out)
    # the method interface gives the same numbers (same formats, n_max = n)
    method = eatt(sub, tau=0.1)
    assert np.array_equal(f.out_fmt.quantize(method.out), want.out)
    assert not math.isnan(float(method.out.sum()))


@pytest.mark.parametrize("kwargs,exc,word", [
    ({"d_h": 6, "lanes": 4}, ValueError, "lanes"),
    ({"d_in": 0}, ValueError, "d_in"),
    ({"n_max": 2.5}, TypeError, "n_max"),
    ({"weight_width": 1}, ValueError, "weight_width"),
    ({"out_fmt": 16}, TypeError, "out_fmt"),
])
def test_bad_parameters(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        Eatt(**kwargs)


def test_registry():
    with pytest.raises(ParamError, match="lanes"):
        get_block("eatt").elaborate({"d_h": 6, "lanes": 4})
    dut, params = get_block("eatt").elaborate({})
    assert isinstance(dut, Eatt) and params["d_in"] == 16
    Fragment.get(dut, None)  # the default configuration elaborates


def test_align_has_no_multiplier(tmp_path):
    """yosys' generic cell report (``attn-rtl synth --target generic``: ``$mul`` cells counted after
    ``proc; flatten; opt``, see synth.flow) of eatt_align lists no multiplier. (The count is live:
    tests/test_synth.py checks it on designs with and without multipliers; an abs written as
    ``diff * sign`` in eatt_align makes this test fail.)"""
    from synth.flow import synth_block

    small = {"d_in": 4, "d_h": 4, "n_max": 4}
    res = synth_block("eatt_align", small, target="generic", build_root=tmp_path)
    assert res.resources["cells"] > 100 and res.resources["ff"] > 0
    assert res.resources["mul"] == 0 and "$mul" not in res.cells, res.cells


@pytest.mark.parametrize("n_keys", [0, 9])
def test_config_error_for_bad_n_keys(n_keys):
    """n_keys outside [1, n_max] raises config_error and the block takes nothing."""
    dut = Eatt(d_in=4, d_h=4, n_max=8, lanes=2)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.n_keys, n_keys)
        ctx.set(dut.n_queries, 1)
        ctx.set(dut.wq.valid, 1)
        ctx.set(dut.v.valid, 1)
        for _ in range(5):
            await ctx.tick()
        seen["error"] = ctx.get(dut.config_error)
        seen["ready"] = ctx.get(dut.wq.ready) or ctx.get(dut.v.ready)
        ctx.set(dut.n_keys, 3)
        await ctx.tick()
        await ctx.tick()
        seen["cleared"] = ctx.get(dut.config_error)

    run_sim(dut, tb)
    assert seen == {"error": 1, "ready": 0, "cleared": 0}


def test_head_dimension_name_and_chunks():
    """The head dimension is ``d_h`` (the README vocabulary) and LaneSplit finds it: chunks =
    d_h / lanes; the registry refuses the old name ``d``."""
    from hdl.checked import inspect_only

    dut = inspect_only(Eatt(d_in=4, d_h=12, n_max=4, lanes=3))
    assert dut.fmts.d_h == 12 and dut.chunks == 4
    for block in ("eatt", "eatt_align"):
        with pytest.raises(ParamError, match="d_h"):
            get_block(block).elaborate({"d": 4})
