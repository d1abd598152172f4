import jax
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.concentration import (KINDS, decay_bound, decay_sparsity, gaussian_moments_quadrature,
                                 linear_attention_sparsity, sample_sparsity,
                                 softmax_finite_n_coefficients, softmax_sparsity_prefixes,
                                 sparsity_closed_form, sparsity_monte_carlo, sparsity_quadrature)

jax.config.update("jax_enable_x64", True)

betas = st.floats(-4, 4, allow_nan=False)
gammas = st.floats(0.1, 4, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(betas, gammas)
def test_closed_forms_match_quadrature(beta, gamma):
    assume(beta / gamma > -30)  # below t ≈ -37 the relu² moments underflow (documented nan)
    for kind in KINDS:
        cf = float(sparsity_closed_form(kind, beta, gamma))
        q = float(sparsity_quadrature(kind, beta, gamma))
        assert abs(cf - q) < 1e-11, kind


@settings(max_examples=40, deadline=None)
@given(betas, gammas, st.floats(0.01, 100))
def test_homogeneous_kinds_depend_on_the_ratio_only(beta, gamma, scale):
    assume(beta / gamma > -30)  # below t ≈ -37 the relu² moments underflow (documented nan)
    for kind in ("identity", "relu2"):
        a = float(sparsity_quadrature(kind, beta, gamma))
        b = float(sparsity_quadrature(kind, scale * beta, scale * gamma))
        assert abs(a - b) < 1e-12


@settings(max_examples=40, deadline=None)
@given(betas, gammas)
def test_floors_identity_and_relu2(beta, gamma):
    s_lin = float(sparsity_closed_form("identity", beta, gamma))
    assert np.sqrt(2 / np.pi) - 1e-12 <= s_lin <= 1
    assert abs(s_lin - float(sparsity_closed_form("identity", -beta, gamma))) < 1e-14
    s_r = float(sparsity_closed_form("relu2", beta, gamma))
    if beta >= 0:
        assert s_r >= 1 / np.sqrt(6) - 1e-12


def test_exp_closed_form_and_known_values():
    g = np.array([0.1, 1.0, 3.0])
    np.testing.assert_allclose(sparsity_closed_form("exp", 2.0, g), np.exp(-g**2 / 2), rtol=1e-14)
    np.testing.assert_allclose(sparsity_quadrature("exp", -1.0, g), np.exp(-g**2 / 2), rtol=1e-11)
    assert abs(float(sparsity_closed_form("identity", 0.0, 1.0)) - np.sqrt(2 / np.pi)) < 1e-15
    assert abs(float(sparsity_closed_form("relu2", 0.0, 2.0)) - 1 / np.sqrt(6)) < 1e-15


def test_quadrature_moments_of_the_identity():
    m1, m2 = gaussian_moments_quadrature("identity", np.array([0.0, 1.5]), 2.0)
    np.testing.assert_allclose(m2, [4.0, 6.25], rtol=1e-12)
    assert abs(float(m1[0]) - 2 * np.sqrt(2 / np.pi)) < 1e-12


def test_relu2_quadrature_reaches_deep_tails():
    s = np.asarray(sparsity_quadrature("relu2", np.array([-16.0, -30.0]), 1.0))
    assert np.all(np.isfinite(s)) and np.all(s > 0) and s[1] < s[0] < 1e-20


def test_monte_carlo_agrees_within_its_standard_error():
    t = np.array([-1.0, 0.0, 1.0])
    for k, kind in enumerate(KINDS):
        mc = sparsity_monte_carlo(jax.random.PRNGKey(k), kind, t, 0.5, 200_000)
        exact = np.asarray(sparsity_closed_form(kind, t, 0.5))
        z = (np.asarray(mc.estimate) - exact) / np.asarray(mc.stderr)
        assert np.all(np.abs(z) < 5), (kind, z)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.integers(2, 50),
              elements=st.one_of(st.just(0.0), st.floats(1e-6, 10), st.floats(-10, -1e-6))))
