"""Exp and reciprocal units: LUT contents and bit-exact models (DESIGN §2, §3 step 7).

These two specs are the single source of truth for every exponent and division in the project:
the CTA PPE output normalisation, the PAG ADD_EXP units, CAVG (reciprocal of a count) and the
LATTE softmax. ``hdl.arith`` builds its ROMs from :func:`exp_lut` / :func:`recip_lut` and the
tests compare the RTL with :meth:`ExpSpec.__call__` / :meth:`RecipSpec.scale` using ``==``.

Exp (A³ style): ``exp(x) = 2**(x*log2(e))``. ``y = x * LOG2E`` (constant with ``log2e_frac``
fractional bits); ``I = floor(y)``; the top ``lut_bits`` fraction bits ``F`` (truncated) index a
table of ``2**(F/2**lut_bits)`` with ``lut_frac`` fractional bits; the entry is shifted by ``I``
(round half up on the way right) and saturated to the unsigned output format.

Reciprocal (normalise + LUT): for a positive denominator ``x`` (raw, ``den_fmt``), ``p`` is the
position of its leading one and ``m`` the ``lut_bits`` bits below it (truncated). The table holds
``round_half_up(2**(mant_bits+lut_bits) / (2**lut_bits + m))``, so ``1/x ≈ r * 2**-(mant_bits+p)``
(times ``2**den_fmt.frac``). ``scale(v, x)`` returns ``v / x`` in the output format: one multiply
``v*r`` then one rounding shift, then saturation. Denominators whose bits below the leading one
fit in ``lut_bits`` (e.g. counts < 2**(lut_bits+1)) are exact to ``mant_bits`` bits.
A zero denominator saturates the result (sign of v) and sets the ``div_by_zero`` mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixed import QFormat, Rounding, shift_round

__all__ = ["exp_lut", "recip_lut", "ExpSpec", "RecipSpec", "LOG2E"]

LOG2E = 1.0 / math.log(2.0)


def _exact_scale(value: np.ndarray, recip: np.ndarray, shift: np.ndarray, rounding: Rounding,
                 out_fmt: QFormat) -> np.ndarray:
    """``shift_round(value * recip, shift)`` in exact integers, clamped to one step beyond
    ``out_fmt`` (so the caller's saturation still flags it) and returned as int64."""
    value, recip = np.broadcast_arrays(value, recip)
    shift = np.broadcast_to(shift, value.shape)
    out = np.empty(value.shape, dtype=np.int64)
    for i, (v, r, s) in enumerate(zip(value.ravel().tolist(), recip.ravel().tolist(), shift.ravel().tolist(),
                                      strict=True)):
        x = v * r
        if s > 0:
            x = (x + (1 << (s - 1)) if rounding is Rounding.HALF_UP else x) >> s
        else:
            x <<= -s
        out.flat[i] = min(max(x, out_fmt.min_int - 1), out_fmt.max_int + 1)
    return out


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def exp_lut(lut_bits: int, lut_frac: int) -> np.ndarray:
    """``2**(F / 2**lut_bits)`` for F in [0, 2**lut_bits), raw with ``lut_frac`` fraction bits."""
    return np.array(
        [_round_half_up(2.0 ** (f / (1 << lut_bits)) * (1 << lut_frac)) for f in range(1 << lut_bits)],
        dtype=np.int64,
    )


def recip_lut(lut_bits: int, mant_bits: int) -> np.ndarray:
    """``2**(mant_bits+lut_bits) / (2**lut_bits + m)`` rounded half up, for m in [0, 2**lut_bits)."""
    # Exact integer division: floor((2*N + D) / (2*D)) == round_half_up(N / D).
    num = 1 << (mant_bits + lut_bits)
    return np.array(
        [(2 * num + ((1 << lut_bits) + m)) // (2 * ((1 << lut_bits) + m)) for m in range(1 << lut_bits)],
        dtype=np.int64,
    )


@dataclass(frozen=True)
class ExpSpec:
    """exp() of a signed fixed-point input into an unsigned saturating output format."""

    in_fmt: QFormat
    out_fmt: QFormat
    lut_bits: int = 8
    lut_frac: int = 16
    log2e_frac: int = 15

    def __post_init__(self) -> None:
        if not self.in_fmt.signed:
            raise ValueError("ExpSpec in_fmt must be signed")
        if self.out_fmt.signed:
            raise ValueError("ExpSpec out_fmt must be unsigned (exp is positive)")
        if not 1 <= self.lut_bits <= 12:
            raise ValueError(f"ExpSpec lut_bits must be in [1, 12], not {self.lut_bits}")
        if self.lut_frac < self.out_fmt.frac:
            raise ValueError("ExpSpec lut_frac must be >= out_fmt.frac")
        if self.in_fmt.frac + self.log2e_frac < self.lut_bits:
            raise ValueError("ExpSpec: in_fmt.frac + log2e_frac must be >= lut_bits")

    @property
    def log2e_raw(self) -> int:
        return _round_half_up(LOG2E * (1 << self.log2e_frac))

    @property
    def product_frac(self) -> int:
        return self.in_fmt.frac + self.log2e_frac

    @property
    def shift_min(self) -> int:
        """Right-shift amounts are clamped to [shift_min, shift_max]; the clamp never changes a
        result (below shift_min the output saturates anyway, above shift_max it is 0)."""
        return -self.out_fmt.width

    @property
    def shift_max(self) -> int:
        return self.lut_frac + 2

    def lut(self) -> np.ndarray:
        return exp_lut(self.lut_bits, self.lut_frac)

    def split(self, x_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(integer part I, LUT index F) of x*log2(e)."""
        y = np.asarray(x_raw, dtype=np.int64) * self.log2e_raw
        integer = np.right_shift(y, self.product_frac)
        index = np.bitwise_and(np.right_shift(y, self.product_frac - self.lut_bits), (1 << self.lut_bits) - 1)
        return integer, index

    def __call__(self, x_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw exp outputs and the saturation (overflow) mask."""
        integer, index = self.split(x_raw)
        entry = self.lut()[index]
        shift = np.clip(self.lut_frac - self.out_fmt.frac - integer, self.shift_min, self.shift_max)
        return self.out_fmt.fit(shift_round(entry, shift, self.out_fmt.rounding))

    def as_dict(self) -> dict:
        return {
            "in": self.in_fmt.as_dict(),
            "out": self.out_fmt.as_dict(),
            "lut_bits": self.lut_bits,
            "lut_frac": self.lut_frac,
            "log2e_frac": self.log2e_frac,
        }


@dataclass(frozen=True)
class RecipSpec:
    """Division of a signed value by a positive denominator via a normalised reciprocal LUT."""

    den_fmt: QFormat
    lut_bits: int = 10
    mant_bits: int = 16

    def __post_init__(self) -> None:
        if self.den_fmt.signed:
            raise ValueError("RecipSpec den_fmt must be unsigned (denominators are positive)")
        if not 1 <= self.lut_bits <= 12:
            raise ValueError(f"RecipSpec lut_bits must be in [1, 12], not {self.lut_bits}")
        if not 2 <= self.mant_bits <= 24:
            raise ValueError(f"RecipSpec mant_bits must be in [2, 24], not {self.mant_bits}")

    def lut(self) -> np.ndarray:
        return recip_lut(self.lut_bits, self.mant_bits)

    def normalise(self, den_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(leading-one position p, LUT index m) of each denominator (p = 0, m = 0 for x = 0)."""
        x = np.asarray(den_raw, dtype=np.int64)
        if np.any(x < 0):
            raise ValueError("denominators must be >= 0")
        pos = np.zeros_like(x)
        for bit in range(self.den_fmt.width):
            pos = np.where(np.right_shift(x, bit) > 0, bit, pos)
        below = x - np.left_shift(np.int64(1), pos) * (x > 0)
        idx = np.where(
            pos >= self.lut_bits,
            np.right_shift(below, np.maximum(pos - self.lut_bits, 0)),
            np.left_shift(below, np.maximum(self.lut_bits - pos, 0)),
        )
        return pos, idx

    def scale(
        self, value_raw: np.ndarray, value_frac: int, den_raw: np.ndarray, out_fmt: QFormat,
        rounding: Rounding | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``value / den`` in ``out_fmt``: (raw result, overflow mask, div_by_zero mask)."""
        value = np.asarray(value_raw, dtype=np.int64)
        den = np.asarray(den_raw, dtype=np.int64)
        pos, idx = self.normalise(den)
        recip = self.lut()[idx]
        shift = self.mant_bits + pos - self.den_fmt.frac + value_frac - out_fmt.frac
        rounding = Rounding(rounding or out_fmt.rounding)
        if int(np.abs(value).max(initial=0)) < 1 << (62 - self.mant_bits - 1):
            res = shift_round(value * recip, shift, rounding)
        else:   # a wide numerator (MCA: 48 bits): the product would wrap in int64, so Python ints
            res = _exact_scale(value, recip, shift, rounding, out_fmt)
        res, over = out_fmt.fit(res)
        zero = den == 0
        res = np.where(zero, np.where(value < 0, out_fmt.min_int, out_fmt.max_int), res)
        return res, over | zero, zero

    def shift_amount(self, pos: np.ndarray, value_frac: int, out_fmt: QFormat) -> np.ndarray:
        return self.mant_bits + np.asarray(pos) - self.den_fmt.frac + value_frac - out_fmt.frac

    def as_dict(self) -> dict:
        return {"den": self.den_fmt.as_dict(), "lut_bits": self.lut_bits, "mant_bits": self.mant_bits}
