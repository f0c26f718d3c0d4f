import json
import subprocess
import sys

from attn_rtl.cli import main
from hdl.arith import ExpUnit


def test_list_names_blocks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "exp_unit" in out and "lut_bits" in out


def test_generate_writes_verilog_and_manifest(tmp_path):
    assert main(["generate", "exp_unit", "--set", "lut_bits=6", "-o", str(tmp_path)]) == 0
    text = (tmp_path / "exp_unit.v").read_text()
    assert "module exp_unit" in text
    man = json.loads((tmp_path / "exp_unit.json").read_text())
    assert man["parameters"]["lut_bits"] == 6
    assert man["latency"] == ExpUnit.LATENCY
    ports = {p["name"]: p for p in man["ports"]}
    assert ports["x"]["signed"] and ports["x"]["width"] == 16 and ports["y"]["direction"] == "output"


def test_bad_parameter_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "attn_rtl.cli", "generate", "exp_unit", "--set", "lut_bits=99",
                           "-o", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "lut_bits" in proc.stderr and "[1, 12]" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unknown_block_and_parameter(capsys):
    assert main(["generate", "nope"]) == 2
    assert "unknown block 'nope'" in capsys.readouterr().err
    assert main(["generate", "exp_unit", "--set", "depth=3"]) == 2
    assert "no parameter 'depth'" in capsys.readouterr().err
