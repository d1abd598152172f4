"""Rotary position embedding (RoPE) core: frequencies, rotations and relative-position scores.

Layout: a head vector of even size ``d`` is read as ``d/2`` pairs ``(x[2i], x[2i+1])``; pair
``i`` is rotated by the angle ``p·θ_i`` at position ``p``, with ``θ_i = base^{−2i/d}``
(RoFormer's choice). Then ``⟨R(m)q, R(n)k⟩`` depends on ``m − n`` only, so attention scores can
be computed from *any* matrix of relative positions ``r_ij`` — the route by which schemes that
remap relative positions (ReRoPE, Leaky ReRoPE) are evaluated:

- :func:`frequencies`: ``θ_i`` for ``i = 0 … d/2 − 1``;
- :func:`rotate`: ``R(p) x`` for vectors at positions ``p``;
- :func:`relative_scores`: ``s_ij = Σ_i [A_i cos(r θ_i) + B_i sin(r θ_i)]`` with
  ``A_i = q_{2i}k_{2i} + q_{2i+1}k_{2i+1}``, ``B_i = q_{2i}k_{2i+1} − q_{2i+1}k_{2i}``, equal to
  ``⟨R(m)q, R(n)k⟩`` when ``r_ij = m_i − n_j``.

Scaled variants (position interpolation, NTK-aware bases, ...) only change ``θ`` or ``r``; pass
their frequencies to :func:`rotate` and :func:`relative_scores`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, positive_int, positive_scalar

__all__ = ["frequencies", "rotate", "relative_scores"]


def frequencies(d: int, base: float = 10000.0) -> np.ndarray:
    """RoPE frequencies ``θ_i = base^{−2i/d}``, shape ``(d/2,)``, float64; ``d`` even >= 2."""
    d = positive_int("d", d, minimum=2)
    if d % 2:
        raise ValueError(f"d must be even, got {d}")
    base = positive_scalar("base", base)
    return base ** (-2.0 * np.arange(d // 2) / d)


def _check_freqs(freqs, d: int) -> np.ndarray:
    f = as_finite_array("freqs", freqs)
    if f.shape != (d // 2,):
        raise ValueError(f"freqs must have shape ({d // 2},) for head size {d}, got {f.shape}")
    return f


def _check_head(name: str, x) -> np.ndarray:
    x = as_finite_array(name, x, min_ndim=2)
    if x.shape[-1] % 2:
        raise ValueError(f"{name} must have an even last axis (head size), got {x.shape[-1]}")
    return x


@jax.jit
def _rotate(x, positions, freqs):
    phi = positions[:, None] * freqs[None, :]                    # (n, d/2)
    c, s = jnp.cos(phi), jnp.sin(phi)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = jnp.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    return out.reshape(x.shape)


def rotate(x, positions, freqs) -> jax.Array:
    """Rotate each pair of ``x`` by ``position · θ``.

    Args:
        x: ``(..., n, d)`` vectors, ``d`` even.
        positions: ``(n,)`` positions (any real numbers: scaled schemes use fractions).
        freqs: ``(d/2,)`` frequencies, e.g. from :func:`frequencies`.

    Returns:
        ``(..., n, d)``: pair ``i`` of row ``t`` rotated by the angle ``positions[t]·freqs[i]``.
    """
    x = _check_head("x", x)
    p = as_finite_array("positions", positions)
    if p.shape != (x.shape[-2],):
        raise ValueError(f"positions must have shape ({x.shape[-2]},), got {p.shape}")
    f = _check_freqs(freqs, x.shape[-1])
    return _rotate(jnp.asarray(x), jnp.asarray(p, dtype=x.dtype if x.dtype.kind == "f"
                                                else None), jnp.asarray(f))


@jax.jit
def _relative_scores(q, k, rel, freqs):
    a = q[:, None, 0::2] * k[None, :, 0::2] + q[:, None, 1::2] * k[None, :, 1::2]
    b = q[:, None, 0::2] * k[None, :, 1::2] - q[:, None, 1::2] * k[None, :, 0::2]
    phi = rel[:, :, None] * freqs                                # (n, m, d/2)
    return jnp.sum(a * jnp.cos(phi) + b * jnp.sin(phi), axis=-1)


def relative_scores(q, k, rel, freqs) -> jax.Array:
    """RoPE attention scores from a matrix of relative positions.

    Args:
        q: ``(n, d)`` queries, ``d`` even.
        k: ``(m, d)`` keys.
        rel: ``(n, m)`` relative positions ``r_ij`` (query minus key for plain RoPE; any
            remapped values for ReRoPE-like schemes).
        freqs: ``(d/2,)`` frequencies.

    Returns:
        ``(n, m)`` scores ``s_ij``, equal to ``⟨R(a_i) q_i, R(b_j) k_j⟩`` whenever
        ``rel[i, j] = a_i − b_j``.
    """
    q, k = _check_head("q", q), _check_head("k", k)
    if q.ndim != 2 or k.ndim != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(f"q and k must be (n, d) and (m, d) with one d, got {q.shape}, {k.shape}")
    r = as_finite_array("rel", rel)
    if r.shape != (q.shape[0], k.shape[0]):
        raise ValueError(f"rel must have shape {(q.shape[0], k.shape[0])}, got {r.shape}")
    f = _check_freqs(freqs, q.shape[1])
    return _relative_scores(jnp.asarray(q), jnp.asarray(k), jnp.asarray(r, dtype=q.dtype),
                            jnp.asarray(f))
