"""E-ATT golden model: binarized feature selection and L1-distance scores (DESIGN §6, seed 000 §3).

The alignment (how queries and keys are formed and compared) uses no multiplier:

1. Binarize the tokens: ``x̃ = 1 if x > τ else 0`` (eq. 4, τ = 1.0 by default, τ >= 0).
2. Selection-sum projections (eqs. 6-9): ``Q[t] = Σ_{i: x̃[t][i]=1} W_Q[i] + b_Q`` and likewise K.
   In the fixed-point model the tokens are first quantized to ``token_fmt`` (comparison on raw
   integers, ``x_raw > τ_raw``) and the weights to ``weight_fmt``; the sums are then exact integer
   additions of raw weights (the accumulator is sized so that it can never overflow).
3. Scores ``-‖Q_i − K_j‖₁ / √d`` (eq. 10): the L1 distance is an exact integer in the fixed model.

The value path and ``P·V`` stay multiplicative. ``fixed=False`` computes them in float64. The
fixed-point value path (:func:`eatt_fixed_raw`, bit-exact with the ``eatt`` RTL block) is the shared
back end :func:`golden.softmax_pv.softmax_pv_fixed` (formats in :class:`EattFormats`):

4. Scores ``S = −L1_raw`` (exact integers, ``score_width`` bits); the factor ``2^-w_frac/√d``
   (:func:`eatt_score_scale`) becomes the scale register pair ``(scale_mant, scale_shift)``
   (:func:`golden.softmax_pv.encode_scale`, 16-bit mantissa) applied to ``S − max S`` with
   half-up rounding and saturation before the shared exp unit (``ExpSpec``: Q5.11 in, UQ1.15 out).
5. ``V = X^KV·W_V + b_V`` is a plain linear (done by the host / the CTA array) quantized to
   ``v_fmt`` (Q8.8, half-up, saturating); ``acc = Σ e·V_raw`` and ``den = Σ e`` exact;
   ``out = RecipSpec.scale(acc, 15 + 8, den, out_fmt)`` (Q8.8, saturating, flagged).

Work figure: the alignment multiplications removed, ``(m + n)·d_in·d + m·n·d`` (Table 2's
``2ld² + l²d`` for cross-attention shapes), against the remaining multiplications of the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fixed import QFormat, check_in_range
from .reference import HeadInputs, MethodResult, softmax
from .softmax_pv import SoftmaxPVFormats, SoftmaxPVOut, encode_scale, softmax_pv_fixed

__all__ = [
    "DEFAULT_TOKEN_FMT",
    "binarize",
    "selection_sum",
    "selection_acc_fmt",
    "l1_distance",
    "EattAlignment",
    "eatt_alignment_fixed",
    "EattFormats",
    "EattFixedOut",
    "eatt_score_scale",
    "eatt_fixed_raw",
    "eatt",
]

#: Tokens as in CTA §IV-C: 13-bit signed, 7 fractional bits.
DEFAULT_TOKEN_FMT = QFormat(13, 7)
#: Selection-sum chunk (tokens per step) bounding the (chunk × d_in × d) temporary.
_CHUNK = 64


def _check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, int | float | np.floating | np.integer):
        raise TypeError(f"tau must be a real number, not {type(tau).__name__}")
    tau = float(tau)
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite number >= 0, not {tau}")
    return tau


def binarize(x: np.ndarray, tau: float | int) -> np.ndarray:
    """``x > tau`` as a 0/1 ``np.int64`` array (eq. 4). Works on floats or on raw integers with a raw τ."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"binarize takes a numeric array, not dtype {arr.dtype}")
    return (arr > tau).astype(np.int64)


