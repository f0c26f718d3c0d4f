"""Post-synthesis simulation of memory-using blocks (issue 13, items 1 and 2): the PAG's own cocotb
regression (golden.pag, random stalls, cycle deadlines) on its yosys ECP5 netlist — LUT RAM
(TRELLIS_DPR16X4) and registered MULT18X18D — with yosys' cell models, and the CIM's on its netlist
with DP16KD block RAM (output register, hdl.primitives.RegisteredReadMemory) and sim/models/dp16kd.v."""


import pytest

from sim.netlist_sim import NoSimulationModel, ecp5_netlist_sources, run_cocotb_netlist

PAG_SMALL = {"b": 3, "k1_max": 7, "k2_max": 5, "n_max": 40, "ap_width": 20}


@pytest.mark.cocotb
def test_pag_ecp5_netlist_passes_the_rtl_regression():
    res = run_cocotb_netlist("pag", PAG_SMALL, testcase="test_random_batches_with_stalls")
    assert res.tests == 1 and res.failed == 0, f"see {res.build_dir}/test.log"
    netlist = (res.build_dir / "ecp5" / "pag_netlist.v").read_text()
    # the hard blocks under test are really in it, and no behavioural RTL is left
    assert " TRELLIS_DPR16X4 " in netlist and " MULT18X18D " in netlist and "$mul" not in netlist
    assert res.stats["random_batches"] == 3


@pytest.mark.slow
@pytest.mark.cocotb
def test_pag_netlist_run_fails_with_a_broken_cell_model(monkeypatch):
    """The same run with a MULT18X18D model whose multiplier operand is off by one must fail: the netlist's
    arithmetic really goes through the modelled cells, and the regression sees it."""
    import sim.tb_pe_netlist as tpn

    broken = tpn.MULT18X18D_MODEL.replace("wire [35:0] prod = a_x * b_x;", "wire [35:0] prod = a_x * (b_x + 36'd1);")
    assert broken != tpn.MULT18X18D_MODEL
    monkeypatch.setattr(tpn, "MULT18X18D_MODEL", broken)
    from sim.runner import BUILD_ROOT, run_cocotb

    sources = ecp5_netlist_sources("pag")

    def broken_sources(build_dir, params):
        return sources(build_dir, params)

    broken_sources.tag = "netlist_broken"   # its own build directory: never reuse the good build

    with pytest.raises(SystemExit):   # cocotb's runner exits on a failed test
        run_cocotb("pag", PAG_SMALL, sim="icarus", testcase="test_throughput_no_stalls", netlist=broken_sources)
    logs = list((BUILD_ROOT / "pag" / "icarus").glob("*_netlist_broken/test.log"))
    assert logs and any("AP mismatch" in log.read_text() for log in logs)


CIM_SMALL = {"l": 4, "hash_width": 3, "n_max": 64, "k_max": 32, "epoch_bits": 2}


@pytest.mark.cocotb
def test_recip_unit_ecp5_netlist_with_rom_dp16kd_passes_the_rtl_regression():
    """The reciprocal ROM as an x18 DP16KD with INITVAL and its output register (the lookup's
    stage 4): 300 random denominators through the netlist, results == golden.lut."""
    from sim.runner import run_cocotb

    res = run_cocotb("recip_unit", {}, sim="icarus", netlist=ecp5_netlist_sources("recip_unit"))
    assert res.tests >= 1 and res.failed == 0, f"see {res.build_dir}/test.log"
    netlist = (res.build_dir / "ecp5" / "recip_unit_netlist.v").read_text()
    assert netlist.count("  DP16KD ") == 1 and netlist.count('.REGMODE_B("OUTREG")') == 1
    assert ".INITVAL_3F(320'h" in netlist and "$mem" not in netlist
    assert res.stats["checked"] > 300


def _cim_netlist_checks(netlist: str) -> None:
    # layers 2 and 3 (256 words) in DP16KD with the output register; layers 0 and 1 in LUT RAM
    assert netlist.count("  DP16KD ") == 2 and netlist.count('.REGMODE_B("OUTREG")') == 2
    assert " TRELLIS_DPR16X4 " in netlist and "$mem" not in netlist


@pytest.mark.cocotb
def test_cim_ecp5_netlist_with_dp16kd_passes_the_rtl_regression():
    res = run_cocotb_netlist("cim", CIM_SMALL)
    assert res.tests >= 2 and res.failed == 0, f"see {res.build_dir}/test.log"  # (+ the skipped bench)
    _cim_netlist_checks((res.build_dir / "ecp5" / "cim_netlist.v").read_text())
    assert res.stats["random_checked"] >= 100
    assert res.stats["directed"]["identical"] == 1 and res.stats["directed"]["distinct"] == 32


