"""Per-head calibration of CTA bucket widths (issue 14): ``attn-rtl calibrate cta``.

Fits, for every layer and head of all-MiniLM-L6-v2, the bucket widths (w0, w1, w2) of the three
LSH levels on the *calibration* texts (:func:`golden.corpus.calibration_texts`; never the
evaluation texts) for a budget the user names, with the least attention work:

* ``error`` budget E: per head, the mean relative error ‖O − O_exact‖_F / ‖O_exact‖_F against exact
  float attention (over calibration texts and LSH seeds) must be ≤ E; among the grid points that
  meet it, the head takes the one with the fewest attention operations (``attention_ops`` of
  :func:`golden.cta.cta_work`, summed over the texts, averaged over the seeds). A head that cannot
  meet E on the grid takes its most accurate point (reported in ``unmet_heads``).
* ``cosine`` budget C: the end-to-end sentence-embedding cosine against the exact model (CTA in
  every layer and head, mean over the calibration texts and seeds) must be ≥ C. Each head takes
  the grid point minimising ``work_h / work_exact_h + λ · error_h`` (one multiplier λ for all heads,
  i.e. points on the lower convex hull of each head's error-work curve), and λ is found by
  bisection (log scale) as the smallest one whose calibration cosine meets C.

The search is a full grid over (w0, w1, w2) (:data:`GRID`, :data:`QUICK_GRID`), cheap because all
12 heads of a layer share the same layer input, hence the same LSH clusterings for a given width
and seed: one clustering per (text, layer, seed, level, width) serves every head and every grid
point, and each grid point is evaluated for the 12 heads at once (:func:`cta_core`, batched).
:func:`cta_fast` is the same algorithm as :func:`golden.cta.cta_float` on one head, computed from Q,
K, V by linearity (Q̄ = mean of the Q rows of a cluster, etc.); the tests check that both agree
to 1e-9. Reported work (as the project defines it, :func:`golden.cta.cta_work`): RA = attention
operations / exact, RL = linear MACs / exact, both ratios of totals over all heads and texts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .cta import cta_work
from .cta_params import CTAParams
from .lsh import LSHParams, centroids, cluster_indices, lsh_hash, make_lsh_params, widths_triple
from .reference import HeadInputs, MethodResult

__all__ = ["single_thread_blas", "GRID", "QUICK_GRID", "CALIB_SEEDS", "CalibConfig", "cta_core", "cta_fast",
           "cta_fast_heads", "mca_fast_heads", "cta_error_contributions",
           "embed_cta", "HeadTable", "build_table", "select_error", "select_lagrange", "calibrate_cta", "table_point",
           "check_budgets"]

#: default width grid per level (w0 queries, w1 keys/values, w2 residuals)
GRID: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] = (
    (4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0), (6.0, 8.0, 12.0, 16.0, 24.0, 32.0), (4.0, 8.0, 32.0, 64.0))
QUICK_GRID: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] = (
    (8.0, 16.0, 32.0), (12.0, 32.0), (8.0, 32.0))
#: LSH seeds averaged while fitting (the accuracy report evaluates on other seeds)
CALIB_SEEDS: tuple[int, ...] = (100, 101, 102)


# -- BLAS threads ----------------------------------------------------------------------------------
class single_thread_blas:
    """Context manager: NumPy's OpenBLAS limited to one thread (best effort; no-op when the library
    or its symbols are not found). The many small products of the calibration run 10-30x slower
    when OpenBLAS threads spin against each other on a shared 2-core machine."""

    _lib: Any = None
    _names: tuple[str, str] | None = None

    @classmethod
    def _find(cls) -> None:
        if cls._names is not None:
            return
        import ctypes
        import glob
        import os

        cls._names = ("", "")
        root = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
        for path in glob.glob(os.path.join(root, "*openblas*")):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for get, put in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                             ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                             ("openblas_get_num_threads", "openblas_set_num_threads")):
                if hasattr(lib, get) and hasattr(lib, put):
                    cls._lib, cls._names = lib, (get, put)
                    return

    def __enter__(self) -> single_thread_blas:
        self._find()
        self._saved = None
        if self._lib is not None and self._names:
            self._saved = int(getattr(self._lib, self._names[0])())
            getattr(self._lib, self._names[1])(1)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._saved is not None and self._names:
            getattr(self._lib, self._names[1])(self._saved)


# -- fast float CTA --------------------------------------------------------------------------------
def _mean_matrix(ct: np.ndarray, k: int) -> np.ndarray:
    """(k × n) matrix whose product with a (n × d) matrix gives the k cluster means."""
    mat = np.zeros((k, ct.size))
    mat[ct, np.arange(ct.size)] = 1.0
    return mat / mat.sum(axis=1, keepdims=True)


def _apply(mat: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``mat @ x`` for x (n × d) or heads-batched x (H × n × d), as one 2-D BLAS product."""
    if x.ndim == 2:
        return mat @ x
    h, n, d = x.shape
    return (mat @ x.transpose(1, 0, 2).reshape(n, h * d)).reshape(mat.shape[0], h, d).transpose(1, 0, 2)


def cta_core(q: np.ndarray, k: np.ndarray, v: np.ndarray, ct0: np.ndarray, k0: int, ct1: np.ndarray, k1: int,
             ct2: np.ndarray, k2: int) -> np.ndarray:
    """CTA output from exact Q (.., m, d), K, V (.., n, d) and the three clusterings (a leading axis
    batches heads). Same algorithm as :func:`golden.cta.cta_float` (see the module doc)."""
    qb = _apply(_mean_matrix(ct0, k0), q)
    m1, m2 = _mean_matrix(ct1, k1), _mean_matrix(ct2, k2)
    kt1, vt1 = _apply(m1, k)[..., ct1, :], _apply(m1, v)[..., ct1, :]
    kt = kt1 + _apply(m2, k - kt1)[..., ct2, :]      # K̄1[CT1 j] + K̄2[CT2 j]: the key rebuilt by eq. (4)
    vt = vt1 + _apply(m2, v - vt1)[..., ct2, :]
    s = qb @ np.swapaxes(kt, -1, -2) / math.sqrt(q.shape[-1])
    s -= s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    ob = (e @ vt) / e.sum(axis=-1, keepdims=True)
    return ob[..., ct0, :]


