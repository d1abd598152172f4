"""The convolution kernels of sulib.ssm.kernels: every route agrees with direct powers, with the
recurrence and with NumPy, on random systems; LegS's DPLR form rebuilds the HiPPO matrix; bad input is
rejected with an error naming the argument."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.ssm import (
    discretize,
    fft_conv,
    hippo,
    kernel_diagonal,
    kernel_dplr,
    kernel_powers,
    kernel_rational,
    legs_dplr,
    rational_realization,
    scan_sequential,
    transfer_function,
    truncated_output,
)
from ssm_helpers import finite, numpy_scan, stable_matrix


def numpy_kernel(Abar, Bbar, C, L):
    """K_j = C^* Abar^j Bbar by a Python loop."""
    x, out = np.asarray(Bbar), []
    for _ in range(L):
        out.append(np.conj(C) @ x)
        x = Abar @ x
    return np.array(out)


def relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


seeds = st.integers(0, 2**32 - 1)


# ------------------------------------------------------------------- direct powers


@settings(max_examples=25, deadline=None)
@given(N=st.sampled_from([1, 3, 8]), L=st.sampled_from([1, 2, 37]), complex_=st.booleans(), seed=seeds)
def test_powers_match_a_numpy_loop(N, L, complex_, seed):
    rng = np.random.default_rng(seed)
    Abar = stable_matrix(rng, N, 0.95, complex_)
    Bbar, C = rng.normal(size=N), rng.normal(size=N) + (1j * rng.normal(size=N) if complex_ else 0)
    K = kernel_powers(Abar, Bbar, C, L)
    assert K.shape == (L,)
    assert np.iscomplexobj(K) == complex_
    assert relative(K, numpy_kernel(Abar, Bbar, C, L)) < 1e-12


@settings(max_examples=25, deadline=None)
@given(N=st.sampled_from([1, 4]), batch=st.sampled_from([(), (3,)]), L=st.sampled_from([1, 2, 50]),
       seed=seeds, data=st.data())
def test_convolution_with_the_kernel_is_the_recurrence(N, batch, L, seed, data):
    rng = np.random.default_rng(seed)
    Abar, Bbar, C = stable_matrix(rng, N, 0.97), rng.normal(size=N), rng.normal(size=N)
    u = data.draw(arrays(np.float64, batch + (L,), elements=finite))
    y = fft_conv(u, kernel_powers(Abar, Bbar, C, L))
    expected = numpy_scan(Abar, Bbar, u, np.zeros(N)) @ C
    assert y.shape == batch + (L,)
    assert np.abs(y - expected).max() <= 1e-11 * (1 + np.abs(u).sum(-1).max() * np.abs(C).sum() * np.abs(Bbar).sum())


@settings(max_examples=25, deadline=None)
@given(L=st.sampled_from([1, 2, 7, 64]), complex_K=st.booleans(), seed=seeds)
def test_fft_conv_is_the_truncated_linear_convolution(L, complex_K, seed):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(2, L))
    K = rng.normal(size=L) + (1j * rng.normal(size=L) if complex_K else 0)
    expected = np.stack([np.convolve(row, K)[:L] for row in u])
    assert np.abs(fft_conv(u, K) - expected).max() < 1e-12 * L


def test_fft_conv_without_padding_would_wrap_around():
    """The 2L padding matters: a length-L circular convolution differs from the causal one."""
    rng = np.random.default_rng(0)
    u, K = rng.normal(size=16), rng.normal(size=16)
    circular = np.fft.irfft(np.fft.rfft(u) * np.fft.rfft(K), 16)
    assert np.abs(circular - fft_conv(u, K)).max() > 0.1
    assert np.abs(np.asarray(fft_conv(u, K)) - np.convolve(u, K)[:16]).max() < 1e-12


# ------------------------------------------------------------------ diagonal kernel


@settings(max_examples=25, deadline=None)
@given(N=st.sampled_from([1, 5]), L=st.sampled_from([1, 3, 100]), method=st.sampled_from(["zoh", "bilinear"]),
       step=st.floats(1e-3, 1.0), seed=seeds)
def test_diagonal_kernel_is_the_powers_of_the_discretized_diagonal(N, L, method, step, seed):
    rng = np.random.default_rng(seed)
    Lambda = -rng.uniform(0.05, 2, N) + 1j * rng.normal(0, 5, N)
    B, C = rng.normal(size=N) + 0j, rng.normal(size=N) + 1j * rng.normal(size=N)
    if method == "zoh":  # elementwise, as NumPy writes it (a dense expm is less accurate than this)
        lam_bar, B_bar = np.exp(step * Lambda), (np.exp(step * Lambda) - 1) / Lambda * B
    else:
        lam_bar, B_bar = (1 + step * Lambda / 2) / (1 - step * Lambda / 2), step * B / (1 - step * Lambda / 2)
        Abar, Bbar = discretize(np.diag(Lambda), B, step, method)  # the dense rule agrees
        assert np.abs(np.diag(np.asarray(Abar)) - lam_bar).max() < 1e-13
        assert np.abs(np.asarray(Bbar) - B_bar).max() < 1e-13 * (1 + np.abs(B_bar).max())
    K = kernel_diagonal(Lambda, B, C, step, L, method=method)
    assert relative(K, numpy_kernel(np.diag(lam_bar), B_bar, C, L)) < 1e-11


# -------------------------------------------------------------------------- S4's DPLR


@st.composite
def dplr_systems(draw):
    N = draw(st.sampled_from([1, 2, 6]))
    rng = np.random.default_rng(draw(seeds))
    Lambda = -rng.uniform(0.2, 2, N) + 1j * rng.normal(0, 3, N)
    P, Q = (0.3 * (rng.normal(size=N) + 1j * rng.normal(size=N)) / np.sqrt(N) for _ in range(2))
    # stable by construction: diag(Λ) is normal, so (Bauer-Fike) every eigenvalue of Λ - PQ* lies
    # within ‖P‖‖Q‖ of some Λ_n; keep that below min(-Re Λ)
    shrink = min(1.0, 0.9 * (-Lambda.real).min() / (np.linalg.norm(P) * np.linalg.norm(Q)))
    P, Q = np.sqrt(shrink) * P, np.sqrt(shrink) * Q
    B, C = (rng.normal(size=N) + 1j * rng.normal(size=N) for _ in range(2))
    return Lambda, P, Q, B, C


def dense_bilinear(Lambda, P, Q, B, step):
    A = np.diag(Lambda) - np.outer(P, np.conj(Q))
    Abar, Bbar = discretize(A, B, step, "bilinear")
    return np.asarray(Abar), np.asarray(Bbar)


@settings(max_examples=25, deadline=None)
@given(system=dplr_systems(), L=st.sampled_from([1, 2, 3, 16, 33]), step=st.floats(0.01, 1.0))
def test_dplr_kernel_matches_direct_powers(system, L, step):
    """Odd and even L: even L evaluates z = -1, where 2/(1+z) has its pole."""
    Lambda, P, Q, B, C = system
    Abar, Bbar = dense_bilinear(Lambda, P, Q, B, step)
    assert np.abs(np.linalg.eigvals(Abar)).max() < 1  # the strategy's systems are stable
    expected = numpy_kernel(Abar, Bbar, C, L)
    assert relative(kernel_dplr(Lambda, P, Q, B, C, step, L), expected) < 1e-10
    Ct = truncated_output(Abar, C, L)
    assert relative(kernel_dplr(Lambda, P, Q, B, Ct, step, L, c_tilde=True), expected) < 1e-10


def test_dplr_without_the_truncation_factor_is_wrong():
    """With C in place of C̃ the roots of unity alias the kernel's tail onto its head."""
    rng = np.random.default_rng(1)
    Lambda, B, C = -0.05 + 1j * rng.normal(size=4), rng.normal(size=4) + 0j, rng.normal(size=4) + 0j
    P = Q = np.zeros(4, complex)
    L, step = 16, 0.5
    Abar, Bbar = dense_bilinear(Lambda, P, Q, B, step)
    expected = numpy_kernel(Abar, Bbar, C, L)
    assert relative(kernel_dplr(Lambda, P, Q, B, C, step, L, c_tilde=True), expected) > 0.05
    assert relative(kernel_dplr(Lambda, P, Q, B, C, step, L), expected) < 1e-12


