"""The registry's map from a block name to its files (``attn-rtl list``) is complete and true."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from hdl.registry import BLOCK_FILES, ParamError, block_files, blocks

ROOT = Path(__file__).resolve().parents[1]


def _defining_module(name: str) -> str:
    for mod_name in {f"hdl.{p.stem}" for p in (ROOT / "hdl").glob("*.py")}:
        mod = importlib.import_module(mod_name)
        if any(spec.name == name for spec in getattr(mod, "BLOCKS", ())):
            return mod_name
    raise AssertionError(f"no hdl module defines block {name}")


def test_every_block_has_an_entry_and_nothing_else() -> None:
    assert set(BLOCK_FILES) == set(blocks())


@pytest.mark.parametrize("name", sorted(BLOCK_FILES))
def test_files_exist_and_lead_to_the_block(name: str) -> None:
    files = block_files(name)
    for kind, paths in files.items():
        for path in paths:
            assert (ROOT / path).is_file(), f"{name} {kind}: {path} does not exist"
    # the first RTL file is the module whose BLOCKS defines the block
    assert files["rtl"][0] == _defining_module(name).replace(".", "/") + ".py"
    spec = blocks()[name]
    if spec.cocotb_module:
        assert spec.cocotb_module.replace(".", "/") + ".py" in files["testbench"]
    assert files["golden"] and files["tests"]


def test_unknown_block_is_named() -> None:
    with pytest.raises(ParamError, match="unknown block 'nope'"):
        block_files("nope")
