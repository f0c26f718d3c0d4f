"""Golden LATTE model: algebraic identities, threshold semantics, calibration, validation."""

import math

import numpy as np
import pytest

from golden.fixed import QFormat
from golden.latte import (
    LatteFormats,
    bit_operations,
    calibrate_tau,
    compensated_scores,
    encode_score_scale,
    estimate_scores,
    kept_mask,
    latte_fixed,
    latte_fixed_raw,
    latte_float,
    quantize_head,
    quantize_tensor,
    split_ms4b,
    tau_for_prune_ratio,
)
from golden.latte_cycles import LATENCY_KEYS, latte_cycles_per_head
from golden.reference import HeadInputs, exact_head, softmax


def _head(rng, m=12, n=12, d_in=24, d_h=16):
    x = rng.normal(size=(n, d_in))
    return HeadInputs(x[:m], x, *(rng.normal(size=(d_in, d_h)) / np.sqrt(d_in) for _ in range(3)))


def test_split_identity_and_ranges():
    x = np.arange(-128, 128)
    hi, lo = split_ms4b(x)
    assert np.array_equal(16 * hi + lo, x)
    assert hi.min() == -8 and hi.max() == 7 and lo.min() == 0 and lo.max() == 15


def test_compensated_with_ll_is_the_8bit_product():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (9, 16))
    k = rng.integers(-128, 128, (11, 16))
    assert np.array_equal(compensated_scores(q, k, include_ll=True), q @ k.T)
    qm, ql = split_ms4b(q)
    km, kl = split_ms4b(k)
    assert np.array_equal(compensated_scores(q, k), q @ k.T - ql @ kl.T)
    assert np.array_equal(estimate_scores(q, k), qm @ km.T)


def test_tau_large_with_ll_equals_8bit_quantized_attention_exactly():
    rng = np.random.default_rng(1)
    head = _head(rng)
    q, k, v = head.qkv()
    (qi, sq), (ki, sk), (vi, sv) = (quantize_tensor(a) for a in (q, k, v))
    want = softmax((qi @ ki.T) * (sq * sk / math.sqrt(q.shape[1]))) @ (vi * sv)
    got = latte_float(head, tau=1e9, include_ll=True)
    assert np.array_equal(got.out, want)
    assert got.work["kept_ratio"] == 1.0
    # and close to exact attention (quantization error only)
    ex = exact_head(head).out
    assert np.linalg.norm(got.out - ex) / np.linalg.norm(ex) < 0.05


def test_tau_zero_keeps_only_maxima_with_ties():
    a = np.array([[3, 5, 5, 1], [0, 0, 0, 0], [-7, -8, -9, -7]])
    assert kept_mask(a, 0).tolist() == [[False, True, True, False], [True] * 4, [True, False, False, True]]
    assert kept_mask(a, 2).tolist() == [[True, True, True, False], [True] * 4, [True, True, True, True]]
    assert np.array_equal(kept_mask(a, 1.9), kept_mask(a, 1))


def test_fixed_model_close_to_float_and_exp_max_is_one():
    rng = np.random.default_rng(2)
    head = _head(rng, m=16, n=16, d_h=16)
    for tau in (0, 40, None):
        fl = latte_float(head, tau=tau)
        fx = latte_fixed(head, tau=tau)
        assert fx.work["kept_ratio"] == fl.work["kept_ratio"]
        err = np.linalg.norm(fx.out - fl.out) / np.linalg.norm(fl.out)
        assert err < 2e-3, (tau, err)
    qh = quantize_head(head)
    fmts = LatteFormats(d_h=16, n_max=16)
    mant, shift = encode_score_scale(qh.score_scale, fmts)
    res = latte_fixed_raw(qh.q, qh.k, qh.v, 5, mant, shift, fmts)
    assert np.all(res.exp.max(axis=1) == 1 << 15)  # the kept maximum has exp(0) = 1.0
    assert np.array_equal(res.kept_count, res.kept.sum(axis=1))
    assert not res.overflow.any()


def test_encode_score_scale_precision():
    fmts = LatteFormats(d_h=64, n_max=8)
    for c in (1e-4, 0.01, 0.7, 3.0):
        mant, shift = encode_score_scale(c, fmts)
        assert mant < 1 << 16 and 0 <= shift < 64
        assert abs(mant * 2.0**-shift / (c * 2**11) - 1) < 2e-4
    with pytest.raises(ValueError, match="score_scale"):
        encode_score_scale(-1.0, fmts)


def test_calibration_hits_target_prune_ratio():
    rng = np.random.default_rng(3)
    heads = [_head(rng, m=32, n=32) for _ in range(3)]
    for target in (0.5, 0.8):
        tau = calibrate_tau(heads, target)
        assert isinstance(tau, int) and tau >= 0
        kept = [latte_float(h, tau=tau).work["kept_ratio"] for h in heads]
        assert abs((1 - np.mean(kept)) - target) < 0.05
    assert calibrate_tau(heads, 0.5) >= calibrate_tau(heads, 0.8)
    assert tau_for_prune_ratio(np.array([0, 0, 1, 2, 3]), 0.0) == 3
    assert tau_for_prune_ratio(np.array([0, 0, 1, 2, 3]), 0.6) == 0


