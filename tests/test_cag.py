"""Amaranth-simulator tests of the CAG (hdl.cag) against golden.cag, with valid/ready stalls."""

from __future__ import annotations

import random

import numpy as np
import pytest

from golden.cag import CENTROID_FMT, TOKEN_FMT, aggregate, residual_tokens
from golden.fixed import QFormat
from hdl import faults
from hdl.arith import ReciprocalScaler
from hdl.cag import CentroidAggregator
from sim.streams import StreamError, run_amaranth
from sim.tb_cag import run_cag


def drive_cag(dut: CentroidAggregator, runs: list[dict], *, p_in: float = 0.0, p_out: float = 0.0,
              seed: int = 0, check: bool = False) -> list[dict]:
    """Each run: ``x`` (n × d raw), ``indices`` (n), optional ``centroids`` (n × d raw, residual
    mode), through the shared stream-harness script of the cocotb testbench (``sim.tb_cag.run_cag``)
    with random stalls; collects centroid beats and the flags. ``check``: compare every beat with
    golden.cag as it arrives."""
    rng = random.Random(seed)

    async def script(io):
        return [await run_cag(io, dut, run["x"], run["indices"], run.get("centroids"), p_in=p_in, p_out=p_out,
                              rng=rng, check=check) for run in runs]

    return run_amaranth(dut, script)


def check_runs(dut: CentroidAggregator, runs: list[dict], **kw) -> list[dict]:
    got = drive_cag(dut, runs, check=True, **kw)
    for run, res in zip(runs, got, strict=True):
        want = aggregate(run["x"], run["indices"], k_max=dut.k_max, n_max=dut.n_max,
                         recip_spec=dut.recip_spec, residual_centroids=run.get("centroids"))
        k = want.n_clusters
        assert res["n_clusters"] == k
        assert [g[0] for g in res["beats"]] == list(range(k))
        assert [g[1] for g in res["beats"]] == want.counts.tolist()
        assert [g[2] for g in res["beats"]] == want.centroids.tolist()
        assert [g[3] for g in res["beats"]] == [int(c == k - 1) for c in range(k)]
        assert bool(res["overflow"]) == want.overflow
        assert bool(res["saturated"]) == want.saturated
    return got


def _tokens(rng: np.random.Generator, n: int, d: int, fmt: QFormat = TOKEN_FMT) -> np.ndarray:
    return rng.integers(fmt.min_int, fmt.max_int + 1, size=(n, d))


def _runs_of(rng: np.random.Generator, n: int, k: int, mean_run: float) -> np.ndarray:
    """Indices in first-appearance order with geometric run lengths (CIM-like)."""
    out, seen = [], 0
    while len(out) < n:
        c = seen if (seen < k and rng.random() < 0.4) else int(rng.integers(0, max(seen, 1)))
        seen = max(seen, c + 1)
        out += [c] * int(rng.geometric(1 / mean_run))
    return np.array(out[:n])


@pytest.mark.parametrize("p_in,p_out", [(0.0, 0.0), (0.3, 0.4)])
def test_random_runs_with_stalls(p_in, p_out):
    rng = np.random.default_rng(4)
    dut = CentroidAggregator(d=3, k_max=16, n_max=64)
    runs = [{"x": _tokens(rng, 47, 3), "indices": _runs_of(rng, 47, 16, 2.0)},
            {"x": _tokens(rng, 30, 3), "indices": rng.integers(0, 5, 30)}]
    check_runs(dut, runs, p_in=p_in, p_out=p_out, seed=7)


def test_directed_patterns():
    rng = np.random.default_rng(8)
    d, n = 2, 37  # n odd
    dut = CentroidAggregator(d=d, k_max=40, n_max=40)
    runs = [
        {"x": _tokens(rng, n, d), "indices": np.zeros(n, int)},  # one cluster, one long run
        {"x": _tokens(rng, n, d), "indices": np.arange(n)},  # all distinct
        {"x": _tokens(rng, n, d), "indices": np.arange(n) % 2},  # alternating a, b, a, b
        {"x": _tokens(rng, n, d), "indices": np.array([0, 1, 0, 2, 0, 1, 1, 1, 2, 2, 0] * 3 + [3] * 4)},
        {"x": np.full((40, d), TOKEN_FMT.max_int), "indices": np.array([0] * 39 + [1])},  # sums at the top
        {"x": np.full((7, d), TOKEN_FMT.min_int), "indices": np.array([1, 1, 0, 0, 1, 0, 0])},
    ]
    check_runs(dut, runs, p_in=0.2, p_out=0.3, seed=1)


