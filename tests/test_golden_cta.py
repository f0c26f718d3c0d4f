"""CTA golden model (DESIGN §3): degenerate case, first-appearance indices, eq. (2)/(4)/(6) identities."""

import math
from dataclasses import replace

import numpy as np
import pytest

from golden.cta import aggregate_probabilities, compressed_scores, cta_float, cta_float_trace, cta_work
from golden.lsh import LSHParams, centroids, cluster_indices, lsh_hash, make_lsh_params
from golden.reference import HeadInputs, exact_head

TINY = 1e-9   # a bucket width that puts every distinct token in its own cluster


def _head(rng, m=24, n=40, d_in=16, d=8, clusters=None, noise=0.05):
    if clusters is None:
        x_q, x_kv = rng.normal(size=(m, d_in)), rng.normal(size=(n, d_in))
    else:
        centres = rng.normal(size=(clusters, d_in)) * 2
        x_q = centres[rng.integers(0, clusters, m)] + noise * rng.normal(size=(m, d_in))
        x_kv = centres[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, d_in))
    return HeadInputs(x_q, x_kv, *(rng.normal(size=(d_in, d)) / 3 for _ in range(3)),
                      *(rng.normal(size=d) / 3 for _ in range(3)))


@pytest.mark.parametrize("m, n", [(24, 40), (40, 24), (1, 1), (7, 130)])
def test_degenerate_case_equals_exact_attention(m, n):
    """Every key its own LSH_1 cluster -> zero residuals -> one zero LSH_2 centroid: exact attention."""
    rng = np.random.default_rng(m * 1000 + n)
    head = _head(rng, m=m, n=n)
    tr = cta_float_trace(head, widths=(TINY, TINY, 1.0))
    assert tr.k0 == m and tr.k1 == n and tr.k2 == 1
    assert np.all(tr.residual == 0.0) and np.all(tr.c2 == 0.0)
    exact = exact_head(head).out
    assert np.allclose(tr.out, exact, rtol=1e-10, atol=1e-12)
    res = cta_float(head, widths=(TINY, TINY, 1.0))
    assert np.array_equal(res.out, tr.out)
    assert res.work["k0"] == m and res.work["k1"] == n and res.work["k2"] == 1


def test_degenerate_queries_clustered_keys_exact_for_duplicate_tokens():
    """Duplicated tokens cluster together without any approximation: CTA is still exact."""
    rng = np.random.default_rng(3)
    base = _head(rng, m=6, n=6)
    xq = base.x_q[rng.integers(0, 6, 30)]
    xkv = base.x_kv[rng.integers(0, 6, 50)]
    head = HeadInputs(xq, xkv, base.wq, base.wk, base.wv, base.bq, base.bk, base.bv)
    res = cta_float(head, widths=(TINY, TINY, 1.0))
    assert res.work["k0"] <= 6 and res.work["k1"] <= 6
    assert np.allclose(res.out, exact_head(head).out, rtol=1e-10, atol=1e-12)


def test_cluster_indices_first_appearance():
    codes = np.array([[1, 2], [0, 0], [1, 2], [3, -3], [0, 0], [-5, 2], [3, -3]])
    ct, k = cluster_indices(codes)
    assert ct.tolist() == [0, 1, 0, 2, 1, 3, 2] and k == 4
    rng = np.random.default_rng(4)
    codes = rng.integers(-2, 3, size=(300, 3))
    ct, k = cluster_indices(codes)
    # new indices appear in increasing order, each one the next free index
    seen_max = -1
    for i in range(codes.shape[0]):
        assert ct[i] <= seen_max + 1
        seen_max = max(seen_max, ct[i])
    assert k == seen_max + 1 == len({tuple(c) for c in codes})
    # same code <=> same index
    same_code = (codes[:, None, :] == codes[None, :, :]).all(axis=2)
    assert np.array_equal(same_code, ct[:, None] == ct[None, :])


def test_cluster_indices_match_cim_golden():
    """The float model's CT equals the cluster-tree (CIM) golden model when capacity is ample."""
    cim = pytest.importorskip("golden.cim")
    rng = np.random.default_rng(5)
    codes = rng.integers(-3, 3, size=(200, 6))
    ct, k = cluster_indices(codes)
    idx, n_clusters, overflow = cim.cluster_index(codes, k_max=256, hash_width=4)
    assert not overflow and n_clusters == k
    assert np.array_equal(idx, ct)