def test_bit_operations_match_paper_cv_point():
    # paper Fig. 4 (CV): 85.16 % keys pruned -> 76.37 % fewer bit operations
    n, d = 1000, 64
    kept = round(0.1484 * n * n)
    r = bit_operations(n, n, d, kept)["bit_op_reduction"]
    assert abs(r - 0.7637) < 1e-3


def test_work_figures_of_method_interface():
    rng = np.random.default_rng(4)
    head = _head(rng)
    res = latte_fixed(head, prune_ratio=0.6)
    w = res.work
    assert res.out.shape == (head.m, head.d_h)
    assert 0 < w["kept_ratio"] < 1 and w["bit_ops"] < w["bit_ops_full"]
    assert abs(w["bit_op_reduction"] - (1 - w["bit_ops"] / w["bit_ops_full"])) < 1e-12


def test_validation_errors():
    rng = np.random.default_rng(5)
    head = _head(rng)
    with pytest.raises(ValueError, match="tau"):
        latte_float(head, tau=-1)
    with pytest.raises(ValueError, match="tau"):
        latte_fixed(head, tau=-0.5)
    with pytest.raises(ValueError, match="either tau or prune_ratio"):
        latte_float(head, tau=1, prune_ratio=0.5)
    with pytest.raises(ValueError, match="prune_ratio"):
        calibrate_tau(head, 1.5)
    q = rng.integers(-128, 128, (4, 8))
    with pytest.raises(ValueError, match="d mismatch"):
        estimate_scores(q, rng.integers(-128, 128, (4, 6)))
    with pytest.raises(ValueError, match="d mismatch"):
        latte_fixed_raw(q, q, q, 0, 1000, 20, LatteFormats(d_h=16, n_max=8))
    with pytest.raises(ValueError, match="8-bit"):
        estimate_scores(q * 4, q)
    with pytest.raises(ValueError, match="n_max"):
        latte_fixed_raw(q, np.zeros((9, 8), int), np.zeros((9, 8), int), 0, 1, 1, LatteFormats(d_h=8, n_max=8))
    with pytest.raises(ValueError, match="d_h"):
        LatteFormats(d_h=0, n_max=4)
    with pytest.raises(ValueError, match="out_fmt"):
        LatteFormats(d_h=4, n_max=4, out_fmt=QFormat(8, 0, signed=False))


# ---- cycle model (golden.latte_cycles) --------------------------------------------------------------
_ZERO_LAT = dict.fromkeys(LATENCY_KEYS, 0)


def test_cycle_model_by_hand_with_zero_latencies():
    # n = 1 key, C = 1 chunk, one row keeping its key, every pipeline latency 0:
    # load 1 beat (t = 2), Q row (3), EST 1 beat (exit 4), FLAG 1 + 1 + 1 (COMP from 7), COMP 1 + 1
    # (hand-over 9), EXP 1 + 1 (ends 11), P·V 1 + 1, NORM 1: last beat in cycle 14, counted from 1.
    assert latte_cycles_per_head(1, [1], chunks=1, latencies=_ZERO_LAT) == 15
    # no kept key: the row still runs FLAG and NORM (one output beat)
    assert latte_cycles_per_head(1, [0], chunks=1, latencies=_ZERO_LAT) == 12


@pytest.mark.parametrize("key", LATENCY_KEYS)
def test_cycle_model_each_latency_counts_once_per_single_row(key):
    base = latte_cycles_per_head(3, [2], chunks=2, latencies=_ZERO_LAT)
    assert latte_cycles_per_head(3, [2], chunks=2, latencies={**_ZERO_LAT, key: 5}) == base + 5


# Pinned from the model as it was inside hdl.latte.Latte (before it moved to golden): the latencies of
# Latte(n_max=8, d_h=8, lanes=4), (16, 16, 4, include_ll) and the FPGA configuration (128, 64, 8).
_PINNED = [
    (2, {"est": 4, "max": 1, "flag": 2, "comp": 8, "exp": 13, "pv": 5, "norm": 9},
     {(8, (8, 8, 8)): 255, (8, (3, 0, 5)): 214, (1, (1,)): 63, (5, (2, 5, 1, 0)): 211}),
    (4, {"est": 4, "max": 1, "flag": 2, "comp": 8, "exp": 13, "pv": 5, "norm": 9},
     {(8, (8, 8, 8)): 391, (8, (3, 0, 5)): 312, (1, (1,)): 75, (5, (2, 5, 1, 0)): 285}),
    (8, {"est": 5, "max": 1, "flag": 2, "comp": 8, "exp": 13, "pv": 5, "norm": 9},
     {(8, (8, 8, 8)): 666, (8, (3, 0, 5)): 511, (1, (1,)): 100, (5, (2, 5, 1, 0)): 436}),
]


@pytest.mark.parametrize("chunks,latencies,cases", _PINNED)
def test_cycle_model_numbers_unchanged(chunks, latencies, cases):
    for (n, kept), cycles in cases.items():
        assert latte_cycles_per_head(n, list(kept), chunks=chunks, latencies=latencies) == cycles, (n, kept)


def test_cycle_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="missing norm"):
        latte_cycles_per_head(2, [1], chunks=1, latencies={k: 0 for k in LATENCY_KEYS if k != "norm"})
    with pytest.raises(ValueError, match="keeps 3 keys"):
        latte_cycles_per_head(2, [3], chunks=1, latencies=_ZERO_LAT)
    with pytest.raises(ValueError, match="chunks"):
        latte_cycles_per_head(2, [1], chunks=0, latencies=_ZERO_LAT)
