"""E-ATT golden model (DESIGN §6): selection-sum exactness, L1 scores, parameter validation."""

import math

import numpy as np
import pytest

from golden.eatt import (
    DEFAULT_TOKEN_FMT,
    binarize,
    eatt,
    eatt_alignment_fixed,
    l1_distance,
    selection_acc_fmt,
    selection_sum,
)
from golden.fixed import QFormat
from golden.reference import HeadInputs, softmax


def _head(rng, m=12, n=20, d_in=24, d=8, scale=1.5):
    return HeadInputs(
        rng.normal(scale=scale, size=(m, d_in)), rng.normal(scale=scale, size=(n, d_in)),
        rng.normal(size=(d_in, d)) / 4, rng.normal(size=(d_in, d)) / 4, rng.normal(size=(d_in, d)) / 4,
        rng.normal(size=d) / 4, rng.normal(size=d) / 4, rng.normal(size=d) / 4,
    )


def test_selection_sum_equals_binarized_matmul():
    rng = np.random.default_rng(1)
    wfmt = QFormat(12, 9)
    for n, d_in, d in ((1, 1, 1), (70, 33, 5), (130, 64, 16)):  # 70, 130: partial chunks
        bits = (rng.random((n, d_in)) < 0.4).astype(np.int64)
        w = rng.integers(wfmt.min_int, wfmt.max_int + 1, size=(d_in, d))
        assert np.array_equal(selection_sum(bits, w), bits @ w)
    # extreme weights, all bits set: the worst-case sum must fit the accumulator format
    d_in = 64
    w = np.full((d_in, 3), wfmt.min_int)
    total = selection_sum(np.ones((2, d_in), dtype=np.int64), w)
    assert np.all(total == d_in * wfmt.min_int)
    assert np.all(selection_acc_fmt(wfmt, d_in).contains(total + wfmt.min_int))


def test_binarize_is_strictly_greater():
    x = np.array([[0.5, 1.0, 1.0000001, 2.0, -3.0]])
    assert binarize(x, 1.0).tolist() == [[0, 0, 1, 1, 0]]
    raw = np.array([[127, 128, 129]])
    assert binarize(raw, 128).tolist() == [[0, 0, 1]]


def test_fixed_alignment_matches_quantized_float_definition():
    rng = np.random.default_rng(2)
    head = _head(rng)
    wfmt = QFormat(12, 9)
    tfmt = DEFAULT_TOKEN_FMT
    xq, xkv = tfmt.quantize(head.x_q), tfmt.quantize(head.x_kv)
    wq, wk, bq, bk = (wfmt.quantize(a) for a in (head.wq, head.wk, head.bq, head.bk))
    tau_raw = int(tfmt.quantize(1.0))
    al = eatt_alignment_fixed(xq, xkv, wq, wk, bq, bk, tau_raw, weight_fmt=wfmt)
    # independent float computation on the same quantized values
    q = (tfmt.to_float(xq) > 1.0) @ wfmt.to_float(wq) + wfmt.to_float(bq)
    k = (tfmt.to_float(xkv) > 1.0) @ wfmt.to_float(wk) + wfmt.to_float(bk)
    l1 = np.array([[np.sum(np.abs(qi - kj)) for kj in k] for qi in q])
    assert np.array_equal(al.l1_raw * wfmt.lsb, l1)  # exact: all values are dyadic
    assert np.allclose(al.scores(), -l1 / math.sqrt(head.d_h), rtol=0, atol=1e-12)
    assert al.q_raw.dtype == np.int64 and al.l1_raw.dtype == np.int64


def test_eatt_float_method_definition():
    rng = np.random.default_rng(3)
    head = _head(rng)
    res = eatt(head, tau=0.5, fixed=False)
    q = (head.x_q > 0.5) @ head.wq + head.bq
    k = (head.x_kv > 0.5) @ head.wk + head.bk
    s = -np.abs(q[:, None, :] - k[None, :, :]).sum(axis=2) / math.sqrt(head.d_h)
    expected = softmax(s) @ (head.x_kv @ head.wv + head.bv)
    assert np.allclose(res.out, expected, rtol=1e-12, atol=1e-12)
    assert res.out.shape == (head.m, head.d_h)


def test_eatt_fixed_close_to_float_and_work_figures():
    rng = np.random.default_rng(4)
    head = _head(rng, m=16, n=16, d_in=32, d=8)
    fx, fl = eatt(head), eatt(head, fixed=False)
    rel = np.linalg.norm(fx.out - fl.out) / np.linalg.norm(fl.out)
    assert rel < 0.02
    m, n, d_in, d = 16, 16, 32, 8
    assert fx.work["alignment_muls"] == 0
    assert fx.work["alignment_muls_removed"] == (m + n) * d_in * d + m * n * d
    assert fx.work["attention_muls"] == n * d_in * d + m * n * d
    assert 0 < fx.work["selected_fraction"] < 1


def test_tau_zero_and_large():
    rng = np.random.default_rng(5)
    head = _head(rng)
    # τ above every token: no feature selected, Q = b_Q, K = b_K, all scores equal -> uniform attention
    res = eatt(head, tau=50.0, fixed=False)
    v = head.x_kv @ head.wv + head.bv
    assert np.allclose(res.out, np.tile(v.mean(axis=0), (head.m, 1)))
    assert res.work["selected_fraction"] == 0.0
    eatt(head, tau=0.0)  # τ = 0 is allowed


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"tau": -0.1}, ValueError, "tau"),
    ({"tau": float("nan")}, ValueError, "tau"),
    ({"tau": "1"}, TypeError, "tau"),
    ({"weight_width": 1}, ValueError, "weight_width"),
    ({"bogus": 1}, TypeError, "bogus"),
])
def test_eatt_bad_settings(kwargs, exc, word):
    head = _head(np.random.default_rng(6))
    with pytest.raises(exc, match=word):
        eatt(head, **kwargs)


def test_alignment_input_validation():
    wfmt = QFormat(12, 9)
    x = np.zeros((3, 4), dtype=np.int64)
    w = np.zeros((4, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="wq_raw"):
        eatt_alignment_fixed(x, x, np.zeros((5, 2), dtype=np.int64), w, None, None, 0, weight_fmt=wfmt)
    with pytest.raises(ValueError, match="x_kv_raw"):
        eatt_alignment_fixed(x, np.zeros((3, 5), dtype=np.int64), w, w, None, None, 0, weight_fmt=wfmt)
    with pytest.raises(ValueError, match="wq_raw"):
        eatt_alignment_fixed(x, x, w + 5000, w, None, None, 0, weight_fmt=wfmt)
    with pytest.raises(TypeError, match="x_q_raw"):
        eatt_alignment_fixed(x.astype(float), x, w, w, None, None, 0, weight_fmt=wfmt)
    with pytest.raises(ValueError, match="tau_raw"):
        eatt_alignment_fixed(x, x, w, w, None, None, -1, weight_fmt=wfmt)
    with pytest.raises(ValueError, match="bq_raw"):
        eatt_alignment_fixed(x, x, w, w, np.zeros(3, dtype=np.int64), None, 0, weight_fmt=wfmt)
    with pytest.raises(ValueError, match="0/1"):
        selection_sum(np.full((2, 4), 2), w)
    with pytest.raises(ValueError, match="same d"):
        l1_distance(np.zeros((2, 3)), np.zeros((2, 4)))
