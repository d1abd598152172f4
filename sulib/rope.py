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

Scaled variants for running a model trained at length ``L`` at ``k·L`` only change ``θ`` (or,
equivalently, the positions); each returns frequencies to pass to :func:`rotate` and
:func:`relative_scores`. With ``β = base^{2/d}`` and pair index ``m = i + 1 = 1 … d/2`` (so
``θ_m = β^{−(m−1)}``) and ``λ = k^{2/d}``:

- :func:`pi_frequencies`: position interpolation, ``θ_m / k`` (positions divided by ``k``);
- :func:`ntk_aware_frequencies`: the base change ``β → βλ``, ``(βλ)^{−(m−1)}``
  (base ``→ base·k``);
- :func:`ntk_fixed_frequencies`: ``1 / (λ (βλ)^{m−1})``: base ``βλ`` whose digit period also
  grows by ``λ``; it compresses the slowest pair by ``k``;
- :func:`mixed_base_frequencies`: ``θ_m / (λ_1⋯λ_m)`` with ``λ_1⋯λ_m = exp(a m^b)`` and
  ``a (d/2)^b = log k`` (``b = 1``: NTK-fixed, ``b = 0``: PI); :func:`mixed_base_factors` gives
  the per-pair factors ``λ_m``;
- :func:`logn_scale`: the query scale ``max(1, log_L n)`` for a model trained at length ``L``.

