from pathlib import Path

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.signal as ssig
import scipy.special as ssp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sulib.hippo_symbolic as hs
from sulib.ssm import (
    DISCRETIZATIONS,
    LEGS_METHODS,
    discretize,
    fourier_frequencies,
    fourier_to_real,
    hippo,
    hippo_basis,
    jaxpr_flops,
    legendre_basis,
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

FIXTURE = Path(__file__).parent / "data" / "s4_transition.npz"
S4_COMMIT = "e757cef57d89e448c413de7325ed5601aceaac13"

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


# ----------------------------------------------------------------- independent references


def numpy_scan(Abar, Bbar, u, x0):
    """The recurrence x_{k+1} = Abar x_k + Bbar u_k as a plain loop; Abar may be (L, N, N)."""
    Abar, Bbar, u = np.asarray(Abar), np.asarray(Bbar), np.asarray(u)
    x = np.broadcast_to(x0, u.shape[:-1] + (Bbar.shape[-1],)).astype(np.result_type(Abar, Bbar, float))
    out = []
    for k in range(u.shape[-1]):
        A_k = Abar[k] if Abar.ndim == 3 else Abar
        B_k = Bbar[k] if Bbar.ndim == 2 else Bbar
        x = x @ A_k.T + u[..., k, None] * B_k
        out.append(x)
    return np.stack(out, axis=-2)


def gauss(n_nodes, a=0.0, b=1.0):
    """Gauss-Legendre nodes and weights on [a, b]."""
    z, w = np.polynomial.legendre.leggauss(n_nodes)
    return a + (b - a) * (z + 1) / 2, w * (b - a) / 2


def shifted_legendre(N, r):
    """sqrt(2n+1) P_n(2r - 1) from scipy, shape (len(r), N)."""
    n = np.arange(N)
    return ssp.eval_legendre(n[None, :], 2 * np.asarray(r)[:, None] - 1) * np.sqrt(2 * n + 1)


def stable_matrix(rng, N, radius, complex_=False):
    M = rng.normal(size=(N, N)) + (1j * rng.normal(size=(N, N)) if complex_ else 0)
    return radius * M / max(np.abs(np.linalg.eigvals(M)).max(), 1e-12)


# ----------------------------------------------------------------- HiPPO matrices


@pytest.mark.parametrize("N", [1, 2, 5])
def test_legendre_kinds_match_their_closed_forms(N):
    theta = 0.7
    legt, legs, lmu = np.zeros((N, N)), np.zeros((N, N)), np.zeros((N, N))
    for n in range(N):
        for k in range(N):
            root = np.sqrt((2 * n + 1) * (2 * k + 1))
            legt[n, k] = -root / theta if k < n else -(-1.0) ** (n - k) * root / theta
            legs[n, k] = -root if k < n else (-(n + 1) if k == n else 0.0)
            lmu[n, k] = (2 * n + 1) / theta * (-1.0 if n < k else (-1.0) ** (n - k + 1))
    n = np.arange(N)
    A, B = hippo("legt", N, theta=theta)
    np.testing.assert_allclose(A, legt, rtol=1e-15)
    np.testing.assert_allclose(B, np.sqrt(2 * n + 1) / theta, rtol=1e-15)
    A, B = hippo("legt", N, theta=theta, normalization="post")  # post 10114, eq. leg-t-hippo-1
    np.testing.assert_allclose(A, legt, rtol=1e-15)
    np.testing.assert_allclose(B, np.sqrt(2 * (2 * n + 1)) / theta, rtol=1e-15)
    A, B = hippo("legs", N)
    np.testing.assert_allclose(A, legs, rtol=1e-15)
    np.testing.assert_allclose(B, np.sqrt(2 * n + 1), rtol=1e-15)
    np.testing.assert_allclose(hippo("legs", N, normalization="post")[1], np.sqrt(2 * (2 * n + 1)), rtol=1e-15)
    A, B = hippo("lmu", N, theta=theta)
    np.testing.assert_allclose(A, lmu, rtol=1e-15)
    np.testing.assert_allclose(B, (2 * n + 1) * (-1.0) ** n / theta, rtol=1e-15)
    assert A.dtype == B.dtype == np.float64


def test_fourier_kinds_match_their_closed_forms():
    M, theta = 2, 1.5
    f = fourier_frequencies(M)
    assert list(f) == [-2, -1, 0, 1, 2]
    A, B = hippo("fourier_legt", M, theta=theta)  # post 10114
    assert A.shape == (5, 5) and A.dtype == np.complex128
    for i, n in enumerate(f):
        for j in range(5):
            expected = (2j * np.pi * n - 1) / theta if i == j else -1 / theta
            assert abs(A[i, j] - expected) < 1e-15
    np.testing.assert_allclose(B, np.ones(5) / theta)
    A, B = hippo("fourier", M, theta=theta)  # the corrected closure u(T-w) ≈ 2 Σ c_k - u(T)
    for i, n in enumerate(f):
        for j in range(5):
            expected = (2j * np.pi * n - 2) / theta if i == j else -2 / theta
            assert abs(A[i, j] - expected) < 1e-15
    np.testing.assert_allclose(B, 2 * np.ones(5) / theta)
    A, B = hippo("fourier_legs", M)  # post 10137
    for i, n in enumerate(f):
        for j, k in enumerate(f):
            expected = 1j * np.pi * n - 1 if n == k else -n / (n - k)
            assert abs(A[i, j] - expected) < 1e-15
    np.testing.assert_allclose(B, np.ones(5))


@pytest.mark.parametrize("N", [1, 4, 12])
def test_legs_is_lower_triangular_with_eigenvalues_minus_one_to_minus_n(N):
    A, _ = hippo("legs", N)
    assert np.all(np.triu(A, 1) == 0)
    np.testing.assert_array_equal(np.diag(A), -np.arange(1, N + 1))
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(A).real), -np.arange(N, 0, -1), atol=1e-9)


