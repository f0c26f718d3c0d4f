import pytest

from tests.cocotb_helpers import run_block


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("block,overrides", [
    ("exp_unit", {}),
    ("exp_unit", {"in_width": 12, "in_frac": 4, "out_width": 10, "out_frac": 9, "lut_bits": 5, "lut_frac": 12}),
    ("recip_unit", {}),
    ("recip_unit", {"den_width": 12, "den_frac": 0, "lut_bits": 11, "rounding": "truncate", "out_frac": 4}),
])
def test_shared_units(block, overrides, sim):
    stats = run_block(block, sim, overrides)
    assert stats["checked"] > 300
