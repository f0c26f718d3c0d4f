"""golden.accuracy / ``attn-rtl accuracy`` on tiny configurations."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from attn_rtl.cli import main
from golden.accuracy import (
    AccuracyConfig,
    MethodSpec,
    Setting,
    _calib_tag,
    builtin_methods,
    format_table,
    plot_tradeoffs,
    run_accuracy,
    write_report,
)
from golden.corpus import CALIBRATION
from golden.reference import MethodResult, exact_head

FOX = "The quick brown fox jumps over the lazy dog."
TINY = AccuracyConfig(texts=(FOX,), calibration_texts=(CALIBRATION[0],), layers=(0, 5), random_heads=2, random_n=16,
                      random_d_in=32, random_d_h=8, jobs=1, progress=False)


def _uniform(head, **_):
    """A deliberately bad method: uniform attention (the mean of V for every query)."""
    _, _, v = head.qkv()
    return MethodResult(np.repeat(v.mean(axis=0, keepdims=True), head.m, axis=0), {"work": 0.5})


def _scaled(head, *, factor, **_):
    """Exact attention times (1 + factor): relative error exactly ``factor``, cosine exactly 1."""
    return MethodResult(exact_head(head).out * (1.0 + factor), {"factor": factor, "vector": np.ones(3)})


def _not_yet(head, **_):
    raise NotImplementedError("later")


def _small_only(head, **_):
    """A fixed model that only covers d_in <= 100 (like a bounded systolic array)."""
    if head.d_in > 100:
        raise NotImplementedError(f"d_in={head.d_in} too large")
    return exact_head(head)


calib_seen = []


def _calibrate(heads, settings):
    calib_seen.append(len(heads))
    return {"factor": settings["target"]}


def _missing():
    import golden.no_such_module  # noqa: F401


SPECS = [
    MethodSpec("exact", "exact", load=lambda: (exact_head, exact_head), default=Setting("d")),
    MethodSpec("bad", "uniform", load=lambda: (_uniform, _not_yet), default=Setting("d"),
               work_fraction=lambda w: w["work"]),
    MethodSpec("scaled", "scaled", load=lambda: (_scaled, None), default=Setting("t=0.1", {"target": 0.1}),
               sweep=(Setting("t=0.1", {"target": 0.1}), Setting("t=0.3", {"target": 0.3})),
               sweep_label="target", work_fraction=lambda w: 1 - w["factor"], calibrate=_calibrate),
    MethodSpec("missing", "absent", load=_missing, default=Setting("d")),
    MethodSpec("partial", "fixed model for small heads only", load=lambda: (exact_head, _small_only),
               default=Setting("d")),
]


@pytest.fixture(scope="module")
def report():
    return run_accuracy(TINY, SPECS)


def _method(report, name):
    return next(m for m in report["methods"] if m["name"] == name)


def test_exact_method_has_zero_error(report):
    row = _method(report, "exact")["results"][0]
    for part in ("real", "random"):
        assert row[part]["rel_error_max"] < 1e-12 and row[part]["cosine_min"] > 1 - 1e-12
        assert row[part]["fixed_vs_float"]["rel_error_max"] == 0.0
    assert row["real"]["heads"] == 2 * 12 and row["random"]["heads"] == 2
    assert set(row["real"]["rel_error_per_layer"]) == {"0", "5"}
    assert row["embedding"]["float"]["cosine_min"] > 1 - 1e-12
    assert row["embedding"]["fixed"]["cosine_min"] > 1 - 1e-12


def test_bad_method_is_detected(report):
    m = _method(report, "bad")
    row = m["results"][0]
    assert row["real"]["rel_error_mean"] > 0.2 and row["real"]["cosine_mean"] < 0.98
    assert row["random"]["rel_error_mean"] > 0.2
    assert row["embedding"]["float"]["cosine_mean"] < 0.99
    assert row["real"]["work_fraction"] == 0.5
    # its fixed model raises NotImplementedError: reported, not crashed
    assert m["has_fixed"] is False and "not available" in m["fixed_note"]


def test_settings_calibration_and_sweep(report):
    m = _method(report, "scaled")
    rows = {r["label"]: r for r in m["results"]}
    assert set(rows) == {"t=0.1", "t=0.3"} and rows["t=0.1"]["default"] and rows["t=0.3"]["in_sweep"]
    for label, f in (("t=0.1", 0.1), ("t=0.3", 0.3)):
        for part in ("real", "random"):
            assert rows[label][part]["rel_error_mean"] == pytest.approx(f, abs=1e-12)
            assert rows[label][part]["cosine_min"] == pytest.approx(1.0, abs=1e-12)
            assert rows[label][part]["work_fraction"] == pytest.approx(1 - f)
            assert "vector" not in rows[label][part]["work"]  # non-scalar work entries are not averaged
    # calibration saw the held-out texts (one text per head position) and the 4 random calibration heads
    assert set(calib_seen) <= {1, 4} and 1 in calib_seen and 4 in calib_seen
    assert rows["t=0.3"]["embedding"]["float"]["cosine_mean"] < 1 - 1e-6


def test_missing_module_is_not_available(report):
    m = _method(report, "missing")
    assert m["available"] is False and "golden.no_such_module" in m["reason"]
    assert "missing" in format_table(report) and "not available" in format_table(report)


def test_fixed_model_limited_to_some_shapes(report):
    row = _method(report, "partial")["results"][0]
    assert "d_in=384 too large" in row["real"]["fixed_error"] and "fixed" not in row["real"]
    assert row["random"]["fixed"]["rel_error_max"] < 1e-12  # random heads have d_in = 32
    assert "too large" in row["embedding"]["fixed"]["error"]
    assert "fixed model on MiniLM heads" in format_table(report)


def test_report_files(report, tmp_path):
    paths = write_report(report, tmp_path)
    names = {p.name for p in paths}
    assert {"accuracy.json", "accuracy.txt", "tradeoff.png"} <= names
    data = json.loads((tmp_path / "accuracy.json").read_text())
    assert [m["name"] for m in data["methods"]] == ["exact", "bad", "scaled", "missing", "partial"]
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_method_name():
    with pytest.raises(ValueError, match="unknown method"):
        run_accuracy(AccuracyConfig(methods=("nope",)), SPECS)


def _check_ranges(stats):
    assert math.isfinite(stats["rel_error_mean"]) and 0 <= stats["rel_error_mean"] <= stats["rel_error_max"]
    assert -1 <= stats["cosine_min"] <= stats["cosine_mean"] <= 1


def test_builtin_methods_all_available_and_sane():
    """All four methods (and the fixed-point reference) run on real activations: finite, in range."""
    cfg = AccuracyConfig(texts=(FOX,), calibration_texts=(CALIBRATION[0],), layers=(1,), random_heads=1,
                         random_n=24, jobs=1, progress=False, sweep=False)
    rep = run_accuracy(cfg, builtin_methods(quick=True))
    names = {m["name"]: m for m in rep["methods"]}
    assert set(names) == {"Reference", "CTA", "LATTE", "E-ATT", "MCA"}
    for name, m in names.items():
        assert m["available"], (name, m.get("reason"))
        row = m["results"][0]
        for part in ("real", "random"):
            _check_ranges(row[part])
            assert 0 < row[part]["work_fraction"] <= 1.2
        assert -1 <= row["embedding"]["float"]["cosine_mean"] <= 1
        assert m["has_fixed"], name
        for part in ("real", "random"):
            assert "fixed_error" not in row[part], (name, part, row[part].get("fixed_error"))  # CTA tiles d_in = 384
            _check_ranges(row[part]["fixed"])
            assert row[part]["fixed_vs_float"]["rel_error_mean"] < 0.5
    ref = names["Reference"]["results"][0]
    assert ref["real"]["rel_error_max"] == 0.0
    # default formats: small but non-zero quantization error
    assert 1e-4 < ref["real"]["fixed"]["rel_error_mean"] < 0.05
    assert ref["embedding"]["fixed"]["cosine_mean"] > 0.999


def test_cli_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "acc"
    assert main(["accuracy", "--quick", "--methods", "Reference", "--no-progress", "--no-sweep", "--jobs", "1",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Reference" in text and "wrote" in text
    data = json.loads((out / "accuracy.json").read_text())
    assert data["config"]["quick"] and [m["name"] for m in data["methods"]] == ["Reference"]
    assert main(["accuracy", "--methods", "nope", "--no-progress"]) == 2


# -- issue 14: seed-averaged points, retrieval metric ------------------------------------------------
def _seeded(head, *, seed, **_):
    """Exact attention times (1 + 0.01 * seed): error exactly 0.01 * seed; work 1 - 0.1 * seed."""
    return MethodResult(exact_head(head).out * (1.0 + 0.01 * seed), {"work": 1.0 - 0.1 * seed})


def test_seeded_method_mean_spread_and_retrieval():
    from dataclasses import replace

    spec = MethodSpec("seeded", "scaled by the seed", load=lambda: (_seeded, None), default=Setting("d"),
                      seeded=True, work_fraction=lambda w: w["work"])
    texts = (FOX, "Rain is expected in the north tomorrow.", "The recipe needs two eggs and some flour.")
    rep = run_accuracy(replace(TINY, texts=texts, layers=(0,), seeds=(0, 2, 4)), [spec])
    row = rep["methods"][0]["results"][0]
    assert rep["methods"][0]["seeds"] == [0, 2, 4] and row["real"]["seeds"]["n"] == 3
    assert row["real"]["rel_error_mean"] == pytest.approx(0.02, abs=1e-12)
    assert row["real"]["seeds"]["spread"]["rel_error_mean"] == pytest.approx([0.0, 0.04], abs=1e-12)
    assert row["real"]["work_fraction"] == pytest.approx(0.8)
    assert row["real"]["seeds"]["spread"]["work_fraction"] == pytest.approx([0.6, 1.0])
    lo, hi = row["embedding"]["float"]["cosine_mean_spread"]
    assert hi == pytest.approx(1.0, abs=1e-12) and lo < 1 - 1e-9      # seed 0 is exact
    ret = row["retrieval"]
    assert ret["texts"] == 3 and ret["spearman_spread"][1] == pytest.approx(1.0) and ret["top1_agreement"] <= 1
    table = format_table(rep)
    assert "3 seeds" in table and "Retrieval on the 3 evaluated texts" in table


def test_retrieval_metrics_and_spearman():
    from golden.accuracy import retrieval_metrics, spearman

    assert spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4])) == pytest.approx(0.8)
    assert spearman(np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 2, 3])) == pytest.approx(1.0)   # ties
    rng = np.random.default_rng(0)
    e = rng.normal(size=(6, 8))
    same = retrieval_metrics(e, e)
    assert same["spearman"] == pytest.approx(1.0) and same["top1_agreement"] == 1.0 and same["texts"] == 6
    other = retrieval_metrics(rng.normal(size=(6, 8)), e)
    assert other["spearman"] < 0.9 and other["top1_agreement"] < 1.0
    assert math.isnan(retrieval_metrics(e[:2], e[:2])["spearman"])


# -- speed: batched CTA heads and embeddings are the same computation ---------------------------------
def test_cta_batched_heads_and_embedding_equal_per_head():
    """cta_fast_heads (one clustering per width, heads batched) == cta_fast per head, bit for bit on
    this machine's BLAS (checked to 1e-12), mixed per-head widths; the report's batched embedding
    == MiniLM.embed with cta_fast."""
    from golden.accuracy import _embed
    from golden.calibrate import cta_fast, cta_fast_heads
    from golden.minilm import MiniLM

    model = MiniLM.load()
    heads = model.head_inputs(FOX, 3)
    kws = [{"widths": (8.0, 12.0, 32.0) if h % 3 else 6.0, "seed": h % 2} for h in range(12)]
    per_head = [cta_fast(h, **k) for h, k in zip(heads, kws, strict=True)]
    batched = cta_fast_heads(heads, kws)
    for a, b in zip(per_head, batched, strict=True):
        assert np.max(np.abs(a.out - b.out)) <= 1e-12 and a.work == b.work
    with pytest.raises(TypeError, match="unknown settings"):
        cta_fast_heads(heads[:1], [{"width": 3.0}])

    def settings_for(li, h):
        return {"widths": (4.0 + li, 12.0, 8.0 + h), "seed": 7}
    texts = [FOX, "Rain is expected in the north tomorrow."]
    exact = model.embed(texts, head_fn=cta_fast, settings_for=settings_for)
    fast = _embed(model, texts, cta_fast, settings_for, cta_fast_heads)
    assert np.max(np.abs(exact - fast)) <= 1e-12


def test_trace_disk_cache_is_exact(tmp_path, monkeypatch):
    """The exact activations cached on disk (keyed by content hash) load back bit for bit."""
    from golden.accuracy import cached_trace, trace_cache_dir
    from golden.minilm import MiniLM

    monkeypatch.setenv("ATTN_RTL_CACHE", str(tmp_path))
    model = MiniLM.load()
    text = "A cache keyed by the text's content hash."
    model._trace_cache.pop(text, None)
    fresh = cached_trace(model, text)   # computed, written
    files = list(trace_cache_dir().glob("*.npz"))
    assert len(files) == 1 and trace_cache_dir() == tmp_path / "activations"
    model._trace_cache.pop(text, None)
    loaded = cached_trace(model, text)   # read back from disk
    assert loaded is not fresh and loaded.ids == fresh.ids
    assert np.array_equal(loaded.embedding, fresh.embedding) and np.array_equal(loaded.hidden, fresh.hidden)
    for a, b in zip(loaded.layers, fresh.layers, strict=True):
        for name in ("x", "q", "k", "v", "ctx"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
    files[0].write_bytes(b"not an npz")   # a damaged entry is recomputed, not trusted
    model._trace_cache.pop(text, None)
    assert np.array_equal(cached_trace(model, text).embedding, fresh.embedding)
    monkeypatch.setenv("ATTN_RTL_CACHE", "off")
    assert trace_cache_dir() is None


def test_mca_batched_with_reused_attention_equals_per_head():
    """mca_fast_heads (attention kept per head object, table lookup for the inverse CDF) ==
    mca_fast == golden.mca.mca_float's algorithm, for several α and seeds on the same heads."""
    from golden.calibrate import mca_fast, mca_fast_heads
    from golden.minilm import MiniLM

    heads = MiniLM.load().head_inputs(FOX, 1)[:4]
    for alpha, seed in ((0.1, 1), (0.4, 3), (1.0, 2)):
        kws = [{"alpha": alpha, "seed": seed}] * len(heads)
        got = mca_fast_heads(heads, kws, reuse=True)
        for h, r in zip(heads, got, strict=True):
            ref = mca_fast(h, alpha=alpha, seed=seed)
            assert np.array_equal(r.out, ref.out) and r.work["mean_r"] == ref.work["mean_r"]


