"""``attn-rtl soak`` (:func:`sim.vector_tb.soak`): batches, figures, reproducibility, and a wrong
expected value in a later batch is reported as a failing run."""

from __future__ import annotations

import json
import shutil

import pytest

import sim.vector_tb as vt
from attn_rtl.cli import main

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")


def test_soak_batches_and_figures(tmp_path):
    res = vt.soak("exp_unit", {}, tmp_path / "a", vectors=2500, seed=4, sim="icarus", batch=1000, log=None)
    assert res["ok"] and res["vectors"] == 2500 and res["failing_runs"] == 0
    assert res["runs"] == 3 and res["unit"] == "input"
    assert res["cycles"] > 2500 and res["vectors_per_second"] > 0 and res["cycles_per_second"] > 0
    again = vt.soak("exp_unit", {}, tmp_path / "b", vectors=2500, seed=4, sim="icarus", batch=1000, log=None)
    assert again["cycles"] == res["cycles"]  # same seed: same vectors, same stalls
    other = vt.soak("exp_unit", {}, tmp_path / "c", vectors=2500, seed=5, sim="icarus", batch=1000, log=None)
    assert other["ok"] and other["cycles"] != res["cycles"]


def test_soak_reports_a_wrong_expected_value(tmp_path, monkeypatch):
    """Batch 1 (the second) gets one wrong golden value: the soak fails there and names it."""
    original = vt.ADAPTERS["exp_unit"]
    calls = []

    def faulty(comp, params, rng, n, corners):
        plan = original(comp, params, rng, n, corners)
        calls.append(n)
        if len(calls) == 2:
            y, over = plan.segments[0].items["y"][7]
            plan.segments[0].items["y"][7] = (y ^ 1, over)
        return plan

    monkeypatch.setitem(vt.ADAPTERS, "exp_unit", faulty)
    res = vt.soak("exp_unit", {}, tmp_path, vectors=3000, seed=4, sim="icarus", batch=1000, log=None)
    assert not res["ok"] and res["failing_runs"] == 1
    assert res["first_failure"]["batch"] == 1 and "mismatch on y" in res["first_failure"]["line"]
    assert res["vectors"] == 2000  # stopped after the failing batch


def test_soak_command_json(tmp_path, capsys):
    argv = ["soak", "cim", "--vectors", "300", "--seed", "3", "--sim", "icarus", "--batch", "100",
            "--out", str(tmp_path), "--json"]
    for k, v in {"l": 4, "hash_width": 3, "n_max": 64, "k_max": 32, "epoch_bits": 2}.items():
        argv += ["--set", f"{k}={v}"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["vectors"] >= 300 and data["seed"] == 3 and data["sim"] == "icarus"
    assert data["unit"] == "token" and data["failing_runs"] == 0


def test_soak_prints_progress_and_reproduce_line(tmp_path, capsys):
    assert main(["soak", "recip_unit", "--vectors", "500", "--batch", "250", "--sim", "icarus", "--seed", "9",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS soak recip_unit: 500 inputs, 1000 beats (500 in, 500 out), 0 failing run(s)" in out
    assert "--seed 9" in out and "cycles/s" in out and "inputs/s" in out


def test_soak_worker_processes_give_the_same_run(tmp_path):
    """Batches computed by worker processes (jobs=2) are the vectors the soak computes in-process
    (jobs=0): same transfers and the same cycle count; a PE soak (cycle streams) on top."""
    kw = {"vectors": 90, "seed": 6, "sim": "icarus", "batch": 30, "log": None}
    a = vt.soak("eatt_align", {}, tmp_path / "a", jobs=0, **kw)
    b = vt.soak("eatt_align", {}, tmp_path / "b", jobs=2, **kw)
    assert a["ok"] and b["ok"] and a["runs"] == b["runs"] == 3
    assert (a["cycles"], a["vectors"]) == (b["cycles"], b["vectors"])
    pe = vt.soak("pe", {"b": 2}, tmp_path / "pe", vectors=3000, seed=2, sim="icarus", batch=1000, log=None)
    assert pe["ok"] and pe["unit"] == "cycle" and pe["runs"] == 3 and pe["cycles"] > 3000


def test_soak_min_beats_adds_batches(tmp_path):
    """``min_beats``: batches are added past ``vectors`` until the bench has counted that many beats
    on the DUT's ports (exp_unit: one in and one out per input)."""
    res = vt.soak("exp_unit", {}, tmp_path, vectors=500, seed=4, sim="icarus", batch=500, min_beats=2500, log=None)
    assert res["ok"] and res["beats_in"] + res["beats_out"] >= 2500
    assert res["beats_in"] == res["beats_out"] == res["vectors"] and res["vectors"] >= 1250
    assert res["runs"] >= 3
    with pytest.raises(ValueError, match="min_beats"):
        vt.soak("exp_unit", {}, tmp_path, vectors=10, min_beats=-1, log=None)