def _clusters(x_q: np.ndarray, x_kv: np.ndarray, lsh: Sequence[LSHParams]) -> tuple[Any, ...]:
    ct0, k0 = cluster_indices(lsh_hash(x_q, lsh[0]))
    ct1, k1 = cluster_indices(lsh_hash(x_kv, lsh[1]))
    c1, _ = centroids(x_kv, ct1, k1)
    ct2, k2 = cluster_indices(lsh_hash(x_kv - c1[ct1], lsh[2]))
    return ct0, k0, ct1, k1, ct2, k2


def cta_fast(head: HeadInputs, *, l: int = 6, widths: float | Sequence[float] = 4.0, seed: int = 0,
             lsh: Sequence[LSHParams] | None = None, **settings: Any) -> MethodResult:
    """:func:`golden.cta.cta_float` (same settings, same output to ~1e-12, same ``work``), fast."""
    if settings:
        raise TypeError(f"cta_fast got unknown settings: {sorted(settings)}")
    params = _lsh_params(head.d_in, l, widths_triple(widths), seed) if lsh is None else tuple(lsh)
    ct0, k0, ct1, k1, ct2, k2 = _clusters(head.x_q, head.x_kv, params)
    q, k, v = head.qkv()
    out = cta_core(q, k, v, ct0, k0, ct1, k1, ct2, k2)
    work = cta_work(head.m, head.n, head.d_in, head.d_h, head.wv.shape[1], k0, k1, k2, params[0].length)
    return MethodResult(out, work)


def cta_fast_heads(heads: Sequence[HeadInputs], settings: Sequence[dict[str, Any]], reuse: bool = False
                   ) -> list[MethodResult]:
    """:func:`cta_fast` on several heads of one layer (same ``x_q`` and ``x_kv`` objects, as
    ``MiniLM.head_inputs`` gives): one clustering per distinct (l, widths, seed) serves every head
    that uses it and those heads run as one batch (same outputs as :func:`cta_fast` to ~1e-12).
    Heads that do not share the first head's inputs fall back to :func:`cta_fast`. ``reuse`` is
    accepted for the report's batch interface (nothing per head is worth keeping here)."""
    if len(heads) != len(settings):
        raise ValueError(f"{len(heads)} heads but {len(settings)} settings")
    out: list[MethodResult | None] = [None] * len(heads)
    if not heads:
        return []
    x_q, x_kv = heads[0].x_q, heads[0].x_kv
    groups: dict[tuple[int, tuple[float, float, float], int], list[int]] = {}
    for i, (head, kw) in enumerate(zip(heads, settings, strict=True)):
        rest = {k: v for k, v in kw.items() if k not in ("l", "widths", "seed")}
        if rest:
            raise TypeError(f"cta_fast got unknown settings: {sorted(rest)}")
        if head.x_q is not x_q or head.x_kv is not x_kv:  # not one layer's heads: no sharing
            out[i] = cta_fast(head, **kw)
            continue
        key = (int(kw.get("l", 6)), widths_triple(kw.get("widths", 4.0)), int(kw.get("seed", 0)))
        groups.setdefault(key, []).append(i)
    for (l, widths, seed), idx in groups.items():
        params = _lsh_params(x_q.shape[1], l, widths, seed)
        ct0, k0, ct1, k1, ct2, k2 = _clusters(x_q, x_kv, params)
        hs = [heads[i] for i in idx]
        m, n, d_h, d_v = x_q.shape[0], x_kv.shape[0], hs[0].d_h, hs[0].wv.shape[1]
        # the projections of all heads of the group as one product each: (m, H·d) -> (H, m, d)
        q = (x_q @ np.concatenate([h.wq for h in hs], 1) + np.concatenate([h.bq for h in hs]))
        k = (x_kv @ np.concatenate([h.wk for h in hs], 1) + np.concatenate([h.bk for h in hs]))
        v = (x_kv @ np.concatenate([h.wv for h in hs], 1) + np.concatenate([h.bv for h in hs]))
        q = q.reshape(m, len(hs), d_h).transpose(1, 0, 2)
        k = k.reshape(n, len(hs), d_h).transpose(1, 0, 2)
        v = v.reshape(n, len(hs), d_v).transpose(1, 0, 2)
        res = cta_core(q, k, v, ct0, k0, ct1, k1, ct2, k2)
        work = cta_work(m, n, x_q.shape[1], d_h, d_v, k0, k1, k2, params[0].length)
        for j, i in enumerate(idx):
            out[i] = MethodResult(res[j], dict(work))
    return [r for r in out if r is not None]


@lru_cache(maxsize=4096)
def _lsh_params(d_in: int, l: int, widths: tuple[float, float, float], seed: int) -> tuple[LSHParams, ...]:
    return make_lsh_params(d_in, l=l, widths=widths, seed=seed)


class _LSHCache:
    """LSH_h with width w for a seed: the directions do not depend on the widths (golden.lsh draws
    A_0, b_0, A_1, ... in a fixed order and b_h = w_h · U(0, 1)), so LSH_h(w) is taken from
    make_lsh_params(widths=(w, w, w)) and is exactly the one any width triple with w_h = w gives."""

    def __init__(self, d_in: int, l: int) -> None:
        self.d_in, self.l = d_in, l
        self._c: dict[tuple[int, int, float], LSHParams] = {}

    def get(self, seed: int, level: int, w: float) -> LSHParams:
        key = (seed, level, float(w))
        if key not in self._c:
            self._c[key] = make_lsh_params(self.d_in, l=self.l, widths=float(w), seed=seed)[level]
        return self._c[key]