@settings(max_examples=10, deadline=None)
@given(N=st.sampled_from([1, 2, 7, 32]), step=st.floats(1e-3, 0.5), L=st.sampled_from([8, 65]), seed=seeds)
def test_legs_dplr_rebuilds_hippo_and_its_kernel(N, step, L, seed):
    Lambda, P, B, V = legs_dplr(N)
    A, B_legs = hippo("legs", N)
    assert np.abs(V.conj().T @ V - np.eye(N)).max() < 1e-12
    assert np.abs(Lambda.real + 0.5).max() < 1e-12
    assert np.abs(V @ (np.diag(Lambda) - np.outer(P, P.conj())) @ V.conj().T - A).max() < 1e-11 * N
    assert np.abs(V @ B - B_legs).max() < 1e-12 * N
    C = np.random.default_rng(seed).normal(size=N)
    Abar, Bbar = discretize(A, B_legs, step, "bilinear")
    K = kernel_dplr(Lambda, P, P, B, V.conj().T @ C, step, L)
    expected = numpy_kernel(np.asarray(Abar), np.asarray(Bbar), C, L)
    assert relative(K, expected) < 1e-10
    assert np.abs(np.imag(K)).max() < 1e-10 * np.abs(expected).max()  # a real system's kernel is real


# ---------------------------------------------------------------- rational transfer function


