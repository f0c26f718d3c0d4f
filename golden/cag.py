"""Centroid aggregation (CAG) golden model: CACC (per-cluster sums and counts) and CAVG
(sum × reciprocal of the count), seed 001 Fig. 4b / §IV-B(3); bit-exact with ``hdl.cag``.

All values are raw integers of their :class:`golden.fixed.QFormat` (tokens Q6.7, centroids Q6.6
by default, DESIGN §2).

* CACC sums exactly: the accumulator is ``token.width + bits(n_max)`` bits wide, so the sum
  of at most ``n_max`` tokens never overflows; counts are ``bits(n_max)`` wide.
  Tokens the hardware refuses are dropped and set the sticky ``overflow`` flag: a cluster index
  ``>= k_max`` (e.g. the CIM "no cluster" sentinel) or a token after the first
  ``n_max`` of a run. ``n_clusters`` is one more than the largest accepted index.
* CAVG: ``centroid = RecipSpec.scale(sum, token.frac, count, centroid_fmt)`` — the one division
  model of the project (:mod:`golden.lut`). With ``lut_bits >= bits(n_max) - 1`` every
  count indexes the LUT exactly. Empty clusters (count 0, only possible when indices skip
  values) give a zero centroid and no flag. A centroid that saturates sets ``saturated``.
* Residual tokens (two-level LSH, §III-B): ``r = x - C1[CT1]`` aligned to the finer fraction,
  then rounded/saturated to the residual format; saturation sets ``saturated``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import QFormat, check_in_range, requantize, shift_round
from .lut import RecipSpec

__all__ = [
    "TOKEN_FMT",
    "CENTROID_FMT",
    "count_bits",
    "count_format",
    "accumulator_format",
    "default_recip_spec",
    "residual_tokens",
    "centroid_accumulate",
    "centroid_average",
    "CagResult",
    "aggregate",
]

#: tokens and residual tokens: 13 bit, 7 fractional (Q6.7); centroids: 12 bit, 6 fractional (Q6.6).
TOKEN_FMT = QFormat(13, 7)
CENTROID_FMT = QFormat(12, 6)


def count_bits(n_max: int) -> int:
    if not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f"n_max must be an integer >= 1, not {n_max!r}")
    return n_max.bit_length()


def count_format(n_max: int) -> QFormat:
    """Unsigned integer counts 0 .. n_max."""
    return QFormat(count_bits(n_max), 0, signed=False)


def accumulator_format(token_fmt: QFormat, n_max: int) -> QFormat:
    """Sums of up to ``n_max`` tokens, exact (no saturation can occur)."""
    return QFormat(token_fmt.width + count_bits(n_max), token_fmt.frac)


def default_recip_spec(n_max: int, mant_bits: int = 16) -> RecipSpec:
    """Reciprocal-of-count spec whose LUT index is exact for every count up to ``n_max``."""
    bits = count_bits(n_max)
    lut_bits = max(1, bits - 1)
    if lut_bits > 12:
        raise ValueError(f"n_max={n_max} needs lut_bits={lut_bits} > 12 for exact reciprocals")
    return RecipSpec(count_format(n_max), lut_bits=lut_bits, mant_bits=mant_bits)


def residual_tokens(
    x: np.ndarray, c1: np.ndarray, ct1: np.ndarray, *,
    token_fmt: QFormat = TOKEN_FMT, centroid_fmt: QFormat = CENTROID_FMT, residual_fmt: QFormat = TOKEN_FMT,
) -> tuple[np.ndarray, np.ndarray]:
    """``x - c1[ct1]`` in ``residual_fmt``: (raw residuals n × d, saturation mask n × d)."""
    x = check_in_range(x, token_fmt, "x")
    c1 = check_in_range(c1, centroid_fmt, "c1")
    ct1 = np.asarray(ct1, dtype=np.int64)
    return residual_from_pairs(x, c1[ct1], token_fmt=token_fmt, centroid_fmt=centroid_fmt, residual_fmt=residual_fmt)


def residual_from_pairs(
    x: np.ndarray, c: np.ndarray, *,
    token_fmt: QFormat = TOKEN_FMT, centroid_fmt: QFormat = CENTROID_FMT, residual_fmt: QFormat = TOKEN_FMT,
) -> tuple[np.ndarray, np.ndarray]:
    """``x - c`` element-wise (c already gathered per token): (raw residuals, saturation mask)."""
    frac = max(token_fmt.frac, centroid_fmt.frac)
    xa = shift_round(np.asarray(x, dtype=np.int64), token_fmt.frac - frac)
    ca = shift_round(np.asarray(c, dtype=np.int64), centroid_fmt.frac - frac)
    return requantize(xa - ca, frac, residual_fmt)


def centroid_accumulate(
    x: np.ndarray, indices: np.ndarray, *, k_max: int, n_max: int,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """CACC: ``(sums k × d, counts k, k, overflow)`` with the hardware's drop rules."""
    x = np.asarray(x, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64)
    if x.ndim != 2 or idx.shape != (x.shape[0],):
        raise ValueError(f"x must be n × d and indices length n, got {x.shape} and {idx.shape}")
    accepted = (idx >= 0) & (idx < k_max) & (np.arange(len(idx)) < n_max)
    overflow = bool(np.any(~accepted))
    k = int(idx[accepted].max()) + 1 if np.any(accepted) else 0
    sums = np.zeros((k, x.shape[1]), dtype=np.int64)
    np.add.at(sums, idx[accepted], x[accepted])
    counts = np.bincount(idx[accepted], minlength=k).astype(np.int64)
    return sums, counts, k, overflow


