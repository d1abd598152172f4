import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.attention import (attention_scores, attention_scores_by_dim, entropy_terms,
                             matching_scale, matching_scales, prefix_entropy_terms,
                             softmax_entropy)

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)
score_rows = st.integers(1, 40).flatmap(lambda n: arrays(np.float64, (3, n), elements=finite))
scales = arrays(np.float64, st.integers(1, 4), elements=st.floats(0, 5))


def numpy_entropy(scores, lam):
    z = lam * scores
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)


@settings(max_examples=60, deadline=None)
@given(score_rows, scales)
def test_entropy_matches_numpy_and_the_decomposition_closes(scores, lams):
    t = entropy_terms(scores, lams)
    assert t.entropy.shape == (len(lams), 3)
    for k, lam in enumerate(lams):
        np.testing.assert_allclose(t.entropy[k], numpy_entropy(scores, lam), atol=1e-9)
    n = scores.shape[-1]
    np.testing.assert_allclose(t.approximation + t.jensen_gap + t.concentration_gap, t.entropy, atol=1e-8)
    assert np.all(t.jensen_gap >= -1e-9) and np.all(t.concentration_gap >= -1e-9)
    assert np.all(t.entropy >= -1e-12) and np.all(t.entropy <= np.log(n) + 1e-12)


@settings(max_examples=30, deadline=None)
@given(score_rows)
def test_entropy_is_log_n_at_zero_scale_and_falls_with_scale(scores):
    n = scores.shape[-1]
    h = np.asarray(softmax_entropy(scores, np.array([0.0, 0.5, 1.0, 2.0])))
    np.testing.assert_allclose(h[0], np.log(n), atol=1e-12)
    assert np.all(np.diff(h, axis=0) <= 1e-9)


def test_matching_scale_inverts_the_entropy():
    s = attention_scores(jax.random.PRNGKey(0), "gaussian", 256, 16, queries=8)
    for target in (1.0, 3.0, 5.0):
        lam = matching_scale(s, target)
        assert abs(float(softmax_entropy(s, lam).mean()) - target) < 1e-6
    lam = matching_scale(s, 0.8, normalized=True)
    assert abs(float(softmax_entropy(s, lam).mean()) / np.log(256) - 0.8) < 1e-6


def test_unreachable_target_is_an_error():
    s = attention_scores(jax.random.PRNGKey(0), "gaussian", 16, 8, queries=4)
    with pytest.raises(ValueError, match="target"):
        matching_scale(s, np.log(16) + 1.0)  # above the maximum entropy log n


def test_score_models():
    key = jax.random.PRNGKey(1)
    sphere = attention_scores(key, "sphere", 512, 64, queries=4)
    assert sphere.shape == (4, 512) and np.all(np.abs(sphere) <= 64 + 1e-9)  # |q.k| <= |q||k| = d
    margin = attention_scores(key, "margin", 512, 64, queries=64, rho=0.5)
    gap = np.asarray(margin[:, 0] - margin[:, 1:].mean(axis=1))
    assert 0.3 * 64 < gap.mean() < 0.7 * 64  # key 0 stands about rho * d above the rest


@settings(max_examples=30, deadline=None)
@given(score_rows, st.data())
def test_prefix_terms_equal_the_terms_of_each_slice(scores, data):
    n = scores.shape[-1]
    lengths = data.draw(st.lists(st.integers(1, n), min_size=1, max_size=4))
    lams = data.draw(arrays(np.float64, (2, len(lengths)), elements=st.floats(0, 5)))
    t = prefix_entropy_terms(scores, lengths, lams)
    assert t.entropy.shape == (2, len(lengths), 3)
    for m, L in enumerate(lengths):
        ref = entropy_terms(scores[:, :L], lams[:, m])
        for got, want in zip(t, ref):
            np.testing.assert_allclose(got[:, m], want, atol=1e-12)
    same = prefix_entropy_terms(scores, lengths, lams[:, 0])  # (k,) scales: same at every length
    for m, L in enumerate(lengths):
        np.testing.assert_allclose(same.entropy[:, m], softmax_entropy(scores[:, :L], lams[:, 0]),
                                   atol=1e-12)


