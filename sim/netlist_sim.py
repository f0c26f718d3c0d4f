"""Post-synthesis simulation of a whole block (issue 13, item 2): a block's own cocotb regression
run on its yosys ECP5 netlist instead of its RTL.

The block is elaborated for ECP5 as ``attn-rtl synth BLOCK --target ecp5`` does it (multipliers
become registered ``MULT18X18D``, :mod:`hdl.primitives`), synthesised with the flow's yosys script,
written back as a Verilog netlist (:func:`sim.tb_pe_netlist.synth_netlist`) and simulated with
yosys' ECP5 cell models (LUT4, TRELLIS_FF, CCU2C, TRELLIS_DPR16X4 LUT RAM ...) plus the
behavioural ``MULT18X18D`` of :mod:`sim.tb_pe_netlist`. The testbench, its stimulus, its golden
checks and its cycle deadlines are exactly those of the RTL run.

Only netlists without block RAM can run: yosys ships ``DP16KD`` as a blackbox with no simulation
model, so :func:`ecp5_netlist_sources` refuses a netlist that instantiates one (name the block's
configuration that maps its memories to LUT RAM instead, e.g. the PAG's FPGA configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.runner import CocotbResult, run_cocotb

__all__ = ["ecp5_netlist_sources", "run_cocotb_netlist", "NoSimulationModel"]


class NoSimulationModel(RuntimeError):
    """The netlist instantiates a cell that has no simulation model (DP16KD)."""


def ecp5_netlist_sources(block: str) -> Any:
    """A ``netlist`` callback for :func:`sim.runner.run_cocotb`: synthesise ``block`` for ECP5 in
    ``build_dir/ecp5`` and return [netlist, cell models, MULT18X18D model]."""
    from sim.tb_pe_netlist import MULT18X18D_MODEL, cell_models, synth_netlist

    def sources(build_dir: Path, params: Mapping[str, Any]) -> list[Path]:
        out = build_dir / "ecp5"
        netlist = synth_netlist(block, params, out)
        text = netlist.read_text()
        if "DP16KD " in text:
            raise NoSimulationModel(
                f"{block}: the ECP5 netlist uses DP16KD block RAM, which yosys ships without a "
                f"simulation model; choose parameters that map its memories to LUT RAM")
        mult = out / "mult18x18d_model.v"
        mult.write_text(MULT18X18D_MODEL)
        return [netlist, cell_models(out), mult]

    return sources


def run_cocotb_netlist(block: str, overrides: Mapping[str, Any] | None = None, *,
                       testcase: str | list[str] | None = None, seed: int | None = None) -> CocotbResult:
    """Run ``block``'s cocotb regression on Icarus against its ECP5 netlist."""
    return run_cocotb(block, overrides, sim="icarus", testcase=testcase, seed=seed,
                      netlist=ecp5_netlist_sources(block))
