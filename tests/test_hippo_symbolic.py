"""Exact derivations of the HiPPO matrices (sulib.hippo_symbolic) against closed forms and sulib.ssm."""

from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import sulib.hippo_symbolic as hs
from sulib.ssm import hippo, rescale

W = sp.Symbol("w", positive=True)


def _same(X, Y) -> bool:
    return all(e == 0 for e in (X - Y).applyfunc(sp.simplify))


def _num(X, w=0.7) -> np.ndarray:
    return np.array(X.subs(W, sp.Rational(str(w))).evalf(30), dtype=float)


def test_orthonormal_legendre_is_orthonormal():
    g = [hs.orthonormal_legendre(n) for n in range(6)]
    gram = sp.Matrix(6, 6, lambda i, j: sp.integrate(g[i] * g[j], (hs.S, -1, 1)))
    assert gram == sp.eye(6)


def test_legendre_identities_hold_for_all_n_and_exactly_up_to_20():
    general = hs.legendre_generating_identities()
    assert set(general) == {"r1", "r2", "dot", "dot_t1", "ends"}
    assert all(holds for _, _, holds in general.values())
    assert all(hs.legendre_identities_upto(20).values())


def test_generating_function_check_can_fail():
    """A wrong identity (dropping the 2n+1 weight) does not simplify to zero."""
    x, z = sp.symbols("x z")
    G = (1 - 2 * x * z + z ** 2) ** sp.Rational(-1, 2)
    Gx = sp.diff(G, x)
    assert sp.simplify(Gx / z - z * Gx - G) != 0


def test_reparametrization_residual_vanishes_for_generic_and_concrete_maps():
    assert hs.reparametrization_residual() == 0
    w = sp.Symbol("w", positive=True)
    assert hs.reparametrization_residual(lambda s, T: (s + 1) * w / 2 + T - w) == 0
    assert hs.reparametrization_residual(lambda s, T: T * sp.sqrt(s)) == 0


@pytest.mark.parametrize("N", [1, 2, 5, 8])
def test_legt_from_integrals_is_the_posts_closed_form(N):
    A, B = hs.legt_from_integrals(N)
    A_post, B_post = hs.legt_closed_form(N)
    assert _same(A, A_post) and _same(B, B_post)


@pytest.mark.parametrize("N", [1, 2, 5, 8])
def test_legs_from_integrals_and_from_monomials_are_the_posts_closed_form(N):
    A_post, B_post = hs.legs_closed_form(N)
    for A, B in (hs.legs_from_integrals(N), hs.legs_from_monomials(N)):
        assert _same(A, A_post) and _same(B, B_post)


def test_closed_forms_match_sulib_ssm_hippo():
    N = 7
    A, B = hs.legt_closed_form(N)
    A_l, B_l = hippo("legt", N, theta=0.7, normalization="post")
    np.testing.assert_allclose(_num(A), A_l, atol=1e-13)
    np.testing.assert_allclose(_num(B).ravel(), B_l, atol=1e-13)
    A, B = hs.legs_closed_form(N)
    A_l, B_l = hippo("legs", N, normalization="post")
    np.testing.assert_allclose(_num(A), A_l, atol=1e-13)
    np.testing.assert_allclose(_num(B).ravel(), B_l, atol=1e-13)
    A, B = hs.lmu_closed_form(N, W)
    A_l, B_l = hippo("lmu", N, theta=0.7)
    np.testing.assert_allclose(_num(A), A_l, atol=1e-13)
    np.testing.assert_allclose(_num(B).ravel(), B_l, atol=1e-13)


