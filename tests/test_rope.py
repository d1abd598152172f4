"""Tests of sulib.rope: rotations are orthogonal and scores depend on relative position only."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.rope import (
    frequencies, logn_scale, mixed_base_factors, mixed_base_frequencies,
    nearest_trained_distance, ntk_aware_frequencies, ntk_fixed_frequencies, pi_frequencies,
    relative_scores, rotate,
)

jax.config.update("jax_enable_x64", True)


def test_frequencies_match_the_roformer_formula():
    f = frequencies(8, 100.0)
    np.testing.assert_allclose(f, [1.0, 100 ** -0.25, 100 ** -0.5, 100 ** -0.75], rtol=1e-15)


def test_one_pair_is_the_two_by_two_rotation():
    x = np.array([[1.0, 2.0]])
    out = np.asarray(rotate(x, [0.7], [1.0]))
    c, s = np.cos(0.7), np.sin(0.7)
    np.testing.assert_allclose(out, [[c - 2 * s, s + 2 * c]], rtol=1e-14)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), half=st.integers(1, 6), n=st.integers(1, 7),
       m=st.integers(1, 7))
def test_scores_of_rotated_vectors_depend_on_the_difference_only(seed, half, n, m):
    rng = np.random.default_rng(seed)
    d = 2 * half
    q, k = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    a, b = rng.uniform(-50, 50, n), rng.uniform(-50, 50, m)
    f = frequencies(d)
    direct = np.asarray(rotate(q, a, f)) @ np.asarray(rotate(k, b, f)).T
    via_rel = np.asarray(relative_scores(q, k, a[:, None] - b[None, :], f))
    np.testing.assert_allclose(via_rel, direct, atol=1e-10 * d)
    # rotations keep norms
    np.testing.assert_allclose(np.linalg.norm(rotate(q, a, f), axis=1),
                               np.linalg.norm(q, axis=1), rtol=1e-12)


def test_a_shifted_sign_convention_would_fail():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    a = np.arange(3.0)
    f = frequencies(4)
    direct = np.asarray(rotate(q, a, f)) @ np.asarray(rotate(k, a, f)).T
    wrong = np.asarray(relative_scores(q, k, a[None, :] - a[:, None], f))
    assert np.abs(wrong - direct).max() > 1e-2


@pytest.mark.parametrize("call,match", [
    (lambda: frequencies(5), "d must be even"),
    (lambda: frequencies(0), "d must be >= 2"),
    (lambda: frequencies(4, -1.0), "base must be > 0"),
    (lambda: rotate(np.ones((2, 3)), [0, 1], [1.0]), "x must have an even last axis"),
    (lambda: rotate(np.ones((2, 4)), [0, 1, 2], [1.0, 0.1]), "positions must have shape"),
    (lambda: rotate(np.ones((2, 4)), [0, np.nan], [1.0, 0.1]), "positions contains non-finite"),
    (lambda: rotate(np.ones((2, 4)), [0, 1], [1.0]), "freqs must have shape"),
    (lambda: relative_scores(np.ones((2, 4)), np.ones((3, 4)), np.ones((2, 2)), [1, .1]),
     "rel must have shape"),
    (lambda: relative_scores(np.ones((2, 4)), np.ones((3, 2)), np.ones((2, 3)), [1, .1]),
     "q and k must be"),
    (lambda: pi_frequencies(8, 0.5), "k must be >= 1"),
    (lambda: ntk_fixed_frequencies(8, -2.0), "k must be > 0"),
    (lambda: mixed_base_frequencies(7, 4.0, 0.5), "d must be even"),
    (lambda: mixed_base_factors(8, 4.0, np.nan), "b contains non-finite"),
    (lambda: logn_scale([0.5, 3.0], 512), "n must be >= 1"),
    (lambda: logn_scale([3.0], 1), "maxlen must be >= 2"),
    (lambda: nearest_trained_distance(-np.ones((1, 2)), [1, .1], 8, [1, .1], [9.0]),
     "weights must be"),
    (lambda: nearest_trained_distance(np.ones((1, 2)), [1, .1, .01], 8, [1, .1], [9.0]),
     "freqs must have shape"),
    (lambda: nearest_trained_distance(np.ones((1, 2)), [1, .1], 0, [1, .1], [9.0]),
     "train_len must be >= 1"),
    (lambda: nearest_trained_distance(np.ones((1, 2)), [1, .1], 8, [1, .1], [[9.0]]),
     "test_positions must be 1-D"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_ntk_aware_is_a_base_change_to_base_times_k():
    for d, k in [(8, 4.0), (64, 16.0), (128, 8.0)]:
        np.testing.assert_allclose(ntk_aware_frequencies(d, k), frequencies(d, 10000.0 * k),
                                   rtol=1e-12)


def test_ntk_fixed_divides_the_slowest_pair_by_k_and_the_fastest_by_lambda():
    d, k = 128, 16.0
    f, g = frequencies(d), ntk_fixed_frequencies(d, k)
    np.testing.assert_allclose(f[-1] / g[-1], k, rtol=1e-12)
    np.testing.assert_allclose(f[0] / g[0], k ** (2 / d), rtol=1e-12)
    # NTK-aware ("old") leaves the fastest pair alone and compresses the slowest by k^{1-2/d}
    h = ntk_aware_frequencies(d, k)
    assert h[0] == f[0]
    np.testing.assert_allclose(f[-1] / h[-1], k ** (1 - 2 / d), rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(half=st.integers(1, 64), k=st.floats(1.0, 64.0), b=st.floats(-1.0, 3.0))
def test_mixed_base_factors_multiply_to_k_and_define_the_frequencies(half, k, b):
    d = 2 * half
    lam = mixed_base_factors(d, k, b)
    np.testing.assert_allclose(np.prod(lam), k, rtol=1e-9)
    np.testing.assert_allclose(mixed_base_frequencies(d, k, b),
                               frequencies(d) / np.cumprod(lam), rtol=1e-9)


def test_mixed_base_endpoints_are_ntk_fixed_and_pi():
    for d, k in [(2, 3.0), (16, 4.0), (128, 16.0)]:
        np.testing.assert_allclose(mixed_base_frequencies(d, k, 1.0),
                                   ntk_fixed_frequencies(d, k), rtol=1e-12)
        np.testing.assert_allclose(mixed_base_frequencies(d, k, 0.0), pi_frequencies(d, k),
                                   rtol=1e-12)
    # and b = 0.625 is neither
    assert np.abs(mixed_base_frequencies(128, 16.0, 0.625) / ntk_fixed_frequencies(128, 16.0)
                  - 1).max() > 0.1


def test_mixed_base_factors_are_ordered_exactly_for_b_in_zero_one():
    d, k = 128, 16.0
    for b in (0.0, 0.25, 0.625, 1.0):
        lam = mixed_base_factors(d, k, b)
        assert np.all(np.diff(lam) <= 1e-12) and lam.min() >= 1 - 1e-12, b
    assert mixed_base_factors(d, k, -0.5)[1:].max() < 1          # b < 0: below 1
    assert np.all(np.diff(mixed_base_factors(d, k, 1.5)) > 0)    # b > 1: increasing


@settings(max_examples=60, deadline=None)
@given(half=st.integers(2, 128), k=st.floats(1.5, 64.0), b=st.floats(-1.0, 3.0))
def test_mixed_base_ordering_holds_iff_b_in_zero_one(half, k, b):
    """λ_1 ≥ … ≥ λ_{d/2} ≥ 1 for 0 ≤ b ≤ 1; for b < 0 some λ_m < 1, for b > 1 λ_1 < λ_2."""
    lam = mixed_base_factors(2 * half, k, b)
    tol = 1e-12 * np.log(k)
    ordered = np.all(np.diff(lam) <= tol) and lam.min() >= 1 - tol
    if 0.0 <= b <= 1.0:
        assert ordered
    elif b < -1e-6:
        assert lam[1:].min() < 1 and not ordered
    elif b > 1 + 1e-6:
        assert lam[0] < lam[1] and not ordered


@settings(max_examples=40, deadline=None)
@given(half=st.integers(1, 128), k=st.floats(1.01, 64.0), b=st.floats(0.0, 1.0))
def test_mixed_running_products_dominate_ntk_fixed_for_b_at_most_one(half, k, b):
    """λ_1⋯λ_m ≥ λ^m (λ = k^{2/d}) for every m when b ≤ 1: the low digits take more."""
    d = 2 * half
    prod = np.cumprod(mixed_base_factors(d, k, b))
    fixed = (k ** (2 / d)) ** np.arange(1, half + 1)
    assert np.all(prod >= fixed * (1 - 1e-12))
    np.testing.assert_allclose(mixed_base_frequencies(d, k, b) <= ntk_fixed_frequencies(d, k)
                               * (1 + 1e-12), True)


def test_logn_scale_is_one_inside_the_training_length():
    n = np.array([1, 2, 511, 512, 1024, 4096])
    s = logn_scale(n, 512)
    np.testing.assert_array_equal(s[:4], 1.0)
    np.testing.assert_allclose(s[4:], [10 / 9, 12 / 9], rtol=1e-14)


def test_nearest_trained_distance_matches_brute_force():
    rng = np.random.default_rng(1)
    d, L = 8, 40
    w = rng.uniform(0.1, 1.0, (3, d // 2))
    f0, f1 = frequencies(d, 100.0), ntk_fixed_frequencies(d, 4.0, 100.0)
    r = np.array([0.0, 17.0, 55.0, 159.0])
    got = np.asarray(nearest_trained_distance(w, f0, L, f1, r))
    chord = np.abs(np.exp(1j * r[:, None, None] * f1)
                   - np.exp(1j * np.arange(L)[None, :, None] * f0))    # (n_test, L, d/2)
    want = (chord @ w.T).min(axis=1).T / w.sum(axis=1)[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # a distance seen in training is at distance 0 under the training frequencies
    np.testing.assert_allclose(nearest_trained_distance(w, f0, L, f0, [12.0]), 0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), r=st.floats(0.0, 500.0))
def test_nearest_trained_distance_bounds_the_score_gap(seed, r):
    """min_r0 |s'(r) − s(r0)| <= D(r) Σ|c| for any q, k: the measure is an upper bound."""
    rng = np.random.default_rng(seed)
    d, L = 8, 30
    q, k = rng.normal(size=(1, d)), rng.normal(size=(1, d))
    a = q[0, 0::2] * k[0, 0::2] + q[0, 1::2] * k[0, 1::2]
    b = q[0, 0::2] * k[0, 1::2] - q[0, 1::2] * k[0, 0::2]
    c_abs = np.hypot(a, b)
    f0, f1 = frequencies(d, 100.0), pi_frequencies(d, 3.0, 100.0)
    s_test = float(relative_scores(q, k, [[r]], f1)[0, 0])
    s_train = np.array([float(relative_scores(q, k, [[r0]], f0)[0, 0]) for r0 in range(L)])
    bound = float(nearest_trained_distance(c_abs[None], f0, L, f1, [r])[0, 0]) * c_abs.sum()
    assert np.abs(s_test - s_train).min() <= bound + 1e-9
