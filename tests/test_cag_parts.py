"""The CAG's parts alone in the Amaranth simulator: CACC (hdl.cag.CentroidAccumulator) and CAVG
(hdl.cag.CentroidAverager), each with a ``sums`` memory of its own, against golden.cag bit-exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory

from golden.cag import (
    CENTROID_FMT,
    TOKEN_FMT,
    centroid_accumulate,
    centroid_average,
    default_recip_spec,
    residual_from_pairs,
)
from hdl import faults
from hdl.cag import CentroidAccumulator, CentroidAverager
from tests.amaranth_helpers import run_sim, wait_until


class _WithSums(Elaboratable):
    """A CAG part wired to a ``sums`` memory as :class:`hdl.cag.CentroidAggregator` wires it."""

    def __init__(self, part: CentroidAccumulator | CentroidAverager, init: list | None = None) -> None:
        self.part = part
        self.mem = Memory(shape=part.entry_layout, depth=part.k_max, init=init or [])

    def elaborate(self, platform):
        m = Module()
        m.submodules.part, m.submodules.sums = part, mem = self.part, self.mem
        rd = mem.read_port(domain="sync")
        m.d.comb += [rd.addr.eq(part.rd_addr), rd.en.eq(part.rd_en), part.rd_data.eq(rd.data)]
        if isinstance(part, CentroidAccumulator):
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(part.wr_addr), wr.en.eq(part.wr_en), wr.data.eq(part.wr_data)]
        return m


def _tokens(rng: np.random.Generator, n: int, d: int, fmt=TOKEN_FMT) -> np.ndarray:
    return rng.integers(fmt.min_int, fmt.max_int + 1, size=(n, d))


# ---- CACC ------------------------------------------------------------------------------------------

def _cacc_runs(rng: np.random.Generator, d: int, k_max: int, n_max: int) -> list[dict]:
    runs = []
    for n, residual in ((n_max + 3, False), (23, True), (17, False)):
        # runs of equal indices, the a, b, a pattern, the "no cluster" sentinel k_max
        idx = np.repeat(rng.integers(0, k_max + 1, n), rng.integers(1, 4, n))[:n]
        runs.append({"x": _tokens(rng, n, d), "idx": idx,
                     "c": _tokens(rng, n, d, CENTROID_FMT) if residual else None})
    return runs


def _run_cacc(dut: CentroidAccumulator, runs: list[dict], p_gap: float, seed: int) -> list[dict]:
    """Sends each run's beats (random gaps), then reads the sums memory after the flush cycle."""
    harness = _WithSums(dut)
    rng = random.Random(seed)
    got: list[dict] = []

    async def tb(ctx):
        for run in runs:
            n = len(run["idx"])
            events = {"overflow": 0, "saturated": 0, "stalls": 0}
            for t in range(n):
                while rng.random() < p_gap:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                p = dut.i.payload
                ctx.set(p.index, int(run["idx"][t]))
                ctx.set(p.residual, run["c"] is not None)
                ctx.set(p.last, t == n - 1)
                for e in range(dut.d):
                    ctx.set(p.x[e], int(run["x"][t, e]))
                    ctx.set(p.centroid[e], int(run["c"][t, e]) if run["c"] is not None else 0)
                ctx.set(dut.i.valid, 1)
                for _ in range(4):  # a token is taken at once while its run is open
                    *_, ready, over, sat = await ctx.tick().sample(dut.i.ready, dut.overflow_event,
                                                                   dut.saturated_event)
                    if ready:
                        break
                    events["stalls"] += 1
                else:
                    raise AssertionError(f"token {t} not accepted within 4 cycles")
                events["overflow"] += over
                events["saturated"] += sat
            ctx.set(dut.i.valid, 0)
            flush_after = await wait_until(ctx, dut.flush, 10, "the flush cycle")
            mem = [ctx.get(harness.mem.data[c]) for c in range(dut.k_max)]
            got.append({**events, "flush_after": flush_after, "k": ctx.get(dut.k), "touched": ctx.get(dut.touched),
                        "sums": [[int(w.sum[e]) for e in range(dut.d)] for w in mem],
                        "counts": [int(w.count) for w in mem], "ready_in_wait": ctx.get(dut.i.ready)})
            ctx.set(dut.restart, 1)
            await ctx.tick()
            ctx.set(dut.restart, 0)
            got[-1]["idle_after_restart"] = ctx.get(dut.idle)

    run_sim(harness, tb, deadline_cycles=2000)
    return got


