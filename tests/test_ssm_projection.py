"""Bases, projection and reconstruction of sulib.ssm.projection."""

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.special as ssp

from sulib.ssm import (
    hippo,
    hippo_basis,
    legendre_basis,
    project,
    project_steps,
    reconstruct,
)
from ssm_helpers import gauss, shifted_legendre

# ----------------------------------------------------------------- bases, projection, reconstruction


def test_bases_are_orthonormal_in_their_conventions():
    r, w = gauss(40)
    N = 9
    phi = np.asarray(legendre_basis(N, r))
    np.testing.assert_allclose(phi, shifted_legendre(N, r), atol=1e-12)
    np.testing.assert_allclose(phi.T @ (w[:, None] * phi), np.eye(N), atol=1e-13)
    g = np.asarray(hippo_basis("legt", N, r, normalization="post"))  # orthonormal on s = 2r - 1 in [-1, 1]
    np.testing.assert_allclose(g.T @ (2 * w[:, None] * g), np.eye(N), atol=1e-13)
    p = np.asarray(hippo_basis("lmu", N, r))  # P_n(1 - 2r): Legendre in the delay
    np.testing.assert_allclose(p, ssp.eval_legendre(np.arange(N)[None, :], 1 - 2 * r[:, None]), atol=1e-12)
    e = np.asarray(hippo_basis("fourier_legt", 3, r))
    np.testing.assert_allclose(e.conj().T @ (w[:, None] * e), np.eye(7), atol=1e-13)


@pytest.mark.parametrize("kind, normalization", [("legs", "hippo"), ("legs", "post"), ("lmu", "hippo"),
                                                 ("fourier_legs", "hippo")])
def test_project_steps_is_the_exact_projection_of_the_held_signal(kind, normalization):
    rng = np.random.default_rng(5)
    u, N = rng.normal(size=7), 6
    nodes, weights = zip(*(gauss(16, j / 7, (j + 1) / 7) for j in range(7)))
    r, w = np.concatenate(nodes), np.concatenate(weights)
    held = u[np.minimum((r * 7).astype(int), 6)]
    basis = np.asarray(hippo_basis(kind, N, r, normalization=normalization))
    norms = np.real(np.sum(w[:, None] * basis * basis.conj(), axis=0))  # 1, 1/2 or 1/(2n+1)
    expected = (held * w) @ basis.conj() / norms
    np.testing.assert_allclose(project_steps(kind, N, u, normalization=normalization), expected, atol=1e-13)


def test_offline_projection_of_a_polynomial_is_exact():
    rng = np.random.default_rng(6)
    N, t = 6, 2.5
    coef = rng.normal(size=N)  # degree N - 1
    times = np.sort(rng.uniform(0, t, size=25))
    x = np.asarray(project("legs", N, np.polyval(coef, times), times, t=t))
    r, w = gauss(20)
    quadrature = (np.polyval(coef, r * t) * w) @ shifted_legendre(N, r)  # ∫_0^1 u(rt) φ_n(r) dr
    np.testing.assert_allclose(x, quadrature, atol=1e-12)
    grid = np.linspace(0, t, 11)
    np.testing.assert_allclose(reconstruct("legs", x, grid, t=t), np.polyval(coef, grid), atol=1e-11)
    # a polynomial of degree N is not reproduced
    y = project("legs", N, times**N, times, t=t)
    assert np.abs(np.asarray(reconstruct("legs", y, grid, t=t)) - grid**N).max() > 1e-3


def test_offline_fourier_projection_of_a_trigonometric_polynomial_is_exact():
    rng = np.random.default_rng(7)
    M, t, theta = 3, 4.0, 1.5
    c = rng.normal(size=2 * M + 1) + 1j * rng.normal(size=2 * M + 1)
    times = np.linspace(t - theta, t, 30)
    r = (times - (t - theta)) / theta
    samples = np.exp(2j * np.pi * np.outer(r, np.arange(-M, M + 1))) @ c
    x = project("fourier_legt", M, samples.real, times, t=t, theta=theta) + \
        1j * np.asarray(project("fourier_legt", M, samples.imag, times, t=t, theta=theta))
    np.testing.assert_allclose(x, c, atol=1e-12)


@pytest.mark.parametrize("kind, normalization", [("legt", "hippo"), ("legt", "post"), ("lmu", "hippo")])
def test_legt_state_of_a_polynomial_reconstructs_its_window(kind, normalization):
    """The continuous LegT system keeps the exact projection of a polynomial of degree < N."""
    rng = np.random.default_rng(8)
    N, theta, t1 = 6, 0.8, 1.7
    coef = rng.normal(size=N)  # u(t) = polyval(coef, t), degree N - 1
    A, B = hippo(kind, N, theta=theta, normalization=normalization)
    times0 = np.linspace(-theta, 0.0, 40)
    x0 = np.asarray(project(kind, N, np.polyval(coef, times0), times0, t=0.0, theta=theta,
                            normalization=normalization))
    # exact solution: augment the state with the Taylor vector (u, u', ..., u^(N-1)) at t = 0
    deg = N - 1
    taylor = [np.polyval(np.polyder(coef, j), 0.0) if j else np.polyval(coef, 0.0) for j in range(deg + 1)]
    big = np.zeros((N + deg + 1, N + deg + 1))
    big[:N, :N], big[:N, N] = A, B
    big[N:, N:] = np.eye(deg + 1, k=1)
    x1 = (sla.expm(t1 * big) @ np.concatenate([x0, taylor]))[:N]
    times1 = np.linspace(t1 - theta, t1, 40)
    expected = np.asarray(project(kind, N, np.polyval(coef, times1), times1, t=t1, theta=theta,
                                  normalization=normalization))
    np.testing.assert_allclose(x1, expected, atol=1e-9 * np.abs(expected).max())
    grid = np.linspace(t1 - theta, t1, 13)
    np.testing.assert_allclose(reconstruct(kind, x1, grid, t=t1, theta=theta, normalization=normalization),
                               np.polyval(coef, grid), atol=1e-9 * np.abs(np.polyval(coef, grid)).max())


def test_legs_projection_solves_the_legs_ode():
    """t x'(t) = A x + B u(t) for the exact projection x(t) of u over [0, t] (polynomial u)."""
    coef = np.array([0.3, -1.0, 2.0, 0.5])
    N, t, h = 6, 1.3, 1e-4
    times = lambda s: np.linspace(0, s, 30)  # noqa: E731
    x = {s: np.asarray(project("legs", N, np.polyval(coef, times(s)), times(s), t=s)) for s in (t - h, t, t + h)}
    A, B = hippo("legs", N)
    derivative = (x[t + h] - x[t - h]) / (2 * h)
    np.testing.assert_allclose(t * derivative, A @ x[t] + B * np.polyval(coef, t), atol=1e-6)
