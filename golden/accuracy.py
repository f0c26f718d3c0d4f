"""Accuracy report: every attention method on real MiniLM activations and on random data (issue 3 item 7).

For each method and setting (the default plus a sweep of its accuracy/work knob) the report gives

* per head, against exact float64 attention: relative error ‖O − O_exact‖_F / ‖O_exact‖_F and
  cosine similarity of the flattened outputs, averaged (and worst case) over all 6 layers × 12
  heads × texts of the built-in corpus (:mod:`golden.corpus`), and over random heads;
* the method's work figures from its ``MethodResult.work`` (mean over heads) and one scalar
  "work fraction" (fraction of the exact work still done) used as the x axis of the trade-off
  plots: CTA RA (attention part) and LATTE bit operations / full 8-bit as ratios of the totals
  over all heads (so the 256-token text weighs by its work), E-ATT multiplications left, MCA
  mean r / d (mean over heads);
* fixed-point vs float error, for methods with a bit-exact model, at the default setting;
* end to end: the method replaces the attention in every layer and head of the encoder, and the
  cosine similarity of each sentence embedding with the exact model's is reported.

Methods whose module is missing are reported as not available. Per-head thresholds (LATTE) are
calibrated on held-out texts (:data:`golden.corpus.CALIBRATION`) for real data and on separate
random heads for random data, never on the evaluation inputs.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .reference import HeadInputs, MethodResult, cosine_similarity, exact_head, quantized_head, relative_error

__all__ = [
    "Setting",
    "MethodSpec",
    "AccuracyConfig",
    "builtin_methods",
    "run_accuracy",
    "format_table",
    "write_report",
    "plot_tradeoffs",
]

Method = Callable[..., MethodResult]


@dataclass(frozen=True)
class Setting:
    """One point of a method: a label and the keyword settings (before calibration)."""

    label: str
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """How the report runs one method.

    ``load`` returns (float model, fixed model or None); it may raise ImportError/AttributeError,
    which marks the method "not available". ``calibrate(heads, settings)`` (optional) turns a
    setting into the keyword settings of one head position from calibration inputs of that
    position (e.g. LATTE: target pruning ratio -> τ).
    """

    name: str
    description: str
    load: Callable[[], tuple[Method, Method | None]]
    default: Setting
    sweep: tuple[Setting, ...] = ()
    sweep_label: str = ""
    work_axis: str = "work fraction"
    work_fraction: Callable[[Mapping[str, float]], float] = lambda work: 1.0
    work_text: Callable[[Mapping[str, float]], str] = lambda work: ""
    calibrate: Callable[[Sequence[HeadInputs], Mapping[str, Any]], dict[str, Any]] | None = None
    cost: float = 1.0  # relative run time per head, to start the slow tasks first


@dataclass(frozen=True)
class AccuracyConfig:
    """What to run. ``texts``/``layers`` default to the whole corpus and all 6 layers."""

    quick: bool = False
    methods: tuple[str, ...] | None = None
    texts: tuple[str, ...] | None = None
    calibration_texts: tuple[str, ...] | None = None
    layers: tuple[int, ...] | None = None
    random_heads: int = 8
    random_n: int = 128
    random_d_in: int = 128  # within the height of CTA's bit-exact systolic model (d_in < 256)
    random_d_h: int = 32
    seed: int = 2024
    sweep: bool = True
    end_to_end: bool = True
    jobs: int = 1  # worker processes (built-in methods only; custom specs always run in-process)
    progress: bool = True

    @classmethod
    def quick_config(cls, **changes: Any) -> AccuracyConfig:
        return replace(cls(quick=True, random_heads=3, random_n=64), **changes)


# -- built-in methods ------------------------------------------------------------------------------
def _attrs(module: str, float_attr: str, fixed_attr: str | None, float_kw: dict | None = None,
           fixed_kw: dict | None = None) -> Callable[[], tuple[Method, Method | None]]:
    def load() -> tuple[Method, Method | None]:
        mod = importlib.import_module(module)
        f = getattr(mod, float_attr)
        g = getattr(mod, fixed_attr) if fixed_attr else None
        return (partial(f, **float_kw) if float_kw else f), (partial(g, **fixed_kw) if g and fixed_kw else g)
    return load


def _latte_calibrate(heads: Sequence[HeadInputs], settings: Mapping[str, Any]) -> dict[str, Any]:
    from .latte import calibrate_tau

    rest = {k: v for k, v in settings.items() if k != "prune_ratio"}
    if settings.get("prune_ratio") is None:
        return rest
    return {**rest, "tau": float(calibrate_tau(list(heads), float(settings["prune_ratio"])))}


def _ratio(work: Mapping[str, float], num: str, den: str) -> float:
    """Σ num / Σ den over the heads (``work`` holds means over the same heads, so the ratio of the
    means is the ratio of the totals): long texts weigh by their work, not by their head count."""
    if num not in work or not work.get(den):
        return math.nan
    return float(work[num]) / float(work[den])


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def builtin_methods(quick: bool = False) -> list[MethodSpec]:
    """The reference (fixed-point exact attention), CTA, LATTE, E-ATT and MCA."""
    cta_w = (8, 16, 32, 64) if quick else (8, 12, 16, 24, 32, 48, 64)
    latte_p = (0.5, 0.8, 0.95) if quick else (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
    mca_a = (0.1, 0.4, 1.0) if quick else (0.1, 0.2, 0.4, 0.7, 1.0)
    return [
        MethodSpec(
            name="Reference", description="exact softmax attention in the default fixed-point formats",
            load=lambda: (exact_head, quantized_head), default=Setting("defaults"),
            work_axis="work fraction", work_fraction=lambda w: 1.0,
            work_text=lambda w: "-",
        ),
        MethodSpec(
            name="CTA", description="LSH token compression, residual clustering (float; fixed when available)",
            load=_attrs("golden.cta", "cta_float", "cta_fixed"),
            default=Setting("w=24", {"widths": 24.0}),
            sweep=tuple(Setting(f"w={w}", {"widths": float(w)}) for w in cta_w),
            sweep_label="bucket width w (all three hashes)", work_axis="RA (attention work kept, all heads)",
            work_fraction=lambda w: _ratio(w, "attention_ops", "attention_ops_exact"),
            work_text=lambda w: (f"k0/k1/k2={w.get('k0', 0):.0f}/{w.get('k1', 0):.0f}/{w.get('k2', 0):.0f} "
                                 f"RL={_ratio(w, 'linear_macs', 'linear_macs_exact'):.2f} "
                                 f"RA={_ratio(w, 'attention_ops', 'attention_ops_exact'):.2f}"),
            cost=1.5,
        ),
        MethodSpec(
            name="LATTE", description="8-bit Q/K/V, MS4B estimate, per-head threshold calibrated for a pruning ratio",
            load=_attrs("golden.latte", "latte_float", "latte_fixed"),
            default=Setting("prune=0.8", {"prune_ratio": 0.8}),
            sweep=tuple(Setting(f"prune={p}", {"prune_ratio": p}) for p in latte_p),
            sweep_label="target pruning ratio", work_axis="bit ops / full 8-bit",
            work_fraction=lambda w: _ratio(w, "bit_ops", "bit_ops_full"),
            work_text=lambda w: (f"kept {_pct(w.get('kept_ratio', math.nan))}, bit ops "
                                 f"-{_pct(1 - _ratio(w, 'bit_ops', 'bit_ops_full'))}"),
            calibrate=_latte_calibrate,
        ),
        MethodSpec(
            name="E-ATT", description="binarized selection-sum Q/K, L1 scores (multiplier-free alignment)",
            load=_attrs("golden.eatt", "eatt", "eatt", {"fixed": False}, {"fixed": True}),
            default=Setting("tau=1.0", {"tau": 1.0}),
            work_axis="multiplications left",
            work_fraction=lambda w: 1.0 - float(w.get("mul_fraction_removed", math.nan)),
            work_text=lambda w: f"muls -{_pct(w.get('mul_fraction_removed', math.nan))}",
        ),
        MethodSpec(
            name="MCA", description="Monte-Carlo sampled value encoding, sample counts from attention and alpha",
            load=_attrs("golden.mca", "mca_float", "mca_fixed"),
            default=Setting("alpha=0.4", {"alpha": 0.4}),
            sweep=tuple(Setting(f"alpha={a}", {"alpha": a}) for a in mca_a),
            sweep_label="alpha", work_axis="mean r / d (encoding FLOPs kept)",
            work_fraction=lambda w: 1.0 / float(w.get("flops_reduction", math.nan)),
            work_text=lambda w: f"FLOPs /{w.get('flops_reduction', math.nan):.2f} (mean r {w.get('mean_r', 0):.0f})",
            cost=3.0,
        ),
    ]


# -- data ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Head:
    key: tuple[Any, ...]  # ("real", text, layer, head) or ("random", i)
    inputs: HeadInputs
    exact: np.ndarray


@dataclass
class _Data:
    model: Any
    texts: tuple[str, ...]
    layers: tuple[int, ...]
    real: list[_Head]
    random: list[_Head]
    calib_real: dict[tuple[int, int], list[HeadInputs]]
    calib_random: list[HeadInputs]
    exact_embeddings: np.ndarray


def _random_head(rng: np.random.Generator, n: int, d_in: int, d_h: int) -> HeadInputs:
    """Tokens ~ N(0, 1); weights ~ N(0, 1/d_in) so that Q, K, V entries are ~ N(0, 1)."""
    s = 1.0 / math.sqrt(d_in)
    x = rng.normal(size=(n, d_in))  # self-attention, as in the encoder: X^Q = X^KV
    w = [rng.normal(size=(d_in, d_h)) * s for _ in range(3)]
    b = [rng.normal(size=d_h) * 0.1 for _ in range(3)]
    return HeadInputs(x, x, *w, *b)


def _prepare(cfg: AccuracyConfig) -> _Data:
    from .corpus import CALIBRATION, corpus
    from .minilm import N_HEADS, N_LAYERS, MiniLM

    model = MiniLM.load()
    texts = cfg.texts if cfg.texts is not None else corpus(cfg.quick)
    layers = cfg.layers if cfg.layers is not None else tuple(range(N_LAYERS))
    calib = cfg.calibration_texts if cfg.calibration_texts is not None else CALIBRATION
    real = []
    for ti, text in enumerate(texts):
        tr = model.trace(text)
        for layer in layers:
            for h, hin in enumerate(model.head_inputs(text, layer)):
                real.append(_Head(("real", ti, layer, h), hin, tr.layers[layer].ctx[h]))
    calib_real: dict[tuple[int, int], list[HeadInputs]] = {
        (li, h): [] for li in range(N_LAYERS) for h in range(N_HEADS)}
    for text in calib:
        for li in range(N_LAYERS):
            for h, hin in enumerate(model.head_inputs(text, li)):
                calib_real[(li, h)].append(hin)
    rng = np.random.default_rng(cfg.seed)
    random_heads = []
    for i in range(cfg.random_heads):
        hin = _random_head(rng, cfg.random_n, cfg.random_d_in, cfg.random_d_h)
        random_heads.append(_Head(("random", i), hin, exact_head(hin).out))
    calib_random = [_random_head(rng, cfg.random_n, cfg.random_d_in, cfg.random_d_h) for _ in range(4)]
    emb = model.embed(list(texts))
    return _Data(model, tuple(texts), tuple(layers), real, random_heads, calib_real, calib_random, emb)


# -- evaluation ------------------------------------------------------------------------------------
def _scalar_items(work: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in work.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float | np.integer | np.floating) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def _mean_work(works: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    keys: dict[str, list[float]] = {}
    for w in works:
        for k, v in _scalar_items(w).items():
            keys.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in keys.items()}


def _summary(rel: Sequence[float], cos: Sequence[float]) -> dict[str, float]:
    rel_a, cos_a = np.asarray(rel, dtype=np.float64), np.asarray(cos, dtype=np.float64)
    return {"rel_error_mean": float(rel_a.mean()), "rel_error_median": float(np.median(rel_a)),
            "rel_error_max": float(rel_a.max()), "cosine_mean": float(cos_a.mean()), "cosine_min": float(cos_a.min())}


class _Settings:
    """Per-head keyword settings of one (method, setting), calibrated where the method needs it."""

    def __init__(self, spec: MethodSpec, setting: Setting, data: _Data) -> None:
        self._spec, self._setting, self._data = spec, setting, data
        self._real: dict[tuple[int, int], dict[str, Any]] = {}
        self._random: dict[str, Any] | None = None

    def real(self, layer: int, head: int) -> dict[str, Any]:
        if self._spec.calibrate is None:
            return dict(self._setting.settings)
        key = (layer, head)
        if key not in self._real:
            self._real[key] = self._spec.calibrate(self._data.calib_real[key], self._setting.settings)
        return self._real[key]

    def random(self) -> dict[str, Any]:
        if self._spec.calibrate is None:
            return dict(self._setting.settings)
        if self._random is None:
            self._random = self._spec.calibrate(self._data.calib_random, self._setting.settings)
        return self._random

    def for_head(self, head: _Head) -> dict[str, Any]:
        if head.key[0] == "real":
            return self.real(head.key[2], head.key[3])
        return self.random()


def _eval_heads(spec: MethodSpec, fn: Method, fixed: Method | None, heads: Sequence[_Head],
                settings: _Settings, layers: Sequence[int]) -> dict[str, Any]:
    rel, cos, works, per_layer = [], [], [], {}
    fx_rel, fx_cos, fx_vs_fl = [], [], []
    fixed_error = None
    t0 = time.perf_counter()
    for head in heads:
        kw = settings.for_head(head)
        res = fn(head.inputs, **kw)
        out = np.asarray(res.out, dtype=np.float64)
        if out.shape != head.exact.shape or not np.all(np.isfinite(out)):
            raise ValueError(f"{spec.name} returned a {out.shape} output with non-finite values or a wrong shape "
                             f"(expected {head.exact.shape})")
        r = relative_error(out, head.exact)
        rel.append(r)
        cos.append(cosine_similarity(out, head.exact))
        works.append(res.work)
        if head.key[0] == "real":
            per_layer.setdefault(head.key[2], []).append(r)
        if fixed is not None:
            try:
                fx = np.asarray(fixed(head.inputs, **kw).out, dtype=np.float64)
            except NotImplementedError as exc:  # e.g. a shape the bit-exact model does not cover
                fixed_error = f"{type(exc).__name__}: {exc}"
                fixed = None
                continue
            fx_rel.append(relative_error(fx, head.exact))
            fx_cos.append(cosine_similarity(fx, head.exact))
            fx_vs_fl.append(relative_error(fx, out))
    work = _mean_work(works)
    result: dict[str, Any] = {"heads": len(heads), **_summary(rel, cos), "work": work,
                              "work_fraction": spec.work_fraction(work), "work_text": spec.work_text(work),
                              "seconds": time.perf_counter() - t0}
    if per_layer:
        result["rel_error_per_layer"] = {str(li): float(np.mean(per_layer[li])) for li in layers if li in per_layer}
    if fixed_error is not None:
        result["fixed_error"] = fixed_error
    elif fixed is not None:
        result["fixed"] = _summary(fx_rel, fx_cos)
        result["fixed_vs_float"] = {"rel_error_mean": float(np.mean(fx_vs_fl)),
                                    "rel_error_max": float(np.max(fx_vs_fl))}
    return result


def _eval_embedding(fn: Method, settings: _Settings, data: _Data) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        emb = data.model.embed(list(data.texts), head_fn=fn, settings_for=settings.real)
    except NotImplementedError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    cos = [float(np.dot(a, b)) for a, b in zip(emb, data.exact_embeddings)]
    return {"cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)), "per_text": cos,
            "seconds": time.perf_counter() - t0}


@dataclass(frozen=True)
class _Task:
    method: int
    setting: Setting
    kind: str  # "real", "random", "embed_float", "embed_fixed"
    with_fixed: bool
    weight: float  # rough cost, for ordering


_STATE: dict[str, Any] = {}


def _run_task(task: _Task) -> tuple[_Task, dict[str, Any]]:
    spec: MethodSpec = _STATE["specs"][task.method]
    data: _Data = _STATE["data"]
    fn, fixed = _STATE["loaded"][task.method]
    settings = _Settings(spec, task.setting, data)
    if task.kind == "real":
        return task, _eval_heads(spec, fn, fixed if task.with_fixed else None, data.real, settings, data.layers)
    if task.kind == "random":
        return task, _eval_heads(spec, fn, fixed if task.with_fixed else None, data.random, settings, data.layers)
    if task.kind == "embed_float":
        return task, _eval_embedding(fn, settings, data)
    return task, _eval_embedding(fixed, settings, data)


def _probe(spec: MethodSpec) -> tuple[tuple[Method, Method | None] | None, str | None, str | None]:
    """Load a method; returns (callables or None, reason unavailable, note about the fixed model)."""
    try:
        fn, fixed = spec.load()
    except (ImportError, AttributeError) as exc:
        return None, f"not available ({type(exc).__name__}: {exc})", None
    rng = np.random.default_rng(0)
    probe = HeadInputs(rng.normal(size=(6, 16)), rng.normal(size=(6, 16)), *(rng.normal(size=(16, 8)) * 0.25,) * 3)
    note = None
    if fixed is not None:
        try:
            fixed(probe, **({} if spec.calibrate else dict(spec.default.settings)))
        except NotImplementedError as exc:
            fixed, note = None, f"fixed-point model not available yet ({exc})"
    return (fn, fixed), None, note


def run_accuracy(cfg: AccuracyConfig = AccuracyConfig(), specs: Sequence[MethodSpec] | None = None) -> dict[str, Any]:
    """Run the report; returns the JSON-ready dict (see :func:`write_report`)."""
    t_start = time.perf_counter()
    builtin = specs is None
    specs = list(specs) if specs is not None else builtin_methods(cfg.quick)
    if cfg.methods is not None:
        wanted = {m.lower() for m in cfg.methods}
        unknown = wanted - {s.name.lower() for s in specs}
        if unknown:
            raise ValueError(f"unknown method(s) {sorted(unknown)}; available: {', '.join(s.name for s in specs)}")
        specs = [s for s in specs if s.name.lower() in wanted]
    data = _prepare(cfg)
    loaded: list[tuple[Method, Method | None] | None] = []
    methods_out: list[dict[str, Any]] = []
    tasks: list[_Task] = []
    for i, spec in enumerate(specs):
        fns, reason, note = _probe(spec)
        loaded.append(fns)
        entry: dict[str, Any] = {"name": spec.name, "description": spec.description, "available": fns is not None,
                                 "work_axis": spec.work_axis, "sweep_label": spec.sweep_label}
        if reason:
            entry["reason"] = reason
        if note:
            entry["fixed_note"] = note
        methods_out.append(entry)
        if fns is None:
            continue
        has_fixed = fns[1] is not None
        entry["has_fixed"] = has_fixed
        settings = [spec.default] + ([s for s in spec.sweep if s != spec.default] if cfg.sweep else [])
        for s in settings:
            is_default = s == spec.default
            both = is_default and has_fixed
            tasks.append(_Task(i, s, "real", both, spec.cost * (2.0 if both else 1.0)))
            tasks.append(_Task(i, s, "random", both, 0.1 * spec.cost))
            if cfg.end_to_end:
                tasks.append(_Task(i, s, "embed_float", False, 1.2 * spec.cost))
                if both:
                    tasks.append(_Task(i, s, "embed_fixed", False, 1.2 * spec.cost))
    _STATE.update(specs=specs, data=data, loaded=loaded)
    results: dict[tuple[int, str], dict[str, Any]] = {}
    order = sorted(tasks, key=lambda t: -t.weight)
    with _progress(cfg, len(order)) as bar:
        jobs = cfg.jobs if builtin else 1
        for task, res in _map(order, jobs, cfg, [s.name for s in specs]):
            results.setdefault((task.method, task.setting.label), {})[task.kind] = res
            bar.update(1)
    for i, spec in enumerate(specs):
        entry = methods_out[i]
        if not entry["available"]:
            continue
        rows = []
        settings = [spec.default] + ([s for s in spec.sweep if s != spec.default] if cfg.sweep else [])
        for s in settings:
            r = results[(i, s.label)]
            row = {"label": s.label, "settings": dict(s.settings), "default": s == spec.default,
                   "in_sweep": s in spec.sweep, "real": r["real"], "random": r["random"]}
            if "embed_float" in r:
                row["embedding"] = {"float": r["embed_float"]}
                if "embed_fixed" in r:
                    row["embedding"]["fixed"] = r["embed_fixed"]
            rows.append(row)
        entry["results"] = rows
    from .corpus import CALIBRATION
    from .reference import DEFAULT_QUANT

    return {
        "tool": "attn-rtl accuracy",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {"quick": cfg.quick, "layers": list(data.layers), "heads_per_layer": 12,
                   "random_heads": cfg.random_heads,
                   "random_n": cfg.random_n, "random_d_in": cfg.random_d_in, "random_d_h": cfg.random_d_h,
                   "seed": cfg.seed, "sweep": cfg.sweep, "end_to_end": cfg.end_to_end, "jobs": cfg.jobs},
        "model": "sentence-transformers/all-MiniLM-L6-v2 (NumPy, golden.minilm)",
        "corpus": {"texts": len(data.texts), "tokens": [len(data.model.tokenize(t)) for t in data.texts],
                   "real_heads": len(data.real),
                   "calibration_texts": len(cfg.calibration_texts if cfg.calibration_texts is not None
                                            else CALIBRATION)},
        "metrics": {
            "rel_error": "||O - O_exact||_F / ||O_exact||_F per head, vs exact float64 attention",
            "cosine": "cosine similarity of the flattened head output with the exact one",
            "work_fraction": "fraction of the exact work still done (method-specific, see work_axis)",
            "fixed_vs_float": "||O_fixed - O_float||_F / ||O_float||_F (bit-exact model vs float algorithm)",
            "embedding": "cosine of the sentence embedding with the method in every layer/head vs exact model",
        },
        "reference_formats": DEFAULT_QUANT.as_dict(),
        "methods": methods_out,
        "seconds": time.perf_counter() - t_start,
    }


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress(cfg: AccuracyConfig, total: int) -> Any:
    if not cfg.progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="accuracy", unit="run", dynamic_ncols=True)


def _init_worker(cfg: AccuracyConfig, names: Sequence[str]) -> None:
    specs = [s for s in builtin_methods(cfg.quick) if s.name in names]
    _STATE.update(specs=specs, data=_prepare(cfg), loaded=[_probe(s)[0] for s in specs])


def _map(tasks: Sequence[_Task], jobs: int, cfg: AccuracyConfig, names: Sequence[str]) -> Any:
    if jobs <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _run_task(t)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Fresh (spawned) workers with single-threaded BLAS: OpenBLAS threads in several processes
    # spin against each other and cost 3-4x the CPU time on small matrices. Each worker loads the
    # model and the traces once (about a second).
    saved = {k: os.environ.get(k) for k in _BLAS_ENV}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(cfg, tuple(names))) as pool:
        os.environ.update({k: "1" for k in _BLAS_ENV})  # inherited by the workers spawned on submit
        try:
            futures = [pool.submit(_run_task, t) for t in tasks]
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        for fut in as_completed(futures):
            yield fut.result()


_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


# -- output ----------------------------------------------------------------------------------------
def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def format_table(report: Mapping[str, Any]) -> str:
    """The terminal table: default setting of every method, then the sweeps."""
    lines = []
    head = (f"{'method':<10} {'setting':<12} {'err real':>8} {'cos real':>8} {'err rand':>8} {'err fixed':>9} "
            f"{'fix-flt':>8} {'emb cos':>8} {'emb fix':>8}  work")
    lines.append(head)
    lines.append("-" * len(head) + "-" * 30)
    for m in report["methods"]:
        if not m["available"]:
            lines.append(f"{m['name']:<10} {m.get('reason', 'not available')}")
            continue
        for row in m["results"]:
            if not row["default"]:
                continue
            real, rnd = row["real"], row["random"]
            emb = row.get("embedding", {})
            fixed = real.get("fixed", {})
            lines.append(
                f"{m['name']:<10} {row['label']:<12} {_fmt(real['rel_error_mean']):>8} "
                f"{_fmt(real['cosine_mean'], '.4f'):>8} "
                f"{_fmt(rnd['rel_error_mean']):>8} {_fmt(fixed.get('rel_error_mean')):>9} "
                f"{_fmt(real.get('fixed_vs_float', {}).get('rel_error_mean')):>8} "
                f"{_fmt(emb.get('float', {}).get('cosine_mean'), '.4f'):>8} "
                f"{_fmt(emb.get('fixed', {}).get('cosine_mean'), '.4f'):>8}  {real['work_text']}")
        if m.get("fixed_note"):
            lines.append(f"{'':<10} ({m['fixed_note']})")
        default = next(r for r in m["results"] if r["default"])
        if "fixed_error" in default["real"]:
            lines.append(f"{'':<10} (fixed model on MiniLM heads: {default['real']['fixed_error'][:100]})")
            rnd = default["random"]
            if "fixed" in rnd:
                lines.append(f"{'':<10} (fixed model on random heads: err {_fmt(rnd['fixed']['rel_error_mean'])}, "
                             f"fixed vs float {_fmt(rnd['fixed_vs_float']['rel_error_mean'])})")
    sweeps = [m for m in report["methods"] if m["available"] and any(r["in_sweep"] for r in m["results"])]
    for m in sweeps:
        lines.append("")
        lines.append(f"{m['name']} sweep ({m['sweep_label']}; x = {m['work_axis']}):")
        lines.append(f"  {'setting':<14} {'work':>6} {'err real':>8} {'err rand':>8} {'emb cos':>8}  work")
        rows = sorted((r for r in m["results"] if r["in_sweep"]), key=lambda r: r["real"]["work_fraction"])
        for r in rows:
            lines.append(f"  {r['label']:<14} {_fmt(r['real']['work_fraction']):>6} "
                         f"{_fmt(r['real']['rel_error_mean']):>8} "
                         f"{_fmt(r['random']['rel_error_mean']):>8} "
                         f"{_fmt(r.get('embedding', {}).get('float', {}).get('cosine_mean'), '.4f'):>8}  "
                         f"{r['real']['work_text']}")
    return "\n".join(lines)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def write_report(report: Mapping[str, Any], out_dir: str | Path, plots: bool = True) -> list[Path]:
    """Write ``accuracy.json``, ``accuracy.txt`` and the PNG plots into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "accuracy.json", out / "accuracy.txt"]
    paths[0].write_text(json.dumps(_jsonable(report), indent=1) + "\n")
    paths[1].write_text(format_table(report) + "\n")
    if plots:
        paths += plot_tradeoffs(report, out)
    return paths


