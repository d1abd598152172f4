"""The reference solver sulib.ssm.solve_held against the exact discretizations."""

import numpy as np

from sulib.ssm import (
    discretize,
    hippo,
    legs_scan,
    legs_step_matrices,
    scan_sequential,
    scan_varying,
    solve_held,
)

def test_solve_held_matches_the_exact_discretizations():
    u = np.random.default_rng(5).normal(size=6)
    A, B = hippo("legt", 4)
    zoh = np.asarray(scan_sequential(*discretize(A, B, 0.25, "zoh"), u))
    np.testing.assert_allclose(solve_held(A, B, u, 0.25), zoh, atol=1e-11 * np.abs(zoh).max())
    exact = np.asarray(legs_scan(u, 4, method="exact"))
    np.testing.assert_allclose(solve_held(*hippo("legs", 4), u, 0.5, scale_invariant=True), exact, atol=1e-11)
    A_F, B_F = hippo("fourier_legs", 2)
    varying = np.asarray(scan_varying(*legs_step_matrices(A_F, B_F, 6, method="exact"), u))
    np.testing.assert_allclose(solve_held(A_F, B_F, u, 1.0, scale_invariant=True), varying, atol=1e-11)
