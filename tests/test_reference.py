"""golden.reference: softmax / exact attention properties and the fixed-point reference."""

import math

import numpy as np
import pytest

from golden.fixed import QFormat
from golden.reference import (
    DEFAULT_QUANT,
    HeadInputs,
    QuantConfig,
    cosine_similarity,
    exact_attention,
    exact_head,
    quantize_head,
    quantized_attention,
    quantized_head,
    relative_error,
    softmax,
)


def _head(rng, m=9, n=13, d_in=24, d_h=8, scale=1.0):
    return HeadInputs(x_q=rng.normal(size=(m, d_in)) * scale, x_kv=rng.normal(size=(n, d_in)) * scale,
                      wq=rng.normal(size=(d_in, d_h)) * 0.2, wk=rng.normal(size=(d_in, d_h)) * 0.2,
                      wv=rng.normal(size=(d_in, d_h)) * 0.2, bq=rng.normal(size=d_h) * 0.1,
                      bk=rng.normal(size=d_h) * 0.1, bv=rng.normal(size=d_h) * 0.1)


def test_softmax_rows_sum_to_one_and_shift_invariant():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(5, 7)) * 30
    p = softmax(s)
    assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(softmax(s + 1234.5), p)
    # Huge scores must not overflow (max subtraction).
    assert np.all(np.isfinite(softmax(s * 1e3)))
    mask = rng.random((5, 7)) > 0.5
    mask[:, 0] = True
    pm = softmax(s, mask=mask)
    assert np.all(pm[~mask] == 0) and np.allclose(pm.sum(axis=1), 1.0)


def test_exact_attention_matches_explicit_loop():
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(4, 6)), rng.normal(size=(5, 6)), rng.normal(size=(5, 3))
    out = exact_attention(q, k, v)
    for i in range(4):
        w = np.array([math.exp(float(q[i] @ k[j]) / math.sqrt(6)) for j in range(5)])
        assert np.allclose(out[i], (w / w.sum()) @ v, rtol=1e-12, atol=1e-12)


def test_exact_attention_properties():
    rng = np.random.default_rng(2)
    k, v = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    # Zero queries: uniform attention -> mean of V.
    assert np.allclose(exact_attention(np.zeros((2, 4)), k, v), v.mean(axis=0))
    # Output is a convex combination of the V rows.
    out = exact_attention(rng.normal(size=(8, 4)) * 5, k, v)
    assert np.all(out <= v.max(axis=0) + 1e-12) and np.all(out >= v.min(axis=0) - 1e-12)
    # A dominant key takes all the weight.
    q = np.ones((1, 4)) * 100
    k2 = np.vstack([np.ones((1, 4)), -np.ones((5, 4))])
    assert np.allclose(exact_attention(q, k2, v), v[0])
    with pytest.raises(ValueError, match="same width"):
        exact_attention(np.zeros((2, 3)), k, v)
    with pytest.raises(ValueError, match="same number of rows"):
        exact_attention(np.zeros((2, 4)), k, v[:5])


def test_exact_head_uses_projections_and_rejects_settings():
    rng = np.random.default_rng(3)
    head = _head(rng)
    q = head.x_q @ head.wq + head.bq
    k = head.x_kv @ head.wk + head.bk
    v = head.x_kv @ head.wv + head.bv
    res = exact_head(head)
    assert res.out.shape == (head.m, head.d_h)
    assert np.allclose(res.out, exact_attention(q, k, v))
    with pytest.raises(TypeError, match="no settings"):
        exact_head(head, tau=1.0)


def test_head_inputs_validation():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="x_kv"):
        HeadInputs(rng.normal(size=(3, 4)), rng.normal(size=(3, 5)), *(rng.normal(size=(4, 2)),) * 3)
    with pytest.raises(ValueError, match="wk"):
        HeadInputs(rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(4, 2)),
                   rng.normal(size=(5, 2)), rng.normal(size=(4, 2)))
    with pytest.raises(ValueError, match="bq"):
        HeadInputs(rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), *(rng.normal(size=(4, 2)),) * 3,
                   bq=np.zeros(3))