def test_lmu_rescaling_findings():
    N = 6
    A, B = hs.legt_closed_form(N)
    printed = [2 / sp.sqrt(2 * k + 1) for k in range(N)]
    fixed = [sp.sqrt(sp.Rational(2, 2 * k + 1)) for k in range(N)]
    A_lmu, B_lmu = hs.post_lmu_closed_form(N)
    A_pr, B_pr = hs.rescale_symbolic(A, B, printed)
    assert _same(A_pr, A_lmu) and not _same(B_pr, B_lmu) and _same(B_pr * sp.sqrt(2), B_lmu)
    A_fx, B_fx = hs.rescale_symbolic(A, B, fixed)
    assert _same(A_fx, A_lmu) and _same(B_fx, B_lmu)
    A_v, B_v = hs.lmu_closed_form(N, W)
    flip = sp.diag(*[(-1) ** k for k in range(N)])
    assert not _same(A_lmu, A_v)
    assert _same(flip * A_lmu * flip, A_v) and _same(flip * B_lmu, B_v)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.fractions(min_value=-5, max_value=5).filter(lambda q: q != 0), min_size=1, max_size=5))
def test_rescale_symbolic_matches_numeric_rescale_and_inverts(lams):
    N = len(lams)
    lam = [sp.Rational(q.numerator, q.denominator) for q in lams]
    A, B = hs.legs_closed_form(N)
    A2, B2 = hs.rescale_symbolic(A, B, lam)
    A_n, B_n = rescale(_num(A), _num(B).ravel(), np.array([float(q) for q in lams]))
    np.testing.assert_allclose(_num(A2), A_n, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_num(B2).ravel(), B_n, rtol=1e-12, atol=1e-12)
    A3, B3 = hs.rescale_symbolic(A2, B2, [1 / q for q in lam])
    assert _same(A3, A) and _same(B3, B)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 5), st.lists(st.integers(-4, 4), min_size=1, max_size=7))
def test_legs_ode_is_exact_for_every_polynomial_signal(N, coeffs):
    """T c'(T) = A c(T) + B u(T) for LegS, whatever the degree of u (no truncation)."""
    T = sp.Symbol("T", positive=True)
    u = lambda t: sum(a * t ** j for j, a in enumerate(coeffs))
    c = hs.window_coefficients(u((hs.S + 1) * T / 2), N)
    A, B = hs.legs_closed_form(N)
    assert all(e == 0 for e in (T * c.diff(T) - A * c - B * u(T)).applyfunc(sp.expand))


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 5), st.integers(0, 6))
def test_legt_ode_is_exact_exactly_below_degree_n(N, degree):
    residual = hs.legt_polynomial_residual(N, degree)
    assert all(e == 0 for e in residual) == (degree < N)


def test_argument_checks_name_the_argument():
    with pytest.raises(ValueError, match="N"):
        hs.legt_from_integrals(0)
    with pytest.raises(TypeError, match="N"):
        hs.legs_from_integrals(2.0)
    with pytest.raises(ValueError, match="w"):
        hs.legt_closed_form(3, -1)
    with pytest.raises(ValueError, match="n"):
        hs.orthonormal_legendre(-1)
    with pytest.raises(TypeError, match="s"):
        hs.orthonormal_legendre(2, 1.5)
    A, B = hs.legs_closed_form(3)
    with pytest.raises(ValueError, match="lam"):
        hs.rescale_symbolic(A, B, [1, 2])
    with pytest.raises(ValueError, match="lam"):
        hs.rescale_symbolic(A, B, [1, 0, 2])
    with pytest.raises(TypeError, match="A and B"):
        hs.rescale_symbolic(np.eye(3), B, [1, 1, 1])
    with pytest.raises(ValueError, match="degree"):
        hs.legt_polynomial_residual(3, -1)


def test_identity_failures_are_empty_and_detect_a_wrong_weight(monkeypatch):
    assert hs.legendre_identity_failures(12) == {k: [] for k in ("r1", "r2", "dot", "dot_t1", "ends")}
    # mutate the basis (p_n -> 2 p_n for n >= 2) and the recurrences must fail from there on
    real = sp.legendre
    monkeypatch.setattr(hs.sp, "legendre", lambda n, x: real(n, x) * (2 if n >= 2 else 1))
    failures = hs.legendre_identity_failures(6)
    assert failures["ends"] == [2, 3, 4, 5, 6]
    assert failures["r2"] and failures["dot_t1"]


