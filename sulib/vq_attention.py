"""Transformer-VQ attention: softmax attention whose keys are vector-quantized (post 9844).

With quantized keys ``K̂ = Δ C`` (``Δ`` one-hot ``(n, c)``, ``C`` the codebook
``(c, d_k)``), the scores against any key are scores against a code, so
``exp(Q K̂ᵀ) V = exp(Q Cᵀ) (Δᵀ V)``: the work is linear in the length ``n``. This module
computes one head (no batch axis) four ways:

* :func:`quadratic_attention` — the ``O(n²)`` reference: softmax of ``Q K̂ᵀ`` (+ a windowed
  bias), causal or not;
* :func:`pickout_attention` — the encoder (bidirectional) pick-out form, ``O(n c)``;
* :func:`recurrent_attention` — the causal recurrence ``O_i = exp(Q_i Cᵀ) U_i``,
  ``U_i = U_{i-1} + Δ_iᵀ V_i``, one position per step;
* :func:`kmeans` — a Lloyd codebook for given keys (to quantize "real" keys);
* :func:`block_attention` — the block form of the paper: exact attention (with the bias) to the
  current and the previous block, pick-out against the summary ``U`` of all older blocks. Its
  keys pass through a straight-through estimator in the two local blocks and the history is
  under ``stop_gradient``: the training scheme of the paper.

Every form keeps ``exp`` bounded the same way: the state stores per code the count ``n_s``
and the mean value ``Ū_s = U_s / n_s`` (never the raw sum), a code's logit is
``q·c_s + log n_s``, and the largest logit of the row (codes and local keys together) is
subtracted before ``exp``; that is the official implementation's ``upper_div_lower`` cache. The
bias is given per query and offset, ``bias[i, t]`` added to the score of key ``j = i - t`` for
``0 ≤ t ≤ w`` (``w = bias.shape[1] - 1``) and zero beyond; a Toeplitz bias is one row
broadcast.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, index_array, positive_int

__all__ = ["quantize", "quadratic_attention", "pickout_attention", "recurrent_attention",
           "block_attention", "block_attention_kernel", "code_statistics", "kmeans"]


# --------------------------------------------------------------------------- checks

def _matrix(name: str, value, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    array = as_finite_array(name, value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {array.shape}")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {array.shape}")
    if cols is not None and array.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return array


def _bias(value, n: int) -> np.ndarray | None:
    if value is None:
        return None
    array = as_finite_array("bias", value)
    if array.ndim == 1:
        array = np.broadcast_to(array, (n, array.shape[0]))
    if array.ndim != 2 or array.shape[0] != n or array.shape[1] == 0:
        raise ValueError(f"bias must have shape (w + 1,) or ({n}, w + 1), got {array.shape}")
    return array


def _qkv(q, keys, v):
    q = _matrix("q", q)
    keys = _matrix("keys", keys, cols=q.shape[1])
    v = _matrix("v", v, rows=keys.shape[0])
    if q.shape[0] != keys.shape[0]:
        raise ValueError(f"q and keys must have the same length, got {q.shape[0]} and "
                         f"{keys.shape[0]}")
    return q, keys, v


# --------------------------------------------------------------------------- kernels

@jax.jit
def _quantize(keys, codebook):
    d2 = (jnp.sum(keys**2, -1)[:, None] - 2.0 * keys @ codebook.T
          + jnp.sum(codebook**2, -1)[None, :])
    codes = jnp.argmin(d2, axis=-1).astype(jnp.int32)
    return codes, codebook[codes]


def quantize(keys, codebook) -> tuple[jax.Array, jax.Array]:
    """Nearest code of each key: ``codes (n,)`` int32 and ``k_hat = codebook[codes] (n, d_k)``.

    keys: ``(n, d_k)``; codebook: ``(c, d_k)``. Ties go to the lowest index.
    """
    keys = _matrix("keys", keys)
    codebook = _matrix("codebook", codebook, cols=keys.shape[1])
    return _quantize(jnp.asarray(keys), jnp.asarray(codebook))


def _full_bias(bias, n):
    """The (n, n) matrix B with B[i, i - t] = bias[i, t] for 0 <= t <= w, zero elsewhere."""
    t = jnp.arange(n)[:, None] - jnp.arange(n)[None, :]
    w = bias.shape[1] - 1
    inside = (t >= 0) & (t <= w)
    return jnp.where(inside, jnp.take_along_axis(bias, jnp.clip(t, 0, w), axis=1), 0.0)


@partial(jax.jit, static_argnames=("causal",))
def _quadratic(q, k_hat, v, bias, causal):
    n = q.shape[0]
    s = q @ k_hat.T
    if bias is not None:
        s = s + _full_bias(bias, n)
    if causal:
        s = jnp.where(jnp.tril(jnp.ones((n, n), bool)), s, -jnp.inf)
    return jax.nn.softmax(s, axis=-1) @ v


def quadratic_attention(q, k_hat, v, *, causal: bool = True, bias=None) -> jax.Array:
    """Softmax attention ``softmax(Q K̂ᵀ + B [+ causal mask]) V`` in ``O(n²)``; ``(n, d_v)``.

    q, k_hat: ``(n, d_k)``; v: ``(n, d_v)``; bias: ``None``, ``(w + 1,)`` or ``(n, w + 1)`` —
    ``B[i, i - t] = bias[i, t]`` for ``0 ≤ t ≤ w``, zero elsewhere. No scale factor is applied.
    """
    q, k_hat, v = _qkv(q, k_hat, v)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    b = _bias(bias, q.shape[0])
    return _quadratic(jnp.asarray(q), jnp.asarray(k_hat), jnp.asarray(v),
                      None if b is None else jnp.asarray(b), causal)


def _log_counts(counts):
    return jnp.where(counts > 0, jnp.log(jnp.maximum(counts, 1.0)), -jnp.inf)


@partial(jax.jit, static_argnames=("c",))
def _statistics(codes, v, c):
    delta = jax.nn.one_hot(codes, c, dtype=v.dtype)
    counts = delta.sum(0)
    means = (delta.T @ v) / jnp.maximum(counts, 1.0)[:, None]
    return counts, means


def code_statistics(codes, v, c: int) -> tuple[jax.Array, jax.Array]:
    """Per code: the count ``n_s = (Δᵀ1)_s`` ``(c,)`` and the mean value ``(ΔᵀV)_s / n_s``
    ``(c, d_v)`` (zero for unused codes). codes: ``(n,)`` ints in ``[0, c)``; v: ``(n, d_v)``."""
    c = positive_int("c", c)
    v = _matrix("v", v)
    codes = index_array("codes", codes, v.shape[0], c).astype(np.int32)
    return _statistics(jnp.asarray(codes), jnp.asarray(v), c)


@partial(jax.jit, static_argnames=("c",))
def _pickout(q, codebook, codes, v, c):
    counts, means = _statistics(codes, v, c)
    logits = q @ codebook.T + _log_counts(counts)[None, :]
    return jax.nn.softmax(logits, axis=-1) @ means


def pickout_attention(q, codebook, codes, v) -> jax.Array:
    """Bidirectional attention with keys ``codebook[codes]`` via ``exp(QCᵀ)(ΔᵀV)``.

    q: ``(n, d_k)``; codebook: ``(c, d_k)``; codes: ``(n,)`` ints; v: ``(n, d_v)``. Returns
    ``(n, d_v)``. Cost ``O(n c)``.
    """
    q = _matrix("q", q)
    codebook = _matrix("codebook", codebook, cols=q.shape[1])
    v = _matrix("v", v, rows=q.shape[0])
    codes = index_array("codes", codes, q.shape[0], codebook.shape[0]).astype(np.int32)
    return _pickout(jnp.asarray(q), jnp.asarray(codebook), jnp.asarray(codes), jnp.asarray(v),
                    codebook.shape[0])


@jax.jit
def _recurrent(q, codebook, codes, v):
    c = codebook.shape[0]

    def step(state, x):
        counts, means = state
        q_i, z_i, v_i = x
        delta = jax.nn.one_hot(z_i, c, dtype=v.dtype)            # Δ_i
        counts = counts + delta                                   # U_i = U_{i-1} + Δ_iᵀ V_i,
        means = means + (delta[:, None] * (v_i[None, :] - means)
                         / jnp.maximum(counts, 1.0)[:, None])
        logits = codebook @ q_i + _log_counts(counts)             # stored as counts and means
        w = jnp.exp(logits - jnp.max(logits))
        return (counts, means), (w @ means) / jnp.sum(w)

    init = (jnp.zeros(c, v.dtype), jnp.zeros((c, v.shape[1]), v.dtype))
    return jax.lax.scan(step, init, (q, codes, v))[1]


def recurrent_attention(q, codebook, codes, v) -> jax.Array:
    """Causal attention with keys ``codebook[codes]``, one position per step; ``(n, d_v)``.

    ``O_i ∝ exp(Q_i Cᵀ) U_i`` with ``U_i = U_{i-1} + Δ_iᵀ V_i`` (so ``U_i`` sums ``j ≤ i``);
    the state is ``(counts (c,), means (c, d_v))``. Shapes as in :func:`pickout_attention`.
    """
    q = _matrix("q", q)
    codebook = _matrix("codebook", codebook, cols=q.shape[1])
    v = _matrix("v", v, rows=q.shape[0])
    codes = index_array("codes", codes, q.shape[0], codebook.shape[0]).astype(np.int32)
    return _recurrent(jnp.asarray(q), jnp.asarray(codebook), jnp.asarray(codes), jnp.asarray(v))


@partial(jax.jit, static_argnames=("block_len",))
def _block(q, keys, codebook, v, bias, block_len):
    n, d_k = q.shape
    c, d_v, l = codebook.shape[0], v.shape[1], block_len
    m = n // l
    codes, k_hat = _quantize(keys, codebook)
    codebook = jax.lax.stop_gradient(codebook)
    k_st = keys + jax.lax.stop_gradient(k_hat - keys)            # straight-through estimator
    # offsets t = (a + l) - b of query a (current block) to key b of [previous, current]
    t = jnp.arange(l)[:, None] + l - jnp.arange(2 * l)[None, :]
    causal = t >= 0
    if bias is None:
        bias = jnp.zeros((n, 1), q.dtype)
    w = bias.shape[1] - 1
    blocks = (q.reshape(m, l, d_k), k_st.reshape(m, l, d_k), v.reshape(m, l, d_v),
              codes.reshape(m, l), bias.reshape(m, l, w + 1), jnp.arange(m))

    def step(state, x):
        counts, means, k_prev, v_prev, z_prev = state
        q_b, k_b, v_b, z_b, bias_b, i = x
        kk = jnp.concatenate([k_prev, k_b])
        vv = jnp.concatenate([v_prev, v_b])
        b = jnp.where((t >= 0) & (t <= w),
                      jnp.take_along_axis(bias_b, jnp.clip(t, 0, w), axis=1), 0.0)
        valid = causal & ((i > 0) | (jnp.arange(2 * l) >= l))[None, :]
        s_local = jnp.where(valid, q_b @ kk.T + b, -jnp.inf)       # (l, 2l)
        s_cache = q_b @ codebook.T + _log_counts(counts)[None, :]   # (l, c): blocks <= i-2
        top = jax.lax.stop_gradient(jnp.maximum(s_local.max(1), s_cache.max(1)))[:, None]
        a_local, a_cache = jnp.exp(s_local - top), jnp.exp(s_cache - top)
        out = (a_local @ vv + a_cache @ means) / (a_local.sum(1) + a_cache.sum(1))[:, None]
        # fold the previous block (i - 1) into the history, without gradient
        delta = jax.nn.one_hot(z_prev, c, dtype=v.dtype) * (i > 0)
        new_counts = counts + delta.sum(0)
        new_means = (counts[:, None] * means + delta.T @ jax.lax.stop_gradient(v_prev)) \
            / jnp.maximum(new_counts, 1.0)[:, None]
        return (new_counts, new_means, k_b, v_b, z_b), out

    init = (jnp.zeros(c, v.dtype), jnp.zeros((c, d_v), v.dtype),
            jnp.zeros((l, d_k), q.dtype), jnp.zeros((l, d_v), v.dtype),
            jnp.zeros(l, jnp.int32))
    return jax.lax.scan(step, init, blocks)[1].reshape(n, d_v)


def block_attention(q, keys, codebook, v, block_len: int, *, bias=None) -> jax.Array:
    """Causal Transformer-VQ attention in blocks of ``block_len``; ``(n, d_v)``.

    q, keys: ``(n, d_k)`` (``keys`` raw: they are quantized here); codebook: ``(c, d_k)``;
    v: ``(n, d_v)``; ``n`` a multiple of ``block_len``; bias: ``None``, ``(w + 1,)`` or
    ``(n, w + 1)`` with ``w ≤ block_len`` (a wider window would reach block ``i - 2``).
    Block ``i`` attends exactly (bias included) to blocks ``i`` and ``i - 1`` and through the
    codebook to ``U_{i-2}`` (blocks ``≤ i - 2``). Gradients: straight-through to ``keys`` in the
    two local blocks, none through the history or to the codebook.
    """
    q, keys, v = _qkv(q, keys, v)
    codebook = _matrix("codebook", codebook, cols=q.shape[1])
    block_len = positive_int("block_len", block_len)
    if q.shape[0] % block_len:
        raise ValueError(f"block_len must divide the length {q.shape[0]}, got {block_len}")
    b = _bias(bias, q.shape[0])
    if b is not None and b.shape[1] - 1 > block_len:
        raise ValueError(f"bias window w = {b.shape[1] - 1} exceeds block_len = {block_len}: "
                         "it would reach beyond the previous block")
    return _block(jnp.asarray(q), jnp.asarray(keys), jnp.asarray(codebook), jnp.asarray(v),
                  None if b is None else jnp.asarray(b), block_len)


def block_attention_kernel(q, keys, codebook, v, bias, block_len: int) -> jax.Array:
    """:func:`block_attention` without the host-side checks, for use under ``jax.grad``/``jit``.

    Same shapes; ``bias`` is ``None`` or ``(n, w + 1)``; ``block_len`` is static. The caller
    guarantees what :func:`block_attention` checks, including ``w ≤ block_len``. A wider bias
    is not an error here: it is applied only inside the two local blocks (offsets up to
    ``2·block_len - 1`` that land in blocks ``i`` and ``i - 1``), while keys of block ``i - 2``
    and older, some of which quadratic attention would bias, are read through the codebook
    without it, so the result then differs from quadratic attention with that bias.
    """
    return _block(q, keys, codebook, v, bias, block_len)


@partial(jax.jit, static_argnames=("c", "iters"))
def _kmeans(keys, init_idx, c, iters):
    def step(codebook, _):
        codes, _ = _quantize(keys, codebook)
        counts, sums = _statistics(codes, keys, c)
        # an empty cluster keeps its centre
        return jnp.where(counts[:, None] > 0, sums, codebook), None

    return jax.lax.scan(step, keys[init_idx], None, length=iters)[0]


def kmeans(keys, c: int, *, iters: int = 25, seed: int = 0) -> jax.Array:
    """Lloyd's k-means codebook ``(c, d_k)`` for keys ``(n, d_k)``, ``c ≤ n``.

    Initial centres: ``c`` distinct keys drawn with ``seed``; then ``iters`` Lloyd steps (assign to
    the nearest centre, move each centre to its cluster's mean; an empty cluster stays put).
    """
    keys = _matrix("keys", keys)
    c = positive_int("c", c)
    iters = positive_int("iters", iters)
    if c > keys.shape[0]:
        raise ValueError(f"c must be <= the number of keys {keys.shape[0]}, got {c}")
    idx = np.random.default_rng(seed).choice(keys.shape[0], c, replace=False)
    return _kmeans(jnp.asarray(keys), jnp.asarray(idx), c, iters)
