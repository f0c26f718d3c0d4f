"""LATTE: low-precision approximate attention with a per-head threshold (DESIGN §5, seed 003).

Two models of one head, both starting from the 8-bit quantized Q, K, V:

* :func:`latte_float` - the algorithm (Algorithm 1): integer estimate and compensated scores,
  softmax and P·V in float64.
* :func:`latte_fixed` / :func:`latte_fixed_raw` - bit-exact model of the ``latte`` RTL block
  (``hdl/latte.py``): every step integer, the exp and the division through the shared
  :class:`golden.lut.ExpSpec` / :class:`golden.lut.RecipSpec`.

Choices where the paper is silent or ambiguous (documented once, here):

* **Quantization**: symmetric per-tensor 8-bit, ``scale = max|x| / 127``,
  ``x_raw = clip(floor(x/scale + 1/2), -128, 127)`` (:func:`quantize_tensor`), recomputed for Q,
  K and V of every head (dynamic quantization).
* **MS4B split**: ``x = 16·x_M + x_L`` with ``x_M = x >> 4`` (arithmetic shift, *signed* 4-bit,
  [-8, 7]) and ``x_L = x & 15`` (*unsigned* 4-bit, [0, 15]). The paper's "both in [-8, 7]" cannot
  hold for a two's-complement split; with this choice eq. (9) is an exact identity, so the
  estimate ``A_est = Q_M·K_Mᵀ`` needs signed 4×4 multipliers and the compensation terms
  ``Q_M·K_Lᵀ + Q_L·K_Mᵀ`` signed×unsigned 4×4 multipliers.
* **Threshold**: τ is in units of ``A_est`` (raw products of the 4-bit parts). With integer
  scores the paper's strict test ``A_est > max - τ'`` is written ``max - A_est <= τ`` (the same
  mask as the paper's rule for any τ' in (τ, τ+1]); so the row maximum is always kept, τ = 0
  keeps exactly the maxima (ties included) and a real τ behaves like ``floor(τ)``.
* **Compensated score** (eq. 9): ``256·A_est + 16·(Q_M·K_Lᵀ + Q_L·K_Mᵀ)``, optionally
  ``+ Q_L·K_Lᵀ`` (``include_ll``: then the score is exactly the 8-bit product ``Q·Kᵀ``).
* **Bit operations** (the paper's Fig. 4 metric): MACs of Q·Kᵀ and P·V times the product of
  the operand widths. Full 8-bit attention: ``m·n·d·(8·8) + m·n·d·(8·8)``. LATTE:
  ``m·n·d·(4·4)`` (estimate) ``+ kept·d·(2·4·4 [+ 4·4 with L·L])`` (compensation)
  ``+ kept·d·(8·8)`` (P·V over kept keys, P counted as 8-bit as in the paper). With 85.16 %
  keys pruned this gives 76.4 % fewer bit operations, the paper's CV figure.

Fixed-point datapath of the RTL (all formats in :class:`LatteFormats`):

1. ``A_est`` (exact integers), per-row maximum, kept mask ``max - A_est <= τ``.
2. Kept scores ``S`` (exact integers), per-row maximum ``S_max`` over the kept keys.
3. Exp input ``x = sat(shift_round_half_up((S - S_max)·scale_mant, scale_shift))`` in
   ``exp_in_fmt``, where ``scale_mant·2^-scale_shift ≈ s_q·s_k/√d_h · 2^exp_in_fmt.frac`` is the
   head's scale register pair (:func:`encode_score_scale`). ``S - S_max <= 0`` so exp <= 1.
4. ``e = ExpSpec(x)`` (UQ1.15), 0 for pruned keys; ``den = Σ e`` and ``acc = Σ e·V`` exact
   (their widths are sized so they cannot overflow).
5. ``out = RecipSpec.scale(acc, 15, den, out_fmt)`` in units of V's raw values; the float output
   is ``out·2^-out_frac·s_v``. Output saturation is reported (``overflow``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fixed import QFormat, Rounding, shift_round, signed_width
from .lut import ExpSpec
from .reference import HeadInputs, MethodResult, softmax
from .softmax_pv import BackEndSpecs, encode_scale

__all__ = [
    "INT8",
    "quantize_tensor",
    "split_ms4b",
    "estimate_scores",
    "kept_mask",
    "compensated_scores",
    "LatteFormats",
    "encode_score_scale",
    "LatteFixedOut",
    "latte_fixed_raw",
    "bit_operations",
    "row_gaps",
    "tau_for_prune_ratio",
    "calibrate_tau",
    "QuantizedHead",
    "quantize_head",
    "latte_float",
    "latte_fixed",
]

INT8 = QFormat(8, 0)


# ---- quantization and the MS4B split -------------------------------------------------------------

def quantize_tensor(x: np.ndarray, fmt: QFormat = INT8) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor quantization: (raw integers, scale) with ``x ≈ raw·scale``."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("quantize_tensor: input has non-finite values")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = peak / fmt.max_int if peak > 0 else 1.0
    return fmt.with_(frac=0).quantize(x / scale), scale


def split_ms4b(x_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-bit raw values -> (x_M signed [-8, 7], x_L unsigned [0, 15]) with x = 16·x_M + x_L."""
    x = _check_int8(x_raw, "x_raw")
    return np.right_shift(x, 4), np.bitwise_and(x, 15)


