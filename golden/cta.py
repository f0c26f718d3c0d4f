"""CTA golden model: compressed token attention (DESIGN §3, seed 001 §III).

Float model (:func:`cta_float_trace` / :func:`cta_float`), one head:

1. Hash X^Q with LSH_0 and X^KV with LSH_1 (:mod:`golden.lsh`), cluster indices CT0, CT1 in
   order of first appearance; centroids C^0 (k0 rows), C^1 (k1 rows).
2. Residuals R = X^KV − C^1[CT1], hashed with LSH_2 -> CT2, centroids C^2 (k2 rows).
3. Compressed linears (eq. 3): Q̄ = C^0 W^Q + b^Q, K̄ = C^cat W^K, V̄ = C^cat W^V with
   C^cat = [C^1; C^2]. Biases go on the C^1 rows only (K̄[:k1] += b^K, V̄[:k1] += b^V): eq. (4)
   rebuilds K_j as K̄[CT1 j] + K̄[k1 + CT2 j], which must contain the bias exactly once.
4. Scores S̄ = Q̄ K̄ᵀ/√d; the PPE subtracts m_c = max_{t<k1} S̄[c][t] from the k2 residual
   scores of the row (CS = compressed scores as stored in the CS buffer).
5. Probability aggregation (Fig. 6): e = exp(CS[c][CT1 j] + CS[c][k1 + CT2 j]) added to
   AP[c][CT1 j] and AP[c][k1 + CT2 j].
6. Ō = AP·V̄ / (Σ_t AP[c][t] / 2); O[i] = Ō[CT0 i].

Work figures (seed 001 §III-D, §VI-B; ``d`` = d_h, ``d_v`` = width of W^V):

* ``RL`` = linear MACs (k0·d + (k1+k2)·(d + d_v))·d_in over the exact (m·d + n·(d + d_v))·d_in.
* ``RA`` = attention-part operations (scores k0(k1+k2)d + exps k0·n + output k0(k1+k2)d_v) over
  the exact (m·n·d + m·n + m·n·d_v).
* ``overhead_*``: hash MACs l·d_in·(m + 2n), centroid additions, PAG additions 3·k0·n.

The fixed-point model (:func:`cta_fixed`) composes the per-block golden functions of the RTL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .lsh import LSHParams, centroids, cluster_indices, lsh_hash, make_lsh_params
from .reference import HeadInputs, MethodResult

__all__ = ["CTATrace", "compressed_scores", "aggregate_probabilities", "cta_work", "cta_float_trace",
           "cta_float", "cta_fixed"]


@dataclass(frozen=True)
class CTATrace:
    """Every intermediate of one float CTA run (names as in DESIGN §3)."""

    ct0: np.ndarray
    ct1: np.ndarray
    ct2: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    residual: np.ndarray
    qbar: np.ndarray
    kbar: np.ndarray
    vbar: np.ndarray
    cs: np.ndarray
    ap: np.ndarray
    obar: np.ndarray
    out: np.ndarray

    @property
    def k0(self) -> int:
        return self.c0.shape[0]

    @property
    def k1(self) -> int:
        return self.c1.shape[0]

    @property
    def k2(self) -> int:
        return self.c2.shape[0]


def compressed_scores(qbar: np.ndarray, kbar: np.ndarray, k1: int) -> np.ndarray:
    """S̄ = Q̄K̄ᵀ/√d with the PPE's max of the first k1 scores subtracted from the last k2."""
    if not 1 <= k1 <= kbar.shape[0]:
        raise ValueError(f"k1={k1} must be in [1, {kbar.shape[0]}]")
    s = qbar @ kbar.T / math.sqrt(qbar.shape[1])
    s[:, k1:] -= s[:, :k1].max(axis=1, keepdims=True)
    return s


def aggregate_probabilities(cs: np.ndarray, ct1: np.ndarray, ct2: np.ndarray, k1: int) -> np.ndarray:
    """AP of Fig. 6 in float64, vectorised over rows: (k0 × (k1+k2))."""
    k = cs.shape[1]
    e = np.exp(cs[:, ct1] + cs[:, k1 + ct2])                 # (k0, n)
    onehot1 = np.zeros((ct1.size, k))
    onehot1[np.arange(ct1.size), ct1] = 1.0
    onehot2 = np.zeros((ct2.size, k))
    onehot2[np.arange(ct2.size), k1 + ct2] = 1.0
    return e @ onehot1 + e @ onehot2


