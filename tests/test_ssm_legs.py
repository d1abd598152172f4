"""The structured LegS operations of sulib.ssm.legs: products, solves, and the LegS step rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.ssm import (
    LEGS_METHODS,
    hippo,
    legs_matvec,
    legs_scan,
    legs_solve,
    legs_step_matrices,
    project_steps,
    scan_varying,
)
from ssm_helpers import finite, numpy_scan

# ----------------------------------------------------------------- structured LegS


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([1, 5, 64]).flatmap(
    lambda N: st.tuples(arrays(np.float64, st.sampled_from([(N,), (3, N)]), elements=finite),
                        st.one_of(st.floats(0, 10), st.sampled_from([0.5, 0.25, 1 / 6, 1 / 64])))))
def test_structured_legs_products_equal_the_dense_ones(case):
    v, lam = case
    N = v.shape[-1]
    A, _ = hippo("legs", N)
    np.testing.assert_allclose(legs_matvec(v), v @ A.T, rtol=0, atol=1e-12 * (1 + np.abs(v @ A.T).max()))
    dense = np.linalg.solve(np.eye(N) - lam * A, v.T).T
    np.testing.assert_allclose(legs_solve(v, lam), dense, rtol=0, atol=1e-12 * (1 + np.abs(dense).max()))


def test_legs_solve_takes_a_lam_per_batch_row():
    rng = np.random.default_rng(1)
    v, lam = rng.normal(size=(3, 8)), np.array([0.0, 0.3, 7.0])
    A, _ = hippo("legs", 8)
    for i in range(3):
        np.testing.assert_allclose(legs_solve(v, lam)[i], np.linalg.solve(np.eye(8) - lam[i] * A, v[i]), atol=1e-13)


@pytest.mark.parametrize("method", LEGS_METHODS)
def test_legs_scan_structured_dense_and_step_matrices_agree(method):
    rng = np.random.default_rng(2)
    u = rng.normal(size=(2, 40))
    A, B = hippo("legs", 6)
    fast = legs_scan(u, 6, method=method)
    dense = legs_scan(u, 6, method=method, structured=False)
    Abars, Bbars = legs_step_matrices(A, B, 40, method=method)
    stepped = numpy_scan(Abars, Bbars, u, 0.0)
    assert fast.shape == (2, 40, 6)
    np.testing.assert_allclose(fast, dense, atol=1e-12)
    np.testing.assert_allclose(fast, stepped, atol=1e-12)
    np.testing.assert_allclose(scan_varying(Abars, Bbars, u), stepped, atol=1e-12)
    # the LegS step does not depend on the step size (post 10137): dt enters as dt / t_k = 1/k only
    for dt in (1e-3, 0.37, 250.0):
        Abars_dt, Bbars_dt = legs_step_matrices(A, B, 40, method=method, dt=dt)
        np.testing.assert_allclose(Abars_dt, Abars, rtol=0, atol=1e-13)
        np.testing.assert_allclose(Bbars_dt, Bbars, rtol=0, atol=1e-13)


def test_legs_exact_state_is_the_projection_of_the_history():
    rng = np.random.default_rng(4)
    u = rng.normal(size=(2, 40))
    N = 6
    exact = legs_scan(u, N, method="exact")
    for k in (0, 5, 39):
        np.testing.assert_allclose(exact[:, k], project_steps("legs", N, u[:, :k + 1]), atol=1e-12)
    # first step of every rule with the exact start: the projection of a constant is u_0 e_0
    np.testing.assert_allclose(legs_scan(u, N)[:, 0], u[:, :1] * np.eye(N)[0], atol=1e-15)
    # the post's normalization holds sqrt(2) times the same coefficients
    np.testing.assert_allclose(legs_scan(u, N, method="exact", normalization="post"), np.sqrt(2) * exact, atol=1e-12)


def test_legs_bilinear_rules_converge_to_the_exact_state():
    """The post's rule (input weight 1/k) is first order; with log((k+1)/k) it is second order
    *for this signal, which starts at u(0) = 0* — with u(0) != 0 it is first order too (see the
    held-input order tests below, where only "bilinear_trap" and "bilinear_logtime" are second order)."""
    def errors(method):
        out = []
        for L in (100, 200):
            t = (np.arange(L) + 0.5) / L
            u = np.sin(5 * t) + t**2
            exact = project_steps("legs", 8, u)  # = legs_scan(u, 8, method="exact")[-1]
            out.append(np.abs(legs_scan(u, 8, method=method)[-1] - exact).max())
        return out

    first, second = errors("bilinear"), errors("bilinear_log")
    assert 1.8 < first[0] / first[1] < 2.2
    assert second[0] / second[1] > 3.2 and second[1] < first[1] / 50


# ----------------------------------------------------------------- consistent LegS rules


@settings(max_examples=20, deadline=None)
@given(st.floats(-5, 5, allow_nan=False), st.integers(2, 40), st.sampled_from([1, 3, 8]))
def test_consistent_legs_rules_keep_a_constant_input_at_equilibrium(c, L, N):
    """A constant input c must leave the state at -A⁻¹B c = c e_0 (the projection of a constant)."""
    u = np.full(L, c)
    for method in ("bilinear_trap", "bilinear_logtime", "exact"):
        np.testing.assert_allclose(legs_scan(u, N, method=method), np.outer(u, np.eye(N)[0]), atol=1e-12 * (1 + abs(c)))


def test_log_weight_alone_is_first_order_but_consistent_rules_are_second_order():
    """Held input with u_0 != 0: the log input weight leaves the rule first order."""
    base = np.random.default_rng(4).normal(size=8) + 1.0

    def ratio(method):
        errs = []
        for L in (256, 512):
            u = np.repeat(base, L // 8)
            exact = np.asarray(project_steps("legs", 6, u))
            errs.append(np.abs(np.asarray(legs_scan(u, 6, method=method))[-1] - exact).max())
        return errs[0] / errs[1]

    assert 1.6 < ratio("bilinear") < 2.2 and 1.6 < ratio("bilinear_log") < 2.2
    assert 3.6 < ratio("bilinear_trap") < 4.4 and 3.6 < ratio("bilinear_logtime") < 4.4
    # with a constant input the post's rule drifts from the equilibrium, the consistent ones do not
    drift = np.abs(np.asarray(legs_scan(np.ones(50), 4, method="bilinear_log"))[-1] - np.eye(4)[0]).max()
    assert drift > 1e-4
