"""LSH parameters and hashing for CTA (DESIGN §3 steps 1-2, seed 001 §III-A).

Three hash functions ``LSH_h`` (h = 0: queries, 1: keys/values, 2: residuals), each with
``l`` directions ``A_h`` (l × d_in), offsets ``b_h`` (l) and a bucket width ``w_h``:
``H = floor((A·xᵀ + b) / w)`` (eq. 1).

Parameters are drawn from one seed with ``numpy.random.default_rng(seed)``, in the order
``A_0, b_0, A_1, b_1, A_2, b_2``: directions from N(0, 1), offsets from U(0, w_h). The
directions are rounded to the hardware's ``A`` format (Q3.9 by default, §IV-C) when drawn, so the
float and the fixed-point models hash along exactly the same directions.

Cluster indices (:func:`cluster_indices`) follow the first appearance of each distinct code,
0-based, which is what the cluster-tree thread of Fig. 4a produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .fixed import QFormat

__all__ = [
    "DEFAULT_DIRECTION_FMT",
    "LSHParams",
    "make_lsh_params",
    "widths_triple",
    "lsh_hash",
    "cluster_indices",
    "centroids",
]

#: LSH directions: 12 bit, 9 fractional bits (Q3.9, CTA §IV-C).
DEFAULT_DIRECTION_FMT = QFormat(12, 9)


@dataclass(frozen=True)
class LSHParams:
    """One hash function: directions ``a`` (l × d_in), offsets ``b`` (l), bucket width ``w``.

    ``length`` is the hash length l.
    """

    a: np.ndarray
    b: np.ndarray
    w: float

    def __post_init__(self) -> None:
        a = np.asarray(self.a, dtype=np.float64)
        b = np.asarray(self.b, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"LSHParams.a must be 2-D (l × d_in), got shape {a.shape}")
        if b.shape != (a.shape[0],):
            raise ValueError(f"LSHParams.b must have shape ({a.shape[0]},), got {b.shape}")
        if not (isinstance(self.w, int | float | np.floating) and np.isfinite(self.w) and self.w > 0):
            raise ValueError(f"LSHParams.w (bucket width) must be a finite number > 0, not {self.w!r}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "w", float(self.w))

    @property
    def length(self) -> int:
        return self.a.shape[0]

    @property
    def d_in(self) -> int:
        return self.a.shape[1]


def widths_triple(widths: float | Sequence[float]) -> tuple[float, float, float]:
    """Bucket widths (w_0, w_1, w_2) from one number or a sequence of three; each must be > 0."""
    if isinstance(widths, int | float | np.floating | np.integer) and not isinstance(widths, bool):
        triple = (float(widths),) * 3
    else:
        if isinstance(widths, str | bytes):
            raise TypeError(f"widths must be a number or three numbers, not {widths!r}")
        try:
            triple = tuple(float(w) for w in widths)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise TypeError(f"widths must be a number or three numbers, not {widths!r}") from None
        if len(triple) != 3:
            raise ValueError(f"widths must hold three bucket widths (w0, w1, w2), got {len(triple)}")
    for h, w in enumerate(triple):
        if not (np.isfinite(w) and w > 0):
            raise ValueError(f"bucket width w{h} must be a finite number > 0, not {w}")
    return triple  # type: ignore[return-value]


def make_lsh_params(
    d_in: int, *, l: int = 6, widths: float | Sequence[float] = 4.0, seed: int = 0,
    direction_fmt: QFormat | None = DEFAULT_DIRECTION_FMT,
) -> tuple[LSHParams, LSHParams, LSHParams]:
    """(LSH_0, LSH_1, LSH_2) drawn from ``seed`` (see the module doc for the order of draws)."""
    if not isinstance(d_in, int | np.integer) or d_in < 1:
        raise ValueError(f"d_in must be an integer >= 1, not {d_in!r}")
    if not isinstance(l, int | np.integer) or not 1 <= l <= 64:
        raise ValueError(f"l (hash length) must be an integer in [1, 64], not {l!r}")
    ws = widths_triple(widths)
    rng = np.random.default_rng(seed)
    params = []
    for w in ws:
        a = rng.standard_normal((int(l), int(d_in)))
        if direction_fmt is not None:
            a = direction_fmt.to_float(direction_fmt.quantize(a))
        b = rng.uniform(0.0, w, size=int(l))
        params.append(LSHParams(a, b, w))
    return tuple(params)  # type: ignore[return-value]


def lsh_hash(x: np.ndarray, params: LSHParams) -> np.ndarray:
    """Hash codes floor((A·xᵀ + b)/w) of the rows of ``x`` (n × d_in) -> (n × l) ``np.int64``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != params.d_in:
        raise ValueError(f"x must be (n × d_in={params.d_in}), got shape {x.shape}")
    return np.floor((x @ params.a.T + params.b) / params.w).astype(np.int64)


def cluster_indices(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """(CT, k): 0-based cluster index of each row of ``codes`` in order of first appearance."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (n × l), got shape {codes.shape}")
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), 0
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)].astype(np.int64), int(order.size)


def centroids(x: np.ndarray, ct: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-cluster means (k × d), counts (k)) of the rows of ``x`` grouped by ``ct`` (Fig. 4b)."""
    x = np.asarray(x, dtype=np.float64)
    ct = np.asarray(ct)
    if x.ndim != 2 or ct.shape != (x.shape[0],):
        raise ValueError(f"need x (n × d) and ct (n), got {x.shape} and {ct.shape}")
    counts = np.bincount(ct, minlength=k)[:k]
    if counts.shape[0] != k or np.any(counts == 0):
        raise ValueError("every cluster index in [0, k) must occur in ct")
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, ct, x)
    return sums / counts[:, None], counts