class _LayerClusters:
    """Clusterings of one layer input for one seed, cached per level width (shared by all heads)."""

    def __init__(self, x: np.ndarray, seed: int, cache: _LSHCache) -> None:
        self.x, self.seed, self.cache = x, seed, cache
        self._ct: dict[tuple[Any, ...], tuple[np.ndarray, int]] = {}
        self._res: dict[float, np.ndarray] = {}

    def level(self, level: int, w: float, w1: float | None = None) -> tuple[np.ndarray, int]:
        key = (level, float(w), w1)
        if key not in self._ct:
            if level == 2:
                assert w1 is not None
                if w1 not in self._res:
                    ct1, k1 = self.level(1, w1)
                    c1, _ = centroids(self.x, ct1, k1)
                    self._res[w1] = self.x - c1[ct1]
                src = self._res[w1]
            else:
                src = self.x
            self._ct[key] = cluster_indices(lsh_hash(src, self.cache.get(self.seed, level, w)))
        return self._ct[key]

    def triple(self, widths: Sequence[float]) -> tuple[Any, ...]:
        w0, w1, w2 = (float(w) for w in widths)
        return (*self.level(0, w0), *self.level(1, w1), *self.level(2, w2, w1))


def embed_cta(model: Any, texts: Sequence[str], widths_for: Callable[[int, int], Sequence[float] | None], *,
              seed: int = 0, l: int = 6) -> np.ndarray:
    """Sentence embeddings with float CTA in every layer and head, ``widths_for(layer, head)`` ->
    (w0, w1, w2); equal to ``model.embed(texts, head_fn=golden.cta.cta_float, settings_for=...)``
    (to ~1e-12) but several times faster (one clustering per layer and width, heads batched).
    ``widths_for`` returning None leaves that head exact (for the error-contribution studies)."""
    from .minilm import D_HEAD, N_HEADS

    cache = _LSHCache(model.layers[0].wq.shape[0], l)
    rows = []
    for text in texts:
        x = model._embed_tokens(model.tokenize(text))
        n = x.shape[0]
        for li, lw in enumerate(model.layers):
            q = (x @ lw.wq + lw.bq).reshape(n, N_HEADS, D_HEAD).transpose(1, 0, 2)
            k = (x @ lw.wk + lw.bk).reshape(n, N_HEADS, D_HEAD).transpose(1, 0, 2)
            v = (x @ lw.wv + lw.bv).reshape(n, N_HEADS, D_HEAD).transpose(1, 0, 2)
            lc = _LayerClusters(x, seed, cache)
            groups: dict[tuple[float, ...] | None, list[int]] = {}
            for h in range(N_HEADS):
                wf = widths_for(li, h)
                groups.setdefault(None if wf is None else tuple(float(w) for w in wf), []).append(h)
            ctx = np.empty((N_HEADS, n, D_HEAD))
            for widths, heads in groups.items():
                if widths is None:   # exact softmax attention
                    s = q[heads] @ k[heads].transpose(0, 2, 1) / math.sqrt(D_HEAD)
                    e = np.exp(s - s.max(axis=-1, keepdims=True))
                    ctx[heads] = (e / e.sum(axis=-1, keepdims=True)) @ v[heads]
                else:
                    ctx[heads] = cta_core(q[heads], k[heads], v[heads], *lc.triple(widths))
            x = model._finish_layer(lw, x, ctx)
        rows.append(model._pool(x))
    return np.stack(rows) if rows else np.zeros((0, model.layers[0].wq.shape[0]))


# -- table -----------------------------------------------------------------------------------------
@dataclass
class HeadTable:
    """Per (layer, head, grid point): mean relative error and summed work over the calibration set."""

    combos: list[tuple[float, float, float]]
    err: np.ndarray       # (L, H, C) mean over texts and seeds
    err_max: np.ndarray   # (L, H, C) worst text (mean over seeds)
    att: np.ndarray       # (L, H, C) attention ops summed over texts, mean over seeds
    lin: np.ndarray       # (L, H, C) linear MACs likewise
    att_exact: np.ndarray  # (L, H)
    lin_exact: np.ndarray  # (L, H)
    texts: int
    seeds: tuple[int, ...]
    seconds: float = 0.0
    err_texts: np.ndarray | None = None  # (T, L, H, C) per text (mean over seeds)
    tokens: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CalibConfig:
    texts: tuple[str, ...] | None = None   # default: golden.corpus.calibration_texts(quick)
    grid: tuple[tuple[float, ...], ...] | None = None
    seeds: tuple[int, ...] = CALIB_SEEDS
    l: int = 6
    quick: bool = False
    progress: bool = True

    def resolved_texts(self) -> tuple[str, ...]:
        from .corpus import calibration_texts

        return self.texts if self.texts is not None else calibration_texts(self.quick)

    def resolved_grid(self) -> tuple[tuple[float, ...], ...]:
        return self.grid if self.grid is not None else (QUICK_GRID if self.quick else GRID)


def _bisect_lambda(at: Any, budget_cosine: float, lam_lo: float, lam_hi: float, steps: int,
                   progress: bool) -> float:
    """The smallest Lagrange multiplier λ in [lam_lo, lam_hi] (bisected on a log scale, ``steps``
    times) whose selection ``at(λ)`` meets the calibration cosine budget; ``lam_hi`` (the most
    accurate end) when none of the tried values does."""
    lo, hi = math.log(lam_lo), math.log(lam_hi)
    bar = _bar(progress, steps + 1, "cosine search")
    best = None
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if at(math.exp(mid))[1]["cosine_mean"] >= budget_cosine:
            hi, best = mid, math.exp(mid)
        else:
            lo = mid
        bar.update(1)
    if best is None:      # nothing met so far: the most accurate end of the range
        best = math.exp(hi)
        at(best)
    bar.update(1)
    bar.close()
    return best


