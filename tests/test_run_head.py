"""``attn-rtl run`` on a short real MiniLM head: the SA program of the whole head (d_in = 384 tiled
into 12 passes of d = 32) on Verilator, bit-exact, cycles == the golden model (the default
256-token head on the 8x64 array runs in ``make run``)."""

import json

import pytest

from attn_rtl.cli import main

FOX = "The quick brown fox jumps over the lazy dog."


@pytest.mark.cocotb
def test_run_short_minilm_head_bit_exact(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main(["run", "sa-head", "--text", FOX, "--layer", "3", "--head", "1", "--set", "d=32",
                 "--widths", "8", "8", "4", "-o", str(tmp_path), "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["bit_exact"] is True and fig["cycles_equal_model"] is True
    assert fig["d_in"] == 384 and fig["d"] == 32 and fig["k0"] >= 1
    assert "bit_exact: true" in capsys.readouterr().out


def test_run_rejects_bad_head(capsys):
    assert main(["run", "--head", "12"]) == 2
    assert "--head 12" in capsys.readouterr().err


@pytest.mark.cocotb
def test_run_cta_block_on_a_short_minilm_head(tmp_path, capsys):
    """The cta block (b = 8, d = 32, n_max = 16) on a real 12-token head (d_in = 384 in 12 passes):
    every output row == golden.cta (the default block on a 256-token head runs in ``make run``)."""
    out = tmp_path / "cta.json"
    assert main(["run", "--text", FOX, "--layer", "3", "--head", "1", "--set", "d=32", "--set", "n_max=16",
                 "--set", "d_in_max=384", "--widths", "8", "8", "4", "-o", str(tmp_path), "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["bit_exact"] is True and fig["block"] == "cta" and fig["m"] == fig["n"] == 12
    assert fig["cycles_equal_model"] is True and set(fig["groups"]) >= {"compression", "linear", "attention"}
    assert "bit_exact: true" in capsys.readouterr().out
