"""cocotb regressions of the ``mca`` block (Icarus and Verilator), incl. a real MiniLM head."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cocotb_helpers import run_block

CONFIGS = {
    "default": {},
    "wide": {"d_in": 24, "d": 8, "n_max": 6, "m_max": 5, "lanes": 4, "cdf_bits": 12, "ws_frac": 11},
}
CASES = [(config, sim) for config in CONFIGS for sim in ("icarus", "verilator")]


@pytest.mark.cocotb
@pytest.mark.parametrize("config,sim", CASES)
def test_mca_random_and_directed(config, sim):
    stats = run_block("mca", sim, CONFIGS[config], testcase=["random_heads", "directed_cases"])
    assert stats["random_checked"] > 0 and stats["directed"] == "ok"


REAL_LAYER, REAL_HEAD, REAL_ALPHA, REAL_SEED = 2, 5, 0.4, 2026


def real_head_npz(path, n: int, m: int, layer: int = REAL_LAYER, head_idx: int = REAL_HEAD,
                  alpha: float = REAL_ALPHA, seed: int = REAL_SEED, text_idx: int = 1) -> dict:
    """A real all-MiniLM-L6-v2 head (first n key tokens, first m queries) quantized exactly as
    :func:`golden.mca.mca_fixed` does; saves the RTL's inputs and returns the block parameters."""
    from golden.corpus import CORPUS
    from golden.mca import MCAFormats, _attention, make_sampling_table
    from golden.minilm import MiniLM
    from golden.reference import HeadInputs

    fmts = MCAFormats()
    model = MiniLM.load()
    full = model.head_inputs(CORPUS[text_idx], layer)[head_idx]
    head = HeadInputs(full.x_q[:m], full.x_kv[:n], full.wq, full.wk, full.wv, full.bq, full.bk, full.bv)
    table = make_sampling_table(head.wv, cdf_bits=16, ws_width=18)
    np.savez(path, x=fmts.token_fmt.quantize(head.x_kv), a=fmts.a_fmt.quantize(_attention(head)), w=head.wv,
             bias=fmts.h_fmt.quantize(head.bv), alpha=alpha, seed=seed, cdf_bits=16, ws_width=18)
    params = {"d_in": head.d_in, "d": head.wv.shape[1], "n_max": max(n, 8), "m_max": max(m, 8), "lanes": 8,
              "cdf_bits": 16, "ws_width": 18, "ws_frac": table.ws_fmt.frac}
    return {"head": head, "params": params, "table": table}


@pytest.mark.cocotb
def test_mca_real_minilm_head_verilator(tmp_path):
    """One real MiniLM head (layer 2, head 5, 8 tokens, d_in = 384, d = 32) on Verilator: Y equals
    the golden mca_fixed output for the seed, and Σ r_j gives the head's FLOPs reduction."""
    from golden.mca import mca_fixed

    path = tmp_path / "real.npz"
    info = real_head_npz(path, n=8, m=4)
    stats = run_block("mca", "verilator", info["params"], testcase="real_head", extra_env={"MCA_REAL_HEAD": str(path)})
    method = mca_fixed(info["head"], alpha=REAL_ALPHA, seed=REAL_SEED)
    assert stats["real_samples"] == round(info["head"].n * method.work["mean_r"])
    assert info["head"].d_in * stats["real_n"] / stats["real_samples"] == pytest.approx(method.work["flops_reduction"])
    assert method.work["flops_reduction"] > 1
