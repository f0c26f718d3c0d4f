"""Fixed-point number formats shared by the golden models and the RTL (DESIGN §2).

A :class:`QFormat` is written once and used by both sides: ``golden`` uses it for integer
arithmetic on ``np.int64`` arrays, ``hdl`` uses it to size signals and to build the same
rounding/saturation logic. Integers always hold the raw two's-complement value, i.e. the real
value is ``raw * 2**-frac``.

Rounding modes (applied when fractional bits are dropped):

* ``TRUNCATE`` - floor (drop bits; towards -inf for signed values, like an arithmetic shift).
* ``HALF_UP`` - add half an LSB, then floor (round half towards +inf). Never ``np.round``,
  which rounds half to even.

Overflow modes (applied when the result does not fit the width):

* ``SATURATE`` - clamp to the format's min/max; the helpers also return an overflow mask so
  that RTL flags can be compared.
* ``WRAP`` - keep the low ``width`` bits (two's complement).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = [
    "Rounding",
    "Overflow",
    "QFormat",
    "shift_round",
    "saturate",
    "wrap",
    "requantize",
    "mac",
    "check_in_range",
    "signed_width",
]


class Rounding(str, enum.Enum):
    TRUNCATE = "truncate"
    HALF_UP = "half_up"


class Overflow(str, enum.Enum):
    SATURATE = "saturate"
    WRAP = "wrap"


@dataclass(frozen=True)
class QFormat:
    """A fixed-point format: ``width`` bits in total, ``frac`` of them fractional."""

    width: int
    frac: int
    signed: bool = True
    rounding: Rounding = Rounding.HALF_UP
    overflow: Overflow = Overflow.SATURATE

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise ValueError(f"QFormat width must be an integer >= 1, not {self.width!r}")
        if self.width > 62:
            raise ValueError(f"QFormat width must be <= 62 (int64 golden arithmetic), not {self.width}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise TypeError(f"QFormat frac must be an integer, not {self.frac!r}")
        if self.signed and self.width < 2:
            raise ValueError("a signed QFormat needs width >= 2")
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    # -- integer range ----------------------------------------------------------------------
    @property
    def int_bits(self) -> int:
        """Integer bits excluding the sign bit."""
        return self.width - self.frac - (1 if self.signed else 0)

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return self.min_int * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_int * self.lsb

    def with_(self, **changes: Any) -> QFormat:
        return replace(self, **changes)

    # -- conversions ------------------------------------------------------------------------
    def quantize(self, x: Any) -> np.ndarray:
        """Float -> raw integers, using this format's rounding and overflow modes."""
        scaled = np.asarray(x, dtype=np.float64) * (2.0 ** self.frac)
        if not np.all(np.isfinite(scaled)):
            raise ValueError(f"cannot quantize non-finite values to {self}")
        if self.rounding is Rounding.HALF_UP:
            raw = np.floor(scaled + 0.5)
        else:
            raw = np.floor(scaled)
        raw = np.clip(raw, -(2.0**62), 2.0**62).astype(np.int64)
        return self.fit(raw)[0]

    def to_float(self, raw: Any) -> np.ndarray:
        return np.asarray(raw, dtype=np.float64) * self.lsb

    def fit(self, raw: Any) -> tuple[np.ndarray, np.ndarray]:
        """Apply the overflow mode to raw integers; returns (values, overflow mask)."""
        if self.overflow is Overflow.SATURATE:
            return saturate(raw, self)
        return wrap(raw, self)

    def contains(self, raw: Any) -> np.ndarray:
        raw = np.asarray(raw)
        return (raw >= self.min_int) & (raw <= self.max_int)

    # -- descriptions -----------------------------------------------------------------------
    def __str__(self) -> str:
        # The CTA paper's notation: integer bits include the sign bit, so Q6.7 is 13 bits wide.
        kind = "Q" if self.signed else "UQ"
        return f"{kind}{self.width - self.frac}.{self.frac}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "notation": str(self),
            "width": self.width,
            "frac": self.frac,
            "signed": self.signed,
            "rounding": self.rounding.value,
            "overflow": self.overflow.value,
            "min": self.min_value,
            "max": self.max_value,
        }

    @classmethod
    def covering(cls, max_abs: float, width: int, *, signed: bool = True, **kw: Any) -> QFormat:
        """The format of ``width`` bits with the most fractional bits that still holds ±max_abs."""
        if max_abs <= 0:
            raise ValueError("max_abs must be > 0")
        int_bits = max(0, math.floor(math.log2(max_abs)) + 1)
        frac = width - int_bits - (1 if signed else 0)
        return cls(width, frac, signed, **kw)