def centroid_average(
    sums: np.ndarray, counts: np.ndarray, *, value_frac: int, centroid_fmt: QFormat = CENTROID_FMT,
    recip_spec: RecipSpec,
) -> tuple[np.ndarray, np.ndarray]:
    """CAVG: ``(centroids k × d raw, saturated mask k)``; count 0 gives a zero row, no flag."""
    sums = np.asarray(sums, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    den = np.broadcast_to(counts[:, None], sums.shape)
    res, over, _zero = recip_spec.scale(sums, value_frac, den, centroid_fmt)
    empty = counts == 0
    res = np.where(empty[:, None], 0, res)
    saturated = np.any(over, axis=1) & ~empty
    return res.astype(np.int64), saturated


@dataclass(frozen=True)
class CagResult:
    centroids: np.ndarray  # k × d raw centroid_fmt
    counts: np.ndarray  # k
    sums: np.ndarray  # k × d raw accumulator (token frac)
    n_clusters: int
    overflow: bool  # a token was dropped (index out of range or beyond n_max)
    saturated: bool  # a centroid or residual saturated
    centroid_saturated: np.ndarray  # k bool


def aggregate(
    x: np.ndarray, indices: np.ndarray, *, k_max: int, n_max: int,
    token_fmt: QFormat = TOKEN_FMT, centroid_fmt: QFormat = CENTROID_FMT, recip_spec: RecipSpec | None = None,
    residual_centroids: np.ndarray | None = None, residual_fmt: QFormat = TOKEN_FMT,
) -> CagResult:
    """One CAG run: centroids of ``x`` (n × d raw ``token_fmt``) grouped by ``indices``.

    With ``residual_centroids`` (n × d raw ``centroid_fmt``, i.e. C1[CT1] gathered per token) the
    aggregated tokens are the residuals ``x - residual_centroids`` in ``residual_fmt``.
    """
    x = check_in_range(x, token_fmt, "x")
    spec = recip_spec or default_recip_spec(n_max)
    saturated = False
    value_frac = token_fmt.frac
    if residual_centroids is not None:
        c = check_in_range(residual_centroids, centroid_fmt, "residual_centroids")
        x, res_sat = residual_from_pairs(x, c, token_fmt=token_fmt, centroid_fmt=centroid_fmt,
                                         residual_fmt=residual_fmt)
        accepted = (np.asarray(indices) < k_max) & (np.arange(len(x)) < n_max)
        saturated = bool(np.any(res_sat[accepted]))
        value_frac = residual_fmt.frac
    sums, counts, k, overflow = centroid_accumulate(x, indices, k_max=k_max, n_max=n_max)
    cents, csat = centroid_average(sums, counts, value_frac=value_frac, centroid_fmt=centroid_fmt, recip_spec=spec)
    return CagResult(cents, counts, sums, k, overflow, saturated or bool(np.any(csat)), csat)
