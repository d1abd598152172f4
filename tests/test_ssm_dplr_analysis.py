"""sulib.ssm.dplr_analysis: exact LegS eigenvectors, the post's sums S_n, the conditioning of the
eigenvector matrix, and the bilinear step of a DPLR system from two rank-one-corrected factors."""

import math
from fractions import Fraction

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.ssm import discretize, hippo, kernel_powers, legs_dplr
from sulib.ssm.dplr_analysis import (dplr_bilinear, legs_eigvec_cond, legs_eigvec_sums,
                                     legs_eigenvectors, legs_kernel_exact)

jax.config.update("jax_enable_x64", True)


def integer_legs(N):
    """D⁻¹ A D for HiPPO-LegS, D = diag(√(2i+1)): -(2k+1) below the diagonal (column k), -(i+1) on it."""
    M = np.zeros((N, N), dtype=object)
    for i in range(N):
        for k in range(i):
            M[i, k] = -(2 * k + 1)
        M[i, i] = -(i + 1)
    return M


@pytest.mark.parametrize("N", [1, 2, 5, 17, 40])
def test_eigenvectors_are_exact_in_integer_arithmetic(N):
    W = legs_eigenvectors(N)
    M = integer_legs(N)
    lam = np.diag(np.array([-(j + 1) for j in range(N)], dtype=object))
    assert (M.dot(W) == W.dot(lam)).all()
    assert all(W[i, i] == 1 for i in range(N)) and all(W[i, j] == 0 for i in range(N) for j in range(i + 1, N))


def test_integer_legs_is_the_similar_matrix_of_hippo_legs():
    N = 9
    A, _ = hippo("legs", N)
    D = np.diag(np.sqrt(2 * np.arange(N) + 1.0))
    assert np.allclose(np.linalg.solve(D, A @ D), integer_legs(N).astype(float), atol=1e-12)


def test_eigenvectors_diagonalize_hippo_legs_in_float():
    N = 8
    A, _ = hippo("legs", N)
    V = np.sqrt(2 * np.arange(N) + 1.0)[:, None] * legs_eigenvectors(N).astype(float)
    assert np.abs(A @ V - V * -np.arange(1, N + 1.0)).max() < 1e-12 * np.abs(V).max()


def post_closed_form(d, n, lam):
    """The post's S_n = (-1)^(d-n-1) (d-λ)! (n+λ)! / ((d+λ-1)! (n-λ+1)!), 0 where (n-λ+1) < 0."""
    if n - lam + 1 < 0:
        return Fraction(0)
    return Fraction((-1) ** (d - n - 1) * math.factorial(d - lam) * math.factorial(n + lam),
                    math.factorial(d + lam - 1) * math.factorial(n - lam + 1))


@pytest.mark.parametrize("d", [1, 2, 3, 7, 12])
def test_sums_match_the_post_closed_form_and_recursion(d):
    for lam in range(1, d + 1):
        S = legs_eigvec_sums(d, lam)
        assert S[-1] == 1
        assert S == [post_closed_form(d, n, lam) for n in range(d)]
        for n in range(1, d):  # S_{n-1} = (λ - n - 1)/(λ + n) S_n
            assert S[n - 1] == Fraction(lam - n - 1, lam + n) * S[n]


def test_sums_are_those_of_a_float_eigenvector():
    d, lam = 10, 4
    A, _ = hippo("legs", d)
    w, vecs = np.linalg.eig(-A)
    v = vecs[:, np.argmin(np.abs(w - lam))].real
    S = np.cumsum(np.sqrt(2 * np.arange(d) + 1.0) * v)
    assert np.allclose(S / S[-1], [float(s) for s in legs_eigvec_sums(d, lam)], atol=1e-9)


def test_condition_number_matches_numpy_where_float64_suffices():
    N = 8
    V = np.sqrt(2 * np.arange(N) + 1.0)[:, None] * legs_eigenvectors(N).astype(float)
    V /= np.linalg.norm(V, axis=0)
    assert legs_eigvec_cond(N) == pytest.approx(np.linalg.cond(V), rel=1e-8)
    assert legs_eigvec_cond(N, norm="fro") == pytest.approx(np.linalg.cond(V, "fro"), rel=1e-8)


@pytest.mark.parametrize("N", [1, 4, 16, 24])
def test_frobenius_and_spectral_condition_numbers_bracket_each_other(N):
    k2, kf = legs_eigvec_cond(N), legs_eigvec_cond(N, norm="fro")
    assert k2 <= kf * (1 + 1e-12) and kf <= N * k2 * (1 + 1e-12)


