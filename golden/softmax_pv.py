"""Bit-exact model of the shared attention back end ``hdl.softmax_pv.SoftmaxPV`` (E-ATT, MCA).

One row of weights over ``n`` keys is turned into one output row ``Σ_j p_j · V[j] / den``:

* **softmax mode** (E-ATT): the row's scores ``S_j`` (signed integers, larger = closer) become
  ``x_j = sat(shift_round_half_up((S_j − max_j S_j) · scale_mant, scale_shift))`` in
  ``exp_in_fmt`` (Q5.11, 16 bit), ``p_j = ExpSpec(x_j)`` in ``p_fmt`` (UQ1.15), ``den = Σ p_j``
  (``den_fmt``, exact), ``acc = Σ p_j · V_raw[j]`` (``acc_fmt``, exact) and
  ``out = RecipSpec.scale(acc, p_frac + v_frac, den, out_fmt)`` (the project's one division).
  ``scale_mant · 2^-scale_shift ≈ (real value of one score unit) · 2^exp_in_frac`` is the head's
  scale register pair (:func:`encode_scale`).
* **probability mode** (MCA): the row's weights are probabilities already (raw ``p_fmt``);
  ``out = requantize(Σ p_j · V_raw[j], p_frac + v_frac, out_fmt)`` (no exp, no division).

Output saturation is reported (``overflow``). Every intermediate is sized so it cannot overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixed import QFormat, Rounding, check_in_range, requantize, shift_round, signed_width
from .lut import ExpSpec, RecipSpec

__all__ = ["SoftmaxPVFormats", "SoftmaxPVOut", "encode_scale", "softmax_pv_fixed", "weighted_sum_fixed"]


@dataclass(frozen=True, kw_only=True)
class BackEndSpecs:
    """The exp / reciprocal LUT and score-scale register fields (keyword-only, after the record's
    own fields) and their specs, shared by :class:`SoftmaxPVFormats` and
    :class:`golden.latte.LatteFormats`; the record provides ``den_fmt``."""

    exp_in_fmt: QFormat = QFormat(16, 11)
    exp_lut_bits: int = 8
    exp_lut_frac: int = 16
    recip_lut_bits: int = 10
    recip_mant_bits: int = 16
    scale_mant_bits: int = 16
    scale_shift_bits: int = 6

    def exp_spec_to(self, out_fmt: QFormat) -> ExpSpec:
        return ExpSpec(self.exp_in_fmt, out_fmt, lut_bits=self.exp_lut_bits, lut_frac=self.exp_lut_frac)

    @property
    def recip_spec(self) -> RecipSpec:
        return RecipSpec(self.den_fmt, lut_bits=self.recip_lut_bits, mant_bits=self.recip_mant_bits)


@dataclass(frozen=True)
class SoftmaxPVFormats(BackEndSpecs):
    """Every width of the back end; shared by the golden model and ``hdl.softmax_pv``."""

    n_max: int
    v_fmt: QFormat = QFormat(16, 8)
    out_fmt: QFormat = QFormat(16, 8)
    score_width: int = 24
    softmax: bool = True
    p_fmt: QFormat = QFormat(16, 15, signed=False)

    def __post_init__(self) -> None:
        if isinstance(self.n_max, bool) or not isinstance(self.n_max, int) or self.n_max < 1:
            raise ValueError(f"n_max must be an integer >= 1, not {self.n_max!r}")
        for name in ("v_fmt", "out_fmt", "p_fmt", "exp_in_fmt"):
            if not isinstance(getattr(self, name), QFormat):
                raise TypeError(f"{name} must be a QFormat, not {getattr(self, name)!r}")
        if not self.v_fmt.signed or not self.out_fmt.signed:
            raise ValueError("v_fmt and out_fmt must be signed")
        if self.p_fmt.signed:
            raise ValueError("p_fmt must be unsigned (probabilities / exp values)")
        sw = self.score_width
        if isinstance(sw, bool) or not isinstance(sw, int) or not 2 <= sw <= 48:
            raise ValueError(f"score_width must be an integer in [2, 48], not {self.score_width!r}")
        if not isinstance(self.softmax, bool):
            raise TypeError(f"softmax must be a bool, not {self.softmax!r}")

    @property
    def diff_width(self) -> int:
        return self.score_width + 1

    @property
    def count_width(self) -> int:
        return self.n_max.bit_length()

    @property
    def den_fmt(self) -> QFormat:
        return QFormat(max(1, (self.n_max * self.p_fmt.max_int).bit_length()), self.p_fmt.frac, signed=False)

    @property
    def acc_fmt(self) -> QFormat:
        big = self.n_max * self.p_fmt.max_int
        return QFormat(signed_width(big * self.v_fmt.min_int, big * self.v_fmt.max_int),
                       self.p_fmt.frac + self.v_fmt.frac)

    @property
    def exp_spec(self) -> ExpSpec:
        return self.exp_spec_to(self.p_fmt)

    def formats(self) -> dict[str, QFormat]:
        out = {"v": self.v_fmt, "p": self.p_fmt, "acc": self.acc_fmt, "out": self.out_fmt}
        if self.softmax:
            out.update({"exp_in": self.exp_in_fmt, "den": self.den_fmt})
        return out


def encode_scale(score_scale: float, fmts: SoftmaxPVFormats) -> tuple[int, int]:
    """Register pair (scale_mant, scale_shift), ``mant·2^-shift ≈ score_scale·2^exp_in_frac``, with
    the largest shift that keeps ``mant`` in ``scale_mant_bits`` bits."""
    if not (isinstance(score_scale, int | float) and math.isfinite(score_scale) and score_scale > 0):
        raise ValueError(f"score_scale must be a finite number > 0, not {score_scale!r}")
    target = score_scale * (1 << fmts.exp_in_fmt.frac)
    mant_max = (1 << fmts.scale_mant_bits) - 1
    shift_max = (1 << fmts.scale_shift_bits) - 1
    shift = min(shift_max, math.floor(math.log2(mant_max / target)))
    mant = 0
    while shift >= 0:
        mant = math.floor(target * 2.0**shift + 0.5)
        if mant <= mant_max:
            break
        shift -= 1
    if shift < 0:
        raise ValueError(f"score_scale={score_scale} too large for a {fmts.scale_mant_bits}-bit mantissa")
    if mant < 1:
        raise ValueError(f"score_scale={score_scale} too small for scale_shift <= {shift_max}")
    return int(mant), int(shift)


@dataclass
class SoftmaxPVOut:
    out: np.ndarray        # m × d, out_fmt raw
    p: np.ndarray          # m × n, p_fmt raw (exp values, or the given probabilities)
    den: np.ndarray        # m, den_fmt raw (softmax mode) or zeros
    acc: np.ndarray        # m × d, acc_fmt raw
    overflow: np.ndarray   # m × d bool (output saturation)


def _check(v_raw: np.ndarray, rows: np.ndarray, fmts: SoftmaxPVFormats, name: str) -> np.ndarray:
    v = check_in_range(v_raw, fmts.v_fmt, "v_raw")
    if v.ndim != 2 or rows.ndim != 2 or rows.shape[1] != v.shape[0]:
        raise ValueError(f"need {name} (m × n) and v_raw (n × d), got {rows.shape} and {v.shape}")
    if not 1 <= v.shape[0] <= fmts.n_max:
        raise ValueError(f"n={v.shape[0]} keys outside [1, n_max={fmts.n_max}]")
    return v


def softmax_pv_fixed(scores: np.ndarray, v_raw: np.ndarray, scale_mant: int, scale_shift: int,
                     fmts: SoftmaxPVFormats) -> SoftmaxPVOut:
    """Softmax mode: integer scores (m × n, ``score_width`` bits) and V raw (n × d)."""
    if not fmts.softmax:
        raise ValueError("softmax_pv_fixed needs fmts.softmax = True")
    s = check_in_range(scores, QFormat(fmts.score_width, 0), "scores")
    v = _check(v_raw, s, fmts, "scores")
    if not 0 <= scale_mant < (1 << fmts.scale_mant_bits):
        raise ValueError(f"scale_mant must be in [0, {(1 << fmts.scale_mant_bits) - 1}], not {scale_mant}")
    if not 0 <= scale_shift < (1 << fmts.scale_shift_bits):
        raise ValueError(f"scale_shift must be in [0, {(1 << fmts.scale_shift_bits) - 1}], not {scale_shift}")
    diff = s - s.max(axis=1, keepdims=True)
    x, _ = fmts.exp_in_fmt.fit(shift_round(diff * int(scale_mant), int(scale_shift), Rounding.HALF_UP))
    p, _ = fmts.exp_spec(x)
    den = p.sum(axis=1)
    acc = p @ v
    out, over, _ = fmts.recip_spec.scale(acc, fmts.acc_fmt.frac, den[:, None], fmts.out_fmt)
    return SoftmaxPVOut(out, p, den, acc, over)


def weighted_sum_fixed(p_raw: np.ndarray, v_raw: np.ndarray, fmts: SoftmaxPVFormats) -> SoftmaxPVOut:
    """Probability mode: ``requantize(P_raw · V_raw, p_frac + v_frac, out_fmt)``."""
    p = check_in_range(p_raw, fmts.p_fmt, "p_raw")
    v = _check(v_raw, p, fmts, "p_raw")
    acc = p @ v
    out, over = requantize(acc, fmts.acc_fmt.frac, fmts.out_fmt)
    return SoftmaxPVOut(out, p, np.zeros(p.shape[0], dtype=np.int64), acc, over)
