"""Amaranth helpers that build the rounding / saturation logic of a :class:`golden.fixed.QFormat`.

Each helper mirrors a function of ``golden.fixed`` so that RTL and golden model round and
saturate the same way.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Shape, Value, signed, unsigned

from golden.fixed import QFormat, Rounding

__all__ = ["shape_of", "round_shift_const", "round_shift_var", "saturate"]


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

    Half-up uses floor((floor(v / 2**(s-1)) + 1) / 2), which equals floor((v + 2**(s-1)) / 2**s)
    for s >= 1 and needs no variable-width constant.
    """
    value = Value.cast(value)
    shift = Value.cast(shift)
    if Rounding(rounding) is Rounding.TRUNCATE:
        return value >> shift
    pre = value >> (shift - 1).as_unsigned()[: len(shift)]
    rounded = (pre + 1) >> 1
    return Mux(shift == 0, value, rounded)


def saturate(value: Value, fmt: QFormat) -> tuple[Value, Value]:
    """Clamp ``value`` to ``fmt``; returns (clamped value of shape_of(fmt), overflow bit)."""
    value = Value.cast(value)
    # All three Mux arms are unsigned ``fmt.width``-bit patterns so the result is exactly that wide.
    mask = (1 << fmt.width) - 1
    hi = Const(fmt.max_int & mask, unsigned(fmt.width))
    lo = Const(fmt.min_int & mask, unsigned(fmt.width))
    over_hi = value > fmt.max_int
    over_lo = value < fmt.min_int
    clamped = Mux(over_hi, hi, Mux(over_lo, lo, value[: fmt.width]))
    return clamped.as_signed() if fmt.signed else clamped.as_unsigned(), over_hi | over_lo
