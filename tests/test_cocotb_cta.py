"""cocotb regression of the ``cta`` block (sim/tb_cta.py) on Icarus and Verilator: random heads
(m != n, d_in = d, 2d + 1, 3d - 1), random stalls on the load and output streams, a refused run,
rows and status == golden.cta; the real MiniLM head runs in ``make run`` (``attn-rtl run``)."""

import pytest

from tests.cocotb_helpers import run_block

SMALL = {"b": 2, "d": 4, "l": 2, "n_max": 16, "d_in_max": 12, "d_h": 3}


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_cta_small(sim):
    stats = run_block("cta", sim, SMALL)
    heads = stats["heads"]
    assert len(heads) == 3 and all(sum(h["cycles"].values()) > 0 for h in heads)
