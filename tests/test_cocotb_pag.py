"""cocotb regressions of the PAG on Icarus and Verilator (bit-exact vs golden.pag, random stalls)."""

import pytest

from tests.cocotb_helpers import run_block

CONFIGS = {
    # AP saturates at 64 (n_max tokens of e = 16 reach it); capacities not powers of two.
    "small": {"b": 3, "k1_max": 7, "k2_max": 5, "n_max": 40, "ap_width": 20},
    # Narrow formats: exp input has fewer fraction bits than CS (rounding path), add saturation.
    "narrow": {"b": 2, "k1_max": 4, "k2_max": 3, "n_max": 25, "cs_width": 12, "cs_frac": 6, "exp_in_width": 10,
               "exp_in_frac": 4, "exp_out_width": 16, "exp_out_frac": 12, "lut_bits": 6, "lut_frac": 14,
               "ap_width": 18},
}
CASES = [pytest.param(c, "icarus") for c in CONFIGS] + [
    pytest.param("narrow", "verilator"),
    pytest.param("small", "verilator", marks=pytest.mark.slow),  # a Verilator build costs ~1 min here
]


@pytest.mark.cocotb
@pytest.mark.parametrize("config,sim", CASES)
def test_pag(config, sim):
    stats = run_block("pag", sim, CONFIGS[config])
    assert stats["directed_batches"] >= 7 and stats["random_batches"] == 3
    assert stats["ct_beats"] == -(-CONFIGS[config]["n_max"] // 2)
    assert stats["readout_latency"] == 11
    assert stats["ap_saturation_exercised"]