def test_centroid_reconstruction_identities():
    rng = np.random.default_rng(6)
    head = _head(rng, m=30, n=60, clusters=5, noise=0.3)
    tr = cta_float_trace(head, widths=(3.0, 3.0, 1.0))
    assert 1 < tr.k1 < head.n and 1 < tr.k2 < head.n
    # centroids are cluster means: residuals sum to zero in every LSH_1 cluster, and the LSH_2
    # reconstruction error sums to zero in every LSH_2 cluster
    for c in range(tr.k1):
        assert np.allclose(tr.residual[tr.ct1 == c].sum(axis=0), 0.0, atol=1e-12)
    rec = tr.c1[tr.ct1] + tr.c2[tr.ct2]                        # eq. (2)
    for c in range(tr.k2):
        assert np.allclose((head.x_kv - rec)[tr.ct2 == c].sum(axis=0), 0.0, atol=1e-12)
    # eq. (4): the compressed K, V rows rebuild the projection of the eq. (2) approximation
    k_rec = tr.kbar[tr.ct1] + tr.kbar[tr.k1 + tr.ct2]
    v_rec = tr.vbar[tr.ct1] + tr.vbar[tr.k1 + tr.ct2]
    assert np.allclose(k_rec, rec @ head.wk + head.bk, rtol=1e-12, atol=1e-12)
    assert np.allclose(v_rec, rec @ head.wv + head.bv, rtol=1e-12, atol=1e-12)
    assert np.allclose(tr.qbar[tr.ct0], tr.c0[tr.ct0] @ head.wq + head.bq)
    # eq. (6): approximated scores = sum of two compressed scores (up to the per-row shift m_c)
    s_hat = tr.cs[:, tr.ct1] + tr.cs[:, tr.k1 + tr.ct2]
    s_direct = tr.qbar @ k_rec.T / math.sqrt(head.d_h)
    shift = (tr.qbar @ tr.kbar[:tr.k1].T / math.sqrt(head.d_h)).max(axis=1, keepdims=True)
    assert np.allclose(s_hat, s_direct - shift, rtol=1e-12, atol=1e-12)
    # and the output is softmax over those scores applied to the eq. (4) values
    e = np.exp(s_hat)
    expected = (e @ v_rec) / e.sum(axis=1, keepdims=True)
    assert np.allclose(tr.obar, expected, rtol=1e-10, atol=1e-12)
    assert np.array_equal(tr.out, tr.obar[tr.ct0])
    # eq. (2) is exact when LSH_2 separates every residual
    tr2 = cta_float_trace(head, widths=(3.0, 3.0, TINY))
    assert np.allclose(tr2.c1[tr2.ct1] + tr2.c2[tr2.ct2], head.x_kv, rtol=0, atol=1e-12)


def test_probability_aggregation_matches_fig6_loop():
    rng = np.random.default_rng(7)
    k0, k1, k2, n = 3, 4, 3, 25
    cs = rng.normal(size=(k0, k1 + k2))
    ct1, ct2 = rng.integers(0, k1, n), rng.integers(0, k2, n)
    ap = np.zeros((k0, k1 + k2))
    for c in range(k0):
        for j in range(n):
            e = math.exp(cs[c][ct1[j]] + cs[c][k1 + ct2[j]])
            ap[c][ct1[j]] += e
            ap[c][k1 + ct2[j]] += e
    assert np.allclose(aggregate_probabilities(cs, ct1, ct2, k1), ap, rtol=1e-13)


def test_ppe_max_subtraction():
    rng = np.random.default_rng(8)
    q, k = rng.normal(size=(4, 8)), rng.normal(size=(9, 8))
    cs = compressed_scores(q, k, 5)
    s = q @ k.T / math.sqrt(8)
    assert np.allclose(cs[:, :5], s[:, :5])
    assert np.allclose(cs[:, 5:], s[:, 5:] - s[:, :5].max(axis=1, keepdims=True))
    with pytest.raises(ValueError, match="k1"):
        compressed_scores(q, k, 0)


def test_lsh_hash_and_params():
    p0, p1, p2 = make_lsh_params(10, l=4, widths=(1.0, 2.0, 0.5), seed=3)
    assert (p0.length, p0.d_in, p1.w, p2.w) == (4, 10, 2.0, 0.5)
    assert np.all((p1.b >= 0) & (p1.b < 2.0))
    assert np.all(p0.a * 512 == np.round(p0.a * 512))          # on the Q3.9 grid
    again = make_lsh_params(10, l=4, widths=(1.0, 2.0, 0.5), seed=3)
    assert np.array_equal(again[1].a, p1.a) and not np.array_equal(make_lsh_params(10, l=4, seed=4)[1].a, p1.a)
    x = np.random.default_rng(9).normal(size=(5, 10))
    h = lsh_hash(x, p1)
    for i in range(5):
        for t in range(4):
            assert h[i, t] == math.floor((float(np.dot(p1.a[t], x[i])) + p1.b[t]) / 2.0)
    c, counts = centroids(x, np.array([0, 1, 0, 1, 1]), 2)
    assert np.allclose(c[0], x[[0, 2]].mean(axis=0)) and counts.tolist() == [2, 3]


