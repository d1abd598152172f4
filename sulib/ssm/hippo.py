"""The continuous HiPPO matrices: :func:`hippo` for every kind in :data:`HIPPO_KINDS`, the
rescalings of a state (:func:`rescale`) and the Fourier helpers (:func:`fourier_frequencies`,
:func:`fourier_to_real`). Built with NumPy, always float64 / complex128.
"""

from __future__ import annotations

import numpy as np

from sulib._checks import one_of, positive_int, positive_scalar
from sulib.ssm.validation import _square, _vector

__all__ = [
    "HIPPO_KINDS",
    "SCALE_INVARIANT_KINDS",
    "NORMALIZATIONS",
    "hippo",
    "rescale",
    "fourier_frequencies",
    "fourier_to_real",
]


#: Kinds understood by :func:`hippo` (and by the basis / projection functions).
HIPPO_KINDS = ("legt", "legs", "lmu", "fourier_legt", "fourier_legs", "fourier")
#: Kinds whose ODE is ``x' = (A x + B u) / t`` (window ``[0, t]``, no ``theta``).
SCALE_INVARIANT_KINDS = ("legs", "fourier_legs")
#: State normalizations of ``"legt"`` / ``"legs"``; see the :mod:`sulib.ssm` docstring.
NORMALIZATIONS = ("hippo", "post")
_LEGENDRE_KINDS = ("legt", "legs", "lmu")


