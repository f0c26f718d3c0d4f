"""Shared pipelined arithmetic units: exp (2**x with a fraction LUT) and division by a
reciprocal LUT. Used by the CTA PPE and PAG and by LATTE; the ROM contents and the bit-exact
behaviour come from :mod:`golden.lut`.

Both units are plain pipelines with a clock enable ``en`` (all stages hold while it is low) and
a ``valid`` bit travelling with the data, so they can sit inside a stream pipeline.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.lut import ExpSpec, RecipSpec

from .fixed import round_shift_var, saturate, shape_of

__all__ = ["ExpUnit", "ReciprocalScaler"]


def _signed_bits(lo: int, hi: int) -> int:
    """Width of a signed signal holding every integer in [lo, hi]."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


class ExpUnit(wiring.Component):
    """``y = exp(x)`` per :class:`golden.lut.ExpSpec`; one input per cycle, ``LATENCY`` cycles.

    Stages: (1) multiply by log2(e) (registered DSP output); (2) fraction-LUT ROM read;
    (3) barrel shift by the integer part, round, saturate.
    """

    LATENCY = 3

    def __init__(self, *, spec: ExpSpec) -> None:
        if not isinstance(spec, ExpSpec):
            raise TypeError(f"spec must be an ExpSpec, not {spec!r}")
        self._spec = spec
        super().__init__({
            "x": In(shape_of(spec.in_fmt)),
            "valid_in": In(1),
            "en": In(1, init=1),
            "y": Out(shape_of(spec.out_fmt)),
            "overflow": Out(1),
            "valid_out": Out(1),
        })

    @property
    def spec(self) -> ExpSpec:
        return self._spec

    def elaborate(self, platform):
        spec = self._spec
        m = Module()
        m.submodules.rom = rom = Memory(
            shape=unsigned(spec.lut_frac + 1), depth=1 << spec.lut_bits, init=[int(v) for v in spec.lut()]
        )
        rd = rom.read_port(domain="sync")
        m.d.comb += rd.en.eq(self.en)

        prod_width = spec.in_fmt.width + spec.log2e_raw.bit_length() + 1
        prod = Signal(signed(prod_width))
        v1 = Signal()
        with m.If(self.en):
            m.d.sync += [prod.eq(self.x * spec.log2e_raw), v1.eq(self.valid_in)]

        integer = prod >> spec.product_frac
        m.d.comb += rd.addr.eq(prod[spec.product_frac - spec.lut_bits: spec.product_frac])

        int_lo = -(1 << (prod_width - 1)) >> spec.product_frac
        int_hi = ((1 << (prod_width - 1)) - 1) >> spec.product_frac
        int2 = Signal(signed(_signed_bits(int_lo, int_hi)))
        v2 = Signal()
        with m.If(self.en):
            m.d.sync += [int2.eq(integer), v2.eq(v1)]

        # Right-shift amount, clamped as in ExpSpec (the clamp never changes a result).
        base = spec.lut_frac - spec.out_fmt.frac
        shift = Signal(signed(_signed_bits(min(spec.shift_min, base - int_hi), max(spec.shift_max, base - int_lo))))
        m.d.comb += shift.eq(base - int2)
        clamped = Signal(signed(_signed_bits(spec.shift_min, spec.shift_max)))
        m.d.comb += clamped.eq(Mux(shift < spec.shift_min, spec.shift_min,
                                   Mux(shift > spec.shift_max, spec.shift_max, shift)))
        right = Signal(range(spec.shift_max + 1))
        left = Signal(range(-spec.shift_min + 1))
        m.d.comb += [
            right.eq(Mux(clamped > 0, clamped, 0)),
            left.eq(Mux(clamped < 0, -clamped, 0)),
        ]
        entry = rd.data
        shifted = Mux(clamped >= 0, round_shift_var(entry, right, spec.out_fmt.rounding), entry << left)
        y, over = saturate(shifted, spec.out_fmt)
        with m.If(self.en):
            m.d.sync += [self.y.eq(y), self.overflow.eq(over), self.valid_out.eq(v2)]
        return m