def _as_int64(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"fixed-point helpers take integer arrays, not dtype {arr.dtype}")
    return arr.astype(np.int64)


def shift_round(x: Any, shift: int | np.ndarray, rounding: Rounding = Rounding.HALF_UP) -> np.ndarray:
    """Divide raw integers by ``2**shift`` with the given rounding (shift < 0 shifts left).

    ``shift`` may be an array (per-element shift amounts, as in a barrel shifter).
    """
    x = _as_int64(x)
    shift = np.asarray(shift, dtype=np.int64)
    rounding = Rounding(rounding)
    right = np.maximum(shift, 0)
    left = np.maximum(-shift, 0)
    if rounding is Rounding.HALF_UP:
        half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
        out = np.right_shift(x + half, right)
    else:
        out = np.right_shift(x, right)
    return np.left_shift(out, left)


def saturate(x: Any, fmt: QFormat) -> tuple[np.ndarray, np.ndarray]:
    """Clamp raw integers to ``fmt``; returns (clamped, overflow mask)."""
    x = _as_int64(x)
    over = (x > fmt.max_int) | (x < fmt.min_int)
    return np.clip(x, fmt.min_int, fmt.max_int), over


def wrap(x: Any, fmt: QFormat) -> tuple[np.ndarray, np.ndarray]:
    """Keep the low ``fmt.width`` bits (two's complement); returns (wrapped, overflow mask)."""
    x = _as_int64(x)
    over = (x > fmt.max_int) | (x < fmt.min_int)
    mask = (1 << fmt.width) - 1
    low = np.bitwise_and(x, mask)
    if fmt.signed:
        low = np.where(low >= (1 << (fmt.width - 1)), low - (1 << fmt.width), low)
    return low.astype(np.int64), over


def requantize(x: Any, from_frac: int, fmt: QFormat) -> tuple[np.ndarray, np.ndarray]:
    """Raw integers with ``from_frac`` fractional bits -> ``fmt`` (its rounding and overflow).

    Returns (values, overflow mask).
    """
    shifted = shift_round(x, from_frac - fmt.frac, fmt.rounding)
    return fmt.fit(shifted)


def mac(acc: Any, a: Any, b: Any, acc_fmt: QFormat) -> tuple[np.ndarray, np.ndarray]:
    """``acc + a*b`` in the accumulator format (no shift: frac(acc) = frac(a)+frac(b))."""
    total = _as_int64(acc) + _as_int64(a) * _as_int64(b)
    return acc_fmt.fit(total)


def check_in_range(raw: Any, fmt: QFormat, name: str) -> np.ndarray:
    """Validate that ``raw`` are integers representable in ``fmt``; raise ValueError otherwise."""
    arr = np.asarray(raw)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array (raw {fmt} values), not dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = ~fmt.contains(arr)
    if np.any(bad):
        first = arr[bad].flat[0]
        raise ValueError(
            f"{name} has values outside {fmt} raw range [{fmt.min_int}, {fmt.max_int}] (e.g. {first})"
        )
    return arr


def signed_width(lo: int, hi: int) -> int:
    """The fewest two's-complement bits that hold every integer in [lo, hi]."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width