def _search_lambda(evaluate: Callable[[float], tuple[Any, dict[str, float]]], budget_cosine: float,
                   lam_lo: float, lam_hi: float, steps: int, progress: bool,
                   over: str) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """:func:`_bisect_lambda` over a memoised ``evaluate(λ) -> (selection, cosine figures)``: the
    chosen selection, its cosine figures and the calibration summary entries of the search."""
    cache: dict[float, tuple[Any, dict[str, float]]] = {}

    def at(lam: float) -> tuple[Any, dict[str, float]]:
        if lam not in cache:
            cache[lam] = evaluate(lam)
        return cache[lam]

    best = _bisect_lambda(at, budget_cosine, lam_lo, lam_hi, steps, progress)
    chosen, cos = at(best)
    summary = {"lambda": best, "budget_met_on_calibration": cos["cosine_mean"] >= budget_cosine,
               "search": f"per head: argmin work/exact + lambda * error {over}; lambda bisected (log scale) "
                         "for the calibration cosine",
               "lambda_tried": {f"{k:.4g}": v[1] for k, v in sorted(cache.items())}}
    return chosen, cos, summary


def _knob_arrays(n_texts: int, c: int) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, np.ndarray]:
    """Zeroed accumulators of a knob table over ``c`` candidates: (shape, per-text error, work,
    kept, exact work, pairs)."""
    from .minilm import N_HEADS, N_LAYERS

    shape = (N_LAYERS, N_HEADS, c)
    return (shape, np.zeros((n_texts,) + shape), np.zeros(shape), np.zeros(shape),
            np.zeros((N_LAYERS, N_HEADS)), np.zeros((N_LAYERS, N_HEADS)))


def _bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        class _No:
            def update(self, n: int = 1) -> None:
                return None

            def close(self) -> None:
                return None
        return _No()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


def _layer_traces(model: Any, texts: Sequence[str], progress: bool, desc: str) -> Iterator[tuple[int, str, int, Any]]:
    """``(text index, text, layer, layer trace)`` for every layer of every text's float trace, one
    progress step a layer (a bar ``desc`` if ``progress``)."""
    from .minilm import N_LAYERS

    bar = _bar(progress, len(texts) * N_LAYERS, desc)
    for ti, text in enumerate(texts):
        tr = model.trace(text)
        for li in range(N_LAYERS):
            yield ti, text, li, tr.layers[li]
            bar.update(1)
    bar.close()


def build_table(model: Any, cfg: CalibConfig) -> HeadTable:
    """Evaluate every grid point on every calibration text, layer, head and seed (see module doc)."""
    from .minilm import N_HEADS, N_LAYERS

    t0 = time.perf_counter()
    texts, grid = cfg.resolved_texts(), cfg.resolved_grid()
    if len(cfg.seeds) < 1 or not texts:
        raise ValueError("calibration needs at least one text and one seed")
    combos = [(float(a), float(b), float(c)) for a in grid[0] for b in grid[1] for c in grid[2]]
    shape = (N_LAYERS, N_HEADS, len(combos))
    err_t = np.zeros((len(texts),) + shape)
    att, lin = np.zeros(shape), np.zeros(shape)
    att_ex, lin_ex = np.zeros((N_LAYERS, N_HEADS)), np.zeros((N_LAYERS, N_HEADS))
    cache = _LSHCache(model.layers[0].wq.shape[0], cfg.l)
    ns = len(cfg.seeds)
    for ti, _, li, lt in _layer_traces(model, texts, cfg.progress, "calibrate"):
        n = lt.x.shape[0]
        d = lt.q.shape[-1]
        norm = np.linalg.norm(lt.ctx, axis=(1, 2))
        for s in cfg.seeds:
            lc = _LayerClusters(lt.x, s, cache)
            for ci, widths in enumerate(combos):
                ct0, k0, ct1, k1, ct2, k2 = lc.triple(widths)
                out = cta_core(lt.q, lt.k, lt.v, ct0, k0, ct1, k1, ct2, k2)
                err_t[ti, li, :, ci] += np.linalg.norm(out - lt.ctx, axis=(1, 2)) / norm / ns
                w = cta_work(n, n, lt.x.shape[1], d, d, k0, k1, k2, cfg.l)
                att[li, :, ci] += w["attention_ops"] / ns
                lin[li, :, ci] += w["linear_macs"] / ns
        w = cta_work(n, n, lt.x.shape[1], d, d, 1, 1, 1, cfg.l)
        att_ex[li] += w["attention_ops_exact"]
        lin_ex[li] += w["linear_macs_exact"]
    return HeadTable(combos, err_t.mean(axis=0), err_t.max(axis=0), att, lin, att_ex, lin_ex, len(texts),
                     tuple(cfg.seeds), time.perf_counter() - t0, err_t,
                     tuple(len(model.tokenize(t)) for t in texts))


def select_error(table: HeadTable, budget: float) -> tuple[np.ndarray, np.ndarray]:
    """Per head: the least-work grid point with mean error ≤ budget, else the most accurate one.
    Returns (choice index (L, H), met (L, H) bool)."""
    ok = table.err <= budget
    cost = np.where(ok, table.att + 1e-9 * table.lin, np.inf)
    choice = np.where(ok.any(axis=-1), np.argmin(cost, axis=-1), np.argmin(table.err, axis=-1))
    return choice, ok.any(axis=-1)


def select_lagrange(table: HeadTable, lam: float) -> np.ndarray:
    """Per head: argmin over the grid of attention work / exact + λ · mean error."""
    obj = table.att / table.att_exact[..., None] + lam * table.err
    return np.argmin(obj, axis=-1)


def table_point(table: HeadTable, choice: np.ndarray) -> dict[str, float]:
    """Calibration-set figures of a per-head choice: RA, RL (ratios of totals), mean/max error."""
    pick = choice[..., None]
    att = np.take_along_axis(table.att, pick, -1)[..., 0]
    lin = np.take_along_axis(table.lin, pick, -1)[..., 0]
    err = np.take_along_axis(table.err, pick, -1)[..., 0]
    return {"RA": float(att.sum() / table.att_exact.sum()), "RL": float(lin.sum() / table.lin_exact.sum()),
            "head_error_mean": float(err.mean()), "head_error_max": float(err.max())}


