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
    "attention_scores_by_dim",
    "entropy_terms",
    "prefix_entropy_terms",
    "softmax_entropy",
    "matching_scale",
    "matching_scales",
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


def _check_lengths(lengths, n: int) -> tuple[int, ...]:
    if isinstance(lengths, (int, np.integer)):
        lengths = (lengths,)
    try:
        lengths = tuple(lengths)
    except TypeError as exc:
        raise TypeError(f"lengths must be a sequence of ints, got {type(lengths).__name__}") from exc
    if not lengths:
        raise ValueError("lengths must not be empty")
    lengths = tuple(positive_int("lengths", L) for L in lengths)
    if max(lengths) > n:
        raise ValueError(f"lengths must be <= n = {n} (the last axis of scores), got {max(lengths)}")
    return lengths


@partial(jax.jit, static_argnames=("lengths",))
def _prefix_terms(scores, scales, lengths):
    # lax.map, not vmap, over the scales: one (..., L) block in memory at a time
    parts = [jax.lax.map(lambda lam, L=L: _terms(scores[..., :L], lam[None]), scales[:, m])
             for m, L in enumerate(lengths)]  # each leaf (k, 1, ...)
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *parts)


def prefix_entropy_terms(scores, lengths, scales) -> EntropyTerms:
    """:func:`entropy_terms` of the nested prefixes ``scores[..., :L]``, all in one compiled call.

    The chapters sweep the number of keys by taking the first ``L`` keys of one long sample;
    calling :func:`entropy_terms` once per ``L`` would compile once per shape. Here the scale
    may depend on the length (``scales[k, m]`` is used with ``lengths[m]``).

    Args:
        scores: ``(..., n)`` real, finite.
        lengths: ``m`` ints in ``[1, n]``.
        scales: ``(k,)`` (the same scales at every length) or ``(k, m)``.

    Returns:
        :class:`EntropyTerms` of arrays of shape ``(k, m, ...)``; entry ``[:, m]`` equals
        ``entropy_terms(scores[..., :lengths[m]], scales[:, m])``.
    """
    scores, _ = _check_scores_scales(scores, 1.0)
    lengths = _check_lengths(lengths, scores.shape[-1])
    scales = as_finite_array("scales", scales)
    if scales.ndim == 1:
        scales = np.repeat(scales[:, None], len(lengths), axis=1)
    if scales.ndim != 2 or scales.shape[1] != len(lengths):
        raise ValueError(f"scales must have shape (k,) or (k, {len(lengths)}), got {scales.shape}")
    scales = jnp.asarray(scales, dtype=jnp.result_type(float))
    return _prefix_terms(scores, scales, lengths)


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


@partial(jax.jit, static_argnames=("model", "n", "dims", "queries"))
def _scores_by_dim(key, model: str, n: int, dims: tuple[int, ...], queries: int, rho):
    kq, kk, kr = jax.random.split(key, 3)
    top = max(dims)
    q_all = jax.random.normal(kq, (queries, top))
    k_all = jax.random.normal(kk, (n, top))
    z_all = jax.random.normal(kr, (queries, top))
    out = []
    for d in dims:  # the first d coordinates of one draw: nested in d
        q, k = q_all[:, :d], k_all[:, :d]
        if model == "sphere":
            q = q * jnp.sqrt(d) / jnp.linalg.norm(q, axis=-1, keepdims=True)
            k = k * jnp.sqrt(d) / jnp.linalg.norm(k, axis=-1, keepdims=True)
        scores = q @ k.T
        if model == "margin":
            relevant = rho * q + jnp.sqrt(1.0 - rho**2) * z_all[:, :d]
            scores = scores.at[:, 0].set(jnp.sum(q * relevant, axis=-1))
        out.append(scores)
    return jnp.stack(out)


