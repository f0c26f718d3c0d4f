"""cocotb testbench of ``mca`` behind its AXI wrapper (``generate mca --bus axi``).

cocotbext-axi only: AxiStreamSources (random pauses) send the sampling table (cdf, pre-scaled
rows ws), the bias row, A column by column and X; the AxiLiteMaster writes ``SEED``,
``INV_ALPHA``, ``N_KEYS``, ``N_QUERIES``, ``O_LAST_BEATS`` and reads ``SAMPLES_TOTAL``, the overflow
flags and ``IDLE``; an AxiStreamSink (random ``tready`` pauses) receives one packet per output row.
Every element, Σ r_j and the flags are compared ``==`` with :func:`golden.mca.mca_encode_fixed`.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

from golden.mca import mca_encode_fixed
from sim.runner import tb_params, write_stats
from sim.tb_axi_common import AxiHarness, pause
from sim.tb_eatt import pack, unpack_signed
from sim.tb_mca import FMTS, random_case
from sim.tbutil import tb_rng

ROW_DEADLINE_CYCLES = 200_000
INPUTS = ("cdf", "ws", "bias", "a", "x")


class McaAxiTB(AxiHarness):
    def __init__(self, dut, stall: float) -> None:
        super().__init__(dut)
        self.params = tb_params()
        self.lanes, self.d = self.params["lanes"], self.params["d"]
        rng = tb_rng(6)
        self.src = {}
        for name in INPUTS:
            self.src[name] = AxiStreamSource(AxiStreamBus.from_prefix(dut, f"s_axis_{name}"), dut.clk, dut.rst)
            if stall:
                self.src[name].set_pause_generator(pause(rng, stall))
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_o"), dut.clk, dut.rst)
        if stall:
            self.sink.set_pause_generator(pause(rng, stall))

    def _frame(self, name: str, words) -> bytes:
        nbytes = self.streams[name]["tdata_bytes"]
        mask = (1 << (8 * nbytes)) - 1
        return b"".join((int(w) & mask).to_bytes(nbytes, "little") for w in words)

    async def run_head(self, x_raw, a_raw, table, bias_raw, alpha: float, seed: int) -> dict:
        p, L = self.params, self.lanes
        want = mca_encode_fixed(x_raw, a_raw, table, alpha, seed, bias_raw, FMTS)
        m, n = a_raw.shape
        for name, value in (("SEED", seed), ("INV_ALPHA", FMTS.inv_alpha_raw(alpha)), ("N_KEYS", n),
                            ("N_QUERIES", m), ("O_LAST_BEATS", self.d // L)):
            await self.write(name, value)
        words = {
            "cdf": [int(v) for v in table.cdf],
            "ws": [pack(r, p["ws_width"]) for r in table.ws_raw],
            "bias": [pack(bias_raw, FMTS.h_fmt.width)],
            "a": [int(v) for v in a_raw.T.ravel()],
            "x": [pack([v], FMTS.token_fmt.width) for v in x_raw.ravel()],
        }
        for name in INPUTS:
            await self.src[name].send(self._frame(name, words[name]))
        nbytes = self.streams["o"]["tdata_bytes"]
        rows = []
        for _ in range(m):
            frame = bytes((await with_timeout(self.sink.recv(), ROW_DEADLINE_CYCLES * 10, "ns")).tdata)
            assert len(frame) == nbytes * (self.d // L), f"output packet of {len(frame)} bytes"
            row: list[int] = []
            for c in range(self.d // L):
                row += unpack_signed(int.from_bytes(frame[c * nbytes:(c + 1) * nbytes], "little"), L,
                                     FMTS.out_fmt.width)
            rows.append(row)
        y = np.array(rows)
        assert np.array_equal(y, want.y_raw), f"output mismatch in {int(np.sum(y != want.y_raw))} elements"
        assert await self.read("SAMPLES_TOTAL") == int(want.r.sum()), "SAMPLES_TOTAL != Σ r_j"
        flags = {k: bool(await self.read(k.upper())) for k in ("acc_overflow", "h_overflow", "out_overflow")}
        assert flags == want.flags, f"flags {flags} != golden {want.flags}"
        for _ in range(20):
            if await self.read("IDLE"):
                break
        assert await self.read("IDLE") == 1, "block not idle after the head"
        return {"m": m, "elements": int(y.size), "samples": int(want.r.sum())}


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def heads_through_axi(dut):
    tb = McaAxiTB(dut, stall=0.3)
    await tb.start()
    p = tb.params
    rng = np.random.default_rng(int(os.environ.get("RANDOM_SEED", "1")) & 0xFFFF)
    checked = 0
    for i in range(3):
        n = p["n_max"] if i == 0 else int(rng.integers(1, p["n_max"] + 1))
        m = int(rng.integers(1, p["m_max"] + 1))
        x, a, table, b = random_case(rng, p, m, n)
        res = await tb.run_head(x, a, table, b, float(rng.uniform(0.2, 1.0)), int(rng.integers(1, 1 << 32)))
        checked += res["elements"]
    write_stats({"axi_checked": checked, "axi_heads": 3})


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def register_map(dut):
    tb = McaAxiTB(dut, stall=0.0)
    await tb.start()
    write_stats({"registers": await tb.check_register_map(tb_rng(11))})
