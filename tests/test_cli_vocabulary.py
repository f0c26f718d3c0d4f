"""One command-line vocabulary: ``--out DIR`` (aliases ``-o``, ``--output``) for every output
directory, ``--json [FILE]`` on every command that prints figures, exit status 2 and one line for
every user error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attn_rtl.cli import build_parser, main


def _options(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {s for a in sub._actions for s in a.option_strings}


@pytest.mark.parametrize("command", ["generate", "accuracy", "synth", "sweep", "run"])
def test_output_directory_is_out_with_aliases(command):
    opts = _options(command)
    assert {"--out", "-o", "--output"} <= opts, f"{command}: {sorted(opts)}"


@pytest.mark.parametrize("command", ["list", "generate", "sim", "accuracy", "synth", "bench", "sweep", "run"])
def test_json_everywhere(command):
    assert "--json" in _options(command)


@pytest.mark.parametrize("spelling", ["--out", "-o", "--output"])
def test_generate_out_spellings(tmp_path, spelling):
    assert main(["generate", "exp_unit", spelling, str(tmp_path / spelling.strip("-"))]) == 0
    assert (tmp_path / spelling.strip("-") / "exp_unit.v").exists()


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "latte" in data and data["exp_unit"]["params"][0]["name"]


def test_generate_json_to_file(tmp_path):
    target = tmp_path / "files.json"
    assert main(["generate", "exp_unit", "--out", str(tmp_path), "--json", str(target)]) == 0
    assert json.loads(target.read_text())["verilog"].endswith("exp_unit.v")


@pytest.mark.parametrize("argv", [
    ["generate"],                                  # missing argument (argparse)
    ["generate", "latte", "--bogus"],              # unknown option (argparse)
    ["generate", "latte", "--bus", "pci"],         # bad choice (argparse)
    ["generate", "nope"],                          # unknown block
    ["generate", "latte", "--set", "d_h=0"],       # parameter out of range
    ["generate", "latte", "--set", "d_h"],         # malformed --set
    ["bench", "no_such_bench"],
    ["synth", "--seeds", "99", "exp_unit"],
    ["sweep", "--set", "b=0", "--no-progress"],
    ["nosuchcommand"],
])
def test_user_errors_exit_2_with_one_line(tmp_path, argv):
    proc = subprocess.run([sys.executable, "-m", "attn_rtl.cli", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, (argv, proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_out_alias_added_to_commands_that_spell_output():
    args = build_parser().parse_args(["run", "--out", "somewhere"])
    assert args.output == "somewhere"
    assert build_parser().parse_args(["run"]).output == "build"  # the command's own default kept
