"""Tests of sulib.sparsemax: simplex, projection, thresholds, JVPs, losses, Perturb Max.

The reference outputs in tests/data/entmax_reference.npz come from deep-spin/entmax (PyTorch) at
commit c2bec6d5e7d649cba7766c2172d89123ec2a6d70, made by tests/data/make_entmax_reference.py (its
docstring has the command); sha256 below.
"""

import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sulib.sparsemax as sm
from sulib.sparsemax import (entmax15, entmax15_threshold, entmax_bisection, perturbmax,
                             sparsemax, sparsemax_loss, sparsemax_threshold)

jax.config.update("jax_enable_x64", True)

REFERENCE = Path(__file__).parent / "data" / "entmax_reference.npz"
REFERENCE_SHA256 = "2e219a9fe62dda49c0310783a99ba045e2e9c04d900c88a0e891ce0cb0761f1e"

values = st.floats(-20, 20, allow_nan=False, allow_infinity=False)
rows = st.integers(1, 12).flatmap(lambda n: arrays(np.float64, (3, n), elements=values))
# integers: many exact ties
tied = st.integers(1, 10).flatmap(
    lambda n: arrays(np.float64, (2, n), elements=st.integers(-4, 4).map(float)))


# wide ranges and many entries: longer support iterations
wide = st.integers(1, 60).flatmap(
    lambda n: arrays(np.float64, (2, n), elements=st.floats(-1e3, 1e3)))


def _numpy_sparsemax(x):
    """Sparsemax of a 1-d x, written out: the largest k with z_k > (Σ_{i≤k} z_i - 1)/k."""
    z = np.sort(x)[::-1]
    k = np.arange(1, x.size + 1)
    lam = (np.cumsum(z) - 1) / k
    kk = k[z > lam].max()
    return np.maximum(x - lam[kk - 1], 0)


@settings(max_examples=60, deadline=None)
@given(st.one_of(rows, tied))
def test_outputs_lie_on_the_simplex(x):
    for f in (sparsemax, entmax15):
        p = np.asarray(f(x))
        assert p.shape == x.shape and np.all(p >= 0)
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.one_of(rows, tied))
def test_sparsemax_is_an_idempotent_projection(x):
    p = np.asarray(sparsemax(x))
    np.testing.assert_allclose(sparsemax(p), p, atol=1e-12)
    # projection: <x - p, q - p> <= 0 for every vertex q of the simplex
    inner = np.einsum("bi,bi->b", x - p, -p)[:, None] + (x - p)
    assert np.all(inner <= 1e-9)
    np.testing.assert_allclose(p, np.stack([_numpy_sparsemax(r) for r in x]), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.one_of(rows, tied))