def _check_cacc(dut: CentroidAccumulator, runs: list[dict], got: list[dict]) -> None:
    for r, (run, res) in enumerate(zip(runs, got, strict=True)):
        x, sat = run["x"], np.zeros(run["x"].shape, bool)
        if run["c"] is not None:
            x, sat = residual_from_pairs(run["x"], run["c"])
        sums, counts, k, overflow = centroid_accumulate(x, run["idx"], k_max=dut.k_max, n_max=dut.n_max)
        accepted = (run["idx"] < dut.k_max) & (np.arange(len(x)) < dut.n_max)
        touched = sorted({int(i) for i in run["idx"][accepted]})
        assert res["k"] == k, r
        assert res["touched"] == sum(1 << c for c in touched), r
        # every touched cluster's memory word holds its exact sum and count (others: stale, unread)
        assert [res["sums"][c] for c in touched] == [sums[c].tolist() for c in touched], r
        assert [res["counts"][c] for c in touched] == [int(counts[c]) for c in touched], r
        assert res["overflow"] == int((~accepted).sum()) and overflow == (res["overflow"] > 0), r
        assert res["saturated"] == int((sat.any(axis=1) & accepted).sum()), r
        assert res["stalls"] == 0, r  # one token per cycle
        assert res["flush_after"] == CentroidAccumulator.FLUSH_LATENCY, r
        assert res["ready_in_wait"] == 0 and res["idle_after_restart"] == 1, r


@pytest.mark.parametrize("p_gap", [0.0, 0.4])
def test_cacc_alone_matches_golden_accumulate(p_gap):
    rng = np.random.default_rng(21)
    dut = CentroidAccumulator(d=3, k_max=6, n_max=40)
    runs = _cacc_runs(rng, 3, 6, 40)
    got = _run_cacc(dut, runs, p_gap, seed=2)
    assert any(r["saturated"] for r in got) and any(r["overflow"] for r in got)  # both flags exercised
    _check_cacc(dut, runs, got)


@pytest.mark.parametrize("fault", sorted(CentroidAccumulator.FAULTS))
def test_cacc_faults_break_the_sums(fault):
    """The hazard paths of the part itself: without them back-to-back tokens read stale sums."""
    rng = np.random.default_rng(22)
    with faults.injected(CentroidAccumulator, fault):
        dut = CentroidAccumulator(d=2, k_max=4, n_max=32)
    idx = np.array([0, 0, 1, 0, 1, 1, 2, 0, 2, 0, 0])
    runs = [{"x": _tokens(rng, len(idx), 2), "idx": idx, "c": None}]
    with pytest.raises(AssertionError):
        _check_cacc(dut, runs, _run_cacc(dut, runs, 0.0, seed=1))


def test_cacc_ready_closes_after_last_until_restart():
    """With ``valid`` held high, ``ready`` is high for the beats up to ``last``, low from the next
    cycle until the cycle after ``restart`` (ready is a register: its next-value logic must see the
    run end in every stage), then high again: no beat of the next run slips into the flush."""
    dut = CentroidAccumulator(d=1, k_max=4, n_max=16)
    trace: list[int] = []

    async def tb(ctx):
        p = dut.i.payload
        ctx.set(dut.i.valid, 1)
        for t in range(12):
            ctx.set(p.index, t % 2)
            ctx.set(p.last, t == 2)
            ctx.set(dut.restart, t == 8)
            *_, ready = await ctx.tick().sample(dut.i.ready)
            trace.append(ready)

    run_sim(_WithSums(dut), tb, deadline_cycles=100)
    assert trace == [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1]


# ---- CAVG ------------------------------------------------------------------------------------------

