"""Post-synthesis simulation of a memory-using block (issue 13, item 2): the PAG's own cocotb
regression (golden.pag, random stalls, cycle deadlines) on its yosys ECP5 netlist — LUT RAM
(TRELLIS_DPR16X4) and registered MULT18X18D — with yosys' cell models."""


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


@pytest.mark.slow
def test_block_ram_netlists_are_refused(tmp_path):
    # the CIM's FPGA configuration keeps its memories in DP16KD block RAM (no yosys model)
    from hdl.registry import get_block

    spec = get_block("cim")
    with pytest.raises(NoSimulationModel, match="DP16KD"):
        ecp5_netlist_sources("cim")(tmp_path, spec.resolve(spec.fpga_params))
