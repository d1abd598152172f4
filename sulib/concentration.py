"""Can attention concentrate? The l1/l2 sparsity index of attention weights (post 9889).

The sparsity index of weights ``a`` is ``S = E|a| / sqrt(E a²)`` (post 9595): 1 for equal weights,
small when a few weights carry the mass. For ``a_j ∝ f(q·k_j)`` with keys ``k ~ N(μ, σ²I)`` and
``n → ∞`` the expectations are over one standard normal ``ε``: ``x = β + γε`` with ``β = q·μ`` and
``γ = σ‖q‖``, and

    S(β, γ) = E|f(β + γε)| / sqrt(E f(β + γε)²).

This module holds the closed forms for ``f`` in :data:`KINDS` and two independent ways of getting
the same numbers: Gauss–Legendre quadrature split at the kink of ``f`` and Monte Carlo with a
delta-method standard error. It also holds the finite-``n`` index of softmax attention, the general
non-negative linear attention formula and the decay weights ``λ^k`` of linear RNNs.

Shapes: ``beta`` and ``gamma`` broadcast against each other; results have the broadcast shape.
Everything is float64 when JAX's x64 mode is on (the chapters turn it on), float32 otherwise.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf, erfc

from sulib._checks import as_finite_array, one_of, positive_int

__all__ = [
    "KINDS",
    "MonteCarlo",
    "sparsity_closed_form",
    "gaussian_moments_quadrature",
    "sparsity_quadrature",
    "sparsity_monte_carlo",
    "sample_sparsity",
    "softmax_sparsity_prefixes",
    "softmax_finite_n_coefficients",
    "linear_attention_sparsity",
    "decay_sparsity",
    "decay_bound",
]

#: The score maps ``f`` understood here: softmax's ``exp``, plain linear attention's identity and
#: the original GAU's ``relu(x)²``.
KINDS = ("exp", "identity", "relu2")

_SQRT2 = float(np.sqrt(2.0))


class MonteCarlo(NamedTuple):
    """A Monte Carlo estimate of ``S`` and its (delta-method) standard error; same shapes."""

    estimate: jax.Array  #: mean|f| / sqrt(mean f²) over the samples
    stderr: jax.Array  #: standard error of ``estimate`` (first-order delta method)


def _check_beta_gamma(beta, gamma):
    beta = as_finite_array("beta", beta)
    gamma = as_finite_array("gamma", gamma)
    if np.any(gamma <= 0):
        raise ValueError("gamma must be > 0 (gamma = σ‖q‖ is a standard deviation)")
    try:
        shape = np.broadcast_shapes(beta.shape, gamma.shape)
    except ValueError as exc:
        raise ValueError(f"beta {beta.shape} and gamma {gamma.shape} do not broadcast") from exc
    return (np.broadcast_to(np.asarray(beta, float), shape),
            np.broadcast_to(np.asarray(gamma, float), shape))


def _bucketed(kernel, beta, gamma, *args, minimum: int = 64):
    """Run ``kernel(beta, gamma, *args)`` on flat inputs padded to a power-of-two length.

    Padding (with the harmless point β = 0, γ = 1) keeps the number of distinct shapes, hence
    of XLA compilations, small; the padded entries are dropped from the result.
    """
    shape = beta.shape
    size = max(int(np.prod(shape)), 1)
    bucket = max(minimum, 1 << (size - 1).bit_length())
    b = np.zeros(bucket)
    c = np.ones(bucket)
    b[:size], c[:size] = beta.ravel(), gamma.ravel()
    out = kernel(jnp.asarray(b), jnp.asarray(c), *args)
    return jax.tree_util.tree_map(lambda o: o[:size].reshape(shape), out)


# -- closed forms ----------------------------------------------------------------------------
def _closed_exp(beta, gamma):
    return jnp.exp(-gamma**2 / 2) + 0 * beta


def _closed_identity(beta, gamma):
    # E|t + ε| / sqrt(1 + t²) with t = β/γ; the index is homogeneous of degree 0 in (β, γ)
    t = beta / gamma
    pdf = jnp.exp(-t**2 / 2) / jnp.sqrt(2 * jnp.pi)
    return (2 * pdf + t * erf(t / _SQRT2)) / jnp.sqrt(1 + t**2)


def _closed_relu2(beta, gamma):
    t = beta / gamma
    pdf = jnp.exp(-t**2 / 2) / jnp.sqrt(2 * jnp.pi)
    cdf = erfc(-t / _SQRT2) / 2  # Φ(t), accurate in the lower tail
    m2 = (1 + t**2) * cdf + t * pdf  # E relu(t + ε)²
    m4 = (t**4 + 6 * t**2 + 3) * cdf + t * (t**2 + 5) * pdf  # E relu(t + ε)⁴
    return m2 / jnp.sqrt(m4)


@jax.jit
def _closed(beta, gamma, kind_index):
    return jax.lax.switch(kind_index, (_closed_exp, _closed_identity, _closed_relu2),
                          beta, gamma)


def sparsity_closed_form(kind: str, beta, gamma) -> jax.Array:
    """The ``n → ∞`` sparsity index of ``a_j ∝ f(q·k_j)`` from its closed form.

    ``exp``: ``exp(-γ²/2)``. ``identity``: ``(√(2/π) e^{-t²/2} + t erf(t/√2)) / √(1 + t²)`` with
    ``t = β/γ``. ``relu2``: ``E relu(x)² / √(E relu(x)⁴)`` with both moments in erf and the normal
    density. For ``relu2`` the two terms of each moment cancel as ``t → -∞``: the relative error
    is about 1e-9 at ``t = -8`` and 1e-5 at ``t = -20`` (``S`` itself is below 1e-40 there); the
    quadrature has no such loss.

    Args:
        kind: one of :data:`KINDS`.
        beta: ``q·μ``, any shape.
        gamma: ``σ‖q‖ > 0``, broadcasting with ``beta``.

    Returns:
        ``S`` with the broadcast shape of ``beta`` and ``gamma``.

    Raises:
        ValueError: unknown ``kind``, non-finite input, ``gamma <= 0``, shapes that do not broadcast.
        TypeError: non-numeric ``beta`` or ``gamma``.
    """
    one_of("kind", kind, KINDS)
    return _bucketed(_closed, *_check_beta_gamma(beta, gamma), KINDS.index(kind))


# -- quadrature ------------------------------------------------------------------------------
def _f(kind_index, x):
    return jax.lax.switch(kind_index, (jnp.exp, lambda y: y,
                                       lambda y: jnp.maximum(y, 0.0) ** 2), x)


@partial(jax.jit, static_argnames=("nodes",))
def _moments_gl(beta, gamma, kind_index, nodes: int):
    u, w = np.polynomial.legendre.leggauss(nodes)  # host constants, traced once per `nodes`
    u, w = jnp.asarray(u), jnp.asarray(w)
    # |f(β + γε)| has its kink (or its zero) at ε = -β/γ; exp has none, so it is split at 0
    kink = jnp.where(kind_index == 0, 0.0, -beta / gamma)
    # φ(ε)/φ(κ) < e^{-98} beyond |ε| = √(κ² + 196) (φ itself < 1e-42 beyond 14); for exp the
    # window also reaches past ε = 2γ, where e^{2γε} φ(ε) peaks
    reach = jnp.sqrt(kink**2 + 196.0)
    lo = -reach
    hi = reach + 2 * gamma * (kind_index == 0)
    # four pieces split at the kink and at the ends of the core [-14, 14 (+2γ for exp)], where
    # the Gaussian mass lives: a far kink then does not stretch the piece that holds the mass
    cuts = jnp.sort(jnp.stack([jnp.clip(kink, lo, hi), jnp.clip(-14.0, lo, hi),
                               jnp.clip(hi - reach + 14.0, lo, hi)]), axis=0)
    def piece(a, b):
        mid, rad = (a + b) / 2, (b - a) / 2
        eps = mid[:, None] + rad[:, None] * u
        pdf = jnp.exp(-eps**2 / 2) / jnp.sqrt(2 * jnp.pi)
        fx = _f(kind_index, beta[:, None] + gamma[:, None] * eps)
        return (rad * jnp.sum(w * pdf * jnp.abs(fx), axis=-1),
                rad * jnp.sum(w * pdf * fx**2, axis=-1))

    edges = [lo, cuts[0], cuts[1], cuts[2], hi]
    parts = [piece(a, b) for a, b in zip(edges[:-1], edges[1:])]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def gaussian_moments_quadrature(kind: str, beta, gamma, *, nodes: int = 128):
    """``(E|f(β+γε)|, E f(β+γε)²)`` for ``ε ~ N(0, 1)`` by Gauss–Legendre quadrature.

    The window is ``|ε| <= √(κ² + 196)`` with ``κ = -β/γ`` the kink of ``|f|`` (beyond it the
    density is below ``e^{-98}`` of its value at the kink; for ``exp``, which has no kink, ``κ = 0``
    and the window also reaches ``2γ`` past that, beyond the peak of ``e^{2γε}φ(ε)``), split at
    ``κ`` and at the ends of the core ``[-14, 14]`` (``+2γ`` for ``exp``), so each of the four
    pieces is smooth and ``nodes`` Legendre nodes per piece converge fast. Where ``f`` vanishes on almost all the mass
    (``relu2`` with ``β/γ ≲ -37``) both moments underflow and ``S`` is nan.

    Args:
        kind: one of :data:`KINDS`.
        beta, gamma: as in :func:`sparsity_closed_form`.
        nodes: Gauss–Legendre nodes per piece (int >= 2).

    Returns:
        Two arrays with the broadcast shape of ``beta`` and ``gamma``.

    Raises:
        ValueError, TypeError: as :func:`sparsity_closed_form`, and for a bad ``nodes``.
    """
    one_of("kind", kind, KINDS)
    nodes = positive_int("nodes", nodes, minimum=2)
    return _bucketed(_moments_gl, *_check_beta_gamma(beta, gamma), KINDS.index(kind), nodes)


def sparsity_quadrature(kind: str, beta, gamma, *, nodes: int = 128) -> jax.Array:
    """``S(β, γ)`` from :func:`gaussian_moments_quadrature`; same arguments and shapes."""
    m1, m2 = gaussian_moments_quadrature(kind, beta, gamma, nodes=nodes)
    return m1 / jnp.sqrt(m2)


# -- Monte Carlo -----------------------------------------------------------------------------
@jax.jit
def _index_stderr(a):
    x, y = jnp.abs(a), a**2
    m1, m2 = x.mean(-1), y.mean(-1)
    v11, v22 = x.var(-1), y.var(-1)
    v12 = ((x - m1[..., None]) * (y - m2[..., None])).mean(-1)
    # gradient of m1 / sqrt(m2): (1/sqrt(m2), -m1 / (2 m2^{3/2}))
    g1, g2 = 1 / jnp.sqrt(m2), -m1 / (2 * m2**1.5)
    var = (g1**2 * v11 + 2 * g1 * g2 * v12 + g2**2 * v22) / a.shape[-1]
    return MonteCarlo(m1 / jnp.sqrt(m2), jnp.sqrt(var))


def sample_sparsity(a) -> MonteCarlo:
    """``mean|a| / sqrt(mean a²)`` over the last axis, with a delta-method standard error.

    Read as a Monte Carlo estimate of ``E|a| / sqrt(E a²)`` from i.i.d. draws along the last axis;
    the standard error uses the sample covariance of ``(|a|, a²)``.

    Args:
        a: ``(..., m)`` samples, ``m >= 2``, not all zero along any row.

    Returns:
        :class:`MonteCarlo` with arrays of shape ``(...)``.

    Raises:
        ValueError: fewer than 2 samples, non-finite values, an all-zero row.
        TypeError: non-numeric ``a``.
    """
    a = as_finite_array("a", a, min_ndim=1)
    if a.shape[-1] < 2:
        raise ValueError(f"a needs at least 2 samples along its last axis, got {a.shape[-1]}")
    if np.any(np.all(a == 0, axis=-1)):
        raise ValueError("a has a row of zeros (its index is 0/0)")
    return _index_stderr(jnp.asarray(a, float))


@partial(jax.jit, static_argnames=("samples",))
def _mc(beta, gamma, key, kind_index, samples: int):
    eps = jax.random.normal(key, (samples,))

    def one(bg):  # one (β, γ) at a time: memory stays at `samples`
        return _index_stderr(_f(kind_index, bg[0] + bg[1] * eps))

    return jax.lax.map(one, jnp.stack([beta, gamma], axis=-1))


def sparsity_monte_carlo(key: jax.Array, kind: str, beta, gamma, samples: int) -> MonteCarlo:
    """Monte Carlo ``S(β, γ)`` from ``samples`` draws of ``ε``, with its standard error.

    The same draws serve every ``(β, γ)`` (common random numbers), so differences between grid
    points are less noisy than the standard errors suggest.

    Args:
        key: a JAX PRNG key.
        kind: one of :data:`KINDS`.
        beta, gamma: as in :func:`sparsity_closed_form`.
        samples: number of draws (int >= 2).

    Returns:
        :class:`MonteCarlo` with arrays of the broadcast shape of ``beta`` and ``gamma``.

    Raises:
        ValueError, TypeError: as :func:`sparsity_closed_form`, and for a bad ``samples``.
    """
    one_of("kind", kind, KINDS)
    samples = positive_int("samples", samples, minimum=2)
    return _bucketed(_mc, *_check_beta_gamma(beta, gamma), key, KINDS.index(kind), samples,
                     minimum=8)


# -- finite n: softmax attention over n random keys -------------------------------------------
@partial(jax.jit, static_argnames=("lengths", "replicates", "chunk"))
def _prefixes(key, gamma, lengths, replicates: int, chunk: int):
    n_max = lengths[-1]
    idx = jnp.asarray(lengths) - 1

    def one_chunk(k):
        z = gamma * jax.random.normal(k, (chunk, n_max))
        a = jnp.exp(z - z.max(-1, keepdims=True))  # S is scale-invariant: e^{β} and the max cancel
        c1 = jnp.cumsum(a, -1)[:, idx]
        c2 = jnp.cumsum(a**2, -1)[:, idx]
        n = jnp.asarray(lengths, float)
        return (c1 / n) / jnp.sqrt(c2 / n)

    keys = jax.random.split(key, replicates // chunk)
    # sequential over chunks: memory stays at chunk × max(lengths)
    return jax.lax.map(one_chunk, keys).reshape(replicates, len(lengths))


def softmax_sparsity_prefixes(key: jax.Array, gamma: float, lengths, replicates: int,
                              *, chunk: int = 64) -> jax.Array:
    """Finite-``n`` sparsity ``S_n`` of softmax weights ``a_j ∝ exp(q·k_j)`` over ``n`` keys.

    With ``k ~ N(μ, σ²I)`` the scores are ``β + γ ε_j``; ``e^{β}`` cancels in
    ``S_n = mean_j a_j / sqrt(mean_j a_j²)``, so only ``γ`` enters. Each replicate draws
    ``max(lengths)`` scores and reports ``S_n`` of its first ``n`` for every ``n`` in ``lengths``.

    Args:
        key: a JAX PRNG key.
        gamma: ``σ‖q‖ > 0``.
        lengths: strictly increasing ints >= 1.
        replicates: number of independent rows (a positive multiple of ``chunk``).
        chunk: rows drawn at once (bounds memory at ``chunk × max(lengths)``).

    Returns:
        ``(replicates, len(lengths))`` array of ``S_n``.

    Raises:
        ValueError: ``gamma <= 0`` or not a scalar, lengths not increasing or < 1, replicates not a multiple of
            chunk.
        TypeError: non-int lengths, replicates or chunk.
    """
    if np.ndim(gamma) != 0:
        raise ValueError(f"gamma must be a scalar, got shape {np.shape(gamma)}")
    gamma = float(_check_beta_gamma(0.0, gamma)[1])
    if isinstance(lengths, (int, np.integer)):
        raise TypeError("lengths must be a sequence of ints, got a single int")
    lengths = tuple(positive_int("lengths", int(v) if isinstance(v, np.integer) else v)
                    for v in lengths)
    if not lengths or any(b <= a for a, b in zip(lengths, lengths[1:])):
        raise ValueError(f"lengths must be non-empty and strictly increasing, got {lengths}")
    chunk = positive_int("chunk", chunk)
    replicates = positive_int("replicates", replicates)
    if replicates % chunk:
        raise ValueError(f"replicates ({replicates}) must be a multiple of chunk ({chunk})")
    return _prefixes(key, jnp.asarray(gamma), lengths, replicates, chunk)


def softmax_finite_n_coefficients(gamma):
    """First-order (delta-method) coefficients of ``S_n`` around ``S_∞ = e^{-γ²/2}``.

    ``E S_n ≈ S_∞ (1 + c/n)`` and ``sd(S_n) ≈ S_∞ √(v/n)`` with

    ``c = 3/8 (e^{4γ²} - 1) - 1/2 (e^{2γ²} - 1)``,
    ``v = 1/4 (e^{4γ²} - 1) - e^{2γ²} + e^{γ²}``.

    Both are valid for ``n ≫ e^{4γ²}``, the number of keys needed before the mean of ``a²``
    settles.

    Args:
        gamma: ``σ‖q‖ > 0``, any shape.

    Returns:
        ``(c, v)``, NumPy arrays of the shape of ``gamma``.

    Raises:
        ValueError, TypeError: non-finite, non-positive or non-numeric ``gamma``.
    """
    g2 = _check_beta_gamma(0.0, gamma)[1] ** 2
    c = 0.375 * np.expm1(4 * g2) - 0.5 * np.expm1(2 * g2)
    v = 0.25 * np.expm1(4 * g2) - np.exp(2 * g2) + np.exp(g2)
    return c, v


# -- general non-negative linear attention -----------------------------------------------------
def linear_attention_sparsity(q_tilde, mu_tilde, cov_tilde) -> np.ndarray:
    """``S = q̃ᵀμ̃ / sqrt(q̃ᵀ(μ̃μ̃ᵀ + Σ̃)q̃)`` for ``a_j = q̃·k̃_j >= 0``.

    Args:
        q_tilde: ``(..., d)`` non-negative query features.
        mu_tilde: ``(d,)`` mean of the key features.
        cov_tilde: ``(d, d)`` covariance of the key features (symmetric, positive semi-definite).

    Returns:
        ``(...)`` array of ``S``.

    Raises:
        ValueError: negative ``q_tilde`` or ``mu_tilde``, mismatched shapes, asymmetric
            ``cov_tilde``, ``cov_tilde`` with an eigenvalue below ``-1e-12·max|eig|``
            (not positive semi-definite), a query with ``q̃ᵀμ̃ = 0``.
        TypeError: non-numeric input.
    """
    q = as_finite_array("q_tilde", q_tilde, min_ndim=1)
    mu = as_finite_array("mu_tilde", mu_tilde, min_ndim=1)
    cov = as_finite_array("cov_tilde", cov_tilde, min_ndim=2)
    d = q.shape[-1]
    if mu.shape != (d,):
        raise ValueError(f"mu_tilde must have shape ({d},), got {mu.shape}")
    if cov.shape != (d, d):
        raise ValueError(f"cov_tilde must have shape ({d}, {d}), got {cov.shape}")
    if not np.allclose(cov, cov.T):
        raise ValueError("cov_tilde must be symmetric")
    eig = np.linalg.eigvalsh(cov)
    if eig.min() < -1e-12 * max(abs(eig).max(), 1.0):
        raise ValueError("cov_tilde must be positive semi-definite "
                         f"(smallest eigenvalue {eig.min():.3g})")
    if np.any(q < 0) or np.any(mu < 0):
        raise ValueError("q_tilde and mu_tilde must be non-negative (non-negative features)")
    mean = q @ mu
    if np.any(mean <= 0):
        raise ValueError("q_tilde · mu_tilde must be > 0 for every query")
    quad = np.einsum("...i,ij,...j->...", q, cov, q)
    return mean / np.sqrt(mean**2 + quad)


# -- decay weights λ^k (linear RNNs) ---------------------------------------------------------
def _check_decay(lam, n):
    lam = as_finite_array("lam", lam)
    if np.any(lam <= 0) or np.any(lam > 1):
        raise ValueError("lam must lie in (0, 1]")
    n = as_finite_array("n", n)
    if not np.issubdtype(n.dtype, np.integer) or np.any(n < 1):
        raise ValueError("n must hold integers >= 1")
    return np.asarray(lam, float), np.asarray(n, float)


def decay_sparsity(lam, n) -> np.ndarray:
    """``S`` of ``a = (λ^{n-1}, …, λ, 1)``: ``√((1-λⁿ)(1+λ) / (n(1-λ)(1+λⁿ)))``, 1 at ``λ = 1``.

    Args:
        lam: decay in ``(0, 1]``, any shape.
        n: integer lengths >= 1, broadcasting with ``lam``.

    Returns:
        Array of the broadcast shape.

    Raises:
        ValueError: ``lam`` outside ``(0, 1]``, ``n`` not integers >= 1.
        TypeError: non-numeric input.
    """
    lam, n = _check_decay(lam, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam_n = lam**n
        # (1 - λⁿ)/(1 - λ) = Σ_{k<n} λ^k, evaluated without cancellation near λ = 1
        geometric = -np.expm1(n * np.log(lam)) / -np.expm1(np.log(lam))
        s = np.sqrt(geometric * (1 + lam) / (n * (1 + lam_n)))
    return np.where(lam == 1, 1.0, s)


def decay_bound(lam, n) -> np.ndarray:
    """The post's bound ``√((1+λ) / (n(1-λ)(1+λⁿ)))`` on :func:`decay_sparsity`; inf at ``λ = 1``."""
    lam, n = _check_decay(lam, n)
    with np.errstate(divide="ignore"):
        return np.sqrt((1 + lam) / (n * (1 - lam) * (1 + lam**n)))
