"""Amaranth-simulator tests of the CIM (hdl.cim) against golden.cim, with valid/ready stalls."""

from __future__ import annotations

import random

import numpy as np
import pytest

from golden.cim import cluster_index
from hdl import faults
from hdl.cim import ClusterIndexModule
from sim.streams import StreamError, run_amaranth
from sim.tb_cim import run_cim
from tests.amaranth_helpers import run_sim


def drive_cim(dut: ClusterIndexModule, runs: list[np.ndarray], *, p_in: float = 0.0, p_out: float = 0.0,
              seed: int = 0, check: bool = False) -> list[dict]:
    """Each run through the shared stream-harness script of the cocotb testbench
    (``sim.tb_cim.run_cim``; ``clear`` between runs) with random stalls on both streams; collect
    indices, n_clusters, overflow, n_tokens and the cycles from first beat to last index.
    ``check``: compare every index with golden.cim as it arrives."""
    rng = random.Random(seed)

    async def script(io):
        return [await run_cim(io, dut, codes, p_in=p_in, p_out=p_out, rng=rng, clear=r > 0, check=check)
                for r, codes in enumerate(runs)]

    return run_amaranth(dut, script)


def check_runs(dut: ClusterIndexModule, runs: list[np.ndarray], **kw) -> list[dict]:
    got = drive_cim(dut, runs, check=True, **kw)
    for codes, res in zip(runs, got, strict=True):
        want, k, over = cluster_index(codes, k_max=dut.k_max, hash_width=dut.hash_width,
                                      nodes_per_layer=dut.nodes_per_layer, n_max=dut.n_max)
        assert res["indices"] == want.tolist()
        assert res["n_clusters"] == k
        assert bool(res["overflow"]) == over
        assert not res["protocol_error"]
    return got


def _codes(rng: np.random.Generator, n: int, l: int, lo: int, hi: int) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=(n, l))


@pytest.mark.parametrize("internal_skew", [False, True])
@pytest.mark.parametrize("p_in,p_out", [(0.0, 0.0), (0.3, 0.3)])
def test_random_codes_with_stalls(p_in, p_out, internal_skew):
    rng = np.random.default_rng(11)
    dut = ClusterIndexModule(l=4, hash_width=3, n_max=64, k_max=64, internal_skew=internal_skew)
    # Few distinct values per layer: many shared prefixes, repeats and fresh codes.
    runs = [_codes(rng, 45, 4, -1, 1), _codes(rng, 33, 4, -4, 3)]
    check_runs(dut, runs, p_in=p_in, p_out=p_out, seed=3)


def test_directed_identical_distinct_alternating_runs():
    dut = ClusterIndexModule(l=3, hash_width=3, n_max=40, k_max=40, epoch_bits=2)
    rng = np.random.default_rng(5)
    same = np.tile([[2, -3, 1]], (17, 1))  # one cluster
    distinct = np.stack([np.arange(31) % 8 - 4, np.arange(31) // 8, np.zeros(31, int)], axis=1)  # 31 clusters
    a, b = [1, 1, 1], [1, 1, -1]  # share a prefix, differ at the leaf
    alternating = np.array([a, b] * 9 + [a])  # n odd
    runs_ = [np.array([a, a, b, b, b, a, a, b, a, b, b, a, a, a, a, a, b]), _codes(rng, 13, 3, 0, 1)]
    # 5 runs with epoch_bits=2: the epoch wraps and the memories are swept once in between.
    got = check_runs(dut, [same, distinct, alternating] + runs_, p_in=0.2, p_out=0.2, seed=9)
    assert got[0]["n_clusters"] == 1 and got[1]["n_clusters"] == 31 and got[2]["n_clusters"] == 2


def test_capacity_exactly_reached_and_exceeded():
    l, hw, cap = 3, 2, 6
    dut = ClusterIndexModule(l=l, hash_width=hw, n_max=32, k_max=cap, nodes_per_layer=3)
    exact = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [0, 1, 1]])
    over_leaf = np.concatenate([exact, [[1, 0, -1], [0, 0, 0], [1, 0, -1], [1, 0, 1]]])  # 7th cluster refused
    over_node = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [-2, 1, 0], [0, 0, 0], [-2, 1, 0]])  # 4th depth-1 node
    got = check_runs(dut, [exact, over_leaf, over_node, exact], p_in=0.25, p_out=0.25, seed=1)
    assert [g["overflow"] for g in got] == [0, 1, 1, 0]  # sticky within a run, cleared by clear
    assert got[0]["n_clusters"] == cap
    assert cap in got[1]["indices"] and got[1]["indices"][-1] != cap


def test_n_max_exceeded():
    dut = ClusterIndexModule(l=2, hash_width=2, n_max=5, k_max=8)
    codes = np.array([[0, 0], [1, 1], [0, 0], [1, 0], [0, 1], [0, 0], [1, 1]])
    got = check_runs(dut, [codes])
    assert got[0]["indices"][5:] == [8, 8] and got[0]["n_tokens"] == 5


@pytest.mark.parametrize("internal_skew", [False, True])
def test_single_layer_and_full_throughput(internal_skew):
    check_runs(ClusterIndexModule(l=1, hash_width=3, n_max=16, k_max=8, internal_skew=internal_skew),
               [np.array([[3], [-4], [3], [3], [0], [-4], [1]])], p_in=0.3, p_out=0.3, seed=2)
    rng = np.random.default_rng(3)
    dut = ClusterIndexModule(l=5, hash_width=2, n_max=128, k_max=128, internal_skew=internal_skew)
    got = check_runs(dut, [_codes(rng, 100, 5, -1, 0)])
    # One token per cycle: first beat to last index (inclusive) = n + latency (2 cycles per layer + 1).
    assert dut.latency == 2 * dut.l + 1
    assert got[0]["cycles"] == 100 + dut.latency, got[0]["cycles"]


def test_bypass_is_needed():
    """With the write bypass removed, consecutive equal new codes get several clusters."""
    with faults.injected(ClusterIndexModule, "no_bypass"):
        dut = ClusterIndexModule(l=3, hash_width=2, n_max=16, k_max=16)
        broken = ClusterIndexModule(l=3, hash_width=2, n_max=16, k_max=16)
    codes = np.array([[1, 0, 1]] * 4 + [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
    got = drive_cim(dut, [codes])[0]
    want, k, _ = cluster_index(codes, k_max=16, hash_width=2)
    assert got["indices"] != want.tolist() and got["n_clusters"] != k
    with pytest.raises(StreamError, match="indices: mismatch at index"):  # the checked harness stops at once
        drive_cim(broken, [codes], check=True)


def test_protocol_error_on_broken_skew():
    dut = ClusterIndexModule(l=3, hash_width=2, n_max=16, k_max=16)
    seen = {}

    async def tb(ctx):
        while not ctx.get(dut.idle):
            await ctx.tick()
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"hash": [0, 0, 0], "lane_valid": 0b011})  # lane 1 without a token
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        seen["err"] = ctx.get(dut.protocol_error)

    run_sim(dut, tb)
    assert seen["err"] == 1


@pytest.mark.parametrize("kw,name", [
    ({"l": 0}, "l"), ({"hash_width": 13}, "hash_width"), ({"k_max": 0}, "k_max"),
    ({"nodes_per_layer": 300}, "nodes_per_layer"), ({"l": 2.0}, "l"),
])
def test_bad_parameters(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        ClusterIndexModule(**kw)


def test_golden_rejects_out_of_range_hashes():
    with pytest.raises(ValueError, match="hash_codes"):
        cluster_index(np.array([[8, 0]]), k_max=4, hash_width=4)
