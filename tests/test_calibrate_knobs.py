"""Issue 14: per-head LATTE τ and MCA α calibration, their parameter files, MCA fast path, E-ATT sweep,
operating points."""

import json

import numpy as np
import pytest

from attn_rtl.cli import main
from golden import cta_params
from golden.calibrate import KnobConfig, build_knob_table, calibrate_knob, mca_fast
from golden.corpus import CALIBRATION_SET
from golden.latte import latte_float
from golden.mca import mca_float
from golden.reference import HeadInputs, relative_error

FOX = "The quick brown fox jumps over the lazy dog."
TEXTS = (CALIBRATION_SET[0], CALIBRATION_SET[13])


@pytest.fixture(scope="module")
def model():
    from golden.minilm import MiniLM

    return MiniLM.load()


def test_mca_fast_matches_golden_mca(model):
    rng = np.random.default_rng(3)
    heads = model.head_inputs(FOX, 2)[:3] + [HeadInputs(rng.normal(size=(5, 16)), rng.normal(size=(9, 16)),
                                                        *(rng.normal(size=(16, 8)),) * 3)]
    for head in heads:
        for alpha, seed in ((0.4, 1), (0.05, 77), (1.0, 2**32 - 1)):
            a, b = mca_float(head, alpha=alpha, seed=seed), mca_fast(head, alpha=alpha, seed=seed)
            assert np.max(np.abs(a.out - b.out)) <= 1e-9 * np.max(np.abs(a.out)) and a.work == b.work
    with pytest.raises(ValueError, match="seed"):
        mca_fast(heads[0], seed=0)
    with pytest.raises(ValueError, match="alpha"):
        mca_fast(heads[0], alpha=1.5)


# -- parameter files --------------------------------------------------------------------------------
def _knob_dict(method="latte", value=12.0):
    key = "tau" if method == "latte" else "alpha"
    return {"format": f"attn-rtl/{method}-params", "version": 1, "n_layers": 6, "n_heads": 12,
            key: [[value] * 12 for _ in range(6)], "budget": {"kind": "cosine", "value": 0.99}}


def test_knob_params_roundtrip(tmp_path):
    d = _knob_dict("mca", 0.4)
    d["alpha"][1][2] = 0.05
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    params = cta_params.load_params(p)
    assert params.method == "MCA" and params.settings_for(1, 2) == {"alpha": 0.05}
    assert params.settings_for(0, 0) == {"alpha": 0.4} and params.median_settings() == {"alpha": 0.4}
    again = cta_params.save(params, tmp_path / "again.json")
    assert cta_params.to_dict(cta_params.load_params(again)) == cta_params.to_dict(params)
    with pytest.raises(cta_params.ParamsError, match="'format'"):
        cta_params.load(p)                      # the CTA-only loader refuses other methods


