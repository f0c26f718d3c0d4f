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
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from golden.latte import encode_score_scale, latte_fixed_raw
from hdl.latte import latte_formats, output_layout
from sim.runner import tb_params, write_stats
from sim.tbutil import CycleDeadline, Scoreboard, bench_work, npz_work, read_unsigned, tb_rng, timeout_us

# Timeouts (simulated us) were measured on the configurations of tests/test_cocotb_latte.py, the
# largest having n_max**2 * d_h / lanes = 4096; larger parameter sets scale the bound.
_P = {"n_max": 16, "d_h": 16, "lanes": 4, **json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")}
_WORK = _P["n_max"] ** 2 * _P["d_h"] / _P["lanes"] / 4096


def _pack(values, width: int) -> int:
    word = 0
    for i, x in enumerate(values):
        word |= (int(x) & ((1 << width) - 1)) << (i * width)
    return word


def _unpack_signed(word: int, offset: int, width: int) -> int:
    raw = (word >> offset) & ((1 << width) - 1)
    return raw - (1 << width) if raw >> (width - 1) else raw


class LatteTB:
    """Clock/reset, stream drivers for q/k/v (random valid gaps), an o monitor (random ready)."""

    def __init__(self, dut, stall: float = 0.0, rng: random.Random | None = None):
        self.dut = dut
        self.params = tb_params()
        self.fmts = latte_formats(**self.params)
        self.lanes = self.params["lanes"]
        layout = output_layout(self.fmts, self.lanes)
        self.data_off = layout["data"].offset
        self.kept_off, self.kept_w = layout["kept"].offset, layout["kept"].shape.width
        self.out_w = self.fmts.out_fmt.width
        self.stall = stall
        self.rng = rng or tb_rng()
        self.cycle = 0

    async def start(self) -> None:
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for s in ("q", "k", "v"):
            getattr(dut, f"{s}__valid").value = 0
        dut.o__ready.value = 0
        dut.rst.value = 1
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        cocotb.start_soon(self._count())

    async def _count(self) -> None:
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    def _chunks(self, x: np.ndarray) -> list[int]:
        return [_pack(row[c:c + self.lanes], 8) for row in x for c in range(0, x.shape[1], self.lanes)]

    def _budget(self, m: int, n: int) -> int:
        """Cycle bound for any one wait of a head: ~10x the stall-free head (two passes of n keys
        per query row plus the pipeline), so random stalls never reach it but a lost beat does."""
        chunks = self.fmts.d_h // self.lanes
        return 10 * (m + 1) * (2 * n * chunks + n + 64) + 1000

    async def _drive(self, name: str, words: list[int], budget: int) -> None:
        valid = getattr(self.dut, f"{name}__valid")
        payload = getattr(self.dut, f"{name}__payload")
        ready = getattr(self.dut, f"{name}__ready")
        for i, word in enumerate(words):
            while self.stall and self.rng.random() < self.stall:
                valid.value = 0
                await FallingEdge(self.dut.clk)
            valid.value = 1
            payload.value = word
            deadline = CycleDeadline(budget, f"{name}.ready")
            while True:
                await ReadOnly()  # ready depends on registers only: the value before the next edge
                done = read_unsigned(ready)
                await FallingEdge(self.dut.clk)
                if done:
                    break
                deadline.tick(f"beat {i + 1} of {len(words)}")
            valid.value = 0

    async def _collect(self, rows: int, budget: int) -> tuple[list[list[int]], list[int]]:
        dut = self.dut
        board = Scoreboard("o rows", rows)
        kept: list[int] = []
        row: list[int] = []
        deadline = CycleDeadline(budget, f"{rows} o rows")
        while not board.complete:
            deadline.tick(f"got {len(board.items)}")
            ready = 0 if (self.stall and self.rng.random() < self.stall) else 1
            dut.o__ready.value = ready
            await ReadOnly()  # valid/payload come from registers: stable until the next edge
            if ready and read_unsigned(dut.o__valid):
                assert dut.o__payload.value.is_resolvable, f"o payload not resolvable: {dut.o__payload.value}"
                word = read_unsigned(dut.o__payload)
                row += [_unpack_signed(word, self.data_off + i * self.out_w, self.out_w) for i in range(self.lanes)]
                if len(row) == self.fmts.d_h:
                    board.add(row)
                    kept.append((word >> self.kept_off) & ((1 << self.kept_w) - 1))  # the RTL's count
                    row = []
            await FallingEdge(dut.clk)
        dut.o__ready.value = 0
        board.check_complete()
        return board.items, kept

    async def run_head(self, q, k, v, tau: int, mant: int, shift: int) -> dict:
        """Run one head; checks bit-exactness against the golden model; returns figures read from the RTL."""
        dut = self.dut
        want = latte_fixed_raw(q, k, v, tau, mant, shift, self.fmts)
        dut.n_keys.value = k.shape[0]
        dut.n_queries.value = q.shape[0]
        dut.tau.value = min(tau, self.fmts.tau_max)
        dut.scale_mant.value = mant
        dut.scale_shift.value = shift
        await FallingEdge(dut.clk)
        start = self.cycle
        budget = self._budget(q.shape[0], k.shape[0])
        cocotb.start_soon(self._drive("k", self._chunks(k), budget))
        cocotb.start_soon(self._drive("v", self._chunks(v), budget))
        cocotb.start_soon(self._drive("q", self._chunks(q), budget))
        out, kept = await self._collect(q.shape[0], budget)
        cycles = self.cycle - start
        # every figure returned below is read from the RTL; the golden model is only compared with it
        assert kept == want.kept_count.tolist(), f"kept per row {kept} != golden {want.kept_count.tolist()}"
        assert np.array_equal(np.array(out), want.out), (
            f"output mismatch in {int(np.sum(np.array(out) != want.out))} elements")
        await ReadOnly()
        kept_total = read_unsigned(dut.kept_total)
        overflow = read_unsigned(dut.overflow)
        assert kept_total == sum(kept) == int(want.kept_count.sum()), (
            f"kept_total {kept_total}, per-row sum {sum(kept)}, golden {int(want.kept_count.sum())}")
        assert read_unsigned(dut.kept_count) == kept[-1] == int(want.kept_count[-1])
        assert overflow == int(want.overflow.any()), f"overflow {overflow} != golden {int(want.overflow.any())}"
        await FallingEdge(dut.clk)
        for _ in range(3):  # back to LOAD within two cycles of the last beat (DRAIN -> LOAD)
            await ReadOnly()
            assert not read_unsigned(dut.o__valid), "o beat after the last expected row"
            if read_unsigned(dut.idle):
                break
            await FallingEdge(dut.clk)
        assert read_unsigned(dut.idle) == 1, "block not idle after the head"
        await FallingEdge(dut.clk)
        dut.o__ready.value = 1
        for _ in range(self.fmts.d_h // self.lanes + 4):  # nothing may follow the last expected row
            await ReadOnly()
            assert not read_unsigned(dut.o__valid), f"o beat after the last expected row ({q.shape[0]} rows)"
            await FallingEdge(dut.clk)
        dut.o__ready.value = 0
        return {"cycles": cycles, "kept": kept_total, "n": k.shape[0], "m": q.shape[0], "kept_rows": kept,
                "overflow": bool(overflow)}


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
    rng = np.random.default_rng(int(os.environ.get("RANDOM_SEED", "1")) & 0xFFFF)
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
