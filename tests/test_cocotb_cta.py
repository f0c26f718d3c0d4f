"""cocotb regression of the ``cta`` block (sim/tb_cta.py) on Icarus and Verilator: random heads
(m != n, d_in = d, 2d + 1, 3d - 1), one cluster for everything, every token its own cluster,
random stalls on the load and output streams, a refused run,
rows and status == golden.cta; the real MiniLM head runs in ``make run`` (``attn-rtl run``)."""

import pytest

from tests.cocotb_helpers import run_block

SMALL = {"b": 2, "d": 4, "l": 2, "n_max": 16, "d_in_max": 12, "d_h": 3}


#: n up to 32, d_in up to 3d - 1, and k_max < n_max (a run refused after LSH0, then a normal head)
MEDIUM = {"b": 2, "d": 8, "l": 2, "n_max": 32, "k_max": 24, "d_in_max": 24, "d_h": 6}


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_cta_small(sim):
    stats = run_block("cta", sim, SMALL)
    heads = stats["heads"]
    assert len(heads) == 5 and all(sum(h["cycles"].values()) > 0 for h in heads)
    assert heads[3]["k"] == [1, 1, 1] and heads[4]["k"][:2] == [heads[4]["m"], heads[4]["n"]]


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_cta_medium(sim):
    stats = run_block("cta", sim, MEDIUM)
    heads = stats["heads"]
    assert [h["capacity_error"] for h in heads] == [0, 0, 0, 0, 0, 0, 1, 0]
    assert heads[5]["n"] == 32 and heads[5]["d_in"] == 23
