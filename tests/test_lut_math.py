# amaranth: UnusedElaboratable=no
"""The exp and reciprocal ROMs and units checked against ``math``, independently of ``golden.lut``.

``hdl.arith`` fills its ROMs from ``golden.lut`` and the other tests compare the RTL with the same
specs, so a wrong table would be wrong on both sides. Here every ROM entry of every ExpUnit and
ReciprocalLookup elaborated in every block's default and FPGA configuration (``hdl.registry``) is
read back from the elaborated Memory and compared with a value computed from the documented format
(DESIGN §2; ``golden/lut.py`` module docstring) with ``math`` and exact integer arithmetic:

* exp table entry F (``lut_bits`` index bits, ``lut_frac`` fraction bits): ``2**(F / 2**lut_bits)``
  rounded to the nearest multiple of ``2**-lut_frac`` (half up);
* reciprocal table entry m: ``2**(mant_bits + lut_bits) / (2**lut_bits + m)`` rounded half up.

Then the whole functions (the RTL units and the golden specs) are compared with ``math.exp`` and
real division over the full input range (exp: every input; reciprocal: every leading-one position
times every table index, with the truncated bits all zero and all one) within the error bound that
follows from the format (``exp_bounds`` / ``recip_bounds`` below: table index truncation, constant
and table rounding, output rounding; saturation only where the exact value is out of range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden.fixed import QFormat, Rounding
from golden.lut import ExpSpec, RecipSpec
from hdl.arith import ExpUnit, ReciprocalLookup, ReciprocalScaler
from hdl.registry import blocks

# ---- independent tables -----------------------------------------------------------------------


def exp_entry(f: int, lut_bits: int, lut_frac: int) -> int:
    """``2**(f/2**lut_bits)`` with ``lut_frac`` fraction bits, rounded half up, from ``math.exp``;
    the rounding is then confirmed with exact integers: e = floor(x + 1/2) iff
    (2e - 1)**N <= 2**(f + (lut_frac + 1)·N) < (2e + 1)**N with N = 2**lut_bits."""
    n = 1 << lut_bits
    x = math.ldexp(math.exp(f / n * math.log(2.0)), lut_frac)
    e = math.floor(x + 0.5)
    power = 1 << (f + (lut_frac + 1) * n)
    if not (2 * e - 1) ** n <= power < (2 * e + 1) ** n:  # float too coarse near a tie: step once
        e += 1 if (2 * e + 1) ** n <= power else -1
        assert (2 * e - 1) ** n <= power < (2 * e + 1) ** n, (f, lut_bits, lut_frac)
    return e


def recip_entry(m: int, lut_bits: int, mant_bits: int) -> int:
    """``2**(mant_bits+lut_bits) / (2**lut_bits + m)`` rounded half up, by float division, confirmed
    exactly: e = floor(N/D + 1/2) iff (2e - 1)·D <= 2N < (2e + 1)·D."""
    num, den = 2.0 ** (mant_bits + lut_bits), (1 << lut_bits) + m
    e = math.floor(num / den + 0.5)
    assert (2 * e - 1) * den <= 2 * (1 << (mant_bits + lut_bits)) < (2 * e + 1) * den, (m, lut_bits, mant_bits)
    return e


@cache
def exp_table(lut_bits: int, lut_frac: int) -> tuple[int, ...]:
    return tuple(exp_entry(f, lut_bits, lut_frac) for f in range(1 << lut_bits))


@cache
def recip_table(lut_bits: int, mant_bits: int) -> tuple[int, ...]:
    return tuple(recip_entry(m, lut_bits, mant_bits) for m in range(1 << lut_bits))


def test_independent_tables_spot_values():
    # by hand: 2**(1/2) = 1.41421356..., times 2**4 = 22.627 -> 23; 2**(1/4)·16 = 19.027 -> 19
    assert exp_table(1, 4) == (16, 23)
    assert exp_table(2, 4) == (16, 19, 23, 27)   # 2**(3/4)·16 = 26.91
    # 2**(4+2) / (4 + m) = 16, 12.8, 10.67, 9.14 -> 16, 13, 11, 9
    assert recip_table(2, 4) == (16, 13, 11, 9)


# ---- the ROMs elaborated in every configuration ----------------------------------------------


@dataclass(frozen=True)
class Rom:
    block: str
    config: str
    path: str
    unit: ExpUnit | ReciprocalLookup
    depth: int
    width: int
    raw: tuple[int, ...]


def _walk(frag: Fragment, path: tuple[str, ...] = ()):
    yield frag, path
    for sub, name, _ in frag.subfragments:
        yield from _walk(sub, (*path, str(name)))


def _roms(block: str, config: str) -> list[Rom]:
    spec = blocks()[block]
    comp, _ = spec.elaborate({} if config == "default" else dict(spec.fpga_params))
    found = []
    for frag, path in _walk(Fragment.get(comp, None)):
        unit = next((o for o in frag.origins or () if isinstance(o, (ExpUnit, ReciprocalLookup))), None)
        if unit is None:
            continue
        roms = [sub for sub, name, _ in frag.subfragments if name == "rom"]
        assert len(roms) == 1, f"{block}/{config}/{'/'.join(path)}: expected one ROM, found {len(roms)}"
        rom = roms[0]
        if not hasattr(rom, "_data"):   # a RegisteredReadMemory (the reciprocal ROM): its memory
            (rom,) = [sub for sub, name, _ in rom.subfragments if name == "mem"]
        data = rom._data  # the MemoryData the RTLIL memory cell is emitted from
        width = data.shape.width
        raw = tuple(int(v) & ((1 << width) - 1) for v in data.init._raw)
        found.append(Rom(block, config, "/".join(path), unit, data.depth, width, raw))
    return found


#: blocks that contain the shared units (the others must contain none: a new user is noticed)
WITH_UNITS = {"exp_unit", "recip_unit", "cag", "cta", "eatt", "latte", "mca", "pag", "ppe", "systolic_array"}
CONFIGS = [(name, config) for name in sorted(blocks()) for config in ("default", "fpga")
           if config == "default" or blocks()[name].fpga_params]


@pytest.mark.parametrize("block,config", CONFIGS, ids=lambda v: str(v))
def test_every_rom_entry_matches_math(block, config):
    roms = _roms(block, config)
    assert bool(roms) == (block in WITH_UNITS), (block, config, len(roms))
    for rom in roms:
        where = f"{block}/{config}/{rom.path}"
        if isinstance(rom.unit, ExpUnit):
            spec = rom.unit.spec
            want = exp_table(spec.lut_bits, spec.lut_frac)
            assert spec in EXP_SPECS.values(), f"{where}: add its spec to EXP_SPECS: {spec}"
        else:
            spec = rom.unit._spec
            want = recip_table(spec.lut_bits, spec.mant_bits)
            formats = (spec, rom.unit._value_fmt, rom.unit._out_fmt)
            assert formats in RECIP_SPECS.values(), f"{where}: add its formats to RECIP_SPECS: {formats}"
        assert rom.depth == 1 << spec.lut_bits, where
        assert max(want) < 1 << rom.width, f"{where}: ROM width {rom.width} cannot hold {max(want)}"
        bad = [(i, got, w) for i, (got, w) in enumerate(zip(rom.raw, want, strict=True)) if got != w]
        assert not bad, f"{where}: {len(bad)} ROM entries differ from math (index, ROM, math): {bad[:4]}"


# ---- whole functions against math -------------------------------------------------------------


def _fmt_max(fmt: QFormat) -> int:
    return (1 << (fmt.width - (1 if fmt.signed else 0))) - 1


def _round_ulp(fmt: QFormat) -> float:
    """Largest output rounding error, in real units."""
    return math.ldexp(0.5 if Rounding(fmt.rounding) is Rounding.HALF_UP else 1.0, -fmt.frac)


def exp_bounds(x: float, spec: ExpSpec) -> tuple[float, float]:
    """(lowest, highest) unsaturated exp unit output for input x: the exponent is taken at
    y' = x·log2e' (log2e' the constant with ``log2e_frac`` bits), truncated to ``lut_bits`` fraction
    bits, so y_hw is in (y' - 2**-lut_bits, y'] with |y' - x·log2 e| <= |x|·|log2e' - log2 e|: the
    truncation only lowers the result. The table entry adds half an lsb of ``lut_frac`` (relative,
    entries >= 1), the output rounding half an lsb (a whole one truncating, downwards)."""
    log2e = 1.0 / math.log(2.0)
    const = math.floor(log2e * (1 << spec.log2e_frac) + 0.5) / (1 << spec.log2e_frac)
    c_err = abs(x) * abs(const - log2e)
    lut = 2.0 ** -(spec.lut_frac + 1)
    exact = math.exp(x)
    half_up = Rounding(spec.out_fmt.rounding) is Rounding.HALF_UP
    ulp = math.ldexp(1.0, -spec.out_fmt.frac)
    lo = exact * 2.0 ** -(2.0 ** -spec.lut_bits + c_err) * (1.0 - lut) - (ulp / 2 if half_up else ulp)
    hi = exact * 2.0 ** c_err * (1.0 + lut) + (ulp / 2 if half_up else 0.0)
    return lo - 1e-12, hi + 1e-12


def check_exp_function(spec: ExpSpec, xs_raw: list[int], ys: list[int], overs: list[int]) -> None:
    """Every (x, y, overflow) against math.exp within :func:`exp_bounds`; saturation exactly where
    the true value may exceed the output range."""
    out_max_raw = _fmt_max(spec.out_fmt)
    out_max = math.ldexp(out_max_raw, -spec.out_fmt.frac)
    saturated = 0
    for x_raw, y, over in zip(xs_raw, ys, overs, strict=True):
        x = math.ldexp(x_raw, -spec.in_fmt.frac)
        if x > 700:  # e**x beyond a double: saturated for any output format here
            assert over and y == out_max_raw, (x_raw, y, over)
            saturated += 1
            continue
        exact, (lo, hi) = math.exp(x), exp_bounds(x, spec)
        if over:
            assert y == out_max_raw and hi >= out_max, f"x={x}: saturated, e**x = {exact}"
            saturated += 1
        else:
            got = math.ldexp(y, -spec.out_fmt.frac)
            assert lo <= got <= hi, f"x={x}: exp unit {got}, math {exact}, allowed [{lo}, {hi}]"
            assert lo <= out_max, f"x={x}: e**x = {exact} must saturate"
    assert 0 < saturated < len(xs_raw) or spec.in_fmt.int_bits < 4


def recip_bounds(value: float, den: float, spec: RecipSpec, out_fmt: QFormat) -> tuple[float, float]:
    """(lowest, highest) unsaturated result for value / den: the reciprocal is the table's
    ``2**-p / (1 + m/2**lut_bits)`` with m the bits below the leading one truncated (so
    recip·den is in [1, 1 + 2**-lut_bits)) and the entry rounded to ``mant_bits`` (at most
    2**-mant_bits relative, entries >= 2**(mant_bits-1)), then the output rounding."""
    exact = value / den
    rel_lo, rel_hi = -(2.0 ** -spec.mant_bits), 2.0 ** -spec.lut_bits + 2.0 ** -spec.mant_bits
    a, b = exact * (1 + rel_lo), exact * (1 + rel_hi)
    half_up = Rounding(out_fmt.rounding) is Rounding.HALF_UP
    ulp = math.ldexp(1.0, -out_fmt.frac)
    lo, hi = min(a, b), max(a, b)
    return lo - (ulp / 2 if half_up else ulp) - 1e-12, hi + (ulp / 2 if half_up else 0.0) + 1e-12


def recip_denominators(spec: RecipSpec) -> list[int]:
    """0, and for every leading-one position p and every table index m the denominator with the bits
    below the index all 0 and all 1 (the extremes of the truncation); every denominator when the
    format is at most 12 bits."""
    width = spec.den_fmt.width
    if width <= 12:
        return list(range(1 << width))
    dens = {0}
    for p in range(width):
        for m in range(1 << spec.lut_bits):
            if p >= spec.lut_bits:
                low = p - spec.lut_bits
                base = (1 << p) | (m << low)
                dens.update((base, base | ((1 << low) - 1)))
            elif m % (1 << (spec.lut_bits - p)) == 0:  # only p bits below the leading one exist
                dens.add((1 << p) | (m >> (spec.lut_bits - p)))
    return sorted(dens)


def recip_values(value_fmt: QFormat) -> list[int]:
    lo, hi = -(1 << (value_fmt.width - 1)), (1 << (value_fmt.width - 1)) - 1
    one = 1 << value_fmt.frac
    return sorted(v for v in {lo, hi, -1, 1, one, -one, 3 * one + 1, hi // 3, lo // 7} if lo <= v <= hi)


def check_recip_function(spec: RecipSpec, value_fmt: QFormat, out_fmt: QFormat, cases: list[tuple[int, int]],
                         results: list[tuple[int, int, int]]) -> None:
    out_max_raw, out_min_raw = _fmt_max(out_fmt), -(1 << (out_fmt.width - 1))
    out_max, out_min = math.ldexp(out_max_raw, -out_fmt.frac), math.ldexp(out_min_raw, -out_fmt.frac)
    for (v_raw, d_raw), (res, over, zero) in zip(cases, results, strict=True):
        if d_raw == 0:
            assert zero and over and res == (out_min_raw if v_raw < 0 else out_max_raw), (v_raw, res)
            continue
        assert not zero
        value, den = math.ldexp(v_raw, -value_fmt.frac), math.ldexp(d_raw, -spec.den_fmt.frac)
        exact, (lo, hi) = value / den, recip_bounds(value, den, spec, out_fmt)
        if over:
            assert res in (out_max_raw, out_min_raw), (v_raw, d_raw, res)
            assert (hi >= out_max) if res == out_max_raw else (lo <= out_min), (v_raw, d_raw)
        else:
            got = math.ldexp(res, -out_fmt.frac)
            assert lo <= got <= hi, f"{v_raw}/{d_raw}: unit {got}, math {exact}, allowed [{lo}, {hi}]"
            assert out_min <= hi and lo <= out_max


#: the units' specs and formats in the configurations (listed, so that collecting the tests does not
#: elaborate every block; test_every_rom_entry_matches_math checks each elaborated unit is listed)
EXP_SPECS = {
    "exp_unit": ExpSpec(QFormat(16, 8), QFormat(16, 12, signed=False)),
    "softmax": ExpSpec(QFormat(16, 11), QFormat(16, 15, signed=False)),   # latte, eatt
    "pag": ExpSpec(QFormat(16, 8), QFormat(18, 14, signed=False)),
    "cta_pag": ExpSpec(QFormat(16, 8), QFormat(12, 10, signed=False)),
}
RECIP_SPECS = {
    "recip_unit": (RecipSpec(QFormat(24, 12, signed=False)), QFormat(24, 12), QFormat(16, 12)),
    "cag": (RecipSpec(QFormat(10, 0, signed=False), lut_bits=9), QFormat(23, 7), QFormat(12, 6)),
    "eatt_default": (RecipSpec(QFormat(19, 15, signed=False)), QFormat(35, 23), QFormat(16, 8)),
    "eatt_fpga": (RecipSpec(QFormat(23, 15, signed=False)), QFormat(39, 23), QFormat(16, 8)),
    "latte_default": (RecipSpec(QFormat(20, 15, signed=False)), QFormat(27, 15), QFormat(16, 8)),
    "latte_fpga": (RecipSpec(QFormat(23, 15, signed=False)), QFormat(30, 15), QFormat(16, 8)),
    "mca": (RecipSpec(QFormat(12, 0, signed=False)), QFormat(48, 19), QFormat(16, 8)),
    "ppe": (RecipSpec(QFormat(24, 11, signed=False)), QFormat(36, 16), QFormat(12, 6)),
    "cta_fpga_cag": (RecipSpec(QFormat(7, 0, signed=False), lut_bits=6), QFormat(20, 7), QFormat(12, 6)),
}


@pytest.mark.parametrize("name", EXP_SPECS)
def test_exp_spec_whole_range_against_math(name):
    spec = EXP_SPECS[name]
    xs = list(range(-(1 << (spec.in_fmt.width - 1)), 1 << (spec.in_fmt.width - 1)))
    ys, overs = spec(np.array(xs))
    check_exp_function(spec, xs, ys.tolist(), overs.astype(int).tolist())


@pytest.mark.parametrize("name", RECIP_SPECS)
def test_recip_spec_whole_range_against_math(name):
    spec, vfmt, ofmt = RECIP_SPECS[name]
    cases = [(v, d) for d in recip_denominators(spec) for v in recip_values(vfmt)]
    res, over, zero = spec.scale(np.array([c[0] for c in cases]), vfmt.frac, np.array([c[1] for c in cases]), ofmt)
    check_recip_function(spec, vfmt, ofmt, cases, list(zip(res.tolist(), over.tolist(), zero.tolist(), strict=True)))


def test_recip_spec_int64_product_overflow():
    """A numerator of more than 63 - mant_bits - 1 bits (MCA: 48) once wrapped in int64; the RTL
    saturates correctly, and so must golden."""
    spec, vfmt, ofmt = RECIP_SPECS["mca"]
    top = (1 << (vfmt.width - 1)) - 1
    res, over, _ = spec.scale(np.array([top]), vfmt.frac, np.array([1]), ofmt)
    assert over[0] and res[0] == _fmt_max(ofmt)  # v/1 far above the range: positive saturation


def _run_exp_unit(spec: ExpSpec, xs: list[int]) -> tuple[list[int], list[int]]:
    dut = ExpUnit(spec=spec)
    ys: list[int] = []
    overs: list[int] = []

    async def bench(ctx):
        for i in range(len(xs) + ExpUnit.LATENCY):
            ctx.set(dut.valid_in, i < len(xs))
            if i < len(xs):
                ctx.set(dut.x, xs[i])
            await ctx.tick()
            if ctx.get(dut.valid_out):
                ys.append(ctx.get(dut.y))
                overs.append(ctx.get(dut.overflow))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(ys) == len(xs)
    return ys, overs


def _run_recip_unit(spec: RecipSpec, vfmt: QFormat, ofmt: QFormat,
                    cases: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    dut = ReciprocalScaler(spec=spec, value_fmt=vfmt, out_fmt=ofmt)
    out: list[tuple[int, int, int]] = []

    async def bench(ctx):
        for i in range(len(cases) + ReciprocalScaler.LATENCY):
            ctx.set(dut.valid_in, i < len(cases))
            if i < len(cases):
                ctx.set(dut.value, cases[i][0])
                ctx.set(dut.den, cases[i][1])
            await ctx.tick()
            if ctx.get(dut.valid_out):
                out.append((ctx.get(dut.result), ctx.get(dut.overflow), ctx.get(dut.div_by_zero)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(out) == len(cases)
    return out


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "exp_unit" else pytest.mark.slow)
                                  for n in EXP_SPECS])
def test_exp_unit_rtl_every_input_against_math(name):
    """The RTL unit itself, every input (65536 cycles, ~10 s each; the first runs by default)."""
    spec = EXP_SPECS[name]
    xs = list(range(-(1 << (spec.in_fmt.width - 1)), 1 << (spec.in_fmt.width - 1)))
    ys, overs = _run_exp_unit(spec, xs)
    check_exp_function(spec, xs, ys, overs)


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "cag" else pytest.mark.slow)
                                  for n in RECIP_SPECS])
def test_recip_unit_rtl_against_math(name):
    """The RTL unit, every denominator of the sweep with one value each (values rotate)."""
    spec, vfmt, ofmt = RECIP_SPECS[name]
    dens = recip_denominators(spec)
    vals = recip_values(vfmt)
    cases = [(vals[i % len(vals)], d) for i, d in enumerate(dens)]
    check_recip_function(spec, vfmt, ofmt, cases, _run_recip_unit(spec, vfmt, ofmt, cases))
