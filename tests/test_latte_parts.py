"""LATTE's engine parts on their own (Amaranth simulator): the EST pass against golden
estimate_scores, the FLAG pass against golden kept_mask."""

from __future__ import annotations

import numpy as np
import pytest

from golden.latte import LatteFormats, estimate_scores, kept_mask
from hdl.latte import EstimatePass, FilterPass, key_addr_width
from tests.amaranth_helpers import run_sim, wait_until

LANES = 4


def _pack(chunk) -> int:
    """A chunk of signed 8-bit lanes as the raw bits of an ``ArrayLayout(signed(8), lanes)`` port."""
    return sum((int(x) & 0xFF) << (8 * i) for i, x in enumerate(chunk))


@pytest.mark.parametrize("lanes,d_h,n", [(4, 8, 5), (2, 6, 3), (8, 8, 1)])
def test_estimate_pass_issues_every_chunk_and_writes_golden_estimates(lanes, d_h, n):
    """The EST pass with K/Q buffer models (registered reads: data two cycles after the address):
    it issues the n·C (key, chunk) addresses in order, one per cycle, from one ``start`` pulse;
    A_est[j] (golden ``estimate_scores``) is written ``latency`` cycles after key j's last chunk is
    issued; ``emax`` is the row maximum when ``busy`` falls."""
    fmts = LatteFormats(d_h=d_h, n_max=8)
    dut = EstimatePass(fmts=fmts, lanes=lanes)
    C = d_h // lanes
    rng = np.random.default_rng(lanes * 10 + n)
    q = rng.integers(-128, 128, (1, d_h))
    k = rng.integers(-128, 128, (n, d_h))
    want = estimate_scores(q, k)[0]
    flat_k, flat_q = k.reshape(n * C, lanes), q.reshape(C, lanes)
    addrs: list[tuple[int, int]] = []
    writes: list[tuple[int, int, int]] = []
    out: dict = {}

    async def bench(ctx):
        ctx.set(dut.n_keys, n)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cyc in range(n * C + dut.latency + 8):
            addrs.append((ctx.get(dut.k_addr), ctx.get(dut.q_addr)))
            if cyc >= 2:  # the buffers' registered read data of the addresses two cycles ago
                ka, qa = addrs[cyc - 2]
                ctx.set(dut.k.as_value(), _pack(flat_k[ka % (n * C)]))
                ctx.set(dut.q.as_value(), _pack(flat_q[qa % C]))
            if ctx.get(dut.est_en):
                writes.append((cyc, ctx.get(dut.est_addr), ctx.get(dut.est_data)))
            if not ctx.get(dut.busy) and "idle_at" not in out:
                out["idle_at"], out["emax"] = cyc, ctx.get(dut.emax)
            await ctx.tick()

    run_sim(dut, bench, deadline_cycles=200)
    assert addrs[:n * C] == [(j * C + c, c) for j in range(n) for c in range(C)]
    assert writes == [(j * C + C - 1 + dut.latency, j, int(want[j])) for j in range(n)]
    # busy until the row maximum (one register after the last write) is final
    assert out == {"idle_at": writes[-1][0] + 1 + EstimatePass.MAX_LATENCY, "emax": int(want.max())}


def _run_filter(fmts: LatteFormats, a_est: np.ndarray, tau: int) -> dict:
    """Write ``a_est`` into the pass's A_est buffer, start one scan, read the kept list back.

    Returns the edges from the start edge until the one that samples ``busy`` low (both counted),
    ``list_len`` and the list entries."""
    dut = FilterPass(fmts=fmts, lanes=LANES)
    n = len(a_est)
    out: dict = {}

    async def bench(ctx):
        ctx.set(dut.n_keys, n)
        ctx.set(dut.tau, tau)
        for j, a in enumerate(a_est):  # the buffer writes EstimatePass makes, in any cycle before the scan
            ctx.set(dut.est_en, 1)
            ctx.set(dut.est_addr, j)
            ctx.set(dut.est_data, int(a))
            await ctx.tick()
        ctx.set(dut.est_en, 0)
        ctx.set(dut.emax, int(a_est.max()))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        # busy covers the scan's issue and its LATENCY-deep pipeline; bounded wait
        out["edges"] = 1 + await wait_until(ctx, ~dut.busy, n + FilterPass.LATENCY + 4, "FLAG pass end")
        out["list_len"] = ctx.get(dut.list_len)
        entries = []
        for t in range(out["list_len"]):  # the list's read port is registered: data one edge later
            ctx.set(dut.list_addr, t)
            await ctx.tick()
            entries.append((ctx.get(dut.list_entry.kb), ctx.get(dut.list_entry.a)))
        out["entries"] = entries

    run_sim(dut, bench, deadline_cycles=4 * fmts.n_max + 64)
    return out


@pytest.mark.parametrize("tau", [0, 3, 40, 1 << 12])
def test_filter_pass_keeps_golden_mask_in_key_order(tau):
    """Kept list = keys with ``max - A_est <= tau`` (golden kept_mask), in key order, with the key's
    K/V base ``j·C`` and its estimate. ``busy`` falls n + LATENCY edges after the start edge (issue
    for n edges, then the LATENCY-deep pipeline); the bench sees it low at the edge after that."""
    fmts = LatteFormats(d_h=8, n_max=12)
    C = fmts.d_h // LANES
    rng = np.random.default_rng(tau)
    a_est = rng.integers(-300, 300, 11)
    a_est[[2, 7]] = a_est.max()  # a tie at the maximum: both kept even at tau = 0
    got = _run_filter(fmts, a_est, min(tau, fmts.tau_max))
    keep = np.flatnonzero(kept_mask(a_est[None, :], min(tau, fmts.tau_max))[0])
    assert got["list_len"] == len(keep)
    assert got["entries"] == [(int(j) * C, int(a_est[j])) for j in keep]
    assert got["edges"] == 1 + len(a_est) + FilterPass.LATENCY + 1


def test_filter_pass_single_key_and_extremes():
    """n = 1 (always kept); the most negative and positive estimates of the format."""
    fmts = LatteFormats(d_h=8, n_max=4)
    lo, hi = -(1 << (fmts.est_width - 1)), (1 << (fmts.est_width - 1)) - 1
    assert _run_filter(fmts, np.array([lo]), 0)["entries"] == [(0, lo)]
    got = _run_filter(fmts, np.array([hi, lo, hi, lo]), fmts.tau_max)
    keep = np.flatnonzero(kept_mask(np.array([[hi, lo, hi, lo]]), fmts.tau_max)[0])
    assert got["entries"] == [(int(j) * 2, [hi, lo, hi, lo][j]) for j in keep]


def test_parts_reject_bad_parameters():
    fmts = LatteFormats(d_h=8, n_max=4)
    with pytest.raises(ValueError, match="lanes=3 must divide d_h=8"):
        FilterPass(fmts=fmts, lanes=3)
    with pytest.raises(TypeError, match="fmts"):
        FilterPass(fmts=None, lanes=4)
    with pytest.raises(TypeError, match="lanes"):
        FilterPass(fmts=fmts, lanes=2.0)
    assert key_addr_width(4, 2) == 3 and key_addr_width(1, 1) == 1
