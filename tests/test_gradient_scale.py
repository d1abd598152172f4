"""Tests of sulib.gradient_scale: the exact E Σp² by quadrature and the post's approximation."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.attention import softmax_stats
from sulib.gradient_scale import (annealed_sum_p2, cosine_scores, expected_sum_p2,
                                  log_half_l1, refine_argmax, score_nodes)

jax.config.update("jax_enable_x64", True)


def test_one_key_has_sum_p2_one_and_tiny_scale_is_uniform():
    a = np.array([0.05, 1.0, 7.0, 20.0])
    np.testing.assert_allclose(expected_sum_p2(a, [1]), 1.0, atol=1e-9)
    q = expected_sum_p2(1e-3, [2, 16, 1024])[0]
    np.testing.assert_allclose(q, 1 / np.array([2, 16, 1024]), rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 6.0])
def test_two_keys_match_a_two_dimensional_grid(alpha):
    s = np.linspace(-9, 9, 1501)
    w = np.exp(-s**2 / 2)
    w /= w.sum()
    x1, x2 = np.meshgrid(alpha * s, alpha * s, indexing="ij")
    m = np.maximum(x1, x2)
    e1, e2 = np.exp(x1 - m), np.exp(x2 - m)
    direct = (np.outer(w, w) * (e1**2 + e2**2) / (e1 + e2) ** 2).sum()
    np.testing.assert_allclose(expected_sum_p2(alpha, [2])[0, 0], direct, rtol=1e-6)


@pytest.mark.parametrize("density,d,alpha", [("gaussian", None, 2.0), ("cosine", 32, 12.0)])
def test_quadrature_agrees_with_monte_carlo(density, d, alpha):
    key = jax.random.PRNGKey(3)
    n, rows = 64, 20000
    s = (jax.random.normal(key, (rows, n)) if density == "gaussian"
         else cosine_scores(3, (rows, n), d))
    v = np.asarray(softmax_stats(s, alpha).sum_p2)[0]
    exact = expected_sum_p2(alpha, [n], density, d)[0, 0]
    assert abs(v.mean() - exact) < 4 * v.std() / np.sqrt(rows)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 15), st.integers(1, 12))
def test_sum_p2_lies_between_uniform_and_one_and_falls_with_n(alpha, log2n):
    ns = np.array([2.0 ** (log2n - 1), 2.0**log2n])
    q = expected_sum_p2(alpha, ns)[0]
    assert np.all(q >= 1 / ns - 1e-9) and np.all(q <= 1 + 1e-9)
    assert q[1] <= q[0] + 1e-9


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 5), st.floats(1, 1e6))
def test_annealed_gaussian_is_exp_alpha_squared_over_n(alpha, n):
    np.testing.assert_allclose(annealed_sum_p2(alpha, n)[0, 0], np.exp(alpha**2) / n, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.3, 5.0, 40.0])
def test_annealed_cosine_matches_direct_moments(alpha):
    d = 64
    s, log_w = score_nodes("cosine", d, 20001)
    lse = lambda v: np.logaddexp.reduce(v)
    direct = np.exp(lse(log_w + 2 * alpha * s) - 2 * lse(log_w + alpha * s))
    np.testing.assert_allclose(annealed_sum_p2(alpha, 1.0, "cosine", d)[0, 0], direct, rtol=1e-7)


def test_cosine_tends_to_gaussian_in_high_dimension():
    a = np.array([0.5, 1.0, 2.0])
    err = [np.abs(annealed_sum_p2(a * np.sqrt(d), 1.0, "cosine", d)[:, 0] / np.exp(a**2) - 1)
           for d in (128, 4096)]
    assert np.all(err[1] < err[0] / 10) and np.all(err[1] < 0.02)


def test_cosine_scores_have_the_sphere_moments():
    d = 50
    s = cosine_scores(0, (200, 1000), d)
    assert np.all(np.abs(s) < 1)
    assert abs(s.mean()) < 0.002 and abs(s.var() * d - 1) < 0.02


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 10))
def test_refine_argmax_is_exact_for_a_parabola_in_log_x(peak):
    x = np.geomspace(0.01, 1000, 57)
    y = -(np.log(x) - np.log(peak)) ** 2
    assert abs(refine_argmax(x, y) / peak - 1) < 1e-9


def test_refine_argmax_refuses_an_edge_maximum():
    with pytest.raises(ValueError, match="edge"):
        refine_argmax([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("call,exc,name", [
    (lambda: expected_sum_p2(-1.0, [4]), ValueError, "alphas"),
    (lambda: expected_sum_p2(1.0, [2.5]), ValueError, "ns"),
    (lambda: expected_sum_p2(1.0, [4], "laplace"), ValueError, "density"),
    (lambda: expected_sum_p2(1.0, [4], "cosine"), TypeError, "d"),
    (lambda: expected_sum_p2(1.0, [4], "gaussian", 8), ValueError, "d"),
    (lambda: annealed_sum_p2([[1.0]], 4), ValueError, "alphas"),
    (lambda: annealed_sum_p2(1.0, 0.5), ValueError, "ns"),
    (lambda: cosine_scores(0, (2, 3), 2), ValueError, "d"),
    (lambda: cosine_scores(1.5, (2, 3), 8), TypeError, "seed"),
    (lambda: refine_argmax([1.0, 1.0, 2.0], [0, 1, 0]), ValueError, "x"),
    (lambda: expected_sum_p2(1.0, [4], u_points=3), ValueError, "u_points"),
    (lambda: expected_sum_p2(1.0, [4], s_points=50), ValueError, "s_points"),
    (lambda: expected_sum_p2(100.0, [4]), ValueError, "alphas"),
    (lambda: log_half_l1(np.zeros(4), 1.0), ValueError, "s"),
    (lambda: log_half_l1(np.zeros((2, 4)), -1.0), ValueError, "alphas"),
])
def test_bad_input_names_the_argument(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


def _tie_density(n, grid=np.linspace(-10, 10, 20001)):
    from scipy.stats import norm
    return np.trapezoid(n * (n - 1) * norm.pdf(grid) ** 2 * norm.cdf(grid) ** (n - 2), grid)


@pytest.mark.parametrize("alpha", [50.0, 300.0, 1000.0])
def test_large_alpha_reaches_the_tie_density_limit_or_raises(alpha):
    n = 16
    need = int(np.ceil(alpha * 20 / 0.75)) + 1
    if need > 801:
        with pytest.raises(ValueError, match="alphas"):
            expected_sum_p2(alpha, [n])
    v = alpha * (1 - expected_sum_p2(alpha, [n], s_points=max(need, 801))[0, 0])
    assert abs(v / _tie_density(n) - 1) < 1e-2


def test_gaussian_alpha_20_agrees_with_monte_carlo():
    n, rows, alpha = 64, 20000, 20.0
    s = jax.random.normal(jax.random.PRNGKey(5), (rows, n))
    v = np.asarray(softmax_stats(s, alpha).sum_p2)[0]
    exact = expected_sum_p2(alpha, [n])[0, 0]
    assert abs(v.mean() - exact) < 4 * v.std() / np.sqrt(rows)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.05, 8), st.integers(2, 40), st.integers(0, 2**31 - 1))
def test_log_half_l1_matches_the_direct_formula(alpha, n, seed):
    s = np.random.default_rng(seed).standard_normal((3, n))
    p = np.exp(alpha * (s - s.max(1, keepdims=True)))
    p /= p.sum(1, keepdims=True)
    # 1 − Σp² = Σ_i p_i Σ_{j≠i} p_j: sums of positive terms, no cancellation when one p_i is near 1
    # (1 − (p**2).sum() loses ~eps/(1 − Σp²) relative, e.g. 1e-7 at alpha = 6, n = 2, seed = 170)
    others = np.array([[np.delete(row, i).sum() for i in range(n)] for row in p])
    direct = np.log(alpha * (p * others).sum(1))
    np.testing.assert_allclose(log_half_l1(s, alpha)[0], direct, rtol=1e-9, atol=1e-9)


def test_log_half_l1_has_no_cancellation_at_large_alpha():
    s = np.array([[0.0, -1.0, -3.0]])
    a = 60.0                                      # 1 − Σp² ≈ 2e^{−60}, far below epsilon
    w = np.exp(-a * np.array([1.0, 3.0]))
    r, r2 = w.sum(), (w**2).sum()
    want = np.log(a * (2 * r + r * r - r2) / (1 + r) ** 2)
    assert abs(log_half_l1(s, a)[0, 0] - want) < 1e-12
    assert abs(want - (np.log(2 * a) - a)) < 1e-20 + 1e-9