def test_normalizations_are_rescalings_of_one_state():
    N = 7
    n = np.arange(N)
    A, B = hippo("legt", N, theta=0.6)
    # post: c_n = sqrt(2) x_n, i.e. x = Λ c with λ_n = 1/sqrt(2)
    A_post, B_post = rescale(A, B, np.full(N, 2**-0.5))
    np.testing.assert_allclose(A_post, hippo("legt", N, theta=0.6, normalization="post")[0], rtol=1e-14)
    np.testing.assert_allclose(B_post, hippo("legt", N, theta=0.6, normalization="post")[1], rtol=1e-14)
    # LMU: m_n = (-1)^n sqrt(2n+1) x_n (Legendre in the delay, unnormalized)
    A_lmu, B_lmu = rescale(A, B, (-1.0) ** n / np.sqrt(2 * n + 1))
    np.testing.assert_allclose(A_lmu, hippo("lmu", N, theta=0.6)[0], rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(B_lmu, hippo("lmu", N, theta=0.6)[1], rtol=1e-14)
    # post 10114 prints λ_n = 2/sqrt(2n+1) for the LMU form; relative to its own state that gives
    # B_n = (2n+1)/(sqrt(2) w), not (2n+1)/w: the LMU B needs λ_n = sqrt(2/(2n+1)).
    A_p, B_p = hippo("legt", N, theta=0.6, normalization="post")
    _, B_printed = rescale(A_p, B_p, 2 / np.sqrt(2 * n + 1))
    np.testing.assert_allclose(B_printed, (2 * n + 1) / (np.sqrt(2) * 0.6), rtol=1e-14)
    A_fixed, B_fixed = rescale(A_p, B_p, np.sqrt(2 / (2 * n + 1)))
    np.testing.assert_allclose(np.abs(B_fixed), np.abs(hippo("lmu", N, theta=0.6)[1]), rtol=1e-14)
    np.testing.assert_allclose(np.abs(A_fixed), np.abs(hippo("lmu", N, theta=0.6)[0]), rtol=1e-14)


# ----------------------------------------------------------------- state-spaces/s4 conventions


def s4():
    data = np.load(FIXTURE)
    assert str(data["s4_commit"]) == S4_COMMIT
    return data


def fixture_sizes(data, measure):
    middles = (k[len(measure) + 1:-2] for k in data.files if k.startswith(measure + "_") and k.endswith("_A"))
    return sorted(int(m) for m in middles if m.isdigit())


def test_s4_legs_lmu_and_legt_conventions():
    data = s4()
    sizes = fixture_sizes(data, "legs")
    assert sizes == [1, 2, 3, 4, 5, 6, 7, 8, 16, 64]
    for N in sizes:
        A, B = hippo("legs", N)  # s4 builds it as T M T^-1, so equal up to rounding
        np.testing.assert_allclose(A, data[f"legs_{N}_A"], rtol=0, atol=1e-15 * np.abs(A).max())
        np.testing.assert_array_equal(B, data[f"legs_{N}_B"])
        A, B = hippo("lmu", N)
        np.testing.assert_array_equal(A, data[f"lmu_{N}_A"])
        np.testing.assert_array_equal(B, data[f"lmu_{N}_B"])
        # s4's LegT is "halved for timescale correctness": our LegT with a window of length 2 ...
        A, B = hippo("legt", N, theta=2.0)
        np.testing.assert_array_equal(A, data[f"legt_{N}_A"])
        np.testing.assert_array_equal(B, data[f"legt_{N}_B"])
        # ... i.e. half of the unit-window LegT, and in the post's normalization B differs by sqrt(2)
        A1, B1 = hippo("legt", N, theta=1.0)
        np.testing.assert_array_equal(A1 / 2, data[f"legt_{N}_A"])
        np.testing.assert_array_equal(B1 / 2, data[f"legt_{N}_B"])
        A_post, B_post = hippo("legt", N, theta=2.0, normalization="post")
        np.testing.assert_array_equal(A_post, data[f"legt_{N}_A"])
        np.testing.assert_allclose(B_post, np.sqrt(2) * data[f"legt_{N}_B"], rtol=1e-15)
        # the HiPPO paper as printed: Theorem 1 (1), LegT, is transition('lmu'); Theorem 2 (3), LegS,
        # is transition('legs') (the paper writes c' = -A c + B f, hence the minus signs)
        A_p, B_p = hs.theorem1_legt(N, 1)
        np.testing.assert_array_equal(-np.array(A_p, dtype=float), data[f"lmu_{N}_A"])
        np.testing.assert_array_equal(np.array(B_p, dtype=float).ravel(), data[f"lmu_{N}_B"])
        A_p, B_p = hs.theorem2_legs(N)
        np.testing.assert_allclose(-np.array(A_p.evalf(30), dtype=float), data[f"legs_{N}_A"],
                                   rtol=0, atol=1e-15 * np.abs(A).max())
        np.testing.assert_array_equal(np.array(B_p.evalf(30), dtype=float).ravel(), data[f"legs_{N}_B"])


def hippo_code_transition(measure, N):
    """transition('legt' | 'lmu') of HazyResearch/hippo-code, model/op.py at 7752388, verbatim in numpy."""
    Q = np.arange(N, dtype=np.float64)
    j, i = np.meshgrid(Q, Q)
    if measure == "legt":
        R = (2 * Q + 1) ** 0.5
        return -(R[:, None] * np.where(i < j, (-1.0) ** (i - j), 1) * R[None, :]), R
    R = (2 * Q + 1)[:, None]
    return np.where(i < j, -1, (-1.0) ** (i - j + 1)) * R, ((-1.0) ** Q[:, None] * R).ravel()


def s4_fourier2(N):
    """transition('fourier2') of state-spaces/s4 at e757cef ("orthonormal on [0,1]"); not in the fixture.

    Transcribed by the chapter's reviewer from the s4 source (frequencies 2πn, rank-one term and B doubled).
    """
    freqs = 2 * np.arange(N // 2)
    d = np.stack([np.zeros(N // 2), freqs], axis=-1).reshape(-1)[1:]
    A = np.pi * (-np.diag(d, 1) + np.diag(d, -1))
    B = np.zeros(N)
    B[0::2] = 2 ** 0.5
    B[0] = 1
    return A - B[:, None] * B[None, :] * 2, B * 2


def test_hippo_code_legt_is_the_posts_sqrt2_legt_unhalved_and_lmu_equals_s4s():
    data = s4()
    for N in fixture_sizes(data, "lmu"):
        A, B = hippo_code_transition("legt", N)
        A1, B1 = hippo("legt", N, theta=1.0)
        np.testing.assert_array_equal(A, A1)
        np.testing.assert_array_equal(B, B1)
        np.testing.assert_array_equal(A / 2, data[f"legt_{N}_A"])  # s4 only halves it
        A, B = hippo_code_transition("lmu", N)
        np.testing.assert_array_equal(A, data[f"lmu_{N}_A"])
        np.testing.assert_array_equal(B, data[f"lmu_{N}_B"])


@pytest.mark.parametrize("N", [4, 8, 10, 16])
def test_s4_fourier2_is_the_midpoint_fourier_closure_with_window_1(N):
    A_real, B_real = fourier_to_real(*hippo("fourier", N // 2 - 1, theta=1.0))
    keep = np.r_[0, 2:N]  # same slot and sine-sign convention as "fourier_decay"
    sign = np.where(keep % 2 == 0, 1.0, -1.0)
    A, B = np.zeros((N, N)), np.zeros(N)
    A[np.ix_(keep, keep)] = A_real * np.outer(sign, sign)
    B[keep] = B_real * sign
    A2, B2 = s4_fourier2(N)
    np.testing.assert_allclose(A, A2, rtol=0, atol=1e-14 * np.abs(A2).max())
    np.testing.assert_allclose(B, B2, rtol=0, atol=1e-14)


def test_s4_fourier_decay_is_the_real_form_of_fourier_legt_with_window_2():
    data = s4()
    for N in fixture_sizes(data, "fourier_decay"):
        if N < 4:  # order N/2 - 1 = 0 is below hippo's minimum order 1
            continue
        A_real, B_real = fourier_to_real(*hippo("fourier_legt", N // 2 - 1, theta=2.0))
        # s4's state: (a_0, 0, a_1, -b_1, a_2, -b_2, ...): an always-zero slot, sines with the other sign
        keep = np.r_[0, 2:N]
        sign = np.where(keep % 2 == 0, 1.0, -1.0)
        A, B = np.zeros((N, N)), np.zeros(N)
        A[np.ix_(keep, keep)] = A_real * np.outer(sign, sign)
        B[keep] = B_real * sign
        np.testing.assert_allclose(A, data[f"fourier_decay_{N}_A"], rtol=0, atol=1e-15 * np.abs(A).max())
        np.testing.assert_allclose(B, data[f"fourier_decay_{N}_B"], rtol=0, atol=1e-15)
        # s4's "fourier" keeps that rotation (window 2) but doubles the rank-one decay and B (the midpoint closure, window 2)
        B0 = 2 * data[f"fourier_decay_{N}_B"]
        np.testing.assert_array_equal(data[f"fourier_{N}_A"], data[f"fourier_decay_{N}_A"] - np.outer(B0, B0) / 2)
        np.testing.assert_array_equal(data[f"fourier_{N}_B"], B0)


def test_s4_fourier_is_the_corrected_fourier_closure_with_window_2():
    data = s4()
    sizes = [N for N in fixture_sizes(data, "fourier") if N >= 4]
    assert sizes
    for N in sizes:
        A_real, B_real = fourier_to_real(*hippo("fourier", N // 2 - 1, theta=2.0))
        keep = np.r_[0, 2:N]  # same slot and sine-sign convention as "fourier_decay"
        sign = np.where(keep % 2 == 0, 1.0, -1.0)
        A, B = np.zeros((N, N)), np.zeros(N)
        A[np.ix_(keep, keep)] = A_real * np.outer(sign, sign)
        B[keep] = B_real * sign
        np.testing.assert_allclose(A, data[f"fourier_{N}_A"], rtol=0, atol=1e-14 * np.abs(A).max())
        np.testing.assert_allclose(B, data[f"fourier_{N}_B"], rtol=0, atol=1e-14)
        # and it is not the post's closure at any window: its B is twice that of "fourier_legt"
        _, B_post = fourier_to_real(*hippo("fourier_legt", N // 2 - 1, theta=2.0))
        assert np.abs(B_post * sign - data[f"fourier_{N}_B"][keep]).max() > 0.4


@pytest.mark.parametrize("M", [1, 3, 8])
def test_fourier_closure_sum_is_the_midpoint_of_the_window_ends(M):
    # for u = e^{2πi m r} with |m| <= M the closure is exact: Σ c_k = u(0) = u(1)
    # for u = r (a ramp, jump of 1 in the periodic extension) Σ c_k -> 1/2 = (u(0) + u(1))/2
    edges = np.linspace(0.0, 1.0, 4097)
    mids = (edges[1:] + edges[:-1]) / 2
    c = np.asarray(project_steps("fourier", M, mids))
    assert abs(c.sum().real - 0.5) < 1e-6
    assert abs(c.sum().imag) < 1e-12
    for m in range(-M, M + 1):
        x = np.zeros(2 * M + 1, complex)
        x[m + M] = 1.0
        A, B = hippo("fourier", M)
        # exactness for a window holding e^{2πi m t}: x' = 2πi m x must equal A x + B u(t)
        np.testing.assert_allclose(A @ x + B * 1.0, 2j * np.pi * m * x, atol=1e-12)


def test_fourier_to_real_is_a_similarity_onto_cosines_and_sines():
    rng = np.random.default_rng(3)
    M = 3
    A, B = hippo("fourier_legs", M)
    A_real, B_real = fourier_to_real(A, B)
    by_frequency = lambda z: z[np.argsort(z.imag)]  # noqa: E731  (the real parts are all -1)
    np.testing.assert_allclose(by_frequency(np.linalg.eigvals(A_real)), by_frequency(np.linalg.eigvals(A)), atol=1e-9)
    # a conjugate-symmetric state reconstructs the same real signal in both bases
    c = rng.normal(size=2 * M + 1) + 1j * rng.normal(size=2 * M + 1)
    c = (c + np.conj(c[::-1])) / 2
    r = np.linspace(0, 1, 9)
    signal = np.asarray(reconstruct("fourier_legs", c, r, t=1.0))
    np.testing.assert_allclose(signal.imag, 0, atol=1e-12)
    m = np.arange(1, M + 1)
    a, b = np.sqrt(2) * c[M + m].real, -np.sqrt(2) * c[M + m].imag
    angle = 2 * np.pi * np.outer(r, m)
    real_basis = c[M].real + np.sqrt(2) * (np.cos(angle) @ a + np.sin(angle) @ b)
    np.testing.assert_allclose(signal.real, real_basis, atol=1e-12)


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


# ----------------------------------------------------------------- recurrences


@st.composite
def discrete_systems(draw):
    N = draw(st.sampled_from([1, 4]))
    L = draw(st.sampled_from([1, 33]))
    batch = draw(st.sampled_from([(), (2,)]))
    radius = draw(st.floats(0.0, 0.98))
    seed = draw(st.integers(0, 2**32 - 1))
    u = draw(arrays(np.float64, batch + (L,), elements=finite))
    x0 = draw(arrays(np.float64, (N,), elements=finite))
    rng = np.random.default_rng(seed)
    return stable_matrix(rng, N, radius), rng.normal(size=N), u, x0


@settings(max_examples=30, deadline=None)
@given(discrete_systems())
def test_sequential_and_parallel_scans_agree_with_a_numpy_loop(system):
    Abar, Bbar, u, x0 = system
    expected = numpy_scan(Abar, Bbar, u, x0)
    scale = 1 + np.abs(expected).max()
    seq = scan_sequential(Abar, Bbar, u, x0=x0)
    par = scan_parallel(Abar, Bbar, u, x0=x0)
    assert seq.shape == par.shape == u.shape + (len(Bbar),)
    np.testing.assert_allclose(seq, expected, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(par, expected, rtol=0, atol=1e-11 * scale)


def test_scans_of_complex_and_hippo_systems():
    rng = np.random.default_rng(0)
    Abar = stable_matrix(rng, 5, 0.97, complex_=True)
    Bbar = rng.normal(size=5) + 1j * rng.normal(size=5)
    u = rng.normal(size=(3, 100))
    expected = numpy_scan(Abar, Bbar, u, 0.0)
    np.testing.assert_allclose(scan_sequential(Abar, Bbar, u), expected, atol=1e-12)
    np.testing.assert_allclose(scan_parallel(Abar, Bbar, u), expected, atol=1e-11)
    Abar, Bbar = discretize(*hippo("legt", 16), 1e-3, "bilinear")  # non-normal, |eig| close to 1
    u = np.sin(np.linspace(0, 20, 300))
    expected = numpy_scan(Abar, Bbar, u, 0.0)
    np.testing.assert_allclose(scan_parallel(Abar, Bbar, u), expected, atol=1e-11 * np.abs(expected).max())


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([1, 3]), st.sampled_from([1, 9]), st.sampled_from([(), (2,)]),
       st.integers(0, 2**32 - 1), st.booleans())
def test_time_varying_scans_agree_with_a_numpy_loop(N, L, batch, seed, with_x0):
    rng = np.random.default_rng(seed)
    Abars = rng.normal(size=(L, N, N)) / np.sqrt(N)
    Bbars = rng.normal(size=(L, N))
    u = rng.normal(size=batch + (L,))
    x0 = rng.normal(size=N) if with_x0 else None
    expected = numpy_scan(Abars, Bbars, u, 0.0 if x0 is None else x0)
    scale = 1 + np.abs(expected).max()
    np.testing.assert_allclose(scan_varying(Abars, Bbars, u, x0=x0), expected, atol=1e-12 * scale)
    np.testing.assert_allclose(scan_varying(Abars, Bbars, u, x0=x0, parallel=True), expected, atol=1e-11 * scale)


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


# ----------------------------------------------------------------- consistent LegS rules, references, counts


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


def test_jaxpr_flops_counts_products_and_elementwise_work():
    for d in (4, 32):
        A = np.ones((d, d))
        assert jaxpr_flops(lambda v: A @ v, np.ones(d)) == 2 * d * d
        assert jaxpr_flops(lambda v: v * 2.0 + 1.0, np.ones(d)) == 2 * d
    # the structured LegS products are linear in d
    from sulib.ssm import _legs_matvec, _legs_solve
    small, big = (jaxpr_flops(_legs_solve, np.ones(d), 0.1) for d in (64, 1024))
    assert 14 < big / small < 18
    assert jaxpr_flops(_legs_matvec, np.ones(1024)) == 16 * jaxpr_flops(_legs_matvec, np.ones(64))


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
