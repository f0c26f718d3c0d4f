"""cocotb regressions of the ``eatt`` block (Icarus and Verilator), incl. a real MiniLM head."""

from __future__ import annotations

import numpy as np
import pytest

from sim.real_heads import EATT_REAL_TAU, eatt_real_head_npz
from tests.cocotb_helpers import run_block

CONFIGS = {
    "default": {},
    "wide": {"d_in": 24, "d_h": 16, "n_max": 12, "lanes": 4, "weight_width": 10},
}
CASES = [(config, sim) for config in CONFIGS for sim in ("icarus", "verilator")]


@pytest.mark.cocotb
@pytest.mark.parametrize("config,sim", CASES)
def test_eatt_random_and_directed(config, sim):
    stats = run_block("eatt", sim, CONFIGS[config], testcase=["random_heads", "directed_corners"])
    assert stats["random_checked"] > 0 and stats["directed"] == "ok"


#: a real all-MiniLM-L6-v2 head at its real sizes d_in = 384, d_h = 32 (n limited by n_max)
REAL_CONFIG = {"d_in": 384, "d_h": 32, "n_max": 8, "lanes": 8, "weight_width": 12}
REAL_TAU = EATT_REAL_TAU


@pytest.mark.cocotb
def test_eatt_real_minilm_head_verilator(tmp_path):
    """One real all-MiniLM-L6-v2 head (layer 2, head 5, 8 tokens, d_in = 384, d_h = 32) on Verilator,
    bit-exact; the golden method interface on the same head gives the same output."""
    from golden.eatt import eatt, eatt_fixed_raw

    path = tmp_path / "real.npz"
    info = eatt_real_head_npz(path, n=8, m=4, n_max=REAL_CONFIG["n_max"])
    d = info["data"]
    want = eatt_fixed_raw(d["xq"], d["xkv"], d["wq"], d["wk"], d["bq"], d["bk"], d["tau"], d["v"], d["mant"],
                          d["shift"], info["fmts"])
    assert 0 < want.align.bits_q.mean() < 1  # τ really selects some features
    stats = run_block("eatt", "verilator", REAL_CONFIG, testcase="real_head", extra_env={"EATT_REAL_HEAD": str(path)})
    assert stats["real_m"] == 4 and stats["real_n"] == 8
    method = eatt(info["head"], tau=REAL_TAU)
    assert np.array_equal(info["fmts"].out_fmt.quantize(method.out), want.out)


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_eatt_real_minilm_head_full_length(tmp_path, sim):
    """The whole sentence (every token as query and key) of the real head, both simulators."""
    path = tmp_path / "real.npz"
    config = {**REAL_CONFIG, "n_max": 32}
    info = eatt_real_head_npz(path, n=32, m=32, n_max=32)
    stats = run_block("eatt", sim, config, testcase="real_head", extra_env={"EATT_REAL_HEAD": str(path)})
    assert stats["real_n"] == info["head"].n > 8