:func:`nearest_trained_distance` measures how far a scheme's rotation code at a test distance is
from every code the model saw in training (distances ``0 … L−1`` under plain RoPE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, positive_int, positive_scalar

__all__ = [
    "frequencies", "rotate", "relative_scores", "pi_frequencies", "ntk_aware_frequencies",
    "ntk_fixed_frequencies", "mixed_base_factors", "mixed_base_frequencies", "logn_scale",
    "nearest_trained_distance",
]


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


# -- scaled variants for a k-times longer context -------------------------------------------


def _scale_factor(k) -> float:
    k = positive_scalar("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1 (the length ratio), got {k}")
    return k


def pi_frequencies(d: int, k: float, base: float = 10000.0) -> np.ndarray:
    """Position interpolation: ``θ_i / k``, shape ``(d/2,)``.

    The same as dividing the positions by ``k``.
    """
    return frequencies(d, base) / _scale_factor(k)


def ntk_aware_frequencies(d: int, k: float, base: float = 10000.0) -> np.ndarray:
    """NTK-aware scaling ("NTK-RoPE-old"): ``(βλ)^{−(m−1)}``, ``λ = k^{2/d}``, shape ``(d/2,)``.

    Identical to :func:`frequencies` with ``base·k`` in place of ``base``.
    """
    f = frequencies(d, base)
    lam = _scale_factor(k) ** (2.0 / d)
    return f * lam ** (-np.arange(d // 2, dtype=float))


def ntk_fixed_frequencies(d: int, k: float, base: float = 10000.0) -> np.ndarray:
    """"NTK-RoPE-fixed": ``1 / (λ (βλ)^{m−1})``, ``m = 1 … d/2``, ``λ = k^{2/d}``; ``(d/2,)``."""
    f = frequencies(d, base)
    lam = _scale_factor(k) ** (2.0 / d)
    return f * lam ** (-np.arange(1, d // 2 + 1, dtype=float))


def _mixed_exponents(d: int, k: float, b: float) -> np.ndarray:
    """``a m^b`` for ``m = 1 … d/2`` with ``a = log k / (d/2)^b``."""
    d = positive_int("d", d, minimum=2)
    if d % 2:
        raise ValueError(f"d must be even, got {d}")
    k = _scale_factor(k)
    b = float(as_finite_array("b", b))
    m = np.arange(1, d // 2 + 1, dtype=float)
    return np.log(k) * (m / (d // 2)) ** b


def mixed_base_factors(d: int, k: float, b: float) -> np.ndarray:
    """Per-pair base factors ``λ_m`` of the mixed base, shape ``(d/2,)``.

    ``λ_1⋯λ_m = exp(a m^b)`` with ``a (d/2)^b = log k``, so ``λ_1 = e^a`` and
    ``λ_m = exp(a (m^b − (m−1)^b))`` for ``m ≥ 2``; their product is ``k``.
    """
    e = _mixed_exponents(d, k, b)
    return np.exp(np.diff(e, prepend=0.0))


def mixed_base_frequencies(d: int, k: float, b: float,
                           base: float = 10000.0) -> np.ndarray:
    """"NTK-RoPE-mixed": ``β^{−(m−1)} / exp(a m^b)``, ``a (d/2)^b = log k``; shape ``(d/2,)``.

    ``b = 1`` gives :func:`ntk_fixed_frequencies`, ``b = 0`` gives :func:`pi_frequencies`;
    the post uses ``b = 0.625``.
    """
    return frequencies(d, base) * np.exp(-_mixed_exponents(d, k, b))


def logn_scale(n, maxlen: int) -> np.ndarray:
    """Query scale ``max(1, log n / log maxlen)`` for positions or lengths ``n >= 1``.

    Returns an array of ``n``'s shape.
    """
    maxlen = positive_int("maxlen", maxlen, minimum=2)
    n = as_finite_array("n", n)
    if n.size and n.min() < 1:
        raise ValueError(f"n must be >= 1, got {n.min()}")
    return np.maximum(1.0, np.log(n.astype(float)) / np.log(maxlen))


@jax.jit
def _nearest_trained(weights, f_train, train_r, f_test, test_r):
    def one(r):
        # chord |e^{i r ω'} − e^{i r0 ω}| = 2|sin((r ω' − r0 ω)/2)| for every trained r0, pair
        chord = 2.0 * jnp.abs(jnp.sin(0.5 * (r * f_test[None, :]
                                             - train_r[:, None] * f_train[None, :])))
        dist = chord @ weights.T                                 # (L, n_w)
        return jnp.min(dist, axis=0)
    out = jax.lax.map(one, test_r)                              # (n_test, n_w)
    return out.T / jnp.sum(weights, axis=1)[:, None]


def nearest_trained_distance(weights, freqs_train, train_len: int, freqs_test,
                             test_positions) -> jax.Array:
    """Distance from a scheme's rotation code to the nearest code seen in training.

    For a query–key pair with complex pair products ``c_i`` (``|c_i|`` = ``weights``), the score
    at relative distance ``r`` under frequencies ``ω'`` is ``Re Σ_i c_i e^{i r ω'_i}``. Training
    showed the codes ``e^{i r0 ω_i}`` for ``r0 = 0 … train_len − 1``. This returns

        ``D(r) = min_{r0} Σ_i w_i |e^{i r ω'_i} − e^{i r0 ω_i}| / Σ_i w_i``,

    an upper bound on ``min_{r0} |s'(r) − s(r0)| / Σ_i |c_i|`` that holds for every phase of ``c``.

    Args:
        weights: ``(n_w, d/2)`` non-negative pair weights, each row with a positive sum.
        freqs_train: ``(d/2,)`` training frequencies ``ω``.
        train_len: training length ``L`` (distances ``0 … L−1``).
        freqs_test: ``(d/2,)`` the scheme's frequencies ``ω'``.
        test_positions: ``(n_test,)`` relative distances ``r``.

    Returns:
        ``(n_w, n_test)`` values of ``D`` in ``[0, 2]``.
    """
    w = as_finite_array("weights", weights, min_ndim=2)
    if w.ndim != 2 or np.any(w < 0) or np.any(w.sum(axis=1) <= 0):
        raise ValueError("weights must be (n_w, d/2), non-negative, each row with a positive sum")
    d = 2 * w.shape[1]
    f0, f1 = _check_freqs(freqs_train, d), _check_freqs(freqs_test, d)
    train_len = positive_int("train_len", train_len)
    r = as_finite_array("test_positions", test_positions)
    if r.ndim != 1:
        raise ValueError(f"test_positions must be 1-D, got shape {r.shape}")
    return _nearest_trained(jnp.asarray(w, dtype=float), jnp.asarray(f0),
                            jnp.arange(train_len, dtype=float), jnp.asarray(f1),
                            jnp.asarray(r, dtype=float))