def _legendre_matrices(kind: str, n_state: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(n_state)
    row, col = n[:, None], n[None, :]
    r = np.sqrt(2.0 * n + 1.0)
    parity = np.where((row - col) % 2 == 0, 1.0, -1.0)  # (-1)^(n-k)
    if kind == "legt":
        A = -np.outer(r, r) * np.where(col < row, 1.0, parity) / theta
        B = r / theta
    elif kind == "legs":
        A = -np.where(col < row, np.outer(r, r), 0.0) - np.diag(n + 1.0)
        B = r.copy()
    else:  # lmu
        A = (2.0 * n + 1.0)[:, None] * np.where(row < col, -1.0, -parity) / theta
        B = (2.0 * n + 1.0) * np.where(n % 2 == 0, 1.0, -1.0) / theta
    return A.astype(np.float64), B.astype(np.float64)


def fourier_frequencies(M: int) -> np.ndarray:
    """The frequencies ``n = -M, ..., M`` that index the state of a Fourier kind of order M; ``(2M+1,)``."""
    M = positive_int("M", M)
    return np.arange(-M, M + 1)


def _fourier_matrices(kind: str, order: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    f = np.arange(-order, order + 1, dtype=np.float64)
    size = f.size
    if kind == "fourier_legt":  # post 10114: A_nk = (2iπn - 1)/w on the diagonal, -1/w elsewhere
        A = (-np.ones((size, size)) + np.diag(2j * np.pi * f)) / theta
        B = np.ones(size) / theta
    elif kind == "fourier":  # the corrected closure: A_nk = (2iπn δ_nk - 2)/w, B_n = 2/w
        A = (-2.0 * np.ones((size, size)) + np.diag(2j * np.pi * f)) / theta
        B = 2.0 * np.ones(size) / theta
    else:  # fourier_legs, post 10137: A_nk = -n/(n-k) off the diagonal, iπn - 1 on it
        diff = f[:, None] - f[None, :]
        off = -f[:, None] / np.where(diff == 0, 1.0, diff)
        A = np.where(diff == 0, 0.0, off) + np.diag(1j * np.pi * f - 1.0)
        B = np.ones(size)
    return A.astype(np.complex128), B.astype(np.complex128)


def hippo(kind: str, N: int, *, theta: float = 1.0, normalization: str = "hippo") -> tuple[np.ndarray, np.ndarray]:
    """The HiPPO matrices ``(A, B)`` of one memory kind.

    Kinds (``k`` is the column, ``n`` the row, both from 0; ``r_n = √(2n+1)``):
        ``"legt"``: sliding window of length θ (post 10114, eq. leg-t-hippo-1):
            ``A_nk = -(r_n r_k / θ) · (1 if k < n else (-1)^(n-k))``, ``B_n = r_n / θ``.
        ``"legs"``: whole history, ``x' = (A x + B u) / t`` (post 10114, eq. leg-s-hippo):
            ``A_nk = -r_n r_k`` (k < n), ``-(n+1)`` (k = n), 0 (k > n); ``B_n = r_n``.
            Lower triangular, eigenvalues ``-1, ..., -N``.
        ``"lmu"``: the Legendre Memory Unit's system (Voelker et al. 2019), a rescaled LegT:
            ``A_nk = ((2n+1) / θ) · (-1 if n < k else (-1)^(n-k+1))``, ``B_n = (2n+1)(-1)^n / θ``.
        ``"fourier_legt"``: complex Fourier basis ``e^{2πinr}`` on a window of length θ
            (post 10114): ``A_nk = (2iπn - 1)/θ`` (k = n), ``-1/θ`` (k ≠ n); ``B_n = 1/θ``.
        ``"fourier_legs"``: the Fourier analogue of LegS (post 10137), ``x' = (A x + B u) / t``:
            ``A_nk = -n / (n - k)`` (k ≠ n), ``iπn - 1`` (k = n); ``B_n = 1``.
        ``"fourier"``: the same basis and window as ``"fourier_legt"``, with the closure that
            converges: the truncated series ``Σ_k x_k`` tends to ``(u(t-θ) + u(t))/2`` (the
            window's two ends meet in its periodic extension), so ``u(t-θ) ≈ 2 Σ_k x_k - u(t)``
            and ``A_nk = (2iπn δ_nk - 2)/θ``, ``B_n = 2/θ``. state-spaces/s4's ``"fourier"``
            measure is this system for θ = 2 (:mod:`sulib.ssm` docstring).
        For the Fourier kinds ``N`` is the order: frequencies ``n = -N..N``
        (:func:`fourier_frequencies`) and matrices of size ``2N + 1``, complex128.

    Args:
        kind: one of :data:`HIPPO_KINDS`.
        N: state size (Legendre kinds) or order (Fourier kinds), >= 1.
        theta: window length θ > 0 of the time-invariant kinds; the scale-invariant kinds
            have no window and accept only the default.
        normalization: ``"hippo"`` (HiPPO paper and state-spaces/s4) or ``"post"`` (the blog's
            orthonormal basis on [-1, 1]: ``B`` times √2, ``A`` unchanged); ``"legt"``/``"legs"`` only.

    Returns:
        ``A`` ``(N, N)`` and ``B`` ``(N,)``, NumPy float64 (complex128 for the Fourier kinds).
    """
    one_of("kind", kind, HIPPO_KINDS)
    N = positive_int("N", N)
    theta = positive_scalar("theta", theta)
    one_of("normalization", normalization, NORMALIZATIONS)
    if kind in SCALE_INVARIANT_KINDS and theta != 1.0:
        raise ValueError(f"theta does not apply to the scale-invariant kind {kind!r} (its window is [0, t])")
    if normalization != "hippo" and kind not in ("legt", "legs"):
        raise ValueError(f"normalization {normalization!r} applies to 'legt' and 'legs' only, not {kind!r}")
    if kind in _LEGENDRE_KINDS:
        A, B = _legendre_matrices(kind, N, theta)
        if normalization == "post":
            B = B * np.sqrt(2.0)
        return A, B
    return _fourier_matrices(kind, N, theta)


def rescale(A, B, lam) -> tuple[np.ndarray, np.ndarray]:
    """The system of the rescaled state ``x̃ = Λ⁻¹ x`` (``x_n = λ_n x̃_n``): ``(Λ⁻¹ A Λ, Λ⁻¹ B)``.

    This is post 10114's ``c_n = λ_n c̃_n``. ``lam`` may carry signs (e.g. ``(-1)^n`` flips the
    direction of the Legendre variable).

    Args:
        A: ``(N, N)``; B: ``(N,)``; lam: ``(N,)``, nonzero.

    Returns:
        ``(N, N)`` and ``(N,)`` NumPy arrays.
    """
    A = _square("A", A)
    n = A.shape[0]
    B = _vector("B", B, n, "A")
    lam = _vector("lam", lam, n, "A")
    if np.any(lam == 0):
        raise ValueError("lam must be nonzero everywhere")
    return A * lam[None, :] / lam[:, None], B / lam


def fourier_to_real(A, B) -> tuple[np.ndarray, np.ndarray]:
    """A complex Fourier system (frequencies ``-M..M``) in the real cosine/sine basis.

    The real state is ``(a_0, a_1, b_1, ..., a_M, b_M)`` with ``a_0 = c_0``,
    ``a_m = √2 Re c_m``, ``b_m = -√2 Im c_m``, the coefficients of ``u`` in the orthonormal basis
    ``1, √2 cos(2πmr), √2 sin(2πmr)`` of ``[0, 1]``: ``x_real = T x`` with ``T`` unitary, so the
    system becomes ``(T A Tᴴ, T B)``. Valid for conjugate-symmetric systems (``A_{-n,-k} =
    conj A_{n,k}``, ``B_{-n} = conj B_n``), which all three Fourier kinds are.

    Args:
        A: ``(2M+1, 2M+1)`` complex; B: ``(2M+1,)``.

    Returns:
        real ``(2M+1, 2M+1)`` and ``(2M+1,)`` float64 NumPy arrays.
    """
    A = _square("A", A)
    size = A.shape[0]
    B = _vector("B", B, size, "A")
    if size % 2 == 0:
        raise ValueError(f"A must have odd size 2M+1 (frequencies -M..M), got shape {A.shape}")
    M = size // 2
    T = np.zeros((size, size), dtype=np.complex128)
    T[0, M] = 1.0
    for m in range(1, M + 1):
        T[2 * m - 1, M + m] = T[2 * m - 1, M - m] = 1 / np.sqrt(2.0)
        T[2 * m, M + m], T[2 * m, M - m] = 1j / np.sqrt(2.0), -1j / np.sqrt(2.0)
    A_real, B_real = T @ A @ T.conj().T, T @ B
    scale = max(np.abs(A).max(), np.abs(B).max(), 1.0)
    if max(np.abs(A_real.imag).max(), np.abs(B_real.imag).max()) > 1e-12 * scale:
        raise ValueError("A, B are not conjugate-symmetric, so they have no real cosine/sine form")
    return A_real.real.copy(), B_real.real.copy()
