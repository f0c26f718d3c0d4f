"""cocotb regressions of the ``eatt`` block (Icarus and Verilator), incl. a real MiniLM head."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cocotb_helpers import run_block

CONFIGS = {
    "default": {},
    "wide": {"d_in": 24, "d": 16, "n_max": 12, "lanes": 4, "weight_width": 10},
}
CASES = [(config, sim) for config in CONFIGS for sim in ("icarus", "verilator")]


@pytest.mark.cocotb
@pytest.mark.parametrize("config,sim", CASES)
def test_eatt_random_and_directed(config, sim):
    stats = run_block("eatt", sim, CONFIGS[config], testcase=["random_heads", "directed_corners"])
    assert stats["random_checked"] > 0 and stats["directed"] == "ok"


#: a real all-MiniLM-L6-v2 head at its real sizes d_in = 384, d = 32 (n limited by n_max)
REAL_CONFIG = {"d_in": 384, "d": 32, "n_max": 8, "lanes": 8, "weight_width": 12}
REAL_LAYER, REAL_HEAD, REAL_TAU = 2, 5, 1.0


def real_head_npz(path, n: int, m: int, layer: int = REAL_LAYER, head_idx: int = REAL_HEAD,
                  tau: float = REAL_TAU) -> dict:
    """Quantize a real MiniLM head (first n key tokens, first m queries) exactly as
    :func:`golden.eatt.eatt` does and save the RTL's inputs to ``path``."""
    from golden.corpus import CORPUS
    from golden.eatt import EattFormats, eatt_score_scale
    from golden.fixed import QFormat
    from golden.minilm import MiniLM
    from golden.reference import HeadInputs
    from golden.softmax_pv import encode_scale

    model = MiniLM.load()
    full = model.head_inputs(CORPUS[1], layer)[head_idx]
    head = HeadInputs(full.x_q[:m], full.x_kv[:n], full.wq, full.wk, full.wv, full.bq, full.bk, full.bv)
    f = EattFormats(d_in=head.d_in, d=head.d_h, n_max=REAL_CONFIG["n_max"], weight_width=12)
    peak = max(float(np.max(np.abs(a))) for a in (head.wq, head.wk, head.bq, head.bk))
    wfmt = QFormat.covering(peak, 12)
    mant, shift = encode_scale(eatt_score_scale(wfmt.frac, head.d_h), f.backend)
    data = {"xq": f.token_fmt.quantize(head.x_q), "xkv": f.token_fmt.quantize(head.x_kv),
            "wq": wfmt.quantize(head.wq), "wk": wfmt.quantize(head.wk), "bq": wfmt.quantize(head.bq),
            "bk": wfmt.quantize(head.bk), "v": f.v_fmt.quantize(head.x_kv @ head.wv + head.bv),
            "tau": int(f.token_fmt.quantize(tau)), "mant": mant, "shift": shift}
    np.savez(path, **data)
    return {"head": head, "data": data, "fmts": f}


@pytest.mark.cocotb
def test_eatt_real_minilm_head_verilator(tmp_path):
    """One real all-MiniLM-L6-v2 head (layer 2, head 5, 8 tokens, d_in = 384, d = 32) on Verilator,
    bit-exact; the golden method interface on the same head gives the same output."""
    from golden.eatt import eatt, eatt_fixed_raw

    path = tmp_path / "real.npz"
    info = real_head_npz(path, n=8, m=4)
    d = info["data"]
    want = eatt_fixed_raw(d["xq"], d["xkv"], d["wq"], d["wk"], d["bq"], d["bk"], d["tau"], d["v"], d["mant"],
                          d["shift"], info["fmts"])
    assert 0 < want.align.bits_q.mean() < 1  # τ really selects some features
    stats = run_block("eatt", "verilator", REAL_CONFIG, testcase="real_head", extra_env={"EATT_REAL_HEAD": str(path)})
    assert stats["real_m"] == 4 and stats["real_n"] == 8
    method = eatt(info["head"], tau=REAL_TAU)
    assert np.array_equal(info["fmts"].out_fmt.quantize(method.out), want.out)
