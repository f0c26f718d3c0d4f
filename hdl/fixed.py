"""Amaranth helpers that build the rounding / saturation logic of a :class:`golden.fixed.QFormat`.

Each helper mirrors a function of ``golden.fixed`` so that RTL and golden model round and
saturate the same way.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Shape, Value, signed, unsigned

from golden.fixed import QFormat, Rounding

__all__ = ["shape_of", "round_shift_const", "round_shift_var", "shift_keep_half", "round_kept_half", "saturate",
           "index_bits"]


def index_bits(count: int, *, min_bits: int = 1) -> int:
    """Bits of an unsigned index in ``range(count)`` (addresses, pointers, row numbers), at least
    ``min_bits`` (0 lets a single-entry range have a zero-width index; an empty range gets
    ``min_bits`` too)."""
    return max(min_bits, (max(count, 1) - 1).bit_length())


def shape_of(fmt: QFormat) -> Shape:
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def round_shift_const(value: Value, shift: int, rounding: Rounding) -> Value:
    """``golden.fixed.shift_round`` with a constant shift (negative shifts left)."""
    value = Value.cast(value)
    if shift <= 0:
        return value << (-shift)
    if Rounding(rounding) is Rounding.HALF_UP:
        return (value + (1 << (shift - 1))) >> shift
    return value >> shift


def round_shift_var(value: Value, shift: Value, rounding: Rounding) -> Value:
    """``golden.fixed.shift_round`` by a non-negative variable amount.

    Half-up uses floor((floor(2v / 2**s) + 1) / 2), which equals floor((v + 2**(s-1)) / 2**s)
    for s >= 1 and v for s = 0, and needs no variable-width constant, no ``s - 1`` and no mux.
    Pipelined users register between its two halves, :func:`shift_keep_half` and
    :func:`round_kept_half`.
    """
    return round_kept_half(shift_keep_half(value, shift, rounding), rounding)


def shift_keep_half(value: Value, shift: Value, rounding: Rounding) -> Value:
    """First half of :func:`round_shift_var`: ``floor(2v / 2**s)`` for half-up (one extra bit kept
    for the rounding increment), ``v >> s`` for truncation."""
    value = Value.cast(value)
    shift = Value.cast(shift)
    if Rounding(rounding) is Rounding.TRUNCATE:
        return value >> shift
    return (value << 1) >> shift


def round_kept_half(kept: Value, rounding: Rounding) -> Value:
    """Second half of :func:`round_shift_var`: add the kept half bit and drop it (half-up)."""
    kept = Value.cast(kept)
    if Rounding(rounding) is Rounding.TRUNCATE:
        return kept
    return (kept + 1) >> 1


def saturate(value: Value, fmt: QFormat) -> tuple[Value, Value]:
    """Clamp ``value`` to ``fmt``; returns (clamped value of shape_of(fmt), overflow bit)."""
    value = Value.cast(value)
    # All three Mux arms are unsigned ``fmt.width``-bit patterns so the result is exactly that wide.
    mask = (1 << fmt.width) - 1
    hi = Const(fmt.max_int & mask, unsigned(fmt.width))
    lo = Const(fmt.min_int & mask, unsigned(fmt.width))
    over_hi, over_lo = _range_flags(value, fmt)
    clamped = Mux(over_hi, hi, Mux(over_lo, lo, value[: fmt.width]))
    return clamped.as_signed() if fmt.signed else clamped.as_unsigned(), over_hi | over_lo


def _range_flags(value: Value, fmt: QFormat) -> tuple[Value, Value]:
    """(value > fmt.max_int, value < fmt.min_int) as bit tests instead of magnitude comparators.

    Same results as the comparisons; for timing (ECP5), because a comparator against a constant
    becomes a carry chain as wide as ``value``, whereas these are OR/AND reductions of the bits
    above the format's range (the value fits iff those bits are all copies of its sign).
    """
    shape = value.shape()
    n = shape.width
    sign = value[n - 1] if shape.signed and n else Const(0, 1)
    # bits that must equal the sign for the value to fit (for a signed format: from its sign bit up)
    first = fmt.width - 1 if fmt.signed else fmt.width
    if first >= n:
        upper_any, upper_all = Const(0, 1), Const(1, 1)
    else:
        upper = value.as_unsigned()[first:]
        upper_any, upper_all = upper.any(), upper.all()
    if shape.signed:
        over_hi = ~sign & upper_any
        # signed value, unsigned format: every negative value is below min_int = 0
        over_lo = sign if not fmt.signed else (sign & ~upper_all)
    else:
        over_hi = upper_any
        over_lo = Const(0, 1)
    return over_hi, over_lo