def test_matching_scales_agree_with_matching_scale_per_length():
    s = attention_scores(jax.random.PRNGKey(2), "margin", 1024, 16, queries=8)
    lengths = (16, 256, 1024, 1024)
    targets = np.array([0.7, 0.7, 0.7, 0.5])
    lam = matching_scales(s, lengths, targets, normalized=True)
    for L, r, got in zip(lengths, targets, lam):
        assert abs(got / matching_scale(s[:, :L], r, normalized=True) - 1) < 1e-8
        assert abs(float(softmax_entropy(s[:, :L], got).mean()) / np.log(L) - r) < 1e-6
    lam_abs = matching_scales(s, (256, 1024), 2.0)
    for L, got in zip((256, 1024), lam_abs):
        assert abs(float(softmax_entropy(s[:, :L], got).mean()) - 2.0) < 1e-6
    with pytest.raises(ValueError, match="targets"):
        matching_scales(s, (16, 1024), np.log(16) + 0.5)  # out of reach at n = 16


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: softmax_entropy(np.array([1.0, np.nan]), 1.0), ValueError, "scores"),
        (lambda: softmax_entropy(np.zeros((2, 0)), 1.0), ValueError, "scores"),
        (lambda: softmax_entropy(np.float64(1.0), 1.0), ValueError, "scores"),
        (lambda: softmax_entropy(np.ones(3), np.inf), ValueError, "scales"),
        (lambda: softmax_entropy(np.ones(3), np.ones((2, 2))), ValueError, "scales"),
        (lambda: softmax_entropy(["a", "b"], 1.0), TypeError, "scores"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "cauchy", 8, 4), ValueError, "model"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "gaussian", 0, 4), ValueError, "n"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "gaussian", 8, 2.5), TypeError, "d"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "margin", 8, 4, rho=1.5), ValueError, "rho"),
        (lambda: matching_scale(np.ones((2, 4)), float("nan")), ValueError, "target"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (5,), 1.0), ValueError, "lengths"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (), 1.0), ValueError, "lengths"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (2.5,), 1.0), TypeError, "lengths"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (2, 3), np.ones((1, 3))), ValueError,
         "scales"),
        (lambda: matching_scales(np.ones((2, 4)), (2, 3), np.ones(3)), ValueError, "targets"),
        (lambda: matching_scales(np.ones((2, 4)), (1, 3), 0.5, normalized=True), ValueError,
         "lengths"),
    ],
)
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("model", ["gaussian", "sphere", "margin"])
def test_scores_by_dim_with_one_dim_is_attention_scores(model):
    key = jax.random.PRNGKey(3)
    a = np.asarray(attention_scores_by_dim(key, model, 50, (12,), queries=4))
    b = np.asarray(attention_scores(key, model, 50, 12, queries=4))
    assert a.shape == (1, 4, 50)
    np.testing.assert_array_equal(a[0], b)


@settings(max_examples=5, deadline=None)
@given(st.lists(st.integers(1, 24), min_size=1, max_size=4, unique=True), st.integers(0, 2**31 - 1))
def test_scores_by_dim_margin_is_gaussian_plus_one_relevant_key(dims, seed):
    key = jax.random.PRNGKey(seed)
    g = np.asarray(attention_scores_by_dim(key, "gaussian", 9, dims, queries=3))
    m = np.asarray(attention_scores_by_dim(key, "margin", 9, dims, queries=3))
    assert g.shape == m.shape == (len(dims), 3, 9)
    np.testing.assert_array_equal(g[..., 1:], m[..., 1:])
    # nested in d: dimension d is the first d coordinates of the largest draw
    top = max(dims)
    full = np.asarray(attention_scores_by_dim(key, "gaussian", 9, (top,), queries=3))[0]
    np.testing.assert_allclose(g[dims.index(top)], full, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [(dict(dims=()), ValueError, "dims"), (dict(dims=(4, 4)), ValueError, "dims"),
     (dict(dims=(4, 0)), ValueError, "dims"), (dict(dims=(4.5,)), TypeError, "dims"),
     (dict(dims=5), TypeError, "dims"), (dict(dims=(4,), model="cube"), ValueError, "model"),
     (dict(dims=(4,), rho=2.0), ValueError, "rho")],
)
def test_scores_by_dim_checks_its_inputs(kwargs, exc, name):
    args = dict(model="gaussian", n=5) | kwargs
    with pytest.raises(exc, match=name):
        attention_scores_by_dim(jax.random.PRNGKey(0), args.pop("model"), args.pop("n"),
                                args.pop("dims"), **args)
