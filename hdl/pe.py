"""Processing element of the CTA systolic array (DESIGN §4, seed 001 §IV-B(1), Fig. 8).

One PE: a value register, a result register, port registers (left operand ``x``, bottom operand
``y``, partial sum ``s``), one multiplier (output registered for timing) and one adder, plus one
register of the separate result shift chain.

Each beat carries an operation with its left operand (``op_in``: ``op``, ``col``, ``first``):

* ``LOAD``: if ``col`` is this PE's column, the value register takes ``x`` (load from the memory
  side, Fig. 10 (b)); the beat passes on unchanged.
* ``DF1`` (dataflow 1, LSH / linear / score): ``s_out = sat(s_in + value·x)``; ``x`` moves right,
  the partial sum moves up.
* ``DF2`` (dataflow 2, output stationary): ``acc = sat((first ? 0 : acc) + y·x)``; ``x`` moves right,
  ``y`` (AP) moves up.
* ``NOP``: a bubble.

Query shortcut: when the column's shortcut bus carries this PE's row (``sc_valid`` and
``sc_row == row``), the value register takes ``sc_value``, and a DF1 beat multiplying in that same
cycle already uses it (bypass). Result chain: ``copy`` loads the chain register with the result
register (and its saturation flag); otherwise the chain register takes ``chain_in`` from the PE below.

Formats: operands are raw two's-complement integers; the binary point of a product is the sum of
the operands' and is handled by the PPE. ``x`` is ``x_width`` bits (13: tokens Q6.7, weights,
K̄/V̄ Q6.6; also the value register), ``y`` is ``y_width`` bits (17: unsigned 16-bit AP), the adder and
the accumulator/partial sums ``acc_width`` bits, saturating, with a sticky-per-result flag.

Timing (cycle c = the cycle ``x_in``/``op_in``/``y_in`` hold a beat): ``x_out``/``op_out``/``y_out``
hold it at c+1 (``PORT_LATENCY``); the product is registered at c+2; ``s_out``/``acc`` hold the sum
at c+3 (``SUM_LATENCY``), the PE below must present ``s_in`` at c+2.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, SystolicConfig

from .fixed import saturate
from .registry import BlockSpec, Param, ParamError

__all__ = ["PE", "op_layout"]


def _bits(n: int) -> int:
    """Bits of an unsigned index in [0, n)."""
    return max(1, (n - 1).bit_length())


def op_layout(cols: int) -> data.StructLayout:
    """Per-PE operation travelling with the left operand."""
    return data.StructLayout({"op": unsigned(2), "col": unsigned(_bits(cols)), "first": unsigned(1)})


class PE(wiring.Component):
    """A PE at (``col``, ``row``) of a ``cols`` x ``rows`` array; see the module docstring."""

    PORT_LATENCY = 1
    SUM_LATENCY = 3

    def __init__(self, *, x_width: int, y_width: int, acc_width: int, row: int = 0, col: int = 0,
                 rows: int = 1, cols: int = 1) -> None:
        self._MustUse__silence = True  # no 'never used' warning when a parameter is rejected
        for name, value, lo, hi in (("x_width", x_width, 2, 27), ("y_width", y_width, 2, 27),
                                    ("acc_width", acc_width, 4, 60), ("rows", rows, 1, 1024),
                                    ("cols", cols, 1, 1024)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"PE {name} must be an int, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"PE {name}={value} out of range [{lo}, {hi}]")
        if acc_width < x_width + y_width:
            raise ValueError(f"PE acc_width={acc_width} out of range: expected >= x_width + y_width")
        if not 0 <= row < rows:
            raise ValueError(f"PE row={row} out of range [0, {rows - 1}]")
        if not 0 <= col < cols:
            raise ValueError(f"PE col={col} out of range [0, {cols - 1}]")
        self._x_width, self._y_width, self._acc_width = x_width, y_width, acc_width
        self._row, self._col, self._rows, self._cols = row, col, rows, cols
        ol = op_layout(cols)
        super().__init__({
            "x_in": In(signed(x_width)), "op_in": In(ol), "y_in": In(signed(y_width)),
            "s_in": In(signed(acc_width)), "s_sat_in": In(1),
            "chain_in": In(signed(acc_width)), "chain_sat_in": In(1), "copy": In(1),
            "sc_valid": In(1), "sc_row": In(unsigned(_bits(rows))), "sc_value": In(signed(x_width)),
            "x_out": Out(signed(x_width)), "op_out": Out(ol), "y_out": Out(signed(y_width)),
            "s_out": Out(signed(acc_width)), "s_sat_out": Out(1),
            "chain_out": Out(signed(acc_width)), "chain_sat_out": Out(1),
            "value": Out(signed(x_width)), "acc": Out(signed(acc_width)), "acc_sat": Out(1),
        })
        self._MustUse__silence = False

    x_width = property(lambda self: self._x_width)
    y_width = property(lambda self: self._y_width)
    acc_width = property(lambda self: self._acc_width)
    row = property(lambda self: self._row)
    col = property(lambda self: self._col)

    @property
    def acc_fmt(self) -> QFormat:
        return QFormat(self._acc_width, 0)

    @property
    def latency(self) -> dict[str, int]:
        return {"port": self.PORT_LATENCY, "sum": self.SUM_LATENCY}

    def elaborate(self, platform):
        m = Module()
        acc_fmt = self.acc_fmt

        # Port registers (x_out/op_out/y_out are the registers themselves).
        m.d.sync += [self.x_out.eq(self.x_in), self.op_out.eq(self.op_in), self.y_out.eq(self.y_in)]
        x, op, y = self.x_out, self.op_out, self.y_out

        # Value register: memory-side load, query shortcut (with bypass into this cycle's multiply).
        hit = Signal()
        m.d.comb += hit.eq(self.sc_valid & (self.sc_row == self._row))
        with m.If((op.op == OP_LOAD) & (op.col == self._col)):
            m.d.sync += self.value.eq(x)
        with m.Elif(hit):
            m.d.sync += self.value.eq(self.sc_value)
        value = Mux(hit, self.sc_value, self.value)

        # Multiplier, output registered (with the operation it belongs to).
        prod = Signal(signed(self._x_width + self._y_width))
        op_p = Signal(op_layout(self._cols))
        m.d.sync += [prod.eq(x * Mux(op.op == OP_DF2, y, value)), op_p.eq(op)]

        # One adder: partial sum from below (DF1) or the result register (DF2).
        df1 = op_p.op == OP_DF1
        df2 = op_p.op == OP_DF2
        raw = Signal(signed(self._acc_width + 1))
        m.d.comb += raw.eq(Mux(df2, Mux(op_p.first, 0, self.acc), self.s_in) + prod)
        total, over = Signal(signed(self._acc_width)), Signal()
        sat_value, sat_over = saturate(raw, acc_fmt)
        m.d.comb += [total.eq(sat_value), over.eq(sat_over)]
        m.d.sync += [
            self.s_out.eq(Mux(df1, total, self.s_in)),
            self.s_sat_out.eq(self.s_sat_in | (df1 & over)),
        ]
        with m.If(df2):
            m.d.sync += [self.acc.eq(total), self.acc_sat.eq((self.acc_sat & ~op_p.first) | over)]

        # Separate result shift chain.
        m.d.sync += [
            self.chain_out.eq(Mux(self.copy, self.acc, self.chain_in)),
            self.chain_sat_out.eq(Mux(self.copy, self.acc_sat, self.chain_sat_in)),
        ]
        return m


def _build(**p) -> PE:
    cfg = SystolicConfig(b=p["b"], d=p["d"], acc_width=p["acc_width"])
    return PE(x_width=p["x_width"] or cfg.x_width, y_width=p["y_width"] or cfg.y_width, acc_width=p["acc_width"],
              row=0, col=0, rows=p["d"], cols=p["b"])


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
            Param("b", 8, "array width (columns), sizes the LOAD column index", min=1, max=64),
            Param("d", 64, "array height (rows), sizes the shortcut row index", min=2, max=256),
            Param("x_width", 0, "left operand / value register width (0: from the default formats, 13)", min=0, max=27),
            Param("y_width", 0, "bottom operand width (0: from the default formats, 17)", min=0, max=27),
            Param("acc_width", 36, "accumulator / partial-sum width (saturating)", min=4, max=60),
        ),
        build=_build,
        cocotb_module=None,
        validate=_validate,
        fpga_params={"b": 8, "d": 16},
    ),
]