class ReciprocalScaler(wiring.Component):
    """``result = value / den`` per :meth:`golden.lut.RecipSpec.scale`; ``LATENCY`` cycles.

    Stages: (1) leading-one detect and mantissa index; (2) reciprocal ROM read;
    (3) multiply (registered DSP output); (4) rounding shift and saturation.
    """

    LATENCY = 4

    def __init__(self, *, spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat) -> None:
        if not isinstance(spec, RecipSpec):
            raise TypeError(f"spec must be a RecipSpec, not {spec!r}")
        for name, fmt in (("value_fmt", value_fmt), ("out_fmt", out_fmt)):
            if not isinstance(fmt, QFormat):
                raise TypeError(f"{name} must be a QFormat, not {fmt!r}")
        self._spec = spec
        self._value_fmt = value_fmt
        self._out_fmt = out_fmt
        super().__init__({
            "value": In(shape_of(value_fmt)),
            "den": In(shape_of(spec.den_fmt)),
            "valid_in": In(1),
            "en": In(1, init=1),
            "result": Out(shape_of(out_fmt)),
            "overflow": Out(1),
            "div_by_zero": Out(1),
            "valid_out": Out(1),
        })

    @property
    def spec(self) -> RecipSpec:
        return self._spec

    @property
    def value_fmt(self) -> QFormat:
        return self._value_fmt

    @property
    def out_fmt(self) -> QFormat:
        return self._out_fmt

    def elaborate(self, platform):
        spec, vfmt, ofmt = self._spec, self._value_fmt, self._out_fmt
        width = spec.den_fmt.width
        lut_bits = spec.lut_bits
        m = Module()
        m.submodules.rom = rom = Memory(
            shape=unsigned(spec.mant_bits + 1), depth=1 << lut_bits, init=[int(v) for v in spec.lut()]
        )
        rd = rom.read_port(domain="sync")
        m.d.comb += rd.en.eq(self.en)

        # Stage 1: leading-one position and the lut_bits below it.
        pos = Signal(range(width))
        for bit in range(width):
            with m.If(self.den[bit]):
                m.d.comb += pos.eq(bit)
        aligned = Cat(Const(0, lut_bits), self.den) << (width - 1 - pos).as_unsigned()[: len(pos)]
        index = aligned[width - 1: width - 1 + lut_bits]
        pos1, val1, zero1, v1 = Signal.like(pos), Signal(shape_of(vfmt)), Signal(), Signal()
        index1 = Signal(lut_bits)
        with m.If(self.en):
            m.d.sync += [pos1.eq(pos), val1.eq(self.value), zero1.eq(self.den == 0), v1.eq(self.valid_in),
                         index1.eq(index)]
        m.d.comb += rd.addr.eq(index1)

        # Stage 2: ROM output registered by the memory; carry the rest.
        pos2, val2, zero2, v2 = Signal.like(pos), Signal(shape_of(vfmt)), Signal(), Signal()
        with m.If(self.en):
            m.d.sync += [pos2.eq(pos1), val2.eq(val1), zero2.eq(zero1), v2.eq(v1)]

        # Stage 3: multiply.
        prod = Signal(signed(vfmt.width + spec.mant_bits + 2))
        pos3, neg3, zero3, v3 = Signal.like(pos), Signal(), Signal(), Signal()
        with m.If(self.en):
            m.d.sync += [
                prod.eq(val2 * rd.data),
                pos3.eq(pos2),
                neg3.eq(val2 < 0),
                zero3.eq(zero2),
                v3.eq(v2),
            ]

        # Stage 4: shift by (offset + pos), round, saturate.
        offset = spec.mant_bits - spec.den_fmt.frac + vfmt.frac - ofmt.frac
        shift = Signal(signed(_signed_bits(offset, offset + width - 1)))
        m.d.comb += shift.eq(offset + pos3)
        right = Signal(range(max(offset + width, 1) + 1))
        left = Signal(range(max(-offset, 0) + 1))
        m.d.comb += [right.eq(Mux(shift > 0, shift, 0)), left.eq(Mux(shift < 0, -shift, 0))]
        shifted = Mux(shift >= 0, round_shift_var(prod, right, ofmt.rounding), prod << left)
        res, over = saturate(shifted, ofmt)
        sat_value = Mux(neg3, Const(ofmt.min_int & ((1 << ofmt.width) - 1), unsigned(ofmt.width)),
                        Const(ofmt.max_int, unsigned(ofmt.width)))
        with m.If(self.en):
            m.d.sync += [
                self.result.eq(Mux(zero3, sat_value, res)),
                self.overflow.eq(over | zero3),
                self.div_by_zero.eq(zero3),
                self.valid_out.eq(v3),
            ]
        return m


