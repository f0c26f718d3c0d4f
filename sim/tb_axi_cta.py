"""cocotb testbench of ``cta`` behind its AXI wrapper (``generate cta --bus axi``).

cocotbext-axi only: an AxiStreamSource sends the head's load beats (:func:`golden.cta_host.load_beats`)
on ``s_axis_load`` with random pauses, the AxiLiteMaster writes ``M``, ``N``, ``D_IN``, ``D_H`` and
pulses ``START``, an AxiStreamSink with random ``tready`` pauses receives the output rows as one
packet (``tlast`` = the row's ``last`` bit, row m-1), and the status registers are read back over
AXI4-Lite. Rows and status are compared ``==`` with the golden run by :meth:`sim.tb_cta.CtaTB.check`.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

from golden.cta_host import load_beats
from sim.runner import write_stats
from sim.streams import pack, unpack
from sim.tb_axi_common import AxiHarness, pause
from sim.tb_cta import CtaTB, _deadline, _shape_from_env, make_trace, random_head

STATUS = ("k0", "k1", "k2", "size_error", "capacity_error", "sa_overflow", "protocol_error", "busy")


class CtaAxiTB(AxiHarness):
    def __init__(self, dut, stall: float, seed: int) -> None:
        super().__init__(dut)
        self.shape = _shape_from_env()
        self.ref = CtaTB(dut, self.shape, stall=stall)  # layouts and the golden check (o is stalled)
        rng = random.Random(seed)
        self.src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_load"), dut.clk, dut.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_o"), dut.clk, dut.rst)
        if stall:
            self.src.set_pause_generator(pause(rng, stall))
            self.sink.set_pause_generator(pause(rng, stall))
        self.load_bytes = self.streams["load"]["tdata_bytes"]
        self.o_bytes = self.streams["o"]["tdata_bytes"]

    async def run_head(self, trace, m: int, n: int, d_in: int, d_h: int, expect_rows: bool) -> tuple[list, dict]:
        beats = load_beats(trace, self.shape) if trace is not None else []
        if beats:
            data = b"".join(pack(self.ref.load_layout, bt).to_bytes(self.load_bytes, "little") for bt in beats)
            await self.src.send(data)
            await with_timeout(self.src.wait(), 50 * len(beats) * 10 + 10_000, "ns")
        for name, value in (("M", m), ("N", n), ("D_IN", d_in), ("D_H", d_h)):
            await self.write(name, value)
        await self.write("START", 1)
        deadline = _deadline(self.shape, m, n, d_in)
        rows: list[list[int]] = []
        if expect_rows:
            frame = await with_timeout(self.sink.recv(), deadline * 10, "ns")
            raw_bytes = bytes(frame.tdata)
            assert len(raw_bytes) % self.o_bytes == 0
            for r in range(len(raw_bytes) // self.o_bytes):
                row = unpack(self.ref.o_layout, int.from_bytes(raw_bytes[r * self.o_bytes:(r + 1) * self.o_bytes],
                                                               "little"))
                rows.append(row["data"] + [row["last"]])  # as CtaTB.check compares them
        for _ in range(deadline // 20 + 100):  # AXI-Lite polls take >= 4 cycles each
            if await self.read("DONE") and not await self.read("BUSY"):
                break
        else:
            raise AssertionError("DONE not set before the deadline")
        assert self.sink.empty(), "output beats after the last row"
        status = {name: await self.read(name.upper()) for name in STATUS}
        from hdl.cta import STEPS

        status["cycles"] = dict(zip(STEPS, unpack(self.ref.cycles_layout, await self.read("CYCLES")), strict=True))
        return rows, status


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def heads_through_axi(dut):
    seed = int(os.environ.get("RANDOM_SEED", "1"))
    tb = CtaAxiTB(dut, stall=0.25, seed=seed)
    await tb.start()
    shape = tb.shape
    rng = np.random.default_rng(seed & 0xFFFFFFFF)
    d, n_max = shape.cfg.d, shape.n_max
    cases = [(min(n_max, 6), min(n_max, 7), 2 * d + 1), (min(n_max, 5), min(n_max, 8), d)]
    figures = []
    for k, (m, n, d_in) in enumerate(cases):
        d_in = min(d_in, shape.cfg.d_in_max)
        head = random_head(rng, m, n, d_in, shape.d_h, clusters=3)
        trace = make_trace(shape, head, seed=seed + k)
        expect = not trace.flags["cim_overflow"]
        rows, status = await tb.run_head(trace, m, n, d_in, shape.d_h, expect)
        tb.ref.check(trace, rows, status)
        figures.append({"m": m, "n": n, "d_in": d_in, "rows": len(rows), "cycles": status["cycles"]})
        if k == 0:  # a refused run (wrong d_h): SIZE_ERROR, no rows, the next head still passes
            bad = shape.d_h - 1 if shape.d_h > 1 else 2
            rows, status = await tb.run_head(None, m, n, d_in, bad, False)
            assert status["size_error"] == 1 and rows == []
    write_stats({"axi_heads": figures})


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def register_map(dut):
    tb = CtaAxiTB(dut, stall=0.0, seed=1)
    await tb.start()
    write_stats({"registers": await tb.check_register_map(random.Random(3))})
