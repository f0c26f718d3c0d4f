"""Processing element of the CTA systolic array (DESIGN §4, seed 001 §IV-B(1), Fig. 8).

One PE: a value register, a result register, port registers (left operand ``x``, bottom operand
``y``, partial sum ``s``), one multiplier (inputs and output registered for timing;
:mod:`hdl.primitives`: plain RTL by default, a MULT18X18D with its input and output registers
when elaborated for ECP5, same latency) and one adder, plus one
register of the separate result shift chain.

Each beat carries an operation with its left operand (``op_in``: one-hot ``load``/``df1``/``df2``,
``first``, one-hot LOAD column ``col``):

* ``LOAD``: if ``col`` is this PE's column, the value register takes ``x`` (load from the memory
  side, Fig. 10 (b)); the beat passes on unchanged.
* ``DF1`` (dataflow 1, LSH / linear / score): ``s_out = sat(s_in + value·x)``; ``x`` moves right,
  the partial sum moves up.
* ``DF2`` (dataflow 2, output stationary): ``acc = sat((first ? 0 : acc) + y·x)``; ``x`` moves right,
  ``y`` (AP) moves up.
* ``NOP``: a bubble.

Query shortcut: when the column's shortcut bus carries this PE's row (``sc_hit``, the PE's bit of
the PPE's one-hot row select), the value register takes ``sc_value``, and a DF1 beat multiplying in that same
cycle already uses it (bypass). Result chain: ``copy`` loads the chain register with the result
register (and its saturation flag); otherwise the chain register takes ``chain_in`` from the PE below.

Formats: operands are raw two's-complement integers; the binary point of a product is the sum of
the operands' and is handled by the PPE. ``x`` is ``x_width`` bits (default 13: tokens
``QFormat(13, 7)`` = the paper's Q6.7, weights ``QFormat(12, 10)``, K̄/V̄ and centroids
``QFormat(12, 6)``, directions ``QFormat(12, 9)``; also the value register), ``y`` is ``y_width``
bits (default 17: the unsigned 16-bit AP, or a 12-bit LSH bias in value loads), the adder and the
accumulator/partial sums ``acc_width`` bits (default 36), saturating, with a per-result flag.

Timing (cycle c = the cycle ``x_in``/``op_in``/``y_in`` hold a beat): ``x_out``/``op_out``/``y_out``
hold it at c+1 (``PORT_LATENCY``); the multiplier operands are registered at c+2 (the shortcut bypass
is decided at c+1), the product at c+3; ``s_out``/``acc`` hold the sum at c+4 (``SUM_LATENCY``), the
PE below must present ``s_in`` at c+3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.systolic import SystolicConfig

from .checked import CheckedComponent
from .primitives import RegisteredMultiplier, registered_multiply
from .registry import BlockSpec, Param, ParamError

__all__ = ["PE", "op_layout", "pe_logic", "PERegisters"]




def op_layout(cols: int) -> data.StructLayout:
    """Per-PE operation travelling with the left operand, decoded once at the left edge (one-hot
    flags and a one-hot LOAD column: no comparators in the PEs)."""
    return data.StructLayout({"load": unsigned(1), "df1": unsigned(1), "df2": unsigned(1), "first": unsigned(1),
                              "col": unsigned(cols)})


class PE(CheckedComponent):
    """A PE of column ``col`` of a ``cols``-wide array; see the module docstring."""

    PORT_LATENCY = 1
    #: port register, registered multiply (operand and product registers), adder register
    SUM_LATENCY = PORT_LATENCY + RegisteredMultiplier.LATENCY + 1

    def __init__(self, *, x_width: int, y_width: int, acc_width: int, col: int = 0, cols: int = 1) -> None:
        self._x_width, self._y_width, self._acc_width = x_width, y_width, acc_width
        self._col, self._cols = col, cols
        ol = op_layout(cols)
        super().__init__({
            "x_in": In(signed(x_width)), "op_in": In(ol), "y_in": In(signed(y_width)),
            "s_in": In(signed(acc_width)), "s_sat_in": In(1),
            "chain_in": In(signed(acc_width)), "chain_sat_in": In(1), "copy": In(1),
            "sc_hit": In(1), "sc_value": In(signed(x_width)),
            "x_out": Out(signed(x_width)), "op_out": Out(ol), "y_out": Out(signed(y_width)),
            "s_out": Out(signed(acc_width)), "s_sat_out": Out(1),
            "chain_out": Out(signed(acc_width)), "chain_sat_out": Out(1),
            "value": Out(signed(x_width)), "acc": Out(signed(acc_width)), "acc_sat": Out(1),
        })

    @classmethod
    def check_params(cls, *, x_width: int, y_width: int, acc_width: int, col: int, cols: int) -> None:
        for name, value, lo, hi in (("x_width", x_width, 2, 27), ("y_width", y_width, 2, 27),
                                    ("acc_width", acc_width, 4, 60), ("cols", cols, 1, 64)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"PE {name} must be an int, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"PE {name}={value} out of range [{lo}, {hi}]")
        if acc_width < x_width + y_width:
            raise ValueError(f"PE acc_width={acc_width} out of range: expected >= x_width + y_width")
        if not 0 <= col < cols:
            raise ValueError(f"PE col={col} out of range [0, {cols - 1}]")

    x_width = property(lambda self: self._x_width)
    y_width = property(lambda self: self._y_width)
    acc_width = property(lambda self: self._acc_width)
    col = property(lambda self: self._col)

    @property
    def acc_fmt(self) -> QFormat:
        return QFormat(self._acc_width, 0)

    @property
    def latency(self) -> dict[str, int]:
        return {"port": self.PORT_LATENCY, "sum": self.SUM_LATENCY}

    def elaborate(self, platform):
        m = Module()
        regs = pe_logic(
            m, x_in=self.x_in, op_in=self.op_in.as_value(), y_in=self.y_in, s_in=self.s_in, s_sat_in=self.s_sat_in,
            chain_in=self.chain_in, chain_sat_in=self.chain_sat_in, copy=self.copy, sc_hit=self.sc_hit,
            sc_value=self.sc_value, col=self._col, x_width=self._x_width,
            y_width=self._y_width, acc_width=self._acc_width, cols=self._cols, platform=platform)
        m.d.comb += [
            self.x_out.eq(regs.x_out), self.op_out.eq(regs.op_out), self.y_out.eq(regs.y_out),
            self.s_out.eq(regs.s_out), self.s_sat_out.eq(regs.s_sat_out), self.chain_out.eq(regs.chain_out),
            self.chain_sat_out.eq(regs.chain_sat_out), self.value.eq(regs.value), self.acc.eq(regs.acc),
            self.acc_sat.eq(regs.acc_sat),
        ]
        return m


@dataclass
class PERegisters:
    """The registers of one PE (outputs as slices of a few wide registers)."""

    x_out: Value
    op_out: Value
    y_out: Value
    s_out: Value
    s_sat_out: Value
    chain_out: Value
    chain_sat_out: Value
    value: Value
    acc: Value
    acc_sat: Value


def pe_logic(m: Module, *, x_in: Value, op_in: Value, y_in: Value, s_in: Value, s_sat_in: Value, chain_in: Value,
             chain_sat_in: Value, copy: Value, sc_hit: Value, sc_value: Value, col: int,
             x_width: int, y_width: int, acc_width: int, cols: int, name: str = "",
             platform: Any = None) -> PERegisters:
    """Add one PE's logic to ``m`` (used by :class:`PE` and, flattened, by the systolic array: a
    flat netlist with few named signals keeps Verilator's ``--public-flat-rw`` build of the cocotb
    flow small). Registers are packed (operand + operation, value + flag) so that a PE has 8.
    ``platform``: the platform ``elaborate`` received; selects the multiplier's implementation
    (:func:`hdl.primitives.registered_multiply`: plain RTL for None, a MULT18X18D for ECP5)."""
    ob = op_layout(cols).size
    pw = x_width + y_width
    xo = Signal(x_width + ob, name=f"{name}xo")        # port register: left operand + operation
    yr = Signal(signed(y_width), name=f"{name}y")       # port register: bottom operand
    value = Signal(signed(x_width), name=f"{name}value")
    bw = max(x_width, y_width)
    s = Signal(acc_width + 1, name=f"{name}s")          # partial sum + saturation flag
    acc = Signal(acc_width + 1, name=f"{name}acc")      # result register + saturation flag
    chain = Signal(acc_width + 1, name=f"{name}chain")  # result shift chain + flag

    m.d.sync += [xo.eq(Cat(x_in, op_in)), yr.eq(y_in)]
    x = xo[:x_width].as_signed()
    op_load, op_df1, op_df2, op_first = (xo[x_width + k] for k in range(4))
    op_col = xo[x_width + 4 + col]

    # Value register: memory-side load, query shortcut (with bypass into this cycle's multiply).
    hit = sc_hit
    with m.If(op_load & op_col):
        m.d.sync += value.eq(x)
    with m.Elif(hit):
        m.d.sync += value.eq(sc_value)

    # Multiplier, inputs and output registered (with the operation they belong to): the operand
    # select (and the shortcut bypass) is decided a cycle before the register-to-register multiply.
    # hdl.primitives: these two registers in plain RTL, or one MULT18X18D (input + output
    # registers) when elaborated for ECP5; RegisteredMultiplier.LATENCY cycles either way.
    operand = Signal(signed(bw), name=f"{name}operand")
    m.d.comb += operand.eq(Mux(op_df2, yr, Mux(hit, sc_value, value)))
    prod, p_op = registered_multiply(m, x, operand, platform=platform, width=pw, tag=Cat(op_df1, op_df2, op_first),
                                     name=name)
    df1, df2, p_first = p_op[0], p_op[1], p_op[2]

    # One adder, saturating: partial sum from below (DF1) or the result register (DF2). The sum of
    # an acc_width-bit and a narrower value has acc_width+1 bits: it overflowed iff its two top
    # bits differ (same result as hdl.fixed.saturate, fewer cells).
    acc_v = acc[:acc_width].as_signed()
    raw = Signal(signed(acc_width + 1), name=f"{name}sum")
    m.d.comb += raw.eq(Mux(df2, Mux(p_first, 0, acc_v), s_in) + prod)
    over = raw[acc_width] ^ raw[acc_width - 1]
    limit = Mux(raw[acc_width], Const(1 << (acc_width - 1), acc_width), Const((1 << (acc_width - 1)) - 1, acc_width))
    total = Signal(acc_width + 1, name=f"{name}total")  # saturated sum + overflow bit
    m.d.comb += total.eq(Cat(Mux(over, limit, raw[:acc_width]), over))
    m.d.sync += s.eq(Mux(df1, Cat(total[:acc_width], s_sat_in | total[acc_width]), Cat(s_in, s_sat_in)))
    with m.If(df2):
        m.d.sync += acc.eq(Cat(total[:acc_width], (acc[acc_width] & ~p_first) | total[acc_width]))

    # Separate result shift chain.
    m.d.sync += chain.eq(Mux(copy, acc, Cat(chain_in, chain_sat_in)))
    return PERegisters(
        x_out=x, op_out=xo[x_width:], y_out=yr, s_out=s[:acc_width].as_signed(), s_sat_out=s[acc_width],
        chain_out=chain[:acc_width].as_signed(), chain_sat_out=chain[acc_width], value=value, acc=acc_v,
        acc_sat=acc[acc_width])


def _build(**p) -> PE:
    cfg = SystolicConfig(b=p["b"], acc_width=p["acc_width"])
    return PE(x_width=p["x_width"] or cfg.x_width, y_width=p["y_width"] or cfg.y_width, acc_width=p["acc_width"],
              col=0, cols=p["b"])


def _validate(p: dict) -> None:
    x = p["x_width"] or SystolicConfig().x_width
    y = p["y_width"] or SystolicConfig().y_width
    if p["acc_width"] < x + y:
        raise ParamError(f"parameter acc_width={p['acc_width']} out of range: expected >= x_width + y_width = {x + y}")


BLOCKS = [
    BlockSpec(
        name="pe",
        description="CTA systolic-array PE: value/result/port registers, 1 multiplier (registered), 1 adder",
        params=(
            Param("b", 8, "array width (columns), sizes the one-hot LOAD column", min=1, max=64),
            Param("x_width", 0, "left operand / value register width (0: from the default formats, 13)", min=0, max=27),
            Param("y_width", 0, "bottom operand width (0: from the default formats, 17)", min=0, max=27),
            Param("acc_width", 36, "accumulator / partial-sum width (saturating)", min=4, max=60),
        ),
        build=_build,
        cocotb_module=None,
        validate=_validate,
        fpga_params={"b": 8},
    ),
]
