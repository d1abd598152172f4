"""Bad input to every sulib.ssm function is rejected with an error naming the argument."""

import numpy as np
import pytest

from sulib.ssm import (
    discretize,
    fourier_to_real,
    hippo,
    hippo_basis,
    jaxpr_flops,
    legs_matvec,
    legs_scan,
    legs_solve,
    legs_step_matrices,
    project,
    project_steps,
    reconstruct,
    rescale,
    scan_parallel,
    scan_sequential,
    scan_varying,
    solve_held,
)

# ----------------------------------------------------------------- bad input


A2, B2 = np.eye(2), np.ones(2)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: hippo("legx", 4), ValueError, "kind"),
        (lambda: hippo("legs", 0), ValueError, "N"),
        (lambda: hippo("legs", 2.5), TypeError, "N"),
        (lambda: hippo("legt", 4, theta=0.0), ValueError, "theta"),
        (lambda: hippo("legt", 4, theta=np.nan), ValueError, "theta"),
        (lambda: hippo("legs", 4, theta=2.0), ValueError, "theta"),
        (lambda: hippo("lmu", 4, normalization="post"), ValueError, "normalization"),
        (lambda: hippo("legt", 4, normalization="orthonormal"), ValueError, "normalization"),
        (lambda: rescale(A2, B2, [1.0, 0.0]), ValueError, "lam"),
        (lambda: fourier_to_real(A2, B2), ValueError, "A"),
        (lambda: fourier_to_real(np.eye(3) * 1j, np.ones(3)), ValueError, "conjugate-symmetric"),
        (lambda: discretize(np.ones((2, 3)), B2, 0.1), ValueError, "A"),
        (lambda: discretize([[np.nan, 0.0], [0.0, 1.0]], B2, 0.1), ValueError, "A"),
        (lambda: discretize(A2, np.ones(3), 0.1), ValueError, "B"),
        (lambda: discretize(A2, ["a", "b"], 0.1), TypeError, "B"),
        (lambda: discretize(A2, B2, 0.0), ValueError, "dt"),
        (lambda: discretize(A2, B2, -1.0), ValueError, "dt"),
        (lambda: discretize(A2, B2, [0.1, 0.2]), ValueError, "dt"),
        (lambda: discretize(A2, B2, 0.1, "rk4"), ValueError, "method"),
        (lambda: scan_sequential(np.ones((2, 2, 2)), B2, np.ones(4)), ValueError, "Abar"),
        (lambda: scan_sequential(A2, np.ones(3), np.ones(4)), ValueError, "Bbar"),
        (lambda: scan_sequential(A2, B2, np.float64(1.0)), ValueError, "u"),
        (lambda: scan_sequential(A2, B2, np.zeros((3, 0))), ValueError, "u"),
        (lambda: scan_parallel(A2, B2, [1.0, np.inf]), ValueError, "u"),
        (lambda: scan_parallel(A2, B2, np.ones(4), x0=np.ones(3)), ValueError, "x0"),
        (lambda: scan_parallel(A2, B2, np.ones((2, 4)), x0=np.ones((3, 2))), ValueError, "x0"),
        (lambda: scan_varying(A2, B2, np.ones(2)), ValueError, "Abars"),
        (lambda: scan_varying(np.ones((4, 2, 2)), np.ones((4, 3)), np.ones(4)), ValueError, "Bbars"),
        (lambda: scan_varying(np.ones((4, 2, 2)), np.ones((4, 2)), np.ones(5)), ValueError, "u"),
        (lambda: legs_scan(np.ones(5), 0), ValueError, "N"),
        (lambda: legs_scan(np.ones(5), 4, method="trapezoid"), ValueError, "method"),
        (lambda: legs_step_matrices(np.zeros((2, 2)), B2, 5), ValueError, "A"),
        (lambda: legs_step_matrices(*hippo("legs", 2), 0), ValueError, "L"),
        (lambda: legs_step_matrices(*hippo("legs", 2), 5, dt=-1.0), ValueError, "dt"),
        (lambda: legs_solve(np.ones(4), -0.5), ValueError, "lam"),
        (lambda: legs_solve(np.ones((2, 4)), np.ones(3)), ValueError, "lam"),
        (lambda: legs_solve(np.ones((2, 4)), np.ones((3, 1))), ValueError, "lam"),
        (lambda: legs_matvec(np.float64(1.0)), ValueError, "v"),
        (lambda: hippo_basis("legs", 3, np.ones((2, 2))), ValueError, "r"),
        (lambda: reconstruct("legt", np.ones(4), [0.5, 2.0], t=1.0), ValueError, "times"),
        (lambda: reconstruct("legs", np.ones(4), [0.5], t=0.0), ValueError, "t must"),
        (lambda: reconstruct("fourier_legs", np.ones(4), [0.5], t=1.0), ValueError, "x"),
        (lambda: project("legs", 4, np.ones(3), [0.1, 0.5, 0.9], t=1.0), ValueError, "times"),
        (lambda: project("legs", 4, np.ones(5), np.linspace(0, 1, 6), t=1.0), ValueError, "samples"),
        (lambda: project_steps("legs", 3, np.ones((2, 0))), ValueError, "u"),
    ],
)
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: solve_held(np.ones((2, 3)), np.ones(2), np.ones(3), 1.0), ValueError, "A"),
        (lambda: solve_held(np.eye(2), np.ones(3), np.ones(3), 1.0), ValueError, "B"),
        (lambda: solve_held(np.eye(2), np.ones(2), np.ones((2, 3)), 1.0), ValueError, "u"),
        (lambda: solve_held(np.eye(2), np.ones(2), np.ones(3), 0.0), ValueError, "dt"),
        (lambda: solve_held(np.eye(2), np.ones(2), np.ones(3), 1.0, rtol=-1.0), ValueError, "rtol"),
        (lambda: jaxpr_flops(3, np.ones(2)), TypeError, "fn"),
    ],
)
def test_new_functions_name_bad_arguments(call, error, name):
    with pytest.raises(error, match=name):
        call()
