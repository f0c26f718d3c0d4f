"""Reference (exact) attention and the common per-head interface every method implements.

A method is a callable ``method(head: HeadInputs, **settings) -> MethodResult``. It receives the
head's *token* inputs and projection weights (not Q/K/V), because CTA and E-ATT change how the
projections are computed; methods that start from Q/K/V call :meth:`HeadInputs.qkv`.

Also here: the same exact attention in the project's default fixed-point formats
(:class:`QuantConfig`, :func:`quantize_head`, :func:`quantized_attention` on raw integers,
:func:`quantized_head` as a method), and the two error metrics of the accuracy report
(:func:`relative_error`, :func:`cosine_similarity`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .fixed import QFormat, Rounding, requantize, shift_round
from .lut import ExpSpec, RecipSpec

__all__ = [
    "HeadInputs",
    "MethodResult",
    "AttentionMethod",
    "softmax",
    "exact_attention",
    "exact_head",
    "QuantConfig",
    "QuantizedHead",
    "quantize_head",
    "quantized_attention",
    "quantized_head",
    "relative_error",
    "cosine_similarity",
]


@dataclass(frozen=True)
class HeadInputs:
    """One attention head: X^Q (m×d_in), X^KV (n×d_in), W (d_in×d_h) and biases (d_h)."""

    x_q: np.ndarray
    x_kv: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    bq: np.ndarray | None = None
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("x_q", "x_kv", "wq", "wk", "wv"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim != 2:
                raise ValueError(f"HeadInputs.{name} must be 2-D, got shape {arr.shape}")
            object.__setattr__(self, name, arr)
        d_in = self.x_q.shape[1]
        if self.x_kv.shape[1] != d_in:
            raise ValueError(f"x_kv has {self.x_kv.shape[1]} features, x_q has {d_in}")
        for name in ("wq", "wk", "wv"):
            w = getattr(self, name)
            if w.shape[0] != d_in:
                raise ValueError(f"{name} has {w.shape[0]} rows, expected d_in={d_in}")
        if not (self.wq.shape[1] == self.wk.shape[1]):
            raise ValueError(f"wq and wk must have the same d_h: {self.wq.shape[1]} vs {self.wk.shape[1]}")
        for name, w in (("bq", self.wq), ("bk", self.wk), ("bv", self.wv)):
            b = getattr(self, name)
            b = np.zeros(w.shape[1]) if b is None else np.asarray(b, dtype=np.float64)
            if b.shape != (w.shape[1],):
                raise ValueError(f"{name} must have shape ({w.shape[1]},), got {b.shape}")
            object.__setattr__(self, name, b)

    @property
    def d_in(self) -> int:
        return self.x_q.shape[1]

    @property
    def d_h(self) -> int:
        return self.wq.shape[1]

    @property
    def m(self) -> int:
        return self.x_q.shape[0]

    @property
    def n(self) -> int:
        return self.x_kv.shape[0]

    def qkv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x_q @ self.wq + self.bq, self.x_kv @ self.wk + self.bk, self.x_kv @ self.wv + self.bv


@dataclass
class MethodResult:
    """A method's output (m×d_h, float64) and its work figures (method-specific keys)."""

    out: np.ndarray
    work: dict[str, Any] = field(default_factory=dict)


class AttentionMethod(Protocol):
    def __call__(self, head: HeadInputs, **settings: Any) -> MethodResult: ...


