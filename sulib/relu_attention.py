"""Length transfer of relu² attention against softmax (post 9019).

GAU attention replaces the softmax by ``A = relu²(S) / n`` with ``S = QKᵀ/√s`` and ``n`` the
sequence length. Softmax divides each row by its own normaliser ``Z_i = Σ_j e^{s_ij}``, which
grows like the number of keys the row attends to, not like ``n``. This module holds:

* :func:`pattern_scores`: score rows ``(queries, n)`` for the structured patterns of the chapter
  (a local window that decays with distance, a few important keys over a quiet background,
  i.i.d. Gaussian scores of scale 1 and of a large scale);
* :func:`prefix_normalizers`: ``Z(n) = Σ_{j<n} f(s_j)`` for ``f = exp`` or ``relu²`` at several
  prefix lengths ``n`` of the same rows (the same content, read at different lengths);
* :func:`relu2_attention`: relu² attention with the three normalisers the post discusses —
  the actual length, a fixed length, and the row sum ``Σ_j relu²(s_ij)``;
* :func:`prefix_attention`: the same attention read at several prefix lengths of the same rows
  in one call (one compiled kernel for all lengths).

Everything is float64 when JAX's x64 mode is on (the chapters turn it on), float32 otherwise.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar

__all__ = ["PATTERNS", "ACTIVATIONS", "NORMALIZERS", "pattern_scores", "prefix_normalizers",
           "relu2_attention", "prefix_attention", "Relu2Attention"]

PATTERNS = ("local", "few", "gaussian", "wide")
"""Score patterns of :func:`pattern_scores`."""

ACTIVATIONS = ("exp", "relu2")
"""Activations ``f`` of :func:`prefix_normalizers`."""

NORMALIZERS = ("length", "fixed", "sum")
"""Normalisers of :func:`relu2_attention`: ``n``, a fixed ``n_fixed``, ``Σ_j relu²(s_ij)``."""


@partial(jax.jit, static_argnames=("shape",))
def _normal(key, shape: tuple[int, int]):
    return jax.random.normal(key, shape)


def _pattern_scores(key, pattern: str, n: int, queries: int, width, n_important: int):
    # one compiled kernel for the noise of every pattern of a shape; the rest is elementwise
    eps = _normal(key, (queries, n))
    j = jnp.arange(n)
    if pattern == "local":       # peak 3 at the query's own position, falling to 0 at j = width
        return 3.0 * (1.0 - j / width) + 0.5 * eps
    if pattern == "few":         # n_important keys at score 4 over a background N(-2, 1)
        return jnp.where(j < n_important, 4.0, -2.0 + eps)
    if pattern == "gaussian":    # i.i.d. N(0, 1): nothing stands out
        return eps
    return 4.0 * eps             # "wide": i.i.d. N(0, 16): the sum is carried by the maximum


def pattern_scores(key, pattern: str, n: int, *, queries: int = 64, width: float = 16.0,
                   n_important: int = 4) -> jax.Array:
    """Scores ``s_ij`` of ``queries`` query rows against ``n`` keys for one pattern.

    Key ``j`` sits at distance ``j`` from its query (the query is the first token), so the
    first ``m`` columns of one draw are the same content read at length ``m``. Slice one long
    draw to get nested prefixes: two calls with different ``n`` draw different noise (JAX's
    normal draws depend on the shape), so ``pattern_scores(key, p, 32)`` is *not* the first 32
    columns of ``pattern_scores(key, p, 64)``; only the noise-free part ``s_j − noise`` is.

    * ``"local"``: ``s_j = 3 (1 - j/width) + 0.5 ε_j`` — falls linearly with distance
      (the remote decay of RoPE, idealised), ``relu²`` cuts it off near ``j = width``;
    * ``"few"``: ``s_j = 4`` for ``j < n_important``, else ``-2 + ε_j``;
    * ``"gaussian"``: ``s_j = ε_j``;
    * ``"wide"``: ``s_j = 4 ε_j``,

    with ``ε ~ N(0, 1)`` i.i.d. from ``key``.

    Args:
        key: a ``jax.random`` key (``jax.random.PRNGKey`` or ``jax.random.key``).
        pattern: one of :data:`PATTERNS`.
        n: number of keys, >= 1.
        queries: number of query rows, >= 1.
        width: the decay length of ``"local"``, > 0.
        n_important: the number of important keys of ``"few"``, >= 1.

    Returns:
        ``(queries, n)`` scores.

    Raises:
        ValueError, TypeError: naming the argument.
    """
    if not (isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                                            or (key.shape == (2,) and key.dtype == jnp.uint32))):
        raise TypeError("key must be a JAX PRNG key (jax.random.PRNGKey or jax.random.key), "
                        f"got {type(key).__name__}")
    one_of("pattern", pattern, PATTERNS)
    n = positive_int("n", n)
    queries = positive_int("queries", queries)
    width = positive_scalar("width", width)
    n_important = positive_int("n_important", n_important)
    return _pattern_scores(key, pattern, n, queries, width, n_important)


def _check_lengths(lengths, n: int) -> np.ndarray:
    """``lengths`` as a non-empty ``(k,)`` int array in ``1..n``, or an error naming it."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0 or not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError("lengths must be a non-empty one-dimensional array of ints")
    if lengths.min() < 1 or lengths.max() > n:
        raise ValueError(f"lengths must lie in 1..{n}, got {lengths.min()}..{lengths.max()}")
    return lengths


