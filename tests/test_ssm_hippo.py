"""The HiPPO matrices of sulib.ssm.hippo: closed forms, normalizations, and the conventions of state-spaces/s4
and HazyResearch/hippo-code."""

from pathlib import Path

import numpy as np
import pytest

import sulib.hippo_symbolic as hs
from sulib.ssm import (
    fourier_frequencies,
    fourier_to_real,
    hippo,
    project_steps,
    reconstruct,
    rescale,
)

FIXTURE = Path(__file__).parent / "data" / "s4_transition.npz"
S4_COMMIT = "e757cef57d89e448c413de7325ed5601aceaac13"


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


def s4_state_layout(A_real, B_real, N):
    """A real Fourier system in s4's state layout: (a_0, 0, a_1, -b_1, a_2, -b_2, ...), an always-zero
    slot and the sines with the other sign; ``(N, N)`` and ``(N,)``."""
    keep = np.r_[0, 2:N]
    sign = np.where(keep % 2 == 0, 1.0, -1.0)
    A, B = np.zeros((N, N)), np.zeros(N)
    A[np.ix_(keep, keep)] = A_real * np.outer(sign, sign)
    B[keep] = B_real * sign
    return A, B


@pytest.mark.parametrize("N", [4, 8, 10, 16])
def test_s4_fourier2_is_the_midpoint_fourier_closure_with_window_1(N):
    A_real, B_real = fourier_to_real(*hippo("fourier", N // 2 - 1, theta=1.0))
    A, B = s4_state_layout(A_real, B_real, N)
    A2, B2 = s4_fourier2(N)
    np.testing.assert_allclose(A, A2, rtol=0, atol=1e-14 * np.abs(A2).max())
    np.testing.assert_allclose(B, B2, rtol=0, atol=1e-14)


def test_s4_fourier_decay_is_the_real_form_of_fourier_legt_with_window_2():
    data = s4()
    for N in fixture_sizes(data, "fourier_decay"):
        if N < 4:  # order N/2 - 1 = 0 is below hippo's minimum order 1
            continue
        A_real, B_real = fourier_to_real(*hippo("fourier_legt", N // 2 - 1, theta=2.0))
        A, B = s4_state_layout(A_real, B_real, N)
        np.testing.assert_allclose(A, data[f"fourier_decay_{N}_A"], rtol=0, atol=1e-15 * np.abs(A).max())
        np.testing.assert_allclose(B, data[f"fourier_decay_{N}_B"], rtol=0, atol=1e-15)
        # s4's "fourier" keeps that rotation (window 2) but doubles the rank-one decay and B
        # (the midpoint closure, window 2)
        B0 = 2 * data[f"fourier_decay_{N}_B"]
        np.testing.assert_array_equal(data[f"fourier_{N}_A"], data[f"fourier_decay_{N}_A"] - np.outer(B0, B0) / 2)
        np.testing.assert_array_equal(data[f"fourier_{N}_B"], B0)


def test_s4_fourier_is_the_corrected_fourier_closure_with_window_2():
    data = s4()
    sizes = [N for N in fixture_sizes(data, "fourier") if N >= 4]
    assert sizes
    for N in sizes:
        A_real, B_real = fourier_to_real(*hippo("fourier", N // 2 - 1, theta=2.0))
        A, B = s4_state_layout(A_real, B_real, N)
        np.testing.assert_allclose(A, data[f"fourier_{N}_A"], rtol=0, atol=1e-14 * np.abs(A).max())
        np.testing.assert_allclose(B, data[f"fourier_{N}_B"], rtol=0, atol=1e-14)
        # and it is not the post's closure at any window: its B is twice that of "fourier_legt"
        A_post, B_post = fourier_to_real(*hippo("fourier_legt", N // 2 - 1, theta=2.0))
        _, B_post = s4_state_layout(A_post, B_post, N)
        assert np.abs(B_post - data[f"fourier_{N}_B"]).max() > 0.4


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
