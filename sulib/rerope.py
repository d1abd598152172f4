"""ReRoPE and Leaky ReRoPE: RoPE with remapped relative positions (kexue.fm 9708, 9728).

RoPE's score between query ``i`` and key ``j`` depends on ``d = i − j`` only
(:mod:`sulib.rope`). Leaky ReRoPE keeps ``d`` inside a window ``w`` and compresses it
outside with slope ``1/k``::

    r(d) = d                   for d < w
    r(d) = w + (d − w) / k     for d ≥ w

so over ``L`` tokens the largest relative position is ``w + (L − 1 − w)/k``. ReRoPE is the
limit ``k → ∞`` (``r = min(d, w)``). The *forward* use trains with plain RoPE and
remaps at inference (``k > 1``); the *inverse* use (post 9728) trains with ``k < 1`` (the
relative positions are stretched) and runs plain RoPE at inference.

- :func:`leaky_rerope_positions`, :func:`rerope_positions`: the map ``r(d)``, elementwise;
- :func:`relative_matrix`: ``d_ij = i − j`` for ``n`` queries and keys;
- :func:`max_relative_position`: ``w + (L − 1 − w)/k``;
- :func:`forward_min_k`: the smallest ``k`` with ``max ≤ train_len/2`` (the post's rule);
- :func:`inverse_settings`: the post's inverse choice ``w = train_len/4``, ``k = 1/(2·factor)``;
- :func:`leaky_rerope_scores`: causal scores in two RoPE passes (rotations only, the way a
  training step computes them) merged by the window mask;
- :func:`rope_attention`, :func:`leaky_rerope_attention`: causal single-head attention
  outputs with plain RoPE and with Leaky ReRoPE (the kernels the overhead benchmark times);
- :func:`nearest_trained`: for each relative position, the nearest one in a sorted set (the
  positions a training run saw);
- :func:`code_distance`: how far the rotation code ``e^{i r θ}`` of each inference position
  lies from the nearest code seen in training, for *any* set of trained positions (the
  distortion measure of the post-9706 chapter, ``sulib.rope.nearest_trained_distance``,
  which assumes the trained positions ``0 … L−1``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, positive_int, positive_scalar
from sulib.rope import _check_freqs, _check_head  # RoPE's input checks, one place

__all__ = ["leaky_rerope_positions", "rerope_positions", "relative_matrix",
           "max_relative_position", "forward_min_k", "inverse_settings",
           "leaky_rerope_scores", "rope_attention", "leaky_rerope_attention",
           "nearest_trained", "code_distance"]


@jax.jit
def _leaky(d, w, k):
    return jnp.where(d < w, d, w + (d - w) / k)


def leaky_rerope_positions(rel, w: float, k_slope: float) -> jax.Array:
    """Leaky ReRoPE map ``r(d) = d`` for ``d < w``, ``w + (d − w)/k`` for ``d ≥ w``.

    Args:
        rel: relative positions ``d = i − j``, any shape (causal use: ``d ≥ 0``; values
            below ``w``, negative ones included, are returned unchanged).
        w: window width > 0.
        k_slope: slope divisor ``k`` > 0 (``k > 1`` compresses: forward use; ``k < 1``
            stretches: inverse use; ``k = 1`` is plain RoPE).

    Returns:
        array of ``rel``'s shape, float.
    """
    d = as_finite_array("rel", rel)
    w = positive_scalar("w", w)
    k_slope = positive_scalar("k_slope", k_slope)
    return _leaky(jnp.asarray(d, dtype=jnp.result_type(float)), w, k_slope)


def rerope_positions(rel, w: float) -> jax.Array:
    """ReRoPE map ``r(d) = min(d, w)``, the ``k → ∞`` limit of
    :func:`leaky_rerope_positions`; ``rel`` any shape, returned with its shape, float."""
    d = as_finite_array("rel", rel)
    w = positive_scalar("w", w)
    return jnp.minimum(jnp.asarray(d, dtype=jnp.result_type(float)), w)


def relative_matrix(n: int) -> np.ndarray:
    """``(n, n)`` matrix of ``i − j`` (query row ``i``, key column ``j``), float64."""
    n = positive_int("n", n)
    idx = np.arange(n, dtype=np.float64)
    return idx[:, None] - idx[None, :]


def _window_slope(w, k_slope, length):
    length = positive_int("length", length)
    w = positive_scalar("w", w)
    k_slope = positive_scalar("k_slope", k_slope)
    if w > length - 1:
        raise ValueError(f"w must be <= length - 1 = {length - 1}, got {w}")
    return w, k_slope, length


def max_relative_position(length: int, w: float, k_slope: float) -> float:
    """Largest remapped relative position over ``length`` tokens:
    ``w + (length − 1 − w)/k`` with ``k = k_slope``."""
    w, k_slope, length = _window_slope(w, k_slope, length)
    return w + (length - 1 - w) / k_slope


def forward_min_k(length: int, train_len: int, w: float) -> int:
    """Smallest integer ``k ≥ 1`` with ``w + (length − 1 − w)/k ≤ train_len/2``.

    Needs ``w < train_len/2``. Computed in exact rational arithmetic (``w`` is taken at its
    exact binary value), so a bound that is an integer is not pushed up by rounding.
    """
    train_len = positive_int("train_len", train_len, minimum=2)
    w, _, length = _window_slope(w, 1.0, length)
    if not w < train_len / 2:
        raise ValueError(f"w must be < train_len/2 = {train_len / 2}, got {w}")
    wq = Fraction(w)
    return max(1, math.ceil((length - 1 - wq) / (Fraction(train_len, 2) - wq)))


def inverse_settings(train_len: int, factor: float) -> dict:
    """The post's inverse-use settings for a target length ``factor · train_len``.

    Returns a dict: ``w = train_len/4``, ``k = 1/(2·factor)``, ``coverage`` (the largest
    relative position seen in training, ``w + (train_len − 1 − w)/k``), ``needed`` (the
    largest one at inference, ``factor·train_len − 1``) and ``step`` (``1/k``, the spacing of
    the trained positions outside the window).
    """
    train_len = positive_int("train_len", train_len, minimum=4)
    factor = positive_scalar("factor", factor)
    w, k = train_len / 4, 1.0 / (2.0 * factor)
    return {"w": w, "k": k, "coverage": max_relative_position(train_len, w, k),
            "needed": factor * train_len - 1, "step": 1.0 / k}


def _check_qk(q, k):
    q, k = _check_head("q", q), _check_head("k", k)
    if q.shape != k.shape or q.ndim < 2:
        raise ValueError(
            f"q and k must have one shape (..., n, d), got {q.shape}, {k.shape}")
    return q, k


def _two_pass(q, kk, freqs, w, k):
    n = q.shape[-2]
    pos = jnp.arange(n, dtype=q.dtype)
    s_in = jnp.einsum("...id,...jd->...ij", _rot(q, pos, freqs),
                      _rot(kk, pos, freqs))
    s_out = jnp.einsum("...id,...jd->...ij", _rot(q, pos / k + w * (1 - 1 / k), freqs),
                       _rot(kk, pos / k, freqs))
    d = pos[:, None] - pos[None, :]
    return jnp.where(d < w, s_in, s_out)


def _rot(x, positions, freqs):
    """``sulib.rope.rotate`` without host checks, for use inside jitted code."""
    phi = positions[:, None] * freqs[None, :]
    c, s = jnp.cos(phi), jnp.sin(phi)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return jnp.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1).reshape(x.shape)


_two_pass_jit = jax.jit(_two_pass)


def leaky_rerope_scores(q, k, freqs, w: float, k_slope: float) -> jax.Array:
    """Leaky ReRoPE scores by two RoPE passes, merged by the window mask.

    Inside the window the query and key are rotated by their own positions ``i, j``; outside
    by ``i/k + w(1 − 1/k)`` and ``j/k``, whose difference is ``w + (i − j − w)/k``.

    Args:
        q, k: ``(..., n, d)`` queries and keys at positions ``0 … n−1``, ``d`` even.
        freqs: ``(d/2,)`` frequencies.
        w, k_slope: window and slope divisor of :func:`leaky_rerope_positions`.

    Returns:
        ``(..., n, n)`` scores; entries with ``i − j ≥ 0`` are the Leaky ReRoPE scores (those
        with ``j > i`` are plain RoPE's, masked in causal attention).
    """
    q, k = _check_qk(q, k)
    f = _check_freqs(freqs, q.shape[-1])
    w = positive_scalar("w", w)
    k_slope = positive_scalar("k_slope", k_slope)
    return _two_pass_jit(jnp.asarray(q), jnp.asarray(k), jnp.asarray(f, dtype=q.dtype),
                         w, k_slope)


def _softmax_causal(s, v):
    n = s.shape[-1]
    mask = jnp.tril(jnp.ones((n, n), dtype=bool))
    s = jnp.where(mask, s / jnp.sqrt(v.shape[-1]).astype(s.dtype), -jnp.inf)
    return jax.nn.softmax(s, axis=-1) @ v


# The two jitted kernels below take no host-side checks, so they can be called inside a
# traced function (benchmarks/rerope.py calls them from a jitted training step);
# rope_attention and leaky_rerope_attention are the checked public entry points.
@jax.jit
def _rope_attention(q, k, v, freqs):
    pos = jnp.arange(q.shape[-2], dtype=q.dtype)
    s = jnp.einsum("...id,...jd->...ij", _rot(q, pos, freqs), _rot(k, pos, freqs))
    return _softmax_causal(s, v)


@jax.jit
def _leaky_attention(q, k, v, freqs, w, k_slope):
    return _softmax_causal(_two_pass(q, k, freqs, w, k_slope), v)


def _check_qkv(q, k, v, freqs):
    q, k = _check_qk(q, k)
    v = as_finite_array("v", v, min_ndim=2)
    if v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"v must have shape {q.shape[:-1]} + (e,), got {v.shape}")
    return q, k, v, _check_freqs(freqs, q.shape[-1])


def rope_attention(q, k, v, freqs) -> jax.Array:
    """Causal softmax attention with plain RoPE, scale ``1/√d``.

    Args:
        q, k: ``(..., n, d)``; v: ``(..., n, e)``; freqs: ``(d/2,)``.

    Returns:
        ``(..., n, e)``.
    """
    q, k, v, f = _check_qkv(q, k, v, freqs)
    return _rope_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                           jnp.asarray(f, dtype=q.dtype))


def leaky_rerope_attention(q, k, v, freqs, w: float, k_slope: float) -> jax.Array:
    """Causal softmax attention with Leaky ReRoPE (two score passes), scale ``1/√d``.

    Shapes as in :func:`rope_attention`; ``w``, ``k_slope`` as in :func:`leaky_rerope_scores`.
    """
    q, k, v, f = _check_qkv(q, k, v, freqs)
    w = positive_scalar("w", w)
    k_slope = positive_scalar("k_slope", k_slope)
    return _leaky_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                            jnp.asarray(f, dtype=q.dtype), w, k_slope)


@jax.jit
def _nearest(values, trained):
    idx = jnp.clip(jnp.searchsorted(trained, values), 1, trained.shape[0] - 1)
    lo, hi = trained[idx - 1], trained[idx]
    return jnp.where(jnp.abs(values - lo) <= jnp.abs(hi - values), lo, hi)


def nearest_trained(values, trained) -> jax.Array:
    """For each entry of ``values`` (any shape), the nearest entry of ``trained``.

    Args:
        values: relative positions used at inference, any shape.
        trained: ``(m,)`` sorted (ascending) relative positions seen in training, ``m >= 2``.

    Returns:
        array of ``values``' shape (ties go to the smaller trained position).
    """
    v = as_finite_array("values", values)
    t = as_finite_array("trained", trained)
    if t.ndim != 1 or t.shape[0] < 2:
        raise ValueError(f"trained must have shape (m,) with m >= 2, got {t.shape}")
    if np.any(np.diff(t) < 0):
        raise ValueError("trained must be sorted in ascending order")
    return _nearest(jnp.asarray(v, dtype=jnp.result_type(float)),
                    jnp.asarray(t, dtype=jnp.result_type(float)))


@jax.jit
def _code_distance(weights, freqs, trained, test):
    ct, st = jnp.cos(trained[:, None] * freqs), jnp.sin(trained[:, None] * freqs)   # (m, h)

    def one(r):
        gap = jnp.hypot(jnp.cos(r * freqs) - ct, jnp.sin(r * freqs) - st)          # (m, h)
        return jnp.min(gap @ weights.T, axis=0)                                     # (n_w,)

    return jax.lax.map(one, test).T / jnp.sum(weights, axis=1)[:, None]


def code_distance(weights, freqs, trained, test) -> jax.Array:
    """Weighted distance from each test position's RoPE code to the nearest trained one.

    ``D(r) = min_{r0 ∈ trained} Σ_i w_i |e^{i r θ_i} − e^{i r0 θ_i}| / Σ_i w_i``, which
    bounds ``min_{r0} |s(r) − s(r0)| / Σ_i |c_i|`` for a query–key pair whose complex pair
    products ``c_i`` have moduli ``w_i`` (the score is ``s(r) = Re Σ_i c_i e^{i r θ_i}``).

    Args:
        weights: ``(n_w, d/2)`` non-negative pair weights, each row with a positive sum.
        freqs: ``(d/2,)`` frequencies ``θ``.
        trained: ``(m,)`` relative positions seen in training (any real values).
        test: ``(n,)`` relative positions used at inference.

    Returns:
        ``(n_w, n)`` values in ``[0, 2]``.
    """
    w = as_finite_array("weights", weights, min_ndim=2)
    if w.ndim != 2 or np.any(w < 0) or np.any(w.sum(axis=1) <= 0):
        raise ValueError(
            "weights must be (n_w, d/2), non-negative, each row with a positive sum")
    f = _check_freqs(freqs, 2 * w.shape[1])
    t = as_finite_array("trained", trained)
    r = as_finite_array("test", test)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"trained must be a non-empty 1-D array, got shape {t.shape}")
    if r.ndim != 1:
        raise ValueError(f"test must be 1-D, got shape {r.shape}")
    return _code_distance(jnp.asarray(w, dtype=float), jnp.asarray(f, dtype=float),
                          jnp.asarray(t, dtype=float), jnp.asarray(r, dtype=float))