def _widths(table: HeadTable, choice: np.ndarray) -> np.ndarray:
    return np.asarray(table.combos)[choice]


def _cosine(model: Any, texts: Sequence[str], widths: np.ndarray, seeds: Sequence[int], l: int) -> dict[str, float]:
    exact = model.embed(list(texts))
    per_seed = []
    for s in seeds:
        emb = embed_cta(model, texts, lambda li, h: widths[li, h], seed=s, l=l)
        per_seed.append(np.sum(emb * exact, axis=1))
    cos = np.asarray(per_seed)  # (seeds, texts)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "cosine_seed_min": float(cos.mean(axis=1).min()), "cosine_seed_max": float(cos.mean(axis=1).max())}


def check_budgets(budget_error: float | None, budget_cosine: float | None) -> None:
    """Exactly one budget, in range: an error budget > 0 or a cosine budget in (0, 1)."""
    if (budget_error is None) == (budget_cosine is None):
        raise ValueError("give exactly one budget: an error budget or a cosine budget")
    if budget_error is not None and not (math.isfinite(budget_error) and budget_error > 0):
        raise ValueError(f"the error budget must be a number > 0, not {budget_error}")
    if budget_cosine is not None and not (math.isfinite(budget_cosine) and 0 < budget_cosine < 1):
        raise ValueError(f"the cosine budget must be in (0, 1), not {budget_cosine}")

def calibrate_cta(cfg: CalibConfig, *, budget_error: float | None = None, budget_cosine: float | None = None,
                  model: Any = None, table: HeadTable | None = None) -> tuple[CTAParams, dict[str, Any]]:
    """Fit per-head widths for one budget; returns the parameters and a summary (also stored in
    ``params.calibration``). ``table``: a :func:`build_table` of ``cfg`` (several budgets, one table)."""
    from .minilm import MiniLM

    check_budgets(budget_error, budget_cosine)
    t0 = time.perf_counter()
    model = MiniLM.load() if model is None else model
    with single_thread_blas():
        return _calibrate(model, cfg, budget_error, budget_cosine, t0, table)


def _calibrate(model: Any, cfg: CalibConfig, budget_error: float | None, budget_cosine: float | None,
               t0: float, table: HeadTable | None = None) -> tuple[CTAParams, dict[str, Any]]:
    texts = cfg.resolved_texts()
    table = build_table(model, cfg) if table is None else table
    summary: dict[str, Any] = {"texts": len(texts), "tokens": [len(model.tokenize(t)) for t in texts],
                               "grid": {"w0": list(cfg.resolved_grid()[0]), "w1": list(cfg.resolved_grid()[1]),
                                        "w2": list(cfg.resolved_grid()[2])},
                               "table_seconds": table.seconds}
    if budget_error is not None:
        choice, met = select_error(table, budget_error)
        widths = _widths(table, choice)
        budget = {"kind": "error", "value": float(budget_error)}
        summary["unmet_heads"] = [[int(a), int(b)] for a, b in np.argwhere(~met)]
        summary["search"] = "per head: least attention work with mean relative error <= budget"
    else:
        assert budget_cosine is not None
        budget = {"kind": "cosine", "value": float(budget_cosine)}

        def evaluate(lam: float) -> tuple[np.ndarray, dict[str, float]]:
            w = _widths(table, select_lagrange(table, lam))
            return w, _cosine(model, texts, w, cfg.seeds, cfg.l)

        # λ range: error counts little .. error dominates
        widths, cos, found = _search_lambda(evaluate, budget_cosine, 0.3, 30.0, 5 if cfg.quick else 6,
                                            cfg.progress, "on the grid")
        summary.update(found)
        choice = np.asarray([[table.combos.index(tuple(float(x) for x in widths[li, h]))
                              for h in range(widths.shape[1])] for li in range(widths.shape[0])])
    summary["calibration_point"] = table_point(table, choice)
    if budget_cosine is None:
        summary["calibration_point"].update(_cosine(model, texts, widths, cfg.seeds, cfg.l))
    else:
        summary["calibration_point"].update(cos)
    summary["seconds"] = time.perf_counter() - t0
    params = CTAParams(widths=np.asarray(widths, dtype=np.float64), l=cfg.l, budget=budget,
                       seeds=tuple(cfg.seeds), calibration=summary)
    return params, summary


# -- per-head LATTE τ and MCA α (issue 14) ----------------------------------------------------------
#: LATTE candidates per head: the τ reaching these pruning ratios on the head's calibration inputs
LATTE_PRUNE_GRID: tuple[float, ...] = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98)
QUICK_LATTE_PRUNE_GRID: tuple[float, ...] = (0.0, 0.5, 0.8, 0.95)
#: MCA α candidates (all heads)
MCA_ALPHA_GRID: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 1.0)
QUICK_MCA_ALPHA_GRID: tuple[float, ...] = (0.1, 0.4, 1.0)
#: MCA PRNG seeds averaged while fitting (the accuracy report uses 1..5)
MCA_CALIB_SEEDS: tuple[int, ...] = (101, 102, 103)

_STREAMS: dict[int, np.ndarray] = {}
_TABLES: dict[tuple[Any, ...], Any] = {}


def _prng_stream(seed: int, count: int) -> np.ndarray:
    """The first ``count`` xorshift32 states after ``seed`` (cached; a stream does not depend on r)."""
    from .mca import xorshift32_draws

    s = _STREAMS.get(seed)
    if s is None or s.size < count:
        s = xorshift32_draws(seed, max(count, 1 << 17))
        _STREAMS[seed] = s
    return s[:count]


def _sampling_table(w: np.ndarray, cdf_bits: int) -> Any:
    from .mca import make_sampling_table

    key = (w.shape, cdf_bits, hash(np.ascontiguousarray(w).tobytes()))
    if key not in _TABLES:
        if len(_TABLES) > 4096:
            _TABLES.clear()
        table = make_sampling_table(w, cdf_bits=cdf_bits)
        # every cdf_bits-bit draw -> its row: the inverse-CDF search as one lookup table
        lut = np.searchsorted(table.cdf, np.arange(1 << table.cdf_bits), side="right")
        _TABLES[key] = (table, lut)
    return _TABLES[key]