def test_condition_number_values_of_the_hippo_loose_ends_chapter():
    # hippo_loose_ends.ipynb computes these by forward substitution in 80-digit mpmath
    for N, expected in [(8, 7.7e4), (16, 8.3e10), (32, 1.2e23)]:
        assert legs_eigvec_cond(N) == pytest.approx(expected, rel=0.05)  # printed to 2 digits


def random_dplr(rng, n):
    c = lambda: rng.standard_normal(n) + 1j * rng.standard_normal(n)
    lam = -rng.uniform(0.1, 2.0, n) + 1j * rng.uniform(-5, 5, n)
    return lam, c(), c(), c()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), step=st.floats(1e-3, 1.0))
def test_two_factor_form_equals_the_dense_bilinear_rule(seed, n, step):
    lam, P, Q, B = random_dplr(np.random.default_rng(seed), n)
    Abar, Bbar = dplr_bilinear(lam, P, Q, B, step)
    A = np.diag(lam) - np.outer(P, Q.conj())
    A_ref, B_ref = discretize(A, B, step, "bilinear")
    scale = np.linalg.cond(np.eye(n) - step / 2 * A)
    assert np.abs(np.asarray(Abar) - np.asarray(A_ref)).max() < 1e-12 * scale * max(1, np.abs(A_ref).max())
    assert np.abs(np.asarray(Bbar) - np.asarray(B_ref)).max() < 1e-12 * scale * max(1, np.abs(B_ref).max())


def test_two_factor_form_of_legs_dplr():
    Lam, P, B, V = legs_dplr(32)
    A, B_legs = hippo("legs", 32)
    Abar, Bbar = dplr_bilinear(Lam, P, P, B, 0.05)
    A_ref, B_ref = discretize(A, B_legs, 0.05, "bilinear")
    assert np.abs(V @ np.asarray(Abar) @ V.conj().T - np.asarray(A_ref)).max() < 1e-12
    assert np.abs(V @ np.asarray(Bbar) - np.asarray(B_ref)).max() < 1e-12


@pytest.mark.parametrize("call, match", [
    (lambda: legs_eigenvectors(0), "N"),
    (lambda: legs_eigenvectors(2.5), "N"),
    (lambda: legs_eigvec_sums(4, 0), "lam"),
    (lambda: legs_eigvec_sums(4, 5), "lam"),
    (lambda: legs_eigvec_sums(0, 1), "d"),
    (lambda: legs_eigvec_cond(8, norm="inf"), "norm"),
    (lambda: legs_eigvec_cond(401), "N"),
    (lambda: dplr_bilinear(np.ones((2, 2)), np.ones(2), np.ones(2), np.ones(2), 0.1), "Lambda"),
    (lambda: dplr_bilinear(-np.ones(2), np.ones(3), np.ones(2), np.ones(2), 0.1), "P"),
    (lambda: dplr_bilinear(-np.ones(2), np.ones(2), np.ones(2), np.ones(2), -0.1), "step"),
    (lambda: dplr_bilinear(np.array([20.0, -1.0]), np.ones(2), np.ones(2), np.ones(2), 0.1), "step"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("N, step", [(1, 0.3), (6, 0.1), (24, 0.02)])
def test_exact_kernel_matches_powers_where_float64_is_accurate(N, step):
    A, B = hippo("legs", N)
    C = np.random.default_rng(N).standard_normal(N) + 0.5j
    Abar, Bbar = discretize(A, B, step, "bilinear")
    K = np.asarray(kernel_powers(Abar, Bbar, C, 300))
    assert np.abs(legs_kernel_exact(C, step, 300) - K).max() < 1e-12 * np.abs(K).max()


def test_exact_kernel_has_the_closed_form_for_one_state():
    # N = 1: A = -1, B = 1, Abar = (1 - h/2)/(1 + h/2), Bbar = h/(1 + h/2)
    h = 0.25
    K = legs_kernel_exact(np.array([2.0]), h, 5)
    expected = 2 * h / (1 + h / 2) * ((1 - h / 2) / (1 + h / 2)) ** np.arange(5)
    assert np.allclose(K, expected, rtol=1e-15, atol=0)


def test_exact_kernel_bad_input():
    with pytest.raises(ValueError, match="C"):
        legs_kernel_exact(np.ones((2, 2)), 0.1, 4)
    with pytest.raises(ValueError, match="dps"):
        legs_kernel_exact(np.ones(2), 0.1, 4, dps=5)
    with pytest.raises(ValueError, match="step"):
        legs_kernel_exact(np.ones(2), 0.0, 4)
