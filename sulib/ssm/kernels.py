"""Convolution kernels of a discrete linear system, four ways, and the convolution that applies them.

A time-invariant system ``x_k = Abar x_{k-1} + Bbar u_k``, ``y_k = C^* x_k`` from ``x_{-1} = 0``
(the state after ``u_0 .. u_k``, as in :func:`sulib.ssm.scan_sequential`) is a causal convolution

    ``y_k = Σ_{j=0}^{k} K_j u_{k-j}``,   ``K_j = C^* Abar^j Bbar``   (``C^*``: conjugate transpose).

The output vector is conjugated, as in posts 10162/10180 and the S4 paper: ``y = Σ_n conj(C_n) x_n``.
For a real system this is the plain product.

Kernels ``(L,)``, ``K_0 .. K_{L-1}``:
    :func:`kernel_powers`    ``C^* Abar^j Bbar`` by repeated matrix-vector products: the reference,
                             ``O(L N²)``;
    :func:`kernel_diagonal`  ``A = diag(Λ)``, discretized elementwise (DSS/S4D): a Vandermonde
                             product, ``O(L N)``;
    :func:`kernel_dplr`      ``A = diag(Λ) - P Q^*`` under the bilinear rule, S4's route: the
                             generating function at the ``L``-th roots of unity from four Cauchy
                             sums and the Woodbury identity, then an inverse FFT, ``O(L N + L log L)``;
    :func:`kernel_rational`  the rational transfer function ``(b, a)`` (RTF, post 10180): a ratio
                             of two FFTs and an inverse FFT, ``O(L log L)`` whatever the state size.

The last two evaluate ``Σ_{k<L} K_k z^k`` at ``z^L = 1``, where the infinite generating function
``C^*(I - z Abar)^{-1} Bbar`` equals ``C̃^*(I - z Abar)^{-1} Bbar`` summed to ``L`` terms only
after the output vector is replaced by ``C̃ = (I - Abar^L)^* C`` (:func:`truncated_output`).
:func:`kernel_rational` takes ``b`` for that truncated system, as RTF learns it.

Also here: :func:`legs_dplr` (HiPPO-LegS as a normal plus rank-one matrix in a unitary eigenbasis),
the companion realization of ``(b, a)`` (:func:`rational_realization`) and its inverse
(:func:`transfer_function`), and :func:`fft_conv`, the causal convolution by zero-padded FFTs.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib._checks import one_of, positive_int, positive_scalar
from sulib.ssm.hippo import hippo
from sulib.ssm.validation import _as_array, _dtype, _signal, _square, _vector

__all__ = [
    "DIAGONAL_DISCRETIZATIONS",
    "kernel_powers",
    "kernel_diagonal",
    "kernel_dplr",
    "kernel_rational",
    "truncated_output",
    "legs_dplr",
    "rational_realization",
    "transfer_function",
    "fft_conv",
]

DIAGONAL_DISCRETIZATIONS = ("bilinear", "zoh")


def _complex_dtype(*arrays) -> jnp.dtype:
    return _dtype(np.empty(0, np.complex128), *arrays)


# ------------------------------------------------------------------------- the reference


@partial(jax.jit, static_argnames=("L",))
def _kernel_powers(Abar, Bbar, C, L: int):
    c = jnp.conj(C)

    def step(x, _):
        return Abar @ x, c @ x

    _, K = lax.scan(step, Bbar, None, length=L)
    return K


def kernel_powers(Abar, Bbar, C, L: int) -> jax.Array:
    """``K_j = C^* Abar^j Bbar`` for ``j < L`` by ``L`` matrix-vector products (``2 L N²`` flops).

    The reference the fast kernels are checked against; its rounding error grows like the
    powers themselves, so it is accurate for stable systems.

    Args:
        Abar: ``(N, N)``; Bbar, C: ``(N,)`` (real or complex).
        L: number of kernel entries, ``>= 1``.

    Returns:
        ``(L,)``, real when all inputs are real, complex otherwise.
    """
    Abar = _square("Abar", Abar)
    n = Abar.shape[0]
    Bbar = _vector("Bbar", Bbar, n, "Abar")
    C = _vector("C", C, n, "Abar")
    L = positive_int("L", L)
    dtype = _dtype(Abar, Bbar, C)
    return _kernel_powers(jnp.asarray(Abar, dtype), jnp.asarray(Bbar, dtype), jnp.asarray(C, dtype), L)


@partial(jax.jit, static_argnames=("L",))
def _truncated_output(Abar, C, L: int):
    eye = jnp.eye(Abar.shape[0], dtype=Abar.dtype)
    return jnp.conj(eye - jnp.linalg.matrix_power(Abar, L)).T @ C


def truncated_output(Abar, C, L: int) -> jax.Array:
    """``C̃ = (I - Abar^L)^* C``: the output vector whose generating function, summed to infinity,
    gives the first ``L`` kernel entries at the ``L``-th roots of unity (``Abar^L`` by repeated
    squaring, ``O(N³ log L)``).

    Args:
        Abar: ``(N, N)``; C: ``(N,)``; L: ``>= 1``.

    Returns:
        ``(N,)``.
    """
    Abar = _square("Abar", Abar)
    C = _vector("C", C, Abar.shape[0], "Abar")
    L = positive_int("L", L)
    dtype = _dtype(Abar, C)
    return _truncated_output(jnp.asarray(Abar, dtype), jnp.asarray(C, dtype), L)


# -------------------------------------------------------------------- diagonal (DSS/S4D)


@partial(jax.jit, static_argnames=("L", "method"))
def _kernel_diagonal(Lambda, B, C, step, L: int, method: str):
    if method == "zoh":
        log_lam = step * Lambda
        Bbar = jnp.expm1(log_lam) / Lambda * B
    else:
        half = step * Lambda / 2
        log_lam = jnp.log((1 + half) / (1 - half))
        Bbar = step * B / (1 - half)
    powers = jnp.exp(log_lam[:, None] * jnp.arange(L))  # (N, L) Vandermonde
    return (jnp.conj(C) * Bbar) @ powers


def kernel_diagonal(Lambda, B, C, step, L: int, *, method: str = "zoh") -> jax.Array:
    """Kernel of ``x' = diag(Λ) x + B u`` discretized with step ``step``: ``K_j = Σ_n conj(C_n) B̄_n Λ̄_n^j``.

    ``method="zoh"``: ``Λ̄ = e^{step Λ}``, ``B̄ = (Λ̄ - 1)/Λ B`` (S4D, DSS);
    ``method="bilinear"``: ``Λ̄ = (1 + step Λ/2)/(1 - step Λ/2)``, ``B̄ = step B/(1 - step Λ/2)`` (S4).
    Powers are taken as ``exp(j log Λ̄)``, ``2 L N`` complex multiply-adds.

    Args:
        Lambda: ``(N,)`` complex (no zero entry for ``"zoh"``); B, C: ``(N,)``.
        step: discretization step, ``> 0``.
        L: ``>= 1``; method: ``"zoh"`` or ``"bilinear"``.

    Returns:
        ``(L,)`` complex.
    """
    Lambda = _as_array("Lambda", Lambda, min_ndim=1, allow_complex=True)
    if Lambda.ndim != 1 or Lambda.size < 1:
        raise ValueError(f"Lambda must have shape (N,) with N >= 1, got shape {Lambda.shape}")
    n = Lambda.size
    B = _vector("B", B, n, "Lambda")
    C = _vector("C", C, n, "Lambda")
    step = positive_scalar("step", step)
    L = positive_int("L", L)
    method = one_of("method", method, DIAGONAL_DISCRETIZATIONS)
    if method == "zoh" and np.any(Lambda == 0):
        raise ValueError("Lambda must have no zero entry for method='zoh' (B̄ divides by Λ)")
    if method == "bilinear" and np.any(np.isclose(step * Lambda, 2)):
        raise ValueError("step * Lambda must stay away from 2 for method='bilinear' (1 - step Λ/2 = 0)")
    dtype = _complex_dtype(Lambda, B, C)
    return _kernel_diagonal(jnp.asarray(Lambda, dtype), jnp.asarray(B, dtype), jnp.asarray(C, dtype),
                            step, L, method)


# --------------------------------------------------------------- S4: Cauchy + Woodbury


@partial(jax.jit, static_argnames=("L",))
def _kernel_dplr(Lambda, P, Q, B, Ct, step, L: int):
    ell = jnp.arange(L)
    z = jnp.exp(-2j * jnp.pi * ell / L)
    pole = 2 * ell == L  # z = -1 exactly: 2/(1+z) has a pole that the generating function lacks
    z = jnp.where(pole, 0, z)
    g = (2 / step) * (1 - z) / (1 + z)
    r = 1 / (g[:, None] - Lambda)  # (L, N): the Cauchy matrix 1/(g_l - λ_n)
    c, q = jnp.conj(Ct), jnp.conj(Q)
    weights = jnp.stack([c * B, c * P, q * B, q * P], axis=1)  # (N, 4): one pass over r
    k00, k01, k10, k11 = (r @ weights).T
    Khat = 2 / (1 + z) * (k00 - k01 * k10 / (1 + k11))
    # at z = -1, (I + Abar)^{-1} Bbar = step B / 2 for any A (bilinear rule)
    Khat = jnp.where(pole, step / 2 * jnp.sum(c * B), Khat)
    return jnp.fft.ifft(Khat)


def _dplr_dense(Lambda, P, Q, step):
    A = np.diag(Lambda) - np.outer(P, np.conj(Q))
    eye = np.eye(Lambda.size)
    return np.linalg.solve(eye - step / 2 * A, eye + step / 2 * A)


def kernel_dplr(Lambda, P, Q, B, C, step, L: int, *, c_tilde: bool = False) -> jax.Array:
    """S4's kernel of ``A = diag(Λ) - P Q^*`` under the bilinear rule, from Cauchy sums.

    The generating function at ``z_l = e^{-2πi l/L}`` is
    ``C̃^*(I - z Abar)^{-1} Bbar = 2/(1+z) · C̃^* (g(z) I - A)^{-1} B``, ``g(z) = (2/step)(1-z)/(1+z)``;
    Woodbury turns the resolvent of the rank-one update into four Cauchy sums
    ``k_{xy}(z) = Σ_n conj(x_n) y_n / (g(z) - λ_n)``:
    ``k_{C̃B} - k_{C̃P} k_{QB} / (1 + k_{QP})``. An inverse FFT gives ``K``. At ``z = -1`` (even
    ``L``), where ``2/(1+z)`` has a pole, the exact value ``step/2 · C̃^* B`` is used.
    Work ``L N`` complex divides and ``4 L N`` complex multiply-adds (one ``(L, N) @ (N, 4)``
    product) plus the FFT (the Cauchy sums are done densely here, not by
    a fast multipole method).

    Args:
        Lambda, P, Q, B, C: ``(N,)`` (complex); no ``λ_n`` may be purely imaginary (``g`` is).
        step: ``> 0``; L: ``>= 1``.
        c_tilde: if True, ``C`` is already ``C̃`` (as S4 learns it); if False (default), ``C̃``
            is computed from ``C`` with the dense ``Abar`` (:func:`truncated_output`, ``O(N³ log L)``).

    Returns:
        ``(L,)`` complex; equal to ``kernel_powers(Abar, Bbar, C, L)`` up to rounding.
    """
    Lambda = _as_array("Lambda", Lambda, min_ndim=1, allow_complex=True)
    if Lambda.ndim != 1 or Lambda.size < 1:
        raise ValueError(f"Lambda must have shape (N,) with N >= 1, got shape {Lambda.shape}")
    n = Lambda.size
    P, Q, B, C = (_vector(name, v, n, "Lambda") for name, v in (("P", P), ("Q", Q), ("B", B), ("C", C)))
    step = positive_scalar("step", step)
    L = positive_int("L", L)
    if np.any(np.real(Lambda) == 0):
        raise ValueError("Lambda must have no purely imaginary entry (g(z) is imaginary on |z| = 1)")
    if not c_tilde:
        C = np.asarray(truncated_output(_dplr_dense(Lambda, P, Q, step), C, L))
    dtype = _complex_dtype(Lambda, P, Q, B, C)
    return _kernel_dplr(*(jnp.asarray(v, dtype) for v in (Lambda, P, Q, B, C)), step, L)


def legs_dplr(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HiPPO-LegS (``hippo("legs", N)``) as ``A = V (diag(Λ) - p̃ p̃^*) V^*`` with ``V`` unitary.

    ``A + ½ v vᵀ + ½ I`` is skew-symmetric for ``v_n = √(2n+1)``, so ``A = S - ½ I - p pᵀ`` with
    ``S`` skew, ``p = v/√2``; ``iS`` is Hermitian, and its eigenvectors (``numpy.linalg.eigh``)
    diagonalize the normal part ``S - ½ I`` with eigenvalues ``Λ = -½ + iω``.

    Returns:
        ``(Lambda, P, B, V)``: ``Lambda``, ``P = V^* p``, ``B = V^* B_legs`` all ``(N,)`` complex,
        and ``V`` ``(N, N)`` unitary. In this basis ``Q = P``.
    """
    N = positive_int("N", N)
    A, B = hippo("legs", N)
    p = np.sqrt(np.arange(N) + 0.5)
    S = A + np.outer(p, p) + 0.5 * np.eye(N)
    omega, V = np.linalg.eigh(1j * S)  # iS V = V diag(ω)  =>  S V = V diag(-iω)
    return -0.5 - 1j * omega, V.conj().T @ p, V.conj().T @ B, V


