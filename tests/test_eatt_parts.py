"""The E-ATT alignment's sub-components alone (Amaranth simulator): the selection-sum projection
(:class:`hdl.eatt.EattSelectSum`) against :func:`golden.eatt.selection_sum`, and the L1 score
engine (:class:`hdl.eatt.EattL1`) against :func:`golden.eatt.l1_distance`, with their latencies."""

from __future__ import annotations

import random

import numpy as np
import pytest

from golden.eatt import EattFormats, binarize, l1_distance, selection_sum
from hdl.eatt import EattL1, EattSelectSum
from tests.amaranth_helpers import run_sim, wait_until

DEADLINE = 200  # cycles for any one handshake or result (the longest wait here is ~30)


def _row(rows: np.ndarray, i: int) -> list[int]:
    return [int(v) for v in rows[i]]


@pytest.mark.parametrize("d_in,d,n_keys", [(5, 4, 3), (1, 3, 2), (7, 9, 1)])
def test_select_sum_rows_and_latency(d_in, d, n_keys):
    """Key rows then a query row, each ``b + Σ_{x > τ} W[i]`` == the golden selection sum; the row
    is on ``row`` right after the edge that takes the token's last value and stored at the next
    (LATENCY = 2 edges from the last value)."""
    f = EattFormats(d_in=d_in, d_h=d, n_max=4)
    wf = f.weight_fmt()
    rng = np.random.default_rng(d_in * 100 + d)
    wq, wk = (rng.integers(wf.min_int, wf.max_int + 1, (d_in, d)) for _ in range(2))
    bq, bk = (rng.integers(wf.min_int, wf.max_int + 1, d) for _ in range(2))
    xkv, xq = rng.integers(-300, 300, (n_keys, d_in)), rng.integers(-300, 300, (1, d_in))
    tau = 40
    want_k = selection_sum(binarize(xkv, tau), wk) + bk
    want_q = selection_sum(binarize(xq, tau), wq) + bq
    dut = EattSelectSum(fmts=f)
    got: list[tuple[int, int, list[int], int]] = []  # (q, j, row, edges after the last value)
    stall = random.Random(5)

    async def load(ctx, port, w, b):
        for payload in [_row(w, i) for i in range(d_in)] + [[int(v) for v in b]]:
            ctx.set(port.valid, 1)
            ctx.set(port.payload, payload)
            await wait_until(ctx, port.ready, DEADLINE, "W row accepted")
        ctx.set(port.valid, 0)

    async def tb(ctx):
        ctx.set(dut.tau, tau)
        ctx.set(dut.load, 1)
        assert ctx.get(dut.empty)
        await load(ctx, dut.wq, wq, bq)
        await load(ctx, dut.wk, wk, bk)
        assert ctx.get(dut.loaded) and not ctx.get(dut.empty)
        ctx.set(dut.load, 0)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        assert ctx.get(dut.empty) and not ctx.get(dut.loaded)
        tokens = [(0, j, xkv[j]) for j in range(n_keys)] + [(1, 0, xq[0])]
        for q, j, x in tokens:
            for i, value in enumerate(x):
                while stall.random() < 0.3:  # gaps between values change nothing
                    await ctx.tick()
                assert ctx.get(dut.last) == (i == d_in - 1)
                ctx.set(dut.x.valid, 1)
                ctx.set(dut.x.payload, {"value": int(value), "q": q, "j": j})
                await ctx.tick()
                ctx.set(dut.x.valid, 0)
            for edges in range(1, EattSelectSum.LATENCY + 1):
                if ctx.get(dut.row.valid):
                    got.append((ctx.get(dut.row.payload.q), ctx.get(dut.row.payload.j),
                                [int(v) for v in ctx.get(dut.row.payload.acc)], edges))
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"no row for token {(q, j)} within LATENCY edges")
            await ctx.tick()

    run_sim(dut, tb)
    assert [g[:3] for g in got] == ([(0, j, _row(want_k, j)) for j in range(n_keys)] + [(1, 0, _row(want_q, 0))])
    # on ``row`` right after the taking edge: stored at the following edge, LATENCY edges in all
    assert {g[3] for g in got} == {EattSelectSum.LATENCY - 1}


@pytest.mark.parametrize("d,n_keys,stall", [(8, 5, 0.0), (5, 3, 0.4), (17, 4, 0.2)])
def test_l1_scores_and_latency(d, n_keys, stall):
    """Scores ``-‖q − K_j‖₁`` == the golden L1 in key order, the first ``latency_of(d)`` edges
    after the issue with ``s.ready`` high, every key once under random ``s.ready`` stalls."""
    f = EattFormats(d_in=4, d_h=d, n_max=6)
    rng = np.random.default_rng(d + n_keys)
    lim = 1 << (f.acc_width - 2)
    keys, query = rng.integers(-lim, lim, (n_keys, d)), rng.integers(-lim, lim, (1, d))
    want = [-int(v) for v in l1_distance(query, keys)[0]]
    dut = EattL1(fmts=f)
    tree = max(1, next(k for k in range(8) if 4 ** k >= d))  # levels of a 4-input adder tree
    assert dut.latency == EattL1.latency_of(d) == EattL1.FRONT_LATENCY + tree + EattL1.OUT_LATENCY
    got: list[int] = []
    first: list[int] = []
    rnd = random.Random(d)

    async def tb(ctx):
        ctx.set(dut.n_keys, n_keys)
        for q, j, row in [(0, j, keys[j]) for j in range(n_keys)] + [(1, 0, query[0])]:
            ctx.set(dut.row.valid, 1)
            ctx.set(dut.row.payload, {"acc": [int(v) for v in row], "q": q, "j": j})
            await ctx.tick()
        ctx.set(dut.row.valid, 0)
        assert ctx.get(dut.drained)
        ctx.set(dut.start, 1)
        await ctx.tick()  # the edge that starts the issue of key 0
        ctx.set(dut.start, 0)
        edges = 0
        while len(got) < n_keys:
            ready = 0 if (stall and rnd.random() < stall and got) else 1
            ctx.set(dut.s.ready, ready)
            if ctx.get(dut.s.valid) and ready:
                got.append(ctx.get(dut.s.payload))
                if len(got) == 1:
                    first.append(edges)
            await ctx.tick()
            edges += 1
            assert edges < DEADLINE, "scores deadline"
        ctx.set(dut.s.ready, 1)
        await ctx.tick()
        assert ctx.get(dut.drained) and not ctx.get(dut.s.valid)

    run_sim(dut, tb)
    assert got == want
    # the score of key 0 is on s after latency_of(d) edges counted from the issue (the edge after start)
    assert first == [EattL1.latency_of(d)], first


def test_bad_parameters_create_nothing():
    with pytest.raises(TypeError, match="fmts"):
        EattSelectSum(fmts=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fmts"):
        EattL1(fmts={"d_h": 4})  # type: ignore[arg-type]