def softmax(scores: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """Numerically stable softmax; entries where ``mask`` is False get probability 0."""
    s = np.asarray(scores, dtype=np.float64)
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    s = s - np.max(s, axis=axis, keepdims=True)
    e = np.exp(s)
    return e / np.sum(e, axis=axis, keepdims=True)


def exact_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """softmax(Q Kᵀ / √d) V in float64."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"q and k must have the same width: {q.shape[1]} vs {k.shape[1]}")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"k and v must have the same number of rows: {k.shape[0]} vs {v.shape[0]}")
    return softmax(q @ k.T / np.sqrt(q.shape[1])) @ v


def exact_head(head: HeadInputs, **settings: Any) -> MethodResult:
    """Exact attention of one head (takes no settings; the keyword form makes it an AttentionMethod)."""
    if settings:
        raise TypeError(f"exact_head takes no settings, got {sorted(settings)}")
    q, k, v = head.qkv()
    return MethodResult(exact_attention(q, k, v), {"macs": head.m * head.n * head.d_h * 2})


def relative_error(approx: np.ndarray, exact: np.ndarray) -> float:
    """‖approx − exact‖_F / ‖exact‖_F (0 when both are zero)."""
    approx, exact = np.asarray(approx, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if approx.shape != exact.shape:
        raise ValueError(f"shapes differ: {approx.shape} vs {exact.shape}")
    den = float(np.linalg.norm(exact))
    num = float(np.linalg.norm(approx - exact))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two arrays seen as flat vectors (1 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


# -- exact attention quantized to the project's default formats (DESIGN §2) ----------------------
@dataclass(frozen=True)
class QuantConfig:
    """Formats of the fixed-point reference attention (defaults: DESIGN §2 / CTA §IV-C).

    Tokens Q6.7 (13 bit), weights and biases 12 bit with integer bits covering each matrix's range,
    Q/K/V 12-bit Q6.6 like CTA's compressed Q̄K̄V̄. Designer's choices (documented here): scores
    20-bit with 8 fractional bits; 1/√d as an unsigned constant with ``inv_sqrt_d_frac`` bits;
    exp input 16-bit Q8.8 (the max-subtracted score, ≤ 0; saturating at −128 only loses
    probabilities below e^−128); probabilities UQ1.15; row sums wide enough for ``max_tokens``;
    outputs 16-bit with 10 fractional bits. Division by the row sum through :class:`RecipSpec`.
    """

    token: QFormat = QFormat(13, 7)
    weight_width: int = 12
    qkv: QFormat = QFormat(12, 6)
    score: QFormat = QFormat(20, 8)
    inv_sqrt_d_frac: int = 15
    exp_in: QFormat = QFormat(16, 8)
    prob: QFormat = QFormat(16, 15, signed=False)
    out: QFormat = QFormat(16, 10)
    max_tokens: int = 256
    exp_lut_bits: int = 8
    recip_lut_bits: int = 10
    recip_mant_bits: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.weight_width, int) or not 2 <= self.weight_width <= 24:
            raise ValueError(f"QuantConfig weight_width must be an integer in [2, 24], not {self.weight_width!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"QuantConfig max_tokens must be an integer >= 1, not {self.max_tokens!r}")
        if not 1 <= self.inv_sqrt_d_frac <= 30:
            raise ValueError(f"QuantConfig inv_sqrt_d_frac must be in [1, 30], not {self.inv_sqrt_d_frac}")
        if self.prob.signed:
            raise ValueError("QuantConfig prob must be unsigned")

    @property
    def den(self) -> QFormat:
        """Row-sum format: the probability format widened by log2(max_tokens) bits."""
        return QFormat(self.prob.width + max(1, (self.max_tokens - 1).bit_length()), self.prob.frac, signed=False)

    @property
    def exp_spec(self) -> ExpSpec:
        return ExpSpec(self.exp_in, self.prob, lut_bits=self.exp_lut_bits)

    @property
    def recip_spec(self) -> RecipSpec:
        return RecipSpec(self.den, lut_bits=self.recip_lut_bits, mant_bits=self.recip_mant_bits)

    def weight_format(self, w: np.ndarray) -> QFormat:
        """``weight_width`` bits with integer bits chosen to cover max|w| (DESIGN §2)."""
        max_abs = float(np.max(np.abs(w))) if np.size(w) else 0.0
        return QFormat.covering(max_abs if max_abs > 0 else 1.0, self.weight_width)

    def as_dict(self) -> dict[str, Any]:
        return {
            "token": self.token.as_dict(), "weight_width": self.weight_width, "qkv": self.qkv.as_dict(),
            "score": self.score.as_dict(), "inv_sqrt_d_frac": self.inv_sqrt_d_frac,
            "exp": self.exp_spec.as_dict(), "den": self.den.as_dict(), "out": self.out.as_dict(),
            "recip": self.recip_spec.as_dict(), "max_tokens": self.max_tokens,
        }


DEFAULT_QUANT = QuantConfig()


@dataclass(frozen=True)
class QuantizedHead:
    """Raw Q, K, V (``cfg.qkv``) of one head and the overflow counts of the quantization steps."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    overflow: dict[str, int]


def _quantized_linear(x_raw: np.ndarray, x_frac: int, w: np.ndarray, b: np.ndarray, cfg: QuantConfig,
                      name: str, overflow: dict[str, int]) -> np.ndarray:
    """x·W + b with 12-bit W and b, exact int64 accumulation, rounded/saturated to ``cfg.qkv``."""
    w_fmt, b_fmt = cfg.weight_format(w), cfg.weight_format(b)
    w_raw, b_raw = w_fmt.quantize(w), b_fmt.quantize(b)
    acc_frac = x_frac + w_fmt.frac
    acc = x_raw @ w_raw + shift_round(b_raw, b_fmt.frac - acc_frac, Rounding.HALF_UP)
    out, over = requantize(acc, acc_frac, cfg.qkv)
    overflow[name] = int(np.count_nonzero(over))
    return out


def quantize_head(head: HeadInputs, cfg: QuantConfig = DEFAULT_QUANT) -> QuantizedHead:
    """Quantize the tokens (``cfg.token``) and weights, and compute raw Q, K, V in ``cfg.qkv``."""
    overflow: dict[str, int] = {}
    xq_raw, xkv_raw = cfg.token.quantize(head.x_q), cfg.token.quantize(head.x_kv)
    overflow["x_q"] = _count_out_of_range(head.x_q, cfg.token)
    overflow["x_kv"] = _count_out_of_range(head.x_kv, cfg.token)
    q = _quantized_linear(xq_raw, cfg.token.frac, head.wq, head.bq, cfg, "q", overflow)
    k = _quantized_linear(xkv_raw, cfg.token.frac, head.wk, head.bk, cfg, "k", overflow)
    v = _quantized_linear(xkv_raw, cfg.token.frac, head.wv, head.bv, cfg, "v", overflow)
    return QuantizedHead(q, k, v, overflow)


def _count_out_of_range(x: np.ndarray, fmt: QFormat) -> int:
    """Values that saturate when quantized (beyond the format's range by more than half an LSB)."""
    scaled = np.asarray(x, dtype=np.float64) * 2.0**fmt.frac
    raw = np.floor(scaled + 0.5) if fmt.rounding is Rounding.HALF_UP else np.floor(scaled)
    return int(np.count_nonzero((raw > fmt.max_int) | (raw < fmt.min_int)))


def quantized_attention(q_raw: np.ndarray, k_raw: np.ndarray, v_raw: np.ndarray,
                        cfg: QuantConfig = DEFAULT_QUANT) -> tuple[np.ndarray, dict[str, int]]:
    """Bit-exact fixed-point softmax(Q Kᵀ/√d) V on raw ``cfg.qkv`` integers.

    Steps: S = Q·Kᵀ (exact int64) × round(2^f/√d), rounded and saturated to ``cfg.score``; per row
    subtract the max and saturate to ``cfg.exp_in``; e = ExpSpec (UQ1.15); den = Σ e (exact, in
    ``cfg.den``); num = e·V (exact); out = RecipSpec.scale(num, den) in ``cfg.out``.
    Returns (raw output in ``cfg.out``, overflow counts per step).
    """
    q, k, v = (np.asarray(a) for a in (q_raw, k_raw, v_raw))
    for name, a in (("q_raw", q), ("k_raw", k), ("v_raw", v)):
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must be raw integers in {cfg.qkv}, not dtype {a.dtype}")
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"q_raw and k_raw must have the same width: {q.shape[1]} vs {k.shape[1]}")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"k_raw and v_raw must have the same number of rows: {k.shape[0]} vs {v.shape[0]}")
    n = k.shape[0]
    if n > cfg.max_tokens:
        raise ValueError(f"n = {n} keys exceeds QuantConfig.max_tokens = {cfg.max_tokens}")
    q, k, v = (a.astype(np.int64) for a in (q, k, v))
    overflow: dict[str, int] = {}
    d = q.shape[1]
    inv_sqrt_d = math.floor(2.0**cfg.inv_sqrt_d_frac / math.sqrt(d) + 0.5)
    scores, over = requantize((q @ k.T) * inv_sqrt_d, 2 * cfg.qkv.frac + cfg.inv_sqrt_d_frac, cfg.score)
    overflow["score"] = int(np.count_nonzero(over))
    shifted, _ = requantize(scores - scores.max(axis=1, keepdims=True), cfg.score.frac, cfg.exp_in)
    e, over = cfg.exp_spec(shifted)
    overflow["exp"] = int(np.count_nonzero(over))
    den, over = cfg.den.fit(e.sum(axis=1, keepdims=True))
    overflow["den"] = int(np.count_nonzero(over))
    num = e @ v
    out, over, _ = cfg.recip_spec.scale(num, cfg.prob.frac + cfg.qkv.frac, den, cfg.out)
    overflow["out"] = int(np.count_nonzero(over))
    return out, overflow


def quantized_head(head: HeadInputs, cfg: QuantConfig = DEFAULT_QUANT, **settings: Any) -> MethodResult:
    """Exact attention computed in the default fixed-point formats (an AttentionMethod).

    ``work`` holds the MAC count and the overflow (saturation) counts of every step.
    """
    if settings:
        raise TypeError(f"quantized_head takes only cfg, got {sorted(settings)}")
    qh = quantize_head(head, cfg)
    out, over = quantized_attention(qh.q, qh.k, qh.v, cfg)
    overflow = {**qh.overflow, **over}
    return MethodResult(cfg.out.to_float(out), {"macs": head.m * head.n * head.d_h * 2, "overflow": overflow,
                                                "overflow_total": sum(overflow.values())})