def test_error_metrics():
    a = np.array([[3.0, 4.0]])
    assert relative_error(a, a) == 0.0 and cosine_similarity(a, a) == pytest.approx(1.0)
    assert relative_error(np.zeros_like(a), a) == pytest.approx(1.0)
    assert cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(a, a.T)


def test_quantized_head_close_to_exact_and_integer_on_grid():
    rng = np.random.default_rng(5)
    head = _head(rng, m=16, n=40, d_in=32, d_h=16)
    res = quantized_head(head)
    exact = exact_head(head).out
    err = relative_error(res.out, exact)
    # Q/K/V have 6 fractional bits: about 1 % error, far from exact equality or garbage.
    assert 1e-5 < err < 0.05
    raw = res.out * 2.0**DEFAULT_QUANT.out.frac
    assert np.array_equal(raw, np.floor(raw))
    assert res.work["overflow_total"] == 0


def test_quantized_attention_bit_exact_against_integer_recomputation():
    """Independent integer recomputation with Python ints of one row (scores, max, exp, sum, divide)."""
    rng = np.random.default_rng(6)
    M, N = 16, 40  # enough scores that a 1-LSB change anywhere shows up
    D = 11  # 2**15/sqrt(11) = 9879.92: rounding the 1/sqrt(d) constant half-up matters
    cfg = DEFAULT_QUANT
    q = rng.integers(-64, 64, size=(M, D))  # scores of a few units: a soft, not one-hot, softmax
    k = rng.integers(-64, 64, size=(N, D))
    v = rng.integers(-2000, 2000, size=(N, 5))
    out, over = quantized_attention(q, k, v)
    inv = math.floor(2**15 / math.sqrt(D) + 0.5)
    exp_spec, recip = cfg.exp_spec, cfg.recip_spec
    for i in range(M):
        acc = [int(sum(int(q[i, t]) * int(k[j, t]) for t in range(D))) * inv for j in range(N)]
        frac_in = 12 + 15
        s = [(a + (1 << (frac_in - 8 - 1))) >> (frac_in - 8) for a in acc]  # half-up to 8 frac bits
        s = [min(max(x, cfg.score.min_int), cfg.score.max_int) for x in s]
        mx = max(s)
        e = [int(exp_spec(np.array([max(x - mx, cfg.exp_in.min_int)]))[0][0]) for x in s]
        den = sum(e)
        for c in range(5):
            num = sum(e[j] * int(v[j, c]) for j in range(N))
            ref = int(recip.scale(np.array([num]), 15 + 6, np.array([den]), cfg.out)[0][0])
            assert out[i, c] == ref
            # and it is the true quotient to within the reciprocal LUT precision
            assert abs(ref * 2.0**-10 - num / den * 2.0**-6) < 2.0**-9 + abs(num / den * 2.0**-6) * 2**-10
    assert all(v == 0 for v in over.values())


def test_quantized_saturation_is_counted():
    rng = np.random.default_rng(7)
    head = _head(rng, scale=60.0)  # tokens beyond Q6.7's ±32 range
    res = quantized_head(head)
    assert res.work["overflow"]["x_q"] > 0 and res.work["overflow_total"] > 0


def test_quant_config_validation_and_weight_format():
    with pytest.raises(ValueError, match="weight_width"):
        QuantConfig(weight_width=1)
    with pytest.raises(ValueError, match="max_tokens"):
        QuantConfig(max_tokens=0)
    assert QuantConfig().weight_format(np.array([0.77, -0.2])) == QFormat(12, 11)
    assert QuantConfig().weight_format(np.array([1.3])) == QFormat(12, 10)
    assert QuantConfig().den.width == 16 + 8
    q = np.zeros((2, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="max_tokens"):
        quantized_attention(q, np.zeros((300, 4), dtype=np.int64), np.zeros((300, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="raw integers"):
        quantized_attention(q.astype(float), q, q)
    qh = quantize_head(_head(np.random.default_rng(8)))
    assert qh.q.dtype == np.int64 and set(qh.overflow) == {"x_q", "x_kv", "q", "k", "v"}