def test_sample_sparsity_is_the_l1_l2_ratio(a):
    if np.all(a == 0):
        return
    r = sample_sparsity(a)
    expected = np.mean(np.abs(a)) / np.sqrt(np.mean(a**2))
    assert abs(float(r.estimate) - expected) < 1e-12
    assert 1 / np.sqrt(a.size) - 1e-12 <= float(r.estimate) <= 1 + 1e-12
    assert float(r.stderr) >= 0


def test_sample_sparsity_stderr_matches_the_spread_of_estimates():
    a = np.exp(0.5 * np.asarray(jax.random.normal(jax.random.PRNGKey(3), (400, 2000))))
    r = sample_sparsity(a)
    ratio = float(np.std(r.estimate)) / float(np.mean(r.stderr))
    assert 0.85 < ratio < 1.15


def test_softmax_prefixes_shape_bounds_and_limit():
    lengths = (4, 64, 4096)
    s = np.asarray(softmax_sparsity_prefixes(jax.random.PRNGKey(0), 0.5, lengths, 128, chunk=32))
    assert s.shape == (128, 3)
    assert np.all(s >= 1 / np.sqrt(np.array(lengths)) - 1e-12) and np.all(s <= 1 + 1e-12)
    c, v = softmax_finite_n_coefficients(0.5)
    rel = s[:, -1] / np.exp(-0.125) - 1
    assert abs(np.sqrt(np.mean(rel**2)) * np.sqrt(4096) / np.sqrt(v) - 1) < 0.3


def _delta_method_numeric(gamma):
    """c and v from the lognormal moments E a^k = e^{k²γ²/2} and the first/second
    derivatives of A/√B, evaluated numerically (no closed form for c or v used)."""
    m = {k: np.exp(k**2 * gamma**2 / 2) for k in (1, 2, 3, 4)}
    cov = np.array([[m[2] - m[1]**2, m[3] - m[1] * m[2]],
                    [m[3] - m[1] * m[2], m[4] - m[2]**2]])
    a, b = m[1], m[2]
    s = a / np.sqrt(b)
    grad = np.array([1 / np.sqrt(b), -a / (2 * b**1.5)])
    hess = np.array([[0.0, -1 / (2 * b**1.5)],
                     [-1 / (2 * b**1.5), 3 * a / (4 * b**2.5)]])
    return 0.5 * np.sum(hess * cov) / s, grad @ cov @ grad / s**2


def test_finite_n_coefficients_vanish_at_zero_spread():
    c, v = softmax_finite_n_coefficients(np.array([1e-4, 1.0]))
    assert abs(c[0]) < 1e-7 and abs(v[0]) < 1e-7
    # the SymPy forms of the chapter, written out: c = 3e⁴/8 − e²/2 + 1/8, v = e⁴/4 − e² + e − 1/4
    e = np.e
    assert abs(c[1] - (3 * e**4 / 8 - e**2 / 2 + 1 / 8)) < 1e-12
    assert abs(v[1] - (e**4 / 4 - e**2 + e - 1 / 4)) < 1e-12


@pytest.mark.parametrize("gamma", [0.3, 0.5, 1.0, 1.7])
def test_finite_n_coefficients_match_a_numeric_delta_method(gamma):
    c, v = softmax_finite_n_coefficients(gamma)
    c_num, v_num = _delta_method_numeric(gamma)
    np.testing.assert_allclose([float(c), float(v)], [c_num, v_num], rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.floats(0.01, 5), st.floats(0.01, 3))
