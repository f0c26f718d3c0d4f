"""cocotb testbench of the CAG (``hdl.cag``) against ``golden.cag`` with random valid/ready stalls.

Runs go through :func:`run_cag`, written once on the stream harness (``sim/streams.py``) and shared
with the Amaranth tests (``tests/test_cag.py``); payloads are packed and unpacked with the
component's own ``amaranth.lib.data`` layouts. With ``ATTN_RTL_BENCH_N`` set only the
benchmark test runs (``sim/bench_cim_cag.py``).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np

from golden.cag import aggregate
from golden.cim import cluster_index
from hdl.cag import CentroidAggregator
from sim.runner import write_stats
from sim.streams import Scoreboard, Sink, Source, StreamBench, StreamIO, layout_of, wait_for
from sim.tbutil import BlockTB, timeout_us

BENCH_N = os.environ.get("ATTN_RTL_BENCH_N")
# Timeouts: simulated times measured at n_max = 64, d = 4 (tests/test_cocotb_cim_cag.py),
# scaled by this run's capacity and dimension, or by the bench token count.
_PARAMS = json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")
_WORK = _PARAMS.get("n_max", 64) / 64 * max(1.0, _PARAMS.get("d", 4) / 4)


def cag_beats(comp: CentroidAggregator, x: np.ndarray, indices: np.ndarray, centroids: np.ndarray | None) -> list:
    n = len(indices)
    zeros = [0] * comp.d
    return [{"index": int(indices[t]), "x": [int(v) for v in x[t]],
             "centroid": zeros if centroids is None else [int(v) for v in centroids[t]],
             "residual": int(centroids is not None), "last": int(t == n - 1)} for t in range(n)]


async def run_cag(io: StreamIO, comp: CentroidAggregator, x: np.ndarray, indices: np.ndarray,
                  centroids: np.ndarray | None = None, *, p_in: float = 0.0, p_out: float = 0.0,
                  rng: random.Random | None = None, check: bool = True) -> dict:
    """One run on either adapter: wait until idle (bounded: the previous run's CAVG drain), pulse
    ``clear``, stream the tokens and collect the centroid beats with random stalls on both streams.
    With ``check`` every centroid beat (index, count, centroid, last) is compared ``==`` with
    :func:`golden.cag.aggregate` as it arrives (``check=False``: the run ends on the ``last`` beat,
    for fault injection). A run whose tokens were all refused ends when the block is idle again.
    Nothing may follow the last beat for ``drain`` cycles."""
    rng = rng or random.Random(0)
    await wait_for(io, "idle", deadline_cycles=2 * comp.k_max + 100, what="CAG idle")
    await io.step({"clear": 1}, [])
    n = len(indices)
    if check:
        want = aggregate(x, indices, k_max=comp.k_max, n_max=comp.n_max,
                         token_fmt=comp.formats["token"], centroid_fmt=comp.formats["centroid"],
                         recip_spec=comp.recip_spec, residual_centroids=centroids)
        k = want.n_clusters
        board = Scoreboard("centroid beats", [
            {"index": j, "count": int(want.counts[j]), "centroid": want.centroids[j].tolist(), "last": int(j == k - 1)}
            for j in range(k)])
    else:
        board = None  # unchecked: the run ends on the last beat or by the refused-run rule
    budget = 20 * (n + 100)  # a stalled CAG fails here, far beyond any stall pattern
    i = Source("i", layout_of(comp.i.payload), cag_beats(comp, x, indices, centroids), p_stall=p_in, rng=rng,
               wait_cycles=budget)
    o = Sink("o", layout_of(comp.o.payload), board, p_stall=p_out, rng=rng, wait_cycles=budget)

    def finished(bench: StreamBench) -> bool:
        if o.beats and o.beats[-1]["last"]:
            return True
        # every token refused: no centroid; the block is idle again after the accumulate stages
        return not o.beats and i.done and bool(bench.samples.get("idle")) and bench.cycle > i.transfers[-1] + 3

    bench = StreamBench(i, o, before=lambda b: {"clear": 0}, until=finished, watch=["idle"], deadline_cycles=budget,
                        drain_cycles=comp.k_max + 8)
    await bench.run(io)
    regs = await io.peek(["n_clusters", "overflow", "saturated"])
    first, acc_done = i.transfers[0], i.transfers[-1]
    last_out = o.transfers[-1] if o.transfers else None
    return {"beats": [(b["index"], b["count"], b["centroid"], b["last"]) for b in o.beats], **regs,
            "first": first, "acc_done": acc_done, "last_out": last_out, "cacc_cycles": acc_done - first + 1,
            "cavg_cycles": (last_out or acc_done) - acc_done}


class CagTB(BlockTB):
    BLOCK = "cag"
    comp: CentroidAggregator

    async def run(self, x: np.ndarray, indices: np.ndarray, centroids: np.ndarray | None, p_in: float,
                  p_out: float) -> dict:
        return await run_cag(self.io, self.comp, x, indices, centroids, p_in=p_in, p_out=p_out, rng=self.rng)

    def check(self, x, indices, centroids, res: dict) -> None:
        c = self.comp
        want = aggregate(x, indices, k_max=c.k_max, n_max=c.n_max,
                         token_fmt=c.formats["token"], centroid_fmt=c.formats["centroid"], recip_spec=c.recip_spec,
                         residual_centroids=centroids)
        k = want.n_clusters
        assert res["n_clusters"] == k
        assert [g[0] for g in res["beats"]] == list(range(k))
        assert [g[1] for g in res["beats"]] == want.counts.tolist()
        assert [g[2] for g in res["beats"]] == want.centroids.tolist()
        assert [g[3] for g in res["beats"]] == [int(j == k - 1) for j in range(k)]
        assert bool(res["overflow"]) == want.overflow
        assert bool(res["saturated"]) == want.saturated

    def tokens(self, n: int) -> np.ndarray:
        fmt = self.comp.formats["token"]
        return self.nprng.integers(fmt.min_int, fmt.max_int + 1, size=(n, self.comp.d))

    def cim_like(self, n: int, values: int) -> np.ndarray:
        """Indices as the CIM produces them (first appearance) from random short hash codes."""
        codes = self.nprng.integers(0, values, size=(n, 2))
        codes = np.repeat(codes, self.nprng.integers(1, 4, n), axis=0)[:n]  # same-cluster runs
        idx, _, _ = cluster_index(codes, k_max=self.comp.k_max, hash_width=8)
        return idx


@cocotb.test(skip=BENCH_N is not None, **timeout_us(4.1, _WORK))
async def test_random_with_stalls(dut):
    tb = CagTB(dut, 1)
    await tb.reset()
    c = tb.comp
    n = min(c.n_max, 3 * c.k_max)
    checked = 0
    for values, p in ((3, 0.3), (2, 0.0), (4, 0.4)):
        x, idx = tb.tokens(n), tb.cim_like(n, values)
        res = await tb.run(x, idx, None, p, p)
        tb.check(x, idx, None, res)
        checked += n
    # Residual tokens x - C1[CT1] (C1 rows random centroid values; saturation included).
    cf = c.formats["centroid"]
    ct1 = tb.cim_like(n, 3)
    c1 = tb.nprng.integers(cf.min_int, cf.max_int + 1, size=(int(ct1.max()) + 1, c.d))
    x, idx = tb.tokens(n), tb.cim_like(n, 3)
    res = await tb.run(x, idx, c1[ct1], 0.3, 0.3)
    tb.check(x, idx, c1[ct1], res)
    write_stats({"random_checked": checked + n})


@cocotb.test(skip=BENCH_N is not None, **timeout_us(6.0, _WORK))
async def test_directed(dut):
    tb = CagTB(dut, 2)
    await tb.reset()
    c = tb.comp
    n = min(c.n_max, c.k_max)
    n -= 1 - n % 2  # odd
    tf = c.formats["token"]
    cases = {
        "one_cluster": (tb.tokens(n), np.zeros(n, dtype=int)),
        "all_distinct": (tb.tokens(n), np.arange(n)),
        "alternating": (tb.tokens(n), np.arange(n) % 2),
        "long_runs": (tb.tokens(n), np.repeat(np.arange(n), 7)[:n]),
        "max_sums": (np.full((c.n_max, c.d), tf.max_int), np.zeros(c.n_max, dtype=int)),
        "min_sums": (np.full((c.n_max, c.d), tf.min_int), np.arange(c.n_max) % 2),
        "capacity_reached": (tb.tokens(c.k_max), np.arange(c.k_max)[::-1]),
        "refused": (tb.tokens(7), np.array([0, c.k_max, 1, c.k_max, 1, 0, 2])),
        "too_many_tokens": (tb.tokens(c.n_max + 3), np.zeros(c.n_max + 3, dtype=int)),
    }
    for name, (x, idx) in cases.items():
        if len(idx) > 20 * c.k_max:
            continue
        res = await tb.run(x, idx, None, 0.25, 0.25)
        tb.check(x, idx, None, res)
        write_stats({name: res["n_clusters"]})


@cocotb.test(skip=BENCH_N is None, **timeout_us(4.1, int(BENCH_N or 0) / 64 * _WORK))
async def bench_throughput(dut):
    """No stalls: CACC cycles for n tokens, CAVG cycles for k centroids."""
    tb = CagTB(dut, 3)
    await tb.reset()
    n = int(BENCH_N or 0)
    x, idx = tb.tokens(n), tb.cim_like(n, 6)
    res = await tb.run(x, idx, None, 0.0, 0.0)
    tb.check(x, idx, None, res)
    write_stats({"n": n, "k": res["n_clusters"], "cacc_cycles": res["cacc_cycles"], "cavg_cycles": res["cavg_cycles"]})
