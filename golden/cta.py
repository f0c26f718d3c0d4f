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

Fixed-point model (:func:`cta_fixed_trace` / :func:`cta_fixed`): the same steps composed of the
per-block golden models of the RTL, never re-implementing their arithmetic here:

* tokens quantized to the SA token format (Q6.7), LSH directions to Q3.9, b and 1/w to 12-bit
  formats covering their range, W^Q/W^K/W^V to one 12-bit format covering all three;
* hashes: :func:`golden.systolic.lsh_hash` (LSH_2 on :func:`golden.systolic.residual_tokens`);
* cluster indices: :func:`golden.cim.cluster_index` (capacity ``k_max``, overflow flag);
* centroids: :func:`golden.cag.aggregate` (C^2 from the residuals ``x − C^1[CT1]``);
* Q̄K̄V̄: :func:`golden.systolic.linear`, d_in tiled over ceil(d_in / d) SA passes (exact partial
  sums). Biases ride on the SA's bottom lanes (``lin_bias_fmt``: the y-lane width at the weights'
  binary point) and are added once by the PPE: C^0 and C^1 rows get b^Q / b^K / b^V, C^2 rows 0.
  K̄ and V̄ run as one linear phase with the weights side by side ([W^K | W^V]).
* scores: :func:`golden.systolic.scores` with the PPE's 1/√d constant for the *head* dimension
  (``SystolicConfig.d_h`` = d_h; the dot products only use the first d_h rows);