@pytest.mark.parametrize("method, change, match", [
    ("latte", lambda d: d["tau"][2].__setitem__(3, -1.0), "tau of layer 2 head 3 is -1.0"),
    ("latte", lambda d: d["tau"][0].__setitem__(0, float("nan")), "tau of layer 0 head 0"),
    ("mca", lambda d: d["alpha"][5].__setitem__(11, 0.0), r"alpha of layer 5 head 11 is 0.0; MCA alpha .*\(0, 1\]"),
    ("mca", lambda d: d["alpha"][5].__setitem__(11, 1.5), "alpha of layer 5 head 11 is 1.5"),
    ("mca", lambda d: d["alpha"].pop(), r"shape \(5, 12\), expected \(6, 12\)"),
    ("mca", lambda d: d.pop("alpha"), "missing key 'alpha'"),
    ("latte", lambda d: d.update(format="attn-rtl/other-params"), "'format'"),
    ("latte", lambda d: d.pop("budget"), "missing key 'budget'"),
])
def test_knob_params_malformed(tmp_path, method, change, match):
    d = _knob_dict(method, 0.5)
    change(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(cta_params.ParamsError, match=match):
        cta_params.load_params(p)


# -- calibration ------------------------------------------------------------------------------------
def test_latte_error_budget_met_and_least_work(model):
    cfg = KnobConfig("latte", texts=TEXTS, grid=(0.0, 0.5, 0.8, 0.95), progress=False)
    table = build_knob_table(model, cfg)
    params, summary = calibrate_knob(cfg, budget_error=0.2, model=model, table=table)
    assert params.method == "LATTE" and params.values.shape == (6, 12)
    unmet = {tuple(x) for x in summary["unmet_heads"]}
    assert len(unmet) < 72
    for li, h in ((0, 0), (2, 5), (5, 11)):
        tau = params.value_for(li, h)
        hins = [model.head_inputs(t, li)[h] for t in TEXTS]
        exact = [model.trace(t).layers[li].ctx[h] for t in TEXTS]

        def err(tau, hins=hins, exact=exact):     # recomputed with golden.latte.latte_float
            return float(np.mean([relative_error(latte_float(x, tau=tau).out, e)
                                  for x, e in zip(hins, exact, strict=True)]))

        if (li, h) not in unmet:
            assert err(tau) <= 0.2 + 1e-9
        # least work: every candidate with a smaller τ (fewer kept keys) misses the budget
        for cand in table.values[li, h]:
            if cand < tau:
                assert err(cand) > 0.2
    pt = summary["calibration_point"]
    assert 0 < pt["kept_ratio"] <= 1 and 0 < pt["bit_ops_fraction"] <= 1


def test_latte_cosine_budget_met(model):
    cfg = KnobConfig("latte", texts=TEXTS, grid=(0.0, 0.5, 0.8, 0.95), progress=False, quick=True)
    params, summary = calibrate_knob(cfg, budget_cosine=0.995, model=model)
    assert summary["budget_met_on_calibration"]
    exact = model.embed(list(TEXTS))
    emb = model.embed(list(TEXTS), head_fn=latte_float, settings_for=params.settings_for)
    cos = np.sum(emb * exact, axis=1)
    assert np.mean(cos) >= 0.995 and np.mean(cos) == pytest.approx(summary["calibration_point"]["cosine_mean"])


def test_mca_error_budget_and_work(model):
    cfg = KnobConfig("mca", texts=TEXTS[:1], grid=(0.02, 0.2, 1.0), seeds=(5, 6), progress=False)
    table = build_knob_table(model, cfg)
    # the table's error of one head and α, recomputed with golden.mca.mca_float
    li, h, ci = 1, 4, 1
    hin = model.head_inputs(TEXTS[0], li)[h]
    exact = model.trace(TEXTS[0]).layers[li].ctx[h]
    ref = np.mean([relative_error(mca_float(hin, alpha=0.2, seed=s).out, exact) for s in (5, 6)])
    assert table.err[li, h, ci] == pytest.approx(ref, rel=1e-9)
    assert np.all(np.diff(table.work, axis=-1) <= 0)       # larger α, fewer samples
    budget = float(np.median(table.err[..., 0]))
    params, summary = calibrate_knob(cfg, budget_error=budget, model=model, table=table)
    met = ~np.isin(np.arange(72), [a * 12 + b for a, b in summary["unmet_heads"]]).reshape(6, 12)
    chosen = np.take_along_axis(table.err, np.searchsorted([0.02, 0.2, 1.0], params.values)[..., None], -1)[..., 0]
    assert np.all(chosen[met] <= budget) and met.any() and (~met).any()
    assert params.seeds == (5, 6) and 0 < summary["calibration_point"]["flops_fraction"] <= 1


def test_knob_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_knob(KnobConfig("latte", quick=True))
    with pytest.raises(ValueError, match="unknown method"):
        calibrate_knob(KnobConfig("eatt", quick=True), budget_error=0.1)
    with pytest.raises(ValueError, match="alpha"):
        build_knob_table(None, KnobConfig("mca", texts=(FOX,), grid=(0.0,)))


# -- CLI, report --------------------------------------------------------------------------------------
def test_cli_calibrate_latte_mca_then_accuracy(tmp_path, capsys):
    lat, mca = tmp_path / "latte.json", tmp_path / "mca.json"
    assert main(["calibrate", "latte", "--quick", "--budget-cosine", "0.99", "--out", str(lat), "--no-progress"]) == 0
    assert "LATTE tau calibrated" in capsys.readouterr().out
    assert main(["calibrate", "mca", "--quick", "--budget-error", "1.5", "--seeds", "1", "--out", str(mca),
                 "--no-progress"]) == 0
    assert cta_params.load_params(lat).budget == {"kind": "cosine", "value": 0.99}
    assert cta_params.load_params(mca).seeds == (101,)
    texts = tmp_path / "texts.txt"
    texts.write_text("A cat sat on the mat.\nDogs like to chase balls in the park.\nThe stock market fell today.\n")
    acc = tmp_path / "acc"
    assert main(["accuracy", "--methods", "LATTE,MCA,E-ATT", "--params", f"{lat},{mca}", "--text-file", str(texts),
                 "--no-fixed", "--no-progress", "--no-plots", "--jobs", "1", "--seeds", "2", "--quick",
                 "--budgets", "0.99", "--out", str(acc)]) == 0
    out = capsys.readouterr().out
    assert "Operating points" in out and "| LATTE | 0.99 |" in out
    data = json.loads((acc / "accuracy.json").read_text())
    names = {m["name"]: m for m in data["methods"]}
    cal = {m: [r for r in names[m]["results"] if r["calibrated"]] for m in ("LATTE", "MCA")}
    assert len(cal["LATTE"]) == 1 and cal["LATTE"][0]["budget"] == {"kind": "cosine", "value": 0.99}
    assert cal["MCA"][0]["real"]["seeds"]["n"] == 2                        # MCA points are seed-averaged
    assert len([r for r in names["E-ATT"]["results"] if r["in_sweep"]]) >= 3  # E-ATT has a curve
    ops = {(p["method"], p["budget_cosine"]): p for p in data["operating_points"]}
    assert ops[("LATTE", 0.99)]["calibrated"]["label"] == "calibrated"
    assert set(ops[("LATTE", 0.99)]["calibrated"]["work"]) == {"kept keys", "bit ops"}
    assert (acc / "operating_points.md").read_text().startswith("Operating points")
    assert main(["accuracy", "--params", str(tmp_path), "--budgets", "2", "--no-progress"]) == 2
    assert main(["accuracy", "--params", str(tmp_path / "nothing"), "--no-progress"]) == 2


def _row(label, cos, work, calibrated=False, budget=None):
    r = {"label": label, "calibrated": calibrated, "embedding": {"float": {"cosine_mean": cos, "cosine_min": cos}},
         "real": {"work_fraction": work, "rel_error_mean": 0.1}, "work_figures": {"w": work}}
    if budget is not None:
        r["budget"] = {"kind": "cosine", "value": budget}
    return r


def test_operating_points_pick_least_work_meeting_budget():
    from golden.accuracy import format_operating_points, operating_points

    m = {"name": "X", "available": True, "results": [
        _row("a", 0.9995, 0.9), _row("b", 0.996, 0.5), _row("c", 0.991, 0.3), _row("d", 0.95, 0.1),
        _row("cal", 0.992, 0.2, True, 0.995)]}
    pts = {p["budget_cosine"]: p for p in operating_points([m], (0.999, 0.995, 0.99, 0.9999))}
    assert pts[0.999]["global"]["label"] == "a" and pts[0.995]["global"]["label"] == "b"
    assert pts[0.99]["global"]["label"] == "c"
    assert pts[0.9999]["global"]["met"] is False and pts[0.9999]["global"]["best"]["label"] == "a"
    assert pts[0.995]["calibrated"]["label"] == "cal" and "calibrated" not in pts[0.99]
    table = format_operating_points({"operating_points": list(pts.values()), "corpus": {"texts": 3}})
    assert "| X | 0.995 | b | 0.9960 | w 0.500 | cal (missed) | 0.9920 | w 0.200 |" in table
    assert "not reached (best a)" in table


def test_cli_several_budgets_share_one_table(tmp_path, capsys):
    out = tmp_path / "lat.json"
    assert main(["calibrate", "latte", "--quick", "--budget-error", "0.15,0.6", "--out", str(out),
                 "--no-progress"]) == 0
    tight, loose = (cta_params.load_params(tmp_path / f"lat_err{b}.json") for b in ("0.15", "0.6"))
    assert tight.budget["value"] == 0.15 and loose.budget["value"] == 0.6
    assert np.all(tight.values >= loose.values) and np.any(tight.values > loose.values)  # tighter: more keys kept
    assert capsys.readouterr().out.count("wrote") == 2
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "latte", "--quick", "--budget-error", "0.1,x", "--no-progress"])
    assert exc.value.code == 2
    assert main(["calibrate", "mca", "--quick", "--budget-cosine", "1.5", "--no-progress"]) == 2
