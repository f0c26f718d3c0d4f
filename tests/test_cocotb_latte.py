"""cocotb regressions of the ``latte`` block (Icarus and Verilator) and the real-head kept ratio."""

from __future__ import annotations

import pytest

from tests.cocotb_helpers import run_block

CONFIGS = {
    "default": {},
    "wide_narrow_out": {"n_max": 32, "d_h": 32, "lanes": 8, "out_width": 10, "out_frac": 3},
}


CASES = [(config, sim) for config in CONFIGS for sim in ("icarus", "verilator")]


@pytest.mark.cocotb
@pytest.mark.parametrize("config,sim", CASES)
def test_latte_random_and_directed(config, sim):
    stats = run_block("latte", sim, CONFIGS[config], testcase=["random_heads", "directed_corners"])
    assert stats["random_checked"] > 0 and stats["directed"] == "ok"


REAL_HEAD_CONFIG = {"n_max": 32, "d_h": 32, "lanes": 8}  # MiniLM: d_h = 32
REAL_LAYER, REAL_HEAD, REAL_PRUNE = 2, 5, 0.8


@pytest.mark.cocotb
def test_latte_real_minilm_head_same_kept_ratio_as_golden(tmp_path):
    """Per-head τ calibrated on held-out MiniLM activations (golden side) for an 80 % pruning
    target; the RTL run on one real head keeps exactly the keys the golden model keeps."""
    import numpy as np

    from golden.corpus import CALIBRATION, CORPUS
    from golden.latte import calibrate_tau, encode_score_scale, latte_fixed, latte_float, quantize_head
    from golden.minilm import MiniLM
    from hdl.latte import latte_formats
    from hdl.registry import get_block

    model = MiniLM.load()
    calib = [model.head_inputs(text, REAL_LAYER)[REAL_HEAD] for text in CALIBRATION]
    tau = calibrate_tau(calib, REAL_PRUNE)
    head = model.head_inputs(CORPUS[1], REAL_LAYER)[REAL_HEAD]
    qh = quantize_head(head)
    params = get_block("latte").resolve(REAL_HEAD_CONFIG)
    assert head.n <= params["n_max"]
    fmts = latte_formats(**params)
    mant, shift = encode_score_scale(qh.score_scale, fmts)
    path = tmp_path / "real_head.npz"
    np.savez(path, q=qh.q, k=qh.k, v=qh.v, tau=tau, mant=mant, shift=shift)
    stats = run_block("latte", "icarus", REAL_HEAD_CONFIG, testcase="real_head",
                      extra_env={"LATTE_REAL_HEAD": str(path)})
    golden_float = latte_float(head, tau=tau).work
    golden_fixed = latte_fixed(head, tau=tau, n_max=params["n_max"]).work
    assert stats["real_pairs"] == head.m * head.n
    assert stats["real_kept_ratio"] == golden_float["kept_ratio"] == golden_fixed["kept_ratio"]
    assert 0.05 < stats["real_kept_ratio"] < 0.6  # τ really prunes on this head
