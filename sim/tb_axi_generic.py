"""cocotb test of any AXI-wrapped block: the AXI4-Lite register map (ID, read-back, SLVERR on
read-only writes, DECERR on unmapped addresses) and idle AXI4-Stream handshakes after reset."""

from __future__ import annotations

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.runner import write_stats
from sim.tb_axi_common import AxiHarness
from sim.tbutil import read_unsigned, tb_rng


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def register_map(dut):
    h = AxiHarness(dut)
    for s in h.streams.values():
        if s["direction"] == "slave":
            getattr(dut, f"{s['prefix']}_tvalid").value = 0
            getattr(dut, f"{s['prefix']}_tlast").value = 0
        else:
            getattr(dut, f"{s['prefix']}_tready").value = 0
    await h.start()
    await RisingEdge(dut.clk)
    await ReadOnly()
    for s in h.streams.values():  # nothing is sent before any input
        if s["direction"] == "master":
            assert read_unsigned(getattr(dut, f"{s['prefix']}_tvalid")) == 0, f"{s['prefix']} valid after reset"
    await RisingEdge(dut.clk)
    checked = await h.check_register_map(tb_rng(15))
    write_stats({"registers": checked})
