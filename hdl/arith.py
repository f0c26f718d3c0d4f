"""Shared pipelined arithmetic units: exp (2**x with a fraction LUT) and division by a
reciprocal LUT. Used by the CTA PPE and PAG and by LATTE; the ROM contents and the bit-exact
behaviour come from :mod:`golden.lut`.

Both units are plain pipelines with a clock enable ``en`` (all stages hold while it is low) and
a ``valid`` bit travelling with the data, so they can sit inside a stream pipeline.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat, Rounding
from golden.lut import ExpSpec, RecipSpec

from .checked import CheckedComponent
from .fixed import round_kept_half, saturate, shape_of, shift_keep_half
from .primitives import RegisteredReadMemory, registered_multiply

__all__ = ["ExpUnit", "ReciprocalApply", "ReciprocalLookup", "ReciprocalScaler", "SharedReciprocalScaler"]


def _signed_bits(lo: int, hi: int) -> int:
    """Width of a signed signal holding every integer in [lo, hi]."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def _dsp_pieces(value: Signal, piece: int = 17) -> list[tuple[int, Value]]:
    """Split ``value`` into (bit offset, piece) with unsigned low pieces of ``piece`` bits and a
    top piece of the value's signedness, so each fits an 18x18 signed DSP multiplier."""
    width = len(value)
    if width <= piece + 1:
        return [(0, value)]
    pieces: list[tuple[int, Value]] = []
    lo = 0
    while width - lo > piece + 1:
        pieces.append((lo, value[lo: lo + piece].as_unsigned()))
        lo += piece
    top = value[lo:]
    pieces.append((lo, top.as_signed() if value.shape().signed else top.as_unsigned()))
    return pieces