def test_work_figures():
    rng = np.random.default_rng(10)
    head = _head(rng, m=20, n=50, d_in=16, d=8, clusters=4, noise=0.1)
    res = cta_float(head, widths=(4.0, 4.0, 2.0))
    w = res.work
    k0, k1, k2 = w["k0"], w["k1"], w["k2"]
    m, n, d_in, d = 20, 50, 16, 8
    assert w["RL"] == pytest.approx((k0 + 2 * (k1 + k2)) / (m + 2 * n))
    assert w["RA"] == pytest.approx((2 * k0 * (k1 + k2) * d + k0 * n) / (2 * m * n * d + m * n))
    assert w["RL"] < 1 and w["RA"] < 0.5
    assert w["overhead_hash_macs"] == 6 * d_in * (m + 2 * n)
    assert cta_work(m, n, d_in, d, d, m, n, 0, 6)["RA"] == pytest.approx(1.0)


def test_approximation_improves_with_finer_buckets():
    rng = np.random.default_rng(11)
    head = _head(rng, m=40, n=60, clusters=6, noise=0.2)
    exact = exact_head(head).out
    errs, ks = [], []
    for w in (16.0, 4.0, 1.0, TINY):
        res = cta_float(head, widths=(w, w, w / 2))
        errs.append(np.linalg.norm(res.out - exact) / np.linalg.norm(exact))
        ks.append(res.work["k1"])
    assert ks == sorted(ks) and errs[-1] < 1e-10
    assert errs[0] > errs[-1] and errs[0] < 0.5


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"widths": -1.0}, ValueError, "w0"),
    ({"widths": (1.0, 0.0, 1.0)}, ValueError, "w1"),
    ({"widths": (1.0, 1.0)}, ValueError, "three"),
    ({"widths": "wide"}, TypeError, "widths"),
    ({"l": 0}, ValueError, "hash length"),
    ({"bogus": 1}, TypeError, "bogus"),
    ({"lsh": (1, 2, 3)}, TypeError, "LSHParams"),
])
def test_bad_settings(kwargs, exc, word):
    head = _head(np.random.default_rng(12), m=4, n=4)
    with pytest.raises(exc, match=word):
        cta_float(head, **kwargs)


def test_lsh_params_validation():
    head = _head(np.random.default_rng(13), m=4, n=4, d_in=16)
    wrong = make_lsh_params(8)
    with pytest.raises(ValueError, match="d_in"):
        cta_float(head, lsh=wrong)
    with pytest.raises(ValueError, match="LSHParams.b"):
        LSHParams(np.zeros((3, 4)), np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="bucket width"):
        LSHParams(np.zeros((3, 4)), np.zeros(3), 0.0)


# ---- fixed-point model (composition of the block golden models) ---------------------------------
systolic = pytest.importorskip("golden.systolic")

from golden.cta import cta_fixed, cta_fixed_config, cta_fixed_trace  # noqa: E402
from golden.reference import quantized_head, relative_error  # noqa: E402


def _fixed_head(rng, m=40, n=48, d_in=16, d=8, clusters=6, noise=0.1):
    return _head(rng, m=m, n=n, d_in=d_in, d=d, clusters=clusters, noise=noise)


def test_fixed_close_to_float():
    rng = np.random.default_rng(20)
    head = _fixed_head(rng)
    for w in (1.0, 4.0):
        fl = cta_float(head, widths=w)
        fx = cta_fixed(head, widths=w)
        assert not fx.work["overflow"], fx.work["flags"]
        # quantized tokens may cross a bucket boundary: a cluster or two may split or merge
        assert abs(fx.work["k0"] - fl.work["k0"]) <= 2 and abs(fx.work["k1"] - fl.work["k1"]) <= 2
        assert relative_error(fx.out, fl.out) < 0.03
        assert fx.out.shape == fl.out.shape


def test_fixed_hash_exact_on_grid():
    """With b on the bias grid and power-of-two widths the SA hash equals eq. (1) on the quantized tokens."""
    rng = np.random.default_rng(21)
    head = _fixed_head(rng)
    params = make_lsh_params(head.d_in, widths=(2.0, 1.0, 0.5), seed=5)
    grid = [LSHParams(p.a, np.floor(p.b * 256) / 256, p.w) for p in params]
    tr = cta_fixed_trace(head, lsh=grid)
    tok = tr.cfg.token_fmt
    assert np.array_equal(tr.h1, lsh_hash(tok.to_float(tr.x_kv), grid[1]))
    assert np.array_equal(tr.h0, lsh_hash(tok.to_float(tr.x_q), grid[0]))
    assert np.array_equal(tr.h2, lsh_hash(tok.to_float(tr.residual), grid[2]))
    # the CIM indices follow first appearance of the SA hash codes
    for codes, ct in ((tr.h0, tr.ct0), (tr.h1, tr.ct1), (tr.h2, tr.ct2)):
        assert np.array_equal(ct, cluster_indices(codes)[0])


