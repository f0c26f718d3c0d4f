"""Build a block's AXI wrapper (``generate --bus axi``) and run a cocotb testbench on it.

Same conventions as :func:`sim.runner.run_cocotb` (``ATTN_RTL_PARAMS``, ``ATTN_RTL_MANIFEST``,
``ATTN_RTL_STATS``), one build directory per configuration under ``sim_build/<block>_axi/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from sim.runner import CocotbResult, _config_dir, check_simulator, verilator_make_flags

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
    from cocotb_tools.runner import get_results, get_runner

    from hdl.export import generate_files
    from hdl.registry import get_block

    check_simulator(sim)
    params = get_block(block).resolve(overrides)
    top = f"{block}_axi"
    build_dir = _config_dir(top, sim, {**params, "_fifo_depth": fifo_depth})
    build_dir.mkdir(parents=True, exist_ok=True)
    paths = generate_files(block, params, build_dir, bus="axi", fifo_depth=fifo_depth)
    runner = get_runner(sim)
    build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style"] if sim == "verilator" else []
    t0 = time.monotonic()
    flags = verilator_make_flags() if sim == "verilator" else contextlib.nullcontext()
    with flags:
        runner.build(sources=[paths["verilog"]], hdl_toplevel=top, build_dir=build_dir, build_args=build_args,
                     timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
    t1 = time.monotonic()
    stats_path = build_dir / f"stats_{os.getpid()}.json"
    stats_path.unlink(missing_ok=True)
    env = {
        "ATTN_RTL_BLOCK": block,
        "ATTN_RTL_PARAMS": json.dumps(params),
        "ATTN_RTL_MANIFEST": str(paths["manifest"]),
        "ATTN_RTL_STATS": str(stats_path),
        "ATTN_RTL_SIM": sim,
        "PYTHONPATH": os.environ["PYTHONPATH"],
    }
    env.update(extra_env or {})
    results_xml = runner.test(test_module=test_module, hdl_toplevel=top, testcase=testcase, extra_env=env,
                              build_dir=build_dir, test_dir=build_dir, seed=seed,
                              results_xml=str(build_dir / f"results_{os.getpid()}.xml"),
                              log_file=build_dir / "test.log")
    t2 = time.monotonic()
    tests, failed = get_results(results_xml)
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    return CocotbResult(top, sim, params, tests, failed, build_dir, t1 - t0, t2 - t1, stats)