def test_sort_based_maps_match_bisection(x):
    np.testing.assert_allclose(sparsemax(x), entmax_bisection(x, 2.0)[0], atol=1e-12)
    np.testing.assert_allclose(entmax15(x), entmax_bisection(x, 1.5)[0], atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(st.one_of(rows, tied))
def test_thresholds_solve_their_equations(x):
    tau, k = sparsemax_threshold(x)
    np.testing.assert_allclose(np.maximum(x - tau[:, None], 0).sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(k, (x > tau[:, None]).sum(-1) + 0 * k)
    tau, k = entmax15_threshold(x)
    np.testing.assert_allclose((np.maximum(x / 2 - tau[:, None], 0) ** 2).sum(-1), 1.0,
                               atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9).flatmap(lambda n: arrays(np.float64, (n,), elements=values)),
       st.integers(0, 2**31 - 1))
def test_jvps_match_finite_differences(x, seed):
    v = np.random.default_rng(seed).standard_normal(x.shape)
    h = 1e-6
    for f in (sparsemax, entmax15):
        p_plus, p_minus = np.asarray(f(x + h * v)), np.asarray(f(x - h * v))
        _, jvp = jax.jvp(lambda y: f(y), (jnp.asarray(x),), (jnp.asarray(v),))
        fd = (p_plus - p_minus) / (2 * h)
        # a support change inside [x - hv, x + hv] makes the central difference one-sided
        if np.array_equal(p_plus > 0, p_minus > 0) and np.array_equal(p_plus > 0, f(x) > 0):
            np.testing.assert_allclose(jvp, fd, atol=1e-6)


def test_jvp_is_not_the_softmax_jacobian():
    x = np.array([1.0, 0.5, -2.0])
    jac = np.asarray(jax.jacfwd(sparsemax)(x))
    expected = np.array([[0.5, -0.5, 0], [-0.5, 0.5, 0], [0, 0, 0]])
    np.testing.assert_allclose(jac, expected, atol=1e-15)


def test_reference_outputs_and_vjps():
    assert hashlib.sha256(REFERENCE.read_bytes()).hexdigest() == REFERENCE_SHA256
    ref = np.load(REFERENCE)
    names = sorted({k.split("/")[0] for k in ref.files if "/" in k})
    assert len(names) == 6
    for name in names:
        x, v = ref[f"{name}/x"], ref[f"{name}/v"]
        for label, f in (("sparsemax", sparsemax), ("entmax15", entmax15)):
            p, vjp = jax.vjp(f, jnp.asarray(x))
            np.testing.assert_allclose(p, ref[f"{name}/{label}"], atol=1e-14)
            np.testing.assert_allclose(vjp(jnp.asarray(v))[0], ref[f"{name}/{label}_vjp"],
                                       atol=1e-14)


def test_two_point_case_the_posts_strict_test_misses():
    np.testing.assert_array_equal(entmax15(np.array([2.0, 0.0])), [1.0, 0.0])
    # z = x/2 = (1, 0): λ_1 = λ_2 = 0, so z_1 > λ_1 = z_2 and z_2 = λ_2: both k solve it,
    # the strict test z_k > λ_k > z_{k+1} neither
    # the threshold is 0 = z_2, so the support {p > 0} has one entry
    for method in sm.METHODS:
        tau, k = entmax15_threshold(np.array([2.0, 0.0]), method=method)
        assert float(tau) == 0.0 and int(k) == 1


@settings(max_examples=60, deadline=None)
@given(st.one_of(rows, tied).filter(lambda a: a.shape[-1] >= 2), st.integers(0, 100))
def test_sparsemax_loss_gradient_and_sign(x, t):
    """Rows with integer ties included: there an entry can sit exactly at τ."""
    target = np.full(x.shape[0], t % x.shape[-1])
    loss = np.asarray(sparsemax_loss(x, target))
    assert np.all(loss >= -1e-12)
    p = np.asarray(sparsemax(x))
    # Fenchel-Young form: x·p - ½|p|² + ½ - x_t
    fy = (x * p).sum(-1) - 0.5 * (p * p).sum(-1) + 0.5 - x[np.arange(len(x)), target]
    np.testing.assert_allclose(loss, fy, atol=1e-9 * (1 + np.abs(x).max() ** 2))
    grad = jax.grad(lambda y: sparsemax_loss(y, target).sum())(jnp.asarray(x))
    np.testing.assert_allclose(grad, p - np.eye(x.shape[-1])[target], atol=1e-12)


def test_perturbmax_gumbel_is_softmax_and_gaussian_is_ordered():
    x = np.array([1.0, -0.5, 0.3, 2.0])
    np.testing.assert_allclose(perturbmax(x, "gumbel", nodes=16384), jax.nn.softmax(x),
                               atol=1e-7)
    p = np.asarray(perturbmax(x, "gaussian", nodes=16384))
    assert abs(p.sum() - 1) < 1e-5
    np.testing.assert_array_equal(np.argsort(p), np.argsort(x))
    np.testing.assert_allclose(perturbmax(x + 3.0, "gaussian"), perturbmax(x, "gaussian"),
                               atol=1e-12)


@pytest.mark.parametrize("bad, error", [
    ([[np.nan, 1.0]], ValueError), ([["a"]], TypeError), (np.zeros((2, 0)), ValueError),
    (1.0, ValueError), ([1 + 1j], TypeError), ([True, False], TypeError)])
def test_bad_x_is_refused(bad, error):
    for f in (sparsemax, entmax15, sparsemax_threshold, entmax15_threshold, perturbmax):
        with pytest.raises(error, match="x"):
            f(bad)


def test_bad_other_arguments_are_refused():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="alpha"):
        entmax_bisection(x, 1.0)
    with pytest.raises(TypeError, match="iterations"):
        entmax_bisection(x, 1.5, iterations=2.5)
    with pytest.raises(TypeError, match="target"):
        sparsemax_loss(x, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="target"):
        sparsemax_loss(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="target"):
        sparsemax_loss(x, np.array([0]))
    with pytest.raises(ValueError, match="noise"):
        perturbmax(x, "laplace")
    with pytest.raises(ValueError, match="nodes"):
        perturbmax(x, nodes=1)