def mca_fast(head: HeadInputs, *, alpha: float = 0.4, seed: int = 1, cdf_bits: int = 16,
             **settings: Any) -> MethodResult:
    """:func:`golden.mca.mca_float` (same settings and ``work``, same output to ~1e-12) with the PRNG
    stream and the sampling table cached and the sampled sums as one product with the per-token draw
    counts (the report runs every MCA point with several seeds)."""
    if settings:
        raise TypeError(f"mca_fast got unknown settings: {sorted(settings)}")
    return _mca_from_attention(head, _mca_attention(head), alpha, seed, cdf_bits)


def _mca_attention(head: HeadInputs) -> np.ndarray:
    """golden.mca._attention without the unused V projection (same operations, same result)."""
    from .reference import softmax

    q, k = head.x_q @ head.wq + head.bq, head.x_kv @ head.wk + head.bk
    return softmax(q @ k.T / math.sqrt(q.shape[1]))


_MCA_ATT: dict[int, tuple[HeadInputs, np.ndarray]] = {}


def mca_fast_heads(heads: Sequence[HeadInputs], settings: Sequence[dict[str, Any]], reuse: bool = False
                   ) -> list[MethodResult]:
    """:func:`mca_fast` per head; ``reuse``: the heads are long-lived objects (the report's real
    heads), so their attention matrix (independent of α and the seed) is kept and reused."""
    out = []
    for head, kw in zip(heads, settings, strict=True):
        if not reuse:
            out.append(mca_fast(head, **kw))
            continue
        hit = _MCA_ATT.get(id(head))
        if hit is None or hit[0] is not head:   # the stored head object keeps its id unique
            if len(_MCA_ATT) > 8192:
                _MCA_ATT.clear()
            hit = _MCA_ATT[id(head)] = (head, _mca_attention(head))
        rest = {k: v for k, v in kw.items() if k not in ("alpha", "seed", "cdf_bits")}
        if rest:
            raise TypeError(f"mca_fast got unknown settings: {sorted(rest)}")
        out.append(_mca_from_attention(head, hit[1], kw.get("alpha", 0.4), kw.get("seed", 1),
                                       kw.get("cdf_bits", 16)))
    return out


def _mca_from_attention(head: HeadInputs, a: np.ndarray, alpha: float, seed: int, cdf_bits: int) -> MethodResult:
    from .mca import PRNG_WARMUP, _check_alpha, _check_seed, _work, sample_counts_float

    alpha, seed = _check_alpha(alpha), _check_seed(seed)
    table, lut = _sampling_table(head.wv, cdf_bits)
    r = sample_counts_float(a, alpha, head.d_in)
    states = _prng_stream(seed, PRNG_WARMUP + int(r.sum()))[PRNG_WARMUP:]
    idx = lut[np.right_shift(states, 32 - table.cdf_bits)]   # == searchsorted(cdf, ·, "right"), a gather
    # Σ_k X[j, s_k]·Ws[s_k] = Σ_s count_j(s)·X[j, s]·Ws[s]: one product with the draw counts per token
    token = np.repeat(np.arange(head.n), r)
    counts = np.bincount(token * head.d_in + idx, minlength=head.n * head.d_in).reshape(head.n, head.d_in)
    h = ((counts * head.x_kv) @ table.ws_float) / r[:, None] + head.bv
    return MethodResult(a @ h, _work(r, head.d_in, alpha))


@dataclass
class KnobTable:
    """Per (layer, head, candidate) of a scalar knob: mean relative error and summed work over the
    calibration texts (and seeds)."""

    method: str               # "LATTE" or "MCA"
    key: str                  # "tau" or "alpha"
    values: np.ndarray        # (L, H, C) candidate values per head
    err: np.ndarray           # (L, H, C) mean over texts and seeds
    err_max: np.ndarray       # (L, H, C) worst text
    work: np.ndarray          # (L, H, C) LATTE bit operations / MCA encoding MACs, summed over texts
    work_exact: np.ndarray    # (L, H) full 8-bit bit operations / exact encoding MACs n·d_in·d
    kept: np.ndarray          # (L, H, C) LATTE kept (query, key) pairs summed over texts (MCA: Σ r)
    pairs: np.ndarray         # (L, H) LATTE: all (query, key) pairs; MCA: n·d_in summed over texts
    texts: int
    seeds: tuple[int, ...]
    seconds: float = 0.0
    labels: tuple[str, ...] = ()   # what the candidates are (LATTE: target pruning ratios)


@dataclass(frozen=True)
class KnobConfig:
    method: str                                   # "latte" or "mca"
    texts: tuple[str, ...] | None = None          # default: golden.corpus.calibration_texts(quick)
    grid: tuple[float, ...] | None = None         # LATTE: pruning ratios; MCA: α values
    seeds: tuple[int, ...] = MCA_CALIB_SEEDS      # MCA only
    quick: bool = False
    progress: bool = True

    def resolved_texts(self) -> tuple[str, ...]:
        from .corpus import calibration_texts

        return self.texts if self.texts is not None else calibration_texts(self.quick)

    def resolved_grid(self) -> tuple[float, ...]:
        if self.grid is not None:
            return tuple(self.grid)
        if self.method == "latte":
            return QUICK_LATTE_PRUNE_GRID if self.quick else LATTE_PRUNE_GRID
        return QUICK_MCA_ALPHA_GRID if self.quick else MCA_ALPHA_GRID


