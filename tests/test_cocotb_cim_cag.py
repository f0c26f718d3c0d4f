"""cocotb regressions of the CIM and CAG on Icarus and Verilator (small configurations by default;
the default-sized blocks are ``slow``)."""

import pytest

from tests.cocotb_helpers import run_block

CIM_SMALL = {"l": 4, "hash_width": 3, "n_max": 64, "k_max": 32, "epoch_bits": 2}
CAG_SMALL = {"d": 4, "k_max": 16, "n_max": 64}


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("block,overrides", [("cim", CIM_SMALL), ("cag", CAG_SMALL)])
def test_cim_cag_small(block, overrides, sim):
    stats = run_block(block, sim, overrides)
    assert stats["random_checked"] >= 100
    if block == "cim":
        assert stats["directed"]["identical"] == 1 and stats["directed"]["distinct"] == 32
    else:
        assert stats["one_cluster"] == 1 and stats["capacity_reached"] == 16


@pytest.mark.cocotb
def test_cim_internal_skew_icarus():
    stats = run_block("cim", "icarus", {**CIM_SMALL, "internal_skew": True, "nodes_per_layer": 12})
    assert stats["random_checked"] >= 100


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("block,overrides", [
    ("cim", {}), ("cag", {}), ("cim", {"l": 6, "hash_width": 4, "k_max": 128, "internal_skew": True}),
    ("cag", {"d": 16, "k_max": 128, "lut_bits": 12, "mant_bits": 20}),
])
def test_cim_cag_default_sizes(block, overrides, sim):
    stats = run_block(block, sim, overrides)
    assert stats["random_checked"] >= 100