@settings(max_examples=80, deadline=None)
@given(st.one_of(rows, tied, wide))
def test_support_iteration_matches_the_sort(x):
    """The default sort-free threshold equals the sorted-cumsum definition, ties included."""
    scale = 1 + np.abs(x).max()
    for f, thr in ((sparsemax, sparsemax_threshold), (entmax15, entmax15_threshold)):
        np.testing.assert_allclose(f(x), f(x, method="sort"), atol=1e-12)
        (tau, k), (tau_s, k_s) = thr(x), thr(x, method="sort")
        np.testing.assert_allclose(tau, tau_s, rtol=0, atol=1e-12 * scale)
        np.testing.assert_array_equal(k, k_s)
    grad = jax.grad(lambda y: (entmax15(y) ** 2).sum())(jnp.asarray(x))
    grad_s = jax.grad(lambda y: (entmax15(y, method="sort") ** 2).sum())(jnp.asarray(x))
    np.testing.assert_allclose(grad, grad_s, atol=1e-12)


def test_support_iteration_falls_back_to_the_sort(monkeypatch):
    x = jnp.asarray(np.linspace(0.0, -0.9, 40) ** 3)      # needs several steps
    _, _, done = sm._support_iteration(x, lambda on, k: sm._sparsemax_update(x, on, k))
    assert bool(done)
    monkeypatch.setattr(sm, "SUPPORT_STEPS", 1)
    tau, _, done = sm._support_iteration(x, lambda on, k: sm._sparsemax_update(x, on, k))
    assert not bool(done) and float(sm._sparsemax_tau_sort(x)[0][0] - tau[0]) > 1e-3
    for exact, fallback in ((sm._sparsemax_tau_sort, sm._sparsemax_tau_support),
                            (sm._entmax15_tau_sort, sm._entmax15_tau_support)):
        np.testing.assert_allclose(fallback(x)[0], exact(x)[0], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(fallback(x)[1], exact(x)[1])


def test_eager_maps_fall_back_to_the_sort(monkeypatch):
    """Concrete input: a non-converged support iteration hands over to the sort."""
    monkeypatch.setattr(sm, "SUPPORT_STEPS", 1)
    x = np.linspace(0.0, -0.9, 37) ** 3                   # a shape no other test uses
    for name, f in (("sparsemax", sparsemax), ("entmax15", entmax15)):
        assert not bool(sm._PLAIN[name](jnp.asarray(x))[1])
        np.testing.assert_allclose(f(x), f(x, method="sort"), rtol=0, atol=1e-15)
        np.testing.assert_allclose(f(x), jax.jit(f)(x), rtol=0, atol=1e-15)


def test_float32_stays_float32():
    x = np.random.default_rng(0).standard_normal((4, 300)).astype(np.float32)
    for f in (sparsemax, entmax15):
        p = f(x)
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, f(x.astype(np.float64)), atol=1e-5)
    assert sparsemax(np.array([[2, 0]])).dtype == jnp.result_type(float)
    with pytest.raises(ValueError, match="method"):
        sparsemax(x, method="bisect")
