"""Recurrences that run a discrete system over a signal: sequential and parallel (associative)
scans of a time-invariant system, and the scan of a time-varying one.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib.ssm.validation import _as_array, _discrete_system, _dtype, _initial_state, _signal

__all__ = [
    "scan_sequential",
    "scan_parallel",
    "scan_varying",
]


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
