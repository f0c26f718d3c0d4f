"""Portable vector testbenches (``attn-rtl export-tb``, :mod:`sim.vector_tb`): the exported bench
passes on Icarus and on Verilator --binary, and fails on a wrong, missing or extra item and on a
stalled DUT (at the cycle deadline, not by hanging)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.lib.data import ArrayLayout

from attn_rtl.cli import main
from sim.vector_tb import ADAPTERS, build_bench, export_tb, pack, pack_rows, run_bench

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")

SMALL = {
    "exp_unit": {},
    "recip_unit": {},
    "cim": {"l": 4, "hash_width": 3, "n_max": 64, "k_max": 32, "epoch_bits": 2},
    "cag": {"d": 4, "k_max": 16, "n_max": 64},
    "pag": {"b": 3, "k1_max": 7, "k2_max": 5, "n_max": 40, "ap_width": 20},
    "systolic_array": {"b": 2, "d": 4, "acc_width": 30, "score_width": 10, "score_frac": 4, "hash_width": 4,
                       "den_width": 18},
    "latte": {},  # the defaults are small (n_max 16, d_h 16)
    "eatt": {},
    "eatt_align": {},
    "mca": {},
    "pe": {"b": 2, "x_width": 5, "y_width": 6, "acc_width": 30},  # narrow operands (acc_width >= 30: registry)
    "ppe": {"b": 2, "d": 4},
    "cta": {"b": 2, "d": 4, "l": 2, "n_max": 16, "d_in_max": 12, "d_h": 3},
}


def _export(tmp_path: Path, block: str, vectors: int | None = None, seed: int = 3):
    vectors = vectors or (20 if block in ("latte", "eatt", "eatt_align", "mca", "cta") else 150)
    return export_tb(block, SMALL[block], tmp_path / block, vectors=vectors, seed=seed)


@pytest.mark.parametrize("block", sorted(SMALL))
def test_icarus_pass(tmp_path, block):
    res = _export(tmp_path, block)
    build_bench(res.out_dir, "icarus")
    for seed in (1, 2):
        r = run_bench(res.out_dir, "icarus", seed=seed)
        assert r.ok, r.output[-2000:]
        assert r.items_in == sum(res.counts[s.name] for s in res.plan.streams if s.direction == "in")
        assert r.items_out == sum(res.counts[s.name] for s in res.plan.streams if s.direction == "out")
        assert f"seed={seed}" in r.line and r.cycles > 0


def test_every_adapter_is_tested():
    from hdl.registry import blocks

    assert set(SMALL) == set(ADAPTERS) == set(blocks())  # every block has a vector bench


@pytest.mark.parametrize("block", ["exp_unit", "pag", "systolic_array", "eatt_align", "pe", "ppe",
                                   pytest.param("cim", marks=pytest.mark.slow),
                                   pytest.param("latte", marks=pytest.mark.slow)])
def test_verilator_binary_pass_same_cycles_as_icarus(tmp_path, block):
    """Same bench, same +seed: same verdict, same transfers and the same cycle count on both."""
    res = _export(tmp_path, block)
    build_bench(res.out_dir, "icarus")
    build_bench(res.out_dir, "verilator", opt="-O0")  # the build, not the run, dominates here
    ri = run_bench(res.out_dir, "icarus", seed=11)
    rv = run_bench(res.out_dir, "verilator", seed=11)
    assert ri.ok and rv.ok, (ri.line, rv.output[-2000:])
    assert (rv.cycles, rv.items_in, rv.items_out) == (ri.cycles, ri.items_in, ri.items_out)


def _flip_last_hex_digit(path: Path, line: int) -> None:
    lines = path.read_text().splitlines()
    text = lines[line]
    lines[line] = text[:-1] + format(int(text[-1], 16) ^ 1, "x")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("block,stream", [("exp_unit", "y"), ("cag", "o"), ("systolic_array", "res"), ("eatt", "o"),
                                          ("eatt_align", "s"), ("pe", "o"), ("latte", "o"), ("mca", "o")])
def test_corrupted_expected_line_fails(tmp_path, block, stream):
    res = _export(tmp_path, block)
    build_bench(res.out_dir, "icarus")
    assert run_bench(res.out_dir, "icarus").ok
    _flip_last_hex_digit(res.out_dir / f"{stream}.hex", 2)
    if block == "systolic_array":  # its low bits may be masked (unused columns): compare them here
        mask = res.out_dir / f"{stream}_mask.hex"
        lines = mask.read_text().splitlines()
        lines[2] = lines[2][:-1] + "f"
        mask.write_text("\n".join(lines) + "\n")
    r = run_bench(res.out_dir, "icarus")
    assert not r.ok and f"mismatch on {stream}" in r.line, r.output[-2000:]
    assert re.search(rf"mismatch on {stream} item 2:", r.output), r.output[-2000:]


@pytest.mark.parametrize("block,stream", [("exp_unit", "y"), ("cim", "o"), ("pag", "ap"), ("cta", "o")])
def test_missing_expected_item_fails_on_the_extra_item(tmp_path, block, stream):
    res = _export(tmp_path, block)
    path = res.out_dir / f"{stream}.hex"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # the last expected item is gone
    build_bench(res.out_dir, "icarus")
    r = run_bench(res.out_dir, "icarus")
    assert not r.ok and f"extra item on {stream}" in r.line, r.output[-2000:]


def test_stalled_dut_fails_at_the_deadline(tmp_path):
    """The CIM never accepts an input (ready tied low in the generated Verilog): FAIL at the cycle
    deadline, well before the wall-clock limit."""
    res = _export(tmp_path, "cim", vectors=40)
    text = res.verilog.read_text()
    broken, n = re.subn(r"assign i__ready = [^;]+;", "assign i__ready = 1'h0;", text)
    assert n == 1
    res.verilog.write_text(broken)
    build_bench(res.out_dir, "icarus")
    r = run_bench(res.out_dir, "icarus", timeout=120)
    assert not r.ok and "cycle deadline" in r.line, r.output[-2000:]
    deadline = res.plan.segments[0].deadline
    assert deadline < r.cycles < deadline + 20


def test_pe_bench_catches_a_missing_shortcut_bypass(tmp_path):
    """The PE's cycle bench compares every output register in every cycle: the generated Verilog
    without the shortcut bypass (the multiply uses the old value register on a hit) fails."""
    res = _export(tmp_path, "pe", vectors=400)
    build_bench(res.out_dir, "icarus")
    assert run_bench(res.out_dir, "icarus").ok
    text = res.verilog.read_text()
    broken, n = re.subn(r"(assign \S+\s+=\s+)sc_hit \? sc_value : value;", r"\1value;", text)
    assert n == 1
    res.verilog.write_text(broken)
    build_bench(res.out_dir, "icarus")
    r = run_bench(res.out_dir, "icarus")
    assert not r.ok and "mismatch on o" in r.line, r.output[-2000:]


def test_ppe_bench_catches_a_lost_saturation_flag(tmp_path):
    """The PPE's cycle bench: a result register whose overflow flag is tied low fails; so does one
    flipped expected result (a compared line: the warm-up lines are masked)."""
    res = _export(tmp_path, "ppe", vectors=400)
    build_bench(res.out_dir, "icarus")
    assert run_bench(res.out_dir, "icarus").ok
    masks = (res.out_dir / "o_mask.hex").read_text().splitlines()
    line = next(k for k, m in enumerate(masks) if int(m, 16) & 1)  # psum_error (bit 0) compared
    saved = (res.out_dir / "o.hex").read_text()
    _flip_last_hex_digit(res.out_dir / "o.hex", line)
    r = run_bench(res.out_dir, "icarus")
    assert not r.ok and f"mismatch on o item {line}:" in r.output, r.output[-2000:]
    (res.out_dir / "o.hex").write_text(saved)
    text = res.verilog.read_text()
    broken, n = re.subn(r"res_over <= [^;]+;", "res_over <= 1'h0;", text)
    assert n == 1
    res.verilog.write_text(broken)
    build_bench(res.out_dir, "icarus")
    r = run_bench(res.out_dir, "icarus")
    assert not r.ok and "mismatch on o" in r.line, r.output[-2000:]


def test_pack_rows_matches_pack():
    rng = np.random.default_rng(5)
    for width, count in [(8, 4), (12, 8), (13, 1), (31, 3), (40, 5), (1, 70), (63, 2)]:
        x = rng.integers(-(1 << (width - 1)), 1 << (width - 1), (30, count))
        assert pack_rows(x, width) == [pack(ArrayLayout(width, count), [int(v) for v in r]) for r in x]


def test_never_ready_consumer_fails_at_the_deadline(tmp_path):
    """+stall=256: the bench never takes an output, so the run must end at the deadline."""
    res = _export(tmp_path, "pag", vectors=30)
    build_bench(res.out_dir, "icarus")
    r = run_bench(res.out_dir, "icarus", plusargs=["+stall=256"], timeout=120)
    assert not r.ok and "cycle deadline" in r.line, r.output[-2000:]


def test_exit_status_without_python(tmp_path, capsys):
    """The printed Icarus command runs the bench in a shell: status 0 on PASS, 1 on FAIL."""
    out = tmp_path / "tb"
    assert main(["export-tb", "recip_unit", "--vectors", "50", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    cmd = re.search(r"run on Icarus: +(.*)", printed).group(1)
    assert "Verilator" in printed and "verilator --binary" in printed
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "PASS recip_unit" in proc.stdout, proc.stdout + proc.stderr
    _flip_last_hex_digit(out / "o.hex", 0)
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "FAIL recip_unit" in proc.stdout, proc.stdout


def test_export_tb_run_and_json(tmp_path, capsys):
    target = tmp_path / "tb.json"
    argv = ["export-tb", "cim", "--vectors", "30", "--out", str(tmp_path / "o"), "--run", "icarus",
            "--json", str(target)]
    for k, v in SMALL["cim"].items():
        argv += ["--set", f"{k}={v}"]
    assert main(argv) == 0
    data = json.loads(target.read_text())
    assert data["runs"]["icarus"]["ok"] and data["vectors"] == 30 and data["unit"] == "token"
    assert (tmp_path / "o" / "cim.json").exists() and (tmp_path / "o" / "tb.sv").exists()


def test_waves(tmp_path):
    res = _export(tmp_path, "exp_unit", vectors=20)
    build_bench(res.out_dir, "icarus")
    assert run_bench(res.out_dir, "icarus", waves=True).ok
    assert (res.out_dir / "waves.vcd").stat().st_size > 0


@pytest.mark.parametrize("argv,needle", [
    (["export-tb", "latte_nope"], "no vector-testbench adapter"),
    (["soak", "nope_block", "--vectors", "5"], "no vector-testbench adapter"),
    (["soak", "pe", "--jobs", "-1"], "--jobs"),
    (["export-tb", "exp_unit", "--vectors", "0"], "--vectors"),
    (["export-tb", "exp_unit", "--set", "lut_bits=99"], "lut_bits"),
    (["soak", "exp_unit", "--vectors", "0"], "--vectors"),
])
def test_user_errors(tmp_path, argv, needle):
    proc = subprocess.run([sys.executable, "-m", "attn_rtl.cli", *argv, "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_sim_waves_prints_an_existing_wave_file(capsys):
    """``attn-rtl sim BLOCK --waves`` (cocotb path): an FST/VCD is written and its path printed."""
    assert main(["sim", "exp_unit", "--sim", "icarus", "--set", "lut_bits=6", "--waves"]) == 0
    out = capsys.readouterr().out
    paths = [Path(p) for p in re.findall(r"waves: (\S+)", out)]
    assert paths and all(p.exists() and p.stat().st_size > 0 and p.suffix in (".fst", ".vcd") for p in paths), out