@settings(max_examples=25, deadline=None)
@given(d=st.sampled_from([1, 2, 5]), L=st.sampled_from([6, 7, 40]), seed=seeds)
def test_rational_kernel_of_a_system_is_its_kernel(d, L, seed):
    rng = np.random.default_rng(seed)
    Abar, Bbar, C = stable_matrix(rng, d, 0.9), rng.normal(size=d), rng.normal(size=d)
    b, a = transfer_function(Abar, Bbar, truncated_output(Abar, C, L))
    K = kernel_rational(b, a, L)
    assert not np.iscomplexobj(K)
    assert relative(K, numpy_kernel(Abar, Bbar, C, L)) < 1e-9


@settings(max_examples=25, deadline=None)
@given(d=st.sampled_from([1, 3, 6]), L=st.sampled_from([7, 64]), seed=seeds)
def test_companion_realization_has_the_transfer_function(d, L, seed):
    """(b, a) → companion system → (b, a) is the identity, and its kernel is kernel_rational's."""
    rng = np.random.default_rng(seed)
    a = np.poly(rng.uniform(-0.9, 0.9, d))[1:]  # real roots inside the unit disk
    b = rng.normal(size=d)
    Abar, Bbar, Ct = rational_realization(b, a)
    assert np.allclose(np.poly(Abar)[1:], a, atol=1e-12)
    b2, a2 = transfer_function(Abar, Bbar, Ct)
    assert np.abs(b2 - b).max() < 1e-9 and np.abs(a2 - a).max() < 1e-9
    # C̄ with C̃ = (I - Abar^L)^* C̄ : the untruncated system whose first L entries RTF computes
    Cbar = np.linalg.solve((np.eye(d) - np.linalg.matrix_power(Abar, L)).conj().T, Ct)
    assert relative(kernel_rational(b, a, L), numpy_kernel(Abar, Bbar, Cbar, L)) < 1e-9


@settings(max_examples=25, deadline=None)
@given(d=st.sampled_from([1, 2, 5, 9]), complex_=st.booleans(), seed=seeds)
def test_transfer_function_methods_agree_and_match_the_resolvent(d, complex_, seed):
    """Hessenberg recurrence = numpy.poly on well-conditioned systems, and b(λ)/a(λ) is
    C^*(λI - Abar)^{-1} Bbar at a point off the spectrum."""
    rng = np.random.default_rng(seed)
    Abar = stable_matrix(rng, d, 0.9, complex_)
    Bbar, C = rng.normal(size=d), rng.normal(size=d) + (1j * rng.normal(size=d) if complex_ else 0)
    b, a = transfer_function(Abar, Bbar, C)
    b2, a2 = transfer_function(Abar, Bbar, C, method="eigvals")
    assert np.iscomplexobj(a) == np.iscomplexobj(b) == complex_
    scale = 1 + np.abs(np.r_[a2, b2]).max()
    assert np.abs(np.r_[b - b2, a - a2]).max() < 1e-12 * scale
    lam = 1.5 + 0.5j
    ratio = np.polyval(np.r_[0, b], lam) / np.polyval(np.r_[1, a], lam)
    resolvent = np.conj(C) @ np.linalg.solve(lam * np.eye(d) - Abar, Bbar)
    assert abs(ratio - resolvent) < 1e-10 * (1 + abs(resolvent))


def test_transfer_function_is_exact_where_eigenvalues_are_not():
    """HiPPO-LegS, N = 64, bilinear with dt = 1/16: numpy.poly (method="eigvals") gets b wrong by
    ~1e-3 relative (a by ~1e-8) on the machine this was written on, multiplying out 64 eigenvalue
    factors in floating point; the Hessenberg route agrees with the exact rational (b, a) to
    rounding."""
    from sulib.ssm.stability import legs_transfer_exact

    N, dt = 64, 1 / 16
    A, B = hippo("legs", N)
    Abar, Bbar = (np.asarray(x) for x in discretize(A, B, dt, "bilinear"))
    b_ex, a_ex = (np.array(v, float) for v in legs_transfer_exact(N, dt))
    b, a = transfer_function(Abar, Bbar, B)
    assert relative(a, a_ex) < 1e-13 and relative(b, b_ex) < 1e-13


