"""Softmax attention entropy: scores under simple query/key models, and the entropy of
softmax(λ·s) together with the two terms the mean-field approximation drops.

Shapes: ``scores`` is ``(..., n)`` (one softmax over the last axis per row);
``scales`` is ``(k,)``; results are ``(k, ...)``. Everything is float64 when JAX's x64
mode is on (the chapters turn it on), float32 otherwise.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, one_of, positive_int

__all__ = [
    "SCORE_MODELS",
    "EntropyTerms",
    "attention_scores",
    "entropy_terms",
    "softmax_entropy",
    "matching_scale",
]

#: Query/key models understood by :func:`attention_scores`.
SCORE_MODELS = ("gaussian", "sphere", "margin")


class EntropyTerms(NamedTuple):
    """Exact entropy and the pieces of ``H ≈ log n - λ(s_max - s̄)``; each ``(k, ...)``.

    ``entropy == log(n) - scale * (s_max - s_mean) + jensen_gap + concentration_gap``
    holds exactly (up to rounding), and both gaps are >= 0.
    """

    entropy: jax.Array  #: H = -Σ p_i log p_i
    approximation: jax.Array  #: log n - λ (s_max - s̄)
    jensen_gap: jax.Array  #: log((1/n) Σ e^{λ s_i}) - λ s̄ >= 0 (mean field drops it)
    concentration_gap: jax.Array  #: λ (s_max - Σ p_i s_i) >= 0 ("p sits on the max" drops it)


@jax.jit
def _terms(scores: jax.Array, scales: jax.Array) -> EntropyTerms:
    n = scores.shape[-1]

    def one(lam):
        z = lam * scores
        z_max = jnp.max(z, axis=-1, keepdims=True)
        e = jnp.exp(z - z_max)  # one exponential pass serves both logsumexp and softmax
        total = jnp.sum(e, axis=-1)
        lse = z_max[..., 0] + jnp.log(total)
        mean_z = jnp.sum(e * z, axis=-1) / total
        s_max = jnp.max(scores, axis=-1)
        s_bar = jnp.mean(scores, axis=-1)
        return EntropyTerms(
            entropy=lse - mean_z,
            approximation=jnp.log(n) - lam * (s_max - s_bar),
            jensen_gap=lse - jnp.log(n) - lam * s_bar,
            concentration_gap=lam * s_max - mean_z,
        )

    return jax.vmap(one)(scales)


def _check_scores_scales(scores, scales):
    scores = as_finite_array("scores", scores, min_ndim=1)
    if scores.shape[-1] < 1:
        raise ValueError(f"scores must have n >= 1 entries on its last axis, got shape {scores.shape}")
    scales = as_finite_array("scales", scales)
    if scales.ndim > 1:
        raise ValueError(f"scales must be a scalar or a 1-d array, got shape {scales.shape}")
    return jnp.asarray(scores), jnp.atleast_1d(jnp.asarray(scales, dtype=jnp.result_type(float)))


def entropy_terms(scores, scales) -> EntropyTerms:
    """Entropy of ``softmax(λ s)`` per row, for each λ in ``scales``, with the dropped terms.

    Args:
        scores: ``(..., n)`` real, finite.
        scales: scalar or ``(k,)``: the inverse temperatures λ.

    Returns:
        :class:`EntropyTerms` of arrays of shape ``(k, ...)`` (``k = 1`` for a scalar).
    """
    return _terms(*_check_scores_scales(scores, scales))


def softmax_entropy(scores, scales) -> jax.Array:
    """``-Σ_i p_i log p_i`` with ``p = softmax(λ s)`` over the last axis; shape ``(k, ...)``."""
    return entropy_terms(scores, scales).entropy


@partial(jax.jit, static_argnames=("model", "n", "d", "queries"))
def _scores(key, model: str, n: int, d: int, queries: int, rho) -> jax.Array:
    kq, kk, kr = jax.random.split(key, 3)
    q = jax.random.normal(kq, (queries, d))
    k = jax.random.normal(kk, (n, d))
    if model == "sphere":  # |q| = |k| = sqrt(d), directions uniform on the sphere
        q = q * jnp.sqrt(d) / jnp.linalg.norm(q, axis=-1, keepdims=True)
        k = k * jnp.sqrt(d) / jnp.linalg.norm(k, axis=-1, keepdims=True)
    scores = q @ k.T
    if model == "margin":  # key 0 of each row leans towards its query: cos(q, k_0) ≈ rho
        z = jax.random.normal(kr, (queries, d))
        relevant = rho * q + jnp.sqrt(1.0 - rho**2) * z
        scores = scores.at[:, 0].set(jnp.sum(q * relevant, axis=-1))
    return scores


def attention_scores(key: jax.Array, model: str, n: int, d: int, *, queries: int = 32,
                     rho: float = 0.5) -> jax.Array:
    """Dot-product scores ``s_ij = q_i · k_j`` of ``queries`` queries against ``n`` keys.

    Keys are drawn independently, so ``scores[:, :m]`` is a valid sample for ``m`` keys:
    one call at the largest ``n`` gives nested samples for every smaller length.

    Models:
        ``"gaussian"``: q, k with i.i.d. N(0, 1) entries (s has mean 0, variance ≈ d).
        ``"sphere"``: q, k uniform on the sphere of radius √d (the post's assumption).
        ``"margin"``: as ``"gaussian"``, but key 0 of each query is ``rho·q + √(1-rho²)·z``,
        one relevant key whose score stands about ``rho·d`` above the rest.

    Returns:
        ``(queries, n)`` array of scores.
    """
    one_of("model", model, SCORE_MODELS)
    n = positive_int("n", n)
    d = positive_int("d", d)
    queries = positive_int("queries", queries)
    rho = float(as_finite_array("rho", rho))
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    return _scores(key, model, n, d, queries, rho)


@partial(jax.jit, static_argnames=("iterations",))
def _bisect(scores, target, lo, hi, norm, iterations: int):
    def mean_h(log_lam):
        return jnp.mean(_terms(scores, jnp.exp(log_lam)[None]).entropy) / norm

    def body(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        too_spread = mean_h(mid) > target  # entropy falls as λ grows
        return jnp.where(too_spread, mid, a), jnp.where(too_spread, b, mid)

    a, b = jax.lax.fori_loop(0, iterations, body, (jnp.log(lo), jnp.log(hi)))
    lam = jnp.exp(0.5 * (a + b))
    return lam, mean_h(jnp.log(lam))


def matching_scale(scores, target: float, *, normalized: bool = False, lo: float = 1e-4,
                   hi: float = 1e2, iterations: int = 48) -> float:
    """The λ at which the row-mean entropy of ``softmax(λ s)`` equals ``target``.

    The mean entropy decreases monotonically in λ >= 0 (dH/dλ = -λ Var_p(s)), so the
    answer is found by bisection on log λ in ``[lo, hi]``.

    Args:
        scores: ``(..., n)``.
        target: entropy in nats, or, with ``normalized=True``, entropy / log n.
        normalized: match ``H / log n`` instead of ``H``.

    Raises:
        ValueError: if ``target`` is not reachable for λ in ``[lo, hi]``.
    """
    scores, _ = _check_scores_scales(scores, 1.0)
    target = float(as_finite_array("target", target))
    if not (0.0 < lo < hi):
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    iterations = positive_int("iterations", iterations)
    norm = np.log(scores.shape[-1]) if normalized else 1.0
    lam, reached = _bisect(scores, target, lo, hi, norm, iterations)
    if abs(float(reached) - target) > 1e-5 * max(1.0, abs(target)):
        n = scores.shape[-1]
        raise ValueError(
            f"target={target} is not reached for scales in [{lo}, {hi}] with n={n} "
            f"(closest mean entropy{' / log n' if normalized else ''}: {float(reached):.6g})"
        )
    return float(lam)
