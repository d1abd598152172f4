"""Discretizations of sulib.ssm.discretize against SciPy, the matrix exponential and their orders."""

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.signal as ssig

from sulib.ssm import (
    DISCRETIZATIONS,
    discretize,
    hippo,
    scan_sequential,
)

# ----------------------------------------------------------------- discretization


SCIPY_METHOD = {"forward_euler": "euler", "backward_euler": "backward_diff", "bilinear": "bilinear", "zoh": "zoh"}


@pytest.mark.parametrize("method", DISCRETIZATIONS)
def test_discretize_matches_scipy(method):
    A, B = hippo("legt", 5, theta=0.9)
    dt = 0.05
    Ad, Bd, *_ = ssig.cont2discrete((A, B[:, None], np.eye(5), np.zeros((5, 1))), dt, method=SCIPY_METHOD[method])
    Abar, Bbar = discretize(A, B, dt, method)
    assert Abar.dtype == np.float64
    np.testing.assert_allclose(Abar, Ad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Bbar, Bd[:, 0], rtol=1e-12, atol=1e-13)


def test_zoh_is_the_matrix_exponential_and_handles_singular_a():
    A, B = hippo("legs", 5)
    dt = 0.3
    Abar, Bbar = discretize(A, B, dt, "zoh")
    E = sla.expm(dt * A)
    np.testing.assert_allclose(Abar, E, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Bbar, np.linalg.solve(A, (E - np.eye(5)) @ B), rtol=1e-11, atol=1e-13)
    # a double integrator: A is nilpotent, A^-1 does not exist
    Abar, Bbar = discretize([[0.0, 1.0], [0.0, 0.0]], [0.0, 1.0], dt, "zoh")
    np.testing.assert_allclose(Abar, [[1.0, dt], [0.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(Bbar, [dt**2 / 2, dt], atol=1e-15)


def test_discretization_orders():
    """Step response at T = 1: Euler errors halve with dt, bilinear quarters, zoh is exact."""
    A, B = hippo("legt", 5)
    exact = np.linalg.solve(A, (sla.expm(A) - np.eye(5)) @ B)
    errors = {}
    for method in DISCRETIZATIONS:
        errors[method] = []
        for steps in (64, 128):
            Abar, Bbar = discretize(A, B, 1.0 / steps, method)
            final = scan_sequential(Abar, Bbar, np.ones(steps))[-1]
            errors[method].append(np.abs(final - exact).max())
    for method, order in [("forward_euler", 1), ("backward_euler", 1), ("bilinear", 2)]:
        ratio = errors[method][0] / errors[method][1]
        assert 0.85 * 2**order < ratio < 1.15 * 2**order, (method, errors[method])
    assert max(errors["zoh"]) < 1e-12
