"""Amaranth-simulator tests of the LATTE block: estimate lanes, filter, whole head vs golden."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.fixed import QFormat
from golden.latte import LatteFormats, compensated_scores, encode_score_scale, estimate_scores, latte_fixed_raw
from golden.latte_cycles import latte_cycles_per_head
from hdl.latte import CompensationLanes, EstimateLanes, Latte, tree_stages
from hdl.registry import ParamError, get_block
from sim.streams import AmaranthIO
from sim.tb_latte import DRAIN_CYCLES, run_latte_head
from tests.amaranth_helpers import run_sim


def _rows_to_chunks(x: np.ndarray, lanes: int) -> list[list[int]]:
    return [list(map(int, row[c:c + lanes])) for row in x for c in range(0, x.shape[1], lanes)]


HEAD_DEADLINE = 4_000  # cycles for one test head: the longest here takes 375 (stalls included)


def run_head(dut: Latte, q, k, v, tau: int, mant: int, shift: int, stall: float = 0.0, seed: int = 0,
             probe_est: bool = False):
    """Drive one head through ``dut`` with the shared stream harness (:func:`sim.tb_latte.run_latte_head`,
    the same script the cocotb testbench runs); returns (outputs m×d_h, kept per row, cycles, probes).

    Rows are compared with the golden model as they arrive; the run fails after HEAD_DEADLINE
    cycles, and on an o beat beyond the expected ones. ``probe_est`` also records the A_est buffer
    writes (ports of the front engine's :class:`hdl.latte.EstimatePass`): probes["est"] is one
    row of n estimates per query row, each row written at addresses 0..n-1 in order."""
    box: dict = {}
    writes: list[tuple[int, int]] = []

    async def head(ctx):
        box["res"] = await run_latte_head(AmaranthIO(ctx, dut), dut, q, k, v, tau, mant, shift, stall=stall,
                                          rng=random.Random(seed), deadline_cycles=HEAD_DEADLINE)

    async def est_monitor(ctx):
        est = dut.front.est
        while "res" not in box:  # ends with the head (run_sim's deadline bounds both)
            _, _, en, addr, data = await ctx.tick().sample(est.est_en, est.est_addr, est.est_data)
            if en:
                writes.append((addr, data))

    run_sim(dut, head, *([est_monitor] if probe_est else []), deadline_cycles=HEAD_DEADLINE + 2 * DRAIN_CYCLES + 16)
    res = box["res"]
    est = None
    if probe_est:
        n = k.shape[0]
        assert len(writes) == n * q.shape[0], f"{len(writes)} A_est writes for {q.shape[0]} rows of {n} keys"
        assert [a for a, _ in writes] == list(range(n)) * q.shape[0]
        est = np.array([d for _, d in writes]).reshape(q.shape[0], n)
    return res["out"], np.array(res["kept_rows"]), res["cycles"], {"est": est}


def _case(rng, m, n, d_h, spread=128):
    q = rng.integers(-spread, spread, (m, d_h))
    k = rng.integers(-spread, spread, (n, d_h))
    v = rng.integers(-128, 128, (n, d_h))
    return q, k, v


@pytest.mark.parametrize("lanes,include_ll,tau,stall", [(4, False, 30, 0.0), (2, True, 10, 0.3), (8, False, 0, 0.2)])
def test_head_bit_exact(lanes, include_ll, tau, stall):
    rng = np.random.default_rng(lanes)
    d_h, n = 8, 6
    dut = Latte(n_max=8, d_h=d_h, lanes=lanes, include_ll=include_ll)
    fmts = LatteFormats(d_h=d_h, n_max=8, include_ll=include_ll)
    q, k, v = _case(rng, 5, n, d_h)
    mant, shift = encode_score_scale(1 / (128 * 128 * np.sqrt(d_h)) * 16, fmts)
    want = latte_fixed_raw(q, k, v, tau, mant, shift, fmts)
    got, kept, _, probes = run_head(dut, q, k, v, tau, mant, shift, stall=stall, seed=lanes, probe_est=True)
    assert np.array_equal(probes["est"], estimate_scores(q, k))  # estimate lanes
    assert kept.tolist() == want.kept_count.tolist()               # filter
    assert got.tolist() == want.out.tolist()


def test_cycles_match_the_timing_model_without_stalls():
    rng = np.random.default_rng(7)
    d_h, n = 8, 8
    dut = Latte(n_max=8, d_h=d_h, lanes=4)
    q, k, v = _case(rng, 3, n, d_h)
    fmts = dut.fmts
    mant, shift = encode_score_scale(0.001, fmts)

    def model(n: int, kept_rows: list[int]) -> int:
        return latte_cycles_per_head(n, kept_rows, chunks=dut.chunks, latencies=dut.cycle_latencies())

    # all keys kept: the model is exact
    _, kept, cycles, _ = run_head(dut, q, k, v, fmts.tau_max, mant, shift)
    assert kept.tolist() == [n] * 3
    assert cycles == model(n, [n] * 3), cycles
    # pruned keys
    want = latte_fixed_raw(q, k, v, 20, mant, shift, fmts)
    _, kept, cycles, _ = run_head(dut, q, k, v, 20, mant, shift)
    assert kept.tolist() == want.kept_count.tolist() and max(kept) < n
    assert cycles == model(n, want.kept_count.tolist()), cycles
    # the back end of one row overlaps the estimate of the next
    serial = sum(model(n, [int(c)]) for c in want.kept_count) - 2 * (n * dut.chunks + 1)
    assert cycles < serial


def test_cycle_latencies_passed_to_the_golden_model():
    # the constants the RTL hands to golden.latte_cycles (pinned: test_golden_latte pins the model's
    # numbers for these latencies; the Amaranth head tests compare the model with the RTL's cycles)
    def latencies(*, n_max: int, d_h: int, lanes: int, include_ll: bool = False) -> dict[str, int]:
        # no component built for constants: the classmethod; elaborated: the instance method agrees
        by_class = Latte.latencies_for(lanes=lanes, include_ll=include_ll)
        dut = Latte(n_max=n_max, d_h=d_h, lanes=lanes, include_ll=include_ll)
        Fragment.get(dut, None)
        assert dut.cycle_latencies() == by_class
        return by_class

    common = {"max": 1, "flag": 2, "exp": 13, "pv": 6, "norm": 10}
    assert latencies(n_max=8, d_h=8, lanes=4) == {**common, "est": 4, "comp": 8}
    assert latencies(n_max=16, d_h=16, lanes=4, include_ll=True) == {**common, "est": 4, "comp": 8}
    assert latencies(n_max=128, d_h=64, lanes=8) == {**common, "est": 5, "comp": 8}
    assert latencies(n_max=2, d_h=2, lanes=2) == {**common, "est": 4, "comp": 7}



def _pack(chunk) -> int:
    """A chunk of signed 8-bit lanes as the raw bits of an ``ArrayLayout(signed(8), lanes)`` port."""
    return sum((int(x) & 0xFF) << (8 * i) for i, x in enumerate(chunk))


@pytest.mark.parametrize("lanes,d_h", [(4, 8), (2, 6), (8, 8)])
def test_estimate_lanes_alone(lanes, d_h):
    """The front engine's EST datapath on its own: one item per cycle, q/k chunk two cycles after its
    issue (the registered buffer reads); every A_est write lands exactly ``latency`` cycles after
    the key's last chunk is issued, with golden ``estimate_scores``; ``emax`` is the row maximum."""
    rng = np.random.default_rng(lanes + d_h)
    n, C = 5, d_h // lanes
    q = rng.integers(-128, 128, (1, d_h))
    k = rng.integers(-128, 128, (n, d_h))
    want = estimate_scores(q, k)[0]
    lat = EstimateLanes.latency(lanes)
    dut = EstimateLanes(lanes=lanes, n_max=8, est_width=LatteFormats(d_h=d_h, n_max=8).est_width)
    items = [(j, c) for j in range(n) for c in range(C)]
    writes: list[tuple[int, int, int]] = []
    result: dict[str, int] = {}

    async def bench(ctx):
        for t in range(len(items) + lat + EstimateLanes.MAX_LATENCY + 2):
            issue = t < len(items)
            j, c = items[t] if issue else (0, 0)
            ctx.set(dut.issue, issue)
            ctx.set(dut.j, j)
            ctx.set(dut.first, c == 0)
            ctx.set(dut.last, c == C - 1)
            if 2 <= t < len(items) + 2:    # the chunk of the item issued two cycles ago
                dj, dc = items[t - 2]
                ctx.set(dut.q.as_value(), _pack(q[0, dc * lanes:(dc + 1) * lanes]))
                ctx.set(dut.k.as_value(), _pack(k[dj, dc * lanes:(dc + 1) * lanes]))
            if ctx.get(dut.est_en):
                writes.append((t, ctx.get(dut.est_addr), ctx.get(dut.est_data)))
            await ctx.tick()
        result["emax"], result["busy"] = ctx.get(dut.emax), ctx.get(dut.busy)

    run_sim(dut, bench, deadline_cycles=200)
    assert writes == [(j * C + C - 1 + lat, j, int(want[j])) for j in range(n)]
    assert result == {"emax": int(want.max()), "busy": 0}


@pytest.mark.parametrize("lanes,include_ll", [(4, False), (2, True)])
def test_compensation_lanes_alone(lanes, include_ll):
    """The front engine's COMP datapath on its own: kept-list entries (key base, golden A_est) one
    cycle after their issue, q/k chunks at the addresses it drives two cycles later; each score is
    golden ``compensated_scores`` and leaves ``latency`` cycles after the key's last chunk issue."""
    rng = np.random.default_rng(lanes)
    d_h, n, C = 8, 4, 8 // lanes
    q = rng.integers(-128, 128, (1, d_h))
    k = rng.integers(-128, 128, (n, d_h))
    a_est = estimate_scores(q, k)[0]
    want = compensated_scores(q, k, include_ll)[0]
    kept = [2, 0, 3]                                   # a compacted list, out of order on purpose
    lat = CompensationLanes.latency(lanes, include_ll)
    fmts = LatteFormats(d_h=d_h, n_max=n, include_ll=include_ll)
    aw = max(1, (n * C - 1).bit_length())
    dut = CompensationLanes(lanes=lanes, chunks=C, n_max=n, aw=aw, est_width=fmts.est_width,
                            cross_width=fmts.cross_width, score_width=fmts.score_width, include_ll=include_ll)
    items = [(t, c) for t in range(len(kept)) for c in range(C)]
    flat_k = k.reshape(n * C, lanes)                   # the K buffer: key j's chunks at j*C + c
    flat_q = q.reshape(C, lanes)
    scores: list[tuple[int, int, int]] = []
    addrs: list[tuple[int, int]] = []

    async def bench(ctx):
        for cyc in range(len(items) + lat + 3):
            issue = cyc < len(items)
            t, c = items[cyc] if issue else (0, 0)
            ctx.set(dut.issue, issue)
            ctx.set(dut.c, c)
            if 1 <= cyc < len(items) + 1:  # list read data of the item issued one cycle ago
                j = kept[items[cyc - 1][0]]
                ctx.set(dut.entry.kb, j * C)
                ctx.set(dut.entry.a, int(a_est[j]))
            if 2 <= cyc < len(items) + 2:  # the buffer addresses it drives, read back registered
                addrs.append((ctx.get(dut.k_addr), ctx.get(dut.q_addr)))
            if 4 <= cyc < len(items) + 4:
                ka, qa = addrs[cyc - 4]
                ctx.set(dut.k.as_value(), _pack(flat_k[ka]))
                ctx.set(dut.q.as_value(), _pack(flat_q[qa]))
            if ctx.get(dut.s_valid):
                scores.append((cyc, ctx.get(dut.kb), ctx.get(dut.score)))
            await ctx.tick()
        assert ctx.get(dut.busy) == 0

    run_sim(dut, bench, deadline_cycles=200)
    assert addrs == [(kept[t] * C + c, c) for t, c in items]
    assert scores == [(t * C + C - 1 + lat, kept[t] * C, int(want[kept[t]])) for t in range(len(kept))]


def test_tree_stages():
    assert [tree_stages(c) for c in (1, 2, 4, 5, 16, 17, 64)] == [1, 1, 1, 2, 2, 3, 3]


def test_bad_parameters():
    with pytest.raises(ValueError, match="lanes"):
        Latte(d_h=16, lanes=3)
    with pytest.raises(ValueError, match="n_max"):
        Latte(n_max=0)
    with pytest.raises(TypeError, match="out_fmt"):
        Latte(out_fmt=8)
    with pytest.raises(ParamError, match="lanes"):
        get_block("latte").resolve({"d_h": 16, "lanes": 6})
    with pytest.raises(ParamError, match="n_max"):
        get_block("latte").resolve({"n_max": 0})
    dut = Latte(out_fmt=QFormat(12, 4))
    Fragment.get(dut, None)  # elaborates
    assert dut.out_fmt.width == 12 and len(dut.o.payload.data[0]) == 12


@pytest.mark.parametrize("n_keys", [0, 9])
def test_bad_runtime_key_count_sets_config_error_and_accepts_nothing(n_keys):
    dut = Latte(n_max=8, d_h=8, lanes=4)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.n_keys, n_keys)
        ctx.set(dut.n_queries, 1)
        ctx.set(dut.k.valid, 1)
        ctx.set(dut.v.valid, 1)
        accepted = 0
        for _ in range(20):
            _, _, k_ready, v_ready = await ctx.tick().sample(dut.k.ready, dut.v.ready)
            accepted += k_ready + v_ready
        seen["accepted"] = accepted
        seen["error"] = ctx.get(dut.config_error)
        ctx.set(dut.n_keys, 2)
        await ctx.tick().repeat(2)
        seen["error_after_fix"] = ctx.get(dut.config_error)

    run_sim(dut, tb)
    assert seen == {"accepted": 0, "error": 1, "error_after_fix": 0}