class ExpUnit(CheckedComponent):
    """``y = exp(x)`` per :class:`golden.lut.ExpSpec`; one input per cycle, ``LATENCY`` cycles.

    Stages (pipelined for 150 MHz on ECP5): (1) multiply by log2(e) (registered DSP output);
    (2) LUT index and clamped shift amount registered in fabric; (3) fraction-LUT ROM read,
    registered; (4) barrel shift by the integer part; (5) rounding increment and saturation.
    """

    LATENCY = 5

    def __init__(self, *, spec: ExpSpec) -> None:
        self._spec = spec
        super().__init__({
            "x": In(shape_of(spec.in_fmt)),
            "valid_in": In(1),
            "en": In(1, init=1),
            "y": Out(shape_of(spec.out_fmt)),
            "overflow": Out(1),
            "valid_out": Out(1),
        })

    @classmethod
    def check_params(cls, *, spec: ExpSpec) -> None:
        if not isinstance(spec, ExpSpec):
            raise TypeError(f"spec must be an ExpSpec, not {spec!r}")

    @property
    def spec(self) -> ExpSpec:
        return self._spec

    def elaborate(self, platform):
        spec = self._spec
        m = Module()

        def stage(*pairs):
            """Register (target, source) pairs when ``en``."""
            with m.If(self.en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        # A LUT ROM (``rom_style``), read asynchronously from a fabric register and registered: a
        # DP16KD block RAM's clock-to-out alone (~5.6 ns on ECP5-6; yosys does not use its output
        # register) leaves no time for anything after it. The table is small (2**lut_bits entries).
        # Entries are in [2**lut_frac, 2**(lut_frac+1)]: the top one rounds up to 2**(lut_frac+1)
        # when lut_bits > lut_frac + 1, so the width comes from the table, not lut_frac + 1.
        m.submodules.rom = rom = Memory(
            shape=unsigned(int(spec.lut().max()).bit_length()), depth=1 << spec.lut_bits,
            init=[int(v) for v in spec.lut()],
            attrs={"rom_style": "logic", "ram_style": "logic"},
        )
        rd = rom.read_port(domain="comb")

        # Stage 1: the product (a DSP with its output register).
        prod_width = spec.in_fmt.width + spec.log2e_raw.bit_length() + 1
        prod = Signal(signed(prod_width))
        v1 = Signal()
        stage((prod, self.x * spec.log2e_raw), (v1, self.valid_in))
        integer = prod >> spec.product_frac

        # Stage 2: the LUT index and the right-shift amount r, clamped as in ExpSpec (the clamp
        # never changes a result), into fabric registers (the DSP output register's clock-to-out
        # plus the ROM's mux tree do not fit one cycle). Every table entry is >= 2**lut_frac, so
        # the result is >= 2**(lut_frac - r) and saturates for sure when lut_frac - r >= out
        # width: that case is decided here, and stage 4 only shifts by r in [r_lo, shift_max], as
        # one right shift by t = r + pre_left of the entry pre-shifted left by ``pre_left`` (for
        # r <= 0 the rounding adds below the pre-shift's zero bits, so this equals ``entry << -r``).
        lut = spec.lut()
        assert int(lut.min()) >= 1 << spec.lut_frac, "exp LUT entries must be >= 1.0"
        int_lo = -(1 << (prod_width - 1)) >> spec.product_frac
        int_hi = ((1 << (prod_width - 1)) - 1) >> spec.product_frac
        base = spec.lut_frac - spec.out_fmt.frac
        shift = Signal(signed(_signed_bits(min(spec.shift_min, base - int_hi), max(spec.shift_max, base - int_lo))))
        m.d.comb += shift.eq(base - integer)
        sure_limit = spec.lut_frac - spec.out_fmt.width  # r <= this: saturated for sure
        r_lo = max(sure_limit + 1, spec.shift_min)
        r_hi = max(spec.shift_max, r_lo)
        pre_left = max(-r_lo, 0)
        index2 = Signal(spec.lut_bits, name="index2")
        t2 = Signal(range(r_hi + pre_left + 1))
        sure2, v2 = Signal(), Signal()
        # The clamp's comparisons are made on ``integer`` against constants (shift = base - integer),
        # in parallel with the subtraction, rather than on its result: one carry chain per cycle.
        stage((index2, prod[spec.product_frac - spec.lut_bits: spec.product_frac]),
              (t2, Mux(integer > base - r_lo, r_lo + pre_left,
                       Mux(integer < base - r_hi, r_hi + pre_left, shift + pre_left))),
              (sure2, integer >= base - sure_limit), (v2, v1))

        # Stage 3: ROM read, registered.
        m.d.comb += rd.addr.eq(index2)
        entry3 = Signal.like(rd.data, name="entry3")
        t3, sure3, v3 = Signal.like(t2, name="t3"), Signal(), Signal()
        stage((entry3, rd.data), (t3, t2), (sure3, sure2), (v3, v2))

        # Stage 4: the barrel shift, the first half of round_shift_var (half-up keeps one extra
        # bit) so that stage 5 only adds 1 and drops it.
        wide = entry3 << pre_left
        q4 = Signal(unsigned(len(wide) + 1), name="q4")
        sure4, v4 = Signal(), Signal()
        stage((q4, shift_keep_half(wide, t3, spec.out_fmt.rounding)), (sure4, sure3), (v4, v3))

        # Stage 5: rounding increment, saturation (bit tests on the rounded value).
        rounded = round_kept_half(q4, spec.out_fmt.rounding)
        y, over = saturate(rounded, spec.out_fmt)
        y_max = Const(spec.out_fmt.max_int, unsigned(spec.out_fmt.width))
        stage((self.y, Mux(sure4, y_max, y)), (self.overflow, over | sure4), (self.valid_out, v4))
        return m


def _recip_shift(spec: RecipSpec, vfmt: QFormat, ofmt: QFormat) -> tuple[int, int, int]:
    """(offset, pre_left, shift bound) of the product's right shift: shift = offset + pos (negative
    = left). As in ExpUnit, the product is pre-shifted left by ``pre_left`` so that one right shift
    by t = shift + pre_left >= 0 covers both directions with the same rounding; t < bound."""
    offset = spec.mant_bits - spec.den_fmt.frac + vfmt.frac - ofmt.frac
    pre_left = max(-offset, 0)
    return offset, pre_left, offset + spec.den_fmt.width + pre_left + 1


def _check_recip_args(spec: object, **fmts: object) -> None:
    if not isinstance(spec, RecipSpec):
        raise TypeError(f"spec must be a RecipSpec, not {spec!r}")
    for name, fmt in fmts.items():
        if not isinstance(fmt, QFormat):
            raise TypeError(f"{name} must be a QFormat, not {fmt!r}")


class _RecipPart(CheckedComponent):
    """Parameter check shared by the reciprocal components (a RecipSpec, value and result formats)."""

    @classmethod
    def check_params(cls, *, spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat, **_: object) -> None:
        _check_recip_args(spec, value_fmt=value_fmt, out_fmt=out_fmt)


def _result_ports(out_fmt: QFormat) -> dict:
    """Ports after the operands of a divider: stage enable in, the saturated result and its flags out."""
    return {"valid_in": In(1), "en": In(1, init=1), "result": Out(shape_of(out_fmt)), "overflow": Out(1),
            "div_by_zero": Out(1), "valid_out": Out(1)}


class ReciprocalLookup(_RecipPart):
    """The denominator half of a division: the reciprocal mantissa of ``den`` (ROM) and the shift
    that scales a product by it, for one (value, result) format pair; ``LATENCY`` cycles.

    Stages: (1) leading-one detect; (2) mantissa index (the normalising shift) and shift amount
    into fabric registers; (3) the index through the reciprocal ROM's address register (the block
    RAM's own: nothing but routing in front of it); (4) the ROM word in the ROM's output register,
    ``recip_early`` (a :class:`hdl.primitives.RegisteredReadMemory`: on ECP5 the DP16KD's own
    output register, so the 5.6 ns block-RAM clock-to-out ends in it rather than feeding a fabric
    register); (5) ``recip``, ``shift``, ``zero``, ``valid_out``. The normalising shift drove the
    ROM address pins directly until stage 2 got its own register: that path (shift plus 5.3–6.3 ns
    of routing to the block RAM) was the worst of recip_unit and LATTE on LFE5U-85F-6; then the
    ROM's clock-to-out into ``recip_early`` in fabric was recip_unit's (synth/REPORT.md).
    One lookup can feed any number of :class:`ReciprocalApply` lanes that divide by the same
    ``den``: they take ``recip_early`` into their own operand registers (the DSP input registers on
    ECP5), one per lane, rather than one ``recip`` register driving every lane's multipliers.
    """

    LATENCY = 5

    def __init__(self, *, spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat) -> None:
        self._spec, self._value_fmt, self._out_fmt = spec, value_fmt, out_fmt
        super().__init__({
            "den": In(shape_of(spec.den_fmt)),
            "valid_in": In(1),
            "en": In(1, init=1),
            "recip": Out(unsigned(spec.mant_bits + 1)),
            #: ``recip`` one cycle earlier (for the lanes' operand registers)
            "recip_early": Out(unsigned(spec.mant_bits + 1)),
            "shift": Out(range(_recip_shift(spec, value_fmt, out_fmt)[2])),
            "zero": Out(1),
            "valid_out": Out(1),
        })

    def elaborate(self, platform):
        spec = self._spec
        width, lut_bits = spec.den_fmt.width, spec.lut_bits
        offset, pre_left, _ = _recip_shift(spec, self._value_fmt, self._out_fmt)
        m = Module()
        # the ROM's address register is stage 3, its output register (the block RAM's own on ECP5:
        # nothing but routing after its clock-to-out) is stage 4, ``recip_early``
        m.submodules.rom = rom = RegisteredReadMemory(
            width=spec.mant_bits + 1, depth=1 << lut_bits, init=[int(v) for v in spec.lut()]
        )
        m.d.comb += [rom.r_en.eq(self.en), rom.r_data_en.eq(self.en)]

        def stage(*pairs):
            with m.If(self.en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        # Stage 1: leading-one position of the denominator.
        pos = Signal(range(width))
        for bit in range(width):
            with m.If(self.den[bit]):
                m.d.comb += pos.eq(bit)
        pos1, den1 = Signal.like(pos, name="pos1"), Signal.like(self.den, name="den1")
        zero1, v1 = Signal(), Signal()
        stage((pos1, pos), (den1, self.den), (zero1, self.den == 0), (v1, self.valid_in))

        # Stage 2: normalise (the lut_bits below the leading one) and the shift amount.
        aligned = Cat(Const(0, lut_bits), den1) << (width - 1 - pos1).as_unsigned()[: len(pos1)]
        idx2 = Signal(lut_bits, name="idx2")
        t2, zero2, v2 = Signal.like(self.shift, name="t2"), Signal(), Signal()
        stage((idx2, aligned[width - 1: width - 1 + lut_bits]), (t2, pos1 + (offset + pre_left)),
              (zero2, zero1), (v2, v1))

        # Stage 3: the index registered by the ROM's address register (same edge, same enable as
        # the others); stage 4: the ROM word in its output register; stage 5: the outputs.
        m.d.comb += [rom.r_addr.eq(idx2), self.recip_early.eq(rom.r_data)]
        t3, zero3, v3 = Signal.like(t2, name="t3"), Signal(), Signal()
        stage((t3, t2), (zero3, zero2), (v3, v2))
        t4, zero4, v4 = Signal.like(t2, name="t4"), Signal(), Signal()
        stage((t4, t3), (zero4, zero3), (v4, v3))
        stage((self.recip, self.recip_early), (self.shift, t4), (self.zero, zero4), (self.valid_out, v4))
        return m


class ReciprocalApply(_RecipPart):
    """The value half of a division: ``result = value · recip >> shift``, rounded and saturated per
    :meth:`golden.lut.RecipSpec.scale`, from a :class:`ReciprocalLookup`'s outputs; ``LATENCY``
    cycles from ``shift``/``zero``/``valid_in``.

    The multiplier operands ``value`` and ``recip`` come **one cycle earlier** than ``shift``,
    ``zero`` and ``valid_in`` (``value``: the numerator delayed by ``ReciprocalLookup.LATENCY - 1``,
    ``recip``: the lookup's ``recip_early``): they are registered here, in each lane's own operand
    registers (:func:`hdl.primitives.registered_multiply`: the MULT18X18D input registers on ECP5),
    so no shared register drives every lane's multipliers.

    Stages: (0) operand registers; (1) partial products (one DSP each, output register); (2) their
    sum; (3) variable shift; (4) rounding increment; (5) saturation.
    """

    LATENCY = 5

    def __init__(self, *, spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat) -> None:
        self._spec, self._value_fmt, self._out_fmt = spec, value_fmt, out_fmt
        super().__init__({
            "value": In(shape_of(value_fmt)),
            "recip": In(unsigned(spec.mant_bits + 1)),
            "shift": In(range(_recip_shift(spec, value_fmt, out_fmt)[2])),
            "zero": In(1),
            **_result_ports(out_fmt),
        })

    def elaborate(self, platform):
        spec, vfmt, ofmt = self._spec, self._value_fmt, self._out_fmt
        _, pre_left, _ = _recip_shift(spec, vfmt, ofmt)
        m = Module()

        def stage(*pairs):
            with m.If(self.en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        # Stages 0-1: partial products, each within one 18x18 DSP, operands and product registered
        # (held with en); stage 2: their sum. (A 24x17 product spans two MULT18X18D plus a fabric
        # adder: too long for one cycle.)
        partials = []
        for a_lo, a_piece in _dsp_pieces(self.value):
            for b_lo, b_piece in _dsp_pieces(self.recip):
                product, _ = registered_multiply(m, a_piece, b_piece, platform=platform, en=self.en,
                                                 name=f"part_{a_lo}_{b_lo}_")
                part = Signal(signed(len(a_piece) + len(b_piece) + 1), name=f"part_{a_lo}_{b_lo}")
                m.d.comb += part.eq(product)
                partials.append((a_lo + b_lo, part))
        neg4 = Signal()
        stage((neg4, self.value < 0))
        t5, neg5, zero5, v5 = Signal.like(self.shift, name="t5"), Signal(), Signal(), Signal()
        stage((t5, self.shift), (neg5, neg4), (zero5, self.zero), (v5, self.valid_in))
        prod = Signal(signed(vfmt.width + spec.mant_bits + 2))
        t6, neg6, zero6, v6 = Signal.like(t5, name="t6"), Signal(), Signal(), Signal()
        total = partials[0][1] << partials[0][0]
        for shift_by, part in partials[1:]:
            total = total + (part << shift_by)
        stage((prod, total), (t6, t5), (neg6, neg5), (zero6, zero5), (v6, v5))

        # Stage 3: the variable shift, the first half of round_shift_var (half-up keeps one extra
        # bit) so that stage 4 only adds 1 and drops it (t = 0: q = 2v, the +1 is dropped again).
        wide = prod << pre_left
        shifted = shift_keep_half(wide, t6, ofmt.rounding)
        q7 = Signal(signed(len(wide) + 1))
        neg7, zero7, v7 = Signal(), Signal(), Signal()
        stage((q7, shifted), (neg7, neg6), (zero7, zero6), (v7, v6))

        # Stage 4: rounding increment; stage 5: saturation (bit tests on the registered sum).
        rounded = Signal(signed(len(q7)))
        neg8, zero8, v8 = Signal(), Signal(), Signal()
        stage((rounded, round_kept_half(q7, ofmt.rounding)), (neg8, neg7), (zero8, zero7), (v8, v7))
        res, over = saturate(rounded, ofmt)
        sat_value = Mux(neg8, Const(ofmt.min_int & ((1 << ofmt.width) - 1), unsigned(ofmt.width)),
                        Const(ofmt.max_int, unsigned(ofmt.width)))
        stage((self.result, Mux(zero8, sat_value, res)), (self.overflow, over | zero8),
              (self.div_by_zero, zero8), (self.valid_out, v8))
        return m


class SharedReciprocalScaler(_RecipPart):
    """``lanes`` divisions by one denominator: ``result[i] = value[i] / den`` per
    :meth:`golden.lut.RecipSpec.scale`; one :class:`ReciprocalLookup` (ROM, leading-one detect)
    shared by ``lanes`` :class:`ReciprocalApply` (multipliers); ``LATENCY`` cycles."""

    LATENCY = ReciprocalLookup.LATENCY + ReciprocalApply.LATENCY

    def __init__(self, *, spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat, lanes: int) -> None:
        self._spec, self._value_fmt, self._out_fmt, self._lanes = spec, value_fmt, out_fmt, lanes
        super().__init__({
            "value": In(data.ArrayLayout(shape_of(value_fmt), lanes)),
            "den": In(shape_of(spec.den_fmt)),
            "valid_in": In(1),
            "en": In(1, init=1),
            "result": Out(data.ArrayLayout(shape_of(out_fmt), lanes)),
            "overflow": Out(lanes),
            "div_by_zero": Out(1),
            "valid_out": Out(1),
        })

    @classmethod
    def check_params(cls, *, spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat, lanes: int) -> None:
        _check_recip_args(spec, value_fmt=value_fmt, out_fmt=out_fmt)
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise ValueError(f"lanes must be an integer >= 1, not {lanes!r}")

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def spec(self) -> RecipSpec:
        return self._spec

    def elaborate(self, platform):
        m = Module()
        fmts = dict(spec=self._spec, value_fmt=self._value_fmt, out_fmt=self._out_fmt)
        m.submodules.lookup = lookup = ReciprocalLookup(**fmts)
        m.d.comb += [lookup.den.eq(self.den), lookup.valid_in.eq(self.valid_in), lookup.en.eq(self.en)]
        for i in range(self._lanes):
            # the numerator waits in flip-flops while the lookup runs (its last register is the
            # lane's operand register inside ReciprocalApply)
            delayed = self.value[i]
            for s in range(ReciprocalLookup.LATENCY - 1):
                reg = Signal(shape_of(self._value_fmt), name=f"val{s + 1}_{i}")
                with m.If(self.en):
                    m.d.sync += reg.eq(delayed)
                delayed = reg
            m.submodules[f"apply{i}"] = apply = ReciprocalApply(**fmts)
            m.d.comb += [apply.value.eq(delayed), apply.recip.eq(lookup.recip_early), apply.shift.eq(lookup.shift),
                         apply.zero.eq(lookup.zero), apply.valid_in.eq(lookup.valid_out), apply.en.eq(self.en),
                         self.result[i].eq(apply.result), self.overflow[i].eq(apply.overflow)]
            if i == 0:
                m.d.comb += [self.div_by_zero.eq(apply.div_by_zero), self.valid_out.eq(apply.valid_out)]
        return m


class ReciprocalScaler(_RecipPart):
    """``result = value / den`` per :meth:`golden.lut.RecipSpec.scale`; ``LATENCY`` cycles: a
    one-lane :class:`SharedReciprocalScaler` (a :class:`ReciprocalLookup`, then a
    :class:`ReciprocalApply`), pipelined for 150 MHz on ECP5."""

    LATENCY = SharedReciprocalScaler.LATENCY

    def __init__(self, *, spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat) -> None:
        self._spec = spec
        self._value_fmt = value_fmt
        self._out_fmt = out_fmt
        super().__init__({
            "value": In(shape_of(value_fmt)),
            "den": In(shape_of(spec.den_fmt)),
            **_result_ports(out_fmt),
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
        m = Module()
        m.submodules.unit = unit = SharedReciprocalScaler(spec=self._spec, value_fmt=self._value_fmt,
                                                          out_fmt=self._out_fmt, lanes=1)
        m.d.comb += [unit.value[0].eq(self.value), unit.den.eq(self.den), unit.valid_in.eq(self.valid_in),
                     unit.en.eq(self.en), self.result.eq(unit.result[0]), self.overflow.eq(unit.overflow[0]),
                     self.div_by_zero.eq(unit.div_by_zero), self.valid_out.eq(unit.valid_out)]
        return m


# ---- registry entries (stand-alone generation, synthesis and cocotb of the shared units) --------
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
            out_fmt=QFormat(p["out_width"], p["out_frac"], rounding=Rounding(p["rounding"]))),
        cocotb_module="sim.tb_arith",
    ),
]