def test_theorem2_legs_is_the_posts_legs_with_lambda_sqrt2_and_theorem1_legt_is_the_lmu():
    N = 7
    A_p, B_p = hs.theorem2_legs(N)
    A_s, B_s = hs.legs_closed_form(N)
    A_r, B_r = hs.rescale_symbolic(A_s, B_s, [sp.sqrt(2)] * N)
    assert _same(-A_p, A_r) and _same(B_p, B_r)
    T_A, T_B = hs.theorem1_legt(N, W)
    A_l, B_l = hs.lmu_closed_form(N, W)
    assert _same(-T_A, A_l) and _same(T_B, B_l)
    # and not the post's LegT with λ = √2: different matrices (same system up to a rescaling)
    A_t, B_t = hs.rescale_symbolic(*hs.legt_closed_form(N, W), [sp.sqrt(2)] * N)
    assert hs.max_abs_difference(-T_A, A_t, {W: 1}) > 1
    lam = [(-1) ** n / sp.sqrt(2 * n + 1) for n in range(N)]
    A_x, B_x = hs.rescale_symbolic(A_t, B_t, lam)
    assert hs.max_abs_difference(-T_A, A_x, {W: 1}) == 0
    assert hs.max_abs_difference(T_B, B_x, {W: 1}) == 0
    np.testing.assert_allclose(_num(-T_A), hippo("lmu", N, theta=0.7)[0], rtol=1e-14)


def test_paper_transcriptions_equal_the_authors_code_in_the_s4_fixture():
    """Theorem 1's LegT is s4's transition('lmu') exactly; Theorem 2's LegS is transition('legs')."""
    data = np.load(Path(__file__).parent / "data" / "s4_transition.npz")
    for N in (1, 2, 5, 8, 16):
        A, B = hs.theorem1_legt(N, 1)
        np.testing.assert_array_equal(-_num(A), data[f"lmu_{N}_A"])
        np.testing.assert_array_equal(_num(B).ravel(), data[f"lmu_{N}_B"])
        A, B = hs.theorem2_legs(N)
        A4 = data[f"legs_{N}_A"]  # s4 builds it as T M T^-1: equal up to rounding
        np.testing.assert_allclose(-_num(A), A4, rtol=0, atol=1e-15 * np.abs(A4).max())
        np.testing.assert_array_equal(_num(B).ravel(), data[f"legs_{N}_B"])


def test_post_legs_unit_form_is_legs_rescaled_by_sqrt_2_over_2n_plus_1():
    N = 8
    A_s, B_s = hs.legs_closed_form(N)
    A_u, B_u = hs.rescale_symbolic(A_s, B_s, [sp.sqrt(sp.Rational(2, 2 * n + 1)) for n in range(N)])
    A_p, B_p = hs.post_legs_unit_closed_form(N)
    assert hs.max_abs_difference(A_u, A_p) == 0 and hs.max_abs_difference(B_u, B_p) == 0
    # the LegT section's λ_n = 2/√(2n+1) would give B_n = (2n+1)/√2 instead
    A_w, B_w = hs.rescale_symbolic(A_s, B_s, [2 / sp.sqrt(2 * n + 1) for n in range(N)])
    assert hs.max_abs_difference(A_w, A_p) == 0
    assert hs.max_abs_difference(B_w, B_p) == sp.Integer(2 * N - 1) * (1 - 1 / sp.sqrt(2))


def test_max_abs_difference_checks_its_arguments():
    with pytest.raises(TypeError, match="X and Y"):
        hs.max_abs_difference(np.eye(2), sp.eye(2))
    with pytest.raises(ValueError, match="same shape"):
        hs.max_abs_difference(sp.eye(2), sp.eye(3))
    with pytest.raises(ValueError, match="subs"):
        hs.max_abs_difference(sp.Matrix([[W]]), sp.Matrix([[0]]))
    assert hs.max_abs_difference(sp.Matrix([[W, 1]]), sp.Matrix([[W, 3]])) == 2
