"""Issue 14: corpus split, CTA parameter files, per-head calibration, ``attn-rtl calibrate``."""

import json

import numpy as np
import pytest

from attn_rtl.cli import main
from golden import cta_params
from golden.calibrate import CalibConfig, calibrate_cta, cta_fast, embed_cta
from golden.corpus import CALIBRATION_SET, EVALUATION, calibration_texts, evaluation_texts, read_text_file
from golden.cta import cta_float
from golden.reference import HeadInputs, relative_error

FOX = "The quick brown fox jumps over the lazy dog."
TEXTS = (CALIBRATION_SET[0], CALIBRATION_SET[13])          # two short calibration texts
GRID = ((8.0, 32.0), (12.0, 32.0), (8.0, 32.0))
SEEDS = (100, 101, 102)


@pytest.fixture(scope="module")
def model():
    from golden.minilm import MiniLM

    return MiniLM.load()


def test_corpus_split():
    assert len(EVALUATION) + len(CALIBRATION_SET) >= 50 and len(EVALUATION) >= 25 and len(CALIBRATION_SET) >= 25
    assert not set(EVALUATION) & set(CALIBRATION_SET)
    assert set(evaluation_texts(True)) <= set(EVALUATION) and set(calibration_texts(True)) <= set(CALIBRATION_SET)
    assert len(set(EVALUATION)) == len(EVALUATION) and len(set(CALIBRATION_SET)) == len(CALIBRATION_SET)


def test_corpus_lengths(model):
    for split in (EVALUATION, CALIBRATION_SET):
        n = [len(model.tokenize(t)) for t in split]
        assert min(n) < 12 and sum(x >= 200 for x in n) >= 3, n   # very short ones and near the 256 limit


def test_read_text_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("first text\n\n# a comment\n  second text  \n")
    assert read_text_file(str(p)) == ("first text", "second text")
    p.write_text("\n# only a comment\n")
    with pytest.raises(ValueError, match="no texts"):
        read_text_file(str(p))


def test_cta_fast_matches_golden_cta(model):
    rng = np.random.default_rng(1)
    heads = model.head_inputs(FOX, 3)[:4] + [HeadInputs(rng.normal(size=(9, 16)), rng.normal(size=(13, 16)),
                                                        *(rng.normal(size=(16, 8)),) * 3)]
    for head in heads:
        for widths, seed in ((24.0, 0), ((6.0, 16.0, 3.0), 7)):
            a, b = cta_float(head, widths=widths, seed=seed), cta_fast(head, widths=widths, seed=seed)
            assert np.max(np.abs(a.out - b.out)) < 1e-9 and a.work == b.work


def test_embed_cta_matches_golden_cta(model):
    def widths(li, h):
        return (8.0 + h, 16.0 + li, 4.0)

    ref = model.embed([FOX], head_fn=cta_float, settings_for=lambda li, h: {"widths": widths(li, h), "seed": 5})
    assert np.max(np.abs(embed_cta(model, [FOX], widths, seed=5) - ref)) < 1e-9


# -- parameter files --------------------------------------------------------------------------------
def _valid():
    return cta_params.to_dict(cta_params.CTAParams(widths=np.full((6, 12, 3), 16.0), budget={"kind": "error",
                                                                                            "value": 0.2}))


def test_params_roundtrip(tmp_path):
    d = _valid()
    d["widths"][2][5] = [4.0, 8.0, 32.0]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(d))
    params = cta_params.load(p)
    assert params.widths_for(2, 5) == (4.0, 8.0, 32.0) and params.settings_for(0, 0) == {"l": 6,
                                                                                         "widths": (16.0,) * 3}
    assert params.budget == {"kind": "error", "value": 0.2}
    with pytest.raises(IndexError):
        params.widths_for(6, 0)


