"""MCA golden model (DESIGN §7): PRNG, sampling table, sample counts, unbiasedness, Theorem 2."""

import math

import numpy as np
import pytest

from golden.mca import (
    PRNG_WARMUP,
    MCAFormats,
    draw_indices,
    make_sampling_table,
    mca,
    mca_encode_fixed,
    mca_encode_float,
    mca_fixed,
    mca_float,
    sample_counts_fixed,
    sample_counts_float,
    theorem2_bound,
    xorshift32,
    xorshift32_draws,
)
from golden.reference import HeadInputs, softmax

SEEDS = np.arange(1, 2001)


def _head(rng, m=10, n=12, d_in=32, d=6, score_scale=0.05):
    """A head whose attention is flat enough that eq. 9 never hits the d_in clamp."""
    return HeadInputs(
        rng.normal(size=(m, d_in)), rng.normal(size=(n, d_in)),
        rng.normal(size=(d_in, d)) * score_scale, rng.normal(size=(d_in, d)) * score_scale,
        rng.normal(size=(d_in, d)) * rng.uniform(0.2, 1.5, size=(d_in, 1)) / 4,
        None, None, rng.normal(size=d) / 4,
    )


def test_xorshift32_reference_values():
    # Marsaglia (2003), "Xorshift RNGs", xor32 example: y = 2463534242 -> first output 723471715.
    assert xorshift32(2463534242) == 723471715
    stream = xorshift32_draws(2463534242, 5)
    assert stream[0] == 723471715
    x = 2463534242
    for value in stream:
        x = xorshift32(x)
        assert value == x
    # the vectorised (many-seed) path gives the same streams
    many = xorshift32_draws(np.array([2463534242, 7, 0xFFFFFFFF]), 40)
    for row, seed in zip(many, (2463534242, 7, 0xFFFFFFFF), strict=True):
        assert np.array_equal(row, xorshift32_draws(seed, 40))
    assert np.all((many >= 1) & (many <= 0xFFFFFFFF))


@pytest.mark.parametrize("seed", [0, -1, 1 << 32])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        xorshift32_draws(seed, 3)


def test_sampling_table():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(40, 5)) * rng.uniform(0.01, 2.0, size=(40, 1))
    w[3] = 0.0                       # a zero row is never drawn
    w[7] = 1e-6                      # a tiny row still gets one count
    table = make_sampling_table(w, cdf_bits=12)
    assert table.counts.sum() == 1 << 12 and table.cdf[-1] == 1 << 12
    assert np.array_equal(table.cdf, np.cumsum(table.counts))
    assert table.counts[3] == 0 and table.counts[7] == 1
    assert np.all(table.counts[np.arange(40) != 3] >= 1)
    p = np.sum(w * w, axis=1) / np.sum(w * w)
    assert np.max(np.abs(table.p - p)) < 2 * 40 / (1 << 12)
    assert np.allclose(table.ws_float[table.counts > 0], (w / np.where(table.p > 0, table.p, 1)[:, None])[
        table.counts > 0])
    assert np.all(np.abs(table.ws_fmt.to_float(table.ws_raw) - table.ws_float) <= table.ws_fmt.lsb / 2)


def test_inverse_cdf_draws():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(16, 3)) * np.linspace(0.1, 2.0, 16)[:, None]
    table = make_sampling_table(w, cdf_bits=10)
    r = np.array([300, 1, 700])
    idx = draw_indices(table, r, 12345)
    states = xorshift32_draws(12345, PRNG_WARMUP + 1001)[PRNG_WARMUP:]
    for state, s in zip(states, idx, strict=True):
        u = state >> 22                          # top 10 bits
        first = next(k for k in range(16) if u < table.cdf[k])
        assert s == first
    freq = np.bincount(draw_indices(table, np.array([20000]), 99), minlength=16) / 20000
    assert np.max(np.abs(freq - table.p)) < 0.02