def selection_sum(bits: np.ndarray, w_raw: np.ndarray) -> np.ndarray:
    """``out[t] = Σ_{i: bits[t][i]=1} w_raw[i]``: row selection and addition only (eqs. 6-9).

    ``bits`` is (n × d_in) of 0/1, ``w_raw`` (d_in × d) integers; the result is exact ``np.int64``.
    Implemented as a masked sum over the selected rows (the hardware's select-accumulate), not as
    a matrix product, so that the test comparing it with ``bits @ w_raw`` checks something.
    """
    bits = np.asarray(bits)
    w = np.asarray(w_raw)
    if bits.ndim != 2 or w.ndim != 2:
        raise ValueError(f"selection_sum needs 2-D bits and weights, got {bits.shape} and {w.shape}")
    if bits.shape[1] != w.shape[0]:
        raise ValueError(f"bits have {bits.shape[1]} features but the weights have {w.shape[0]} rows")
    if bits.dtype.kind not in "iub" or np.any((bits != 0) & (bits != 1)):
        raise ValueError("bits must be a 0/1 array")
    if w.dtype.kind not in "iu":
        raise TypeError(f"selection_sum takes raw integer weights, not dtype {w.dtype}")
    sel = bits.astype(bool)
    w = w.astype(np.int64)
    out = np.empty((bits.shape[0], w.shape[1]), dtype=np.int64)
    for start in range(0, bits.shape[0], _CHUNK):
        chunk = sel[start:start + _CHUNK]
        out[start:start + _CHUNK] = np.where(chunk[:, :, None], w[None, :, :], 0).sum(axis=1)
    return out


def selection_acc_fmt(weight_fmt: QFormat, d_in: int) -> QFormat:
    """Accumulator wide enough for the sum of ``d_in`` weights plus a bias of the same format."""
    growth = math.ceil(math.log2(d_in + 1))
    return QFormat(weight_fmt.width + growth, weight_fmt.frac, True)