# ----------------------------------------------------------- the rational transfer function


def _rational_inputs(b, a, L=None):
    b = _as_array("b", b, min_ndim=1, allow_complex=True)
    if b.ndim != 1 or b.size < 1:
        raise ValueError(f"b must have shape (d,) with d >= 1, got shape {b.shape}")
    a = _vector("a", a, b.size, "b")
    if L is not None:
        L = positive_int("L", L)
        if L <= b.size:
            raise ValueError(f"L must exceed the order d = {b.size} of (b, a), got L = {L}")
    return b, a, L


@partial(jax.jit, static_argnames=("L",))
def _kernel_rational(b, a, L: int):
    den = jnp.concatenate([jnp.ones(1, a.dtype), a])
    if jnp.iscomplexobj(b):
        return jnp.fft.ifft(jnp.fft.fft(b, L) / jnp.fft.fft(den, L))
    return jnp.fft.irfft(jnp.fft.rfft(b, L) / jnp.fft.rfft(den, L), L)


def kernel_rational(b, a, L: int) -> jax.Array:
    """The first ``L`` kernel entries of the rational transfer function (RTF, post 10180)

        ``Σ_{k<L} K_k z^k = (b_1 + b_2 z + … + b_d z^{d-1}) / (1 + a_1 z + … + a_d z^d)``  at ``z^L = 1``,

    i.e. ``K = IDFT(DFT(b_1 … b_d, 0 …) / DFT(1, a_1 … a_d, 0 …))`` with length-``L`` transforms.
    ``a`` holds the characteristic polynomial ``det(λI - Abar) = λ^d + a_1 λ^{d-1} + … + a_d`` and
    ``b`` that of the truncated system (``C̃``, :func:`truncated_output`), highest power first.

    Args:
        b, a: ``(d,)`` (real or complex); L: ``> d``.

    Returns:
        ``(L,)``, real when ``b`` and ``a`` are.

    Raises:
        ValueError: if ``DFT(1, a_1 … a_d, 0 …)`` is zero at some ``L``-th root of unity: a pole
            on the unit circle (the truncated kernel is then not defined by its ``L`` DFT values),
            or, in floating point, a denominator lost to cancellation (``Π(1 - z λ_i)`` with all
            roots ``λ_i`` near ``z``: for a system stepped finely, ``a`` has entries far larger
            than the value they sum to).
    """
    b, a, L = _rational_inputs(b, a, L)
    dtype = _dtype(b, a)
    K = _kernel_rational(jnp.asarray(b, dtype), jnp.asarray(a, dtype), L)
    if not np.all(np.isfinite(np.asarray(K))):
        raise ValueError("1 + a_1 z + … + a_d z^d is 0 at an L-th root of unity (a pole on the unit circle, "
                         "or the denominator lost to cancellation in a)")
    return K


