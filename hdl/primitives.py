"""Platform-aware primitives (issue 13, item 1): vendor-neutral RTL by default, FPGA hard blocks
when the block is elaborated for a known FPGA family.

The choice is made in Amaranth's ``elaborate(platform)``: a block passes the ``platform`` its own
``elaborate`` received on to the primitive (a :class:`RegisteredMultiplier` submodule, or
:func:`registered_multiply` for logic added inline to a block's module).

- ``platform`` is ``None`` (``attn-rtl generate``, the Amaranth simulator, cocotb on the generated
  Verilog): plain RTL, exactly the registers and latency the blocks had before this module existed.
- ``platform.family == "ecp5"``: Lattice ECP5 hard blocks. The family is read from the platform's
  ``family`` attribute, so both an Amaranth ``LatticePlatform`` (``attn-rtl synth --board``, which
  builds through ``amaranth_boards.ulx3s``) and the marker :data:`ECP5_TARGET` (what
  :mod:`synth.flow` passes for ``attn-rtl synth --target ecp5``) select it. Any other platform (or
  family) gets the vendor-neutral RTL.

Latency is identical on every path (``LATENCY`` of each primitive).

Memory reads with an extra output register (the DP16KD ``REGMODE = "OUTREG"``) are *not* provided
yet; see :data:`REGISTERED_READ_NOTE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FPGATarget", "ECP5_TARGET", "platform_family", "is_ecp5", "registered_multiply",
           "RegisteredMultiplier", "MULT18X18D_WIDTH", "REGISTERED_READ_NOTE"]


@dataclass(frozen=True)
class FPGATarget:
    """A minimal platform-like marker: what a primitive needs to know about the target device.

    Passed as ``platform`` to ``elaborate`` (``amaranth.back.verilog.convert(..., platform=...)``)
    when Verilog is written for vendor synthesis without a full Amaranth build platform. It has no
    ``get_memory`` / ``get_ff_sync`` / ``get_io_buffer`` methods, so Amaranth's library components
    elaborate exactly as with ``platform=None``.
    """

    #: FPGA family, spelled like ``amaranth.vendor.LatticePlatform.family`` ("ecp5", "machxo2", ...)
    family: str
    #: device name, documentation only (e.g. "LFE5U-85F")
    device: str = ""


#: what ``attn-rtl synth --target ecp5`` elaborates the blocks for (LFE5U-85F, see synth.flow)
ECP5_TARGET = FPGATarget(family="ecp5", device="LFE5U-85F")

#: operand width of one ECP5 MULT18X18D
MULT18X18D_WIDTH = 18

REGISTERED_READ_NOTE = (
    "RegisteredRead (a block-RAM read whose data the RTL registers once more, mapped onto the DP16KD "
    "output register REGMODE_A/B='OUTREG') is left for later: yosys 0.70's ECP5 memory mapping "
    "(share/lattice/brams_map_16kd.v) hard-codes REGMODE_A/B='NOREG' and has no option to absorb the "
    "following register, so the RTL path cannot reach it through memory inference; a hand-instantiated "
    "DP16KD would replace amaranth.lib.memory inside blocks that are not this module's (cim, cag, latte, "
    "pag: other engineers' files), and yosys ships no simulation model for DP16KD (it is a blackbox in "
    "share/ecp5/cells_sim.v), so the post-synthesis simulation could not prove it equivalent.")


def platform_family(platform: Any) -> str | None:
    """The FPGA family of ``platform`` (its ``family`` attribute), or None."""
    family = getattr(platform, "family", None)
    return family.lower() if isinstance(family, str) else None


def is_ecp5(platform: Any) -> bool:
    return platform_family(platform) == "ecp5"


def _operand(value: Value, what: str) -> Value:
    value = Value.cast(value)
    if len(value) < 1:
        raise ValueError(f"registered multiply: operand {what} has no bits")
    return value


def registered_multiply(m: Module, a: Value, b: Value, *, platform: Any = None, width: int | None = None,
                        tag: Value | None = None, name: str = "", domain: str = "sync",
                        en: Value | None = None) -> tuple[Value, Value]:
    """Add a registered multiplier ``(a * b)[:width]`` to ``m``; returns ``(product, tag_out)``.

    Latency :attr:`RegisteredMultiplier.LATENCY` (2): operands sampled at clock edge k give the
    product after edge k+2. ``tag`` (optional) is carried along with the operands and comes out with
    the product (e.g. the operation a product belongs to). ``product`` is signed iff ``a`` or ``b``
    is; ``width`` defaults to ``len(a) + len(b)`` (a narrower width truncates, as ``[:width]``).
    ``en`` (optional, 1 bit): clock enable of both stages (operands, product and tag hold while it
    is low), so the multiplier can sit inside a stalled pipeline; on ECP5 it drives CE0, so the
    DSP's own registers hold and no fabric register is needed around them.

    Generic RTL (``platform`` not ECP5): register ``{name}mul_in`` = (a, b, tag), then register
    ``{name}prod`` = (product, tag); the same two registers the PE always had. ECP5: one
    ``MULT18X18D`` with its A/B input registers and its output register clocked by ``domain``
    (CLK0, CE0 = ``en`` or 1, RST0 = the domain's synchronous reset or 0 for a reset-less domain, RESETMODE
    SYNC), pipeline register bypassed, signedness on the SIGNEDA/SIGNEDB pins; only ``tag`` uses
    fabric registers. Operands wider than 18 bits are refused (ValueError at elaboration).

    Input + output rather than input + pipeline registers: nextpnr-ecp5 times the pipeline
    register's clock-to-out into fabric far slower (``attn-rtl synth pe --target ecp5``: 106.6 MHz
    with input + pipeline, 150.8 MHz with input + output, critical path then in the fabric adder).
    """
    a, b = _operand(a, "a"), _operand(b, "b")
    aw, bw = len(a), len(b)
    a_signed, b_signed = a.shape().signed, b.shape().signed
    width = aw + bw if width is None else width
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= aw + bw:
        raise ValueError(f"registered multiply: width={width!r} out of range [1, {aw + bw}]")
    tag = Const(0, 0) if tag is None else Value.cast(tag)
    tw = len(tag)
    pshape = signed(width) if (a_signed or b_signed) else unsigned(width)

    ce = Const(1, 1) if en is None else Value.cast(en)
    if len(ce) != 1:
        raise ValueError(f"registered multiply: en must be 1 bit, not {len(ce)}")

    if not is_ecp5(platform):
        mi = Signal(aw + bw + tw, name=f"{name}mul_in")
        pp = Signal(width + tw, name=f"{name}prod")
        mul_a = mi[:aw].as_signed() if a_signed else mi[:aw]
        mul_b = mi[aw:aw + bw].as_signed() if b_signed else mi[aw:aw + bw]
        stages = [mi.eq(Cat(a, b, *(tag[k] for k in range(tw)))),
                  pp.eq(Cat((mul_a * mul_b)[:width], *(mi[aw + bw + k] for k in range(tw))))]
        if en is None:  # the Verilog the PE always had
            m.d[domain] += stages
        else:
            with m.If(ce):
                m.d[domain] += stages
        product = pp[:width].as_signed() if pshape.signed else pp[:width]
        return product, pp[width:]

    for what, w, sgn in (("a", aw, a_signed), ("b", bw, b_signed)):
        if w > MULT18X18D_WIDTH:
            m._MustUse__silence = True  # no 'never used' warning on top of the error
            raise ValueError(
                f"registered multiply{' ' + name.rstrip('_') if name else ''}: operand {what} is {w} bits "
                f"({'signed' if sgn else 'unsigned'}); an ECP5 MULT18X18D takes at most {MULT18X18D_WIDTH}. "
                f"Narrow the operand, or elaborate without an ECP5 platform (vendor-neutral RTL)")
    # Operands extended to the DSP's 18 bits (sign- or zero-extension by Amaranth's assignment).
    a18 = Signal(signed(MULT18X18D_WIDTH) if a_signed else unsigned(MULT18X18D_WIDTH), name=f"{name}mul_a")
    b18 = Signal(signed(MULT18X18D_WIDTH) if b_signed else unsigned(MULT18X18D_WIDTH), name=f"{name}mul_b")
    p36 = Signal(2 * MULT18X18D_WIDTH, name=f"{name}mul_p")
    m.d.comb += [a18.eq(a), b18.eq(b)]
    ports: dict[str, Any] = {}
    for k in range(MULT18X18D_WIDTH):
        ports[f"i_A{k}"] = a18[k]
        ports[f"i_B{k}"] = b18[k]
        ports[f"i_C{k}"] = Const(0, 1)
    for k in range(2 * MULT18X18D_WIDTH):
        ports[f"o_P{k}"] = p36[k]
    regs = {"INPUTA": "CLK0", "INPUTB": "CLK0", "INPUTC": "NONE", "PIPELINE": "NONE", "OUTPUT": "CLK0"}
    params: dict[str, Any] = {}
    for reg, clk in regs.items():
        params[f"p_REG_{reg}_CLK"] = clk
        params[f"p_REG_{reg}_CE"] = "CE0"
        params[f"p_REG_{reg}_RST"] = "RST0"
    m.submodules[f"{name}mult18x18d"] = Instance(
        "MULT18X18D",
        **params,
        p_RESETMODE="SYNC",
        p_GSR="DISABLED",
        p_MULT_BYPASS="DISABLED",
        p_CAS_MATCH_REG="FALSE",
        p_SOURCEB_MODE="B_SHIFT",
        i_SIGNEDA=Const(int(a_signed), 1),
        i_SIGNEDB=Const(int(b_signed), 1),
        i_SOURCEA=Const(0, 1),
        i_SOURCEB=Const(0, 1),
        i_CLK0=ClockSignal(domain),
        i_CE0=ce,
        i_RST0=ResetSignal(domain, allow_reset_less=True),  # 0 for a reset-less domain (as its FFs)
        **ports,
    )
    if tw:
        t1 = Signal(tw, name=f"{name}mul_in")
        t2 = Signal(tw, name=f"{name}prod")
        if en is None:
            m.d[domain] += [t1.eq(tag), t2.eq(t1)]
        else:
            with m.If(ce):
                m.d[domain] += [t1.eq(tag), t2.eq(t1)]
        tag_out: Value = t2
    else:
        tag_out = Const(0, 0)
    product = p36[:width].as_signed() if pshape.signed else p36[:width]
    return product, tag_out


class RegisteredMultiplier(wiring.Component):
    """``p = (a * b)[:width]``, ``LATENCY`` cycles after ``a``/``b``; see :func:`registered_multiply`.

    ``a_shape``/``b_shape``: operand shapes (signed or not); ``width``: product bits (default the
    full ``len(a) + len(b)``; signed iff an operand is). ECP5: one MULT18X18D (operands <= 18 bits).
    """

    #: clock edges from operands to product, on every platform
    LATENCY = 2

    def __init__(self, a_shape: Any, b_shape: Any, *, width: int | None = None, domain: str = "sync") -> None:
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        full = a_shape.width + b_shape.width
        width = full if width is None else width
        if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= full:
            self._MustUse__silence = True
            raise ValueError(f"RegisteredMultiplier width={width!r} out of range [1, {full}]")
        self._width, self._domain = width, domain
        p_shape = signed(width) if (a_shape.signed or b_shape.signed) else unsigned(width)
        super().__init__({"a": In(a_shape), "b": In(b_shape), "p": Out(p_shape)})

    width = property(lambda self: self._width)

    def elaborate(self, platform):
        m = Module()
        product, _ = registered_multiply(m, self.a, self.b, platform=platform, width=self._width,
                                         domain=self._domain)
        m.d.comb += self.p.eq(product)
        return m
