"""Hubness (post 9147): exact k-nearest neighbours, k-occurrence counts, skewness, balls.

* :func:`knn_indices` — the ``k`` nearest other points of each row of ``x`` (shape
  ``(N, d)``) in Euclidean distance, exact, computed in blocks of query rows so that memory
  stays ``O(block · N)`` instead of ``O(N²)``; returns int32 ``(N, k)``;
* :func:`k_occurrence` — ``N_k(i)``, how often point ``i`` is among the ``k`` nearest
  neighbours of the other points (the post's "hub value"); int32 ``(N,)``, sums to ``N k``;
* :func:`skewness` — the standardized third moment ``E[(X - μ)³] / σ³`` (population form,
  as Radovanović et al. use for ``S_{N_k}``);
* :func:`log_ball_cube_ratio` — ``log(V_n / 2ⁿ)`` with ``V_n = π^{n/2} / Γ(n/2 + 1)`` the
  volume of the unit ``n``-ball and ``2ⁿ`` that of its circumscribed cube.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from sulib._checks import as_finite_array, positive_int

__all__ = ["knn_indices", "k_occurrence", "skewness", "log_ball_cube_ratio"]


def _check_points(x, k: int, block: int) -> tuple[jax.Array, int, int]:
    array = as_finite_array("x", x)
    if array.ndim != 2:
        raise ValueError(f"x must have shape (N, d), got shape {array.shape}")
    if array.dtype == bool:
        raise TypeError("x must hold real coordinates, got dtype bool")
    k = positive_int("k", k)
    block = positive_int("block", block)
    if k >= array.shape[0]:
        raise ValueError(f"k must be < N = {array.shape[0]} (a point is not its own "
                         f"neighbour), got {k}")
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else jnp.result_type(float)
    return jnp.asarray(array, dtype=dtype), k, block


def _smallest_k(d2: jax.Array, k: int) -> jax.Array:
    """Column indices of the ``k`` smallest entries of each row, ascending, ties to the
    lower index: ``k`` rounds of argmin (XLA's CPU ``top_k`` sorts whole rows, ~8x slower)."""
    rows = jnp.arange(d2.shape[0])

    def step(j, carry):
        d, out = carry
        i = jnp.argmin(d, axis=1).astype(jnp.int32)
        return d.at[rows, i].set(jnp.inf), out.at[:, j].set(i)

    out = jnp.zeros((d2.shape[0], k), jnp.int32)
    return jax.lax.fori_loop(0, k, step, (d2, out))[1]


@partial(jax.jit, static_argnames=("k", "block"))
def _knn(x: jax.Array, k: int, block: int) -> jax.Array:
    n = x.shape[0]
    blocks = -(-n // block)
    sq = jnp.sum(x * x, axis=1)
    rows = jnp.arange(blocks * block).reshape(blocks, block)

    def one_block(r):
        q = x[jnp.minimum(r, n - 1)]                            # (block, d), padded rows
        d2 = sq[jnp.minimum(r, n - 1)][:, None] + sq[None, :] - 2 * q @ x.T
        d2 = jnp.where(r[:, None] == jnp.arange(n)[None, :], jnp.inf, d2)  # not itself
        return _smallest_k(d2, k)                               # (block, k)

    return jax.lax.map(one_block, rows).reshape(blocks * block, k)[:n]


def knn_indices(x, k: int, *, block: int = 512) -> jax.Array:
    """Indices of the ``k`` nearest other points of every row of ``x``.

    ``x``: ``(N, d)`` real; ``k``: ``1 <= k < N``; ``block``: query rows per step (memory
    ``block × N`` distances). Returns int32 ``(N, k)``, nearest first; the point itself is
    excluded. Squared distances are ``‖q‖² + ‖x‖² − 2 q·x`` in ``x``'s float dtype.
    """
    x, k, block = _check_points(x, k, block)
    return _knn(x, k, min(block, x.shape[0]))


@partial(jax.jit, static_argnames=("n",))
def _count(idx: jax.Array, n: int) -> jax.Array:
    return jnp.zeros(n, jnp.int32).at[idx.ravel()].add(1)


def k_occurrence(x, k: int, *, block: int = 512) -> jax.Array:
    """``N_k(i)`` = number of points ``j ≠ i`` that have ``i`` among their ``k`` nearest.

    ``x``: ``(N, d)``; returns int32 ``(N,)`` with ``sum = N k``.
    """
    x, k, block = _check_points(x, k, block)
    return _count(_knn(x, k, min(block, x.shape[0])), x.shape[0])


@jax.jit
def _skew(v: jax.Array) -> jax.Array:
    c = v - jnp.mean(v, axis=-1, keepdims=True)
    return jnp.mean(c**3, axis=-1) / jnp.mean(c**2, axis=-1) ** 1.5


def skewness(values) -> jax.Array:
    """Population skewness ``mean((v−μ)³) / mean((v−μ)²)^{3/2}`` over the last axis.

    ``values``: ``(..., M)`` with ``M >= 2`` and not constant; returns ``(...)``.
    """
    v = as_finite_array("values", values, min_ndim=1)
    if v.shape[-1] < 2:
        raise ValueError(f"values must have at least 2 entries on the last axis, got {v.shape}")
    if np.any(np.ptp(v, axis=-1) == 0):
        raise ValueError("values must not be constant along the last axis (σ = 0)")
    return _skew(jnp.asarray(v, dtype=jnp.result_type(float)))


@jax.jit
def _log_ratio(n: jax.Array) -> jax.Array:
    return n / 2 * jnp.log(jnp.pi) - gammaln(n / 2 + 1) - n * jnp.log(2.0)


def log_ball_cube_ratio(n) -> jax.Array:
    """``log(V_n / 2ⁿ)``, the log volume fraction of the cube ``[-1, 1]ⁿ`` in the unit ball.

    ``n``: dimensions ``> 0``, any shape; returns the same shape (float).
    """
    arr = as_finite_array("n", n)
    if np.any(arr <= 0):
        raise ValueError("n must be > 0")
    return _log_ratio(jnp.asarray(arr, dtype=jnp.result_type(float)))
