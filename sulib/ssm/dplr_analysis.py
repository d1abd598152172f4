"""Why S4 goes through a diagonal-plus-low-rank form (post 10162): the exact eigenvectors of
HiPPO-LegS, their conditioning, the post's eigenvector sums ``S_n``, and the bilinear step of a
DPLR system built from two diagonal-plus-rank-one factors.

HiPPO-LegS (:func:`sulib.ssm.hippo` ``("legs", N)``) is lower triangular with eigenvalues
``-1, …, -N``. Its eigenvectors are known exactly: with ``D = diag(√(2i+1))``,

    ``A (D W) = (D W) diag(-1, …, -N)``,   ``W_ij = (-1)^(i-j) binom(i+j, i-j)`` (``i >= j``, else 0),

an integer matrix (:func:`legs_eigenvectors`; ``D⁻¹ A D`` has integer entries, so the identity is
checked in exact integer arithmetic). Everything about the conditioning of the eigenvector matrix
can therefore be computed without rounding (Frobenius norm) or in as many digits as needed
(spectral norm, mpmath): :func:`legs_eigvec_cond`. The post's sums
``S_n = Σ_{k<=n} √(2k+1) v_k`` of an eigenvector ``v`` of ``-A`` are exact rationals:
:func:`legs_eigvec_sums`.

:func:`dplr_bilinear` is the bilinear discretization of ``A = diag(Λ) - P Q^*`` written as the post
(and S4) write it, ``Abar = A1 A0`` with ``A0 = I + (step/2) A`` and
``A1 = (I - (step/2) A)^{-1} = (2/step) (D + P Q^*)^{-1}``, ``D = (2/step) I - diag(Λ)``, the latter
from the Sherman–Morrison (rank-one Woodbury) identity: two diagonal-plus-rank-one factors.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np

from sulib._checks import one_of, positive_int, positive_scalar
from sulib.ssm.validation import _as_array, _dtype, _vector

__all__ = [
    "legs_eigenvectors",
    "legs_eigvec_sums",
    "legs_eigvec_cond",
    "legs_kernel_exact",
    "dplr_bilinear",
]

#: norms accepted by :func:`legs_eigvec_cond`
COND_NORMS = ("2", "fro")


def legs_eigenvectors(N: int) -> np.ndarray:
    """The integer matrix ``W`` whose columns, scaled by ``D = diag(√(2i+1))``, are eigenvectors of
    HiPPO-LegS: ``A (D W)[:, j] = -(j+1) (D W)[:, j]``.

    ``W_ij = (-1)^(i-j) binom(i+j, i-j)`` for ``i >= j`` and 0 above the diagonal (unit diagonal).
    Equivalently ``W`` diagonalizes the integer matrix ``D⁻¹ A D`` (entries ``-(2k+1)`` below the
    diagonal in column ``k``, ``-(i+1)`` on it), which is how the tests check it exactly.

    Args:
        N: state size, ``>= 1``.

    Returns:
        ``(N, N)`` array of Python ints (``dtype=object``: the entries exceed int64 for ``N > 33``).
    """
    N = positive_int("N", N)
    W = np.zeros((N, N), dtype=object)
    for i in range(N):
        for j in range(i + 1):
            W[i, j] = (-1) ** (i - j) * math.comb(i + j, i - j)
    return W


def legs_eigvec_sums(d: int, lam: int) -> list[Fraction]:
    """The post's ``S_n = Σ_{k<=n} √(2k+1) v_k``, ``n = 0 … d-1``, for the eigenvector ``v`` of ``-A``
    (HiPPO-LegS of size ``d``) with eigenvalue ``lam``, normalized to ``S_{d-1} = 1``.

    With ``v = D W[:, lam-1]`` (:func:`legs_eigenvectors`) every term ``√(2k+1) v_k = (2k+1) W_k`` is an
    integer, so the sums are exact rationals.

    Args:
        d: state size, ``>= 1``; lam: eigenvalue of ``-A``, ``1 <= lam <= d``.

    Returns:
        ``[S_0, …, S_{d-1}]`` as ``fractions.Fraction``.
    """
    d = positive_int("d", d)
    lam = positive_int("lam", lam)
    if lam > d:
        raise ValueError(f"lam must be an eigenvalue of -A, 1 <= lam <= d = {d}, got {lam}")
    j = lam - 1
    partial, total = [], 0
    for k in range(d):
        if k >= j:
            total += (2 * k + 1) * (-1) ** (k - j) * math.comb(k + j, k - j)
        partial.append(total)
    return [Fraction(s, partial[-1]) for s in partial]


def _unit_lower_inverse(W: np.ndarray) -> list[list[int]]:
    """Exact inverse of a unit lower-triangular integer matrix (forward substitution, ints)."""
    N = W.shape[0]
    inv = [[0] * N for _ in range(N)]
    for j in range(N):
        inv[j][j] = 1
        for i in range(j + 1, N):
            inv[i][j] = -sum(W[i, k] * inv[k][j] for k in range(j, i))
    return inv


def legs_eigvec_cond(N: int, *, norm: str = "2") -> float:
    """Condition number of HiPPO-LegS's eigenvector matrix with unit-norm columns,
    ``V = D W diag(1/‖D W_j‖)`` (:func:`legs_eigenvectors`), computed without floating-point error.

    ``norm="fro"``: ``‖V‖_F ‖V⁻¹‖_F`` in exact rational arithmetic (``V⁻¹`` from the integer inverse
    of ``W``), then one square root. ``norm="2"``: the ratio of the extreme singular values, from
    mpmath's SVD with ``log10 κ_F + 30`` significant digits, enough that rounding cannot reach the
    smallest singular value (``κ_2 <= κ_F <= N κ_2``). Cost: ``O(N³)`` big-integer operations;
    the SVD takes about a second at ``N = 64``.

    Args:
        N: state size, ``1 <= N <= 400`` (the result must fit a float).
        norm: ``"2"`` (default) or ``"fro"``.

    Returns:
        ``κ`` as a float.
    """
    N = positive_int("N", N)
    if N > 400:
        raise ValueError(f"N must be <= 400 (κ would overflow a float), got {N}")
    norm = one_of("norm", norm, COND_NORMS)
    W = legs_eigenvectors(N)
    inv = _unit_lower_inverse(W)
    col2 = [sum((2 * i + 1) * W[i, j] ** 2 for i in range(N)) for j in range(N)]
    inv_fro2 = sum(Fraction(col2[j] * inv[j][i] ** 2, 2 * i + 1) for j in range(N) for i in range(j + 1))
    kappa_fro2 = N * inv_fro2  # ‖V‖_F² = N: unit columns
    with mp.workdps(40):
        kappa_fro = mp.sqrt(mp.mpf(kappa_fro2.numerator) / kappa_fro2.denominator)
    if norm == "fro":
        return float(kappa_fro)
    digits = int(mp.log10(kappa_fro)) + 30
    with mp.workdps(digits):
        V = mp.matrix(N, N)
        for j in range(N):
            scale = mp.sqrt(col2[j])
            for i in range(j, N):
                V[i, j] = mp.sqrt(2 * i + 1) * W[i, j] / scale
        sv = mp.svd_r(V, compute_uv=False)
        return float(max(sv) / min(sv))


def legs_kernel_exact(C, step, L: int, *, dps: int | None = None) -> np.ndarray:
    """The kernel ``K_k = C^* Abar^k Bbar``, ``k < L``, of HiPPO-LegS (``hippo("legs", N)``, ``B_n = √(2n+1)``)
    under the bilinear rule, from its exact eigendecomposition in ``dps``-digit arithmetic.

    With ``V = D W`` (:func:`legs_eigenvectors`) and ``B = D 1``, ``V⁻¹ B = W⁻¹ 1`` is an integer vector,
    so ``K_k = Σ_j a_j μ_j^k`` with ``μ_j = (1 - step (j+1)/2) / (1 + step (j+1)/2)`` and
    ``a_j = conj((D C)^T W)_j · (W⁻¹ 1)_j · step / (1 + step (j+1)/2)``. The ``a_j`` are as large as
    the condition number of ``V`` and cancel; ``dps`` (default ``log10 κ_F + 30``, see
    :func:`legs_eigvec_cond`) keeps that cancellation exact to far below float64 rounding. ``step``
    and ``C`` are taken as the exact binary values of their floats. Cost ``O(L N)`` mpmath operations
    (about a second for ``N = 64``, ``L = 1024``).

    Args:
        C: ``(N,)`` real or complex output vector (``y = C^* x``).
        step: ``> 0``; L: ``>= 1``; dps: significant digits, ``>= 15``.

    Returns:
        ``(L,)`` complex128, rounded once from the high-precision values.
    """
    C = _as_array("C", C, min_ndim=1, allow_complex=True)
    if C.ndim != 1 or C.size < 1:
        raise ValueError(f"C must have shape (N,) with N >= 1, got shape {C.shape}")
    N = C.size
    step = positive_scalar("step", step)
    L = positive_int("L", L)
    if dps is None:
        dps = int(math.log10(max(legs_eigvec_cond(N, norm="fro"), 1.0))) + 30
    dps = positive_int("dps", dps, minimum=15)
    W = legs_eigenvectors(N)
    inv = _unit_lower_inverse(W)
    w_B = [sum(inv[j][i] for i in range(j + 1)) for j in range(N)]  # W⁻¹ 1, exact
    out = np.empty(L, dtype=np.complex128)
    with mp.workdps(dps):
        h = mp.mpf(step)
        c = [mp.mpc(complex(x)).conjugate() * mp.sqrt(2 * i + 1) for i, x in enumerate(C)]
        a, mu = [], []
        for j in range(N):
            half = h * (j + 1) / 2
            cv = mp.fsum(c[i] * W[i, j] for i in range(j, N))
            a.append(cv * w_B[j] * h / (1 + half))
            mu.append((1 - half) / (1 + half))
        for k in range(L):
            out[k] = complex(mp.fsum(a))
            a = [x * m for x, m in zip(a, mu)]
    return out


@jax.jit
def _dplr_bilinear(Lambda, P, Q, B, step):
    n = Lambda.shape[0]
    eye = jnp.eye(n, dtype=Lambda.dtype)
    q = jnp.conj(Q)
    A0 = eye + step / 2 * (jnp.diag(Lambda) - jnp.outer(P, q))  # I + (step/2) A
    dinv = 1 / (2 / step - Lambda)  # D⁻¹, D = (2/step) I - Λ
    # (D + P Q^*)⁻¹ = D⁻¹ - D⁻¹ P (1 + Q^* D⁻¹ P)⁻¹ Q^* D⁻¹  (Sherman–Morrison)
    A1 = 2 / step * (jnp.diag(dinv) - jnp.outer(dinv * P, q * dinv) / (1 + jnp.sum(q * dinv * P)))
    return A1 @ A0, step * (A1 @ B)


def dplr_bilinear(Lambda, P, Q, B, step) -> tuple[jax.Array, jax.Array]:
    """Bilinear discretization of ``x' = (diag(Λ) - P Q^*) x + B u`` through two
    diagonal-plus-rank-one factors: ``Abar = A1 A0``, ``Bbar = step · A1 B``, where

    ``A0 = I + (step/2)(diag(Λ) - P Q^*)`` and
    ``A1 = (I - (step/2) A)^{-1} = (2/step)[D⁻¹ - D⁻¹ P (1 + Q^* D⁻¹ P)⁻¹ Q^* D⁻¹]``,
    ``D = (2/step) I - diag(Λ)``. Applied to a vector each factor costs ``O(N)``; here they are
    formed densely (``O(N²)``) and multiplied (``O(N³)``), for comparison with
    :func:`sulib.ssm.discretize` ``(A, B, step, "bilinear")``.

    Args:
        Lambda, P, Q, B: ``(N,)`` (complex); no ``λ_n`` may equal ``2/step``.
        step: ``> 0``.

    Returns:
        ``Abar (N, N)`` and ``Bbar (N,)``, complex.
    """
    Lambda = _as_array("Lambda", Lambda, min_ndim=1, allow_complex=True)
    if Lambda.ndim != 1 or Lambda.size < 1:
        raise ValueError(f"Lambda must have shape (N,) with N >= 1, got shape {Lambda.shape}")
    n = Lambda.size
    P, Q, B = (_vector(name, v, n, "Lambda") for name, v in (("P", P), ("Q", Q), ("B", B)))
    step = positive_scalar("step", step)
    if np.any(np.isclose(step * Lambda, 2)):
        raise ValueError("step * Lambda must stay away from 2 (D = 2/step - Λ would be singular)")
    dtype = _dtype(np.empty(0, np.complex128), Lambda, P, Q, B)
    return _dplr_bilinear(*(jnp.asarray(v, dtype) for v in (Lambda, P, Q, B)), step)
