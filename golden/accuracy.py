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

Issue 14 additions:

* seed-averaged points: methods with random parameters (``MethodSpec.seeded``: CTA's LSH) run every
  setting with ``AccuracyConfig.seeds`` (>= 5 LSH seeds by default); the table, JSON and plots show
  the mean and the spread (min-max over seeds, ``seeds.spread`` in the JSON);
* calibrated CTA: ``AccuracyConfig.cta_params`` (a file of :mod:`golden.cta_params`, written by
  ``attn-rtl calibrate cta``) adds a "calibrated" CTA row with per-(layer, head) widths;
* a downstream metric on the evaluation texts (:func:`golden.corpus.evaluation_texts`, or the
  user's texts): Spearman correlation of the pairwise sentence-embedding similarities (approximate
  model vs exact) and top-1 nearest-neighbour agreement, for every method and setting
  (``retrieval`` in the JSON).

* per-head files of any method (``AccuracyConfig.params``: CTA widths, LATTE τ, MCA α of
  ``attn-rtl calibrate cta|latte|mca``, :func:`golden.cta_params.load_params`) add one calibrated row
  each; MCA is seeded too (PRNG seeds = report seeds + 1); E-ATT's τ is swept;
* operating points at fixed fidelity (:func:`operating_points`, ``operating_points`` in the JSON):
  per method and embedding-cosine budget, the least-work global setting meeting it next to the
  calibrated file fitted for that budget, with the work left (``MethodSpec.work_figures``).

Speed (issue 14): the exact activations of every text are cached on disk (:func:`cached_trace`,
keyed by a content hash); CTA and MCA have a batch form (``MethodSpec.batch``) used for the real
heads and the embeddings: CTA clusters a layer input once per width and runs the 12 heads as one
batch, MCA keeps each real head's attention matrix across its settings and seeds and draws its
samples through a lookup table; both give the per-head results (checked by the tests).

The float CTA of the report is :func:`golden.calibrate.cta_fast`, the same algorithm as
:func:`golden.cta.cta_float` computed from Q, K, V (equal to 1e-9, checked by the tests); the float
MCA is :func:`golden.calibrate.mca_fast` (equal to :func:`golden.mca.mca_float` to 1e-12).

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
    "retrieval_metrics",
    "spearman",
    "Setting",
    "MethodSpec",
    "AccuracyConfig",
    "builtin_methods",
    "run_accuracy",
    "format_table",
    "format_operating_points",
    "operating_points",
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
    #: run every setting once per seed of AccuracyConfig.seeds (settings get ``seed=s``); mean + spread
    seeded: bool = False
    #: per_head(settings, layer, head) -> keyword settings of one head (layer/head None: random heads)
    per_head: Callable[[Mapping[str, Any], int | None, int | None], dict[str, Any]] | None = None
    #: added to the report's seeds (MCA's PRNG seed must be >= 1)
    seed_offset: int = 0
    #: named work figures of the operating-point table (fractions of the exact work)
    work_figures: Callable[[Mapping[str, float]], dict[str, float]] = lambda work: {}
    #: batch(heads, settings, reuse) -> results: the float model on heads of one layer sharing the
    #: same inputs (same results as calling it per head; used for real heads and the embeddings);
    #: reuse: the head objects live for the whole run (their per-head precomputation may be kept)
    batch: Callable[[Sequence[HeadInputs], Sequence[dict[str, Any]], bool], list[MethodResult]] | None = None


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
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # seeds of the seeded methods (CTA's LSH)
    cta_params: str | None = None  # per-head CTA parameter file (golden.cta_params) -> "calibrated" row
    #: per-head parameter files of any method (CTA widths, LATTE τ, MCA α; golden.cta_params.load_params):
    #: each adds a calibrated row to its method
    params: tuple[str, ...] = ()
    #: sentence-embedding cosine budgets of the operating-point table
    budgets: tuple[float, ...] = (0.999, 0.995, 0.99)
    retrieval: bool = True  # Spearman of pairwise similarities and top-1 NN agreement (end_to_end only)
    fixed: bool = True  # run the bit-exact models at the default settings
    full: bool = False  # default texts: the whole evaluation split (34 texts) instead of golden.corpus.CORPUS

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


def _cta_per_head(settings: Mapping[str, Any], layer: int | None, head: int | None) -> dict[str, Any]:
    """CTA settings of one head: a "params" file gives per-(layer, head) widths (random heads: the
    per-level median of the file)."""
    return _file_settings(settings, layer, head)


def _file_settings(settings: Mapping[str, Any], layer: int | None, head: int | None) -> dict[str, Any]:
    """Settings of one head from a "params" file (any method; random heads: the file's median)."""
    rest = {k: v for k, v in settings.items() if k != "params"}
    if settings.get("params") is None:
        return rest
    p = _load_params(str(settings["params"]))
    if layer is None or head is None:
        return {**rest, **p.median_settings()}
    return {**rest, **p.settings_for(layer, head)}


_PARAMS_CACHE: dict[str, Any] = {}


def _load_params(path: str) -> Any:
    from .cta_params import load_params

    if path not in _PARAMS_CACHE:
        _PARAMS_CACHE[path] = load_params(path)
    return _PARAMS_CACHE[path]


def _load_cta_params(path: str) -> Any:
    return _load_params(path)


def _mca_macs(head: HeadInputs, res: MethodResult) -> MethodResult:
    d_v = head.wv.shape[1]
    work = dict(res.work)
    work["encoding_macs"] = float(work["mean_r"]) * head.n * d_v
    work["encoding_macs_exact"] = float(head.n * head.d_in * d_v)
    return MethodResult(res.out, work)


def _mca_with_macs(fn: Method) -> Method:
    """MCA model whose ``work`` also holds the encoding MACs (Σ r_j · d_v) and the exact ones
    (n · d_in · d_v), so that the report's FLOPs fraction is a ratio of totals like CTA's and LATTE's."""
    def run(head: HeadInputs, **settings: Any) -> MethodResult:
        return _mca_macs(head, fn(head, **settings))
    return run


def _mca_load() -> tuple[Method, Method | None]:
    from .calibrate import mca_fast
    from .mca import mca_fixed

    return _mca_with_macs(mca_fast), _mca_with_macs(mca_fixed)


def _ratio(work: Mapping[str, float], num: str, den: str) -> float:
    """Σ num / Σ den over the heads (``work`` holds means over the same heads, so the ratio of the
    means is the ratio of the totals): long texts weigh by their work, not by their head count."""
    if num not in work or not work.get(den):
        return math.nan
    return float(work[num]) / float(work[den])


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _cta_batch(heads: Sequence[HeadInputs], settings: Sequence[dict[str, Any]], reuse: bool = False
               ) -> list[MethodResult]:
    from .calibrate import cta_fast_heads

    return cta_fast_heads(heads, settings)


def _mca_batch(heads: Sequence[HeadInputs], settings: Sequence[dict[str, Any]], reuse: bool = False
               ) -> list[MethodResult]:
    from .calibrate import mca_fast_heads

    return [_mca_macs(h, r) for h, r in zip(heads, mca_fast_heads(heads, settings, reuse), strict=True)]


def _cta_load() -> tuple[Method, Method | None]:
    from .calibrate import cta_fast
    from .cta import cta_fixed

    return cta_fast, cta_fixed


def builtin_methods(quick: bool = False) -> list[MethodSpec]:
    """The reference (fixed-point exact attention), CTA, LATTE, E-ATT and MCA."""
    cta_w = (8, 16, 32, 64) if quick else (8, 12, 16, 24, 32, 48, 64)
    latte_p = (0.5, 0.8, 0.95) if quick else (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
    mca_a = (0.1, 0.4, 1.0) if quick else (0.02, 0.1, 0.2, 0.4, 0.7, 1.0)
    eatt_t = (0.5, 1.0, 2.0) if quick else (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    return [
        MethodSpec(
            name="Reference", description="exact softmax attention in the default fixed-point formats",
            load=lambda: (exact_head, quantized_head), default=Setting("defaults"),
            work_axis="work fraction", work_fraction=lambda w: 1.0,
            work_text=lambda w: "-",
        ),
        MethodSpec(
            name="CTA", description="LSH token compression, residual clustering (float; fixed when available)",
            load=_cta_load,
            default=Setting("w=24", {"widths": 24.0}),
            sweep=tuple(Setting(f"w={w}", {"widths": float(w)}) for w in cta_w),
            sweep_label="bucket width w (all three hashes)", work_axis="RA (attention work kept, all heads)",
            work_fraction=lambda w: _ratio(w, "attention_ops", "attention_ops_exact"),
            work_text=lambda w: (f"k0/k1/k2={w.get('k0', 0):.0f}/{w.get('k1', 0):.0f}/{w.get('k2', 0):.0f} "
                                 f"RL={_ratio(w, 'linear_macs', 'linear_macs_exact'):.2f} "
                                 f"RA={_ratio(w, 'attention_ops', 'attention_ops_exact'):.2f}"),
            cost=1.5, seeded=True, per_head=_cta_per_head, batch=_cta_batch,
            work_figures=lambda w: {"RA": _ratio(w, "attention_ops", "attention_ops_exact"),
                                    "RL": _ratio(w, "linear_macs", "linear_macs_exact")},
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
            work_figures=lambda w: {"kept keys": float(w.get("kept_ratio", math.nan)),
                                    "bit ops": _ratio(w, "bit_ops", "bit_ops_full")},
        ),
        MethodSpec(
            name="E-ATT", description="binarized selection-sum Q/K, L1 scores (multiplier-free alignment)",
            load=_attrs("golden.eatt", "eatt", "eatt", {"fixed": False}, {"fixed": True}),
            default=Setting("tau=1.0", {"tau": 1.0}),
            sweep=tuple(Setting(f"tau={t}", {"tau": t}) for t in eatt_t),
            sweep_label="binarization threshold tau",
            work_axis="features selected (selection-sum adds / dense)",
            work_fraction=lambda w: float(w.get("selected_fraction", math.nan)),
            work_text=lambda w: (f"muls -{_pct(w.get('mul_fraction_removed', math.nan))}, features selected "
                                 f"{_pct(w.get('selected_fraction', math.nan))}"),
            work_figures=lambda w: {"muls left": 1.0 - float(w.get("mul_fraction_removed", math.nan)),
                                    "features selected": float(w.get("selected_fraction", math.nan))},
        ),
        MethodSpec(
            name="MCA", description="Monte-Carlo sampled value encoding, sample counts from attention and alpha",
            load=_mca_load,
            default=Setting("alpha=0.4", {"alpha": 0.4}),
            sweep=tuple(Setting(f"alpha={a}", {"alpha": a}) for a in mca_a),
            sweep_label="alpha", work_axis="encoding FLOPs kept (sum of r_j / (n d_in), all heads)",
            work_fraction=lambda w: _ratio(w, "encoding_macs", "encoding_macs_exact"),
            work_text=lambda w: (f"FLOPs x{_ratio(w, 'encoding_macs', 'encoding_macs_exact'):.2f} "
                                 f"(mean r {w.get('mean_r', 0):.0f})"),
            cost=1.0, seeded=True, seed_offset=1, batch=_mca_batch,
            work_figures=lambda w: {"FLOPs": _ratio(w, "encoding_macs", "encoding_macs_exact")},
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


#: bump when the cached trace layout changes
_TRACE_CACHE_VERSION = 1


def trace_cache_dir() -> Path | None:
    """Where exact-model activations are cached on disk: ``$ATTN_RTL_CACHE/activations`` or
    ``~/.cache/attn-rtl/activations``; ``ATTN_RTL_CACHE=off`` disables the cache."""
    root = os.environ.get("ATTN_RTL_CACHE")
    if root is not None and root.strip().lower() in ("", "0", "off", "none"):
        return None
    return (Path(root) if root else Path.home() / ".cache" / "attn-rtl") / "activations"


def _trace_key(text: str) -> str:
    """Content hash of the text and of the weights/tokenizer files (size, mtime) it was traced with."""
    import hashlib

    from .minilm import model_dir

    h = hashlib.sha256(f"v{_TRACE_CACHE_VERSION}\0".encode())
    for name in ("model.safetensors", "tokenizer.json"):
        st = (model_dir() / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    h.update(text.encode("utf-8"))
    return h.hexdigest()[:40]


def cached_trace(model: Any, text: str) -> Any:
    """``model.trace(text)`` through the on-disk cache (:func:`trace_cache_dir`): the exact forward
    pass of each text is computed once per machine; the arrays are stored as float64, so a cached
    trace equals a fresh one bit for bit. Also fills the model's in-memory trace cache."""
    from .minilm import LayerTrace, Trace

    if text in model._trace_cache:
        return model._trace_cache[text]
    root = trace_cache_dir()
    if root is None:
        return model.trace(text)
    path = root / f"{_trace_key(text)}.npz"
    try:
        with np.load(path) as z:
            layers = tuple(LayerTrace(x=z[f"x{i}"], q=z[f"q{i}"], k=z[f"k{i}"], v=z[f"v{i}"], ctx=z[f"ctx{i}"])
                           for i in range(int(z["n_layers"])))
            tr = Trace(ids=tuple(int(i) for i in z["ids"]), layers=layers, hidden=z["hidden"],
                       embedding=z["embedding"])
    except (OSError, KeyError, ValueError):  # missing or unreadable: recompute and (re)write
        tr = model.trace(text)
        arrays: dict[str, np.ndarray] = {"ids": np.asarray(tr.ids, dtype=np.int64), "hidden": tr.hidden,
                                         "embedding": tr.embedding, "n_layers": np.asarray(len(tr.layers))}
        for i, lt in enumerate(tr.layers):
            arrays.update({f"x{i}": lt.x, f"q{i}": lt.q, f"k{i}": lt.k, f"v{i}": lt.v, f"ctx{i}": lt.ctx})
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)   # atomic: two workers may write the same entry
        except OSError:
            pass  # a read-only home: run without the disk cache
    model._trace_cache[text] = tr
    return tr


def _prepare(cfg: AccuracyConfig) -> _Data:
    from .corpus import CALIBRATION, corpus, evaluation_texts
    from .minilm import N_HEADS, N_LAYERS, MiniLM

    model = MiniLM.load()
    if cfg.texts is not None:
        texts = cfg.texts
    else:  # all three are evaluation texts (never seen by any calibration)
        texts = evaluation_texts(True) if cfg.quick else (evaluation_texts() if cfg.full else corpus())
    layers = cfg.layers if cfg.layers is not None else tuple(range(N_LAYERS))
    calib = cfg.calibration_texts if cfg.calibration_texts is not None else CALIBRATION
    for text in (*texts, *calib):
        cached_trace(model, text)   # the exact activations, from the disk cache when present
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
        if "params" in self._setting.settings:
            return _file_settings(self._setting.settings, layer, head)
        if self._spec.per_head is not None:
            return self._spec.per_head(self._setting.settings, layer, head)
        if self._spec.calibrate is None:
            return dict(self._setting.settings)
        key = (layer, head)
        if key not in self._real:
            self._real[key] = self._spec.calibrate(self._data.calib_real[key], self._setting.settings)
        return self._real[key]

    def random(self) -> dict[str, Any]:
        if "params" in self._setting.settings:
            return _file_settings(self._setting.settings, None, None)
        if self._spec.per_head is not None:
            return self._spec.per_head(self._setting.settings, None, None)
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
    batched = _batched_results(spec, heads, settings)
    for hi, head in enumerate(heads):
        kw = settings.for_head(head)
        res = batched[hi] if batched is not None else fn(head.inputs, **kw)
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


def _batched_results(spec: MethodSpec, heads: Sequence[_Head], settings: _Settings) -> list[MethodResult] | None:
    """The float model's results on real heads through ``spec.batch``, one call per (text, layer)
    group (the heads of a layer share their inputs); None when the method has no batch form."""
    if spec.batch is None or not heads or any(h.key[0] != "real" for h in heads):
        return None
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, h in enumerate(heads):
        groups.setdefault(h.key[:3], []).append(i)
    out: list[MethodResult | None] = [None] * len(heads)
    for idx in groups.values():
        res = spec.batch([heads[i].inputs for i in idx], [settings.for_head(heads[i]) for i in idx], True)
        for i, r in zip(idx, res, strict=True):
            out[i] = r
    return out  # type: ignore[return-value]


def _embed(model: Any, texts: Sequence[str], fn: Method, settings_for: Callable[[int, int], dict[str, Any]],
           batch: Callable[..., list[MethodResult]] | None) -> np.ndarray:
    """``model.embed(texts, head_fn=fn, settings_for=...)``, with the 12 heads of a layer through
    ``batch`` when the method has one (the same embeddings, several times faster for CTA)."""
    if batch is None:
        return _embed_per_head(model, texts, fn, settings_for)
    from .minilm import N_HEADS

    rows = []
    for text in texts:
        x = model._embed_tokens(model.tokenize(text))
        for li, lw in enumerate(model.layers):
            res = batch([lw.head(x, h) for h in range(N_HEADS)], [settings_for(li, h) for h in range(N_HEADS)],
                        False)
            ctx = np.stack([np.asarray(r.out, dtype=np.float64) for r in res])
            if ctx.shape != (N_HEADS, x.shape[0], lw.wq.shape[1] // N_HEADS):
                raise ValueError(f"batched head outputs of layer {li} have shape {ctx.shape}")
            x = model._finish_layer(lw, x, ctx)
        rows.append(model._pool(x))
    return np.stack(rows)


def _embed_per_head(model: Any, texts: Sequence[str], fn: Method,
               settings_for: Callable[[int, int], dict[str, Any]]) -> np.ndarray:
    return model.embed(list(texts), head_fn=fn, settings_for=settings_for)


def _eval_embedding(fn: Method, settings: _Settings, data: _Data, batch: Callable[..., Any] | None = None
                    ) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        emb = _embed(data.model, data.texts, fn, settings.real, batch)
    except NotImplementedError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    cos = [float(np.dot(a, b)) for a, b in zip(emb, data.exact_embeddings, strict=True)]
    return {"cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)), "per_text": cos,
            "seconds": time.perf_counter() - t0, "embeddings": np.asarray(emb)}


@dataclass(frozen=True)
class _Task:
    method: int
    setting: Setting
    kind: str  # "real", "random", "embed_float", "embed_fixed"
    with_fixed: bool
    weight: float  # rough cost, for ordering
    seed: int | None = None  # seeded methods: the seed (also in setting.settings["seed"])


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
        return task, _eval_embedding(fn, settings, data, spec.batch)
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


def _param_files(cfg: AccuracyConfig) -> list[str]:
    files = ([str(cfg.cta_params)] if cfg.cta_params is not None else []) + [str(p) for p in cfg.params]
    return list(dict.fromkeys(files))


def _settings_of(spec: MethodSpec, cfg: AccuracyConfig) -> list[Setting]:
    out = [spec.default] + ([s for s in spec.sweep if s != spec.default] if cfg.sweep else [])
    mine = [f for f in _param_files(cfg) if _load_params(f).method == spec.name]
    for f in mine:
        if len(mine) == 1:
            label = "calibrated"
        else:
            b = _load_params(f).budget
            label = f"cal {'cos' if b.get('kind') == 'cosine' else 'err'}={b.get('value')}"
            if any(s.label == label for s in out):
                label = f"{label} ({Path(f).stem})"
        out.append(Setting(label, {"params": f}))
    return out


def _seed_variants(spec: MethodSpec, s: Setting, cfg: AccuracyConfig) -> list[tuple[int | None, Setting]]:
    if not spec.seeded:
        return [(None, s)]
    return [(seed, Setting(s.label, {**s.settings, "seed": int(seed) + spec.seed_offset})) for seed in cfg.seeds]


_SPREAD_KEYS = ("rel_error_mean", "rel_error_max", "cosine_mean", "work_fraction")


def _combine(parts: Sequence[dict[str, Any]], spec: MethodSpec) -> dict[str, Any]:
    """Per-seed head summaries -> mean over seeds (work re-derived) + ``seeds.spread`` [min, max]."""
    if len(parts) == 1:
        return parts[0]
    out = dict(parts[0])  # fixed-point entries: first seed only
    for k in ("rel_error_mean", "rel_error_median", "rel_error_max", "cosine_mean", "cosine_min", "seconds"):
        out[k] = float(np.mean([p[k] for p in parts]))
    out["work"] = _mean_work([p["work"] for p in parts])
    out["work_fraction"] = float(np.mean([p["work_fraction"] for p in parts]))
    out["work_text"] = spec.work_text(out["work"])
    if "rel_error_per_layer" in parts[0]:
        out["rel_error_per_layer"] = {k: float(np.mean([p["rel_error_per_layer"][k] for p in parts]))
                                      for k in parts[0]["rel_error_per_layer"]}
    out["seeds"] = {"n": len(parts), "spread": {k: [float(min(p[k] for p in parts)), float(max(p[k] for p in parts))]
                                                 for k in _SPREAD_KEYS}}
    return out


def _combine_embedding(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if len(parts) == 1 or any("error" in p for p in parts):
        return parts[0]
    cos = [p["cosine_mean"] for p in parts]
    out: dict[str, Any] = {"cosine_mean": float(np.mean(cos)), "cosine_min": float(min(p["cosine_min"] for p in parts)),
                           "cosine_mean_spread": [float(min(cos)), float(max(cos))],
                           "per_text": np.mean([p["per_text"] for p in parts], axis=0).tolist(),
                           "seconds": float(np.sum([p["seconds"] for p in parts]))}
    if all("retrieval" in p for p in parts):
        ret: dict[str, Any] = {"texts": parts[0]["retrieval"]["texts"]}
        for k in ("spearman", "top1_agreement"):
            vals = [p["retrieval"][k] for p in parts]
            ret[k] = float(np.mean(vals))
            ret[f"{k}_spread"] = [float(min(vals)), float(max(vals))]
        out["retrieval"] = ret
    return out


def _rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank (as scipy.stats.rankdata)."""
    a = np.asarray(a)
    sorter = np.argsort(a, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size)
    srt = a[sorter]
    obs = np.r_[True, srt[1:] != srt[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], a.size]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-length vectors (nan when either is constant)."""
    ra, rb = _rankdata(np.ravel(a)), _rankdata(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / den if den > 0 else math.nan


def retrieval_metrics(approx: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    """Spearman of the pairwise cosines (upper triangle) and top-1 nearest-neighbour agreement."""
    approx, exact = np.asarray(approx, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    n = exact.shape[0]
    if n < 3:
        return {"texts": n, "spearman": math.nan, "top1_agreement": math.nan}

    def sims(e: np.ndarray) -> np.ndarray:
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        return e @ e.T

    sa, se = sims(approx), sims(exact)
    iu = np.triu_indices(n, 1)
    np.fill_diagonal(sa, -np.inf)
    np.fill_diagonal(se, -np.inf)
    top1 = float(np.mean(np.argmax(sa, axis=1) == np.argmax(se, axis=1)))
    return {"texts": n, "spearman": spearman(sa[iu], se[iu]), "top1_agreement": top1}


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
        has_fixed = fns[1] is not None and cfg.fixed
        entry["has_fixed"] = has_fixed
        if spec.seeded:
            entry["seeds"] = list(cfg.seeds)
        for s in _settings_of(spec, cfg):
            is_default = s == spec.default
            for k, (seed, sv) in enumerate(_seed_variants(spec, s, cfg)):
                both = is_default and has_fixed and k == 0   # the fixed model: first seed only
                tasks.append(_Task(i, sv, "real", both, spec.cost * (2.0 if both else 1.0), seed))
                tasks.append(_Task(i, sv, "random", both, 0.1 * spec.cost, seed))
                if cfg.end_to_end:
                    tasks.append(_Task(i, sv, "embed_float", False, 1.2 * spec.cost, seed))
                    if both:
                        tasks.append(_Task(i, sv, "embed_fixed", False, 1.2 * spec.cost, seed))
    _STATE.update(specs=specs, data=data, loaded=loaded)
    results: dict[tuple[int, str, int | None], dict[str, Any]] = {}
    order = sorted(tasks, key=lambda t: -t.weight)
    with _progress(cfg, len(order)) as bar:
        jobs = cfg.jobs if builtin else 1
        for task, res in _map(order, jobs, cfg, [s.name for s in specs]):
            results.setdefault((task.method, task.setting.label, task.seed), {})[task.kind] = res
            bar.update(1)
    for i, spec in enumerate(specs):
        entry = methods_out[i]
        if not entry["available"]:
            continue
        rows = []
        for s in _settings_of(spec, cfg):
            parts = [results[(i, s.label, seed)] for seed, _ in _seed_variants(spec, s, cfg)]
            for part in parts:
                if "embed_float" in part and cfg.retrieval and "embeddings" in part["embed_float"]:
                    part["embed_float"]["retrieval"] = retrieval_metrics(part["embed_float"]["embeddings"],
                                                                         data.exact_embeddings)
                for kind in ("embed_float", "embed_fixed"):
                    if kind in part:
                        part[kind].pop("embeddings", None)
            row = {"label": s.label, "settings": dict(s.settings), "default": s == spec.default,
                   "in_sweep": s in spec.sweep, "calibrated": "params" in s.settings,
                   "real": _combine([p["real"] for p in parts], spec),
                   "random": _combine([p["random"] for p in parts], spec)}
            if "embed_float" in parts[0]:
                row["embedding"] = {"float": _combine_embedding([p["embed_float"] for p in parts])}
                if "embed_fixed" in parts[0]:
                    row["embedding"]["fixed"] = parts[0]["embed_fixed"]
                if "retrieval" in row["embedding"]["float"]:
                    row["retrieval"] = row["embedding"]["float"].pop("retrieval")
            row["work_figures"] = spec.work_figures(row["real"]["work"])
            if "params" in s.settings:
                row["budget"] = dict(_load_params(str(s.settings["params"])).budget)
                row["params_file"] = str(s.settings["params"])
            rows.append(row)
        entry["results"] = rows
    from .corpus import CALIBRATION
    from .reference import DEFAULT_QUANT

    return {
        "tool": "attn-rtl accuracy",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {"quick": cfg.quick, "layers": list(data.layers), "heads_per_layer": 12,
                   "seeds": list(cfg.seeds), "cta_params": cfg.cta_params,
                   "random_heads": cfg.random_heads,
                   "random_n": cfg.random_n, "random_d_in": cfg.random_d_in, "random_d_h": cfg.random_d_h,
                   "seed": cfg.seed, "sweep": cfg.sweep, "end_to_end": cfg.end_to_end, "jobs": cfg.jobs},
        "model": "sentence-transformers/all-MiniLM-L6-v2 (NumPy, golden.minilm)",
        "corpus": {"texts": len(data.texts), "tokens": [len(data.model.tokenize(t)) for t in data.texts],
                   "source": ("user texts" if cfg.texts is not None else
                              "golden.corpus.evaluation_texts" + (" (quick)" if cfg.quick else "" if cfg.full
                                                                   else ": CORPUS part (--full: all)")),
                   "real_heads": len(data.real),
                   "calibration_texts": len(cfg.calibration_texts if cfg.calibration_texts is not None
                                            else CALIBRATION)},
        "metrics": {
            "rel_error": "||O - O_exact||_F / ||O_exact||_F per head, vs exact float64 attention",
            "cosine": "cosine similarity of the flattened head output with the exact one",
            "work_fraction": "fraction of the exact work still done (method-specific, see work_axis)",
            "fixed_vs_float": "||O_fixed - O_float||_F / ||O_float||_F (bit-exact model vs float algorithm)",
            "embedding": "cosine of the sentence embedding with the method in every layer/head vs exact model",
            "retrieval": "on the evaluated texts: Spearman correlation of the pairwise embedding cosines "
                         "(approximate vs exact model) and the fraction of texts whose nearest neighbour "
                         "(top-1, by cosine) is the exact model's",
            "seeds": "seeded methods (CTA): every figure is the mean over the LSH seeds; seeds.spread / "
                     "*_spread give [min, max] over the seeds",
            "RA_RL": "CTA work as golden.cta.cta_work: RA = attention operations / exact, RL = linear MACs / "
                     "exact, ratios of totals over all heads and texts",
        },
        "reference_formats": DEFAULT_QUANT.as_dict(),
        "methods": methods_out,
        "operating_points": operating_points(methods_out, cfg.budgets) if cfg.end_to_end else [],
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
        from .calibrate import single_thread_blas

        for t in tasks:
            with single_thread_blas():
                res = _run_task(t)
            yield res
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
            if not (row["default"] or row.get("calibrated")):
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
                f"{_fmt(emb.get('fixed', {}).get('cosine_mean'), '.4f'):>8}  {real['work_text']}{_spread_text(row)}")
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
        seeds = f"; mean over {len(m['seeds'])} seeds, min-max in brackets" if m.get("seeds") else ""
        lines.append(f"{m['name']} sweep ({m['sweep_label']}; x = {m['work_axis']}{seeds}):")
        lines.append(f"  {'setting':<14} {'work':>6} {'err real':>8} {'err rand':>8} {'emb cos':>8}  work")
        rows = sorted((r for r in m["results"] if r["in_sweep"] or r.get("calibrated")),
                      key=lambda r: r["real"]["work_fraction"])
        for r in rows:
            lines.append(f"  {r['label']:<14} {_fmt(r['real']['work_fraction']):>6} "
                         f"{_fmt(r['real']['rel_error_mean']):>8} "
                         f"{_fmt(r['random']['rel_error_mean']):>8} "
                         f"{_fmt(r.get('embedding', {}).get('float', {}).get('cosine_mean'), '.4f'):>8}  "
                         f"{r['real']['work_text']}{_spread_text(r)}")
    ret_rows = [(m, r) for m in report["methods"] if m["available"]
                for r in sorted(m["results"], key=lambda r: -r["real"]["work_fraction"]) if "retrieval" in r]
    if ret_rows:
        n = ret_rows[0][1]["retrieval"].get("texts", "?")
        lines.append("")
        lines.append(f"Retrieval on the {n} evaluated texts (approximate vs exact model; seeded: mean [min-max]):")
        lines.append(f"  {'method':<10} {'setting':<12} {'work':>6} {'emb cos':>8}  {'Spearman sim':<22} "
                     "top-1 NN agree")
        for m, r in ret_rows:
            ret = r["retrieval"]
            lines.append(f"  {m['name']:<10} {r['label']:<12} {_fmt(r['real']['work_fraction']):>6} "
                         f"{_fmt(r['embedding']['float'].get('cosine_mean'), '.4f'):>8}  "
                         f"{_with_spread(ret, 'spearman', '.4f'):<22} {_with_spread(ret, 'top1_agreement', '.2f')}")
    ops = format_operating_points(report)
    if ops:
        lines += ["", ops]
    return "\n".join(lines)


def operating_points(methods: Sequence[Mapping[str, Any]], budgets: Sequence[float]) -> list[dict[str, Any]]:
    """The work left at fixed fidelity: for each method and sentence-embedding cosine budget C (mean
    over the evaluated texts, and over the seeds for seeded methods), the *global* setting = the
    least-work point of the default and the sweep whose cosine is >= C (chosen on the evaluated
    texts themselves, so an optimistic oracle), and every *calibrated* per-head row whose file was
    fitted for the cosine budget C on the calibration texts (its held-out cosine may miss C)."""
    out = []
    for m in methods:
        if not m.get("available") or m["name"] == "Reference":
            continue
        rows = [r for r in m["results"] if "cosine_mean" in r.get("embedding", {}).get("float", {})]
        for c in budgets:
            point: dict[str, Any] = {"method": m["name"], "budget_cosine": float(c)}
            glob = [r for r in rows if not r.get("calibrated") and r["embedding"]["float"]["cosine_mean"] >= c]
            if glob:
                best = min(glob, key=lambda r: r["real"]["work_fraction"])
                point["global"] = _op_entry(best)
            else:
                closest = max((r for r in rows if not r.get("calibrated")),
                              key=lambda r: r["embedding"]["float"]["cosine_mean"], default=None)
                point["global"] = {"met": False, "best": _op_entry(closest) if closest else None}
            cal = [r for r in rows if r.get("calibrated") and r.get("budget", {}).get("kind") == "cosine"
                   and abs(float(r["budget"]["value"]) - c) < 1e-9]
            if cal:
                point["calibrated"] = _op_entry(cal[0])
            out.append(point)
    return out


def _op_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    emb = row["embedding"]["float"]
    out = {"label": row["label"], "met": True, "cosine_mean": emb["cosine_mean"], "cosine_min": emb["cosine_min"],
           "work_fraction": row["real"]["work_fraction"], "work": dict(row.get("work_figures", {})),
           "rel_error_mean": row["real"]["rel_error_mean"]}
    if "cosine_mean_spread" in emb:
        out["cosine_mean_spread"] = list(emb["cosine_mean_spread"])
    return out


def _op_work_text(e: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {_fmt(v)}" for k, v in e.get("work", {}).items()) or _fmt(e.get("work_fraction"))


def _op_cos_text(e: Mapping[str, Any]) -> str:
    sp = e.get("cosine_mean_spread")
    text = _fmt(e.get("cosine_mean"), ".4f")
    return f"{text} [{_fmt(sp[0], '.4f')}-{_fmt(sp[1], '.4f')}]" if sp else text


def format_operating_points(report: Mapping[str, Any]) -> str:
    """Markdown table of :func:`operating_points` (global vs calibrated per head, side by side)."""
    pts = report.get("operating_points") or []
    if not pts:
        return ""
    n = report.get("corpus", {}).get("texts", "?")
    lines = [f"Operating points at fixed fidelity (sentence-embedding cosine vs the exact model, mean over the {n} "
             "evaluated texts; seeded methods: mean [min-max] over seeds). Global: least-work default/sweep "
             "setting meeting the budget on these texts (oracle choice); calibrated: per-head file fitted for "
             "the budget on the calibration texts only.", "",
             "| method | budget | global setting | cosine | work left | calibrated per head | cosine | work left |",
             "|---|---|---|---|---|---|---|---|"]
    for p in pts:
        g = p["global"]
        if g.get("met", True) and "label" in g:
            gtxt = f"{g['label']} | {_op_cos_text(g)} | {_op_work_text(g)}"
        else:
            b = g.get("best")
            gtxt = (f"not reached (best {b['label']}) | {_op_cos_text(b)} | {_op_work_text(b)}" if b
                    else "not reached | - | -")
        c = p.get("calibrated")
        if c:
            met = "" if c["cosine_mean"] >= p["budget_cosine"] else " (missed)"
            ctxt = f"{c['label']}{met} | {_op_cos_text(c)} | {_op_work_text(c)}"
        else:
            ctxt = "no file given | - | -"
        lines.append(f"| {p['method']} | {p['budget_cosine']:g} | {gtxt} | {ctxt} |")
    return "\n".join(lines)


def _with_spread(d: Mapping[str, Any], key: str, spec: str) -> str:
    sp = d.get(f"{key}_spread")
    text = _fmt(d.get(key), spec)
    return f"{text} [{_fmt(sp[0], spec)}-{_fmt(sp[1], spec)}]" if sp else text


def _spread_text(row: Mapping[str, Any]) -> str:
    seeds = row["real"].get("seeds")
    if not seeds:
        return ""
    sp = seeds["spread"]
    emb = row.get("embedding", {}).get("float", {}).get("cosine_mean_spread")
    emb_text = f" emb {_fmt(emb[0], '.4f')}-{_fmt(emb[1], '.4f')}" if emb else ""
    return (f"  [{seeds['n']} seeds: err {_fmt(sp['rel_error_mean'][0])}-{_fmt(sp['rel_error_mean'][1])}"
            f" work {_fmt(sp['work_fraction'][0])}-{_fmt(sp['work_fraction'][1])}{emb_text}]")


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
    ops = format_operating_points(report)
    if ops:
        paths.append(out / "operating_points.md")
        paths[-1].write_text(ops + "\n")
    if plots:
        paths += plot_tradeoffs(report, out)
    return paths


def _calib_tag(row: Mapping[str, Any]) -> str:
    """Short plot label of a calibrated row: its budget ("C=0.99", "E=0.2") or the row label."""
    b = row.get("budget") or {}
    if "value" in b:
        return f"{'C' if b.get('kind') == 'cosine' else 'E'}={b['value']:g}"
    return str(row.get("label", ""))


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
        spread = [r["real"].get("seeds", {}).get("spread", {}).get("rel_error_mean") for r in rows]
        if all(spread):
            ax.fill_between(x, [sp[0] for sp in spread], [sp[1] for sp in spread], color="C0", alpha=0.2,
                            label=f"min-max over {rows[0]['real']['seeds']['n']} seeds")
        calib = [r for r in m["results"] if r.get("calibrated")]
        for j, r in enumerate(calib):   # one legend entry for all files; each point named by its budget
            ax.plot(r["real"]["work_fraction"], r["real"]["rel_error_mean"], "D", color="C3", ms=8,
                    label="calibrated per head" if j == 0 else None)
            ax.annotate(_calib_tag(r), (r["real"]["work_fraction"], r["real"]["rel_error_mean"]),
                        textcoords="offset points", xytext=(-6, 7), fontsize=6, color="C3", ha="right")
        ax.plot([r["random"]["work_fraction"] for r in rows], [r["random"]["rel_error_mean"] for r in rows],
                "s--", alpha=0.7, label="random data")
        for k, (r, xi) in enumerate(zip(rows, x, strict=True)):
            ax.annotate(r["label"].split("=")[-1], (xi, r["real"]["rel_error_mean"]), textcoords="offset points",
                        xytext=(4, 4 if k % 2 else -10), fontsize=7)
        dflt = [(xi, r["real"]["rel_error_mean"]) for r, xi in zip(rows, x, strict=True) if r["default"]]
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
            if all("cosine_mean_spread" in e for e in emb):
                ax2.fill_between(x, [e["cosine_mean_spread"][0] for e in emb],
                                 [e["cosine_mean_spread"][1] for e in emb], color="C2", alpha=0.2,
                                 label="mean: min-max over seeds")
            for j, r in enumerate(calib):
                e = r.get("embedding", {}).get("float", {})
                if "cosine_mean" in e:
                    ax2.plot(r["real"]["work_fraction"], e["cosine_mean"], "D", color="C3", ms=8,
                             label="calibrated per head (mean)" if j == 0 else None)
                    ax2.annotate(_calib_tag(r), (r["real"]["work_fraction"], e["cosine_mean"]),
                                 textcoords="offset points", xytext=(-6, -10), fontsize=6, color="C3", ha="right")
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
