"""Linear state-space models of the HiPPO family: the HiPPO matrices, their discretizations,
the recurrences that run them, and the projections their states stand for.

A HiPPO system remembers a scalar signal ``u`` as the coefficients ``x`` of its projection
onto a fixed basis over a memory window. Two families:

* time-invariant (``"legt"``, ``"lmu"``, ``"fourier_legt"``, ``"fourier"``):
  ``x'(t) = A x(t) + B u(t)``,
  window ``[t - θ, t]`` (a sliding window of length θ);
* scale-invariant (``"legs"``, ``"fourier_legs"``): ``x'(t) = (A x(t) + B u(t)) / t``,
  window ``[0, t]`` (the whole history, stretched).

Shapes:
    ``A`` ``(N, N)`` and ``B`` ``(N,)``: one continuous system; ``N`` is the state size
    (``2M + 1`` for a Fourier kind of order ``M``).
    ``Abar`` ``(N, N)``, ``Bbar`` ``(N,)``: a discrete system ``x_{k+1} = Abar x_k + Bbar u_k``;
    ``Abars`` ``(L, N, N)``, ``Bbars`` ``(L, N)``: a time-varying one (step ``k`` uses ``[k]``).
    ``u`` ``(..., L)``: ``L`` input samples per signal, any leading batch shape.
    states ``(..., L, N)``: ``states[..., k, :] = x_{k+1}``, the state after ``u_0 .. u_k`` have
    been read. The initial state ``x_0`` is an argument (zero by default) and is not returned,
    so ``states[..., -1, :]`` is the final state and ``len(states) == len(u)``.

Window position and bases. A time ``τ`` in the window is written ``r ∈ [0, 1]``:
``r = (τ - (t - θ)) / θ`` for the time-invariant kinds and ``r = τ / t`` for the scale-invariant
ones; ``r = 0`` is the oldest remembered instant, ``r = 1`` is now. The Legendre kinds use the
shifted Legendre polynomials ``φ_n(r) = √(2n+1) P_n(2r - 1)``, orthonormal on ``[0, 1]``.

Normalizations of the Legendre states (``normalization=`` of :func:`hippo`):
    ``"hippo"`` (default; the HiPPO paper, arXiv 2008.07669, and state-spaces/s4):
        ``x_n = ∫_0^1 u(r) φ_n(r) dr``, ``u ≈ Σ x_n φ_n(r)``; ``B_n = √(2n+1) / θ``.
    ``"post"`` (kexue.fm/archives/10114): orthonormal on ``s = 2r - 1 ∈ [-1, 1]``,
        ``g_n(s) = √((2n+1)/2) P_n(s)``, ``c_n = ∫_{-1}^1 u g_n ds = √2 x_n``. Same ``A``,
        ``B_n = √(2(2n+1)) / θ``. (The post's rescaling λ_n = √2 turns its state into ours.)
    ``"lmu"`` is its own kind (Voelker et al. 2019): ``m_n = (2n+1) ∫_0^1 u P_n(1 - 2r) dr``,
        i.e. ``m_n = (-1)^n √(2n+1) x_n``: Legendre polynomials of the *delay* ``1 - r``,
        unnormalized. ``hippo("lmu") == rescale(*hippo("legt"), lam)`` with
        ``lam_n = (-1)^n / √(2n+1)``.
    Any rescaling ``x = Λ x̃`` (post 10114's λ_n) gives ``(Λ⁻¹ A Λ, Λ⁻¹ B)``: :func:`rescale`.
    Post 10114's "LMU" form (eq. leg-t-hippo-2) is the LMU system with the signs ``(-1)^n`` of
    the state flipped (Legendre in ``r`` instead of the delay); and its printed
    ``λ_n = 2/√(2n+1)`` gives ``B_n = (2n+1)/(√2 w)``, not the printed ``(2n+1)/w``, which needs
    ``λ_n = √(2/(2n+1))`` (the value its LegS section uses).

state-spaces/s4's ``transition(measure, N)`` (src/models/hippo/hippo.py): its ``"legs"`` is
``hippo("legs", N)`` and its ``"lmu"`` is ``hippo("lmu", N)``; its ``"legt"`` is halved
("for timescale correctness"), which is ``hippo("legt", N, theta=2.0)``: a window of length 2.
Its ``"fourier_decay"`` is :func:`fourier_to_real` of ``hippo("fourier_legt", N/2 - 1,
theta=2.0)`` (plus an always-zero state and a sign convention on the sines), and its
``"fourier"`` is, in the same way, ``hippo("fourier", N/2 - 1, theta=2.0)``: the corrected
closure of post 10114's Fourier system (see :func:`hippo`), for a window of length 2. The tests
check all of this against a fixture computed from s4's code.

Everything returned by a jitted kernel is float64 (complex128 for complex systems) when JAX's
x64 mode is on, float32 otherwise; :func:`hippo`, :func:`rescale` and :func:`fourier_to_real`
build their matrices with NumPy and always return float64 / complex128.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jax_core
from jax.scipy.linalg import expm, solve_triangular

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar

__all__ = [
    "HIPPO_KINDS",
    "SCALE_INVARIANT_KINDS",
    "NORMALIZATIONS",
    "DISCRETIZATIONS",
    "LEGS_METHODS",
    "hippo",
    "rescale",
    "fourier_frequencies",
    "fourier_to_real",
    "discretize",
    "legs_step_matrices",
    "scan_sequential",
    "scan_parallel",
    "scan_varying",
    "legs_scan",
    "legs_matvec",
    "legs_solve",
    "legendre_basis",
    "hippo_basis",
    "reconstruct",
    "project",
    "project_steps",
    "solve_held",
    "jaxpr_flops",
]

#: Kinds understood by :func:`hippo` (and by the basis / projection functions).
HIPPO_KINDS = ("legt", "legs", "lmu", "fourier_legt", "fourier_legs", "fourier")
#: Kinds whose ODE is ``x' = (A x + B u) / t`` (window ``[0, t]``, no ``theta``).
SCALE_INVARIANT_KINDS = ("legs", "fourier_legs")
#: State normalizations of ``"legt"`` / ``"legs"``; see the module docstring.
NORMALIZATIONS = ("hippo", "post")
#: Discretizations of a time-invariant system understood by :func:`discretize`.
DISCRETIZATIONS = ("forward_euler", "backward_euler", "bilinear", "zoh")
#: Step rules of the scale-invariant LegS system; see :func:`legs_step_matrices`.
LEGS_METHODS = ("bilinear", "bilinear_log", "bilinear_trap", "bilinear_logtime", "bilinear_s4", "backward_euler",
                "exact")

_LEGENDRE_KINDS = ("legt", "legs", "lmu")
_EXACT_START = ("bilinear", "bilinear_log", "bilinear_trap", "bilinear_logtime", "exact")  # singular at t = 0


# --------------------------------------------------------------------------- argument checks


def _as_array(name: str, value, *, min_ndim: int = 0, allow_complex: bool = False) -> np.ndarray:
    """``as_finite_array``, but letting complex values through when ``allow_complex``."""
    if allow_complex:
        try:
            array = np.asarray(value)
        except Exception:  # ragged lists: let as_finite_array word the error
            array = None
        if array is not None and np.iscomplexobj(array):
            if array.ndim < min_ndim:
                raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {array.shape}")
            if array.size and not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contains non-finite values (nan or inf)")
            return array
    return as_finite_array(name, value, min_ndim=min_ndim)


def _square(name: str, value, *, allow_complex: bool = True) -> np.ndarray:
    a = _as_array(name, value, allow_complex=allow_complex)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {a.shape}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must have N >= 1, got shape {a.shape}")
    return a


def _vector(name: str, value, n: int, other: str, *, allow_complex: bool = True) -> np.ndarray:
    b = _as_array(name, value, allow_complex=allow_complex)
    if b.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match {other}, got shape {b.shape}")
    return b


def _signal(name: str, value) -> np.ndarray:
    u = as_finite_array(name, value, min_ndim=1)
    if u.shape[-1] < 1:
        raise ValueError(f"{name} must have L >= 1 samples on its last axis, got shape {u.shape}")
    return u


def _dtype(*arrays) -> jnp.dtype:
    # float64 / complex128 under x64, float32 / complex64 otherwise (and no truncation warning)
    return jax.dtypes.canonicalize_dtype(np.result_type(np.float64, *(a.dtype for a in arrays)))


def _initial_state(x0, batch: tuple, n: int) -> np.ndarray | None:
    if x0 is None:
        return None
    x0 = _as_array("x0", x0, min_ndim=1, allow_complex=True)
    if x0.shape[-1] != n:
        raise ValueError(f"x0 must have N = {n} entries on its last axis, got shape {x0.shape}")
    try:
        return np.broadcast_to(x0, batch + (n,))
    except ValueError:
        raise ValueError(f"x0 of shape {x0.shape} does not broadcast to the batch shape {batch} of u") from None


def _discrete_system(Abar, Bbar, u, x0):
    Abar = _square("Abar", Abar)
    n = Abar.shape[0]
    Bbar = _vector("Bbar", Bbar, n, "Abar")
    u = _signal("u", u)
    x0 = _initial_state(x0, u.shape[:-1], n)
    dtype = _dtype(Abar, Bbar, u, *(() if x0 is None else (x0,)))
    if x0 is None:
        x0 = np.zeros(u.shape[:-1] + (n,))
    return (jnp.asarray(Abar, dtype), jnp.asarray(Bbar, dtype), jnp.asarray(u, dtype),
            jnp.asarray(x0, dtype))


# --------------------------------------------------------------------------- HiPPO matrices


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
            measure is this system for θ = 2 (module docstring).
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


# --------------------------------------------------------------------------- discretization


def _augmented(A: jax.Array, B: jax.Array) -> jax.Array:
    n = A.shape[0]
    top = jnp.concatenate([A, B[:, None]], axis=1)
    return jnp.concatenate([top, jnp.zeros((1, n + 1), A.dtype)], axis=0)


def _zoh(A: jax.Array, B: jax.Array, h) -> tuple[jax.Array, jax.Array]:
    """``(e^{hA}, ∫_0^h e^{sA} ds B)`` from one exponential of the augmented matrix [[A, B], [0, 0]]."""
    n = A.shape[0]
    E = expm(h * _augmented(A, B))
    return E[:n, :n], E[:n, n]


@partial(jax.jit, static_argnames=("method",))
def _discretize(A: jax.Array, B: jax.Array, dt, method: str) -> tuple[jax.Array, jax.Array]:
    eye = jnp.eye(A.shape[0], dtype=A.dtype)
    if method == "forward_euler":
        return eye + dt * A, dt * B
    if method == "backward_euler":
        inv = jnp.linalg.solve(eye - dt * A, jnp.concatenate([eye, dt * B[:, None]], axis=1))
        return inv[:, :-1], inv[:, -1]
    if method == "bilinear":
        rhs = jnp.concatenate([eye + 0.5 * dt * A, dt * B[:, None]], axis=1)
        out = jnp.linalg.solve(eye - 0.5 * dt * A, rhs)
        return out[:, :-1], out[:, -1]
    return _zoh(A, B, dt)


def discretize(A, B, dt, method: str = "zoh") -> tuple[jax.Array, jax.Array]:
    """Discretize ``x' = A x + B u`` with step ``dt``, the input held constant over each step.

    Methods (post 10137, section 离散格式):
        ``"forward_euler"``: ``Abar = I + dt A``, ``Bbar = dt B`` (first order).
        ``"backward_euler"``: ``Abar = (I - dt A)⁻¹``, ``Bbar = (I - dt A)⁻¹ dt B`` (first order).
        ``"bilinear"``: ``Abar = (I - dt A/2)⁻¹ (I + dt A/2)``, ``Bbar = (I - dt A/2)⁻¹ dt B``
            (second order; Tustin / trapezoid).
        ``"zoh"``: exact for piecewise-constant input: ``Abar = e^{dt A}``,
            ``Bbar = ∫_0^dt e^{sA} ds B`` (``= A⁻¹(e^{dt A} - I) B`` when A is invertible),
            both read off one ``expm`` of the augmented matrix ``dt [[A, B], [0, 0]]``, so a
            singular ``A`` is fine.

    Args:
        A: ``(N, N)``, real or complex; B: ``(N,)``; dt: step > 0.
        method: one of :data:`DISCRETIZATIONS`.

    Returns:
        ``Abar`` ``(N, N)`` and ``Bbar`` ``(N,)``.
    """
    A = _square("A", A)
    B = _vector("B", B, A.shape[0], "A")
    dt = positive_scalar("dt", dt)
    one_of("method", method, DISCRETIZATIONS)
    dtype = _dtype(A, B)
    return _discretize(jnp.asarray(A, dtype), jnp.asarray(B, dtype), dt, method)


@partial(jax.jit, static_argnames=("length", "method"))
def _legs_matrices(A: jax.Array, B: jax.Array, start: jax.Array, dt, length: int, method: str):
    n = A.shape[0]
    eye = jnp.eye(n, dtype=A.dtype)
    real = jax.dtypes.canonicalize_dtype(np.float64)

    def one(k):
        t = jnp.where(k == 0, dt, k * dt)  # t_k = k dt (a safe stand-in at k = 0, replaced below)
        t_next = (k + 1) * dt
        h_next = dt / t_next  # dt / t_{k+1} = 1/(k+1): dt cancels
        if method in ("bilinear", "bilinear_log", "bilinear_trap"):  # post 10137, eq. legs-ode-bilinear
            h = dt / t
            h_in = {"bilinear": h, "bilinear_log": jnp.log1p(h),  # dt/t, or ∫ ds/s over the step,
                    "bilinear_trap": 0.5 * (h + h_next)}[method]      # or the trapezoid rule of ∫ ds/s
            out = jnp.linalg.solve(eye - 0.5 * h_next * A,
                                   jnp.concatenate([eye + 0.5 * h * A, h_in * B[:, None]], axis=1))
            Abar, Bbar = out[:, :-1], out[:, -1]
        elif method == "bilinear_logtime":  # the bilinear rule of the LegT form in τ = log t
            h = jnp.log1p(dt / t)
            out = jnp.linalg.solve(eye - 0.5 * h * A, jnp.concatenate([eye + 0.5 * h * A, h * B[:, None]], axis=1))
            Abar, Bbar = out[:, :-1], out[:, -1]
        elif method == "bilinear_s4":
            out = jnp.linalg.solve(eye - 0.5 * h_next * A,
                                   jnp.concatenate([eye + 0.5 * h_next * A, h_next * B[:, None]], axis=1))
            return out[:, :-1], out[:, -1]
        elif method == "backward_euler":
            out = jnp.linalg.solve(eye - h_next * A, jnp.concatenate([eye, h_next * B[:, None]], axis=1))
            return out[:, :-1], out[:, -1]
        else:  # exact: LegS is time-invariant in log t; the step is log(t_{k+1} / t_k)
            Abar, Bbar = _zoh(A, B, jnp.log1p(dt / t))
        first = k == 0  # the bounded solution on (0, dt] is the constant -A⁻¹ B u_0
        return jnp.where(first, jnp.zeros_like(Abar), Abar), jnp.where(first, start, Bbar)

    return jax.vmap(one)(jnp.arange(length, dtype=real))


def _legs_start(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    try:
        start = np.linalg.solve(A, -B)
    except np.linalg.LinAlgError:
        raise ValueError("A must be invertible for the LegS first step x_1 = -A⁻¹ B u_0") from None
    if not np.all(np.isfinite(start)):
        raise ValueError("A must be invertible for the LegS first step x_1 = -A⁻¹ B u_0")
    return start


def legs_step_matrices(A, B, L: int, *, method: str = "bilinear", dt: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """Per-step matrices of a discretized scale-invariant system ``x' = (A x + B u) / t``.

    Step ``k`` maps ``x_k ≈ x(k dt)`` to ``x_{k+1}`` with the input held at ``u_k`` on
    ``[k dt, (k+1) dt)``. Every rule depends on ``dt`` only through ``dt / t_k = 1/k``, so the
    matrices do not depend on ``dt`` (the LegS step-size independence of post 10137; ``dt`` is
    an argument so that this can be checked). Rules:

        ``"bilinear"`` (post 10137, eq. legs-ode-bilinear), for ``k >= 1``:
            ``x_{k+1} = (I - A/(2(k+1)))⁻¹ [(I + A/(2k)) x_k + B u_k / k]``: the trapezoid rule
            for ``∫ A x(s)/s ds``, but ``∫ ds/s = log((k+1)/k)`` replaced by ``1/k``, which makes
            the rule first order only (the post says this error does not matter).
        ``"bilinear_log"``: the same with the exact ``log((k+1)/k)`` for the input term. Still
            first order in general: the input weight no longer matches the trapezoid weight
            ``1/(2k) + 1/(2(k+1))`` of the state term, so a constant input does not keep the
            state at its equilibrium ``-A⁻¹ B u`` during the first (long, in ``log t``) steps;
            second order only when ``u(0) = 0``.
        ``"bilinear_trap"``: the same with the trapezoid weight ``1/(2k) + 1/(2(k+1))``: the trapezoid
            rule for the whole integrand ``(A x + B u)/s``; keeps equilibria, second order.
        ``"bilinear_logtime"``: the bilinear rule of the time-invariant form in ``τ = log t``
            with step ``h = log((k+1)/k)``: ``(I - hA/2)⁻¹ [(I + hA/2) x_k + h B u_k]``; keeps
            equilibria, second order.
        ``"bilinear_s4"`` (state-spaces/s4 ``HiPPOScale``): the time-invariant bilinear rule with
            step ``1/(k+1)``: ``(I - A/(2(k+1)))⁻¹ [(I + A/(2(k+1))) x_k + B u_k / (k+1)]``.
        ``"backward_euler"`` (s4 ``HiPPOScale``): ``(I - A/(k+1))⁻¹ [x_k + B u_k / (k+1)]``.
        ``"exact"`` (post 10137, eq. legs-ode-sol-2), for ``k >= 1``: ``e^{hA} x_k +
            A⁻¹(e^{hA} - I) B u_k`` with ``h = log((k+1)/k)``: LegS is time-invariant in ``log t``.

    The rules of ``_EXACT_START`` (all but the two s4 rules) are singular at ``k = 0`` (``t = 0``);
    there the step is the exact one: the only bounded solution on ``(0, dt]`` is
    ``x = -A⁻¹ B u_0`` (``= u_0 e_0`` for LegS: the projection of a constant), so
    ``Abar_0 = 0``, ``Bbar_0 = -A⁻¹ B``.

    Args:
        A: ``(N, N)`` (invertible for the rules with the exact first step); B: ``(N,)``.
        L: number of steps >= 1. method: one of :data:`LEGS_METHODS`. dt: step > 0.

    Returns:
        ``Abars`` ``(L, N, N)`` and ``Bbars`` ``(L, N)``, for :func:`scan_varying`.
    """
    A = _square("A", A)
    B = _vector("B", B, A.shape[0], "A")
    L = positive_int("L", L)
    one_of("method", method, LEGS_METHODS)
    dt = positive_scalar("dt", dt)
    start = _legs_start(A, B) if method in _EXACT_START else np.zeros_like(B)
    dtype = _dtype(A, B)
    return _legs_matrices(jnp.asarray(A, dtype), jnp.asarray(B, dtype), jnp.asarray(start, dtype),
                          dt, L, method)


# --------------------------------------------------------------------------- recurrences


@jax.jit
def _scan_sequential(Abar, Bbar, u, x0):
    def step(x, uk):
        x = x @ Abar.T + uk[..., None] * Bbar
        return x, x

    _, xs = lax.scan(step, x0, jnp.moveaxis(u, -1, 0))
    return jnp.moveaxis(xs, 0, -2)


def scan_sequential(Abar, Bbar, u, *, x0=None) -> jax.Array:
    """Run ``x_{k+1} = Abar x_k + Bbar u_k`` one step at a time (``lax.scan``).

    Work ``L (2N² + 2N)`` flops, depth ``L``.

    Args:
        Abar: ``(N, N)``; Bbar: ``(N,)`` (real or complex).
        u: ``(..., L)`` real inputs.
        x0: initial state ``(N,)`` or ``(..., N)``; zero by default.

    Returns:
        states ``(..., L, N)``: ``states[..., k, :] = x_{k+1}`` (``x_0`` not included).
    """
    return _scan_sequential(*_discrete_system(Abar, Bbar, u, x0))


def _shared_prefix(e: jax.Array, P: jax.Array) -> jax.Array:
    """``y_k = Σ_{m <= k} P^{k-m} e_m`` along axis -2 of ``e`` (..., M, N), by odd/even recursion.

    Time invariance makes every element's operator a power of one matrix, so a level of the
    scan needs one matrix (``P^{2^j}``) instead of one per element: O(M N) memory.
    """
    M = e.shape[-2]
    if M == 1:
        return e
    half = M // 2
    even, odd = e[..., 0:2 * half:2, :], e[..., 1:2 * half:2, :]
    y_odd = _shared_prefix(even @ P.T + odd, P @ P)  # y_1, y_3, ...: pairs fused into one step of P²
    y_even = jnp.concatenate([e[..., :1, :], y_odd[..., :(M - 1) // 2, :] @ P.T + e[..., 2:M:2, :]], axis=-2)
    pairs = jnp.stack([y_even[..., :half, :], y_odd], axis=-2).reshape(e.shape[:-2] + (2 * half, e.shape[-1]))
    return pairs if M % 2 == 0 else jnp.concatenate([pairs, y_even[..., half:, :]], axis=-2)


@jax.jit
def _scan_parallel(Abar, Bbar, u, x0):
    e = jnp.concatenate([x0[..., None, :], u[..., :, None] * Bbar], axis=-2)  # x0 as element -1
    return _shared_prefix(e, Abar)[..., 1:, :]


def scan_parallel(Abar, Bbar, u, *, x0=None) -> jax.Array:
    """Run ``x_{k+1} = Abar x_k + Bbar u_k`` as a parallel prefix scan (time-invariant systems).

    The steps are affine maps ``x ↦ Abar x + Bbar u_k``, composed associatively. Instead of a
    generic ``lax.associative_scan`` over ``(matrix, vector)`` pairs (``L`` matrices in memory,
    ``O(L N³)`` work), this uses that every composed operator is a power of ``Abar``: an odd/even
    (Blelloch-style) recursion where level ``j`` combines neighbours with the one matrix
    ``Abar^(2^j)``. Work about ``2 L (2N² + N) + 2 N³ log2 L`` flops (twice the sequential scan,
    as batched matrix products), depth ``O(log L)``, memory ``O(L N)``. No diagonalization (HiPPO
    matrices have badly conditioned eigenvectors). Same arguments and result as
    :func:`scan_sequential`; equal to it up to rounding.
    """
    return _scan_parallel(*_discrete_system(Abar, Bbar, u, x0))


@partial(jax.jit, static_argnames=("parallel",))
def _scan_varying(Abars, Bbars, u, x0, parallel: bool):
    us = jnp.moveaxis(u, -1, 0)  # (L, ...)
    if not parallel:
        def step(x, inputs):
            Ak, Bk, uk = inputs
            x = x @ Ak.T + uk[..., None] * Bk
            return x, x

        _, xs = lax.scan(step, x0, (Abars, Bbars, us))
        return jnp.moveaxis(xs, 0, -2)
    batch = (1,) * (us.ndim - 1)
    b = us[..., None] * Bbars.reshape((Bbars.shape[0],) + batch + (Bbars.shape[1],))  # (L, ..., N)
    mats = jnp.concatenate([jnp.zeros_like(Abars[:1]), Abars], axis=0)
    vecs = jnp.concatenate([x0[None], b], axis=0)

    def combine(earlier, later):
        (Ma, va), (Mb, vb) = earlier, later
        return Mb @ Ma, jnp.einsum("kij,k...j->k...i", Mb, va) + vb

    _, xs = lax.associative_scan(combine, (mats, vecs))
    return jnp.moveaxis(xs[1:], 0, -2)


def scan_varying(Abars, Bbars, u, *, x0=None, parallel: bool = False) -> jax.Array:
    """Run a time-varying recurrence ``x_{k+1} = Abars[k] x_k + Bbars[k] u_k``.

    ``parallel=False``: ``lax.scan``, ``O(L N²)``. ``parallel=True``: ``lax.associative_scan`` over
    the affine maps ``(Abars[k], Bbars[k] u_k)``, composing matrices: ``O(L N³)`` work, ``O(L N²)``
    memory, depth ``O(log L)``.

    Args:
        Abars: ``(L, N, N)``; Bbars: ``(L, N)`` (e.g. from :func:`legs_step_matrices`).
        u: ``(..., L)``; x0: ``(N,)`` or ``(..., N)``, zero by default.

    Returns:
        states ``(..., L, N)`` as in :func:`scan_sequential`.
    """
    Abars = _as_array("Abars", Abars, allow_complex=True)
    if Abars.ndim != 3 or Abars.shape[1] != Abars.shape[2] or Abars.shape[1] < 1:
        raise ValueError(f"Abars must have shape (L, N, N), got shape {Abars.shape}")
    L, n = Abars.shape[:2]
    Bbars = _as_array("Bbars", Bbars, allow_complex=True)
    if Bbars.shape != (L, n):
        raise ValueError(f"Bbars must have shape ({L}, {n}) to match Abars, got shape {Bbars.shape}")
    u = _signal("u", u)
    if u.shape[-1] != L:
        raise ValueError(f"u must have L = {L} samples on its last axis to match Abars, got shape {u.shape}")
    x0 = _initial_state(x0, u.shape[:-1], n)
    dtype = _dtype(Abars, Bbars, u, *(() if x0 is None else (x0,)))
    x0 = np.zeros(u.shape[:-1] + (n,)) if x0 is None else x0
    return _scan_varying(jnp.asarray(Abars, dtype), jnp.asarray(Bbars, dtype), jnp.asarray(u, dtype),
                         jnp.asarray(x0, dtype), bool(parallel))


# --------------------------------------------------------------------------- structured LegS


def _legs_matvec(v: jax.Array) -> jax.Array:
    n = jnp.arange(v.shape[-1], dtype=v.dtype)
    r = jnp.sqrt(2 * n + 1)
    return n * v - r * jnp.cumsum(r * v, axis=-1)


def _legs_solve(v: jax.Array, lam) -> jax.Array:
    """``(I - λA)⁻¹ v`` for the LegS A, in O(N) memory and O(N log N) work.

    With ``S_n = Σ_{k<=n} r_k z_k``: ``S_n = a_n S_{n-1} + r_n v_n / (1 + λ(n+1))``,
    ``a_n = (1 - λn) / (1 + λ(n+1))`` (post 10137), a scalar affine recurrence in n, run as a
    prefix scan; then ``z_n = (v_n - λ r_n S_{n-1}) / (1 + λ(n+1))``.
    """
    n = jnp.arange(v.shape[-1], dtype=v.dtype)
    r = jnp.sqrt(2 * n + 1)
    lam = jnp.asarray(lam, v.dtype)[..., None]
    denom = 1 + lam * (n + 1)
    a = jnp.broadcast_to((1 - lam * n) / denom, v.shape)
    c = r * v / denom

    def combine(earlier, later):
        (a1, c1), (a2, c2) = earlier, later
        return a1 * a2, a2 * c1 + c2

    _, S = lax.associative_scan(combine, (a, c), axis=-1)
    S_before = jnp.concatenate([jnp.zeros_like(S[..., :1]), S[..., :-1]], axis=-1)
    return (v - lam * r * S_before) / denom


_legs_matvec_jit = jax.jit(_legs_matvec)
_legs_solve_jit = jax.jit(_legs_solve)


def legs_matvec(v) -> jax.Array:
    """``A v`` for the LegS matrix A, in O(N): ``(A v)_n = n v_n - r_n Σ_{k<=n} r_k v_k``.

    (post 10137: ``A_nk = n δ_nk - r_n r_k`` for k <= n, with ``r_n = √(2n+1)``; the same A
    under both normalizations.)

    Args:
        v: ``(..., N)``.

    Returns:
        ``(..., N)``.
    """
    v = _as_array("v", v, min_ndim=1)
    if v.shape[-1] < 1:
        raise ValueError(f"v must have N >= 1 entries on its last axis, got shape {v.shape}")
    return _legs_matvec_jit(jnp.asarray(v, _dtype(v)))


def legs_solve(v, lam) -> jax.Array:
    """``(I - λ A)⁻¹ v`` for the LegS matrix A without forming a matrix (post 10137).

    Solves the lower-triangular system through the scalar recurrence of
    ``S_n = Σ_{k<=n} √(2k+1) z_k`` (run as an associative prefix scan: O(N) memory, O(N log N)
    work, depth O(log N)), then ``z_n = (v_n - λ r_n S_{n-1}) / (1 + λ(n+1))``.

    Args:
        v: ``(..., N)``.
        lam: λ, a scalar or an array broadcastable to ``v.shape[:-1]``; ``1 + λ(n+1) ≠ 0``
            for every n (any λ >= 0 is fine).

    Returns:
        ``(..., N)``.
    """
    v = _as_array("v", v, min_ndim=1)
    if v.shape[-1] < 1:
        raise ValueError(f"v must have N >= 1 entries on its last axis, got shape {v.shape}")
    lam = as_finite_array("lam", lam)
    try:
        fits = np.broadcast_shapes(lam.shape, v.shape[:-1]) == v.shape[:-1]
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"lam of shape {lam.shape} does not broadcast to v.shape[:-1] = {v.shape[:-1]}")
    singular = 1 + lam[..., None] * np.arange(1, v.shape[-1] + 1)
    if np.any(np.abs(singular) < 1e-12):
        raise ValueError("lam makes I - lam*A singular (1 + lam*(n+1) = 0 for some n)")
    dtype = _dtype(v, lam)
    return _legs_solve_jit(jnp.asarray(v, dtype), jnp.asarray(lam, dtype))


@partial(jax.jit, static_argnames=("method", "structured"))
def _legs_run(u, A, B, start, method: str, structured: bool):
    us = jnp.moveaxis(u, -1, 0)  # (L, ...)
    length, n = us.shape[0], B.shape[0]
    batch = us.shape[1:]
    real = jax.dtypes.canonicalize_dtype(np.float64)
    eye = jnp.eye(n, dtype=A.dtype)

    if structured:
        mul, solve = _legs_matvec, _legs_solve
    else:
        def mul(v):
            return v @ A.T

        def solve(v, lam):
            flat = v.reshape(-1, n).T
            return solve_triangular(eye - lam * A, flat, lower=True).T.reshape(v.shape)

    if method == "exact":
        def step(x, inputs):
            k, uk = inputs
            Abar, Bbar = _zoh(A, B, jnp.log1p(1 / k))
            x = x @ Abar.T + uk[..., None] * Bbar
            return x, x
    elif method in ("bilinear", "bilinear_log", "bilinear_trap"):
        def step(x, inputs):
            k, uk = inputs
            h_in = {"bilinear": 1 / k, "bilinear_log": jnp.log1p(1 / k),
                    "bilinear_trap": 0.5 / k + 0.5 / (k + 1)}[method]
            v = x + mul(x) / (2 * k) + uk[..., None] * B * h_in
            x = solve(v, 1 / (2 * (k + 1)))
            return x, x
    elif method == "bilinear_logtime":
        def step(x, inputs):
            k, uk = inputs
            h = jnp.log1p(1 / k)
            x = solve(x + 0.5 * h * mul(x) + uk[..., None] * B * h, 0.5 * h)
            return x, x
    else:
        lam_scale = 0.5 if method == "bilinear_s4" else 1.0

        def step(x, inputs):
            k, uk = inputs
            h = 1 / (k + 1)
            v = x + uk[..., None] * B * h
            if method == "bilinear_s4":
                v = v + 0.5 * h * mul(x)
            x = solve(v, lam_scale * h)
            return x, x

    if method in _EXACT_START:
        x1 = us[0][..., None] * start
        ks = jnp.arange(1, length, dtype=real)
        _, xs = lax.scan(step, x1, (ks, us[1:]))
        xs = jnp.concatenate([x1[None], xs], axis=0)
    else:
        ks = jnp.arange(length, dtype=real)
        _, xs = lax.scan(step, jnp.zeros(batch + (n,), A.dtype), (ks, us))
    return jnp.moveaxis(xs, 0, -2)


def legs_scan(u, N: int, *, method: str = "bilinear", normalization: str = "hippo",
              structured: bool = True) -> jax.Array:
    """Run HiPPO-LegS over the samples ``u``; the state after step k remembers ``u_0 .. u_k``.

    The rules are those of :func:`legs_step_matrices` (the first step of ``"bilinear"``,
    ``"bilinear_log"``, ``"bilinear_trap"``, ``"bilinear_logtime"`` and ``"exact"`` is exact:
    ``x_1 = u_0 · (-A⁻¹ B)``), starting from
    ``x_0 = 0``; the result does not depend on the step size. ``structured=True`` applies ``A``
    and ``(I - λA)⁻¹`` through :func:`legs_matvec` / :func:`legs_solve` (O(N) memory per step,
    O(N log N) work); ``structured=False`` uses the dense A and a triangular solve (O(N²) per
    step). ``"exact"`` always takes a dense ``expm`` of ``(N+1, N+1)`` per step (no structured
    form is known).

    Args:
        u: ``(..., L)`` samples, u_k held on ``[k, k+1)``.
        N: state size >= 1. method: one of :data:`LEGS_METHODS`.
        normalization: ``"hippo"`` or ``"post"`` (see :func:`hippo`).

    Returns:
        states ``(..., L, N)``: ``states[..., k, :] = x_{k+1}``, for ``"exact"`` equal to
        ``project_steps("legs", N, u[..., :k+1])``.
    """
    u = _signal("u", u)
    N = positive_int("N", N)
    one_of("method", method, LEGS_METHODS)
    one_of("normalization", normalization, NORMALIZATIONS)
    A, B = hippo("legs", N, normalization=normalization)
    start = _legs_start(A, B)
    dtype = _dtype(u)
    structured = bool(structured) or method == "exact"  # one compiled kernel: "exact" has no structured form
    return _legs_run(jnp.asarray(u, dtype), jnp.asarray(A, dtype), jnp.asarray(B, dtype),
                     jnp.asarray(start, dtype), method, structured)


# --------------------------------------------------------------------------- bases, reconstruction, projection


def _legendre(N: int, z: jax.Array) -> jax.Array:
    """``P_0(z) .. P_{N-1}(z)``, shape ``z.shape + (N,)``, by the three-term recurrence."""
    def step(carry, n):
        p_prev, p = carry
        p_next = ((2 * n + 1) * z * p - n * p_prev) / (n + 1)
        return (p, p_next), p

    ns = jnp.arange(N, dtype=z.dtype)
    _, ps = lax.scan(step, (jnp.zeros_like(z), jnp.ones_like(z)), ns)
    return jnp.moveaxis(ps, 0, -1)


@partial(jax.jit, static_argnames=("kind", "N", "normalization"))
def _basis(kind: str, N: int, normalization: str, r: jax.Array) -> jax.Array:
    if kind in _LEGENDRE_KINDS:
        n = jnp.arange(N, dtype=r.dtype)
        P = _legendre(N, 2 * r - 1)
        if kind == "lmu":
            return P * jnp.where(n % 2 == 0, 1.0, -1.0)  # P_n(1 - 2r) = (-1)^n P_n(2r - 1)
        phi = P * jnp.sqrt(2 * n + 1)
        return phi / jnp.sqrt(2.0) if normalization == "post" else phi
    f = jnp.arange(-N, N + 1, dtype=r.dtype)
    return jnp.exp(2j * jnp.pi * r[..., None] * f)


def _kind_size(kind: str, N: int) -> int:
    return N if kind in _LEGENDRE_KINDS else 2 * N + 1


def _check_kind(kind, N, normalization) -> int:
    one_of("kind", kind, HIPPO_KINDS)
    N = positive_int("N", N)
    one_of("normalization", normalization, NORMALIZATIONS)
    if normalization != "hippo" and kind not in ("legt", "legs"):
        raise ValueError(f"normalization {normalization!r} applies to 'legt' and 'legs' only, not {kind!r}")
    return N


def legendre_basis(N: int, r) -> jax.Array:
    """The orthonormal shifted Legendre polynomials ``φ_n(r) = √(2n+1) P_n(2r - 1)``, n < N.

    ``∫_0^1 φ_m φ_n dr = δ_mn``. Args: ``N`` >= 1; ``r`` ``(M,)`` (any reals; [0, 1] is the
    window). Returns ``(M, N)``.
    """
    return hippo_basis("legs", N, r)


def hippo_basis(kind: str, N: int, r, *, normalization: str = "hippo") -> jax.Array:
    """The functions whose coefficients the state of ``hippo(kind, N, ...)`` holds, at positions r.

    ``u(window(r)) ≈ hippo_basis(kind, N, r) @ x``. Legendre kinds: ``φ_n(r)`` (``"hippo"``),
    ``φ_n(r) / √2`` (``"post"``), ``P_n(1 - 2r)`` (``"lmu"``); Fourier kinds: ``e^{2πinr}``,
    ``n = -N..N`` (complex).

    Args:
        kind: one of :data:`HIPPO_KINDS`; N: as in :func:`hippo`; r: ``(M,)`` window positions.

    Returns:
        ``(M, N)`` (``(M, 2N+1)`` for Fourier kinds).
    """
    N = _check_kind(kind, N, normalization)
    r = as_finite_array("r", r)
    if r.ndim != 1:
        raise ValueError(f"r must be 1-d, got shape {r.shape}")
    return _basis(kind, N, normalization, jnp.asarray(r, _dtype(r)))


def _window_positions(kind: str, times, t, theta) -> np.ndarray:
    times = as_finite_array("times", times)
    if times.ndim != 1 or times.size < 1:
        raise ValueError(f"times must be a non-empty 1-d array, got shape {times.shape}")
    t = float(as_finite_array("t", t))
    theta = positive_scalar("theta", theta)
    if kind in SCALE_INVARIANT_KINDS:
        if theta != 1.0:
            raise ValueError(f"theta does not apply to the scale-invariant kind {kind!r} (its window is [0, t])")
        if not t > 0:
            raise ValueError(f"t must be > 0 for the scale-invariant kind {kind!r}, got {t}")
        r = times / t
    else:
        r = (times - t) / theta + 1.0
    if np.any(r < -1e-9) or np.any(r > 1 + 1e-9):
        lo, hi = (0.0, t) if kind in SCALE_INVARIANT_KINDS else (t - theta, t)
        raise ValueError(f"times must lie in the memory window [{lo:.6g}, {hi:.6g}]")
    return np.clip(r, 0.0, 1.0)


def reconstruct(kind: str, x, times, *, t: float, theta: float = 1.0, normalization: str = "hippo") -> jax.Array:
    """The signal that a HiPPO state remembers, evaluated at ``times`` inside its window.

    LegT / LMU / Fourier-LegT / Fourier: the window is ``[t - θ, t]``; LegS / Fourier-LegS: ``[0, t]``.

    Args:
        kind: one of :data:`HIPPO_KINDS`.
        x: state(s) at time ``t``, ``(..., N)`` (``(..., 2M+1)`` for a Fourier kind of order M).
        times: ``(M,)`` absolute times inside the window.
        t: the time of the state. theta: window length (time-invariant kinds).

    Returns:
        ``(..., M)``: ``Σ_n x_n basis_n(r(times))`` (complex for the Fourier kinds).
    """
    one_of("kind", kind, HIPPO_KINDS)
    x = _as_array("x", x, min_ndim=1, allow_complex=True)
    size = x.shape[-1]
    if kind not in _LEGENDRE_KINDS and size % 2 == 0:
        raise ValueError(f"x must have 2M+1 entries on its last axis for kind {kind!r}, got shape {x.shape}")
    N = size if kind in _LEGENDRE_KINDS else size // 2
    if N < 1:
        raise ValueError(f"x must have N >= 1 entries on its last axis (>= 3 for Fourier kinds), got shape {x.shape}")
    _check_kind(kind, N, normalization)
    r = _window_positions(kind, times, t, theta)
    basis = _basis(kind, N, normalization, jnp.asarray(r, _dtype(r)))
    return jnp.asarray(x, _dtype(x)) @ basis.T


@jax.jit
def _lstsq(basis: jax.Array, samples: jax.Array) -> jax.Array:
    flat = samples.reshape(-1, samples.shape[-1]).T  # (M, batch)
    coef = jnp.linalg.lstsq(basis.astype(jnp.result_type(basis, samples)), flat)[0]
    return coef.T.reshape(samples.shape[:-1] + (basis.shape[1],))


def project(kind: str, N: int, samples, times, *, t: float, theta: float = 1.0,
            normalization: str = "hippo") -> jax.Array:
    """Offline least-squares fit of sampled values by the basis of a HiPPO kind (the state it should hold).

    Minimizes ``Σ_j |basis(r_j) · x - samples_j|²`` over the state ``x``. For a polynomial of
    degree < N (Legendre kinds) sampled at >= N distinct window points the fit is exact, and
    equals the continuous L² projection that the online state approximates.

    Args:
        kind, N, normalization: as in :func:`hippo`.
        samples: ``(..., M)`` real values at ``times`` ``(M,)``, M >= state size, inside the
            window of the state at time ``t`` (see :func:`reconstruct`); fit the real and
            imaginary parts of complex data separately (the fit is linear).

    Returns:
        ``(..., N)`` (``(..., 2N+1)`` for Fourier kinds).
    """
    N = _check_kind(kind, N, normalization)
    samples = _signal("samples", samples)
    r = _window_positions(kind, times, t, theta)
    if samples.shape[-1] != r.size:
        raise ValueError(f"samples must have {r.size} values on its last axis to match times, "
                         f"got shape {samples.shape}")
    if r.size < _kind_size(kind, N):
        raise ValueError(f"times must hold at least {_kind_size(kind, N)} points to fit {kind!r} with N={N}, "
                         f"got {r.size}")
    basis = _basis(kind, N, normalization, jnp.asarray(r, _dtype(r)))
    return _lstsq(basis, jnp.asarray(samples, _dtype(samples)))


@partial(jax.jit, static_argnames=("kind", "N", "normalization"))
def _step_weights(kind: str, N: int, normalization: str, edges: jax.Array) -> jax.Array:
    """``W[j, n] = w_n ∫_{cell j} conj(basis_n(r)) dr`` for cells ``[r_j, r_{j+1}]``; ``(L, size)``."""
    if kind in _LEGENDRE_KINDS:
        z = 2 * edges - 1
        P = _legendre(N + 1, z)  # (L+1, N+1)
        n = jnp.arange(N, dtype=z.dtype)
        # Q_n(z) = ∫_{-1}^z P_n: z + 1 for n = 0, (P_{n+1} - P_{n-1}) / (2n + 1) otherwise
        P_prev = jnp.concatenate([-jnp.ones_like(z)[:, None], P[:, :N - 1]], axis=1)
        Q = (P[:, 1:N + 1] - P_prev) / (2 * n + 1)
        cell = (Q[1:] - Q[:-1]) / 2  # ∫ P_n(2r - 1) dr over each cell
        if kind == "lmu":
            return cell * ((2 * n + 1) * jnp.where(n % 2 == 0, 1.0, -1.0))
        scale = jnp.sqrt(2 * n + 1) * (jnp.sqrt(2.0) if normalization == "post" else 1.0)
        return cell * scale
    f = jnp.arange(-N, N + 1, dtype=edges.dtype)
    safe = jnp.where(f == 0, 1.0, f)
    phase = jnp.exp(-2j * jnp.pi * edges[:, None] * f)
    integral = (phase[1:] - phase[:-1]) / (-2j * jnp.pi * safe)
    return jnp.where(f == 0, (edges[1:] - edges[:-1])[:, None], integral)


def project_steps(kind: str, N: int, u, *, normalization: str = "hippo") -> jax.Array:
    """Exact L² coefficients of the piecewise-constant signal ``u`` whose L cells tile the window.

    The signal equals ``u_j`` on ``r ∈ [j/L, (j+1)/L)``; the result is ``x_n = w_n ∫_0^1 u(r)
    conj(basis_n(r)) dr`` in the basis of :func:`hippo_basis`, integrated in closed form (Legendre:
    ``∫ P_n = (P_{n+1} - P_{n-1}) / (2n+1)``). For LegS this is what the online state holds:
    ``legs_scan(u, N, method="exact")[..., -1, :] == project_steps("legs", N, u)``.

    Args:
        kind, N, normalization: as in :func:`hippo`. u: ``(..., L)``.

    Returns:
        ``(..., N)`` (``(..., 2N+1)`` complex for Fourier kinds).
    """
    N = _check_kind(kind, N, normalization)
    u = _signal("u", u)
    length = u.shape[-1]
    dtype = _dtype(u)
    edges = jnp.arange(length + 1, dtype=dtype) / length
    W = _step_weights(kind, N, normalization, edges)
    return jnp.asarray(u, dtype) @ W


# --------------------------------------------------------------------------- references and operation counts


def solve_held(A, B, u, dt: float, *, scale_invariant: bool = False, rtol: float = 1e-12,
               atol: float = 1e-14) -> np.ndarray:
    """High-accuracy reference solution of a HiPPO ODE driven by a held (piecewise-constant) input.

    Integrates ``x' = A x + B u`` (``scale_invariant=False``) or ``x' = (A x + B u) / t``
    (``scale_invariant=True``) from ``x(0) = 0`` with ``u(t) = u_k`` on ``[k dt, (k+1) dt)``,
    one piece at a time with SciPy's adaptive DOP853 (so no solver step straddles a jump of
    the input), and returns the state at the end of every piece. Independent of the
    discretizations of this module: nothing here uses ``expm`` or the step rules. For the
    scale-invariant ODE the first piece starts at the singular point ``t = 0``; there the
    bounded solution is the constant ``x = -A⁻¹ B u_0`` (what :func:`legs_step_matrices`
    uses), and the solver takes over from ``t = dt``. Not jitted (a SciPy loop over pieces).

    Args:
        A: ``(N, N)`` real or complex; B: ``(N,)``.
        u: ``(L,)`` held input values. dt: piece length > 0.
        scale_invariant: which of the two ODEs.
        rtol, atol: tolerances handed to ``scipy.integrate.solve_ivp`` (> 0).

    Returns:
        ``(L, N)`` NumPy array: row ``k`` is ``x((k+1) dt)`` (complex if ``A`` or ``B`` is).
    """
    from scipy.integrate import solve_ivp  # SciPy ships with JAX; imported here to keep sulib light

    A = _square("A", A)
    B = _vector("B", B, A.shape[0], "A")
    u = _signal("u", u)
    if u.ndim != 1:
        raise ValueError(f"u must be 1-d (L,), got shape {u.shape}")
    dt = positive_scalar("dt", dt)
    rtol = positive_scalar("rtol", rtol)
    atol = positive_scalar("atol", atol)
    dtype = np.result_type(A, B, np.float64)
    x = np.zeros(A.shape[0], dtype)
    out = np.empty((u.size, A.shape[0]), dtype)
    for k, uk in enumerate(u):
        if scale_invariant and k == 0:
            x = _legs_start(A, B).astype(dtype) * uk
        else:
            drive = B * uk
            rhs = (lambda t, y: (A @ y + drive) / t) if scale_invariant else (lambda t, y: A @ y + drive)
            sol = solve_ivp(rhs, (k * dt, (k + 1) * dt), x, method="DOP853", rtol=rtol, atol=atol)
            if not sol.success:  # pragma: no cover - DOP853 on these linear systems does not fail
                raise RuntimeError(f"solve_ivp failed on piece {k}: {sol.message}")
            x = sol.y[:, -1]
        out[k] = x
    return out


_ELEMENTWISE = {"add", "sub", "mul", "div", "neg", "sqrt", "rsqrt", "exp", "log", "log1p", "integer_pow",
                "max", "min", "abs", "square", "pow", "expm1"}


def _sub_jaxprs(params: dict):
    """The jaxprs nested in an equation's parameters (scan and jit bodies, cond branches).

    Written out because ``jax.extend.core.jaxprs_in_params`` only exists from JAX 0.8 on, and Colab
    runs 0.7.2 (tests/data/colab-pip-freeze.txt).
    """
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax_core.Jaxpr):
                yield item


def _count_jaxpr(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        out_size = sum(int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape"))
        if name in _ELEMENTWISE:
            total += out_size
        elif name in ("cumsum", "cumprod", "reduce_sum", "reduce_max"):
            total += int(np.prod(eqn.invars[0].aval.shape))
        elif name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs_shape = eqn.invars[0].aval.shape
            total += 2 * out_size * int(np.prod([lhs_shape[d] for d in contract]))
        elif name == "triangular_solve":
            a_shape, b_shape = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
            n = a_shape[-1]
            total += n * n * int(np.prod(b_shape)) // n  # n² multiply-adds per right-hand side
        for sub in _sub_jaxprs(eqn.params):
            inner = _count_jaxpr(sub)
            total += inner * int(eqn.params.get("length", 1)) if name == "scan" else inner
    return total


def jaxpr_flops(fn, *args) -> int:
    """Arithmetic operations that ``fn(*args)`` performs, counted on its jaxpr (deterministic).

    Counts one operation per output element of elementwise arithmetic (``add``, ``mul``,
    ``div``, ``sqrt``, ...), one per input element of ``cumsum`` and reductions, ``2 m n k``
    for a matrix product (``dot_general``) and ``n²`` per right-hand side of a triangular solve;
    data movement (slices, reshapes, broadcasts, concatenation, ``select``) is free. Bodies of
    ``scan`` count ``length`` times; other sub-jaxprs (``jit``, ``cond`` branches) once each.
    A machine-independent complexity measure, not a timing.

    Args:
        fn: a JAX-traceable function. args: its example arguments (arrays fix the shapes).

    Returns:
        the operation count, an int.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    return _count_jaxpr(jax.make_jaxpr(fn)(*args).jaxpr)
