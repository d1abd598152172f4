"""Bases, projection and reconstruction: the functions a HiPPO state holds the coefficients of
(:func:`legendre_basis`, :func:`hippo_basis`), a signal rebuilt from a state (:func:`reconstruct`)
and states computed offline from samples (:func:`project`, :func:`project_steps`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar
from sulib.ssm.hippo import HIPPO_KINDS, NORMALIZATIONS, SCALE_INVARIANT_KINDS, _LEGENDRE_KINDS
from sulib.ssm.validation import _as_array, _dtype, _signal

__all__ = [
    "legendre_basis",
    "hippo_basis",
    "reconstruct",
    "project",
    "project_steps",
]


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
