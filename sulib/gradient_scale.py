"""The attention scale that maximises the softmax Jacobian (kexue.fm post 9812).

For ``p = softmax(α s)`` the Jacobian ``∂p/∂s = α (diag p − p pᵀ)`` has half-L1 norm
``α (1 − Σ p_i²)``. With ``n`` i.i.d. scores its expectation is ``α (1 − E Σ p_i²)``, and the
scale ``α*`` that maximises it is the post's "best" attention scale. This module computes

- :func:`expected_sum_p2`: ``E Σ p_i²`` exactly (up to quadrature error) for i.i.d. scores
  from a standard normal or from the cosine density ``∝ (1 − s²)^{(d−3)/2}``, through
  ``1/Z² = ∫_0^∞ t e^{−tZ} dt``, which turns the n-fold expectation into one-dimensional
  integrals: ``E Σp² = n ∫ t E[e^{2αs} e^{−t e^{αs}}] (E e^{−t e^{αs}})^{n−1} dt``;
- :func:`annealed_sum_p2`: the post's law-of-large-numbers approximation
  ``E[e^{2αs}] / (n E[e^{αs}]²)``;
- :func:`cosine_scores`: samples of the cosine between a fixed and a uniform unit vector;
- :func:`log_half_l1`: per-row ``log α(1 − Σp²)`` for sampled scores, without cancellation at
  large α (for "typical-row" objectives such as ``E log`` or the row median);
- :func:`refine_argmax`: the maximiser of a sampled curve (grid argmax plus a parabola).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from sulib._checks import as_finite_array, one_of, positive_int

__all__ = ["DENSITIES", "MAX_ALPHA_STEP", "expected_sum_p2", "annealed_sum_p2",
           "cosine_scores", "log_half_l1", "refine_argmax", "score_nodes"]

#: Score distributions the module knows.
DENSITIES = ("gaussian", "cosine")

#: Largest ``α·Δs`` (logit step of the score grid) :func:`expected_sum_p2` accepts. Measured
#: against the tie-density limit: relative error below 1e-3 up to 0.75 (Gaussian, n = 16;
#: cosine d = 128, n = 16 and 4096), +0.7% at 1.5, −14% at 2, +150% at 2.5.
MAX_ALPHA_STEP = 0.75


def _check_alphas(alphas) -> np.ndarray:
    a = as_finite_array("alphas", alphas)
    if a.ndim > 1:
        raise ValueError(f"alphas must be a scalar or 1-D, got shape {a.shape}")
    a = np.atleast_1d(a).astype(np.float64)
    if a.size == 0 or np.any(a <= 0):
        raise ValueError("alphas must be non-empty and > 0")
    return a


def _check_ns(ns, integer: bool = True) -> np.ndarray:
    n = as_finite_array("ns", ns)
    if n.ndim > 1:
        raise ValueError(f"ns must be a scalar or 1-D, got shape {n.shape}")
    n = np.atleast_1d(n)
    if n.size == 0 or np.any(n < 1) or (integer and np.any(n != np.round(n))):
        raise ValueError(f"ns must be non-empty{' integers' if integer else ''} >= 1")
    return n.astype(np.float64)


def _check_density(density: str, d) -> int:
    one_of("density", density, DENSITIES)
    if density == "cosine":
        return positive_int("d", d, minimum=3)
    if d is not None:
        raise ValueError("d is only used with density='cosine'; pass d=None")
    return 0


def score_nodes(density: str, d: int | None = None, points: int = 801):
    """Quadrature nodes and log-weights for one score ``s``.

    Args:
        density: ``"gaussian"`` (standard normal, nodes on [−10, 10]) or ``"cosine"``
            (density ``∝ (1 − s²)^{(d−3)/2}``, nodes where it is above e^{−80} of its peak).
        d: the dimension, for ``"cosine"`` only.
        points: number of nodes (>= 101); errors name it ``s_points``, as
            :func:`expected_sum_p2` passes it on.

    Returns:
        ``(s, log_w)``, two ``(points,)`` float64 arrays with ``Σ exp(log_w) = 1`` and
        ``Σ exp(log_w) f(s) ≈ E f(s)`` (trapezoid rule, normalised on the grid).
    """
    d = _check_density(density, d)
    points = positive_int("s_points", points, minimum=101)
    if density == "gaussian":
        s = np.linspace(-10.0, 10.0, points)
        log_w = -s**2 / 2
    else:
        # where the log-density is within 80 of its peak (all of (-1, 1) for d <= 5)
        edge = np.sqrt(-np.expm1(-160.0 / (d - 3))) if d > 5 else 1.0
        s = np.linspace(-edge, edge, points + 2)[1:-1]
        log_w = 0.5 * (d - 3) * np.log1p(-s**2)
    log_w = log_w - np.logaddexp.reduce(log_w)
    return s, log_w


@partial(jax.jit, static_argnames=("u_points",))
def _quad_one(alpha, ns, s, log_w, u_points: int):
    """E Σp² for one α and every n in ns (N,); s, log_w (S,) from score_nodes."""
    x = alpha * s                                             # (S,)
    lo, hi = -jnp.max(x) - 25.0, -jnp.min(x) + 8.0
    u = jnp.linspace(lo, hi, u_points)                        # log t
    e = jnp.exp(u[:, None] + x[None, :])                      # t e^{αs}, (U, S)
    one_minus_phi = jnp.sum(jnp.exp(log_w) * -jnp.expm1(-e), axis=1)
    log_phi_direct = jax.scipy.special.logsumexp(log_w - e, axis=1)
    log_phi = jnp.where(one_minus_phi < 0.5,
                        jnp.log1p(-jnp.minimum(one_minus_phi, 0.5)), log_phi_direct)
    log_psi = jax.scipy.special.logsumexp(log_w + 2 * x - e, axis=1)
    log_f = 2 * u + log_psi + (ns[:, None] - 1) * log_phi      # (N, U)
    du = u[1] - u[0]
    wt = jnp.full(u_points, du).at[0].set(du / 2).at[-1].set(du / 2)
    return ns * jnp.sum(wt * jnp.exp(log_f), axis=1)


def expected_sum_p2(alphas, ns, density: str = "gaussian", d: int | None = None, *,
                    s_points: int = 801, u_points: int = 801) -> np.ndarray:
    """``E Σ_i p_i²`` for ``p = softmax(α s)`` with ``n`` i.i.d. scores, by quadrature.

    Uses ``1/Z² = ∫_0^∞ t e^{−tZ} dt`` with ``Z = Σ e^{α s_i}``, so that
    ``E Σp² = n ∫_0^∞ t ψ(t) φ(t)^{n−1} dt`` with ``φ(t) = E e^{−t e^{αs}}`` and
    ``ψ(t) = E[e^{2αs} e^{−t e^{αs}}]``: two one-dimensional integrals over ``s`` (trapezoid
    on :func:`score_nodes`) and one over ``log t`` (trapezoid, range set from ``α s``).
    No law-of-large-numbers step: exact for every ``n`` and ``α`` up to quadrature error, as
    long as the logit step ``α·Δs`` of the score grid stays at most :data:`MAX_ALPHA_STEP`
    (the trapezoid in ``s`` fails without warning beyond it, so larger α raise; pass a larger
    ``s_points``, about ``α·(s_max − s_min)/0.75``, to reach them).

    Args:
        alphas: scalar or ``(A,)``, scales α > 0.
        ns: scalar or ``(N,)``, numbers of keys (integers >= 1).
        density: ``"gaussian"`` or ``"cosine"``.
        d: dimension for ``"cosine"``.
        s_points, u_points: quadrature sizes.

    Returns:
        ``(A, N)`` float64 array of ``E Σp²`` (in ``[1/n, 1]``).

    Raises:
        ValueError: naming ``alphas`` if ``max(α)·Δs > MAX_ALPHA_STEP`` for the score grid.
    """
    a, n = _check_alphas(alphas), _check_ns(ns)
    u_points = positive_int("u_points", u_points, minimum=101)
    s, log_w = score_nodes(density, d, s_points)
    step = float(a.max() * (s[1] - s[0]))
    if step > MAX_ALPHA_STEP:
        need = int(np.ceil(a.max() * (s[-1] - s[0]) / MAX_ALPHA_STEP)) + 1
        raise ValueError(f"alphas up to {a.max():g} need α·Δs <= {MAX_ALPHA_STEP} on the "
                         f"score grid (got {step:.2f}); pass s_points >= {need}")
    n_j, s_j, w_j = jnp.asarray(n), jnp.asarray(s), jnp.asarray(log_w)
    # one compiled kernel per (len(ns), grid size), reused for every α
    return np.stack([np.asarray(_quad_one(float(ak), n_j, s_j, w_j, u_points)) for ak in a])


def _log_mgf(alpha: np.ndarray, density: str, d: int) -> np.ndarray:
    """log E e^{α s}: α²/2 (gaussian); log Γ(ν+1) (2/α)^ν I_ν(α), ν = d/2 − 1 (cosine)."""
    if density == "gaussian":
        return alpha**2 / 2
    nu = d / 2 - 1
    # log I_ν(α) from its power series Σ_k (α/2)^{2k+ν} / (k! Γ(k+ν+1)): positive terms,
    # summed in log space, so nothing underflows for any order or argument
    k = np.arange(int(np.ceil(alpha.max())) + 60)[None, :]
    terms = ((2 * k + nu) * np.log(alpha[:, None] / 2) - gammaln(k + 1) - gammaln(k + nu + 1))
    log_i = np.logaddexp.reduce(terms, axis=1)
    return gammaln(nu + 1) + nu * np.log(2 / alpha) + log_i


def annealed_sum_p2(alphas, ns, density: str = "gaussian", d: int | None = None) -> np.ndarray:
    """The post's approximation ``E[e^{2αs}] / (n E[e^{αs}]²)`` of ``Σ p_i²``.

    Gaussian: ``e^{α²}/n``; cosine: moment generating function of the density
    ``∝ (1 − s²)^{(d−3)/2}``, ``E e^{αs} = Γ(ν+1) (2/α)^ν I_ν(α)`` with ``ν = d/2 − 1``.

    Args:
        alphas: scalar or ``(A,)``, α > 0.  ns: scalar or ``(N,)``, real >= 1 (an
            effective number of keys need not be an integer).  density, d: as
            :func:`expected_sum_p2`.

    Returns:
        ``(A, N)`` float64 array (it may exceed 1: the approximation does not know Σp² ≤ 1).
    """
    a, n = _check_alphas(alphas), _check_ns(ns, integer=False)
    d = _check_density(density, d)
    log_ratio = _log_mgf(2 * a, density, d) - 2 * _log_mgf(a, density, d)
    return np.exp(log_ratio[:, None] - np.log(n)[None, :])


def cosine_scores(seed: int, shape, d: int) -> np.ndarray:
    """Cosines between a fixed unit vector and uniform unit vectors in ``R^d``.

    Sampled as ``s = 2b − 1`` with ``b ~ Beta((d−1)/2, (d−1)/2)``, whose density is
    ``∝ (1 − s²)^{(d−3)/2}``, by NumPy's generator (much faster on CPUs than JAX's
    rejection sampler for Beta variates).

    Args:
        seed: int seed of ``numpy.random.default_rng``.  shape: output shape, e.g.
            ``(rows, n)``.  d: dimension >= 3.

    Returns:
        float64 array of ``shape`` in (−1, 1).
    """
    seed = positive_int("seed", seed, minimum=0)
    d = positive_int("d", d, minimum=3)
    shape = tuple(positive_int("shape", int(k)) for k in np.atleast_1d(shape))
    a = (d - 1) / 2
    return 2 * np.random.default_rng(seed).beta(a, a, shape) - 1


@jax.jit
def _log_half_l1(s, alphas):
    top = jnp.max(s, axis=-1, keepdims=True)
    gap = jnp.where(s == top, jnp.inf, top - s)                  # the top entry drops out

    def one(a):                                                  # one α at a time: (rows,)
        w = jnp.exp(-a * gap)
        r, r2 = jnp.sum(w, axis=-1), jnp.sum(w * w, axis=-1)     # Σ over the others
        # 1 − Σp² = (2R + R² − R2) / (1 + R)², every term ≥ 0: no cancellation
        return jnp.log(a) + jnp.log(2 * r + (r * r - r2)) - 2 * jnp.log1p(r)

    return jax.lax.map(one, alphas)


def log_half_l1(s, alphas) -> np.ndarray:
    """``log[α (1 − Σ_i p_i²)]`` for ``p = softmax(α s)``, row by row, without cancellation.

    With ``w_i = e^{α(s_i − max s)}`` and ``R = Σ_{i≠top} w_i``, ``R2 = Σ_{i≠top} w_i²``,
    ``1 − Σp² = (2R + R² − R2)/(1 + R)²`` and ``R² − R2 = Σ_{i≠j} w_i w_j ≥ 0``, so the log is
    accurate even when ``1 − Σp²`` is far below machine epsilon (large α). The top entry is
    left out of the sums by position, not subtracted.

    Args:
        s: ``(rows, n)`` scores, n >= 2, with a unique maximum per row.
        alphas: scalar or ``(A,)``, α > 0.

    Returns:
        ``(A, rows)`` float64 array (``−inf`` where ``α·gap`` underflows ``e^{−α gap}``).
    """
    a = _check_alphas(alphas)
    s = as_finite_array("s", s)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"s must have shape (rows, n) with n >= 2, got {s.shape}")
    return np.asarray(_log_half_l1(jnp.asarray(s, jnp.float64), jnp.asarray(a)))


def refine_argmax(x, y) -> float:
    """Maximiser of a curve sampled at increasing ``x``: grid argmax refined by a parabola.

    The parabola goes through the best point and its two neighbours in ``log x`` (so a
    log-spaced grid is refined evenly).

    Args:
        x: ``(m,)`` increasing, > 0.  y: ``(m,)`` values.

    Returns:
        the maximiser (float).

    Raises:
        ValueError: if the maximum sits on the first or last point (the grid is too narrow).
    """
    x, y = as_finite_array("x", x), as_finite_array("y", y)
    if x.ndim != 1 or y.shape != x.shape or x.size < 3:
        raise ValueError("x and y must be 1-D of the same length >= 3")
    if np.any(x <= 0) or np.any(np.diff(x) <= 0):
        raise ValueError("x must be increasing and > 0")
    k = int(np.argmax(y))
    if k == 0 or k == x.size - 1:
        raise ValueError(f"the maximum is at the edge of the grid (x = {x[k]:g})")
    u = np.log(x[k - 1:k + 2])
    c2, c1, _ = np.polyfit(u, y[k - 1:k + 2], 2)
    return float(np.exp(-c1 / (2 * c2)))