# ---- registry entries (stand-alone generation, synthesis and cocotb of the shared units) --------
from golden.fixed import Rounding as _Rounding  # noqa: E402

from .registry import BlockSpec, Param, ParamError  # noqa: E402


def exp_spec_from_params(*, in_width: int, in_frac: int, out_width: int, out_frac: int, lut_bits: int,
                         lut_frac: int, **_: object) -> ExpSpec:
    return ExpSpec(QFormat(in_width, in_frac), QFormat(out_width, out_frac, signed=False), lut_bits=lut_bits,
                   lut_frac=lut_frac)


def _validate_exp(p: dict) -> None:
    if p["in_frac"] >= p["in_width"]:
        raise ParamError(f"parameter in_frac={p['in_frac']} out of range: expected < in_width={p['in_width']}")
    if p["out_frac"] > p["out_width"]:
        raise ParamError(f"parameter out_frac={p['out_frac']} out of range: expected <= out_width")
    if p["lut_frac"] < p["out_frac"]:
        raise ParamError(f"parameter lut_frac={p['lut_frac']} out of range: expected >= out_frac={p['out_frac']}")


def recip_spec_from_params(*, den_width: int, den_frac: int, lut_bits: int, mant_bits: int,
                           **_: object) -> RecipSpec:
    return RecipSpec(QFormat(den_width, den_frac, signed=False), lut_bits=lut_bits, mant_bits=mant_bits)


BLOCKS = [
    BlockSpec(
        name="exp_unit",
        description="shared exp unit: 2^(x·log2 e) with a fraction LUT (PPE, PAG, LATTE)",
        params=(
            Param("in_width", 16, "input width (signed)", min=4, max=32),
            Param("in_frac", 8, "input fractional bits", min=0, max=30),
            Param("out_width", 16, "output width (unsigned, saturating)", min=2, max=32),
            Param("out_frac", 12, "output fractional bits", min=0, max=31),
            Param("lut_bits", 8, "fraction LUT index bits", min=1, max=12),
            Param("lut_frac", 16, "LUT entry fractional bits", min=1, max=24),
        ),
        build=lambda **p: ExpUnit(spec=exp_spec_from_params(**p)),
        cocotb_module="sim.tb_arith",
        validate=_validate_exp,
    ),
    BlockSpec(
        name="recip_unit",
        description="shared divider: value / den with a normalised reciprocal LUT (PPE, CAVG, LATTE)",
        params=(
            Param("den_width", 24, "denominator width (unsigned)", min=2, max=40),
            Param("den_frac", 12, "denominator fractional bits", min=0, max=39),
            Param("lut_bits", 10, "reciprocal LUT index bits", min=1, max=12),
            Param("mant_bits", 16, "reciprocal mantissa bits", min=2, max=24),
            Param("value_width", 24, "numerator width (signed)", min=2, max=40),
            Param("value_frac", 12, "numerator fractional bits", min=0, max=39),
            Param("out_width", 16, "result width (signed, saturating)", min=2, max=40),
            Param("out_frac", 12, "result fractional bits", min=0, max=39),
            Param("rounding", "half_up", "result rounding", kind=str, choices=("half_up", "truncate")),
        ),
        build=lambda **p: ReciprocalScaler(
            spec=recip_spec_from_params(**p),
            value_fmt=QFormat(p["value_width"], p["value_frac"]),
            out_fmt=QFormat(p["out_width"], p["out_frac"], rounding=_Rounding(p["rounding"]))),
        cocotb_module="sim.tb_arith",
    ),
]
