"""cocotb testbench of ``eatt`` behind its AXI wrapper (``generate eatt --bus axi``).

cocotbext-axi only: AxiStreamSources (random pauses) send wq, wk (rows then the bias row), xkv, xq
(one token element per beat) and v (``lanes`` values per beat); the AxiLiteMaster writes
``N_KEYS``, ``N_QUERIES``, ``TAU``, ``SCALE_MANT``, ``SCALE_SHIFT`` and ``O_LAST_BEATS`` (one packet
per output row) and reads ``OVERFLOW`` / ``IDLE``; an AxiStreamSink (random ``tready`` pauses)
receives the rows. Every element is compared ``==`` with :func:`golden.eatt.eatt_fixed_raw`.
"""

from __future__ import annotations

import cocotb
import numpy as np

from sim.runner import write_stats
from sim.tb_axi_common import AxiStreamsHarness
from sim.tb_eatt import eatt_golden, eatt_items, eatt_setup, random_case
from sim.tbutil import tb_np_rng, tb_rng

ROW_DEADLINE_CYCLES = 200_000
INPUTS = ("wq", "wk", "xkv", "xq", "v")


class EattAxiTB(AxiStreamsHarness):
    def __init__(self, dut, stall: float) -> None:
        super().__init__(dut, "eatt", INPUTS, stall, salt=5)
        self.params, self.fmts, self.lanes = eatt_setup()

    async def run_head(self, case: dict) -> dict:
        f, L = self.fmts, self.lanes
        want = eatt_golden(case, f)
        m, n = case["xq"].shape[0], case["xkv"].shape[0]
        for name, value in (("N_KEYS", n), ("N_QUERIES", m), ("TAU", case["tau"]), ("SCALE_MANT", case["mant"]),
                            ("SCALE_SHIFT", case["shift"]), ("O_LAST_BEATS", f.d_h // L)):
            await self.write(name, value)
        await self.send_items(eatt_items(case, L, f.d_h))
        out = await self.recv_matrix(m, f.d_h // L, ROW_DEADLINE_CYCLES)
        assert np.array_equal(out, want.out), f"output mismatch in {int(np.sum(out != want.out))} elements"
        assert await self.read("OVERFLOW") == int(want.back.overflow.any())
        await self.finish()
        return {"m": m, "n": n, "elements": int(out.size)}


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def heads_through_axi(dut):
    tb = EattAxiTB(dut, stall=0.3)
    await tb.start()
    f = tb.fmts
    rng = tb_np_rng()
    checked = 0
    for i in range(3):
        n = f.n_max if i == 0 else int(rng.integers(1, f.n_max + 1))
        res = await tb.run_head(random_case(rng, f, int(rng.integers(1, 4)), n))
        checked += res["elements"]
    base = random_case(rng, f, 2, f.n_max)  # every input below τ: empty selection
    checked += (await tb.run_head({**base, "tau": f.token_fmt.max_int}))["elements"]
    write_stats({"axi_checked": checked, "axi_heads": 4})


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def register_map(dut):
    tb = EattAxiTB(dut, stall=0.0)
    await tb.start()
    write_stats({"registers": await tb.check_register_map(tb_rng(9))})
