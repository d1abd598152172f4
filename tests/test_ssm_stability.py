"""sulib.ssm.stability: the Schur–Cohn test against roots, the step-up parametrization, and the
exact transfer function of the bilinear HiPPO-LegS system against an independent exact route."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.ssm import discretize, hippo, kernel_powers, transfer_function
from sulib.ssm.stability import (
    legs_transfer_exact,
    reflection_coefficients,
    reflection_coefficients_exact,
    schur_cohn_stable,
    step_up,
)


def max_root(a):
    """Largest |zero| of λ^d + a_1 λ^{d-1} + … + a_d, from the companion matrix (batched)."""
    a = np.atleast_2d(a)
    d = a.shape[-1]
    F = np.zeros(a.shape[:-1] + (d, d))
    F[..., np.arange(1, d), np.arange(d - 1)] = 1
    F[..., 0, :] = -a
    return np.abs(np.linalg.eigvals(F)).max(-1)


# ----------------------------------------------------------------- the test against roots


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_float_test_agrees_with_roots_away_from_the_boundary(d):
    rng = np.random.default_rng(d)
    # half from the stable set (step-up of reflection coefficients in (-1.05, 1.05)), half at random
    near = np.asarray(step_up(rng.uniform(-1.05, 1.05, (1500, d))))
    a = np.concatenate([near, rng.uniform(-1.5, 1.5, (1500, d)) * np.sqrt(np.arange(1, d + 1))])
    rho = max_root(a)
    clear = np.abs(rho - 1) > 1e-6
    stable = schur_cohn_stable(a)
    assert stable.shape == (3000,) and stable.dtype == bool
    np.testing.assert_array_equal(stable[clear], rho[clear] < 1)
    assert 0.05 < stable.mean() < 0.95  # both verdicts occur


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fractions(min_value=-3, max_value=3, max_denominator=50), min_size=1, max_size=6))
def test_exact_test_agrees_with_roots(a):
    rho = max_root(np.array([float(x) for x in a]))[0]
    verdict = schur_cohn_stable(a)  # Fractions: the exact path
    assert isinstance(verdict, bool)
    if abs(rho - 1) > 1e-7:
        assert verdict == (rho < 1)


@settings(max_examples=80, deadline=None)
@given(st.fractions(min_value=-3, max_value=3, max_denominator=40),
       st.fractions(min_value=-3, max_value=3, max_denominator=40))
def test_degree_two_is_the_stability_triangle(a1, a2):
    # λ² + a1 λ + a2 is Schur stable iff |a2| < 1 and |a1| < 1 + a2 (Jury's conditions for d = 2)
    assert schur_cohn_stable([a1, a2]) == (abs(a2) < 1 and abs(a1) < 1 + a2)


def test_exact_path_decides_what_rounding_cannot():
    eps = Fraction(1, 2**60)
    inside = [-(1 - eps)]  # λ - (1 - 2⁻⁶⁰): a zero just inside the circle
    assert schur_cohn_stable(inside) is True
    assert schur_cohn_stable([float(inside[0])]) is False  # the double rounds the zero onto it
    assert schur_cohn_stable([Fraction(-1)]) is False  # zero on the circle: not stable
    assert schur_cohn_stable([sp.Rational(-9, 5), sp.Rational(81, 100)]) is True  # (λ - 9/10)²
    assert schur_cohn_stable([0, -1]) is False  # λ² - 1
    assert schur_cohn_stable(np.array([0, 0, 0])) is True  # int array: exact path, zeros at 0
    batch = schur_cohn_stable(np.array([[0, 0], [0, -1]]))  # a batch of ints: the float path
    np.testing.assert_array_equal(batch, [True, False])


def test_exact_reflection_coefficients_stop_at_the_first_unit_one():
    assert reflection_coefficients_exact([Fraction(1, 2), 2]) == [Fraction(2)]
    ks = reflection_coefficients_exact([Fraction(-9, 5), Fraction(81, 100)])
    assert ks == [Fraction(-180, 181), Fraction(81, 100)]
    np.testing.assert_allclose(np.asarray(reflection_coefficients([-1.8, 0.81])), [float(k) for k in ks])


def test_float_reflection_coefficients_are_nan_after_a_failure():
    k = np.asarray(reflection_coefficients([[0.5, 2.0], [0.1, 0.2]]))
    assert np.isnan(k[0]).all()
    np.testing.assert_allclose(k[1], [0.1 / 1.2, 0.2])


# ------------------------------------------------------------------------------ step-up


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_step_up_inverts_the_step_down_and_lands_in_the_stable_set(d, seed):
    k = np.random.default_rng(seed).uniform(-0.95, 0.95, (4, d))
    a = np.asarray(step_up(k))
    np.testing.assert_allclose(np.asarray(reflection_coefficients(a)), k, atol=1e-10)
    assert (max_root(a) < 1).all() and schur_cohn_stable(a).all()


def test_step_up_of_a_double_root():
    # (λ - 0.9)² = λ² - 1.8 λ + 0.81: k_2 = 0.81, k_1 = -1.8/1.81
    np.testing.assert_allclose(np.asarray(step_up([-1.8 / 1.81, 0.81])), [-1.8, 0.81], atol=1e-15)


def test_step_up_is_differentiable_and_its_jacobian_determinant_factorizes():
    k = jnp.array([0.3, -0.2, 0.5])
    J = np.asarray(jax.jacfwd(step_up)(k))
    # det = (1 + k2)(1 - k3²) for d = 3 (SymPy, in the chapter)
    np.testing.assert_allclose(np.linalg.det(J), (1 - 0.2) * (1 - 0.25), rtol=1e-12)
    g = np.asarray(jax.grad(lambda k: step_up(k).sum())(k))
    eps = 1e-6
    fd = [(np.asarray(step_up(k + eps * e)).sum() - np.asarray(step_up(k - eps * e)).sum()) / (2 * eps)
          for e in np.eye(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-7)


# ------------------------------------------------------------- exact LegS transfer function


def markov_route(N, dt):
    """(b, a) from the exact Markov parameters K_j = C^* Abar^j Bbar, j < N (an independent route)."""
    h = Fraction(dt) / 2
    a = [Fraction(1)]
    for n in range(N):
        mu = (1 - h * (n + 1)) / (1 + h * (n + 1))
        a = [x - mu * y for x, y in zip(a + [Fraction(0)], [Fraction(0)] + a)]
    At = sp.Matrix(N, N, lambda n, k: -(2 * k + 1) if k < n else (-(n + 1) if k == n else 0))
    hh = sp.Rational(h.numerator, h.denominator)
    M = sp.eye(N) - hh * At
    Abar = M.LUsolve(sp.eye(N) + hh * At)
    x = M.LUsolve(2 * hh * sp.ones(N, 1))
    out = sp.Matrix([[2 * n + 1 for n in range(N)]])
    K = []
    for _ in range(N):
        K.append((out * x)[0])
        x = Abar * x
    K = [Fraction(int(k.p), int(k.q)) for k in K]
    b = [sum(a[i] * K[j - 1 - i] for i in range(j)) for j in range(1, N + 1)]
    return b, a[1:]


@pytest.mark.parametrize("N, dt", [(1, 0.5), (3, 1 / 16), (6, 0.1), (7, 2.5)])
def test_legs_transfer_exact_matches_the_markov_route(N, dt):
    assert legs_transfer_exact(N, dt) == markov_route(N, dt)


def test_legs_transfer_exact_matches_the_float_system():
    N, dt = 8, 1 / 16
    A, B = hippo("legs", N)
    Abar, Bbar = discretize(A, B, dt, "bilinear")
    b, a = legs_transfer_exact(N, dt)
    bf, af = transfer_function(np.asarray(Abar), np.asarray(Bbar), B)
    np.testing.assert_allclose(np.array(a, float), af, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.array(b, float), bf, rtol=1e-10, atol=1e-12)
    # with c: C_n = c_n √(2n+1)
    c = [Fraction(n % 3 - 1, 2) for n in range(N)]
    C = np.array([float(x) for x in c]) * np.sqrt(2 * np.arange(N) + 1)
    b, _ = legs_transfer_exact(N, Fraction(1, 16), c)
    bf, _ = transfer_function(np.asarray(Abar), np.asarray(Bbar), C)
    np.testing.assert_allclose(np.array(b, float), bf, rtol=1e-10, atol=1e-12)
    # the power series of b/a is the kernel
    K = np.asarray(kernel_powers(Abar, Bbar, C, 2 * N))
    series = np.zeros(2 * N)
    af, bfl = np.array(a, float), np.array(b, float)
    for j in range(2 * N):
        series[j] = (bfl[j] if j < N else 0.0) - sum(af[i - 1] * series[j - i] for i in range(1, min(j, N) + 1))
    np.testing.assert_allclose(series, K, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="a"):
        reflection_coefficients(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="a"):
        schur_cohn_stable([0.5, np.nan])
    with pytest.raises(TypeError, match="a"):
        reflection_coefficients([0.5 + 1j])
    with pytest.raises(TypeError, match="a"):
        reflection_coefficients_exact(["x"])
    with pytest.raises(ValueError, match="a"):
        reflection_coefficients_exact([])
    with pytest.raises(ValueError, match="a"):
        reflection_coefficients_exact([float("inf")])
    with pytest.raises(ValueError, match="k"):
        step_up(jnp.zeros((2, 0)))
    with pytest.raises(TypeError, match="k"):
        step_up(jnp.zeros(3, int))
    with pytest.raises(ValueError, match="N"):
        legs_transfer_exact(0, 0.1)
    with pytest.raises(ValueError, match="dt"):
        legs_transfer_exact(3, -0.1)
    with pytest.raises(ValueError, match="dt"):
        legs_transfer_exact(3, Fraction(0))
    with pytest.raises(ValueError, match="c"):
        legs_transfer_exact(3, 0.1, [1, 2])