def _check_int8(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of raw 8-bit values, not dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < -128 or arr.max() > 127):
        raise ValueError(f"{name} has values outside the 8-bit range [-128, 127]")
    return arr


def _check_qk(q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, k = _check_int8(q, "q"), _check_int8(k, "k")
    if q.ndim != 2 or k.ndim != 2:
        raise ValueError(f"q and k must be 2-D, got shapes {q.shape} and {k.shape}")
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"d mismatch: q has d_h={q.shape[1]}, k has d_h={k.shape[1]}")
    if k.shape[0] < 1:
        raise ValueError("k must have at least one row (n >= 1)")
    return q, k


def estimate_scores(q_raw: np.ndarray, k_raw: np.ndarray) -> np.ndarray:
    """``A_est = Q_M·K_Mᵀ`` (m×n, exact integers)."""
    q, k = _check_qk(q_raw, k_raw)
    return split_ms4b(q)[0] @ split_ms4b(k)[0].T


def _check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.integer, np.floating)):
        raise TypeError(f"tau must be a number, not {tau!r}")
    if math.isnan(tau) or tau < 0:
        raise ValueError(f"tau must be >= 0 (the threshold is max - tau), not {tau}")
    return float(tau)


def kept_mask(a_est: np.ndarray, tau: float) -> np.ndarray:
    """Keys kept per row: ``max(A_est[i]) - A_est[i][j] <= tau``."""
    tau = _check_tau(tau)
    return (np.max(a_est, axis=1, keepdims=True) - a_est) <= tau


def compensated_scores(q_raw: np.ndarray, k_raw: np.ndarray, include_ll: bool = False) -> np.ndarray:
    """Approximate 8-bit scores ``256·A_est + 16·(Q_M·K_Lᵀ + Q_L·K_Mᵀ) [+ Q_L·K_Lᵀ]`` for all pairs."""
    q, k = _check_qk(q_raw, k_raw)
    qm, ql = split_ms4b(q)
    km, kl = split_ms4b(k)
    score = 256 * (qm @ km.T) + 16 * (qm @ kl.T + ql @ km.T)
    if include_ll:
        score = score + ql @ kl.T
    return score


def bit_operations(m: int, n: int, d_h: int, kept_total: int, include_ll: bool = False) -> dict[str, float]:
    """Fig. 4 metric: bit-width × MACs of Q·Kᵀ and P·V for LATTE and for full 8-bit attention."""
    full = m * n * d_h * 64 * 2
    comp_bits = 16 * (3 if include_ll else 2)
    latte = m * n * d_h * 16 + kept_total * d_h * comp_bits + kept_total * d_h * 64
    return {"bit_ops": latte, "bit_ops_full": full, "bit_op_reduction": 1.0 - latte / full}


# ---- threshold calibration -----------------------------------------------------------------------

def row_gaps(q_raw: np.ndarray, k_raw: np.ndarray) -> np.ndarray:
    """``max(A_est[i]) - A_est[i][j]`` for all pairs: key j is kept iff its gap <= τ."""
    a = estimate_scores(q_raw, k_raw)
    return np.max(a, axis=1, keepdims=True) - a