def cta_work(m: int, n: int, d_in: int, d: int, d_v: int, k0: int, k1: int, k2: int, l: int) -> dict[str, Any]:
    """k0, k1, k2, RL, RA and the compression overheads (see the module doc)."""
    lin = (k0 * d + (k1 + k2) * (d + d_v)) * d_in
    lin_exact = (m * d + n * (d + d_v)) * d_in
    att = k0 * (k1 + k2) * d + k0 * n + k0 * (k1 + k2) * d_v
    att_exact = m * n * d + m * n + m * n * d_v
    return {
        "k0": k0, "k1": k1, "k2": k2,
        "RL": lin / lin_exact,
        "RA": att / att_exact,
        "linear_macs": lin, "linear_macs_exact": lin_exact,
        "attention_ops": att, "attention_ops_exact": att_exact,
        "overhead_hash_macs": l * d_in * (m + 2 * n),
        "overhead_centroid_adds": d_in * (m + 2 * n),
        "overhead_centroid_divs": d_in * (k0 + k1 + k2),
        "overhead_pag_adds": 3 * k0 * n,
    }


def _lsh_setting(head: HeadInputs, l: int, widths: float | Sequence[float], seed: int,
                 lsh: Sequence[LSHParams] | None) -> tuple[LSHParams, LSHParams, LSHParams]:
    if lsh is None:
        return make_lsh_params(head.d_in, l=l, widths=widths, seed=seed)
    params = tuple(lsh)
    if len(params) != 3 or not all(isinstance(p, LSHParams) for p in params):
        raise TypeError("lsh must be three LSHParams (LSH_0, LSH_1, LSH_2)")
    for h, p in enumerate(params):
        if p.d_in != head.d_in:
            raise ValueError(f"lsh[{h}] is for d_in={p.d_in}, the head has d_in={head.d_in}")
    return params  # type: ignore[return-value]


def cta_float_trace(head: HeadInputs, *, l: int = 6, widths: float | Sequence[float] = 4.0, seed: int = 0,
                    lsh: Sequence[LSHParams] | None = None) -> CTATrace:
    """The float CTA algorithm with all intermediates (settings as :func:`cta_float`)."""
    lsh0, lsh1, lsh2 = _lsh_setting(head, l, widths, seed, lsh)
    ct0, k0 = cluster_indices(lsh_hash(head.x_q, lsh0))
    ct1, k1 = cluster_indices(lsh_hash(head.x_kv, lsh1))
    c0, _ = centroids(head.x_q, ct0, k0)
    c1, _ = centroids(head.x_kv, ct1, k1)
    residual = head.x_kv - c1[ct1]
    ct2, k2 = cluster_indices(lsh_hash(residual, lsh2))
    c2, _ = centroids(residual, ct2, k2)
    ccat = np.concatenate([c1, c2])
    qbar = c0 @ head.wq + head.bq
    kbar = ccat @ head.wk
    vbar = ccat @ head.wv
    kbar[:k1] += head.bk
    vbar[:k1] += head.bv
    cs = compressed_scores(qbar, kbar, k1)
    ap = aggregate_probabilities(cs, ct1, ct2, k1)
    obar = (ap @ vbar) / (ap.sum(axis=1, keepdims=True) / 2.0)
    return CTATrace(ct0, ct1, ct2, c0, c1, c2, residual, qbar, kbar, vbar, cs, ap, obar, obar[ct0])


def cta_float(head: HeadInputs, *, l: int = 6, widths: float | Sequence[float] = 4.0, seed: int = 0,
              lsh: Sequence[LSHParams] | None = None, **settings: Any) -> MethodResult:
    """CTA in float64 (method interface).

    ``l``: hash length; ``widths``: bucket widths (w0, w1, w2) or one width for all three;
    ``seed``: LSH parameter seed; ``lsh``: explicit (LSH_0, LSH_1, LSH_2) overriding the three.
    ``work``: k0, k1, k2, RL, RA and the overheads (:func:`cta_work`).
    """
    if settings:
        raise TypeError(f"cta_float got unknown settings: {sorted(settings)}")
    tr = cta_float_trace(head, l=l, widths=widths, seed=seed, lsh=lsh)
    work = cta_work(head.m, head.n, head.d_in, head.d_h, head.wv.shape[1], tr.k0, tr.k1, tr.k2,
                    (lsh[0].length if lsh is not None else l))
    return MethodResult(tr.out, work)


def cta_fixed(head: HeadInputs, **settings: Any) -> MethodResult:
    """Bit-exact CTA composed of the per-block golden models (systolic, cim, cag, pag)."""
    raise NotImplementedError("cta_fixed: waiting for golden.systolic, golden.cim and golden.cag")
