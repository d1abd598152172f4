"""Structured LegS operations: the O(N) products with the LegS matrix and its shifted inverse
(:func:`legs_matvec`, :func:`legs_solve`) and the LegS recurrence built on them (:func:`legs_scan`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import solve_triangular

from sulib._checks import as_finite_array, one_of, positive_int
from sulib.ssm.discretize import LEGS_METHODS, _EXACT_START, _legs_start, _zoh
from sulib.ssm.hippo import NORMALIZATIONS, hippo
from sulib.ssm.validation import _as_array, _dtype, _signal

__all__ = [
    "legs_scan",
    "legs_matvec",
    "legs_solve",
]


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