def attention_scores_by_dim(key: jax.Array, model: str, n: int, dims, *, queries: int = 32,
                            rho: float = 0.5) -> jax.Array:
    """:func:`attention_scores` for several head dimensions from one draw, in one compile.

    Queries, keys (and the margin model's noise) are drawn once at ``max(dims)`` coordinates;
    dimension ``d`` uses the first ``d`` of them (renormalised for ``"sphere"``), so the
    samples are nested in ``d``. For ``dims == (d,)`` the result equals
    ``attention_scores(key, model, n, d, ...)[None]``.

    Args:
        dims: ``m`` distinct positive ints.

    Returns:
        ``(m, queries, n)`` array; entry ``j`` holds the scores at dimension ``dims[j]``.
    """
    one_of("model", model, SCORE_MODELS)
    n = positive_int("n", n)
    queries = positive_int("queries", queries)
    try:
        dims = tuple(positive_int("dims", d) for d in dims)
    except TypeError as exc:
        raise TypeError(f"dims must be a sequence of ints, got {type(dims).__name__}") from exc
    if not dims:
        raise ValueError("dims must not be empty")
    if len(set(dims)) != len(dims):
        raise ValueError(f"dims must be distinct, got {dims}")
    rho = float(as_finite_array("rho", rho))
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    return _scores_by_dim(key, model, n, dims, queries, rho)


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


@partial(jax.jit, static_argnames=("lengths", "iterations"))
def _bisect_prefixes(scores, targets, lo, hi, norms, lengths, iterations: int):
    def mean_h(log_lam):  # (m,) mean entropy / norm of each prefix at its own λ
        return jnp.stack([jnp.mean(_terms(scores[..., :L], jnp.exp(log_lam[m])[None]).entropy)
                          for m, L in enumerate(lengths)]) / norms

    def body(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        too_spread = mean_h(mid) > targets
        return jnp.where(too_spread, mid, a), jnp.where(too_spread, b, mid)

    start = (jnp.full(len(lengths), jnp.log(lo)), jnp.full(len(lengths), jnp.log(hi)))
    a, b = jax.lax.fori_loop(0, iterations, body, start)
    log_lam = 0.5 * (a + b)
    return jnp.exp(log_lam), mean_h(log_lam)


def matching_scales(scores, lengths, targets, *, normalized: bool = False, lo: float = 1e-4,
                    hi: float = 1e2, iterations: int = 40) -> np.ndarray:
    """:func:`matching_scale` for every prefix ``scores[..., :L]`` at once; shape ``(m,)``.

    Bisection on log λ runs for all lengths in one compiled loop (``iterations`` halvings of
    ``[log lo, log hi]``: 40 leave a relative error in λ below 1e-11).

    Args:
        scores: ``(..., n)``.
        lengths: ``m`` ints in ``[1, n]``.
        targets: scalar or ``(m,)``: entropy in nats, or entropy / log L with ``normalized``.
        normalized: match ``H / log L`` instead of ``H`` (then every length must be >= 2).

    Returns:
        NumPy array ``(m,)`` of the matching λ, entry ``m`` for ``lengths[m]``.

    Raises:
        ValueError: if a target is not reached for λ in ``[lo, hi]``.
    """
    scores, _ = _check_scores_scales(scores, 1.0)
    lengths = _check_lengths(lengths, scores.shape[-1])
    targets = as_finite_array("targets", targets)
    if targets.ndim > 1 or (targets.ndim == 1 and targets.shape[0] != len(lengths)):
        raise ValueError(f"targets must be a scalar or have shape ({len(lengths)},), got {targets.shape}")
    targets = np.broadcast_to(targets, (len(lengths),)).astype(float)
    if not (0.0 < lo < hi):
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    iterations = positive_int("iterations", iterations)
    if normalized and min(lengths) < 2:
        raise ValueError("lengths must be >= 2 with normalized=True (log 1 = 0)")
    norms = np.log(np.array(lengths, dtype=float)) if normalized else np.ones(len(lengths))
    lam, reached = _bisect_prefixes(scores, jnp.asarray(targets), lo, hi, jnp.asarray(norms),
                                    lengths, iterations)
    lam, reached = np.asarray(lam), np.asarray(reached)
    miss = np.abs(reached - targets) > 1e-5 * np.maximum(1.0, np.abs(targets))
    if miss.any():
        m = int(np.argmax(miss))
        raise ValueError(
            f"targets[{m}]={targets[m]} is not reached for scales in [{lo}, {hi}] with "
            f"n={lengths[m]} (closest mean entropy{' / log n' if normalized else ''}: "
            f"{reached[m]:.6g})"
        )
    return lam