def tau_for_prune_ratio(gaps: np.ndarray | Sequence[np.ndarray], prune_ratio: float) -> int:
    """The integer τ whose pruning ratio (fraction of gaps > τ) on ``gaps`` is closest to
    ``prune_ratio`` (ties: the larger τ, i.e. keep more)."""
    if not isinstance(prune_ratio, (int, float, np.floating)) or not 0.0 <= prune_ratio <= 1.0:
        raise ValueError(f"prune_ratio must be in [0, 1], not {prune_ratio!r}")
    if isinstance(gaps, np.ndarray):
        flat = gaps.ravel()
    else:
        flat = np.concatenate([np.asarray(g).ravel() for g in gaps]) if len(gaps) else np.zeros(0)
    if flat.size == 0:
        raise ValueError("tau_for_prune_ratio needs at least one score")
    flat = np.sort(flat.astype(np.int64))
    candidates = np.unique(flat)  # the pruning ratio only changes at these τ values
    pruned = 1.0 - np.searchsorted(flat, candidates, side="right") / flat.size
    err = np.abs(pruned - prune_ratio)
    best = np.flatnonzero(err <= err.min() + 1e-12)[-1]
    return int(candidates[best])


@dataclass(frozen=True)
class QuantizedHead:
    """8-bit Q, K, V of one head (raw) and their per-tensor scales."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    s_q: float
    s_k: float
    s_v: float

    @property
    def d_h(self) -> int:
        return self.q.shape[1]

    @property
    def score_scale(self) -> float:
        """Real value of one raw score unit after the 1/√d_h softmax scaling."""
        return self.s_q * self.s_k / math.sqrt(self.d_h)


def quantize_head(head: HeadInputs) -> QuantizedHead:
    """Project the head and quantize Q, K, V to 8 bits (per-tensor symmetric scales)."""
    if not isinstance(head, HeadInputs):
        raise TypeError(f"head must be a HeadInputs, not {type(head).__name__}")
    q, k, v = head.qkv()
    if v.shape[1] != q.shape[1]:
        raise ValueError(f"d mismatch: LATTE needs d_v == d_h, got {v.shape[1]} vs {q.shape[1]}")
    (qr, sq), (kr, sk), (vr, sv) = (quantize_tensor(a) for a in (q, k, v))
    return QuantizedHead(qr, kr, vr, sq, sk, sv)


def calibrate_tau(calibration: HeadInputs | QuantizedHead | Sequence[HeadInputs | QuantizedHead],
                  prune_ratio: float) -> int:
    """Per-head threshold: the τ reaching ``prune_ratio`` on the calibration inputs of one head
    (e.g. the same layer/head over several sentences). Offline, golden side."""
    items = [calibration] if isinstance(calibration, (HeadInputs, QuantizedHead)) else list(calibration)
    if not items:
        raise ValueError("calibrate_tau needs at least one calibration head")
    gaps = []
    for item in items:
        qh = item if isinstance(item, QuantizedHead) else quantize_head(item)
        gaps.append(row_gaps(qh.q, qh.k))
    return tau_for_prune_ratio(gaps, prune_ratio)


def _resolve_tau(qh: QuantizedHead, tau: float | None, prune_ratio: float | None) -> float:
    if tau is not None and prune_ratio is not None:
        raise ValueError("give either tau or prune_ratio, not both")
    if prune_ratio is not None:
        return float(calibrate_tau(qh, prune_ratio))
    if tau is None:
        return math.inf
    return _check_tau(tau)


# ---- float model ---------------------------------------------------------------------------------

def latte_float(head: HeadInputs, *, tau: float | None = None, prune_ratio: float | None = None,
                include_ll: bool = False, **_: Any) -> MethodResult:
    """LATTE in float64 after 8-bit quantization (tau=None and prune_ratio=None: keep all keys;
    prune_ratio: calibrate τ on this head itself)."""
    qh = quantize_head(head)
    tau_v = _resolve_tau(qh, tau, prune_ratio)
    mask = kept_mask(estimate_scores(qh.q, qh.k), tau_v)
    score = compensated_scores(qh.q, qh.k, include_ll)
    p = softmax(score * qh.score_scale, mask=mask)
    out = p @ (qh.v * qh.s_v)
    return MethodResult(out, _work(qh, mask, tau_v, include_ll))


def _work(qh: QuantizedHead, mask: np.ndarray, tau: float, include_ll: bool) -> dict[str, Any]:
    m, n = mask.shape
    kept = int(mask.sum())
    work: dict[str, Any] = {"tau": tau, "kept_ratio": kept / mask.size, "prune_ratio": 1 - kept / mask.size,
                            "kept_per_row": mask.sum(axis=1)}
    work.update(bit_operations(m, n, qh.d_h, kept, include_ll))
    return work


# ---- fixed-point model of the RTL ----------------------------------------------------------------

@dataclass(frozen=True)
class LatteFormats(BackEndSpecs):
    """Every width and format of the ``latte`` block; shared by the golden model and ``hdl.latte``."""

    d_h: int
    n_max: int
    out_fmt: QFormat = QFormat(16, 8)
    include_ll: bool = False
    exp_out_fmt: QFormat = QFormat(16, 15, signed=False)

    def __post_init__(self) -> None:
        for name in ("d_h", "n_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LatteFormats {name} must be an integer >= 1, not {value!r}")
        if not isinstance(self.out_fmt, QFormat) or not self.out_fmt.signed:
            raise ValueError("LatteFormats out_fmt must be a signed QFormat")
        if self.exp_out_fmt.frac != 15 or self.exp_out_fmt.width < 16:
            raise ValueError("LatteFormats exp_out_fmt must have 15 fractional bits and width >= 16 (exp <= 1)")

    # integer ranges of the datapath (all exact, no overflow possible)
    @property
    def est_bounds(self) -> tuple[int, int]:
        return -56 * self.d_h, 64 * self.d_h

    @property
    def est_width(self) -> int:
        return signed_width(*self.est_bounds)

    @property
    def cross_bounds(self) -> tuple[int, int]:
        """Per-key sum of 16·(Q_M·K_L + Q_L·K_M) [+ Q_L·K_L]."""
        ll = 225 if self.include_ll else 0
        return -16 * 240 * self.d_h, (16 * 210 + ll) * self.d_h

    @property
    def cross_width(self) -> int:
        return signed_width(*self.cross_bounds)

    @property
    def score_bounds(self) -> tuple[int, int]:
        lo, hi = self.est_bounds
        clo, chi = self.cross_bounds
        return 256 * lo + clo, 256 * hi + chi

    @property
    def score_width(self) -> int:
        return signed_width(*self.score_bounds)

    @property
    def diff_width(self) -> int:
        lo, hi = self.score_bounds
        return signed_width(lo - hi, 0)

    @property
    def tau_width(self) -> int:
        """Register width: all-ones exceeds every possible gap (keeps all keys)."""
        lo, hi = self.est_bounds
        return max(hi - lo + 1, 1).bit_length()

    @property
    def tau_max(self) -> int:
        return (1 << self.tau_width) - 1

    @property
    def count_width(self) -> int:
        return self.n_max.bit_length()

    @property
    def den_fmt(self) -> QFormat:
        return QFormat((self.n_max << 15).bit_length(), 15, signed=False)

    @property
    def acc_fmt(self) -> QFormat:
        return QFormat(signed_width(-128 * (self.n_max << 15), 127 * (self.n_max << 15)), 15)

    @property
    def exp_spec(self) -> ExpSpec:
        return self.exp_spec_to(self.exp_out_fmt)

    def formats(self) -> dict[str, QFormat]:
        return {"qkv": INT8, "exp_in": self.exp_in_fmt, "exp_out": self.exp_out_fmt, "den": self.den_fmt,
                "acc": self.acc_fmt, "out": self.out_fmt}


def encode_score_scale(score_scale: float, fmts: LatteFormats) -> tuple[int, int]:
    """Register pair (scale_mant, scale_shift) with ``mant·2^-shift ≈ score_scale·2^exp_in_frac``:
    the largest shift keeping ``mant`` in ``scale_mant_bits`` bits (the shared back end's
    :func:`golden.softmax_pv.encode_scale`; LATTE's formats carry the same three fields)."""
    return encode_scale(score_scale, fmts)


@dataclass
class LatteFixedOut:
    """Everything the RTL computes for one head (raw integers)."""

    out: np.ndarray          # m×d_h, out_fmt raw
    kept: np.ndarray         # m×n bool
    kept_count: np.ndarray   # m
    a_est: np.ndarray        # m×n
    score: np.ndarray        # m×n (compensated; meaningful where kept)
    exp: np.ndarray          # m×n, exp_out_fmt raw (0 where pruned)
    den: np.ndarray          # m, den_fmt raw
    acc: np.ndarray          # m×d_h, acc_fmt raw
    overflow: np.ndarray     # m×d_h bool (output saturation)
    extra: dict[str, Any] = field(default_factory=dict)


def latte_fixed_raw(q: np.ndarray, k: np.ndarray, v: np.ndarray, tau: int, scale_mant: int, scale_shift: int,
                    fmts: LatteFormats) -> LatteFixedOut:
    """Bit-exact model of the ``latte`` block for one head: raw 8-bit Q (m×d_h), K, V (n×d_h)."""
    q, k = _check_qk(q, k)
    v = _check_int8(v, "v")
    if q.shape[1] != fmts.d_h:
        raise ValueError(f"d mismatch: inputs have d_h={q.shape[1]}, formats expect d_h={fmts.d_h}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k {k.shape}, got {v.shape}")
    if k.shape[0] > fmts.n_max:
        raise ValueError(f"n={k.shape[0]} keys exceeds n_max={fmts.n_max}")
    if isinstance(tau, bool) or not isinstance(tau, (int, np.integer)):
        raise TypeError(f"tau must be an integer (the register value), not {tau!r}")
    if tau < 0:
        raise ValueError(f"tau must be >= 0, not {tau}")
    tau = min(int(tau), fmts.tau_max)  # the register saturates; any tau >= the gap range keeps all
    if not 0 <= scale_mant < (1 << fmts.scale_mant_bits):
        raise ValueError(f"scale_mant must be in [0, {(1 << fmts.scale_mant_bits) - 1}], not {scale_mant}")
    if not 0 <= scale_shift < (1 << fmts.scale_shift_bits):
        raise ValueError(f"scale_shift must be in [0, {(1 << fmts.scale_shift_bits) - 1}], not {scale_shift}")

    a_est = estimate_scores(q, k)
    kept = kept_mask(a_est, tau)
    score = compensated_scores(q, k, fmts.include_ll)
    smax = np.max(np.where(kept, score, np.iinfo(np.int64).min), axis=1, keepdims=True)
    diff = np.where(kept, score - smax, 0)
    x, _ = fmts.exp_in_fmt.fit(shift_round(diff * int(scale_mant), int(scale_shift), Rounding.HALF_UP))
    e, _ = fmts.exp_spec(x)
    e = np.where(kept, e, 0)
    den = e.sum(axis=1)
    acc = e @ v
    out, over, _ = fmts.recip_spec.scale(acc, 15, den[:, None], fmts.out_fmt)
    return LatteFixedOut(out, kept, kept.sum(axis=1), a_est, score, e, den, acc, over)


def latte_fixed(head: HeadInputs, *, tau: float | None = None, prune_ratio: float | None = None,
                include_ll: bool = False, out_fmt: QFormat = QFormat(16, 8), n_max: int | None = None,
                **_: Any) -> MethodResult:
    """The RTL's fixed-point LATTE on a head (bit-exact with ``hdl.latte``), output in float."""
    qh = quantize_head(head)
    tau_v = _resolve_tau(qh, tau, prune_ratio)
    fmts = LatteFormats(d_h=qh.d_h, n_max=n_max or qh.k.shape[0], out_fmt=out_fmt, include_ll=include_ll)
    tau_reg = fmts.tau_max if math.isinf(tau_v) else int(math.floor(tau_v))
    mant, shift = encode_score_scale(qh.score_scale, fmts)
    res = latte_fixed_raw(qh.q, qh.k, qh.v, tau_reg, mant, shift, fmts)
    out = fmts.out_fmt.to_float(res.out) * qh.s_v
    work = _work(qh, res.kept, tau_v, include_ll)
    work.update({"tau_register": tau_reg, "scale_mant": mant, "scale_shift": shift,
                 "output_saturations": int(res.overflow.sum())})
    return MethodResult(out, work)
