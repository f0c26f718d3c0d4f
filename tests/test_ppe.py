"""Amaranth-simulator unit tests of the PPE (hdl.ppe): every phase against golden.systolic, exact latency."""

import numpy as np
import pytest

from golden.fixed import QFormat
from golden.systolic import (
    OP_DF1,
    OP_DF2,
    OP_LOAD,
    PH_LINEAR,
    PH_LSH,
    PH_OUTPUT,
    PH_SCORE,
    SystolicConfig,
    linear,
    lsh_hash,
    output,
    scores,
)
from hdl.arith import ReciprocalScaler
from hdl.ppe import PPE
from tests.amaranth_helpers import run_sim

CFG = SystolicConfig(b=2, d=4)
TAG_TO_PSUM = 3   # the tag lines up with y_top; psum comes 3 cycles later


def _tag(**kw) -> dict:
    base = {"op": 0, "col": 0, "phase": 0, "first": 0, "last": 0, "sub": 0, "shortcut": 0, "scale": 0}
    base.update(kw)
    return base


def _run(cfg: SystolicConfig, beats: list[dict], cycles: int, chain: dict[int, tuple[int, int]] | None = None,
         col: int = 0) -> list[dict]:
    """Beat k: tag and y_top at cycle k, psum (and psum_sat) at k + TAG_TO_PSUM. ``chain``: cycle -> value, sat."""
    dut = PPE(cfg=cfg, col=col)
    seen = []

    async def tb(ctx):
        for c in range(cycles):
            bt = beats[c] if c < len(beats) else {}
            ctx.set(dut.tag, _tag(**bt.get("tag", {})))
            ctx.set(dut.y_top, bt.get("y", 0))
            k = c - TAG_TO_PSUM
            ctx.set(dut.psum, beats[k].get("psum", 0) if 0 <= k < len(beats) else 0)
            ctx.set(dut.psum_sat, beats[k].get("psum_sat", 0) if 0 <= k < len(beats) else 0)
            value, sat = (chain or {}).get(c, (0, 0))
            ctx.set(dut.chain, value)
            ctx.set(dut.chain_sat, sat)
            seen.append({n: ctx.get(getattr(dut, n)) for n in (
                "res_valid", "res", "res_over", "sc_valid", "sc_row", "sc_sel", "sc_value", "copy",
                "out_valid", "out", "out_over", "out_dbz", "out_row")})
            await ctx.tick()

    run_sim(dut, tb)
    return seen


def _df1_results(seen: list[dict], beats: list[dict]) -> list[tuple[int, int]]:
    """Results of the DF1 beats, each checked to appear exactly LATENCY cycles after its psum."""
    out = []
    for k, bt in enumerate(beats):
        if bt.get("tag", {}).get("op") == OP_DF1:
            s = seen[k + TAG_TO_PSUM + PPE.LATENCY]
            assert s["res_valid"] == 1, f"beat {k}: no result after {PPE.LATENCY} cycles"
            out.append((s["res"], s["res_over"]))
    assert sum(s["res_valid"] for s in seen) == len(out)
    return out


def test_lsh_bias_scale_floor_saturate():
    rng = np.random.default_rng(7)
    tf, df = CFG.token_fmt, CFG.dir_fmt
    direction = df.max_int
    tokens = np.concatenate([[tf.min_int, tf.max_int, 0, -1, 1], rng.integers(tf.min_int, tf.max_int + 1, 20)])
    bias, inv_w = -1234, CFG.inv_w_fmt.max_int
    beats = [{"tag": {"op": OP_LOAD, "col": 0, "phase": PH_LSH}, "y": bias},
             {"tag": {"op": OP_LOAD, "col": 1, "phase": PH_LSH}, "y": 999}]   # another column's bias
    beats += [{"tag": {"op": OP_DF1, "phase": PH_LSH, "scale": inv_w, "first": int(k == 0)}, "psum": int(x) * direction}
              for k, x in enumerate(tokens)]
    seen = _run(CFG, beats, len(beats) + TAG_TO_PSUM + PPE.LATENCY)
    want, over = lsh_hash(tokens[:, None], [[direction]], [bias], inv_w, CFG)
    got = _df1_results(seen, beats)
    assert [g[0] for g in got] == want[:, 0].tolist()
    assert [g[1] for g in got] == over[:, 0].astype(int).tolist()
    assert want.min() == CFG.hash_fmt.min_int and want.max() == CFG.hash_fmt.max_int  # both ends saturated


def test_lsh_flag_from_column():
    beats = [{"tag": {"op": OP_DF1, "phase": PH_LSH, "scale": 1}, "psum": 0, "psum_sat": 1}]
    got = _df1_results(_run(CFG, beats, TAG_TO_PSUM + PPE.LATENCY + 1), beats)
    assert got == [(0, 1)]


def test_linear_round_saturate_and_shortcut():
    rng = np.random.default_rng(8)
    qf, wf = CFG.qkv_fmt, CFG.weight_fmt
    c = qf.min_int
    ws = np.concatenate([[wf.min_int, wf.max_int, 0, 1, -1, 32, -32, 33], rng.integers(wf.min_int, wf.max_int + 1, 8)])
    beats = [{"tag": {"op": OP_DF1, "phase": PH_LINEAR, "shortcut": 1, "first": int(k == 0),
                      "last": int(k == len(ws) - 1)}, "psum": c * int(w)} for k, w in enumerate(ws)]
    seen = _run(CFG, beats, len(beats) + TAG_TO_PSUM + PPE.LATENCY)
    want, over = linear([[c]], ws[None, :], CFG)
    got = _df1_results(seen, beats)
    assert [g[0] for g in got] == want[0].tolist()
    assert [g[1] for g in got] == over[0].astype(int).tolist()
    assert want.min() == qf.min_int and want.max() == qf.max_int
    # shortcut bus: one cycle after psum, row = beat index
    for k in range(len(ws)):
        s = seen[k + TAG_TO_PSUM + PPE.SHORTCUT_LATENCY]
        assert (s["sc_valid"], s["sc_row"] % CFG.d, s["sc_value"]) == (1, k % CFG.d, want[0, k])
        if k < CFG.d:  # a shortcut phase has d beats: one-hot row select of the PEs
            assert s["sc_sel"] == 1 << k
    assert sum(s["sc_valid"] for s in seen) == len(ws)


