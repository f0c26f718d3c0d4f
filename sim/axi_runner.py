"""Build a block's AXI wrapper (``generate --bus axi``) and run a cocotb testbench on it.

Same conventions as :func:`sim.runner.run_cocotb` (``ATTN_RTL_PARAMS``, ``ATTN_RTL_MANIFEST``,
``ATTN_RTL_STATS``), one build directory per configuration under ``sim_build/<block>_axi/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.runner import CocotbResult, _config_dir, build_and_test, check_simulator

__all__ = ["run_axi_cocotb"]


def run_axi_cocotb(
    block: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    sim: str = "icarus",
    test_module: str = "sim.tb_axi_generic",
    testcase: str | list[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
    fifo_depth: int = 16,
) -> CocotbResult:
    """Generate ``<block>_axi`` with ``overrides``, build it for ``sim`` and run ``test_module``."""
    from hdl.export import generate_files
    from hdl.registry import get_block

    check_simulator(sim)
    params = get_block(block).resolve(overrides)
    top = f"{block}_axi"
    build_dir = _config_dir(top, sim, {**params, "_fifo_depth": fifo_depth})
    build_dir.mkdir(parents=True, exist_ok=True)
    paths = generate_files(block, params, build_dir, bus="axi", fifo_depth=fifo_depth)
    return build_and_test(block, top, sim, params, [paths["verilog"]], paths["manifest"], build_dir,
                          test_module=test_module, testcase=testcase, extra_env=extra_env, seed=seed)
