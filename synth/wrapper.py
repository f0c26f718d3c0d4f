"""Pin-limited wrappers: put a block with wide ports behind a 4-pin serial register interface.

:class:`SerialWrapper` registers every input and output of the wrapped component:

- ``shift`` high: ``sin`` is shifted into the input shift register and the output shift register
  shifts one bit out on ``sout`` (LSB first);
- ``load`` high: the input shift register is copied into the input register that drives the
  block's inputs, and the block's outputs are captured into the output shift register.

All block ports are thus driven from / observed by flip-flops, so nothing is optimised away and
the block's internal paths are register-to-register, as in a real system. Used for iCE40 (whose
nextpnr has no out-of-context mode) and for the bitstream build on a board (:mod:`synth.board`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.checked import CheckedComponent

__all__ = ["SerialWrapper"]


class SerialWrapper(CheckedComponent):
    """Serial access to all ports of ``dut`` (see the module doc). ``in_bits``/``out_bits``: widths."""

    @classmethod
    def check_params(cls, *, dut: object) -> None:
        if not isinstance(dut, wiring.Component):
            raise TypeError(f"dut must be an amaranth.lib.wiring.Component, not {dut!r}")

    def __init__(self, dut: wiring.Component) -> None:
        self._dut = dut
        self._inputs = [Value.cast(v) for _, m, v in dut.signature.flatten(dut) if m.flow == In]
        self._outputs = [Value.cast(v) for _, m, v in dut.signature.flatten(dut) if m.flow == Out]
        super().__init__({"sin": In(1), "shift": In(1), "load": In(1), "sout": Out(1)})

    @property
    def dut(self) -> wiring.Component:
        return self._dut

    @property
    def in_bits(self) -> int:
        return sum(len(v) for v in self._inputs)

    @property
    def out_bits(self) -> int:
        return sum(len(v) for v in self._outputs)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._dut
        in_sr = Signal(max(self.in_bits, 1))
        in_reg = Signal(max(self.in_bits, 1))
        out_sr = Signal(max(self.out_bits, 1))
        with m.If(self.shift):
            m.d.sync += in_sr.eq(Cat(in_sr[1:], self.sin))
            m.d.sync += out_sr.eq(out_sr >> 1)
        with m.If(self.load):
            m.d.sync += in_reg.eq(in_sr)
            if self._outputs:
                m.d.sync += out_sr.eq(Cat(*self._outputs))
        m.d.comb += self.sout.eq(out_sr[0])
        offset = 0
        for value in self._inputs:
            m.d.comb += value.eq(in_reg[offset: offset + len(value)])
            offset += len(value)
        return m