def plot_tradeoffs(report: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Error-vs-work and embedding-cosine-vs-work curves of the swept methods (``tradeoff.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swept = [m for m in report["methods"] if m["available"] and sum(r["in_sweep"] for r in m["results"]) >= 2]
    if not swept:
        return []
    ref = next((m for m in report["methods"] if m["name"] == "Reference" and m["available"]), None)
    ref_err = ref["results"][0]["real"].get("fixed", {}).get("rel_error_mean") if ref else None
    fig, axes = plt.subplots(2, len(swept), figsize=(4.6 * len(swept), 7.2), squeeze=False)
    for col, m in enumerate(swept):
        rows = sorted((r for r in m["results"] if r["in_sweep"]), key=lambda r: r["real"]["work_fraction"])
        x = [r["real"]["work_fraction"] for r in rows]
        ax = axes[0][col]
        ax.plot(x, [r["real"]["rel_error_mean"] for r in rows], "o-", label="MiniLM activations")
        ax.plot([r["random"]["work_fraction"] for r in rows], [r["random"]["rel_error_mean"] for r in rows],
                "s--", alpha=0.7, label="random data")
        for k, (r, xi) in enumerate(zip(rows, x)):
            ax.annotate(r["label"].split("=")[-1], (xi, r["real"]["rel_error_mean"]), textcoords="offset points",
                        xytext=(4, 4 if k % 2 else -10), fontsize=7)
        dflt = [(xi, r["real"]["rel_error_mean"]) for r, xi in zip(rows, x) if r["default"]]
        if dflt:
            ax.plot(*dflt[0], "*", ms=13, mfc="none", mec="k", label="default setting")
        if ref_err is not None:
            ax.axhline(ref_err, color="grey", lw=0.8, ls=":", label="fixed-point exact (default formats)")
        ax.set_title(f"{m['name']}: sweep of {m['sweep_label']}", fontsize=10)
        ax.set_xlabel(m["work_axis"])
        ax.set_ylabel("relative output error (Frobenius)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax2 = axes[1][col]
        emb = [r.get("embedding", {}).get("float", {}) for r in rows]
        if all(e for e in emb):
            ax2.plot(x, [e["cosine_mean"] for e in emb], "o-", color="C2", label="mean over texts")
            ax2.plot(x, [e["cosine_min"] for e in emb], "v:", color="C3", label="worst text")
            ax2.legend(fontsize=7)
        ax2.set_xlabel(m["work_axis"])
        ax2.set_ylabel("sentence-embedding cosine vs exact")
        ax2.grid(alpha=0.3)
    corpus_info = report.get("corpus", {})
    n_texts, layers = corpus_info.get("texts", "?"), len(report.get("config", {}).get("layers", []))
    fig.suptitle(f"Accuracy vs work on all-MiniLM-L6-v2: {n_texts} texts x {layers} layers x 12 heads "
                 "(top: lower-left is better; bottom: method in every layer)", fontsize=11)
    fig.tight_layout()
    path = Path(out_dir) / "tradeoff.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
