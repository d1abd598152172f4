import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.relu_attention import (NORMALIZERS, PATTERNS, pattern_scores, prefix_attention,
                                  prefix_normalizers, relu2_attention)

jax.config.update("jax_enable_x64", True)

finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False)
score_rows = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 24)), elements=finite)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_shapes_are_deterministic(pattern):
    key = jax.random.PRNGKey(3)
    a = np.asarray(pattern_scores(key, pattern, 64, queries=5))
    b = np.asarray(pattern_scores(key, pattern, 64, queries=5))
    assert a.shape == (5, 64) and np.array_equal(a, b)


@pytest.mark.parametrize("pattern", ["local", "few"])
def test_the_noise_free_part_does_not_depend_on_n(pattern):
    """Prefixes nest in the deterministic part; the noise is a different draw per shape."""
    key = jax.random.PRNGKey(3)
    short = np.asarray(pattern_scores(key, pattern, 32, queries=200))
    long = np.asarray(pattern_scores(key, pattern, 64, queries=200))[:, :32]
    # the column means estimate the noise-free part: equal within sampling error
    se = np.sqrt(2 / 200) * (0.5 if pattern == "local" else 1.0)
    mask = slice(None) if pattern == "local" else slice(4, None)
    assert np.max(np.abs(short.mean(0) - long.mean(0))[mask]) < 5 * se
    if pattern == "few":
        assert np.all(short[:, :4] == long[:, :4])
    assert not np.array_equal(short, long)     # separate draws: slice one draw to nest