def l1_distance(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``‖q_i − k_j‖₁`` for all pairs (m × n); exact for integer inputs."""
    q = np.asarray(q)
    k = np.asarray(k)
    if q.ndim != 2 or k.ndim != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(f"l1_distance needs (m×d) and (n×d) with the same d, got {q.shape} and {k.shape}")
    return np.abs(q[:, None, :] - k[None, :, :]).sum(axis=2)


@dataclass(frozen=True)
class EattAlignment:
    """Integer results of the fixed-point alignment (all raw values have ``frac`` fractional bits)."""

    q_raw: np.ndarray
    k_raw: np.ndarray
    l1_raw: np.ndarray
    frac: int
    bits_q: np.ndarray
    bits_kv: np.ndarray

    def scores(self) -> np.ndarray:
        """Float scores ``-‖Q_i − K_j‖₁ / √d``."""
        d = self.q_raw.shape[1]
        return -self.l1_raw.astype(np.float64) * 2.0 ** -self.frac / math.sqrt(d)


def eatt_alignment_fixed(
    x_q_raw: np.ndarray, x_kv_raw: np.ndarray, wq_raw: np.ndarray, wk_raw: np.ndarray,
    bq_raw: np.ndarray | None, bk_raw: np.ndarray | None, tau_raw: int,
    *, token_fmt: QFormat = DEFAULT_TOKEN_FMT, weight_fmt: QFormat,
) -> EattAlignment:
    """Bit-exact multiplier-free alignment on raw integers (the RTL's golden model).

    ``x_*_raw`` are tokens in ``token_fmt``; ``w*_raw``/``b*_raw`` weights and biases in
    ``weight_fmt``; ``tau_raw`` the threshold in ``token_fmt`` raw units (>= 0).
    """
    xq = check_in_range(x_q_raw, token_fmt, "x_q_raw")
    xkv = check_in_range(x_kv_raw, token_fmt, "x_kv_raw")
    wq = check_in_range(wq_raw, weight_fmt, "wq_raw")
    wk = check_in_range(wk_raw, weight_fmt, "wk_raw")
    if xq.ndim != 2 or xkv.ndim != 2 or xq.shape[1] != xkv.shape[1]:
        raise ValueError(f"x_q_raw and x_kv_raw must be 2-D with the same d_in: {xq.shape} vs {xkv.shape}")
    d_in = xq.shape[1]
    if wq.shape[0] != d_in or wk.shape[0] != d_in or wq.shape[1] != wk.shape[1]:
        raise ValueError(f"wq_raw/wk_raw must be (d_in={d_in}) × d, got {wq.shape} and {wk.shape}")
    d = wq.shape[1]
    biases = []
    for name, b in (("bq_raw", bq_raw), ("bk_raw", bk_raw)):
        b = np.zeros(d, dtype=np.int64) if b is None else check_in_range(b, weight_fmt, name)
        if b.shape != (d,):
            raise ValueError(f"{name} must have shape ({d},), got {b.shape}")
        biases.append(b)
    if isinstance(tau_raw, bool) or not isinstance(tau_raw, int | np.integer):
        raise TypeError(f"tau_raw must be an integer (raw {token_fmt}), not {type(tau_raw).__name__}")
    if tau_raw < 0:
        raise ValueError(f"tau_raw must be >= 0, not {tau_raw}")
    bits_q = binarize(xq, int(tau_raw))
    bits_kv = binarize(xkv, int(tau_raw))
    q = selection_sum(bits_q, wq) + biases[0]
    k = selection_sum(bits_kv, wk) + biases[1]
    acc = selection_acc_fmt(weight_fmt, d_in)
    # The accumulator is sized for the worst case, so this can only fire on a sizing bug.
    assert np.all(acc.contains(q)) and np.all(acc.contains(k))
    return EattAlignment(q, k, l1_distance(q, k), weight_fmt.frac, bits_q, bits_kv)


@dataclass(frozen=True)
class EattFormats:
    """Widths of the ``eatt`` RTL block (alignment and back end); the weights' ``frac`` only enters
    through the scale registers, so the hardware depends on ``weight_width`` alone."""

    d_in: int
    d_h: int
    n_max: int
    token_fmt: QFormat = DEFAULT_TOKEN_FMT
    weight_width: int = 12
    v_fmt: QFormat = QFormat(16, 8)
    out_fmt: QFormat = QFormat(16, 8)

    def __post_init__(self) -> None:
        for name in ("d_in", "d_h", "n_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EattFormats {name} must be an integer >= 1, not {value!r}")
        if isinstance(self.weight_width, bool) or not isinstance(self.weight_width, int) \
                or not 2 <= self.weight_width <= 32:
            raise ValueError(f"EattFormats weight_width must be an integer in [2, 32], not {self.weight_width!r}")
        if not self.token_fmt.signed:
            raise ValueError("EattFormats token_fmt must be signed")

    def weight_fmt(self, frac: int = 0) -> QFormat:
        return QFormat(self.weight_width, frac)

    @property
    def acc_width(self) -> int:
        """Selection-sum accumulator (Q and K entries): d_in weights plus the bias."""
        return selection_acc_fmt(self.weight_fmt(), self.d_in).width

    @property
    def l1_width(self) -> int:
        return (self.d_h * ((1 << self.acc_width) - 1)).bit_length()

    @property
    def score_width(self) -> int:
        return self.l1_width + 1

    @property
    def backend(self) -> SoftmaxPVFormats:
        return SoftmaxPVFormats(self.n_max, v_fmt=self.v_fmt, out_fmt=self.out_fmt, score_width=self.score_width,
                                softmax=True)

    def formats(self) -> dict[str, QFormat]:
        out = {"token": self.token_fmt, "weight": self.weight_fmt(), "qk_acc": QFormat(self.acc_width, 0),
               "score": QFormat(self.score_width, 0)}
        out.update(self.backend.formats())
        return out


def eatt_score_scale(weight_frac: int, d_h: int) -> float:
    """Real value of one unit of ``-L1_raw`` after the 1/√d_h scaling."""
    return 2.0 ** -weight_frac / math.sqrt(d_h)


@dataclass
class EattFixedOut:
    align: EattAlignment
    back: SoftmaxPVOut

    @property
    def out(self) -> np.ndarray:
        return self.back.out


def eatt_fixed_raw(
    x_q_raw: np.ndarray, x_kv_raw: np.ndarray, wq_raw: np.ndarray, wk_raw: np.ndarray,
    bq_raw: np.ndarray | None, bk_raw: np.ndarray | None, tau_raw: int, v_raw: np.ndarray,
    scale_mant: int, scale_shift: int, fmts: EattFormats,
) -> EattFixedOut:
    """Bit-exact model of the ``eatt`` block for one head (raw integers everywhere)."""
    if np.asarray(x_kv_raw).shape[0] > fmts.n_max:
        raise ValueError(f"n={np.asarray(x_kv_raw).shape[0]} keys exceeds n_max={fmts.n_max}")
    align = eatt_alignment_fixed(x_q_raw, x_kv_raw, wq_raw, wk_raw, bq_raw, bk_raw, tau_raw,
                                 token_fmt=fmts.token_fmt, weight_fmt=fmts.weight_fmt())
    if align.q_raw.shape[1] != fmts.d_h or align.q_raw.shape[1] != np.asarray(v_raw).shape[-1]:
        raise ValueError(f"d_h mismatch: weights d_h={align.q_raw.shape[1]}, formats d_h={fmts.d_h}, "
                         f"v_raw {np.asarray(v_raw).shape}")
    back = softmax_pv_fixed(-align.l1_raw, v_raw, scale_mant, scale_shift, fmts.backend)
    return EattFixedOut(align, back)


def _weight_fmt_for(head: HeadInputs, width: int) -> QFormat:
    peak = max(float(np.max(np.abs(a))) for a in (head.wq, head.wk, head.bq, head.bk))
    return QFormat.covering(max(peak, 2.0 ** -20), width)


def eatt(
    head: HeadInputs, *, tau: float = 1.0, fixed: bool = True, weight_width: int = 12,
    token_fmt: QFormat = DEFAULT_TOKEN_FMT, **settings: Any,
) -> MethodResult:
    """E-ATT attention for one head (method interface).

    ``fixed=True`` quantizes tokens to ``token_fmt`` and W_Q, W_K, b_Q, b_K to a ``weight_width``-bit
    format covering their range, V to Q8.8, and runs :func:`eatt_fixed_raw` (the RTL's bit-exact
    model: multiplier-free alignment, shared exp / P·V / divider back end); with ``fixed=False`` the
    same selection-sums are done on float weights and V, softmax and P·V are float64.
    """
    if settings:
        raise TypeError(f"eatt got unknown settings: {sorted(settings)}")
    tau = _check_tau(tau)
    if not isinstance(weight_width, int) or not 2 <= weight_width <= 32:
        raise ValueError(f"weight_width must be an integer in [2, 32], not {weight_width!r}")
    d = head.d_h
    if fixed:
        wfmt = _weight_fmt_for(head, weight_width)
        tau_raw = int(token_fmt.quantize(min(tau, token_fmt.max_value)))
        align = eatt_alignment_fixed(
            token_fmt.quantize(head.x_q), token_fmt.quantize(head.x_kv),
            wfmt.quantize(head.wq), wfmt.quantize(head.wk), wfmt.quantize(head.bq), wfmt.quantize(head.bk),
            tau_raw, token_fmt=token_fmt, weight_fmt=wfmt,
        )
        bits_q, bits_kv = align.bits_q, align.bits_kv
        efmts = EattFormats(d_in=head.d_in, d_h=d, n_max=head.n, token_fmt=token_fmt, weight_width=weight_width)
        mant, shift = encode_scale(eatt_score_scale(wfmt.frac, d), efmts.backend)
        v_raw = efmts.v_fmt.quantize(head.x_kv @ head.wv + head.bv)
        back = softmax_pv_fixed(-align.l1_raw, v_raw, mant, shift, efmts.backend)
        out = efmts.out_fmt.to_float(back.out)
    else:
        bits_q = binarize(head.x_q, tau)
        bits_kv = binarize(head.x_kv, tau)
        q = bits_q.astype(np.float64) @ head.wq + head.bq
        k = bits_kv.astype(np.float64) @ head.wk + head.bk
        scores = -l1_distance(q, k) / math.sqrt(d)
        out = softmax(scores) @ (head.x_kv @ head.wv + head.bv)
    m, n, d_in, d_v = head.m, head.n, head.d_in, head.wv.shape[1]
    removed = (m + n) * d_in * d + m * n * d
    remaining = n * d_in * d_v + m * n * d_v
    work = {
        "alignment_muls_exact": removed,
        "alignment_muls_removed": removed,
        "alignment_muls": 0,
        "attention_muls": remaining,
        "attention_muls_exact": removed + remaining,
        "mul_fraction_removed": removed / (removed + remaining),
        "selection_adds": int(bits_q.sum() + bits_kv.sum()) * d,
        "l1_adds": 2 * m * n * d,
        "selected_fraction": float((bits_q.sum() + bits_kv.sum()) / ((m + n) * d_in)),
    }
    if fixed:
        work.update({"weight_fmt": str(wfmt), "scale_mant": mant, "scale_shift": shift,
                     "output_saturations": int(back.overflow.sum())})
    return MethodResult(out, work)