# -- committed report (results/accuracy.json, results/ACCURACY.md) -----------------------------------
RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_committed_report_is_small_complete_and_plots(tmp_path):
    """The committed JSON stays small, holds every method x budget operating point with a calibrated
    entry for the methods that have files, seed spreads and the retrieval metric; it replots."""
    path = RESULTS / "accuracy.json"
    assert path.stat().st_size < 300_000 and (RESULTS / "accuracy_full.json").stat().st_size < 300_000
    rep = json.loads(path.read_text())
    pts = {(p["method"], p["budget_cosine"]): p for p in rep["operating_points"]}
    for method in ("CTA", "LATTE", "E-ATT", "MCA"):
        for c in (0.999, 0.995, 0.99):
            assert "global" in pts[(method, c)]
            if method != "E-ATT":   # E-ATT has no calibration knob file
                assert pts[(method, c)]["calibrated"]["label"] == f"cal cos={c}"
    cta = next(m for m in rep["methods"] if m["name"] == "CTA")
    for row in cta["results"]:
        assert row["real"]["seeds"]["n"] == 5 and "retrieval" in row
        lo, hi = row["embedding"]["float"]["cosine_mean_spread"]
        assert lo <= row["embedding"]["float"]["cosine_mean"] <= hi
    assert [p.name for p in plot_tradeoffs(rep, tmp_path)] == ["tradeoff.png"]


def test_calib_tag_names_the_budget():
    assert _calib_tag({"budget": {"kind": "cosine", "value": 0.99}, "label": "x"}) == "C=0.99"
    assert _calib_tag({"budget": {"kind": "error", "value": 0.2}, "label": "x"}) == "E=0.2"
    assert _calib_tag({"label": "calibrated"}) == "calibrated"