def test_filter_ties_all_equal_and_single_key():
    """τ = 0 keeps exactly the maxima with ties; identical keys are all kept; n = 1."""
    rng = np.random.default_rng(11)
    d_h, n = 8, 6
    dut = Latte(n_max=8, d_h=d_h, lanes=4)
    fmts = dut.fmts
    mant, shift = encode_score_scale(0.002, fmts)
    k = rng.integers(-128, 128, (n, d_h))
    k[3] = k[0]
    q = np.vstack([k[0], np.full(d_h, 127), np.full(d_h, -128)])
    want = latte_fixed_raw(q, k, k, 0, mant, shift, fmts)
    a = estimate_scores(q, k)
    assert want.kept_count.tolist() == (a == a.max(axis=1, keepdims=True)).sum(axis=1).tolist()
    got, kept, _, probes = run_head(dut, q, k, k, 0, mant, shift, probe_est=True)
    assert np.array_equal(probes["est"], a)
    assert kept.tolist() == want.kept_count.tolist() and kept[0] >= 2
    assert got.tolist() == want.out.tolist()
    k_eq = np.tile(k[:1], (n, 1))
    got, kept, _, _ = run_head(dut, q, k_eq, k, 0, mant, shift)
    assert kept.tolist() == [n] * 3
    assert got.tolist() == latte_fixed_raw(q, k_eq, k, 0, mant, shift, fmts).out.tolist()
    got, kept, _, _ = run_head(dut, q, k[:1], k[:1], 0, mant, shift)
    assert kept.tolist() == [1] * 3
    assert got.tolist() == latte_fixed_raw(q, k[:1], k[:1], 0, mant, shift, fmts).out.tolist()


@pytest.mark.parametrize("a_signed,b_signed", [(True, True), (True, False), (False, True), (False, False)])
def test_small_multiplier_exhaustive(a_signed, b_signed):
    """The shift-and-add 4×4 multipliers of the estimate/compensation lanes, all 256 operand pairs."""
    from amaranth.hdl import Module, Signal, signed, unsigned

    from hdl.latte import _small_mul

    a = Signal(signed(4) if a_signed else unsigned(4))
    b = Signal(signed(4) if b_signed else unsigned(4))
    out = Signal(signed(10))
    m = Module()
    m.d.comb += out.eq(_small_mul(a, b))
    a_range = range(-8, 8) if a_signed else range(16)
    b_range = range(-8, 8) if b_signed else range(16)
    bad = []

    async def tb(ctx):
        for x in a_range:
            for y in b_range:
                ctx.set(a, x)
                ctx.set(b, y)
                await ctx.delay(1e-9)
                if ctx.get(out) != x * y:
                    bad.append((x, y))

    from amaranth.sim import Simulator

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert bad == []
