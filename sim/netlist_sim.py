"""Post-synthesis simulation of a whole block (issue 13, item 2): a block's own cocotb regression
run on its yosys ECP5 netlist instead of its RTL.

The block is elaborated for ECP5 as ``attn-rtl synth BLOCK --target ecp5`` does it (multipliers
become registered ``MULT18X18D``, registered-read memories ``DP16KD`` with the output register,
:mod:`hdl.primitives`), synthesised with the flow's yosys script, written back as a Verilog netlist
(:func:`sim.tb_pe_netlist.synth_netlist`) and simulated with yosys' ECP5 cell models (LUT4,
TRELLIS_FF, CCU2C, TRELLIS_DPR16X4 LUT RAM ...) plus two behavioural models yosys does not ship:
``MULT18X18D`` (:mod:`sim.tb_pe_netlist`) and ``DP16KD`` (``sim/models/dp16kd.v``, which replaces the
blackbox of the same name in yosys' ``cells_sim.v``). The testbench, its stimulus, its golden checks
and its cycle deadlines are exactly those of the RTL run.

A netlist that instantiates any other cell yosys only ships as a blackbox (ALU54B, PLLs, SERDES ...)
is refused with :class:`NoSimulationModel`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.runner import CocotbResult, run_cocotb

__all__ = ["ecp5_netlist_sources", "run_cocotb_netlist", "NoSimulationModel", "DP16KD_MODEL_FILE",
           "MODELLED_CELLS"]

#: behavioural DP16KD model (module-level so a test can point it at a deliberately broken copy)
DP16KD_MODEL_FILE = Path(__file__).resolve().parent / "models" / "dp16kd.v"
#: blackbox cells of yosys' cells_sim.v that this module supplies a model for
MODELLED_CELLS = ("MULT18X18D", "DP16KD")

_BLACKBOX = re.compile(r"\(\*\s*blackbox\s*\*\)\s*module\s+(\w+)\s*\(.*?\bendmodule\b", re.S)


class NoSimulationModel(RuntimeError):
    """The netlist instantiates a cell that has no simulation model."""


def ecp5_netlist_sources(block: str) -> Any:
    """A ``netlist`` callback for :func:`sim.runner.run_cocotb`: synthesise ``block`` for ECP5 in
    ``build_dir/ecp5`` and return [netlist, cell models, MULT18X18D model, DP16KD model]."""
    from sim.tb_pe_netlist import MULT18X18D_MODEL, cell_models, ecp5_share_dir, synth_netlist

    def sources(build_dir: Path, params: Mapping[str, Any]) -> list[Path]:
        out = build_dir / "ecp5"
        netlist = synth_netlist(block, params, out)
        text = netlist.read_text()
        cells = cell_models(out)
        lib = cells.read_text()
        bb = (ecp5_share_dir() / "cells_bb.v").read_text()
        blackboxes = {mm.group(1) for mm in _BLACKBOX.finditer(lib)} | set(re.findall(r"^module\s+(\w+)", bb, re.M))
        missing = sorted(c for c in blackboxes - set(MODELLED_CELLS) if re.search(rf"^\s*{c}\s", text, re.M))
        if missing:
            raise NoSimulationModel(f"{block}: the ECP5 netlist uses {', '.join(missing)}, which yosys ships "
                                    f"without a simulation model (modelled here: {', '.join(MODELLED_CELLS)})")
        # drop yosys' DP16KD blackbox (empty body, outputs floating) in favour of the model
        cells.write_text(_BLACKBOX.sub(lambda mm: "" if mm.group(1) == "DP16KD" else mm.group(0), lib))
        mult = out / "mult18x18d_model.v"
        mult.write_text(MULT18X18D_MODEL)
        bram = out / "dp16kd_model.v"
        bram.write_text(Path(DP16KD_MODEL_FILE).read_text())
        return [netlist, cells, mult, bram]

    return sources


def run_cocotb_netlist(block: str, overrides: Mapping[str, Any] | None = None, *,
                       testcase: str | list[str] | None = None, seed: int | None = None) -> CocotbResult:
    """Run ``block``'s cocotb regression on Icarus against its ECP5 netlist."""
    return run_cocotb(block, overrides, sim="icarus", testcase=testcase, seed=seed,
                      netlist=ecp5_netlist_sources(block))