def test_fixed_intermediates_follow_the_algorithm():
    rng = np.random.default_rng(22)
    head = _fixed_head(rng)
    tr = cta_fixed_trace(head, widths=2.0)
    cfg = tr.cfg
    q6 = cfg.qkv_fmt
    x = cfg.token_fmt.to_float(tr.x_kv)
    c1, _ = centroids(x, tr.ct1, tr.k1)
    assert np.max(np.abs(q6.to_float(tr.c1) - c1)) <= q6.lsb / 2 + 1e-12
    res = x - q6.to_float(tr.c1)[tr.ct1]
    assert np.array_equal(cfg.token_fmt.to_float(tr.residual), res)
    c2, _ = centroids(res, tr.ct2, tr.k2)
    assert np.max(np.abs(q6.to_float(tr.c2) - c2)) <= q6.lsb / 2 + 1e-12
    # bias on the C^1 rows only, none on the residual rows (eq. 4 needs it exactly once)
    kbar = q6.to_float(tr.kbar)
    tol = 2 * q6.lsb + head.d_in * cfg.weight_fmt.lsb * 4
    assert np.allclose(kbar[:tr.k1], q6.to_float(tr.c1) @ head.wk + head.bk, atol=tol)
    assert np.allclose(kbar[tr.k1:], q6.to_float(tr.c2) @ head.wk, atol=tol)
    vbar = q6.to_float(tr.vbar)
    assert np.allclose(vbar[tr.k1:], q6.to_float(tr.c2) @ head.wv, atol=tol)
    # scores: PPE max subtraction on the residual columns
    s = q6.to_float(tr.qbar) @ kbar.T / math.sqrt(head.d_h)
    s[:, tr.k1:] -= s[:, :tr.k1].max(axis=1, keepdims=True)
    assert np.max(np.abs(cfg.score_fmt.to_float(tr.cs) - s)) < 4 * cfg.score_fmt.lsb
    assert np.array_equal(tr.out, tr.obar[tr.ct0])


def test_fixed_degenerate_close_to_quantized_exact():
    rng = np.random.default_rng(23)
    head = _head(rng, m=20, n=30, d_in=12, d=8)
    res = cta_fixed(head, widths=(0.25, 0.25, 1.0))
    assert (res.work["k0"], res.work["k1"]) == (20, 30)
    q = quantized_head(head)
    exact = exact_head(head).out
    assert relative_error(res.out, exact) < 0.03
    assert relative_error(res.out, q.out) < 0.03


def test_fixed_capacity_overflow_is_flagged():
    rng = np.random.default_rng(24)
    head = _fixed_head(rng)
    res = cta_fixed(head, widths=1.0, k_max=4)
    assert res.work["overflow"] and res.work["flags"]["cim_overflow"]
    tr = cta_fixed_trace(head, widths=1.0, k_max=4)
    refused = tr.ct0 == 4
    assert refused.any() and np.all(tr.out[refused] == 0)
    assert tr.k0 <= 4 and tr.k1 <= 4


def test_fixed_is_deterministic_and_validates():
    rng = np.random.default_rng(25)
    head = _fixed_head(rng)
    a, b = cta_fixed(head, widths=2.0, seed=3), cta_fixed(head, widths=2.0, seed=3)
    assert np.array_equal(a.out, b.out)
    big = _head(rng, m=4, n=4, d_in=64)
    with pytest.raises(ValueError, match="d_in"):
        cta_fixed(big, cfg=systolic.SystolicConfig(d=64, d_in_max=32))


def test_fixed_tiles_long_dot_products():
    """d_in > d runs in passes: with the passes' partial sums exact, the result is the same as on an
    SA tall enough for one pass (same formats otherwise), for d_in = 300 on d = 16 and d = 512."""
    rng = np.random.default_rng(26)
    head = _head(rng, m=6, n=10, d_in=300, d=8, clusters=3)
    params = make_lsh_params(head.d_in, widths=(2.0, 2.0, 1.0), seed=2)
    cfg = cta_fixed_config(head, params, d=16)
    tiled = cta_fixed_trace(head, lsh=params, cfg=cfg)
    single = cta_fixed_trace(head, lsh=params, cfg=replace(cfg, d=256, d_in_max=512))
    assert tiled.flags == single.flags     # 36-bit partial sums never saturate here
    for name in ("h0", "h1", "h2", "qbar", "kbar", "vbar"):
        assert np.array_equal(getattr(tiled, name), getattr(single, name)), name
    with pytest.raises(TypeError, match="cfg"):
        cta_fixed(head, cfg="default")
    with pytest.raises(TypeError, match="bogus"):
        cta_fixed(head, bogus=1)
    with pytest.raises(ValueError, match="k_max"):
        cta_fixed(head, k_max=0)
