"""cocotb testbench of ``mca`` behind its AXI wrapper (``generate mca --bus axi``).

cocotbext-axi only: AxiStreamSources (random pauses) send the sampling table (cdf, pre-scaled
rows ws), the bias row, A column by column and X; the AxiLiteMaster writes ``SEED``,
``INV_ALPHA``, ``N_KEYS``, ``N_QUERIES``, ``O_LAST_BEATS`` and reads ``SAMPLES_TOTAL``, the overflow
flags and ``IDLE``; an AxiStreamSink (random ``tready`` pauses) receives one packet per output row.
Every element, Σ r_j and the flags are compared ``==`` with :func:`golden.mca.mca_encode_fixed`.
"""

from __future__ import annotations

import cocotb
import numpy as np

from golden.mca import mca_encode_fixed
from sim.runner import tb_params, write_stats
from sim.tb_axi_common import AxiStreamsHarness
from sim.tb_mca import FMTS, random_case
from sim.tbutil import tb_np_rng, tb_rng

ROW_DEADLINE_CYCLES = 200_000
INPUTS = ("cdf", "ws", "bias", "a", "x")


class McaAxiTB(AxiStreamsHarness):
    def __init__(self, dut, stall: float) -> None:
        super().__init__(dut, "mca", INPUTS, stall, salt=6)
        self.params = tb_params()
        self.lanes, self.d_h = self.params["lanes"], self.params["d_h"]

    async def run_head(self, x_raw, a_raw, table, bias_raw, alpha: float, seed: int) -> dict:
        L = self.lanes
        want = mca_encode_fixed(x_raw, a_raw, table, alpha, seed, bias_raw, FMTS)
        m, n = a_raw.shape
        for name, value in (("SEED", seed), ("INV_ALPHA", FMTS.inv_alpha_raw(alpha)), ("N_KEYS", n),
                            ("N_QUERIES", m), ("O_LAST_BEATS", self.d_h // L)):
            await self.write(name, value)
        items = {"cdf": [int(v) for v in table.cdf], "ws": [[int(v) for v in r] for r in table.ws_raw],
                 "bias": [[int(v) for v in bias_raw]],
                 "a": [int(v) for v in a_raw.T.ravel()],  # column by column
                 "x": [int(v) for v in x_raw.ravel()]}
        await self.send_items(items)
        y = await self.recv_matrix(m, self.d_h // L, ROW_DEADLINE_CYCLES)
        assert np.array_equal(y, want.y_raw), f"output mismatch in {int(np.sum(y != want.y_raw))} elements"
        assert await self.read("SAMPLES_TOTAL") == int(want.r.sum()), "SAMPLES_TOTAL != Σ r_j"
        flags = {k: bool(await self.read(k.upper())) for k in ("acc_overflow", "h_overflow", "out_overflow")}
        assert flags == want.flags, f"flags {flags} != golden {want.flags}"
        await self.finish()
        return {"m": m, "elements": int(y.size), "samples": int(want.r.sum())}


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def heads_through_axi(dut):
    tb = McaAxiTB(dut, stall=0.3)
    await tb.start()
    p = tb.params
    rng = tb_np_rng()
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
