"""cocotb testbench of the ``eatt`` block against :func:`golden.eatt.eatt_fixed_raw` (``==``).

Random heads back to back (m != n, random τ, random valid/ready stalls on wq, wk, xkv, xq, v, o),
directed τ corners (empty selection, full selection, τ at a raw boundary, n = 1), a real MiniLM
head handed over by pytest (``EATT_REAL_HEAD``: an .npz) and the benchmark run (``EATT_BENCH``:
JSON list of cases, no stalls, cycles per head into the stats). Every wait has a cycle deadline.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from golden.eatt import EattFormats, eatt_fixed_raw
from golden.softmax_pv import encode_scale
from hdl.eatt import eatt_formats
from sim.runner import tb_params, write_stats
from sim.tbutil import bench_work, npz_work, read_unsigned, start_clock_and_reset, tb_rng, timeout_us

DEADLINE = 200_000  # cycles any single wait may take


# Timeouts (simulated us) were measured on the configurations of tests/test_cocotb_eatt.py, the
# largest having n_max * d_in * d / lanes = 1152; larger parameter sets scale the bound.
_P = {"d_in": 16, "d": 8, "n_max": 8, "lanes": 2, **json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")}
_WORK = _P["n_max"] * _P["d_in"] * _P["d"] / _P["lanes"] / 1152


def pack(values, width: int) -> int:
    word = 0
    for i, x in enumerate(values):
        word |= (int(x) & ((1 << width) - 1)) << (i * width)
    return word


def unpack_signed(word: int, count: int, width: int) -> list[int]:
    out = []
    for i in range(count):
        raw = (word >> (i * width)) & ((1 << width) - 1)
        out.append(raw - (1 << width) if raw >> (width - 1) else raw)
    return out


class StreamTB:
    """Clock/reset, a cycle counter, stream drivers with random valid gaps and a collector with
    random ready stalls (shared by the E-ATT and MCA testbenches)."""

    def __init__(self, dut, inputs: list[str], stall: float = 0.0, rng: random.Random | None = None):
        self.dut = dut
        self.inputs = inputs
        self.stall = stall
        self.rng = rng or tb_rng()
        self.cycle = 0

    async def start(self) -> None:
        idle = {f"{s}__valid": 0 for s in self.inputs}
        idle["o__ready"] = 0
        await start_clock_and_reset(self.dut, idle)
        cocotb.start_soon(self._count())

    async def _count(self) -> None:
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def drive(self, name: str, words: list[int]) -> None:
        valid = getattr(self.dut, f"{name}__valid")
        payload = getattr(self.dut, f"{name}__payload")
        ready = getattr(self.dut, f"{name}__ready")
        for word in words:
            while self.stall and self.rng.random() < self.stall:
                valid.value = 0
                await FallingEdge(self.dut.clk)
            valid.value = 1
            payload.value = word
            limit = self.cycle + DEADLINE
            while True:
                assert self.cycle < limit, f"timeout: {name} not ready"
                await ReadOnly()
                done = read_unsigned(ready)
                await FallingEdge(self.dut.clk)
                if done:
                    break
            valid.value = 0

    async def collect(self, beats: int, width: int, count: int) -> list[list[int]]:
        """``beats`` beats of ``o`` as lists of ``count`` signed ``width``-bit values."""
        dut = self.dut
        out: list[list[int]] = []
        limit = self.cycle + DEADLINE
        while len(out) < beats:
            assert self.cycle < limit, "timeout waiting for o"
            ready = 0 if (self.stall and self.rng.random() < self.stall) else 1
            dut.o__ready.value = ready
            await ReadOnly()
            if ready and read_unsigned(dut.o__valid):
                assert dut.o__payload.value.is_resolvable, f"o payload not resolvable: {dut.o__payload.value}"
                out.append(unpack_signed(read_unsigned(dut.o__payload), count, width))
            await FallingEdge(dut.clk)
        dut.o__ready.value = 0
        return out

    async def wait_idle(self, cycles: int = 8) -> None:
        for _ in range(cycles):
            await ReadOnly()
            if read_unsigned(self.dut.idle):
                break
            await FallingEdge(self.dut.clk)
        assert read_unsigned(self.dut.idle) == 1, "block not idle after the head"
        await FallingEdge(self.dut.clk)


class EattTB(StreamTB):
    def __init__(self, dut, stall: float = 0.0):
        super().__init__(dut, ["wq", "wk", "xkv", "xq", "v"], stall)
        self.params = tb_params()
        self.fmts: EattFormats = eatt_formats(**self.params)
        self.lanes = self.params["lanes"]

    async def run_head(self, case: dict) -> dict:
        dut, f, L = self.dut, self.fmts, self.lanes
        want = eatt_fixed_raw(case["xq"], case["xkv"], case["wq"], case["wk"], case["bq"], case["bk"], case["tau"],
                              case["v"], case["mant"], case["shift"], f)
        m, n = case["xq"].shape[0], case["xkv"].shape[0]
        dut.n_keys.value = n
        dut.n_queries.value = m
        dut.tau.value = case["tau"]
        dut.scale_mant.value = case["mant"]
        dut.scale_shift.value = case["shift"]
        await FallingEdge(dut.clk)
        start = self.cycle
        ww, tw, vw = f.weight_width, f.token_fmt.width, f.v_fmt.width
        w_rows = lambda w, b: [pack(r, ww) for r in w] + [pack(b, ww)]  # noqa: E731
        cocotb.start_soon(self.drive("wq", w_rows(case["wq"], case["bq"])))
        cocotb.start_soon(self.drive("wk", w_rows(case["wk"], case["bk"])))
        cocotb.start_soon(self.drive("xkv", [pack([x], tw) for x in case["xkv"].ravel()]))
        cocotb.start_soon(self.drive("xq", [pack([x], tw) for x in case["xq"].ravel()]))
        cocotb.start_soon(self.drive("v", [pack(r[c:c + L], vw) for r in case["v"] for c in range(0, f.d, L)]))
        beats = await self.collect(m * f.d // L, f.out_fmt.width, L)
        cycles = self.cycle - start
        out = np.array(beats).reshape(m, f.d)
        assert np.array_equal(out, want.out), f"output mismatch in {int(np.sum(out != want.out))} elements"
        await ReadOnly()
        assert read_unsigned(dut.overflow) == int(want.back.overflow.any())
        await FallingEdge(dut.clk)
        await self.wait_idle()
        return {"cycles": cycles, "m": m, "n": n, "selected": int(want.align.bits_q.sum() + want.align.bits_kv.sum())}


def random_case(rng: np.random.Generator, f: EattFormats, m: int, n: int, tau: int | None = None) -> dict:
    wf = f.weight_fmt()
    case = {
        "xq": rng.integers(-300, 300, (m, f.d_in)), "xkv": rng.integers(-300, 300, (n, f.d_in)),
        "wq": rng.integers(wf.min_int, wf.max_int + 1, (f.d_in, f.d)),
        "wk": rng.integers(wf.min_int, wf.max_int + 1, (f.d_in, f.d)),
        "bq": rng.integers(wf.min_int, wf.max_int + 1, f.d), "bk": rng.integers(wf.min_int, wf.max_int + 1, f.d),
        "v": rng.integers(-2000, 2000, (n, f.d)),
        "tau": int(rng.integers(0, 200)) if tau is None else tau,
    }
    case["mant"], case["shift"] = encode_scale(8.0 / (f.d * 2.0 ** (f.weight_width + 2)), f.backend)
    return case


@cocotb.test(**timeout_us(27.4, _WORK))
async def random_heads(dut):
    """Random heads back to back (m != n included), random τ, random stalls on every stream."""
    tb = EattTB(dut, stall=0.3)
    await tb.start()
    rng = np.random.default_rng(int(os.environ.get("RANDOM_SEED", "1")) & 0xFFFF)
    f = tb.fmts
    checked = 0
    for i in range(5):
        n = int(rng.integers(1, f.n_max + 1)) if i else f.n_max
        m = int(rng.integers(1, 5))
        res = await tb.run_head(random_case(rng, f, m, n))
        checked += res["m"] * f.d
    write_stats({"random_checked": checked})


@cocotb.test(**timeout_us(20.4, _WORK))
async def directed_corners(dut):
    tb = EattTB(dut, stall=0.15)
    await tb.start()
    f = tb.fmts
    rng = np.random.default_rng(5)
    base = random_case(rng, f, 2, f.n_max)
    # every input below τ (τ at the token maximum): empty selection, uniform attention
    await tb.run_head({**base, "tau": f.token_fmt.max_int})
    # every input above τ = 0
    await tb.run_head({**base, "xq": np.abs(base["xq"]) + 1, "xkv": np.abs(base["xkv"]) + 1, "tau": 0})
    # τ at the exact raw boundary: x == τ not selected, x == τ + 1 selected
    edge = {**base, "tau": 100, "xq": np.where(rng.random(base["xq"].shape) < 0.5, 100, 101),
            "xkv": np.where(rng.random(base["xkv"].shape) < 0.5, 100, 101)}
    await tb.run_head(edge)
    # n = 1 (one key: softmax weight 1), extreme tokens
    one = random_case(rng, f, 3, 1)
    one["xq"][0] = f.token_fmt.max_int
    one["xkv"][0] = f.token_fmt.min_int
    await tb.run_head(one)
    write_stats({"directed": "ok"})


@cocotb.test(skip=not os.environ.get("EATT_REAL_HEAD"),
             **timeout_us(56.9, npz_work("EATT_REAL_HEAD", 32, "xq", "xkv")))
async def real_head(dut):
    """A real MiniLM head prepared by pytest (quantized tokens, weights, V, τ, scale registers)."""
    data = np.load(os.environ["EATT_REAL_HEAD"])
    tb = EattTB(dut, stall=0.1)
    await tb.start()
    case = {k: data[k] for k in ("xq", "xkv", "wq", "wk", "bq", "bk", "v")}
    case.update({k: int(data[k]) for k in ("tau", "mant", "shift")})
    res = await tb.run_head(case)
    write_stats({"real_cycles": res["cycles"], "real_m": res["m"], "real_n": res["n"],
                 "real_selected": res["selected"]})


@cocotb.test(skip=not os.environ.get("EATT_BENCH"),
             **timeout_us(56.9, bench_work(json.loads(os.environ.get("EATT_BENCH") or "[]"), 32)))
async def bench_cycles(dut):
    """No stalls; cycles per head for each case of EATT_BENCH (JSON: [{n, m, seed} | {npz}])."""
    cases = json.loads(os.environ["EATT_BENCH"])
    tb = EattTB(dut, stall=0.0)
    await tb.start()
    results = []
    for spec in cases:
        if "npz" in spec:
            data = np.load(spec["npz"])
            case = {k: data[k] for k in ("xq", "xkv", "wq", "wk", "bq", "bk", "v")}
            case.update({k: int(data[k]) for k in ("tau", "mant", "shift")})
        else:
            case = random_case(np.random.default_rng(spec.get("seed", 0)), tb.fmts, spec["m"], spec["n"])
        res = await tb.run_head(case)
        results.append({**spec, **res})
    write_stats({"bench": results})
