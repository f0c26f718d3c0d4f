"""cocotb testbench of the ``mca`` block against :func:`golden.mca.mca_encode_fixed` (``==``).

Random heads back to back (random seeds, random valid/ready stalls on cdf, ws, bias, a, x, o),
directed cases (r = 1 and r = d_in everywhere, an all-zero weight row that is never drawn, the same
seed twice, two different seeds), a real MiniLM head handed over by pytest (``MCA_REAL_HEAD``: an
.npz) and the benchmark run (``MCA_BENCH``: JSON list of cases or npz files, no stalls, cycles and
Σ r_j per head into the stats). The block is built with the table's ``ws_frac`` (a parameter).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np

from golden.mca import MCAFormats, SamplingTable, make_sampling_table, mca_encode_fixed
from golden.reference import softmax
from sim.runner import tb_params, write_stats
from sim.tb_eatt import StreamTB
from sim.tbutil import bench_work, npz_work, tb_np_rng, timeout_us

FMTS = MCAFormats()


# Timeouts (simulated us) were measured on the configurations of tests/test_cocotb_mca.py, the
# largest having (n_max * d_in + m_max * n_max) * d_h / lanes = 384; larger parameter sets scale the bound.
_P = {"d_in": 16, "d_h": 4, "n_max": 8, "m_max": 8, "lanes": 2, **json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")}
_WORK = (_P["n_max"] * _P["d_in"] + _P["m_max"] * _P["n_max"]) * _P["d_h"] / _P["lanes"] / 384


class McaTB(StreamTB):
    def __init__(self, dut, stall: float = 0.0):
        super().__init__(dut, "mca", ["cdf", "ws", "bias", "a", "x"], stall)
        self.params = tb_params()
        self.lanes = self.params["lanes"]
        self.d_h = self.params["d_h"]

    async def run_head(self, x_raw: np.ndarray, a_raw: np.ndarray, table: SamplingTable, bias_raw: np.ndarray,
                       alpha: float, seed: int) -> dict:
        p, L = self.params, self.lanes
        assert table.ws_fmt.frac == p["ws_frac"] and table.cdf_bits == p["cdf_bits"], "table / block mismatch"
        want = mca_encode_fixed(x_raw, a_raw, table, alpha, seed, bias_raw, FMTS)
        m, n = a_raw.shape
        config = {"seed": seed, "inv_alpha": FMTS.inv_alpha_raw(alpha), "n_keys": n, "n_queries": m}
        streams = {"cdf": [int(v) for v in table.cdf], "ws": [[int(v) for v in r] for r in table.ws_raw],
                   "bias": [[int(v) for v in bias_raw]],
                   "a": [int(v) for v in a_raw.T.ravel()],  # column by column
                   "x": [int(v) for v in x_raw.ravel()]}
        expected = [[int(v) for v in r[c:c + L]] for r in want.y_raw for c in range(0, self.d_h, L)]
        cycles, beats = await self.exchange(config, streams, expected)
        y = np.array(beats).reshape(m, self.d_h)
        assert np.array_equal(y, want.y_raw), f"output mismatch in {int(np.sum(y != want.y_raw))} elements"
        regs = await self.io.peek(["samples_total", "acc_overflow", "h_overflow", "out_overflow"])
        assert regs.pop("samples_total") == int(want.r.sum()), "samples_total != Σ r_j"
        flags = {k: bool(v) for k, v in regs.items()}
        assert flags == want.flags, f"flags {flags} != golden {want.flags}"
        await self.wait_idle()
        return {"cycles": cycles, "m": m, "n": n, "samples": int(want.r.sum()), "y": y.tolist(),
                "r": want.r.tolist()}


def random_case(rng: np.random.Generator, params: dict, m: int, n: int, zero_row: int | None = None,
                a_scale: float = 2.0) -> tuple:
    """(x_raw, a_raw, table, bias_raw) with a table whose ws_fmt matches the block's ws_frac."""
    d_in, d = params["d_in"], params["d_h"]
    for _ in range(100):
        w = rng.normal(size=(d_in, d)) * rng.uniform(0.2, 1.5, size=(d_in, 1)) / 4
        if zero_row is not None:
            w[zero_row] = 0.0
        table = make_sampling_table(w, cdf_bits=params["cdf_bits"], ws_width=params["ws_width"])
        if table.ws_fmt.frac == params["ws_frac"]:
            break
        # rescale W so that its pre-scaled rows land in the block's format
        w *= 2.0 ** (table.ws_fmt.frac - params["ws_frac"])
        table = make_sampling_table(w, cdf_bits=params["cdf_bits"], ws_width=params["ws_width"])
        if table.ws_fmt.frac == params["ws_frac"]:
            break
    else:
        raise AssertionError("no table with the block's ws_frac")
    x_raw = FMTS.token_fmt.quantize(rng.normal(size=(n, d_in)))
    a_raw = FMTS.a_fmt.quantize(softmax(rng.normal(size=(m, n)) * a_scale))
    bias_raw = FMTS.h_fmt.quantize(rng.normal(size=d) / 4)
    return x_raw, a_raw, table, bias_raw