@jax.jit
def _prefix_normalizers(scores, lengths):
    # both activations in one compiled kernel (the chapter calls it for each)
    z = jnp.stack([jnp.exp(scores), jnp.square(jnp.maximum(scores, 0.0))])
    return jnp.swapaxes(jnp.cumsum(z, axis=-1)[..., lengths - 1], -1, -2)   # (2, k, queries)


def prefix_normalizers(scores, lengths, activation: str) -> jax.Array:
    """``Z(m) = Σ_{j<m} f(s_j)`` for each prefix length ``m`` of each row.

    Args:
        scores: ``(queries, n)`` real, finite; ``exp`` of them must not overflow.
        lengths: ``(k,)`` ints in ``1..n``: the prefix lengths ``m``.
        activation: ``"exp"`` (the softmax normaliser) or ``"relu2"`` (``max(s, 0)²``).

    Returns:
        ``(k, queries)``: ``Z`` for every prefix length and row.

    Raises:
        ValueError, TypeError: naming the argument.
    """
    scores = as_finite_array("scores", scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (queries, n), got {scores.shape}")
    lengths = _check_lengths(lengths, scores.shape[1])
    one_of("activation", activation, ACTIVATIONS)
    if activation == "exp" and scores.max() > 700:
        raise ValueError("scores must be <= 700 for activation 'exp' (exp would overflow)")
    both = _prefix_normalizers(jnp.asarray(scores), jnp.asarray(lengths))
    return both[ACTIVATIONS.index(activation)]


class Relu2Attention(NamedTuple):
    """Attention ``output`` ``(…, queries, d)`` and the ``row_sums`` ``(…, queries,)`` of ``A``.

    :func:`relu2_attention` gives no leading axis; :func:`prefix_attention` one per length.
    """

    output: jax.Array
    row_sums: jax.Array


@jax.jit
def _relu2_attention(scores, values, which, n_fixed):
    # the normaliser is an index into NORMALIZERS, traced: one compiled kernel per shape
    r = jnp.square(jnp.maximum(scores, 0.0))
    sums = r.sum(axis=-1, keepdims=True)
    denom = jnp.stack([jnp.full_like(sums, scores.shape[-1]),
                       jnp.full_like(sums, n_fixed), sums])[which]
    a = r / denom
    return Relu2Attention(a @ values, a.sum(axis=-1))


def _check_scores_values(scores, values) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` ``(queries, n)`` and ``values`` ``(n, d)``, finite, or a ValueError naming them."""
    scores = as_finite_array("scores", scores)
    values = as_finite_array("values", values)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (queries, n), got {scores.shape}")
    if values.ndim != 2 or values.shape[0] != scores.shape[1]:
        raise ValueError(f"values must have shape (n, d) with n = {scores.shape[1]}, "
                         f"got {values.shape}")
    return scores, values


def relu2_attention(scores, values, normalizer: str = "length", *,
                    n_fixed: int = 512) -> Relu2Attention:
    """``A V`` with ``A = relu²(S) / N`` for the normaliser ``N`` named by ``normalizer``.

    ``"length"``: ``N = n``, the actual number of keys (GAU as published);
    ``"fixed"``: ``N = n_fixed`` whatever ``n`` (the post's remedy 1, with the pre-training length);
    ``"sum"``: ``N_i = Σ_j relu²(s_ij)``, the softmax-like row normaliser (remedy 3); a row whose
    scores are all ``<= 0`` has ``N_i = 0`` and gives ``nan``.

    Args:
        scores: ``(queries, n)`` real, finite: the already scaled scores ``QKᵀ/√s``.
        values: ``(n, d)`` real, finite.
        normalizer: one of :data:`NORMALIZERS`.
        n_fixed: int >= 1, used by ``"fixed"``.

    Returns:
        :class:`Relu2Attention` with ``output`` ``(queries, d)`` and ``row_sums`` ``(queries,)``.

    Raises:
        ValueError, TypeError: naming the argument.
    """
    scores, values = _check_scores_values(scores, values)
    one_of("normalizer", normalizer, NORMALIZERS)
    n_fixed = positive_int("n_fixed", n_fixed)
    return _relu2_attention(jnp.asarray(scores), jnp.asarray(values),
                            NORMALIZERS.index(normalizer), n_fixed)


@jax.jit
def _prefix_attention(scores, values, lengths, which, n_fixed):
    r = jnp.square(jnp.maximum(scores, 0.0))                              # (q, n)
    keep = jnp.arange(scores.shape[-1])[None, :] < lengths[:, None]       # (k, n)
    rm = jnp.where(keep[:, None, :], r[None], 0.0)                        # (k, q, n)
    sums = rm.sum(axis=-1)                                                # (k, q)
    denom = jnp.stack([jnp.broadcast_to(lengths[:, None].astype(r.dtype), sums.shape),
                       jnp.full_like(sums, n_fixed), sums])[which]
    out = jnp.einsum("kqn,nd->kqd", rm, values) / denom[..., None]
    return Relu2Attention(out, sums / denom)


def prefix_attention(scores, values, lengths, normalizer: str = "length", *,
                     n_fixed: int = 512) -> Relu2Attention:
    """:func:`relu2_attention` of the first ``m`` keys, for every ``m`` in ``lengths``.

    Row ``k`` of the result equals ``relu2_attention(scores[:, :m], values[:m], normalizer,
    n_fixed=n_fixed)`` with ``m = lengths[k]`` (``"length"`` divides by ``m``), computed in
    one call: the content of a long sample read at several lengths.

    Args:
        scores: ``(queries, n)`` real, finite: the already scaled scores.
        values: ``(n, d)`` real, finite.
        lengths: ``(k,)`` ints in ``1..n``.
        normalizer: one of :data:`NORMALIZERS`.
        n_fixed: int >= 1, used by ``"fixed"``.

    Returns:
        :class:`Relu2Attention` with ``output`` ``(k, queries, d)`` and ``row_sums``
        ``(k, queries)``.

    Raises:
        ValueError, TypeError: naming the argument.
    """
    scores, values = _check_scores_values(scores, values)
    lengths = _check_lengths(lengths, scores.shape[1])
    one_of("normalizer", normalizer, NORMALIZERS)
    n_fixed = positive_int("n_fixed", n_fixed)
    return _prefix_attention(jnp.asarray(scores), jnp.asarray(values), jnp.asarray(lengths),
                             NORMALIZERS.index(normalizer), n_fixed)
