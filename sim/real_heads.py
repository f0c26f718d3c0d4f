"""Real all-MiniLM-L6-v2 heads prepared as RTL inputs for the E-ATT and MCA testbenches and
benchmarks (quantized exactly as the golden method interfaces do)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EATT_REAL_TAU = 1.0


def eatt_real_head_npz(path: Path, n: int, m: int, layer: int = 2, head_idx: int = 5,
                       tau: float = EATT_REAL_TAU, n_max: int = 8) -> dict:
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
    f = EattFormats(d_in=head.d_in, d_h=head.d_h, n_max=n_max, weight_width=12)
    peak = max(float(np.max(np.abs(a))) for a in (head.wq, head.wk, head.bq, head.bk))
    wfmt = QFormat.covering(peak, 12)
    mant, shift = encode_scale(eatt_score_scale(wfmt.frac, head.d_h), f.backend)
    data = {"xq": f.token_fmt.quantize(head.x_q), "xkv": f.token_fmt.quantize(head.x_kv),
            "wq": wfmt.quantize(head.wq), "wk": wfmt.quantize(head.wk), "bq": wfmt.quantize(head.bq),
            "bk": wfmt.quantize(head.bk), "v": f.v_fmt.quantize(head.x_kv @ head.wv + head.bv),
            "tau": int(f.token_fmt.quantize(tau)), "mant": mant, "shift": shift}
    np.savez(path, **data)
    return {"head": head, "data": data, "fmts": f}


def mca_real_head_npz(path: Path, n: int, m: int, layer: int = 2, head_idx: int = 5,
                      alpha: float = 0.4, seed: int = 2026, text_idx: int = 1) -> dict:
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
    params = {"d_in": head.d_in, "d_h": head.wv.shape[1], "n_max": max(n, 8), "m_max": max(m, 8), "lanes": 8,
              "cdf_bits": 16, "ws_width": 18, "ws_frac": table.ws_fmt.frac}
    return {"head": head, "params": params, "table": table}