@pytest.mark.parametrize("k1", [0, 3, 7])
def test_score_scale_max_subtract(k1):
    rng = np.random.default_rng(9 + k1)
    qf = CFG.qkv_fmt
    q = qf.max_int
    ks = np.concatenate([[qf.min_int, qf.max_int, 0, -1], rng.integers(qf.min_int, qf.max_int + 1, 3)])
    beats = [{"tag": {"op": OP_DF1, "phase": PH_SCORE, "first": int(t == 0), "sub": int(t >= k1)},
              "psum": q * int(k)} for t, k in enumerate(ks)]
    beats = beats + beats  # a second phase: the max restarts at its first beat
    seen = _run(CFG, beats, len(beats) + TAG_TO_PSUM + PPE.LATENCY)
    want, over = scores([[q]], ks[:, None], k1, CFG)
    got = _df1_results(seen, beats)
    assert [g[0] for g in got] == want[0].tolist() * 2
    assert [g[1] for g in got] == over[0].astype(int).tolist() * 2
    if k1 == 3:
        assert over[0, k1:].any()  # s - m saturated at the low end


def _output_case(cfg: SystolicConfig, ap: np.ndarray, v: np.ndarray, chain_sat_row: int | None = None):
    """One output phase: DF2 tags carrying AP, then the column's d results on the chain."""
    t = ap.shape[1]
    acc = (ap[:, :, None] * v[None, :, :]).sum(axis=1)[0]  # the column's results (no saturation here)
    beats = [{"tag": {"op": OP_DF2, "phase": PH_OUTPUT, "first": int(k == 0), "last": int(k == t - 1)},
              "y": int(ap[0, k])} for k in range(t)]
    copy_cycle = (t - 1) + PPE.COPY_DELAY
    chain = {copy_cycle + 1 + r: (int(acc[cfg.d - 1 - r]), int(chain_sat_row == cfg.d - 1 - r)) for r in range(cfg.d)}
    seen = _run(cfg, beats, copy_cycle + PPE.OUT_LATENCY + cfg.d + 3, chain=chain)
    assert [s["copy"] for s in seen].index(1) == copy_cycle and sum(s["copy"] for s in seen) == 1
    want, over, dbz = output(ap, v, cfg)
    rows = [s for s in seen if s["out_valid"]]
    assert len(rows) == cfg.d
    first = [s["out_valid"] for s in seen].index(1)
    assert first == copy_cycle + PPE.OUT_LATENCY == copy_cycle + 1 + ReciprocalScaler.LATENCY
    assert [s["out_row"] for s in rows] == list(range(cfg.d - 1, -1, -1))
    assert [s["out"] for s in rows] == want[0, ::-1].tolist()
    flags = over[0, ::-1].astype(int)
    if chain_sat_row is not None:
        flags[cfg.d - 1 - chain_sat_row] = 1
    assert [s["out_over"] for s in rows] == flags.tolist()
    assert [s["out_dbz"] for s in rows] == dbz[0, ::-1].astype(int).tolist()
    return want, over, dbz


def test_output_normalize_by_reciprocal():
    rng = np.random.default_rng(10)
    ap = rng.integers(0, CFG.ap_fmt.max_int + 1, (1, 5))
    v = rng.integers(CFG.qkv_fmt.min_int, CFG.qkv_fmt.max_int + 1, (5, CFG.d))
    _output_case(CFG, ap, v, chain_sat_row=2)


def test_output_div_by_zero_and_saturation():
    v = np.full((3, CFG.d), CFG.qkv_fmt.min_int)
    _, _, dbz = _output_case(CFG, np.zeros((1, 3), dtype=np.int64), v)
    assert dbz.all()
    # tiny denominator: results saturate at both ends
    v = np.array([[CFG.qkv_fmt.min_int, CFG.qkv_fmt.max_int, 5, -5]] * 2)
    want, over, _ = _output_case(CFG, np.array([[1, 0]]), v)
    assert over[0, :2].all() and want[0, 0] == CFG.out_fmt.min_int and want[0, 1] == CFG.out_fmt.max_int


def test_output_sum_saturates_with_narrow_denominator():
    cfg = SystolicConfig(b=2, d=4, den_width=17)
    ap = np.full((1, 4), cfg.ap_fmt.max_int)
    v = np.ones((4, cfg.d), dtype=np.int64)
    _, over, _ = _output_case(cfg, ap, v)
    assert over.all()


def test_bad_parameters():
    with pytest.raises(ValueError, match="col"):
        PPE(cfg=CFG, col=2)
    with pytest.raises(TypeError, match="cfg"):
        PPE(cfg={"b": 2})
    with pytest.raises(ValueError, match="acc_width"):
        SystolicConfig(acc_width=20)
    with pytest.raises(ValueError, match="bias"):
        SystolicConfig(bias_fmt=QFormat(30, 20))