def _masked_softmax_out(score: np.ndarray, mask: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = np.where(mask, score, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def _latte_table(model: Any, cfg: KnobConfig, texts: Sequence[str]) -> KnobTable:
    from .latte import bit_operations, calibrate_tau, compensated_scores, estimate_scores, quantize_head
    from .minilm import N_HEADS, N_LAYERS

    t0 = time.perf_counter()
    grid = cfg.resolved_grid()
    for p in grid:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"LATTE pruning ratios must be in [0, 1], not {p}")
    quant = {(ti, li, h): quantize_head(hin) for ti, text in enumerate(texts) for li in range(N_LAYERS)
             for h, hin in enumerate(model.head_inputs(text, li))}
    c = len(grid)
    values = np.zeros((N_LAYERS, N_HEADS, c))
    for li in range(N_LAYERS):
        for h in range(N_HEADS):
            heads = [quant[(ti, li, h)] for ti in range(len(texts))]
            values[li, h] = [calibrate_tau(heads, p) for p in grid]
    shape, err_t, work, kept, work_ex, pairs = _knob_arrays(len(texts), c)
    for ti, _, li, lt in _layer_traces(model, texts, cfg.progress, "calibrate latte"):
        exact = lt.ctx
        for h in range(N_HEADS):
            qh = quant[(ti, li, h)]
            a_est = estimate_scores(qh.q, qh.k)
            gap = a_est.max(axis=1, keepdims=True) - a_est
            score = compensated_scores(qh.q, qh.k) * qh.score_scale
            v = qh.v * qh.s_v
            norm = np.linalg.norm(exact[h])
            m, n = gap.shape
            for ci in range(c):
                mask = gap <= values[li, h, ci]
                out = _masked_softmax_out(score, mask, v)
                err_t[ti, li, h, ci] = np.linalg.norm(out - exact[h]) / norm
                k = int(mask.sum())
                kept[li, h, ci] += k
                work[li, h, ci] += bit_operations(m, n, qh.d_h, k)["bit_ops"]
            work_ex[li, h] += bit_operations(m, n, qh.d_h, m * n)["bit_ops_full"]
            pairs[li, h] += m * n
    return KnobTable("LATTE", "tau", values, err_t.mean(axis=0), err_t.max(axis=0), work, work_ex, kept, pairs,
                     len(texts), (), time.perf_counter() - t0, tuple(f"prune={p:g}" for p in grid))


def _mca_table(model: Any, cfg: KnobConfig, texts: Sequence[str]) -> KnobTable:
    from .mca import _check_alpha

    t0 = time.perf_counter()
    grid = tuple(_check_alpha(a) for a in cfg.resolved_grid())
    if not cfg.seeds:
        raise ValueError("MCA calibration needs at least one PRNG seed")
    c, ns = len(grid), len(cfg.seeds)
    shape, err_t, work, kept, work_ex, pairs = _knob_arrays(len(texts), c)
    for ti, text, li, lt in _layer_traces(model, texts, cfg.progress, "calibrate mca"):
        exact = lt.ctx
        for h, hin in enumerate(model.head_inputs(text, li)):
            norm = np.linalg.norm(exact[h])
            d = hin.wv.shape[1]
            for ci, a in enumerate(grid):
                for s in cfg.seeds:
                    res = mca_fast(hin, alpha=a, seed=s)
                    err_t[ti, li, h, ci] += np.linalg.norm(res.out - exact[h]) / norm / ns
                    r_sum = res.work["mean_r"] * hin.n
                    kept[li, h, ci] += r_sum / ns
                    work[li, h, ci] += r_sum * d / ns
            work_ex[li, h] += hin.n * hin.d_in * d
            pairs[li, h] += hin.n * hin.d_in
    return KnobTable("MCA", "alpha", np.broadcast_to(np.asarray(grid), shape).copy(), err_t.mean(axis=0),
                     err_t.max(axis=0), work, work_ex, kept, pairs, len(texts), tuple(cfg.seeds),
                     time.perf_counter() - t0, tuple(f"alpha={a:g}" for a in grid))


def build_knob_table(model: Any, cfg: KnobConfig) -> KnobTable:
    """Evaluate every candidate of every head on the calibration texts (float models)."""
    texts = cfg.resolved_texts()
    if not texts:
        raise ValueError("calibration needs at least one text")
    with single_thread_blas():
        if cfg.method == "latte":
            return _latte_table(model, cfg, texts)
        if cfg.method == "mca":
            return _mca_table(model, cfg, texts)
    raise ValueError(f"unknown method {cfg.method!r}: calibrate latte or mca (cta: calibrate_cta)")


def _knob_point(table: KnobTable, choice: np.ndarray) -> dict[str, float]:
    pick = choice[..., None]

    def take(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, pick, -1)[..., 0]

    err = take(table.err)
    out = {"work_fraction": float(take(table.work).sum() / table.work_exact.sum()),
           "head_error_mean": float(err.mean()), "head_error_max": float(err.max())}
    if table.method == "LATTE":
        out["kept_ratio"] = float(take(table.kept).sum() / table.pairs.sum())
        out["bit_ops_fraction"] = out["work_fraction"]
    else:
        out["flops_fraction"] = out["work_fraction"]     # encoding MACs kept: Σ r / (n · d_in)
    return out


def _knob_embed(model: Any, texts: Sequence[str], table: KnobTable, values: np.ndarray,
                seeds: Sequence[int]) -> dict[str, float]:
    from .latte import latte_float

    exact = model.embed(list(texts))
    per_seed = []
    for s in (seeds if table.method == "MCA" else (None,)):
        if table.method == "MCA":
            emb = model.embed(list(texts), head_fn=mca_fast,
                              settings_for=lambda li, h, s=s: {"alpha": float(values[li, h]), "seed": s})
        else:
            emb = model.embed(list(texts), head_fn=latte_float,
                              settings_for=lambda li, h: {"tau": float(values[li, h])})
        per_seed.append(np.sum(emb * exact, axis=1))
    cos = np.asarray(per_seed)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "cosine_seed_min": float(cos.mean(axis=1).min()), "cosine_seed_max": float(cos.mean(axis=1).max())}


