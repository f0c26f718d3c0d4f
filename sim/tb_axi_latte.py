"""cocotb testbench of ``latte`` behind its AXI wrapper (``generate latte --bus axi``).

cocotbext-axi drives everything: an AxiLiteMaster writes the head's registers (``N_KEYS``,
``N_QUERIES``, ``TAU``, ``SCALE_MANT``, ``SCALE_SHIFT``, ``O_LAST_BEATS`` = one packet per output
row) and reads the status (``KEPT_TOTAL``, ``KEPT_COUNT``, ``OVERFLOW``, ``IDLE``); AxiStreamSources
send K, V and Q (one frame per matrix, row-major int8 bytes) with random pauses, an AxiStreamSink
with random ``tready`` pauses receives one frame per output row. Every output element and kept
count is compared ``==`` with :func:`golden.latte.latte_fixed_raw`.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

from golden.latte import encode_score_scale, latte_fixed_raw
from hdl.latte import latte_formats, output_layout
from sim.runner import tb_params, write_stats
from sim.streams import unpack
from sim.tb_axi_common import AxiHarness, pause
from sim.tbutil import tb_np_rng, tb_rng

#: deadline for one output row (cycles of 10 ns): far above the block's per-row cycles at n_max = 64
ROW_DEADLINE_CYCLES = 50_000


class LatteAxiTB(AxiHarness):
    def __init__(self, dut, stall: float) -> None:
        super().__init__(dut)
        self.params = tb_params()
        self.fmts = latte_formats(**self.params)
        self.lanes = self.params["lanes"]
        self.chunks = self.fmts.d_h // self.lanes
        self.o_layout = output_layout(self.fmts, self.lanes)  # the one unpacking path (sim.streams.unpack)
        self.out_bytes = self.streams["o"]["tdata_bytes"]
        rng = tb_rng(3)
        self.src = {}
        for name in ("q", "k", "v"):
            src = AxiStreamSource(AxiStreamBus.from_prefix(dut, f"s_axis_{name}"), dut.clk, dut.rst)
            if stall:
                src.set_pause_generator(pause(rng, stall))
            self.src[name] = src
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_o"), dut.clk, dut.rst)
        if stall:
            self.sink.set_pause_generator(pause(rng, stall))

    def _row(self, frame: bytes) -> tuple[list[int], int]:
        assert len(frame) == self.chunks * self.out_bytes, f"output packet of {len(frame)} bytes"
        row: list[int] = []
        kept = -1
        for c in range(self.chunks):
            beat = unpack(self.o_layout, int.from_bytes(frame[c * self.out_bytes:(c + 1) * self.out_bytes], "little"))
            row += beat["data"]
            kept = beat["kept"]
        return row, kept

    async def run_head(self, q, k, v, tau: int, mant: int, shift: int) -> dict:
        want = latte_fixed_raw(q, k, v, tau, mant, shift, self.fmts)
        await self.write("N_KEYS", k.shape[0])
        await self.write("N_QUERIES", q.shape[0])
        await self.write("TAU", min(tau, self.fmts.tau_max))
        await self.write("SCALE_MANT", mant)
        await self.write("SCALE_SHIFT", shift)
        await self.write("O_LAST_BEATS", self.chunks)
        for name, x in (("k", k), ("v", v), ("q", q)):
            await self.src[name].send(np.asarray(x, dtype=np.int8).tobytes())
        out, kept = [], []
        for _ in range(q.shape[0]):
            frame = await with_timeout(self.sink.recv(), ROW_DEADLINE_CYCLES * 10, "ns")
            row, n_kept = self._row(bytes(frame.tdata))
            out.append(row)
            kept.append(n_kept)
        assert kept == want.kept_count.tolist(), f"kept per row {kept} != golden {want.kept_count.tolist()}"
        assert np.array_equal(np.array(out), want.out), (
            f"output mismatch in {int(np.sum(np.array(out) != want.out))} elements")
        assert await self.read("KEPT_TOTAL") == int(want.kept_count.sum())
        assert await self.read("KEPT_COUNT") == int(want.kept_count[-1])
        assert await self.read("OVERFLOW") == int(want.overflow.any())
        for _ in range(20):  # back in LOAD a few cycles after the last beat
            if await self.read("IDLE"):
                break
        assert await self.read("IDLE") == 1, "block not idle after the head"
        # the IDLE polls (>= 4 cycles each) are the drain window: no beat may follow the last row
        assert self.sink.empty(), "output beats after the last expected row"
        assert await self.read("CONFIG_ERROR") == 0
        return {"kept": int(want.kept_count.sum()), "elements": int(want.out.size)}


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def heads_through_axi(dut):
    """Random heads back to back with backpressure on every AXI4-Stream, then directed corners."""
    tb = LatteAxiTB(dut, stall=0.3)
    await tb.start()
    f = tb.fmts
    rng = tb_np_rng()
    mant, shift = encode_score_scale(4.0 / (128 * 128 * np.sqrt(f.d_h)), f)
    checked = 0
    heads = int(os.environ.get("AXI_LATTE_HEADS", "4"))
    for i in range(heads):
        n = f.n_max if i == 0 else int(rng.integers(1, f.n_max + 1))
        m = int(rng.integers(1, 5))
        q, k, v = (rng.integers(-128, 128, (r, f.d_h)) for r in (m, n, n))
        res = await tb.run_head(q, k, v, int(rng.integers(0, 8 * f.d_h)), mant, shift)
        checked += res["elements"]
    # τ huge (all keys kept) with extreme operands, and n = 1
    q_x = np.where(np.arange(f.d_h) % 2, 127, -128)[None, :].repeat(2, axis=0)
    k_x = np.where(rng.random((f.n_max, f.d_h)) < 0.5, -128, 127)
    res = await tb.run_head(q_x, k_x, np.full((f.n_max, f.d_h), -128), f.tau_max, 65535, 0)
    assert res["kept"] == 2 * f.n_max
    checked += res["elements"]
    res = await tb.run_head(q_x, k_x[:1], k_x[:1], 0, 1, 0)
    checked += res["elements"]
    write_stats({"axi_checked": checked, "axi_heads": heads + 2})
    await RisingEdge(dut.clk)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def register_map(dut):
    tb = LatteAxiTB(dut, stall=0.0)
    await tb.start()
    checked = await tb.check_register_map(tb_rng(7))
    write_stats({"registers": checked})