def test_capacity_and_refused_tokens():
    rng = np.random.default_rng(9)
    dut = CentroidAggregator(d=2, k_max=4, n_max=10)
    runs = [
        {"x": _tokens(rng, 10, 2), "indices": np.array([0, 1, 2, 3, 3, 2, 1, 0, 0, 3])},  # exactly full
        {"x": _tokens(rng, 9, 2), "indices": np.array([0, 4, 1, 4, 1, 2, 4, 2, 4])},  # sentinel 4 refused
        {"x": _tokens(rng, 13, 2), "indices": np.array([0] * 13)},  # more than n_max
        {"x": _tokens(rng, 3, 2), "indices": np.array([4, 4, 4])},  # nothing accepted: no centroid
        {"x": _tokens(rng, 4, 2), "indices": np.array([2, 2, 3, 2])},  # clusters 0, 1 empty: zero rows
    ]
    got = check_runs(dut, runs, p_in=0.2, p_out=0.2, seed=3)
    assert [g["overflow"] for g in got] == [0, 1, 1, 1, 0]


def test_residual_input():
    rng = np.random.default_rng(10)
    d, n = 4, 29
    dut = CentroidAggregator(d=d, k_max=8, n_max=32)
    ct1 = rng.integers(0, 5, n)
    c1 = rng.integers(CENTROID_FMT.min_int, CENTROID_FMT.max_int + 1, (5, d))
    x = _tokens(rng, n, d)
    r, sat = residual_tokens(x, c1, ct1)
    assert sat.any()  # residual saturation exercised
    runs = [{"x": x, "indices": rng.integers(0, 8, n), "centroids": c1[ct1]},
            {"x": x // 4, "indices": ct1, "centroids": c1[ct1] // 4}]
    got = check_runs(dut, runs, p_in=0.3, p_out=0.3, seed=5)
    assert got[0]["saturated"] == 1


def test_throughput_and_latency():
    rng = np.random.default_rng(12)
    n, k = 60, 9
    dut = CentroidAggregator(d=2, k_max=16, n_max=64)
    got = check_runs(dut, [{"x": _tokens(rng, n, 2), "indices": _runs_of(rng, n, k, 3.0)}])[0]
    assert got["acc_done"] - got["first"] + 1 == n  # CACC: one token per cycle
    kk = got["n_clusters"]
    # After the last token: stages 1-2, flush, k reads, read latency + word register, scaler latency.
    assert got["last_out"] - got["acc_done"] == 3 + kk + 2 + ReciprocalScaler.LATENCY, got
    # the class constants (readable without building a CAG) state the same figures
    assert CentroidAggregator.FLUSH_LATENCY + CentroidAggregator.CAVG_LATENCY == 3 + 2 + ReciprocalScaler.LATENCY
    assert dut.latency == {"cacc": 3, "cavg": 2 + ReciprocalScaler.LATENCY, "flush": 3}


@pytest.mark.parametrize("fault", ["no_run_register", "no_forward"])
def test_disabled_hazard_paths_fail(fault):
    """Without the run register (or the same-edge forward) stale sums are read back."""
    rng = np.random.default_rng(13)
    with faults.injected(CentroidAggregator, fault):
        dut = CentroidAggregator(d=2, k_max=8, n_max=32)
        broken = CentroidAggregator(d=2, k_max=8, n_max=32)
    idx = np.array([0, 0, 1, 0, 1, 1, 2, 0, 2, 0, 0])
    run = {"x": _tokens(rng, len(idx), 2), "indices": idx}
    got = drive_cag(dut, [run])[0]
    want = aggregate(run["x"], idx, k_max=8, n_max=32, recip_spec=dut.recip_spec)
    assert [g[2] for g in got["beats"]] != want.centroids.tolist()
    with pytest.raises(StreamError, match="centroid beats: mismatch at index"):  # the checked harness stops at once
        drive_cag(broken, [run], check=True)


@pytest.mark.parametrize("kw,name", [
    ({"d": 0}, "d"), ({"n_max": 1.5}, "n_max"), ({"token_fmt": QFormat(8, 2, signed=False)}, "token_fmt"),
])
def test_bad_parameters(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        CentroidAggregator(**kw)


def test_golden_matches_float_models():
    """The fixed-point golden agrees with the float algorithm (golden.lsh) within the centroid
    rounding, and the CIM golden with golden.lsh.cluster_indices when capacity is ample."""
    from golden.cim import cluster_index
    from golden.lsh import centroids, cluster_indices

    rng = np.random.default_rng(14)
    codes = rng.integers(-2, 2, size=(300, 4))
    idx, k, over = cluster_index(codes, k_max=300, hash_width=3)
    ref_idx, ref_k = cluster_indices(codes)
    assert idx.tolist() == ref_idx.tolist() and k == ref_k and not over
    x = _tokens(rng, 300, 5)
    res = aggregate(x, idx, k_max=300, n_max=512)
    mean, counts = centroids(TOKEN_FMT.to_float(x), idx, k)
    assert res.counts.tolist() == counts.tolist()
    err = np.abs(CENTROID_FMT.to_float(res.centroids) - mean) / CENTROID_FMT.lsb
    assert err.max() <= 0.52  # half an LSB of rounding plus the reciprocal's mantissa error