def _run_cavg(dut: CentroidAverager, sums: np.ndarray, counts: np.ndarray, touched: int, k: int,
              p_stall: float, seed: int) -> dict:
    init = [{"sum": sums[c].tolist(), "count": int(counts[c])} for c in range(dut.k_max)]
    harness = _WithSums(dut, init)
    rng = random.Random(seed)
    res: dict = {"beats": [], "saturated": 0}
    deadline = 4 * (k + 2) + CentroidAverager.LATENCY + 10

    async def tb(ctx):
        ctx.set(dut.k, k)
        ctx.set(dut.touched, touched)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cycle in range(1, deadline):
            ready = int(rng.random() >= p_stall)
            ctx.set(dut.o.ready, ready)
            *_, valid, payload, done, sat = await ctx.tick().sample(dut.o.valid, dut.o.payload, dut.done,
                                                                    dut.saturated_event)
            if valid and "first_valid" not in res:
                res["first_valid"] = cycle
            if valid and ready:
                res["beats"].append((int(payload.index), int(payload.count),
                                     [int(payload.centroid[e]) for e in range(dut.d)], int(payload.last)))
                res["saturated"] += sat
            if done:
                res["done_with_beat"] = len(res["beats"])
                res["n_clusters"] = ctx.get(dut.n_clusters)
                return
        raise AssertionError(f"CAVG not done within {deadline} cycles")

    run_sim(harness, tb, deadline_cycles=deadline + 5)
    return res


@pytest.mark.parametrize("p_stall,seed", [(0.0, 1), (0.35, 2)])
def test_cavg_alone_matches_golden_average(p_stall, seed):
    rng = np.random.default_rng(30 + seed)
    k_max, d, n_max = 9, 3, 50
    spec = default_recip_spec(n_max)
    dut = CentroidAverager(d=d, k_max=k_max, n_max=n_max, recip_spec=spec)
    counts = rng.integers(1, n_max + 1, k_max)
    sums = counts[:, None] * _tokens(rng, k_max, d)  # means within the token range ...
    sums[1] = [TOKEN_FMT.max_int * 20, TOKEN_FMT.min_int * 20, 0]  # ... and some that saturate
    counts[1] = 3
    touched_set = [c for c in range(k_max) if c != 4]  # cluster 4 holds a stale word: read as empty
    touched = sum(1 << c for c in touched_set)
    k = 7
    got = _run_cavg(dut, sums, counts, touched, k, p_stall, seed)
    eff_counts = np.where(np.isin(np.arange(k), touched_set), counts[:k], 0)
    eff_sums = sums[:k] * (eff_counts > 0)[:, None]
    want, want_sat = centroid_average(eff_sums, eff_counts, value_frac=TOKEN_FMT.frac, recip_spec=spec)
    assert got["beats"] == [(c, int(eff_counts[c]), want[c].tolist(), int(c == k - 1)) for c in range(k)]
    assert got["saturated"] == int(want_sat.sum()) > 0
    assert got["done_with_beat"] == k and got["n_clusters"] == k
    if p_stall == 0.0:  # the first read is issued the cycle after start
        assert got["first_valid"] == 1 + CentroidAverager.LATENCY


def test_cavg_with_no_clusters_is_done_at_once():
    dut = CentroidAverager(d=1, k_max=2, n_max=4, recip_spec=default_recip_spec(4))
    got = _run_cavg(dut, np.zeros((2, 1), int), np.zeros(2, int), 0, 0, 0.0, 0)
    assert got["beats"] == [] and got["done_with_beat"] == 0 and got["n_clusters"] == 0


@pytest.mark.parametrize("cls,kw,name", [
    (CentroidAccumulator, {"d": 0, "k_max": 2, "n_max": 2}, "d"),
    (CentroidAccumulator, {"d": 1, "k_max": 2.0, "n_max": 2}, "k_max"),
    (CentroidAverager, {"d": 1, "k_max": 2, "n_max": 4, "recip_spec": None}, "recip_spec"),
    (CentroidAverager, {"d": 1, "k_max": 2, "n_max": 64, "recip_spec": default_recip_spec(4)}, "recip_spec"),
])
def test_parts_reject_bad_parameters(cls, kw, name):
    with pytest.raises((TypeError, ValueError), match=name):
        cls(**kw)
