"""cocotb testbench of the CIM (``hdl.cim``) against ``golden.cim`` with random valid/ready stalls.

Runs go through :func:`run_cim`, written once on the stream harness (``sim/streams.py``) and shared
with the Amaranth tests (``tests/test_cim.py``); payloads are packed with the component's own
``amaranth.lib.data`` layout. With ``ATTN_RTL_BENCH_N`` set only the benchmark
test runs (``sim/bench_cim_cag.py``).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np

from golden.cim import cluster_index, skew_lanes
from hdl.cim import ClusterIndexModule
from sim.runner import write_stats
from sim.streams import Scoreboard, Sink, Source, StreamBench, StreamIO, layout_of, wait_for
from sim.tbutil import BlockTB, timeout_us

BENCH_N = os.environ.get("ATTN_RTL_BENCH_N")
# Timeouts: simulated times measured at n_max = 64 (tests/test_cocotb_cim_cag.py), scaled by
# this run's token capacity (the default-sized configurations are bigger) or bench token count.
_CAPACITY = json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}").get("n_max", 64)
_WORK = _CAPACITY / 64


def cim_beats(comp: ClusterIndexModule, codes: np.ndarray) -> list[dict]:
    """The ``i`` payloads for ``codes`` (one token per beat, or the externally skewed lanes)."""
    if comp.internal_skew:
        return [{"hash": [int(v) for v in code]} for code in codes]
    hashes, valid = skew_lanes(codes)
    return [{"hash": [int(v) for v in hashes[t]],
             "lane_valid": int(sum(1 << j for j in range(codes.shape[1]) if valid[t, j]))} for t in range(len(hashes))]


async def run_cim(io: StreamIO, comp: ClusterIndexModule, codes: np.ndarray, *, p_in: float = 0.0,
                  p_out: float = 0.0, rng: random.Random | None = None, clear: bool = True,
                  check: bool = True) -> dict:
    """One run on either adapter: wait until idle (bounded: a memory sweep), pulse ``clear``, stream
    the hash beats and collect one index per token with random stalls on both streams. With
    ``check`` every index is compared ``==`` with :func:`golden.cim.cluster_index` as it arrives
    (``check=False``: counted only, for fault injection). No index may follow the last one for
    ``drain`` cycles. Returns the indices, the status registers and the cycles from the first
    beat to the last index."""
    rng = rng or random.Random(0)
    await wait_for(io, "idle", deadline_cycles=2 * comp.sweep_cycles + 100, what="CIM idle")
    if clear:
        await io.step({"clear": 1}, [])
    beats = cim_beats(comp, codes)
    if check:
        want, _, _ = cluster_index(codes, k_max=comp.k_max, hash_width=comp.hash_width,
                                   nodes_per_layer=comp.nodes_per_layer, n_max=comp.n_max)
        expected: list | int = want.tolist()
    else:
        expected = len(codes)
    budget = 20 * (len(beats) + 50)  # a stalled CIM fails here, far beyond any stall pattern
    i = Source("i", layout_of(comp.i.payload), beats, p_stall=p_in, rng=rng, wait_cycles=budget)
    o = Sink("o", layout_of(comp.o.payload), Scoreboard("indices", expected), p_stall=p_out, rng=rng,
             wait_cycles=budget)
    await StreamBench(i, o, before=lambda b: {"clear": 0}, deadline_cycles=budget,
                      drain_cycles=comp.latency + 4).run(io)
    regs = await io.peek(["n_clusters", "overflow", "n_tokens", "protocol_error"])
    return {"indices": o.beats, **regs, "cycles": o.transfers[-1] - i.transfers[0] + 1}


class CimTB(BlockTB):
    BLOCK = "cim"
    comp: ClusterIndexModule

    async def run(self, codes: np.ndarray, p_in: float, p_out: float, clear: bool = True) -> dict:
        return await run_cim(self.io, self.comp, codes, p_in=p_in, p_out=p_out, rng=self.rng, clear=clear)

    def check(self, codes: np.ndarray, res: dict) -> None:
        c = self.comp
        want, k, over = cluster_index(codes, k_max=c.k_max, hash_width=c.hash_width,
                                      nodes_per_layer=c.nodes_per_layer, n_max=c.n_max)
        assert res["indices"] == want.tolist(), f"indices {res['indices']} != {want.tolist()}"
        assert res["n_clusters"] == k
        assert bool(res["overflow"]) == over
        assert not res["protocol_error"]

    def random_codes(self, n: int, values: int) -> np.ndarray:
        lo = max(-(1 << (self.comp.hash_width - 1)), -(values // 2))
        return self.nprng.integers(lo, lo + values, size=(n, self.comp.l))


@cocotb.test(skip=BENCH_N is not None, **timeout_us(8.1, _WORK))
async def test_random_with_stalls(dut):
    tb = CimTB(dut, 1)
    await tb.reset()
    c = tb.comp
    checked = 0
    for values, p in ((2, 0.3), (3, 0.0), (1 << c.hash_width, 0.4)):
        codes = tb.random_codes(min(c.n_max, 3 * c.k_max // 2), values)
        res = await tb.run(codes, p, p)
        tb.check(codes, res)
        checked += len(codes)
    write_stats({"random_checked": checked})


@cocotb.test(skip=BENCH_N is not None, **timeout_us(11.6, _WORK))
async def test_directed(dut):
    tb = CimTB(dut, 2)
    await tb.reset()
    c = tb.comp
    l, n = c.l, min(c.n_max, c.k_max)
    half = 1 << (c.hash_width - 1)
    # n distinct codes: the token number in base 2**hash_width over the layers (may overflow at
    # narrow configs; the golden model says what must happen).
    digits = np.stack([(np.arange(n) >> (c.hash_width * j)) % (2 * half) - half for j in range(l)], axis=1)
    a = np.zeros(l, dtype=int)
    b = a.copy()
    b[-1] = 1  # shares every layer with a but the leaf
    cases = {
        "identical": np.tile(a, (n - 1 if n % 2 == 0 else n, 1)),  # n odd
        "distinct": digits,
        "alternating": np.array([a, b] * (n // 4) + [a]),
        "long_runs": np.repeat(tb.random_codes(max(3, n // 8), 2), 8, axis=0)[: c.n_max],
    }
    if c.k_max < c.n_max:
        extra = np.stack([(np.arange(c.k_max + 1) >> (c.hash_width * j)) % (2 * half) - half
                          for j in range(l)], axis=1)
        cases["capacity_exceeded"] = np.concatenate([extra, extra[:3]])[: c.n_max]
        cases["capacity_reached"] = extra[:-1]
    stats = {}
    for name, codes in cases.items():
        res = await tb.run(codes, 0.25, 0.25)
        tb.check(codes, res)
        stats[name] = res["n_clusters"]
    write_stats({"directed": stats})


@cocotb.test(skip=BENCH_N is None, **timeout_us(8.1, int(BENCH_N or 0) / 64))
async def bench_throughput(dut):
    """No stalls: cycles from the first beat to the last index, for n tokens."""
    tb = CimTB(dut, 3)
    await tb.reset()
    n = int(BENCH_N or 0)
    codes = tb.random_codes(n, 2)
    res = await tb.run(codes, 0.0, 0.0)
    tb.check(codes, res)
    write_stats({"n": n, "cycles": res["cycles"], "clusters": res["n_clusters"]})