def test_sample_counts():
    fmts = MCAFormats()
    one = 1 << fmts.a_fmt.frac
    a_raw = np.array([[one, one // 4, one // 8, 0], [0, one // 8, one // 8, 3]])
    # n = 4: √r = 4·max/α -> α=1: r = 16, 1, 0.25->1, ... column 3: max = 3 LSB -> 1
    assert sample_counts_fixed(a_raw, 1.0, 64, fmts).tolist() == [16, 1, 1, 1]
    assert sample_counts_fixed(a_raw, 0.5, 64, fmts).tolist() == [64, 4, 1, 1]
    assert sample_counts_fixed(a_raw, 0.5, 32, fmts).tolist() == [32, 4, 1, 1]   # clamp to d_in
    a = fmts.a_fmt.to_float(a_raw)
    assert sample_counts_float(a, 0.5, 64).tolist() == [64, 4, 1, 1]
    # random A: fixed and float agree except next to a ceiling boundary
    rng = np.random.default_rng(3)
    a = softmax(rng.normal(size=(30, 40)))
    a_raw = fmts.a_fmt.quantize(a)
    rf = sample_counts_fixed(a_raw, 0.3, 512, fmts)
    rl = sample_counts_float(fmts.a_fmt.to_float(a_raw), 0.3, 512)
    assert np.mean(rf == rl) > 0.9 and np.all(np.abs(rf - rl) <= np.maximum(2, rl // 50))
    # t is rounded up, so never fewer samples than eq. 9 with the hardware's 1/α constant
    inv_alpha = fmts.inv_alpha_raw(0.3) / 2.0 ** fmts.alpha_frac
    t = 40 * fmts.a_fmt.to_float(a_raw).max(axis=0) * inv_alpha
    assert np.all(rf >= np.clip(np.ceil(t * t - 1e-9), 1, 512))


@pytest.mark.parametrize("alpha", [0.0, -0.5, 1.5, float("nan")])
def test_bad_alpha(alpha):
    head = _head(np.random.default_rng(4))
    with pytest.raises(ValueError, match="alpha"):
        mca(head, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        mca_float(head, alpha=alpha)


def test_validation():
    rng = np.random.default_rng(5)
    head = _head(rng)
    table = make_sampling_table(head.wv)
    fmts = MCAFormats()
    x_raw = fmts.token_fmt.quantize(head.x_kv)
    a_raw = fmts.a_fmt.quantize(np.full((3, head.n), 1.0 / head.n))
    with pytest.raises(ValueError, match="d_in"):
        mca_encode_fixed(x_raw[:, :-1], a_raw, table, 0.5, 1, fmts=fmts)
    with pytest.raises(ValueError, match="columns"):
        mca_encode_fixed(x_raw, a_raw[:, :-1], table, 0.5, 1, fmts=fmts)
    with pytest.raises(ValueError, match="a_raw"):
        mca_encode_fixed(x_raw, a_raw + (1 << 16), table, 0.5, 1, fmts=fmts)
    with pytest.raises(TypeError, match="x_raw"):
        mca_encode_fixed(head.x_kv, a_raw, table, 0.5, 1, fmts=fmts)
    with pytest.raises(ValueError, match="seed"):
        mca_encode_fixed(x_raw, a_raw, table, 0.5, 0, fmts=fmts)
    with pytest.raises(ValueError, match="d_in"):
        mca_encode_float(head.x_kv[:, :-1], fmts.a_fmt.to_float(a_raw), table, 0.5, 1)
    with pytest.raises(ValueError, match="all zeros"):
        make_sampling_table(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="cdf_bits"):
        make_sampling_table(np.ones((40, 2)), cdf_bits=5)
    with pytest.raises(TypeError, match="bogus"):
        mca(head, bogus=3)


def test_identical_seeds_identical_outputs():
    rng = np.random.default_rng(6)
    head = _head(rng, score_scale=0.3)
    a, b, c = mca(head, alpha=0.5, seed=77), mca(head, alpha=0.5, seed=77), mca(head, alpha=0.5, seed=78)
    assert np.array_equal(a.out, b.out) and a.work == b.work
    assert not np.array_equal(a.out, c.out)
    fa, fb = mca_float(head, alpha=0.5, seed=77), mca_float(head, alpha=0.5, seed=77)
    assert np.array_equal(fa.out, fb.out)


def test_fixed_matches_float_with_same_draws():
    """With equal sample counts the fixed model differs from the float one by quantization only."""
    rng = np.random.default_rng(7)
    head = _head(rng, score_scale=0.3)
    fmts = MCAFormats()
    table = make_sampling_table(head.wv)
    a = softmax((head.x_q @ head.wq) @ (head.x_kv @ head.wk).T / math.sqrt(head.d_h))
    a_raw = fmts.a_fmt.quantize(a)
    x_raw = fmts.token_fmt.quantize(head.x_kv)
    fx = mca_encode_fixed(x_raw, a_raw, table, 0.5, 31, fmts.h_fmt.quantize(head.bv), fmts)
    y, h, r = mca_encode_float(fmts.token_fmt.to_float(x_raw), fmts.a_fmt.to_float(a_raw), table, 0.5, 31,
                               fmts.h_fmt.to_float(fmts.h_fmt.quantize(head.bv)))
    assert np.array_equal(fx.r, r)
    assert not any(fx.flags.values())
    assert np.max(np.abs(fmts.h_fmt.to_float(fx.h_raw) - h)) < 3 * fmts.h_fmt.lsb
    assert np.max(np.abs(fmts.out_fmt.to_float(fx.y_raw) - y)) < 3 * fmts.out_fmt.lsb
    res = mca(head, alpha=0.5, seed=31)
    assert res.work["flops_reduction"] == pytest.approx(head.d_in / np.mean(fx.r))
    assert res.work["mean_r"] == pytest.approx(np.mean(fx.r))


def test_unbiased_over_seeds():
    rng = np.random.default_rng(8)
    head = _head(rng, score_scale=0.3)
    table = make_sampling_table(head.wv)
    a = softmax(rng.normal(size=(4, head.n)))
    _, h, r = mca_encode_float(head.x_kv, a, table, 0.8, SEEDS)
    exact = head.x_kv @ head.wv
    assert h.shape == (SEEDS.size, head.n, head.d_h)
    mean, std = h.mean(axis=0), h.std(axis=0)
    z = (mean - exact) / (std / math.sqrt(SEEDS.size) + 1e-12)
    assert np.max(np.abs(z)) < 4.5
    # the spread is what r_j and p predict: E‖H_j − X_jW‖² = (Σ_k X_jk²‖W_k‖²/p_k − ‖X_jW‖²) / r_j
    w_norm2 = np.sum(head.wv ** 2, axis=1)
    p = table.p
    predicted = ((head.x_kv ** 2) @ (w_norm2 / p) - np.sum(exact ** 2, axis=1)) / r
    measured = np.mean(np.sum((h - exact) ** 2, axis=2), axis=0)
    assert np.all(np.abs(measured / predicted - 1) < 0.15)


def test_theorem2_bound():
    rng = np.random.default_rng(9)
    head = _head(rng, n=16, d_in=64)
    table = make_sampling_table(head.wv)
    q, k, _ = head.qkv()
    a = softmax(q @ k.T / math.sqrt(head.d_h))
    for alpha in (0.3, 0.7):
        y, _, r = mca_encode_float(head.x_kv, a, table, alpha, SEEDS[:500])
        assert r.max() < head.d_in          # eq. 9 not clamped: the theorem's premise holds
        err = np.linalg.norm(y - a @ (head.x_kv @ head.wv), axis=2)       # (seeds, m)
        bound = theorem2_bound(head.x_kv, head.wv, alpha)
        assert np.all(err.mean(axis=0) <= bound)                          # eq. 10, per row i
        delta = 0.1
        assert np.mean(err > theorem2_bound(head.x_kv, head.wv, alpha, delta)) <= delta   # eq. 11


def test_fixed_mean_close_to_exact_encoding():
    """The bit-exact datapath is (nearly) unbiased too: its mean over seeds approaches A·(XW+b)."""
    rng = np.random.default_rng(10)
    head = _head(rng, m=4, n=6, d_in=16, d=4, score_scale=0.3)
    outs = np.array([mca_fixed(head, alpha=1.0, seed=int(s)).out for s in SEEDS[:300]])
    q, k, v = head.qkv()
    exact = softmax(q @ k.T / math.sqrt(head.d_h)) @ v
    sem = outs.std(axis=0) / math.sqrt(outs.shape[0])
    assert np.max(np.abs(outs.mean(axis=0) - exact) / (sem + 2 ** -8)) < 4.5
