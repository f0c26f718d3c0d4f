"""cocotb regressions of the ``mca`` block (Icarus and Verilator), incl. a real MiniLM head."""

from __future__ import annotations

import pytest

from sim.real_heads import mca_real_head_npz
from tests.cocotb_helpers import run_block

CONFIGS = {
    "default": {},
    "wide": {"d_in": 24, "d_h": 8, "n_max": 6, "m_max": 5, "lanes": 4, "cdf_bits": 12, "ws_frac": 11},
}
CASES = [(config, sim) for config in CONFIGS for sim in ("icarus", "verilator")]


@pytest.mark.cocotb
@pytest.mark.parametrize("config,sim", CASES)
def test_mca_random_and_directed(config, sim):
    stats = run_block("mca", sim, CONFIGS[config], testcase=["random_heads", "directed_cases"])
    assert stats["random_checked"] > 0 and stats["directed"] == "ok"


REAL_ALPHA, REAL_SEED = 0.4, 2026


@pytest.mark.cocotb
def test_mca_real_minilm_head_verilator(tmp_path):
    """One real MiniLM head (layer 2, head 5, 8 tokens, d_in = 384, d_h = 32) on Verilator: Y equals
    the golden mca_fixed output for the seed, and Σ r_j gives the head's FLOPs reduction."""
    from golden.mca import mca_fixed

    path = tmp_path / "real.npz"
    info = mca_real_head_npz(path, n=8, m=4, alpha=REAL_ALPHA, seed=REAL_SEED)
    stats = run_block("mca", "verilator", info["params"], testcase="real_head", extra_env={"MCA_REAL_HEAD": str(path)})
    method = mca_fixed(info["head"], alpha=REAL_ALPHA, seed=REAL_SEED)
    assert stats["real_samples"] == round(info["head"].n * method.work["mean_r"])
    assert info["head"].d_in * stats["real_n"] / stats["real_samples"] == pytest.approx(method.work["flops_reduction"])
    assert method.work["flops_reduction"] > 1


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_mca_real_minilm_head_full_length(tmp_path, sim):
    """The whole sentence of the real head (every token as query and key), both simulators."""
    path = tmp_path / "real.npz"
    info = mca_real_head_npz(path, n=32, m=32, alpha=REAL_ALPHA, seed=REAL_SEED)
    params = {**info["params"], "n_max": 32, "m_max": 32}
    stats = run_block("mca", sim, params, testcase="real_head", extra_env={"MCA_REAL_HEAD": str(path)})
    assert stats["real_n"] == info["head"].n > 8