@pytest.mark.parametrize("change, match", [
    (lambda d: d.pop("widths"), "missing key 'widths'"),
    (lambda d: d.pop("budget"), "missing key 'budget'"),
    (lambda d: d.update(version=2), "unsupported version"),
    (lambda d: d.update(format="other"), "'format'"),
    (lambda d: d["widths"].pop(), r"shape \(5, 12, 3\), expected \(6, 12, 3\)"),
    (lambda d: d["widths"][1][2].pop(), "must be a 6 x 12 x 3 array|shape"),
    (lambda d: d["widths"][4][7].__setitem__(1, 0.0), "w1 of layer 4 head 7 is 0.0"),
    (lambda d: d["widths"][0][0].__setitem__(2, -3), "w2 of layer 0 head 0"),
    (lambda d: d["budget"].update(kind="speed"), "budget kind"),
    (lambda d: d.update(l=0), "'l' must be an integer"),
])
def test_params_malformed(tmp_path, change, match):
    d = _valid()
    change(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(cta_params.ParamsError, match=match):
        cta_params.load(p)


def test_params_not_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(cta_params.ParamsError, match="not valid JSON"):
        cta_params.load(p)
    with pytest.raises(FileNotFoundError):
        cta_params.load(tmp_path / "missing.json")


# -- calibration ------------------------------------------------------------------------------------
def _golden_error(model, widths, layer, head, seeds=SEEDS):
    errs = []
    for text in TEXTS:
        hin = model.head_inputs(text, layer)[head]
        exact = model.trace(text).layers[layer].ctx[head]
        errs += [relative_error(cta_float(hin, widths=widths, seed=s).out, exact) for s in seeds]
    return float(np.mean(errs))


def test_error_budget_met_and_least_work(model):
    cfg = CalibConfig(texts=TEXTS, grid=GRID, seeds=SEEDS, progress=False)
    params, summary = calibrate_cta(cfg, budget_error=0.25, model=model)
    assert params.widths.shape == (6, 12, 3) and params.budget == {"kind": "error", "value": 0.25}
    unmet = {tuple(x) for x in summary["unmet_heads"]}
    assert len(unmet) < 72
    combos = [(a, b, c) for a in GRID[0] for b in GRID[1] for c in GRID[2]]
    for li in range(6):
        for h in range(12):
            w = params.widths_for(li, h)
            err = _golden_error(model, w, li, h)          # recomputed with golden.cta.cta_float
            if (li, h) not in unmet:
                assert err <= 0.25 + 1e-9, (li, h, w, err)
    # least work: no coarser grid point of one head also meets the budget with less attention work
    li, h = next((a, b) for a in range(6) for b in range(12) if (a, b) not in unmet)
    chosen = params.widths_for(li, h)

    def work(w):
        return sum(cta_float(model.head_inputs(t, li)[h], widths=w, seed=s).work["attention_ops"]
                   for t in TEXTS for s in SEEDS)

    for w in combos:
        if work(w) < work(chosen):
            assert _golden_error(model, w, li, h) > 0.25
    assert 0 < summary["calibration_point"]["RA"] <= 1.1 and 0 < summary["calibration_point"]["RL"] <= 1.1


def test_cosine_budget_met(model):
    cfg = CalibConfig(texts=TEXTS, grid=GRID, seeds=SEEDS, progress=False, quick=True)
    params, summary = calibrate_cta(cfg, budget_cosine=0.995, model=model)
    assert params.budget["kind"] == "cosine" and summary["budget_met_on_calibration"]
    exact = model.embed(list(TEXTS))
    cos = []
    for s in SEEDS:                                       # recomputed with golden.cta.cta_float
        emb = model.embed(list(TEXTS), head_fn=cta_float,
                          settings_for=lambda li, h, s=s: {**params.settings_for(li, h), "seed": s})
        cos += list(np.sum(emb * exact, axis=1))
    assert np.mean(cos) >= 0.995 and np.mean(cos) == pytest.approx(summary["calibration_point"]["cosine_mean"])


def test_budget_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_cta(CalibConfig(quick=True), budget_error=0.1, budget_cosine=0.9)
    with pytest.raises(ValueError, match="cosine budget"):
        calibrate_cta(CalibConfig(quick=True), budget_cosine=1.5)


def test_cli_calibrate_then_accuracy(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["calibrate", "cta", "--quick", "--budget-error", "0.3", "--out", str(out), "--no-progress"]) == 0
    assert "RA" in capsys.readouterr().out
    params = cta_params.load(out)
    assert params.budget == {"kind": "error", "value": 0.3} and len(params.seeds) >= 3
    assert main(["calibrate", "cta", "--quick", "--out", str(out)]) == 2
    texts = tmp_path / "texts.txt"
    texts.write_text("A cat sat on the mat.\nDogs like to chase balls in the park.\nThe stock market fell today.\n")
    acc = tmp_path / "acc"
    assert main(["accuracy", "--methods", "CTA", "--params", str(out), "--text-file", str(texts), "--no-sweep",
                 "--no-fixed", "--no-progress", "--no-plots", "--jobs", "1", "--out", str(acc)]) == 0
    table = capsys.readouterr().out
    assert "calibrated" in table and "Retrieval" in table and "5 seeds" in table
    data = json.loads((acc / "accuracy.json").read_text())
    assert data["corpus"]["texts"] == 3 and data["config"]["seeds"] == [0, 1, 2, 3, 4]
    rows = {r["label"]: r for r in data["methods"][0]["results"]}
    assert set(rows) == {"w=24", "calibrated"}
    for r in rows.values():
        lo, hi = r["real"]["seeds"]["spread"]["rel_error_mean"]
        assert lo <= r["real"]["rel_error_mean"] <= hi and r["real"]["seeds"]["n"] == 5
        assert -1 <= r["retrieval"]["spearman"] <= 1 and 0 <= r["retrieval"]["top1_agreement"] <= 1
        assert len(r["retrieval"]["spearman_spread"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["accuracy", "--methods", "CTA", "--params", str(bad), "--no-progress"]) == 2


def test_cli_error_contributions(tmp_path, capsys):
    """--contributions: tiny widths (a cluster per token) make CTA exact (cosine 1 in every
    variant); huge widths lose accuracy in every layer; the JSON has per-layer figures."""
    from golden.cta_params import CTAParams

    texts = tmp_path / "t.txt"
    texts.write_text("The quick brown fox jumps over the lazy dog.\nRain is expected tomorrow.\n"
                     "Attention layers cost the most.\n")
    for w, exact in ((1e-3, True), (1e3, False)):
        p = cta_params.save(CTAParams(widths=np.full((6, 12, 3), w), budget={"kind": "error", "value": 0.1}),
                            tmp_path / f"w{w}.json")
        out = tmp_path / f"c{w}.json"
        assert main(["calibrate", "cta", "--contributions", str(p), "--text-file", str(texts), "--seeds", "1",
                     "--out", str(out)]) == 0
        res = json.loads(out.read_text())
        assert res["texts"] == 3 and len(res["cosine_only_layer"]) == 6 and len(res["RA_per_layer"]) == 6
        assert sum(res["work_share_per_layer"]) == pytest.approx(1.0)
        assert sum(res["attention_ops_per_text"]) / sum(res["attention_ops_exact_per_text"]) == pytest.approx(res["RA"])
        if exact:
            assert min(res["cosine_only_layer"] + res["cosine_all_but_layer"]) > 1 - 1e-9
            assert res["cosine_everywhere"] > 1 - 1e-9 and res["RA"] > 1
        else:
            assert res["cosine_everywhere"] < 0.99 and res["RA"] < 0.5
            assert max(res["cosine_only_layer"]) < 1 - 1e-6
    assert "layer  RA" in capsys.readouterr().out
    assert main(["calibrate", "latte", "--contributions", str(p)]) == 2