* AP: :func:`golden.pag.probability_aggregation` with ``cs_fmt`` = SA score format and ``ap_fmt``
  = SA AP format (the exp output has the AP's fractional bits and 2 integer bits);
* Ō: :func:`golden.systolic.output`; O[i] = Ō[CT0 i].

Tokens the CIM refuses (capacity overflow, index = ``k_max``) are left out of the CAG, PAG
and output (their queries get a zero output); every saturation or refusal is reported in
``work["flags"]`` and ``work["overflow"]`` (any flag set).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .fixed import QFormat
from .lsh import LSHParams, centroids, cluster_indices, lsh_hash, make_lsh_params
from .lut import ExpSpec
from .reference import HeadInputs, MethodResult

if TYPE_CHECKING:
    from . import systolic as _sa


def _blocks() -> tuple[Any, Any, Any, Any]:
    """The block golden models (imported lazily: the float model does not need them)."""
    from . import cag, cim, pag, systolic

    return systolic, cim, cag, pag

__all__ = ["CTATrace", "compressed_scores", "aggregate_probabilities", "cta_work", "cta_float_trace",
           "cta_float", "CTAFixedTrace", "cta_fixed_config", "cta_fixed_trace", "cta_fixed"]


@dataclass(frozen=True)
class CTATrace:
    """Every intermediate of one float CTA run (names as in DESIGN §3); :class:`CTAFixedTrace`
    extends it with the fixed-point run's inputs."""

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


@dataclass(frozen=True, kw_only=True)
class CTAFixedTrace(CTATrace):
    """Raw intermediates of one fixed-point CTA run (formats in ``cfg``; see the module doc): the
    float trace's fields as raw integers (``out`` in raw cfg.out_fmt, m × d_v), plus the inputs
    and flags below."""

    cfg: _sa.SystolicConfig
    exp_spec: ExpSpec
    x_q: np.ndarray
    x_kv: np.ndarray
    h0: np.ndarray
    h1: np.ndarray
    h2: np.ndarray
    flags: dict[str, bool]
    #: raw SA operands as used (golden.cta_program builds the SA beat program from them): "lsh"
    #: (three (directions, bias, inv_width)), "gathered" (C^1[CT1] per key), "w_q", "w_kv" ([W^K|W^V]),
    #: "bias_q" (k0 × d_h), "bias_kv" ((k1+k2) × 2·d_h, zero on the C^2 rows), "score_cfg"
    sa_inputs: dict[str, Any] = field(default_factory=dict)


def cta_fixed_config(head: HeadInputs, lsh: Sequence[LSHParams], *, d: int = 64, b: int = 8,
                     hash_width: int = 8, ap_width: int = 17) -> _sa.SystolicConfig:
    """SA configuration for a head: height ``d`` (dot products longer than d run in passes),
    12-bit formats covering W, b_LSH and 1/w (DESIGN §2), AP with ``ap_width`` bits and integer
    bits covering n (an AP entry sums at most n exps of about 1), ``d_in_max`` >= d_in and a
    partial-sum buffer deep enough for the longest pass (max(m, n) tokens, 2·d_h weight columns)."""
    _sa = _blocks()[0]
    if not isinstance(d, int) or d < 2:
        raise ValueError(f"SA height d={d!r} must be an integer >= 2")
    if head.wv.shape[1] > d or head.d_h > d:
        raise ValueError(f"SA height d={d} must be >= the head width ({head.d_h}, {head.wv.shape[1]})")
    w_max = max(float(np.max(np.abs(w))) for w in (head.wq, head.wk, head.wv))
    b_max = max(float(np.max(p.b)) for p in lsh)
    inv_max = max(1.0 / p.w for p in lsh)
    ap_int = max(1, head.n.bit_length())
    if ap_width - ap_int < 1:
        raise ValueError(f"ap_width={ap_width} leaves no fractional bits for n={head.n}")
    return _sa.SystolicConfig(
        b=b, d=d,
        weight_fmt=QFormat.covering(max(w_max, 2.0 ** -12), 12),
        bias_fmt=QFormat.covering(max(b_max, 2.0 ** -12), 12),
        inv_w_fmt=QFormat.covering(inv_max, 12, signed=False),
        hash_fmt=QFormat(hash_width, 0, rounding="truncate"),
        ap_fmt=QFormat(ap_width, ap_width - ap_int, signed=False),
        d_in_max=max(1024, head.d_in),
        psum_depth=max(512, head.m, head.n, head.wk.shape[1] + head.wv.shape[1]),
    )


def cta_fixed_trace(
    head: HeadInputs, *, l: int = 6, widths: float | Sequence[float] = 4.0, seed: int = 0,
    lsh: Sequence[LSHParams] | None = None, cfg: _sa.SystolicConfig | None = None,
    k_max: int | None = None, exp_spec: ExpSpec | None = None, n_max: int | None = None,
) -> CTAFixedTrace:
    """Bit-exact CTA with all raw intermediates (settings as :func:`cta_fixed`; ``n_max``: the
    CAG's run length, which sizes its reciprocal-of-count LUT; default max(m, n))."""
    _sa, _cim, _cag, _pag = _blocks()
    lsh0, lsh1, lsh2 = _lsh_setting(head, l, widths, seed, lsh)
    if cfg is None:
        cfg = cta_fixed_config(head, (lsh0, lsh1, lsh2))
    elif not isinstance(cfg, _sa.SystolicConfig):
        raise TypeError(f"cfg must be a golden.systolic.SystolicConfig, not {type(cfg).__name__}")
    if head.d_in > cfg.d_in_max:
        raise ValueError(f"d_in={head.d_in} > the SA's d_in_max={cfg.d_in_max}")
    m, n = head.m, head.n
    cap = max(m, n) if k_max is None else k_max
    if not isinstance(cap, int) or cap < 1:
        raise ValueError(f"k_max must be an integer >= 1, not {k_max!r}")
    if exp_spec is None:
        exp_spec = ExpSpec(QFormat(16, 8), QFormat(cfg.ap_fmt.frac + 2, cfg.ap_fmt.frac, signed=False))
    flags: dict[str, bool] = {}

    def flag(name: str, mask: Any) -> None:
        flags[name] = flags.get(name, False) or bool(np.any(mask))

    tok = cfg.token_fmt
    x_q, x_kv = tok.quantize(head.x_q), tok.quantize(head.x_kv)
    flag("token_saturated", np.abs(head.x_q) > tok.max_value + tok.lsb)
    flag("token_saturated", np.abs(head.x_kv) > tok.max_value + tok.lsb)
    raw_lsh = [(cfg.dir_fmt.quantize(p.a), cfg.bias_fmt.quantize(p.b), int(cfg.inv_w_fmt.quantize(1.0 / p.w)))
               for p in (lsh0, lsh1, lsh2)]

    def cim(codes: np.ndarray, level: int) -> tuple[np.ndarray, int]:
        idx, k, over = _cim.cluster_index(codes, k_max=cap, hash_width=cfg.hash_fmt.width)
        flag("cim_overflow", over)
        flag(f"cim{level}_overflow", over)      # per LSH level (the accelerator stops at the first)
        return idx, k

    def cag(x: np.ndarray, idx: np.ndarray, k: int, res_c: np.ndarray | None = None) -> np.ndarray:
        res = _cag.aggregate(x, idx, k_max=cap, n_max=max(m, n) if n_max is None else n_max,
                             token_fmt=tok,
                             centroid_fmt=cfg.qkv_fmt, residual_centroids=res_c, residual_fmt=tok)
        flag("cag_saturated", res.saturated)
        flag("cag_overflow", res.overflow)
        # clusters after the last accepted index do not appear in CAG's table: pad with zero rows
        return np.concatenate([res.centroids, np.zeros((k - res.n_clusters, x.shape[1]), dtype=np.int64)])

    # 1-2: LSH_1 (keys) then LSH_0 (queries), cluster indices, centroids
    h1, o = _sa.lsh_hash(x_kv, *raw_lsh[1], cfg)
    flag("hash_saturated", o)
    ct1, k1 = cim(h1, 1)
    h0, o = _sa.lsh_hash(x_q, *raw_lsh[0], cfg)
    flag("hash_saturated", o)
    ct0, k0 = cim(h0, 0)
    c1 = cag(x_kv, ct1, k1)
    c0 = cag(x_q, ct0, k0)
    # 3-4: residuals on the SA's left-edge subtractors, LSH_2, residual centroids
    ok1 = ct1 < cap
    gathered = np.where(ok1[:, None], c1[np.minimum(ct1, k1 - 1)], 0)   # k1 >= 1: token 0 always fits
    residual, o = _sa.residual_tokens(x_kv, gathered, cfg)
    flag("residual_saturated", o)
    h2, o = _sa.lsh_hash(residual, *raw_lsh[2], cfg)
    flag("hash_saturated", o)
    ct2, k2 = cim(h2, 2)
    ct2 = np.where(ok1, ct2, cap)          # a key without an LSH_1 cluster has no residual either
    c2 = cag(x_kv, ct2, k2, gathered)
    # 5: compressed linears, biases on the SA's bottom lanes (C^0 / C^1 rows; C^2 rows none)
    def weights(w: np.ndarray) -> np.ndarray:
        flag("weight_saturated", np.abs(w) > cfg.weight_fmt.max_value + cfg.weight_fmt.lsb)
        return cfg.weight_fmt.quantize(w)

    def biases(bias: np.ndarray, rows_with: int, rows_without: int) -> np.ndarray:
        fmt = cfg.lin_bias_fmt
        flag("weight_saturated", np.abs(bias) > fmt.max_value + fmt.lsb)
        q = fmt.quantize(np.asarray(bias, dtype=float).reshape(1, -1))
        return np.vstack([np.repeat(q, rows_with, axis=0), np.zeros((rows_without, q.shape[1]), dtype=np.int64)])

    ccat = np.vstack([c1, c2])
    w_q, bias_q = weights(head.wq), biases(head.bq, k0, 0)
    qbar, o = _sa.linear(c0, w_q, cfg, bias_q)
    flag("linear_saturated", o)
    d_k = head.wk.shape[1]
    w_kv = np.hstack([weights(head.wk), weights(head.wv)])
    bias_kv = np.hstack([biases(head.bk, k1, k2), biases(head.bv, k1, k2)])
    kv, o = _sa.linear(ccat, w_kv, cfg, bias_kv)
    flag("linear_saturated", o)
    kbar, vbar = kv[:, :d_k], kv[:, d_k:]
    # 6: scores with the max subtraction; the 1/√d constant is that of the head dimension
    score_cfg = replace(cfg, d_h=head.d_h)
    cs, o = _sa.scores(qbar, kbar, k1, score_cfg)
    flag("score_saturated", o)
    # 7: probability aggregation over the keys that have both cluster indices
    keep = ok1 & (ct2 < cap)
    pag = _pag.probability_aggregation(cs, ct1[keep], ct2[keep], k1, cs_fmt=cfg.score_fmt, exp_spec=exp_spec,
                                       ap_fmt=cfg.ap_fmt)
    flag("pag_add_saturated", pag.flags.add)
    flag("pag_exp_saturated", pag.flags.exp)
    flag("pag_ap_saturated", pag.flags.ap)
    # 8: normalized output, broadcast to the queries
    obar, o, zero = _sa.output(pag.ap, vbar, cfg)
    flag("output_saturated", o)
    flag("output_div_by_zero", zero)
    ok0 = ct0 < cap
    out = np.where(ok0[:, None], obar[np.minimum(ct0, k0 - 1)], 0)
    return CTAFixedTrace(ct0, ct1, ct2, c0, c1, c2, residual, qbar, kbar, vbar, cs, pag.ap, obar, out,
                         cfg=cfg, exp_spec=exp_spec, x_q=x_q, x_kv=x_kv, h0=h0, h1=h1, h2=h2, flags=flags,
                         sa_inputs={"lsh": raw_lsh, "gathered": gathered, "w_q": w_q, "w_kv": w_kv, "bias_q": bias_q,
                          "bias_kv": bias_kv, "score_cfg": score_cfg,
                          "b_q": biases(head.bq, 1, 0)[0], "b_k": biases(head.bk, 1, 0)[0],
                          "b_v": biases(head.bv, 1, 0)[0]})


def cta_fixed(head: HeadInputs, *, l: int = 6, widths: float | Sequence[float] = 4.0, seed: int = 0,
              lsh: Sequence[LSHParams] | None = None, cfg: _sa.SystolicConfig | None = None,
              k_max: int | None = None, exp_spec: ExpSpec | None = None, **settings: Any) -> MethodResult:
    """Bit-exact CTA (method interface), composed of the block golden models (see the module doc).

    Settings as :func:`cta_float` plus ``cfg`` (SA formats; default :func:`cta_fixed_config`),
    ``k_max`` (CIM/CAG capacity, default max(m, n)) and ``exp_spec`` (PAG exp unit).
    ``work``: as :func:`cta_float` plus ``flags`` (each saturation/refusal), ``overflow``, formats.
    """
    if settings:
        raise TypeError(f"cta_fixed got unknown settings: {sorted(settings)}")
    tr = cta_fixed_trace(head, l=l, widths=widths, seed=seed, lsh=lsh, cfg=cfg, k_max=k_max,
                         exp_spec=exp_spec)
    work = cta_work(head.m, head.n, head.d_in, head.d_h, head.wv.shape[1], tr.k0, tr.k1, tr.k2,
                    (lsh[0].length if lsh is not None else l))
    work["flags"] = dict(tr.flags)
    work["overflow"] = any(tr.flags.values())
    work["formats"] = {k: str(v) for k, v in tr.cfg.formats().items()}
    return MethodResult(tr.cfg.out_fmt.to_float(tr.out), work)