def rational_realization(b, a) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A state-space system with transfer function ``(b, a)``: the companion form of post 10180.

    ``Abar`` has first row ``(-a_1, …, -a_d)`` and ones on the subdiagonal (so
    ``det(λI - Abar) = λ^d + a_1 λ^{d-1} + … + a_d``), ``Bbar = e_1`` and ``C^* = (b_1, …, b_d)``;
    then ``Abar - Bbar C^*`` is the companion matrix of ``a + b``. One step costs ``O(d)``.

    Returns:
        ``(Abar (d, d), Bbar (d,), C (d,))``; ``C = conj(b)`` so that ``C^* = b``.
    """
    b, a, _ = _rational_inputs(b, a)
    d = b.size
    dtype = np.result_type(b, a, float)
    Abar = np.eye(d, k=-1, dtype=dtype)
    Abar[0] = -a
    Bbar = np.zeros(d, dtype)
    Bbar[0] = 1
    return Abar, Bbar, np.conj(b).astype(dtype)


_TRANSFER_FUNCTION_METHODS = ("hessenberg", "eigvals")


def _charpoly_hessenberg(M: np.ndarray) -> np.ndarray:
    """``(1, c_1, …, c_d)`` of ``det(λI - M) = λ^d + c_1 λ^{d-1} + … + c_d``, highest power first.

    ``M`` is reduced to upper Hessenberg form ``H = Q^* M Q`` by Householder reflections
    (:func:`scipy.linalg.hessenberg`, backward stable), and ``det(λI - H)`` is built from its leading
    principal minors ``p_k = det(λI_k - H_{:k,:k})``: expanding ``p_k`` along its last column,

        ``p_k = (λ - h_kk) p_{k-1} - Σ_{i<k} h_ik (h_{i+1,i} h_{i+2,i+1} … h_{k,k-1}) p_{i-1}``

    (1-indexed, ``p_0 = 1``). ``O(d³)`` operations, no eigenvalues.
    """
    from scipy.linalg import hessenberg  # scipy is a dependency of sulib; imported where it is used

    H = hessenberg(M)
    d = H.shape[0]
    sub = np.diagonal(H, -1)  # sub[j] = h_{j+1, j} (0-indexed)
    P = np.zeros((d + 1, d + 1), H.dtype)  # P[k, j]: coefficient of λ^j in p_k (lowest power first)
    P[0, 0] = 1
    for k in range(1, d + 1):
        P[k, 1:] = P[k - 1, :-1]  # λ p_{k-1}
        P[k] -= H[k - 1, k - 1] * P[k - 1]
        if k > 1:
            chain = np.cumprod(sub[: k - 1][::-1])[::-1]  # chain[i] = h_{i+1,i} … h_{k-1,k-2}
            P[k] -= (H[: k - 1, k - 1] * chain) @ P[: k - 1]
    return P[d, ::-1]


def transfer_function(Abar, Bbar, C, *, method: str = "hessenberg") -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of a state-space system: ``a`` from ``det(λI - Abar)`` and ``a + b`` from
    ``det(λI - Abar + Bbar C^*)`` (their difference is ``C^* adj(λI - Abar) Bbar``), highest power
    first, constant leading coefficient dropped. Pass ``C = C̃`` to get the ``b`` that
    :func:`kernel_rational` expects.

    Two ways to get the characteristic polynomials:

    - ``"hessenberg"`` (default): Householder reduction to upper Hessenberg form, then the
      determinant recurrence along its columns, ``O(d³)``. It never forms eigenvalues; on
      HiPPO-LegS (``N = 64``, bilinear, ``dt = 1/16``) the coefficients agree with the exact
      rational ones (:func:`sulib.ssm.stability.legs_transfer_exact`) to ``~1e-15`` relative to
      their largest entry. The recurrence multiplies subdiagonal entries, so for very large ``d``
      with a badly scaled ``Abar`` it can over- or underflow.
    - ``"eigvals"``: ``numpy.poly``, i.e. eigenvalues, then ``Π (λ - μ_i)`` multiplied out one
      factor at a time in floating point. On the same LegS system the computed eigenvalues are off
      by ``O(0.1)`` (the matrix's eigenvalues are ill-conditioned; their symmetric functions, which
      are the coefficients, are not), and the floating-point expansion of the 64 factors loses
      ``b`` to ``~1e-3`` and ``a`` to ``~1e-8`` relative.

    The coefficients themselves can be accurate and still useless: see :func:`kernel_rational` for
    what rounding them does to poles crowding near ``z = 1``.

    Args:
        Abar: ``(d, d)``; Bbar, C: ``(d,)``. Real or complex.
        method: ``"hessenberg"`` or ``"eigvals"``.

    Returns:
        ``(b (d,), a (d,))``; real when ``Abar``, ``Bbar`` and ``C`` are.
    """
    Abar = _square("Abar", Abar)
    d = Abar.shape[0]
    Bbar = _vector("Bbar", Bbar, d, "Abar")
    C = _vector("C", C, d, "Abar")
    method = one_of("method", method, _TRANSFER_FUNCTION_METHODS)
    charpoly = _charpoly_hessenberg if method == "hessenberg" else np.poly
    a = charpoly(Abar)[1:]
    b = charpoly(Abar - np.outer(Bbar, np.conj(C)))[1:] - a
    if not (np.iscomplexobj(Abar) or np.iscomplexobj(Bbar) or np.iscomplexobj(C)):
        a, b = np.real(a), np.real(b)
    return b, a