def test_linear_attention_iid_form(d, mu, sigma):
    rng = np.random.default_rng(d)
    q = rng.exponential(size=(5, d))
    s = linear_attention_sparsity(q, np.full(d, mu), sigma**2 * np.eye(d))
    ratio = np.linalg.norm(q, axis=-1) / q.sum(-1)
    np.testing.assert_allclose(s, 1 / np.sqrt(1 + (sigma / mu * ratio) ** 2), rtol=1e-12)
    assert np.all(ratio <= 1 + 1e-12) and np.all(ratio >= 1 / np.sqrt(d) - 1e-12)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.01, 0.999), st.integers(1, 5000))
def test_decay_formula_matches_direct_sums_and_bound(lam, n):
    a = lam ** np.arange(n)[::-1]
    direct = np.mean(a) / np.sqrt(np.mean(a**2))
    assert abs(float(decay_sparsity(lam, n)) / direct - 1) < 1e-12
    assert float(decay_bound(lam, n)) >= direct * (1 - 1e-14)


def test_decay_at_lambda_one_is_uniform():
    assert float(decay_sparsity(1.0, 10)) == 1.0
    assert np.isinf(decay_bound(1.0, 10))


@pytest.mark.parametrize("call, match", [
    (lambda: sparsity_closed_form("softmax", 0.0, 1.0), "kind"),
    (lambda: sparsity_closed_form("exp", 0.0, 0.0), "gamma"),
    (lambda: sparsity_closed_form("exp", np.nan, 1.0), "beta"),
    (lambda: sparsity_closed_form("exp", np.zeros(3), np.ones(2)), "beta"),
    (lambda: sparsity_quadrature("exp", 0.0, 1.0, nodes=1), "nodes"),
    (lambda: sparsity_monte_carlo(jax.random.PRNGKey(0), "exp", 0.0, 1.0, 1), "samples"),
    (lambda: sample_sparsity(np.zeros(5)), "zeros"),
    (lambda: sample_sparsity(np.ones(1)), "samples"),
    (lambda: softmax_sparsity_prefixes(jax.random.PRNGKey(0), 1.0, (8, 4), 64), "increasing"),
    (lambda: softmax_sparsity_prefixes(jax.random.PRNGKey(0), 1.0, (4, 8), 65), "multiple"),
    (lambda: softmax_sparsity_prefixes(jax.random.PRNGKey(0), -1.0, (4, 8), 64), "gamma"),
    (lambda: linear_attention_sparsity(-np.ones(2), np.ones(2), np.eye(2)), "non-negative"),
    (lambda: linear_attention_sparsity(np.ones(2), np.ones(3), np.eye(2)), "mu_tilde"),
    (lambda: linear_attention_sparsity(np.ones(2), np.ones(2), [[1, 0.5], [0, 1]]), "cov_tilde"),
    (lambda: linear_attention_sparsity(np.ones(2), np.ones(2), -0.5 * np.eye(2)),
     "positive semi-definite"),
    (lambda: softmax_sparsity_prefixes(jax.random.PRNGKey(0), np.array([0.5, 1.0]), (4, 8), 64),
     "gamma must be a scalar"),
    (lambda: decay_sparsity(1.5, 10), "lam"),
    (lambda: decay_sparsity(0.5, 0), "n"),
    (lambda: decay_sparsity(0.5, 2.5), "n"),
])
def test_bad_input_is_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, match", [
    (lambda: sparsity_closed_form("exp", "a", 1.0), "beta"),
    (lambda: sparsity_closed_form("exp", 0.0, 1j), "gamma"),
    (lambda: softmax_sparsity_prefixes(jax.random.PRNGKey(0), 1.0, 8, 64), "lengths"),
    (lambda: softmax_sparsity_prefixes(jax.random.PRNGKey(0), 1.0, (4, 8), 64.0), "replicates"),
    (lambda: sparsity_quadrature("exp", 0.0, 1.0, nodes=2.5), "nodes"),
    (lambda: sample_sparsity(["a", "b"]), "a"),
])
def test_bad_types_are_type_errors_naming_the_argument(call, match):
    with pytest.raises(TypeError, match=match):
        call()
