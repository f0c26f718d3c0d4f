"""cocotbext-axi regressions of AXI-wrapped blocks (``generate BLOCK --bus axi``) on Icarus and Verilator."""

from __future__ import annotations

import pytest

from sim.axi_runner import run_axi_cocotb
from sim.runner import SimulatorMissing


def _run(block: str, sim: str, overrides: dict | None = None, **kw) -> dict:
    try:
        res = run_axi_cocotb(block, overrides or {}, sim=sim, **kw)
    except SimulatorMissing as exc:  # a missing simulator is a set-up error, never a silent skip
        pytest.fail(str(exc))
    assert res.tests > 0, f"{block}_axi [{sim}] ran no cocotb test (see {res.build_dir}/test.log)"
    assert res.failed == 0, f"{block}_axi [{sim}] {res.failed}/{res.tests} cocotb tests failed " \
                            f"(see {res.build_dir}/test.log)"
    return res.stats


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_latte_axi_bit_exact_with_backpressure(sim):
    stats = _run("latte", sim, test_module="sim.tb_axi_latte")
    assert stats["axi_checked"] > 0 and stats["axi_heads"] >= 6
    assert stats["registers"]["unmapped"] == 3 and stats["registers"]["ro"] > 0


CTA_SMALL = {"b": 2, "d": 4, "l": 2, "n_max": 16, "d_in_max": 12, "d_h": 3}  # as tests/test_cocotb_cta.py


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_cta_axi_heads_bit_exact(sim):
    """The whole CTA accelerator through AXI: load beats on s_axis_load, START pulse, rows on
    m_axis_o as one packet (tlast = last row), status over AXI4-Lite; == golden.cta."""
    from hdl.registry import blocks

    if "cta" not in blocks():
        pytest.skip("cta block not registered in this tree")
    stats = _run("cta", sim, CTA_SMALL, test_module="sim.tb_axi_cta")
    assert len(stats["axi_heads"]) == 2 and all(h["rows"] == h["m"] for h in stats["axi_heads"])
    assert stats["registers"]["pulse"] == 1 and stats["registers"]["unmapped"] == 3


@pytest.mark.cocotb
@pytest.mark.slow
def test_latte_axi_wide_config_icarus():
    stats = _run("latte", "icarus", {"n_max": 32, "d_h": 32, "lanes": 8, "out_width": 10, "out_frac": 3},
                 test_module="sim.tb_axi_latte", extra_env={"AXI_LATTE_HEADS": "8"})
    assert stats["axi_heads"] == 10


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("block", ["eatt", "mca"])
def test_eatt_mca_axi_bit_exact_with_backpressure(block, sim):
    from hdl.registry import blocks

    if block not in blocks():
        pytest.skip(f"block {block} is not registered in this tree")
    stats = _run(block, sim, {}, test_module=f"sim.tb_axi_{block}")
    assert stats["axi_checked"] > 0 and stats["registers"]["unmapped"] == 3


# The generic register-map test runs on any wrapped block: by default on two small blocks with a
# pulse input (cim's and cag's clear); the array (valid-only outputs behind FIFOs, ~45 s of Icarus
# build; its FIFO policy is covered by tests/test_axi.py) and every block are in the slow suite.
@pytest.mark.cocotb
@pytest.mark.parametrize("block", ["cim", pytest.param("systolic_array", marks=pytest.mark.slow)])
def test_generic_register_map_icarus(block):
    from hdl.registry import blocks

    if block not in blocks():
        pytest.skip(f"block {block} is not registered in this tree")
    stats = _run(block, "icarus", {}, test_module="sim.tb_axi_generic")
    assert stats["registers"]["unmapped"] == 3
    if block == "cim":
        assert stats["registers"]["pulse"] == 1


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_generic_register_map_every_block(sim):
    from hdl.registry import blocks

    for block in sorted(blocks()):
        stats = _run(block, sim, {}, test_module="sim.tb_axi_generic")
        assert stats["registers"]["unmapped"] == 3, block