@settings(max_examples=15, deadline=None)
@given(score_rows, st.sampled_from(NORMALIZERS), st.integers(1, 100))
def test_prefix_attention_reads_each_prefix(s, normalizer, n_fixed):
    s = s.copy()
    s[:, 0] = np.abs(s[:, 0]) + 0.1      # "sum" needs one positive score per prefix
    rng = np.random.default_rng(0)
    v = rng.normal(size=(s.shape[1], 3))
    n = s.shape[1]
    lengths = np.array(sorted({1, (n + 1) // 2, n}))   # each checked length compiles once
    got = prefix_attention(s, v, lengths, normalizer, n_fixed=n_fixed)
    for k, m in enumerate(lengths):
        ref = relu2_attention(s[:, :m], v[:m], normalizer, n_fixed=n_fixed)
        assert np.allclose(got.output[k], ref.output, rtol=1e-12, atol=1e-13)
        assert np.allclose(got.row_sums[k], ref.row_sums, rtol=1e-12, atol=1e-13)


def test_pattern_definitions():
    key = jax.random.PRNGKey(0)
    few = np.asarray(pattern_scores(key, "few", 200, queries=3, n_important=5))
    assert np.all(few[:, :5] == 4.0) and np.all(few[:, 5:] != 4.0)
    local = np.asarray(pattern_scores(key, "local", 4000, queries=50))
    # the noise is N(0, 0.25) around 3 (1 - j/16)
    resid = local - 3 * (1 - np.arange(4000) / 16)
    assert abs(resid.std() - 0.5) < 0.01 and abs(resid.mean()) < 0.01
    wide = np.asarray(pattern_scores(key, "wide", 4000, queries=50))
    gauss = np.asarray(pattern_scores(key, "gaussian", 4000, queries=50))
    assert np.allclose(wide, 4 * gauss)


@settings(max_examples=40, deadline=None)
@given(score_rows)
def test_prefix_normalizers_are_running_sums(s):
    lengths = np.arange(1, s.shape[1] + 1)
    for act, f in (("exp", np.exp), ("relu2", lambda x: np.maximum(x, 0) ** 2)):
        z = np.asarray(prefix_normalizers(s, lengths, act))
        ref = np.stack([f(s[:, :m]).sum(axis=1) for m in lengths])
        assert z.shape == (s.shape[1], s.shape[0])
        assert np.allclose(z, ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(score_rows, st.floats(0.01, 100))
def test_relu2_normalised_rows_ignore_a_positive_scale(s, lam):
    """Positive homogeneity: relu²(λs)/Σ relu²(λs) = relu²(s)/Σ relu²(s) for λ > 0."""
    s = s.copy()
    s[:, 0] = np.abs(s[:, 0]) + 0.1      # at least one positive score per row
    v = np.eye(s.shape[1])
    a = np.asarray(relu2_attention(s, v, "sum").output)
    b = np.asarray(relu2_attention(lam * s, v, "sum").output)
    assert np.allclose(a, b, rtol=1e-10, atol=1e-13)
    assert np.allclose(a.sum(axis=1), 1, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(score_rows, st.integers(1, 2048))
def test_three_normalizers_differ_only_by_the_divisor(s, n_fixed):
    v = np.eye(s.shape[1])
    r = np.maximum(s, 0) ** 2
    by_len = relu2_attention(s, v, "length")
    fixed = relu2_attention(s, v, "fixed", n_fixed=n_fixed)
    assert np.allclose(np.asarray(by_len.output), r / s.shape[1], rtol=1e-12, atol=1e-15)
    assert np.allclose(np.asarray(fixed.output), r / n_fixed, rtol=1e-12, atol=1e-15)
    assert np.allclose(np.asarray(fixed.row_sums), r.sum(axis=1) / n_fixed, rtol=1e-12,
                       atol=1e-15)


def test_identity_of_the_scaled_scores():
    """(1/n) relu²(x/√s) = relu²(x)/(ns)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 40)) * 5
    v = rng.normal(size=(40, 3))
    s = 64.0
    a = np.asarray(relu2_attention(x / np.sqrt(s), v, "length").output)
    b = (np.maximum(x, 0) ** 2 / (40 * s)) @ v
    assert np.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_input_checks_name_the_argument():
    key = jax.random.PRNGKey(0)
    with pytest.raises(TypeError, match="key"):
        pattern_scores(5, "local", 10)
    with pytest.raises(ValueError, match="pattern"):
        pattern_scores(key, "nope", 10)
    with pytest.raises(ValueError, match="n must"):
        pattern_scores(key, "local", 0)
    with pytest.raises(TypeError, match="queries"):
        pattern_scores(key, "local", 10, queries=2.5)
    with pytest.raises(ValueError, match="width"):
        pattern_scores(key, "local", 10, width=-1.0)
    s = np.zeros((2, 5))
    with pytest.raises(ValueError, match="scores"):
        prefix_normalizers(np.zeros(5), [1], "exp")
    with pytest.raises(ValueError, match="lengths"):
        prefix_normalizers(s, [6], "exp")
    with pytest.raises(TypeError, match="lengths"):
        prefix_normalizers(s, [1.5], "exp")
    with pytest.raises(ValueError, match="activation"):
        prefix_normalizers(s, [1], "tanh")
    with pytest.raises(ValueError, match="scores"):
        prefix_normalizers(s + 800, [1], "exp")
    with pytest.raises(ValueError, match="scores"):
        prefix_normalizers(np.full((2, 5), np.nan), [1], "exp")
    with pytest.raises(ValueError, match="values"):
        relu2_attention(s, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="normalizer"):
        relu2_attention(s, np.zeros((5, 3)), "max")
    with pytest.raises(ValueError, match="n_fixed"):
        relu2_attention(s, np.zeros((5, 3)), "fixed", n_fixed=0)
    with pytest.raises(ValueError, match="lengths"):
        prefix_attention(s, np.zeros((5, 3)), [6])
    with pytest.raises(TypeError, match="lengths"):
        prefix_attention(s, np.zeros((5, 3)), [True])
    with pytest.raises(ValueError, match="values"):
        prefix_attention(s, np.zeros((4, 3)), [2])
    with pytest.raises(ValueError, match="normalizer"):
        prefix_attention(s, np.zeros((5, 3)), [2], "max")
