"""``attn-rtl sim BLOCK --waves``: one waveform file per cocotb test, each a real dump of that test."""

from __future__ import annotations

import pytest

from attn_rtl.commands.blocks import _sim_waves, cocotb_test_names
from sim.runner import SimulatorMissing, check_simulator


def test_test_names_skip_the_skipped_benchmarks() -> None:
    names = cocotb_test_names("sim.tb_cim")
    assert names == ["test_random_with_stalls", "test_directed"]  # bench_throughput is skip=True


def test_one_wave_file_per_test() -> None:
    try:
        check_simulator("icarus")
    except SimulatorMissing as exc:
        pytest.skip(str(exc))
    res, files = _sim_waves("cim", {"k_max": 16, "n_max": 32}, "icarus", 5)
    assert res.ok and res.tests == 2
    assert [f.name for f in files] == ["test_random_with_stalls.fst", "test_directed.fst"]
    sizes = [f.stat().st_size for f in files]
    assert all(s > 1000 for s in sizes), sizes
    # each file is that test's own dump, not one shared file copied
    assert files[0].read_bytes() != files[1].read_bytes()