# ---------------------------------------------------------------------------- convolution


@jax.jit
def _fft_conv(u, K):
    L = u.shape[-1]
    n = 2 * L  # zero-padding: a circular convolution of length >= 2L - 1 is the linear one
    if jnp.iscomplexobj(K):
        return jnp.fft.ifft(jnp.fft.fft(u, n) * jnp.fft.fft(K, n))[..., :L]
    return jnp.fft.irfft(jnp.fft.rfft(u, n) * jnp.fft.rfft(K, n), n)[..., :L]


def fft_conv(u, K) -> jax.Array:
    """The causal convolution ``y_k = Σ_{j<=k} K_j u_{k-j}`` of each signal with a kernel, by FFTs of
    length ``2L`` (zero-padding keeps the wrap-around of the circular convolution out of ``y``).

    Args:
        u: ``(..., L)`` real signals.
        K: ``(L,)`` or ``(..., L)`` broadcasting against ``u``; real or complex.

    Returns:
        ``(..., L)``: real when ``K`` is, complex otherwise. ``O(L log L)`` per signal.
    """
    u = _signal("u", u)
    K = _as_array("K", K, min_ndim=1, allow_complex=True)
    if K.shape[-1] != u.shape[-1]:
        raise ValueError(f"K must have L = {u.shape[-1]} entries on its last axis to match u, got shape {K.shape}")
    try:
        np.broadcast_shapes(u.shape, K.shape)
    except ValueError:
        raise ValueError(f"K of shape {K.shape} does not broadcast against u of shape {u.shape}") from None
    dtype = _dtype(u, K)
    return _fft_conv(jnp.asarray(u, dtype), jnp.asarray(K, dtype))
