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
from collections.abc import Callable
from typing import Any

import cocotb
import numpy as np

from golden.eatt import EattFixedOut, EattFormats, eatt_fixed_raw
from golden.softmax_pv import encode_scale
from hdl.eatt import eatt_formats
from sim.runner import tb_params, write_stats
from sim.streams import CocotbIO, Scoreboard, Sink, Source, StreamBench, layout_of, wait_for
from sim.tbutil import bench_work, block_component, npz_work, start_clock_and_reset, tb_np_rng, tb_rng, timeout_us

DEADLINE = 200_000  # cycles any single wait may take


# Timeouts (simulated us) were measured on the configurations of tests/test_cocotb_eatt.py, the
# largest having n_max * d_in * d_h / lanes = 1152; larger parameter sets scale the bound.
_P = {"d_in": 16, "d_h": 8, "n_max": 8, "lanes": 2, **json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")}
_WORK = _P["n_max"] * _P["d_in"] * _P["d_h"] / _P["lanes"] / 1152


def eatt_items(case: dict, lanes: int, d: int) -> dict[str, list]:
    """The input stream items of one head as plain payload values (packed with each port's
    ``lib.data`` layout by :func:`sim.streams.pack`): wq / wk rows then their bias row, one token
    element per xkv / xq beat, ``lanes`` V values per v beat."""
    rows = lambda w, b: [[int(v) for v in r] for r in w] + [[int(v) for v in b]]  # noqa: E731
    return {"wq": rows(case["wq"], case["bq"]), "wk": rows(case["wk"], case["bk"]),
            "xkv": [int(x) for x in case["xkv"].ravel()], "xq": [int(x) for x in case["xq"].ravel()],
            "v": [[int(x) for x in r[c:c + lanes]] for r in case["v"] for c in range(0, d, lanes)]}


def eatt_setup() -> tuple[dict, EattFormats, int]:
    """The parameters of the block under test (``ATTN_RTL_PARAMS``), its formats and lane count."""
    params = tb_params()
    return params, eatt_formats(**params), params["lanes"]


def eatt_golden(case: dict, f: EattFormats) -> EattFixedOut:
    """The bit-exact expected result of one head (a :func:`random_case` dict)."""
    return eatt_fixed_raw(case["xq"], case["xkv"], case["wq"], case["wk"], case["bq"], case["bk"], case["tau"],
                          case["v"], case["mant"], case["shift"], f)


def lane_beats(rows: np.ndarray, lanes: int) -> list[list[int]]:
    """Output rows as ``o`` beats of ``lanes`` values each (the monitor's items)."""
    return [[int(x) for x in r[c:c + lanes]] for r in rows for c in range(0, rows.shape[1], lanes)]


class StreamTB:
    """Clock/reset and the stream harness (``sim/streams.py``) over the cocotb adapter, shared by
    the E-ATT and MCA testbenches: :meth:`exchange` drives every input stream with random valid
    gaps and checks the ``o`` beats ``==`` as they arrive, with random ready stalls."""

    def __init__(self, dut, block: str, inputs: list[str], stall: float = 0.0, rng: random.Random | None = None):
        self.dut = dut
        self.comp = block_component(block)  # its lib.data layouts pack and unpack every payload
        self.inputs = inputs
        self.stall = stall
        self.rng = rng or tb_rng()
        self.io = CocotbIO(dut)

    async def start(self) -> None:
        idle = {f"{s}__valid": 0 for s in self.inputs}
        idle["o__ready"] = 0
        await start_clock_and_reset(self.dut, idle)
        await self.io.start()

    async def exchange(self, config: dict[str, int], streams: dict[str, list],
                       expected: list[list[int]]) -> tuple[int, list]:
        """Hold ``config``, send ``streams`` (plain payload values per input), receive ``expected``
        o beats; returns the cycles from the first step to the last o beat (inclusive) and the beats."""
        agents: list = [Source(name, layout_of(getattr(self.comp, name).payload), items, p_stall=self.stall,
                               rng=self.rng, wait_cycles=DEADLINE) for name, items in streams.items()]
        sink = Sink("o", layout_of(self.comp.o.payload), Scoreboard("o beats", expected), p_stall=self.stall,
                    rng=self.rng, wait_cycles=DEADLINE)
        await self.io.step(config, [])  # the registers settle one cycle before the first beat
        await StreamBench(*agents, sink, before=lambda b: config, deadline_cycles=DEADLINE).run(self.io)
        return sink.transfers[-1] + 1, sink.scoreboard.items

    async def wait_idle(self, cycles: int = 8) -> None:
        await wait_for(self.io, "idle", deadline_cycles=cycles, what="block idle after the head")

    async def run_head(self, *args: Any) -> dict:
        """One head through the block, checked ``==``; returns its figures (the subclass's)."""
        raise NotImplementedError

    async def run_bench(self, env: str, head_args: Callable[[dict], tuple], omit: tuple[str, ...] = ()) -> None:
        """The benchmark run: ``run_head(*head_args(case))`` for each case of the JSON list in ``env``;
        the cases with their results (less ``omit``) go to the stats as ``bench``."""
        await self.start()
        results = []
        for spec in json.loads(os.environ[env]):
            res = await self.run_head(*head_args(spec))
            results.append({**spec, **{k: v for k, v in res.items() if k not in omit}})
        write_stats({"bench": results})


class EattTB(StreamTB):
    def __init__(self, dut, stall: float = 0.0):
        super().__init__(dut, "eatt", ["wq", "wk", "xkv", "xq", "v"], stall)
        self.params, self.fmts, self.lanes = eatt_setup()

    async def run_head(self, case: dict) -> dict:
        f, L = self.fmts, self.lanes
        want = eatt_golden(case, f)
        m, n = case["xq"].shape[0], case["xkv"].shape[0]
        config = {"n_keys": n, "n_queries": m, "tau": case["tau"], "scale_mant": case["mant"],
                  "scale_shift": case["shift"]}
        cycles, beats = await self.exchange(config, eatt_items(case, L, f.d_h), lane_beats(want.out, L))
        out = np.array(beats).reshape(m, f.d_h)
        assert np.array_equal(out, want.out), f"output mismatch in {int(np.sum(out != want.out))} elements"
        assert (await self.io.peek(["overflow"]))["overflow"] == int(want.back.overflow.any())
        await self.wait_idle()
        return {"cycles": cycles, "m": m, "n": n, "selected": int(want.align.bits_q.sum() + want.align.bits_kv.sum())}


def random_case(rng: np.random.Generator, f: EattFormats, m: int, n: int, tau: int | None = None,
                v_spread: int = 2000) -> dict:
    """A random head (m queries, n keys; random τ unless given) in the raw integers of ``f``."""
    wf = f.weight_fmt()
    case = {
        "xq": rng.integers(-300, 300, (m, f.d_in)), "xkv": rng.integers(-300, 300, (n, f.d_in)),
        "wq": rng.integers(wf.min_int, wf.max_int + 1, (f.d_in, f.d_h)),
        "wk": rng.integers(wf.min_int, wf.max_int + 1, (f.d_in, f.d_h)),
        "bq": rng.integers(wf.min_int, wf.max_int + 1, f.d_h), "bk": rng.integers(wf.min_int, wf.max_int + 1, f.d_h),
        "v": rng.integers(-v_spread, v_spread, (n, f.d_h)),
        "tau": int(rng.integers(0, 200)) if tau is None else tau,
    }
    if not f.token_fmt.contains(case["xq"]).all():
        raise ValueError(f"token_fmt {f.token_fmt} cannot hold the random tokens (±300)")
    # scores of a few units: scale for ~d·2^(w+2) L1 spreads
    case["mant"], case["shift"] = encode_scale(8.0 / (f.d_h * 2.0 ** (f.weight_width + 2)), f.backend)
    return case


@cocotb.test(**timeout_us(27.4, _WORK))
async def random_heads(dut):
    """Random heads back to back (m != n included), random τ, random stalls on every stream."""
    tb = EattTB(dut, stall=0.3)
    await tb.start()
    rng = tb_np_rng()
    f = tb.fmts
    checked = 0
    for i in range(5):
        n = int(rng.integers(1, f.n_max + 1)) if i else f.n_max
        m = int(rng.integers(1, 5))
        res = await tb.run_head(random_case(rng, f, m, n))
        checked += res["m"] * f.d_h
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


def _load_npz(path: str) -> dict:
    """A head saved by :func:`sim.real_heads.eatt_real_head_npz`, as a :func:`random_case` dict."""
    data = np.load(path)
    case = {k: data[k] for k in ("xq", "xkv", "wq", "wk", "bq", "bk", "v")}
    case.update({k: int(data[k]) for k in ("tau", "mant", "shift")})
    return case


@cocotb.test(skip=not os.environ.get("EATT_REAL_HEAD"),
             **timeout_us(56.9, npz_work("EATT_REAL_HEAD", 32, "xq", "xkv")))
async def real_head(dut):
    """A real MiniLM head prepared by pytest (quantized tokens, weights, V, τ, scale registers)."""
    tb = EattTB(dut, stall=0.1)
    await tb.start()
    res = await tb.run_head(_load_npz(os.environ["EATT_REAL_HEAD"]))
    write_stats({"real_cycles": res["cycles"], "real_m": res["m"], "real_n": res["n"],
                 "real_selected": res["selected"]})


@cocotb.test(skip=not os.environ.get("EATT_BENCH"),
             **timeout_us(56.9, bench_work(json.loads(os.environ.get("EATT_BENCH") or "[]"), 32)))
async def bench_cycles(dut):
    """No stalls; cycles per head for each case of EATT_BENCH (JSON: [{n, m, seed} | {npz}])."""
    tb = EattTB(dut, stall=0.0)

    def head_args(spec: dict) -> tuple[dict]:
        if "npz" in spec:
            return (_load_npz(spec["npz"]),)
        return (random_case(np.random.default_rng(spec.get("seed", 0)), tb.fmts, spec["m"], spec["n"]),)

    await tb.run_bench("EATT_BENCH", head_args)
