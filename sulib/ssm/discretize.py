"""Discretizations: the step rules of a time-invariant system (:func:`discretize`) and the
per-step matrices of the scale-invariant LegS system (:func:`legs_step_matrices`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import expm

from sulib._checks import one_of, positive_int, positive_scalar
from sulib.ssm.validation import _dtype, _square, _vector

__all__ = [
    "DISCRETIZATIONS",
    "LEGS_METHODS",
    "discretize",
    "legs_step_matrices",
]


#: Discretizations of a time-invariant system understood by :func:`discretize`.
DISCRETIZATIONS = ("forward_euler", "backward_euler", "bilinear", "zoh")
#: Step rules of the scale-invariant LegS system; see :func:`legs_step_matrices`.
LEGS_METHODS = ("bilinear", "bilinear_log", "bilinear_trap", "bilinear_logtime", "bilinear_s4", "backward_euler",
                "exact")
_EXACT_START = ("bilinear", "bilinear_log", "bilinear_trap", "bilinear_logtime", "exact")  # singular at t = 0


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
