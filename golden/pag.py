"""CTA probability aggregation (PAG), bit-exact with ``hdl.pag`` (DESIGN §3 step 7, Fig. 6).

For one batch of compressed-query rows ``c`` and every key token ``j``::

    e = exp(CS[c][CT1[j]] + CS[c][k1 + CT2[j]])
    AP[c][CT1[j]]      += e
    AP[c][k1 + CT2[j]] += e

Formats (all :class:`golden.fixed.QFormat`, chosen by the caller; the RTL block defaults are in
``hdl.pag``):

* ``cs_fmt`` - signed compressed scores after the PPE max subtraction (default Q7.8, 16 bit).
* ADD_EXP: the two scores are added exactly (``cs_fmt.frac`` fraction bits, one extra integer
  bit) and requantised into ``exp_spec.in_fmt`` (its rounding; saturating, flag ``add``); the
  shared :class:`golden.lut.ExpSpec` then gives ``e`` in ``exp_spec.out_fmt`` (flag ``exp``).
* ``ap_fmt`` - unsigned, saturating, same fraction bits as ``exp_spec.out_fmt`` (``e`` is added
  without a shift). One AP entry sums up to ``n`` values of ``e`` (a row sums ``2n``).

Saturating accumulation of non-negative values is order independent: every partial sum is
``min(true partial sum, max)``, so the result equals ``min(total, max)`` whatever the order or
merging of updates in the hardware, and an entry saturates (flag ``ap``) iff its total exceeds
the maximum. The model therefore accumulates exactly with ``np.add.at`` and saturates once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .fixed import Overflow, QFormat, check_in_range, requantize
from .lut import ExpSpec

__all__ = ["PagFlags", "PagResult", "check_pag_formats", "add_exp", "probability_aggregation"]


class PagFlags(NamedTuple):
    """Per-row overflow flags (bool arrays of shape (rows,)), as the RTL's sticky per-tile flags."""

    add: np.ndarray  #: a score sum saturated into the exp input format
    exp: np.ndarray  #: an exp output saturated
    ap: np.ndarray  #: an AP entry saturated


class PagResult(NamedTuple):
    ap: np.ndarray  #: raw ``ap_fmt`` values, shape (rows, k1 + k2), int64
    flags: PagFlags


def check_pag_formats(cs_fmt: QFormat, exp_spec: ExpSpec, ap_fmt: QFormat) -> None:
    """Raise ValueError/TypeError naming the format that does not fit the PAG datapath."""
    if not isinstance(cs_fmt, QFormat):
        raise TypeError(f"cs_fmt must be a QFormat, not {cs_fmt!r}")
    if not isinstance(exp_spec, ExpSpec):
        raise TypeError(f"exp_spec must be an ExpSpec, not {exp_spec!r}")
    if not isinstance(ap_fmt, QFormat):
        raise TypeError(f"ap_fmt must be a QFormat, not {ap_fmt!r}")
    if not cs_fmt.signed:
        raise ValueError(f"cs_fmt must be signed (scores after max subtraction), not {cs_fmt}")
    if ap_fmt.signed or ap_fmt.overflow is not Overflow.SATURATE:
        raise ValueError(f"ap_fmt must be unsigned and saturating, not {ap_fmt} ({ap_fmt.overflow.value})")
    if exp_spec.in_fmt.overflow is not Overflow.SATURATE or exp_spec.out_fmt.overflow is not Overflow.SATURATE:
        raise ValueError("exp_spec in/out formats must saturate")
    if ap_fmt.frac != exp_spec.out_fmt.frac:
        raise ValueError(f"ap_fmt.frac={ap_fmt.frac} must equal exp_spec.out_fmt.frac={exp_spec.out_fmt.frac}")
    if ap_fmt.width <= exp_spec.out_fmt.width:
        raise ValueError(f"ap_fmt.width={ap_fmt.width} must exceed exp_spec.out_fmt.width={exp_spec.out_fmt.width}")


def add_exp(s1: np.ndarray, s2: np.ndarray, *, cs_fmt: QFormat, exp_spec: ExpSpec
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ADD_EXP unit: ``exp(s1 + s2)``; returns (e raw, add-saturated mask, exp-saturated mask)."""
    total = np.asarray(s1, dtype=np.int64) + np.asarray(s2, dtype=np.int64)
    x, add_over = requantize(total, cs_fmt.frac, exp_spec.in_fmt)
    e, exp_over = exp_spec(x)
    return e, add_over, exp_over


def probability_aggregation(cs: np.ndarray, ct1: np.ndarray, ct2: np.ndarray, k1: int, *, cs_fmt: QFormat,
                            exp_spec: ExpSpec, ap_fmt: QFormat) -> PagResult:
    """AP of one batch (Fig. 6): ``cs`` raw (rows × (k1+k2)), cluster tables ``ct1``/``ct2`` (n,).

    Returns ``PagResult(ap, flags)``: ``ap`` raw ``ap_fmt`` (rows × (k1+k2)), ``flags`` per row.
    """
    check_pag_formats(cs_fmt, exp_spec, ap_fmt)
    cs = check_in_range(cs, cs_fmt, "cs")
    if cs.ndim != 2:
        raise ValueError(f"cs must be 2-D (rows × (k1+k2)), got shape {cs.shape}")
    rows, k = cs.shape
    if not isinstance(k1, (int, np.integer)) or not 1 <= k1 < k:
        raise ValueError(f"k1={k1!r} out of range: expected an int in [1, {k - 1}] (cs has {k} columns)")
    k2 = k - int(k1)
    ct1 = np.asarray(ct1)
    ct2 = np.asarray(ct2)
    for name, ct, cap in (("ct1", ct1, k1), ("ct2", ct2, k2)):
        if ct.ndim != 1 or ct.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a 1-D integer array, got {ct.dtype} shape {ct.shape}")
        if ct.size and (ct.min() < 0 or ct.max() >= cap):
            raise ValueError(f"{name} values must be in [0, {cap - 1}], got [{ct.min()}, {ct.max()}]")
    if ct1.shape != ct2.shape:
        raise ValueError(f"ct1 and ct2 must have the same length, got {ct1.size} and {ct2.size}")
    ct1 = ct1.astype(np.int64)
    col2 = int(k1) + ct2.astype(np.int64)

    e, add_over, exp_over = add_exp(cs[:, ct1], cs[:, col2], cs_fmt=cs_fmt, exp_spec=exp_spec)  # (rows, n)
    total = np.zeros((rows, k), dtype=np.int64)
    row_idx = np.repeat(np.arange(rows), ct1.size)
    np.add.at(total, (row_idx, np.tile(ct1, rows)), e.ravel())
    np.add.at(total, (row_idx, np.tile(col2, rows)), e.ravel())
    ap, ap_over = ap_fmt.fit(total)
    flags = PagFlags(add=add_over.any(axis=1), exp=exp_over.any(axis=1), ap=ap_over.any(axis=1))
    return PagResult(ap, flags)