@cocotb.test(**timeout_us(18.9, _WORK))
async def random_heads(dut):
    """Random heads back to back, random seeds and α, random stalls on every stream."""
    tb = McaTB(dut, stall=0.3)
    await tb.start()
    rng = tb_np_rng()
    p = tb.params
    checked = 0
    for i in range(4):
        n = int(rng.integers(1, p["n_max"] + 1)) if i else p["n_max"]
        m = int(rng.integers(1, p["m_max"] + 1))
        x, a, table, b = random_case(rng, p, m, n)
        res = await tb.run_head(x, a, table, b, float(rng.uniform(0.2, 1.0)), int(rng.integers(1, 1 << 32)))
        checked += res["m"] * p["d_h"]
    write_stats({"random_checked": checked})


@cocotb.test(**timeout_us(18.2, _WORK))
async def directed_cases(dut):
    tb = McaTB(dut, stall=0.15)
    await tb.start()
    p = tb.params
    rng = np.random.default_rng(7)
    m, n = min(3, p["m_max"]), min(4, p["n_max"])
    x, a, table, b = random_case(rng, p, m, n, zero_row=1)
    assert table.counts[1] == 0
    # r = 1 everywhere (tiny column maxima) and r = d_in everywhere (A = 1, α = 1)
    res1 = await tb.run_head(x, np.ones((m, n), dtype=np.int64), table, b, 0.5, 11)
    assert res1["r"] == [1] * n
    resf = await tb.run_head(x, np.full((m, n), FMTS.a_fmt.max_int), table, b, 1.0, 11)
    assert resf["r"] == [p["d_in"]] * n
    # the zero row is never drawn (golden indices), same seed twice identical, another seed differs
    want = mca_encode_fixed(x, a, table, 0.5, 1234, b, FMTS)
    assert 1 not in want.indices
    s1 = await tb.run_head(x, a, table, b, 0.5, 1234)
    s2 = await tb.run_head(x, a, table, b, 0.5, 1234)
    s3 = await tb.run_head(x, a, table, b, 0.5, 4321)
    assert s1["y"] == s2["y"] and s1["y"] != s3["y"]
    write_stats({"directed": "ok"})


def _load_npz(path: str) -> tuple:
    data = np.load(path)
    table = make_sampling_table(data["w"], cdf_bits=int(data["cdf_bits"]), ws_width=int(data["ws_width"]))
    return data["x"], data["a"], table, data["bias"], float(data["alpha"]), int(data["seed"])


@cocotb.test(skip=not os.environ.get("MCA_REAL_HEAD"),
             **timeout_us(47.7, npz_work("MCA_REAL_HEAD", 32, "a", "x")))
async def real_head(dut):
    """A real MiniLM head prepared by pytest (X^KV, A, W_V table, b_V, α, seed)."""
    tb = McaTB(dut, stall=0.1)
    await tb.start()
    res = await tb.run_head(*_load_npz(os.environ["MCA_REAL_HEAD"]))
    write_stats({"real_cycles": res["cycles"], "real_samples": res["samples"], "real_n": res["n"],
                 "real_m": res["m"], "real_r": res["r"]})


@cocotb.test(skip=not os.environ.get("MCA_BENCH"),
             **timeout_us(47.7, bench_work(json.loads(os.environ.get("MCA_BENCH") or "[]"), 32)))
async def bench_cycles(dut):
    """No stalls; cycles and Σ r_j per head for each case of MCA_BENCH."""
    tb = McaTB(dut, stall=0.0)

    def head_args(spec: dict) -> tuple:
        if "npz" in spec:
            return _load_npz(spec["npz"])
        rng = np.random.default_rng(spec.get("seed", 0))
        x, a, table, b = random_case(rng, tb.params, spec["m"], spec["n"], a_scale=spec.get("a_scale", 2.0))
        return (x, a, table, b, spec.get("alpha", 0.5), spec.get("seed", 0) + 1)

    await tb.run_bench("MCA_BENCH", head_args, omit=("y",))
