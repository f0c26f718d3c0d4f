"""pytest glue for cocotb regressions: one build directory per (block, simulator, parameters)."""

from __future__ import annotations

import pytest

from sim.runner import SimulatorMissing, run_cocotb


def run_block(block: str, sim: str, overrides: dict | None = None, **kw) -> dict:
    """Run a block's cocotb tests; fail the pytest test on any cocotb failure; return stats."""
    try:
        res = run_cocotb(block, overrides or {}, sim=sim, **kw)
    except SimulatorMissing as exc:  # a missing simulator is a set-up error, never a silent skip
        pytest.fail(str(exc))
    assert res.tests > 0, f"{block} [{sim}] ran no cocotb test (see {res.build_dir}/test.log)"
    assert res.failed == 0, (
        f"{block} [{sim}] {res.failed}/{res.tests} cocotb tests failed (see {res.build_dir}/test.log)")
    return res.stats
