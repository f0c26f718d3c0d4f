"""cocotb testbench of the ``latte`` block against :func:`golden.latte.latte_fixed_raw`.

Random heads (random τ, random valid/ready stalls on Q/K/V/O, several heads back to back),
directed corners (τ = 0 with ties, τ huge, all-equal scores, extreme operands, n = 1), a real
head handed over by pytest (``LATTE_REAL_HEAD``: an .npz) and the benchmark run
(``LATTE_BENCH``: JSON list of cases, no stalls, cycles per head into the stats).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np

from golden.latte import LatteFormats, encode_score_scale, latte_fixed_raw
from hdl.latte import Latte
from sim.runner import tb_params, write_stats
from sim.streams import CocotbIO, Scoreboard, Sink, Source, StreamBench, StreamIO, layout_of
from sim.tbutil import bench_work, block_component, npz_work, start_clock_and_reset, tb_np_rng, tb_rng, timeout_us

# Timeouts (simulated us) were measured on the configurations of tests/test_cocotb_latte.py, the
# largest having n_max**2 * d_h / lanes = 4096; larger parameter sets scale the bound.
_P = {"n_max": 16, "d_h": 16, "lanes": 4, **json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")}
_WORK = _P["n_max"] ** 2 * _P["d_h"] / _P["lanes"] / 4096


DRAIN_CYCLES = 32  # after the last expected row, o (and the EST probe) must stay silent this long


def head_budget(fmts: LatteFormats, lanes: int, m: int, n: int) -> int:
    """Cycle bound for one head: ~10x the stall-free head (two passes of n keys per query row
    plus the pipeline), so random stalls never reach it but a lost beat does."""
    chunks = fmts.d_h // lanes
    return 10 * (m + 1) * (2 * n * chunks + n + 64) + 1000


def _chunks(x: np.ndarray, lanes: int) -> list[list[int]]:
    return [[int(v) for v in row[c:c + lanes]] for row in x for c in range(0, x.shape[1], lanes)]


async def run_latte_head(io: StreamIO, comp: Latte, q, k, v, tau: int, mant: int, shift: int, *, stall: float = 0.0,
                         rng: random.Random | None = None, deadline_cycles: int | None = None) -> dict:
    """One head through ``comp`` (Amaranth: the dut; cocotb: the component the Verilog came from),
    on either adapter. Every o row (data and kept count) is compared ``==`` with
    :func:`golden.latte.latte_fixed_raw` as it arrives; the q/k/v streams get random valid gaps and
    o random ready gaps (``stall``); nothing may follow the last row for ``DRAIN_CYCLES``; the block
    must be idle within 3 cycles of the last row. The A_est buffer writes are checked by the
    Amaranth tests on the ``front.est`` ports (``tests/test_latte.py``). Returns the figures read from
    the RTL."""
    fmts, lanes = comp.fmts, comp.lanes
    m_rows, d_h = q.shape
    n = k.shape[0]
    want = latte_fixed_raw(q, k, v, tau, mant, shift, fmts)
    rng = rng or random.Random(0)
    deadline = deadline_cycles or head_budget(fmts, lanes, m_rows, n)
    beats_per_row = d_h // lanes

    def row_of(beats: list[dict]) -> dict | None:
        if len(beats) < beats_per_row:
            return None
        return {"row": [x for b in beats for x in b["data"]], "kept": beats[-1]["kept"]}  # the RTL's count: last beat

    expected = [{"row": want.out[r].tolist(), "kept": int(want.kept_count[r])} for r in range(m_rows)]
    chunk = layout_of(comp.q.payload)
    agents: list = [Source(name, chunk, _chunks(x, lanes), p_stall=stall, rng=rng, wait_cycles=deadline)
                    for name, x in (("k", k), ("v", v), ("q", q))]
    rows = Sink("o", layout_of(comp.o.payload), Scoreboard("o rows", expected), p_stall=stall, rng=rng,
                collate=row_of, wait_cycles=deadline)
    agents.append(rows)
    config = {"n_keys": n, "n_queries": m_rows, "tau": min(tau, fmts.tau_max), "scale_mant": mant,
              "scale_shift": shift}
    idle_after: list[int] = []

    def note_idle(bench: StreamBench, s) -> None:
        if rows.scoreboard.complete and s["idle"] and not idle_after:
            idle_after.append(bench.cycle - rows.transfers[-1])

    bench = StreamBench(*agents, before=lambda b: config, after=note_idle, watch=["idle"],
                        deadline_cycles=deadline + DRAIN_CYCLES, drain_cycles=DRAIN_CYCLES)
    await bench.run(io)
    # back to LOAD within two cycles of the last beat (DRAIN -> LOAD): idle by the 3rd sample
    assert idle_after and idle_after[0] <= 3, f"block not idle within 3 cycles of the last row ({idle_after})"
    regs = await io.peek(["kept_total", "kept_count", "overflow", "idle"])
    kept = [r["kept"] for r in rows.scoreboard.items]
    assert regs["kept_total"] == sum(kept) == int(want.kept_count.sum()), (
        f"kept_total {regs['kept_total']}, per-row sum {sum(kept)}, golden {int(want.kept_count.sum())}")
    assert regs["kept_count"] == kept[-1] == int(want.kept_count[-1])
    overflow = int(want.overflow.any())
    assert regs["overflow"] == overflow, f"overflow {regs['overflow']} != golden {overflow}"
    assert regs["idle"] == 1, "block not idle after the head"
    return {"cycles": rows.transfers[-1] + 1, "kept": regs["kept_total"], "n": n, "m": m_rows, "kept_rows": kept,
            "overflow": bool(regs["overflow"]), "out": np.array([r["row"] for r in rows.scoreboard.items])}


class LatteTB:
    """Clock/reset and the cocotb adapter; heads run through :func:`run_latte_head`."""

    def __init__(self, dut, stall: float = 0.0, rng: random.Random | None = None):
        self.dut = dut
        self.params = tb_params()
        self.comp: Latte = block_component("latte")
        self.fmts = self.comp.fmts
        self.lanes = self.comp.lanes
        self.stall = stall
        self.rng = rng or tb_rng()
        self.io = CocotbIO(dut)

    async def start(self) -> None:
        idle = {f"{s}__valid": 0 for s in ("q", "k", "v")} | {"o__ready": 0}
        await start_clock_and_reset(self.dut, idle)
        await self.io.start()

    async def run_head(self, q, k, v, tau: int, mant: int, shift: int) -> dict:
        """Run one head; checks bit-exactness against the golden model; returns figures read from the RTL."""
        res = await run_latte_head(self.io, self.comp, q, k, v, tau, mant, shift, stall=self.stall, rng=self.rng)
        return {key: res[key] for key in ("cycles", "kept", "n", "m", "kept_rows", "overflow")}


def _scale(tb: LatteTB, spread: int = 128) -> tuple[int, int]:
    """A score scale giving softmax inputs of a few units for random data of this spread."""
    d_h = tb.fmts.d_h
    return encode_score_scale(4.0 / (spread * spread * np.sqrt(d_h)), tb.fmts)


@cocotb.test(**timeout_us(56.5, _WORK))
async def directed_corners(dut):
    tb = LatteTB(dut, stall=0.2)
    await tb.start()
    f = tb.fmts
    d, n = f.d_h, f.n_max
    rng = np.random.default_rng(5)
    mant, shift = _scale(tb)
    # first head of the simulation: V = 0 leaves the accumulators at their reset value (catches
    # output logic that stays X in Icarus while its inputs never change)
    await tb.run_head(rng.integers(-128, 128, (2, d)), rng.integers(-128, 128, (n, d)), np.zeros((n, d), int), 9,
                      mant, shift)
    # τ = 0 keeps only the maxima, ties included: duplicate key rows make exact ties
    k = rng.integers(-128, 128, (n, d))
    k[n // 2] = k[0]
    q = np.vstack([k[0], rng.integers(-128, 128, (2, d))])
    v = rng.integers(-128, 128, (n, d))
    res = await tb.run_head(q, k, v, 0, mant, shift)
    want = latte_fixed_raw(q, k, v, 0, mant, shift, f)
    assert want.kept_count[0] >= 2 and res["kept"] == int(want.kept_count.sum())
    # τ huge: every key kept (tau register saturated)
    res = await tb.run_head(q, k, v, f.tau_max, mant, shift)
    assert res["kept"] == q.shape[0] * n
    # all-equal scores: identical keys -> all kept even at τ = 0, uniform softmax
    k_eq = np.tile(rng.integers(-128, 128, (1, d)), (n, 1))
    res = await tb.run_head(q, k_eq, v, 0, mant, shift)
    assert res["kept"] == q.shape[0] * n
    # extreme operands: -128 and 127 everywhere (largest products, saturating outputs for narrow formats)
    q_x = np.where(np.arange(d) % 2, 127, -128)[None, :].repeat(2, axis=0)
    q_x[1] = -128
    k_x = np.where(rng.random((n, d)) < 0.5, -128, 127)
    v_x = np.where(rng.random((n, d)) < 0.5, -128, 127)
    v_x[:, 0] = 127
    await tb.run_head(q_x, k_x, v_x, 3, mant, shift)
    await tb.run_head(q_x, k_x, np.full((n, d), -128), f.tau_max, 65535, 0)
    # n = 1 (single key, always kept), with scale_shift = 0
    await tb.run_head(q[:2], k[:1], v[:1], 0, 1, 0)
    write_stats({"directed": "ok"})


@cocotb.test(**timeout_us(60.4, _WORK))
async def random_heads(dut):
    """Random heads back to back (m != n included), random τ, random stalls on every stream."""
    tb = LatteTB(dut, stall=0.3)
    await tb.start()
    rng = tb_np_rng()
    f = tb.fmts
    checked = 0
    for i in range(8):
        n = int(rng.integers(1, f.n_max + 1)) if i else f.n_max
        m = int(rng.integers(1, 7))
        q = rng.integers(-128, 128, (m, f.d_h))
        k = rng.integers(-128, 128, (n, f.d_h))
        v = rng.integers(-128, 128, (n, f.d_h))
        tau = int(rng.integers(0, 8 * f.d_h))
        res = await tb.run_head(q, k, v, tau, *_scale(tb))
        checked += res["m"] * f.d_h
    write_stats({"random_checked": checked})


@cocotb.test(skip=not os.environ.get("LATTE_REAL_HEAD"),
             **timeout_us(30.1, npz_work("LATTE_REAL_HEAD", 400, "q", "k")))
async def real_head(dut):
    """A real MiniLM head prepared by pytest (quantized Q/K/V, calibrated τ, scale registers)."""
    data = np.load(os.environ["LATTE_REAL_HEAD"])
    tb = LatteTB(dut, stall=0.1)
    await tb.start()
    res = await tb.run_head(data["q"], data["k"], data["v"], int(data["tau"]), int(data["mant"]), int(data["shift"]))
    write_stats({"real_kept": res["kept"], "real_pairs": res["m"] * res["n"], "real_cycles": res["cycles"],
                 "real_kept_ratio": res["kept"] / (res["m"] * res["n"])})


@cocotb.test(skip=not os.environ.get("LATTE_BENCH"),
             **timeout_us(30.1, bench_work(json.loads(os.environ.get("LATTE_BENCH") or "[]"), 400)))
async def bench_cycles(dut):
    """No stalls; cycles per head for each case of LATTE_BENCH (JSON: [{n, m, tau, seed}...] or npz)."""
    cases = json.loads(os.environ["LATTE_BENCH"])
    tb = LatteTB(dut, stall=0.0)
    await tb.start()
    f = tb.fmts
    results = []
    for case in cases:
        if "npz" in case:
            data = np.load(case["npz"])
            q, k, v = data["q"], data["k"], data["v"]
            tau, mant, shift = int(data["tau"]), int(data["mant"]), int(data["shift"])
        else:
            rng = np.random.default_rng(case.get("seed", 0))
            n, m = case["n"], case.get("m", case["n"])
            q = rng.integers(-128, 128, (m, f.d_h))
            k = rng.integers(-128, 128, (n, f.d_h))
            v = rng.integers(-128, 128, (n, f.d_h))
            tau = case["tau"]
            mant, shift = _scale(tb)
        res = await tb.run_head(q, k, v, tau, mant, shift)
        results.append({**case, **res})
    write_stats({"bench": results})
