"""``attn-rtl sweep``: a tiny sweep on a local Dask cluster of 2 workers, the cache (resume), an
existing scheduler (``--scheduler``), the PAG model, the Pareto front and bad axes."""

from __future__ import annotations

import json

import pytest

from attn_rtl.cli import main
from sim.sweep import SweepError, default_grid, expand_grid, pag_cycles, pareto_front

TIMEOUT = "240"  # seconds for a whole test sweep (the tiny grid takes a few seconds)


def test_quick_sweep_on_local_cluster_then_resume(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--quick", "--workers", "2", "--out", str(out), "--no-progress", "--timeout", TIMEOUT]
    assert main(argv + ["--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "4 points, 0 cached, 4 to run" in text
    for name in ("sweep.json", "sweep.md", "fig13.png", "pareto.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((tmp_path / "s.json").read_text())
    rows = data["points"]
    assert data["axes"] == ["b", "pag"] and len(rows) == 4
    for r in rows:
        assert r["cycles"] == r["sa_cycles"] + r["pag_stall"]
        assert 0 <= r["pag_stall"] <= r["pag_cycles"]
        assert r["throughput_q_per_kcycle"] == pytest.approx(1000 * r["m"] / r["cycles"])
        assert 0 < r["rel_error"] < 1 and r["k0"] >= 1
    by = {(r["b"], r["pag"]): r for r in rows}
    for b in (4, 8):  # more PAG parallelism never costs cycles; the SA part does not depend on it
        assert by[b, 16]["cycles"] <= by[b, 4]["cycles"]
        assert by[b, 16]["sa_cycles"] == by[b, 4]["sa_cycles"]
    assert by[8, 16]["sa_cycles"] < by[4, 16]["sa_cycles"]  # a wider array is faster
    # resume: every point cached; after losing one result only that point runs again
    assert main(argv) == 0
    assert "4 points, 4 cached, 0 to run" in capsys.readouterr().out
    victim = sorted((out / "cache").glob("*.json"))[0]
    victim.unlink()
    assert main(argv) == 0
    assert "4 points, 3 cached, 1 to run" in capsys.readouterr().out
    again = json.loads((out / "sweep.json").read_text())["points"]
    assert [r["cycles"] for r in again] == [r["cycles"] for r in rows]


def test_sweep_on_an_existing_scheduler(tmp_path, capsys):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      dashboard_address=None) as cluster:
        assert main(["sweep", "--quick", "--set", "pag=8", "--scheduler", cluster.scheduler_address,
                     "--out", str(tmp_path), "--no-progress", "--no-plots", "--timeout", TIMEOUT,
                     "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scheduler"] == cluster.scheduler_address
    assert [r["b"] for r in data["points"]] == [4, 8] and {r["pag"] for r in data["points"]} == {8}


def test_pag_model_and_pareto_front():
    assert pag_cycles([8, 8, 3], n=10, pag=4) == [20, 20, 8]
    rows = [{"c": 1, "t": 1.0}, {"c": 2, "t": 3.0}, {"c": 3, "t": 2.0}, {"c": 4, "t": 5.0}]
    assert [r["c"] for r in pareto_front(rows, "c", "t")] == [1, 2, 4]


def test_default_grid_is_fig13():
    grid = default_grid()
    assert grid.axes["pag"] == [4, 8, 16, 32, 64, 128] and grid.fixed["head"] == "minilm"


@pytest.mark.parametrize("sets,needle", [
    ({"b": "0"}, "b=0 out of range"),
    ({"bogus": "1"}, "unknown sweep axis 'bogus'"),
    ({"pag": "x"}, "pag='x'"),
    ({"b": "4", "l": "6"}, "l=6 > b=4"),
    ({"d": "8"}, "d_h=16"),
])
def test_bad_axes(sets, needle):
    with pytest.raises(SweepError, match=needle):
        expand_grid(default_grid(True), sets)
