"""Tests for sulib.hubness: exact kNN against brute force, counts, skewness, ball volumes."""

import jax
import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.hubness import (
    PAPER_RUN_CONFIG,
    _sample,
    _summary,
    k_occurrence,
    knn_indices,
    log_ball_cube_ratio,
    skewness,
)

jax.config.update("jax_enable_x64", True)


def brute_knn(x, k):
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("n,d,k,block", [(50, 3, 1, 7), (200, 20, 5, 64), (97, 300, 10, 97)])
def test_knn_matches_brute_force(n, d, k, block):
    x = np.random.default_rng(n + d).standard_normal((n, d))
    np.testing.assert_array_equal(np.asarray(knn_indices(x, k, block=block)), brute_knn(x, k))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 40), d=st.integers(1, 8), k=st.integers(1, 5), seed=st.integers(0, 99))
def test_k_occurrence_sums_to_nk_and_excludes_self(n, d, k, seed):
    k = min(k, n - 1)
    x = np.random.default_rng(seed).standard_normal((n, d))
    idx = np.asarray(knn_indices(x, k, block=5))
    assert not np.any(idx == np.arange(n)[:, None])
    counts = np.asarray(k_occurrence(x, k, block=5))
    assert counts.sum() == n * k
    np.testing.assert_array_equal(counts, np.bincount(idx.ravel(), minlength=n))


def test_block_size_does_not_change_result():
    x = np.random.default_rng(1).standard_normal((123, 10))
    a = np.asarray(k_occurrence(x, 4, block=1))
    b = np.asarray(k_occurrence(x, 4, block=1000))
    np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 999), m=st.integers(3, 60))
def test_skewness_matches_scipy(seed, m):
    v = np.random.default_rng(seed).exponential(size=m)
    assert abs(float(skewness(v)) - scipy.stats.skew(v)) < 1e-10


def test_skewness_sign_and_batch():
    v = np.array([[0.0, 0, 0, 10], [0.0, 10, 10, 10]])
    s = np.asarray(skewness(v))
    assert s[0] > 0 > s[1] and abs(s[0] + s[1]) < 1e-12


def test_ties_and_duplicates_go_to_the_lower_index():
    # an integer grid with many equal distances, and every point duplicated once
    g = np.stack(np.meshgrid(np.arange(4), np.arange(4)), -1).reshape(-1, 2).astype(float)
    x = np.concatenate([g, g])
    idx = np.asarray(knn_indices(x, 6, block=5))
    np.testing.assert_array_equal(idx, brute_knn(x, 6))   # stable: lower index first
    n = len(g)
    assert np.all(idx[:n, 0] == np.arange(n, 2 * n))      # a duplicate is the nearest
    assert np.all(idx[n:, 0] == np.arange(n))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 100])
def test_log_ball_cube_ratio(n):
    ref = n / 2 * np.log(np.pi) - scipy.special.gammaln(n / 2 + 1) - n * np.log(2)
    assert abs(float(log_ball_cube_ratio(n)) - ref) < 1e-12


def test_log_ball_cube_ratio_independent_anchors():
    ratio = lambda n: float(np.exp(log_ball_cube_ratio(n)))  # noqa: E731
    assert abs(ratio(1) - 1) < 1e-15                 # the segment fills [-1, 1]
    assert abs(ratio(2) - np.pi / 4) < 1e-15         # disc in square
    assert abs(ratio(3) - np.pi / 6) < 1e-15         # ball in cube
    for n in range(3, 40):                           # V_n = (2π/n) V_(n−2), cube 2^n
        step = np.exp(log_ball_cube_ratio(n) - log_ball_cube_ratio(n - 2))
        assert abs(float(step) - 2 * np.pi / n / 4) < 1e-12


def test_stored_run_summary():
    x = _sample("normal", 400, 50, 0)
    assert x.shape == (400, 50)
    assert not np.array_equal(x, _sample("normal", 400, 50, 1))
    u = _sample("uniform", 400, 3, 0)
    assert u.min() >= 0 and u.max() < 1
    row = _summary(x, 5, n_bins=10)
    counts = np.asarray(k_occurrence(x, 5))
    assert row["max"] == counts.max()
    assert abs(row["skew"] - scipy.stats.skew(counts)) < 1e-10
    assert row["rho_mean"] < -0.5                    # hubs near the mean at d = 50
    assert len(row["bin_count"]) == 10 and abs(np.mean(row["bin_count"]) - 5) < 1e-12
    assert np.all(np.diff(row["bin_dist"]) > 0)      # bins ordered by distance
    assert set(PAPER_RUN_CONFIG) == {"k", "n", "n_bins", "paper", "filter", "high_d"}


def test_bad_inputs():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        knn_indices(np.zeros(5), 1)
    with pytest.raises(ValueError, match="k must be < N"):
        knn_indices(x, 5)
    with pytest.raises(TypeError, match="k must be an int"):
        k_occurrence(x, 1.5)
    with pytest.raises(ValueError, match="block must be"):
        knn_indices(x, 1, block=0)
    with pytest.raises(ValueError, match="x contains non-finite"):
        knn_indices(np.full((3, 2), np.nan), 1)
    with pytest.raises(ValueError, match="values must not be constant"):
        skewness(np.ones(4))
    with pytest.raises(ValueError, match="values must have at least 2"):
        skewness(np.ones(1))
    with pytest.raises(ValueError, match="n must be > 0"):
        log_ball_cube_ratio(0)
