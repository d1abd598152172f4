"""Rank of attention matrices: bidirectional against causal, softmax against linear (post 9529).

Post 9529 argues that a causal (decoder-only) attention matrix is full rank because it is
triangular with a positive diagonal, while a bidirectional one inherits the low rank of
``QKᵀ``. This module holds what the chapter measures that with:

* :func:`attention_matrix`: the ``n × n`` attention matrix for softmax or linear attention
  (a positive feature map), bidirectional, causal (lower-triangular) or anti-causal
  (upper-triangular);
* :func:`triangular_logdet`: sign and ``log|det|`` of triangular matrices from their diagonal,
  in log space, so that ``det ≈ 10^-13000`` does not underflow;
* :func:`rank_measures`: singular values, the numerical rank at a stated relative threshold,
  the entropy effective rank and the stable rank;
* :func:`stack_residuals`: the distance to rank one (all rows equal) through a stack of
  attention layers, with or without skip connections (rank collapse, Dong et al. 2021).

Everything is float64 when JAX's x64 mode is on (the chapters turn it on), float32 otherwise.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, one_of, positive_scalar

__all__ = ["KINDS", "MASKS", "FEATURES", "attention_matrix", "triangular_logdet", "LogDet",
           "rank_measures", "RankMeasures", "stack_residuals"]

KINDS = ("softmax", "linear")
"""Attention kinds of :func:`attention_matrix`."""

MASKS = ("none", "causal", "anticausal")
"""Masks: bidirectional, lower-triangular (key j <= query i), upper-triangular (j >= i)."""

FEATURES = ("elu1", "relu", "exp")
"""Feature maps φ of linear attention: ``elu(x) + 1`` and ``exp(x)`` are > 0, ``relu`` can be 0."""


def _real(name: str, value) -> np.ndarray:
    """``value`` as a float array with at least 2 dimensions; bool is rejected."""
    array = as_finite_array(name, value, min_ndim=2)
    if array.dtype == bool:
        raise TypeError(f"{name} must hold real numbers, got dtype bool")
    return array.astype(np.result_type(array.dtype, np.float32))


def _mask(n: int, mask: str) -> jax.Array:
    i = jnp.arange(n)[:, None]
    j = jnp.arange(n)[None, :]
    if mask == "causal":
        return j <= i
    if mask == "anticausal":
        return j >= i
    return jnp.ones((n, n), bool)


def _feature(x, feature: str):
    if feature == "elu1":
        return jax.nn.elu(x) + 1.0
    if feature == "relu":
        return jnp.maximum(x, 0.0)
    return jnp.exp(x)


@partial(jax.jit, static_argnames=("kind", "mask", "feature"))
def _attention(q, k, scale, kind: str, mask: str, feature: str):
    m = _mask(q.shape[-2], mask)
    if kind == "softmax":
        s = scale * jnp.einsum("...id,...jd->...ij", q, k)
        return jax.nn.softmax(jnp.where(m, s, -jnp.inf), axis=-1)
    w = jnp.einsum("...id,...jd->...ij", _feature(scale * q, feature), _feature(k, feature))
    w = jnp.where(m, w, 0.0)
    return w / w.sum(axis=-1, keepdims=True)


def attention_matrix(q, k, *, kind: str = "softmax", mask: str = "none", scale=None,
                     feature: str = "elu1") -> jax.Array:
    """The attention matrix ``A`` (rows sum to 1) of queries ``q`` against keys ``k``.

    * softmax: ``A_ij = exp(λ q_i·k_j) / Σ_{l∈M_i} exp(λ q_i·k_l)`` for ``j ∈ M_i``, else 0;
    * linear: ``A_ij = φ(λ q_i)·φ(k_j) / Σ_{l∈M_i} φ(λ q_i)·φ(k_l)`` for ``j ∈ M_i``, else 0,

    with ``λ = scale`` and ``M_i`` all keys (``mask="none"``), ``j <= i`` (``"causal"``) or
    ``j >= i`` (``"anticausal"``). A linear row whose normaliser is 0 (possible only with
    ``feature="relu"``) comes out as NaN. Softmax scores that overflow to ``inf`` (entries of
    order ``1e150`` and more) raise a ValueError instead of returning NaN.

    Args:
        q: ``(..., n, d)`` queries.
        k: ``(..., n, d)`` keys, the shape of ``q``.
        kind: one of :data:`KINDS`.
        mask: one of :data:`MASKS`.
        scale: ``λ > 0``; default ``1/√d`` for softmax and 1 for linear attention.
        feature: the feature map φ of linear attention, one of :data:`FEATURES`.

    Returns:
        ``(..., n, n)`` attention matrices.
    """
    q = _real("q", q)
    k = _real("k", k)
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {q.shape}, got {k.shape}")
    if q.shape[-2] < 1 or q.shape[-1] < 1:
        raise ValueError(f"q must have n >= 1 rows and d >= 1 columns, got shape {q.shape}")
    one_of("kind", kind, KINDS)
    one_of("mask", mask, MASKS)
    one_of("feature", feature, FEATURES)
    if scale is None:
        scale = q.shape[-1] ** -0.5 if kind == "softmax" else 1.0
    scale = positive_scalar("scale", scale)
    out = _attention(jnp.asarray(q), jnp.asarray(k), scale, kind, mask, feature)
    if kind == "softmax" and not bool(jnp.all(jnp.isfinite(out))):
        raise ValueError("q, k and scale give scores that overflow to inf (softmax is NaN); "
                         "shrink scale or the entries of q, k")
    return out


class LogDet(NamedTuple):
    """``det A = sign · exp(logabsdet)``, each of shape ``(...)``."""

    sign: jax.Array
    logabsdet: jax.Array


@jax.jit
def _tri_logdet(a):
    diag = jnp.diagonal(a, axis1=-2, axis2=-1)
    sign = jnp.prod(jnp.sign(diag), axis=-1)
    return LogDet(sign, jnp.sum(jnp.log(jnp.abs(diag)), axis=-1))


def triangular_logdet(a) -> LogDet:
    """Sign and ``log|det|`` of triangular matrices, from the diagonal alone.

    ``det A = Π_i A_ii`` for a triangular ``A``; the product of ``n`` numbers like ``1/i``
    underflows float64 near ``n ≈ 170``, the sum of their logs does not. A zero on the
    diagonal gives sign 0 and ``logabsdet = -inf``.

    Args:
        a: ``(..., n, n)``, every matrix lower- or upper-triangular (exact zeros).

    Returns:
        :class:`LogDet` of shape ``(...)``.
    """
    a = _real("a", a)
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a must hold square matrices, got shape {a.shape}")
    above = np.any(np.triu(a, 1) != 0, axis=(-2, -1))
    below = np.any(np.tril(a, -1) != 0, axis=(-2, -1))
    if np.any(above & below):
        raise ValueError("a must hold triangular matrices (lower or upper, exact zeros)")
    return _tri_logdet(jnp.asarray(a))


class RankMeasures(NamedTuple):
    """Rank measures of :func:`rank_measures`; each has shape ``(...)`` except ``singular_values``.

    * ``singular_values``: ``(..., min(m, n))``, descending;
    * ``numerical_rank``: the number of singular values ``> rtol · σ_1``;
    * ``entropy_rank``: ``exp(-Σ p_i log p_i)`` with ``p_i = σ_i / Σ σ`` (Roy & Vetterli's
      effective rank): no threshold, ``1`` for rank one, ``min(m, n)`` for equal singular values;
    * ``stable_rank``: ``‖A‖_F² / ‖A‖_2² = Σ σ_i² / σ_1²``, at most the rank, robust to noise;
    * ``condition``: ``σ_1 / σ_min`` (``inf`` for a singular matrix).
    """

    singular_values: jax.Array
    numerical_rank: jax.Array
    entropy_rank: jax.Array
    stable_rank: jax.Array
    condition: jax.Array


@jax.jit
def _rank(a, rtol):
    s = jnp.linalg.svd(a, compute_uv=False)
    top = s[..., :1]
    rank = jnp.sum(s > rtol * top, axis=-1)
    p = s / jnp.sum(s, axis=-1, keepdims=True)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
    stable = jnp.sum(s**2, axis=-1) / top[..., 0] ** 2
    return RankMeasures(s, rank, jnp.exp(h), stable, top[..., 0] / s[..., -1])


def rank_measures(a, *, rtol: float = 1e-6) -> RankMeasures:
    """Singular values and three rank measures of matrices ``a``.

    Args:
        a: ``(..., m, n)``, not all zero.
        rtol: relative threshold of the numerical rank, in ``(0, 1)``. A float64 SVD resolves
            singular values down to about ``max(m, n) · 2e-16 · σ_1``; the default ``1e-6``
            sits far above that noise floor.

    Returns:
        :class:`RankMeasures`.
    """
    a = _real("a", a)
    if a.shape[-1] < 1 or a.shape[-2] < 1:
        raise ValueError(f"a must hold non-empty matrices, got shape {a.shape}")
    if np.any(np.all(a == 0, axis=(-2, -1))):
        raise ValueError("a must not hold an all-zero matrix")
    if isinstance(rtol, (bool, np.bool_)):
        raise TypeError("rtol must be a float in (0, 1), got a bool")
    rtol = positive_scalar("rtol", rtol)
    if rtol >= 1:
        raise ValueError(f"rtol must be < 1, got {rtol}")
    return _rank(jnp.asarray(a), rtol)


@partial(jax.jit, static_argnames=("mask", "skip"))
def _stack(x, w_qk, w_v, mask: str, skip: bool):
    def rel_residual(h):
        r = h - h.mean(axis=0, keepdims=True)
        return jnp.linalg.norm(r) / jnp.linalg.norm(h)

    m = _mask(x.shape[0], mask)

    def layer(h, w):
        wqk, wv = w
        s = (h @ wqk @ h.T) / jnp.sqrt(h.shape[1])
        a = jax.nn.softmax(jnp.where(m, s, -jnp.inf), axis=-1)
        out = a @ h @ wv
        h = h + out if skip else out
        return h, rel_residual(h)

    _, res = jax.lax.scan(layer, x, (w_qk, w_v))
    return jnp.concatenate([rel_residual(x)[None], res])


def stack_residuals(x, w_qk, w_v, *, mask: str = "none", skip: bool = False) -> jax.Array:
    """Relative distance to rank one, ``‖H − 1 h̄ᵀ‖_F / ‖H‖_F``, through an attention stack.

    Layer ``l`` maps ``H ↦ A H W_v[l]`` (or ``H + A H W_v[l]`` with ``skip=True``) where
    ``A = softmax(H W_qk[l] Hᵀ / √d)`` under ``mask``; no MLP, no normalisation. ``h̄`` is the
    mean row, the minimiser of the Frobenius distance to a matrix with equal rows.

    Args:
        x: ``(n, d)`` input tokens.
        w_qk: ``(L, d, d)`` query-key products ``W_q W_kᵀ``.
        w_v: ``(L, d, d)`` value maps.
        mask: one of :data:`MASKS`.
        skip: add the skip connection ``H + Attn(H)``.

    Returns:
        ``(L + 1,)`` relative residuals, of the input and after each layer.
    """
    x = as_finite_array("x", x)
    w_qk = as_finite_array("w_qk", w_qk)
    w_v = as_finite_array("w_v", w_v)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape (n, d) with n >= 2, got {x.shape}")
    d = x.shape[1]
    if w_qk.ndim != 3 or w_qk.shape[1:] != (d, d) or w_qk.shape[0] < 1:
        raise ValueError(f"w_qk must have shape (L, {d}, {d}) with L >= 1, got {w_qk.shape}")
    if w_v.shape != w_qk.shape:
        raise ValueError(f"w_v must have the shape of w_qk {w_qk.shape}, got {w_v.shape}")
    one_of("mask", mask, MASKS)
    if not isinstance(skip, bool):
        raise TypeError(f"skip must be a bool, got {type(skip).__name__}")
    if np.all(x == 0):
        raise ValueError("x must not be all zero")
    return _stack(jnp.asarray(x), jnp.asarray(w_qk), jnp.asarray(w_v), mask, skip)
