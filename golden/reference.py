"""Reference (exact) attention and the common per-head interface every method implements.

A method is a callable ``method(head: HeadInputs, **settings) -> MethodResult``. It receives the
head's *token* inputs and projection weights (not Q/K/V), because CTA and E-ATT change how the
projections are computed; methods that start from Q/K/V call :meth:`HeadInputs.qkv`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["HeadInputs", "MethodResult", "AttentionMethod", "softmax", "exact_attention", "exact_head"]


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


def exact_head(head: HeadInputs) -> MethodResult:
    q, k, v = head.qkv()
    return MethodResult(exact_attention(q, k, v), {"macs": head.m * head.n * head.d_h * 2})