def test_rational_kernel_complex_coefficients():
    rng = np.random.default_rng(3)
    roots = 0.8 * np.exp(2j * np.pi * rng.uniform(size=3))
    a, b = np.poly(roots)[1:], rng.normal(size=3) + 1j * rng.normal(size=3)
    Abar, Bbar, Ct = rational_realization(b, a)
    Cbar = np.linalg.solve((np.eye(3) - np.linalg.matrix_power(Abar, 20)).conj().T, Ct)
    assert relative(kernel_rational(b, a, 20), numpy_kernel(Abar, Bbar, Cbar, 20)) < 1e-10


def test_rational_kernel_rejects_a_pole_on_a_root_of_unity():
    with pytest.raises(ValueError, match="root of unity"):
        kernel_rational([1.0], [-1.0], 8)  # 1 - z vanishes at z = 1


# ------------------------------------------------------------------------- bad input

I2, v2 = np.eye(2) * 0.5, np.ones(2)
lam2 = np.array([-0.5 + 1j, -0.5 - 1j])


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: kernel_powers(np.ones((2, 3)), v2, v2, 4), ValueError, "Abar"),
        (lambda: kernel_powers(I2, np.ones(3), v2, 4), ValueError, "Bbar"),
        (lambda: kernel_powers(I2, v2, [1.0, np.nan], 4), ValueError, "C"),
        (lambda: kernel_powers(I2, v2, v2, 0), ValueError, "L"),
        (lambda: kernel_powers(I2, v2, v2, 4.0), TypeError, "L"),
        (lambda: truncated_output(I2, np.ones(3), 4), ValueError, "C"),
        (lambda: kernel_diagonal(lam2, v2, v2, 0.1, 4, method="euler"), ValueError, "method"),
        (lambda: kernel_diagonal(lam2, v2, v2, 0.0, 4), ValueError, "step"),
        (lambda: kernel_diagonal(np.zeros((2, 2)), v2, v2, 0.1, 4), ValueError, "Lambda"),
        (lambda: kernel_diagonal([0.0, -1.0], v2, v2, 0.1, 4), ValueError, "Lambda"),
        (lambda: kernel_diagonal([4.0, -1.0], v2, v2, 0.5, 4, method="bilinear"), ValueError, "step"),
        (lambda: kernel_diagonal(lam2, np.ones(3), v2, 0.1, 4), ValueError, "B"),
        (lambda: kernel_dplr(lam2, v2, np.ones(3), v2, v2, 0.1, 4), ValueError, "Q"),
        (lambda: kernel_dplr([1j, -1.0], v2, v2, v2, v2, 0.1, 4), ValueError, "Lambda"),
        (lambda: kernel_dplr(lam2, v2, v2, v2, v2, np.inf, 4), ValueError, "step"),
        (lambda: kernel_dplr(lam2, v2, v2, v2, v2, 0.1, -2), ValueError, "L"),
        (lambda: kernel_rational(v2, v2, 2), ValueError, "L"),
        (lambda: kernel_rational(v2, np.ones(3), 8), ValueError, "a"),
        (lambda: kernel_rational(np.ones((2, 2)), v2, 8), ValueError, "b"),
        (lambda: kernel_rational(["x", "y"], v2, 8), TypeError, "b"),
        (lambda: rational_realization([], []), ValueError, "b"),
        (lambda: transfer_function(I2, v2, np.ones(3)), ValueError, "C"),
        (lambda: transfer_function(I2, v2, v2, method="roots"), ValueError, "method"),
        (lambda: legs_dplr(0), ValueError, "N"),
        (lambda: fft_conv(np.ones(4), np.ones(5)), ValueError, "K"),
        (lambda: fft_conv(np.ones((2, 4)), np.ones((3, 4))), ValueError, "broadcast"),
        (lambda: fft_conv(np.ones(4) * 1j, np.ones(4)), TypeError, "u"),
        (lambda: fft_conv(np.zeros(0), np.zeros(0)), ValueError, "u"),
    ],
)
def test_bad_input_is_rejected_naming_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_scan_and_kernel_agree_for_a_hippo_system():
    """End to end on LegT: scan, FFT convolution with each kernel route that applies."""
    A, B = hippo("legt", 8)
    Abar, Bbar = discretize(A, B, 1 / 16, "bilinear")
    rng = np.random.default_rng(5)
    C, u = rng.normal(size=8), rng.normal(size=512)
    y_scan = np.asarray(scan_sequential(Abar, Bbar, u)) @ C
    K = kernel_powers(Abar, Bbar, C, 512)
    b, a = transfer_function(np.asarray(Abar), np.asarray(Bbar), truncated_output(Abar, C, 512))
    for kernel in (K, kernel_rational(b, a, 512)):
        assert np.abs(np.asarray(fft_conv(u, kernel)) - y_scan).max() < 1e-8 * np.abs(y_scan).max()