@pytest.mark.slow
@pytest.mark.cocotb
def test_systolic_array_ecp5_netlist_with_psum_dp16kd_passes_the_rtl_regression():
    """The PPE partial-sum buffers (psum_depth 128 > LUTRAM_MAX_DEPTH: DP16KD with output register,
    read three cycles ahead, same-cycle writes forwarded) in a 2x4 array's netlist, with d_in = 11
    (three passes), plus the reciprocal ROMs (RegisteredReadMemory with INITVAL): the RTL regression
    passes."""
    from sim.runner import run_cocotb

    narrow = {"acc_width": 30, "score_width": 10, "score_frac": 4, "hash_width": 4, "den_width": 18}
    res = run_cocotb("systolic_array", {"b": 2, "d": 4, "psum_depth": 128, **narrow}, sim="icarus",
                     extra_env={"SA_TOKENS": "5", "SA_KEYS": "4", "SA_DIN": "11"},
                     netlist=ecp5_netlist_sources("systolic_array"))
    assert res.tests >= 2 and res.failed == 0, f"see {res.build_dir}/test.log"
    netlist = (res.build_dir / "ecp5" / "systolic_array_netlist.v").read_text()
    # per PPE: the 31-bit partial sums (18 + 18) and the reciprocal ROM (17 bits), all with OUTREG
    assert netlist.count('.REGMODE_B("OUTREG")') == 6
    assert res.stats["checked_beats"] > 100


_NO_COLLISION_X = [("if (wr_a && be_a && overlap) old_b = {18{1'bx}};", "")]


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.parametrize("what,edits", [
    # the output register ignored: every word arrives a cycle early
    ("outreg_ignored", [('wire [17:0] do_b = (REGMODE_B == "OUTREG") ? oreg_b : latch_b;',
                         "wire [17:0] do_b = latch_b;")]),
    # the same with cross-port collisions reading the old word instead of X: a value mismatch
    ("outreg_ignored_no_x", [('wire [17:0] do_b = (REGMODE_B == "OUTREG") ? oreg_b : latch_b;',
                              "wire [17:0] do_b = latch_b;"), *_NO_COLLISION_X]),
    # OCE ignored: the register loads while the thread pipeline stalls
    ("oce_ignored", [("else if (OCEB) oreg_b <= latch_b;", "else oreg_b <= latch_b;")]),
])
def test_cim_netlist_run_fails_with_a_broken_dp16kd_model(monkeypatch, tmp_path, what, edits):
    """The same run with a broken DP16KD model must fail: the CIM netlist's layer memories really
    go through the modelled block RAM and its output register, and the regression sees it."""
    import sim.netlist_sim as ns
    from sim.runner import BUILD_ROOT, run_cocotb

    text = ns.DP16KD_MODEL_FILE.read_text()
    for good, bad in edits:
        assert text.count(good) == 1
        text = text.replace(good, bad)
    broken = tmp_path / "dp16kd_broken.v"
    broken.write_text(text)
    monkeypatch.setattr(ns, "DP16KD_MODEL_FILE", broken)
    sources = ecp5_netlist_sources("cim")

    def broken_sources(build_dir, params):
        return sources(build_dir, params)

    broken_sources.tag = f"netlist_broken_{what}"   # its own build directory: never reuse the good build
    try:
        res = run_cocotb("cim", CIM_SMALL, sim="icarus", testcase="test_random_with_stalls", netlist=broken_sources)
    except SystemExit:   # cocotb's runner may exit on a failed test
        res = None
    assert res is None or res.failed > 0
    logs = list((BUILD_ROOT / "cim" / "icarus").glob(f"*_netlist_broken_{what}/test.log"))
    assert logs and any("FAIL" in log.read_text() for log in logs)


def test_blackbox_cells_without_model_are_refused(tmp_path, monkeypatch):
    """DP16KD and MULT18X18D have models; any other cell yosys ships only as a blackbox is refused."""
    import sim.tb_pe_netlist as tpn

    def fake_synth(block, params, out):
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{block}_netlist.v"
        path.write_text("module cim(input clk);\n  ALU54B _1_ (.CLK0(clk));\n  DP16KD _2_ ();\nendmodule\n")
        return path

    monkeypatch.setattr(tpn, "synth_netlist", fake_synth)
    with pytest.raises(NoSimulationModel, match="ALU54B"):
        ecp5_netlist_sources("cim")(tmp_path, {})
