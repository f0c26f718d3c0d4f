"""cocotb testbench of the CIM (``hdl.cim``) against ``golden.cim`` with random valid/ready stalls.

One coroutine drives both streams cycle by cycle: inputs change after the falling edge, valid /
ready are sampled in the read-only phase before the rising edge. Payloads are packed with the
component's own ``amaranth.lib.data`` layout. With ``ATTN_RTL_BENCH_N`` set only the benchmark
test runs (``sim/bench_cim_cag.py``).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from amaranth.hdl import Const
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from golden.cim import cluster_index, skew_lanes
from hdl.cim import ClusterIndexModule
from sim.runner import write_stats
from sim.tbutil import CycleDeadline, block_component, read_unsigned, start_clock_and_reset, tb_rng, timeout_us

BENCH_N = os.environ.get("ATTN_RTL_BENCH_N")
# Timeouts: simulated times measured at max_tokens = 64 (tests/test_cocotb_cim_cag.py), scaled by
# this run's token capacity (the default-sized configurations are bigger) or bench token count.
_CAPACITY = json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}").get("max_tokens", 64)
_WORK = _CAPACITY / 64


class CimTB:
    def __init__(self, dut, salt: int = 0):
        self.dut = dut
        self.comp: ClusterIndexModule = block_component("cim")
        self.layout = data.Layout.cast(self.comp.i.payload.shape())
        self.rng = tb_rng(salt)
        self.nprng = np.random.default_rng(self.rng.randrange(1 << 30))

    async def reset(self) -> None:
        await start_clock_and_reset(self.dut, {"i__valid": 0, "i__payload": 0, "o__ready": 0, "clear": 0})

    def beats(self, codes: np.ndarray) -> list[int]:
        if self.comp.internal_skew:
            return [int(Const.cast(self.layout.const({"hash": [int(v) for v in code]})).value) for code in codes]
        hashes, valid = skew_lanes(codes)
        return [int(Const.cast(self.layout.const({
            "hash": [int(v) for v in hashes[t]],
            "lane_valid": int(sum(1 << j for j in range(codes.shape[1]) if valid[t, j]))})).value)
            for t in range(len(hashes))]

    async def wait_idle(self) -> None:
        # the longest wait is a memory sweep (after reset, or an epoch wrap), plus a run's drain
        deadline = CycleDeadline(2 * self.comp.sweep_cycles + 100, "CIM idle")
        await FallingEdge(self.dut.clk)
        while True:
            await ReadOnly()
            if read_unsigned(self.dut.idle):
                break
            deadline.tick()
            await FallingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)

    async def run(self, codes: np.ndarray, p_in: float, p_out: float, clear: bool = True) -> dict:
        d = self.dut
        await self.wait_idle()
        if clear:
            d.clear.value = 1
            await FallingEdge(d.clk)
            d.clear.value = 0
        beats = self.beats(codes)
        got: list[int] = []
        b, holding, cycle, first, last = 0, False, 0, None, None
        while len(got) < len(codes):
            if not holding and b < len(beats) and self.rng.random() >= p_in:
                d.i__payload.value = beats[b]
                holding = True
            d.i__valid.value = int(holding)
            ready = self.rng.random() >= p_out
            d.o__ready.value = int(ready)
            await ReadOnly()
            took = holding and read_unsigned(d.i__ready)
            gave = ready and read_unsigned(d.o__valid)
            payload = read_unsigned(d.o__payload) if gave else None
            await RisingEdge(d.clk)
            cycle += 1
            if took:
                b += 1
                holding = False
                first = cycle if first is None else first
            if gave:
                got.append(payload)
                last = cycle
            assert cycle < 20 * (len(beats) + 50), "CIM stopped making progress"
            await FallingEdge(d.clk)
        d.i__valid.value = 0
        d.o__ready.value = 0
        await FallingEdge(d.clk)
        await ReadOnly()
        res = {"indices": got, "n_clusters": read_unsigned(d.n_clusters), "overflow": read_unsigned(d.overflow),
               "protocol_error": read_unsigned(d.protocol_error), "cycles": last - first + 1}
        await FallingEdge(d.clk)
        return res

    def check(self, codes: np.ndarray, res: dict) -> None:
        c = self.comp
        want, k, over = cluster_index(codes, max_clusters=c.max_clusters, hash_width=c.hash_width,
                                      nodes_per_layer=c.nodes_per_layer, max_tokens=c.max_tokens)
        assert res["indices"] == want.tolist(), f"indices {res['indices']} != {want.tolist()}"
        assert res["n_clusters"] == k
        assert bool(res["overflow"]) == over
        assert not res["protocol_error"]

    def random_codes(self, n: int, values: int) -> np.ndarray:
        lo = max(-(1 << (self.comp.hash_width - 1)), -(values // 2))
        return self.nprng.integers(lo, lo + values, size=(n, self.comp.hash_len))


@cocotb.test(skip=BENCH_N is not None, **timeout_us(8.1, _WORK))
async def test_random_with_stalls(dut):
    tb = CimTB(dut, 1)
    await tb.reset()
    c = tb.comp
    checked = 0
    for values, p in ((2, 0.3), (3, 0.0), (1 << c.hash_width, 0.4)):
        codes = tb.random_codes(min(c.max_tokens, 3 * c.max_clusters // 2), values)
        res = await tb.run(codes, p, p)
        tb.check(codes, res)
        checked += len(codes)
    write_stats({"random_checked": checked})


@cocotb.test(skip=BENCH_N is not None, **timeout_us(11.6, _WORK))
async def test_directed(dut):
    tb = CimTB(dut, 2)
    await tb.reset()
    c = tb.comp
    l, n = c.hash_len, min(c.max_tokens, c.max_clusters)
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
        "long_runs": np.repeat(tb.random_codes(max(3, n // 8), 2), 8, axis=0)[: c.max_tokens],
    }
    if c.max_clusters < c.max_tokens:
        extra = np.stack([(np.arange(c.max_clusters + 1) >> (c.hash_width * j)) % (2 * half) - half
                          for j in range(l)], axis=1)
        cases["capacity_exceeded"] = np.concatenate([extra, extra[:3]])[: c.max_tokens]
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