def calibrate_knob(cfg: KnobConfig, *, budget_error: float | None = None, budget_cosine: float | None = None,
                   model: Any = None, table: KnobTable | None = None) -> tuple[Any, dict[str, Any]]:
    """Per-head LATTE τ or MCA α for a budget, as :func:`calibrate_cta` (same two budgets, same
    selection: least work under a per-head error budget, or one Lagrange multiplier bisected for
    the end-to-end calibration cosine). Returns (:class:`golden.cta_params.HeadParams`, summary)."""
    from .cta_params import HeadParams
    from .minilm import MiniLM

    check_budgets(budget_error, budget_cosine)
    if cfg.method not in ("latte", "mca"):
        raise ValueError(f"unknown method {cfg.method!r}: calibrate latte or mca")
    t0 = time.perf_counter()
    model = MiniLM.load() if model is None else model
    texts = cfg.resolved_texts()
    table = build_knob_table(model, cfg) if table is None else table
    seeds = table.seeds
    summary: dict[str, Any] = {"texts": len(texts), "tokens": [len(model.tokenize(t)) for t in texts],
                               "grid": list(table.labels), "table_seconds": table.seconds}
    # cost of a candidate: its work; ties (LATTE: equal τ) resolved towards the first (least work)
    tbl = HeadTable([], table.err, table.err_max, table.work, table.kept, table.work_exact, table.pairs,
                    table.texts, seeds)
    with single_thread_blas():
        if budget_error is not None:
            choice, met = select_error(tbl, budget_error)
            budget = {"kind": "error", "value": float(budget_error)}
            summary["unmet_heads"] = [[int(a), int(b)] for a, b in np.argwhere(~met)]
            summary["search"] = "per head: least work with mean relative error <= budget"
            cos = _knob_embed(model, texts, table, np.take_along_axis(table.values, choice[..., None], -1)[..., 0],
                              seeds)
        else:
            budget = {"kind": "cosine", "value": float(budget_cosine)}

            def evaluate(lam: float) -> tuple[np.ndarray, dict[str, float]]:
                ch = select_lagrange(tbl, lam)
                vals = np.take_along_axis(table.values, ch[..., None], -1)[..., 0]
                return ch, _knob_embed(model, texts, table, vals, seeds)

            choice, cos, found = _search_lambda(evaluate, budget_cosine, 0.01, 1000.0, 5 if cfg.quick else 7,
                                                cfg.progress, "over the candidates")
            summary.update(found)
    values = np.take_along_axis(table.values, choice[..., None], -1)[..., 0]
    summary["calibration_point"] = {**_knob_point(table, choice), **cos}
    summary["seconds"] = time.perf_counter() - t0
    params = HeadParams(method=table.method, key=table.key, values=np.asarray(values, dtype=np.float64),
                        budget=budget, seeds=tuple(seeds), calibration=summary)
    return params, summary


# -- where the CTA error comes from (issue 14 item 3) ------------------------------------------------
def cta_error_contributions(model: Any, texts: Sequence[str], widths: np.ndarray, seeds: Sequence[int],
                            l: int = 6) -> dict[str, Any]:
    """Sentence-embedding cosine (vs exact, mean over texts and seeds) of per-head widths
    ``widths`` (n_layers x n_heads x 3) applied everywhere, in one layer only and everywhere but one
    layer, with each layer's share of the attention work and the per-text cosines: which layers and
    which texts limit the end-to-end cosine."""
    from .minilm import N_HEADS, N_LAYERS

    widths = np.asarray(widths, dtype=np.float64)
    if widths.shape != (N_LAYERS, N_HEADS, 3):
        raise ValueError(f"widths must have shape ({N_LAYERS}, {N_HEADS}, 3), not {widths.shape}")
    if not seeds or not texts:
        raise ValueError("needs at least one text and one seed")
    exact = model.embed(list(texts))

    def cos(pick: Callable[[int, int], bool]) -> np.ndarray:
        per_seed = [np.sum(embed_cta(model, texts, lambda li, h: widths[li, h] if pick(li, h) else None,
                                     seed=s, l=l) * exact, axis=1) for s in seeds]
        return np.mean(per_seed, axis=0)   # per text, mean over seeds

    everywhere = cos(lambda li, h: True)
    only = [float(cos(lambda li, h, L=L: li == L).mean()) for L in range(N_LAYERS)]
    but = [float(cos(lambda li, h, L=L: li != L).mean()) for L in range(N_LAYERS)]
    att = np.zeros((N_LAYERS, N_HEADS))
    att_ex = np.zeros((N_LAYERS, N_HEADS))
    att_text = np.zeros((len(texts), 2))   # per text: attention ops, exact ones (over layers and heads)
    cache = _LSHCache(model.layers[0].wq.shape[0], l)
    for ti, _, li, lt in _layer_traces(model, texts, False, ""):
        n, d = lt.x.shape[0], lt.q.shape[-1]
        for s in seeds:
            lc = _LayerClusters(lt.x, s, cache)
            for h in range(N_HEADS):
                _, k0, _, k1, _, k2 = lc.triple(widths[li, h])
                w = cta_work(n, n, lt.x.shape[1], d, d, k0, k1, k2, l)
                att[li, h] += w["attention_ops"] / len(seeds)
                att_ex[li, h] += w["attention_ops_exact"] / len(seeds)
                att_text[ti] += (w["attention_ops"] / len(seeds), w["attention_ops_exact"] / len(seeds))
    return {"texts": len(texts), "seeds": [int(s) for s in seeds],
            "tokens": [len(model.tokenize(t)) for t in texts],
            "cosine_everywhere": float(everywhere.mean()), "cosine_per_text": everywhere.tolist(),
            "cosine_only_layer": only, "cosine_all_but_layer": but,
            "RA": float(att.sum() / att_ex.sum()),
            "RA_per_layer": (att.sum(axis=1) / att_ex.sum(axis=1)).tolist(),
            "work_share_per_layer": (att.sum(axis=1) / att.sum()).tolist(),
            "RA_per_head": (att / att_ex).tolist(),
            "attention_ops_per_text": att_text[:, 0].tolist(), "attention_ops_exact_per_text": att_text[:, 1].tolist()}
