"""Linear SDE diffusions in continuous time (kexue.fm/archives/9209, Song et al. 2021).

Notation of the post: the forward SDE ``dx = f_t x dt + g_t dw`` on ``t ∈ [0, 1]`` has the marginal
``p(x_t | x_0) = N(ᾱ(t) x_0, β̄(t)² I)``, and the coefficients follow from the schedule:

    f_t = d ln ᾱ / dt,        g_t² = ᾱ² d(β̄² / ᾱ²) / dt = 2 ᾱ β̄ d(β̄ / ᾱ) / dt.

Three schedules (Song et al.'s forms), each with ``B(t) = β_min t + ½ (β_max − β_min) t²``:

    "ve"     ᾱ = 1,           β̄² = σ(t)² − σ_min²,  σ(t) = σ_min (σ_max/σ_min)^t,
             f = 0,           g² = 2 ln(σ_max/σ_min) σ(t)²
    "vp"     ᾱ = e^{−B/2},    β̄² = 1 − ᾱ²,           f = −β(t)/2,  g² = β(t)
    "subvp"  ᾱ = e^{−B/2},    β̄ = 1 − ᾱ²,            f = −β(t)/2,  g² = β(t) (1 − e^{−2B})

with ``β(t) = β_min + (β_max − β_min) t``. (VE's ``β̄ = √(σ(t)² − σ_min²)`` is the exact standard
deviation of the SDE started at ``x_0``, so ``β̄(0) = 0``: the transition kernel
``N(x_0, [σ²(t) − σ²(0)] I)`` of Song et al.'s Appendix B. Their code's ``std`` uses ``σ(t)`` itself,
an approximation for small ``σ_min``.)

The reverse-time SDE ``dx = [f_t x − g_t² ∇log p_t(x)] dt + g_t dw`` is integrated backwards by
Euler–Maruyama, the post's discretisation: from ``t_c`` to ``t_n < t_c``, ``h = t_c − t_n``,

    x ← x − [f(t_c) x − g²(t_c) ∇log p_{t_c}(x)] h + g(t_c) √h z,    z = N(0, I) from fold_in(key, k)

at step ``k`` (``k = 0`` is the first step, from ``grid[0]``). For data drawn from a Gaussian mixture
(:class:`sulib.diffusion.Mixture`) the score is exact: ``x_t / ᾱ = x_0 + (β̄/ᾱ) ε`` is EDM's
parametrisation at noise level ``β̄/ᾱ``, so with the mixture's denoiser ``D``

    ∇ log p_t(x) = (ᾱ D(x/ᾱ, β̄/ᾱ) − x) / β̄².

Shapes: ``K`` components in ``d`` dimensions; samples ``x`` are ``(B, d)``; times ``t`` are scalars
or arrays; a grid is ``(N + 1,)``, strictly decreasing in ``(0, 1]``. Float64 when JAX's x64 is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib import diffusion as dm
from sulib._checks import as_finite_array, one_of, positive_int

__all__ = [
    "SDE_KINDS",
    "LinearSDE",
    "ve_sde",
    "vp_sde",
    "subvp_sde",
    "Coefficients",
    "coefficients",
    "mixture_score",
    "mixture_log_density",
    "posterior_sample",
    "reverse_em_sample",
    "em_gaussian_moments",
    "DSMStats",
    "dsm_mc",
]

#: Schedule families of :class:`LinearSDE`.
SDE_KINDS = ("ve", "vp", "subvp")


@partial(jax.tree_util.register_dataclass, data_fields=["p0", "p1"], meta_fields=["kind"])
@dataclass(frozen=True)
class LinearSDE:
    """A linear diffusion ``dx = f_t x dt + g_t dw`` on ``[0, 1]`` (a JAX pytree; ``kind`` is static).

    Fields:
        kind: one of :data:`SDE_KINDS`.
        p0: ``σ_min`` (VE) or ``β_min`` (VP, sub-VP).
        p1: ``σ_max`` (VE) or ``β_max`` (VP, sub-VP).
    """

    kind: str
    p0: float
    p1: float


def _params(name_lo: str, lo, name_hi: str, hi, *, lo_positive: bool):
    lo_a, hi_a = as_finite_array(name_lo, lo), as_finite_array(name_hi, hi)
    for n, a in ((name_lo, lo_a), (name_hi, hi_a)):
        if a.ndim != 0:
            raise ValueError(f"{n} must be a scalar, got shape {a.shape}")
    lo_f, hi_f = float(lo_a), float(hi_a)
    if lo_positive and lo_f <= 0:
        raise ValueError(f"{name_lo} must be > 0, got {lo_f}")
    if lo_f < 0:
        raise ValueError(f"{name_lo} must be >= 0, got {lo_f}")
    if hi_f <= lo_f:
        raise ValueError(f"{name_hi} must be > {name_lo}, got {hi_f} <= {lo_f}")
    return lo_f, hi_f


def ve_sde(sigma_min: float = 0.01, sigma_max: float = 10.0) -> LinearSDE:
    """Variance-exploding SDE, ``σ(t) = σ_min (σ_max/σ_min)^t``; ``0 < sigma_min < sigma_max``."""
    return LinearSDE("ve", *_params("sigma_min", sigma_min, "sigma_max", sigma_max, lo_positive=True))


def vp_sde(beta_min: float = 0.1, beta_max: float = 20.0) -> LinearSDE:
    """Variance-preserving SDE, ``β(t) = β_min + (β_max − β_min) t``; ``0 <= beta_min < beta_max``."""
    return LinearSDE("vp", *_params("beta_min", beta_min, "beta_max", beta_max, lo_positive=False))


def subvp_sde(beta_min: float = 0.1, beta_max: float = 20.0) -> LinearSDE:
    """Song et al.'s sub-VP SDE (same ``ᾱ`` as VP, ``β̄ = 1 − ᾱ²``); ``0 <= beta_min < beta_max``."""
    return LinearSDE("subvp", *_params("beta_min", beta_min, "beta_max", beta_max, lo_positive=False))


class Coefficients(NamedTuple):
    """Schedule and SDE coefficients at times ``t`` (each field has the shape of ``t``)."""

    abar: jax.Array
    bbar: jax.Array
    f: jax.Array
    g2: jax.Array


def _coeffs(sde: LinearSDE, t) -> Coefficients:
    """Jittable closed forms (see the module docstring); ``t`` any shape."""
    t = jnp.asarray(t)
    lo, hi = sde.p0, sde.p1
    if sde.kind == "ve":
        log_r = jnp.log(hi / lo)
        sig2 = lo**2 * jnp.exp(2 * log_r * t)
        bbar = lo * jnp.sqrt(jnp.expm1(2 * log_r * t))
        return Coefficients(jnp.ones_like(t), bbar, jnp.zeros_like(t), 2 * log_r * sig2)
    B = lo * t + 0.5 * (hi - lo) * t**2
    beta = lo + (hi - lo) * t
    abar = jnp.exp(-0.5 * B)
    if sde.kind == "vp":
        return Coefficients(abar, jnp.sqrt(-jnp.expm1(-B)), -0.5 * beta, beta)
    return Coefficients(abar, -jnp.expm1(-B), -0.5 * beta, -beta * jnp.expm1(-2 * B))


_coeffs_jit = jax.jit(_coeffs)


def _check_sde(sde) -> LinearSDE:
    if not isinstance(sde, LinearSDE):
        raise TypeError(f"sde must be a sulib.sde.LinearSDE, got {type(sde).__name__}")
    one_of("sde.kind", sde.kind, SDE_KINDS)
    return sde


def _check_times(name: str, t, *, positive: bool) -> np.ndarray:
    t = as_finite_array(name, t)
    if np.any(t < 0) or np.any(t > 1):
        raise ValueError(f"{name} must lie in [0, 1]")
    if positive and np.any(t <= 0):
        raise ValueError(f"{name} must be > 0 (β̄ vanishes at t = 0)")
    return t


def coefficients(sde: LinearSDE, t) -> Coefficients:
    """``ᾱ(t), β̄(t), f_t, g_t²`` of ``sde`` at times ``t`` in [0, 1] (any shape), closed forms."""
    _check_sde(sde)
    t = _check_times("t", t, positive=False)
    return _coeffs_jit(sde, jnp.asarray(t, jax.dtypes.canonicalize_dtype(np.float64)))


# --------------------------------------------------------------------------- exact mixture quantities


def _score(mix, x, abar, bbar):
    """``∇ log p_t(x)`` ``(B, d)`` at scalar ``abar``, ``bbar`` (or ``(B,)``)."""
    a, b = jnp.reshape(abar, (-1, 1)), jnp.reshape(bbar, (-1, 1))
    D = dm._denoise(mix, x / a, jnp.reshape(bbar / abar, (-1,)))
    return (a * D - x) / b**2


def _logp(mix, x, abar, bbar):
    a = jnp.asarray(abar)
    return dm._log_density(mix, x / a, bbar / a) - x.shape[-1] * jnp.log(a)


_score_jit = jax.jit(_score)
_logp_jit = jax.jit(_logp)


def _check_ab(mix, x, abar, bbar):
    dm._check_mixture(mix)
    x = dm._check_x("x", x, mix)
    out = []
    for name, v in (("abar", abar), ("bbar", bbar)):
        v = as_finite_array(name, v)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != x.shape[0]):
            raise ValueError(f"{name} must be a scalar or have shape ({x.shape[0]},), got {v.shape}")
        if np.any(v <= 0):
            raise ValueError(f"{name} must be > 0")
        out.append(v)
    dt = mix.means.dtype
    return jnp.asarray(x, dt), jnp.asarray(out[0], dt), jnp.asarray(out[1], dt)


def mixture_score(mix: dm.Mixture, x, abar, bbar) -> jax.Array:
    """Exact score ``∇ log p_t(x)`` ``(B, d)`` of ``x_t = ᾱ x_0 + β̄ ε``, ``x_0`` from ``mix``.

    Args:
        mix: the data mixture.
        x: ``(B, d)``.
        abar, bbar: ``ᾱ > 0`` and ``β̄ > 0``, scalars or ``(B,)`` (any pair: VE, VP, sub-VP).
    """
    return _score_jit(mix, *_check_ab(mix, x, abar, bbar))


def mixture_log_density(mix: dm.Mixture, x, abar: float, bbar: float) -> jax.Array:
    """``log p_t(x)`` ``(B,)`` of ``x_t = ᾱ x_0 + β̄ ε`` (scalars ``ᾱ, β̄ > 0``).

    The inputs are checked on the host, so this wrapper cannot be traced by ``jax.grad``; its
    gradient in ``x`` is :func:`mixture_score` (``tests/test_sde.py`` checks the two agree).
    """
    x, a, b = _check_ab(mix, x, abar, bbar)
    if a.ndim or b.ndim:
        raise ValueError("abar and bbar must be scalars here")
    return _logp_jit(mix, x, a, b)


@partial(jax.jit, static_argnames="n")
def _posterior(mix, x, abar, bbar, key, n: int):
    B = x.shape[0]
    a = jnp.broadcast_to(abar, (B,))
    s = jnp.broadcast_to(bbar, (B,)) / a                                 # EDM noise level (B,)
    y = x / a[:, None]                                                   # (B, d), EDM coordinates
    logp, _ = dm._components(mix, y, s)                                  # (B, K)
    z = jnp.einsum("bkd,kde->bke", y[:, None, :] - mix.means[None], mix.eigvecs)
    lam, s2 = mix.eigvals[None], (s**2)[:, None, None]                   # (1, K, d), (B, 1, 1)
    mean_rot = z * lam / (lam + s2)                                      # posterior in U_k's frame
    sd_rot = jnp.sqrt(lam * s2 / (lam + s2))                             # (B, K, d)
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, logp, axis=-1, shape=(n, B))       # (n, B)
    e = jax.random.normal(k2, (n,) + x.shape, x.dtype)
    b_idx = jnp.arange(B)[None]
    rot = mean_rot[b_idx, comp] + sd_rot[b_idx, comp] * e                # (n, B, d)
    return mix.means[comp] + jnp.einsum("nbde,nbe->nbd", mix.eigvecs[comp], rot)


def posterior_sample(mix: dm.Mixture, x, abar, bbar, key: jax.Array, n: int) -> jax.Array:
    """``n`` exact samples of ``x_0 | x_t = x`` for each row of ``x``, shape ``(n, B, d)``.

    The posterior of a Gaussian mixture is a Gaussian mixture: component ``k`` is drawn with its
    responsibility ``γ_k(x)``, then ``x_0 ~ N(m_k, U_k diag(λ s²/(λ + s²)) U_kᵀ)`` with
    ``s = β̄/ᾱ`` and ``m_k = μ_k + U_k diag(λ/(λ + s²)) U_kᵀ (x/ᾱ − μ_k)``.

    Args:
        mix: the data mixture.
        x: ``(B, d)`` noisy points.
        abar, bbar: ``ᾱ, β̄ > 0``, scalars or ``(B,)``.
        key: PRNG key; n: samples per row, >= 1.
    """
    x, a, b = _check_ab(mix, x, abar, bbar)
    return _posterior(mix, x, a, b, key, positive_int("n", n))


# --------------------------------------------------------------------------- reverse Euler–Maruyama


def _check_key(key) -> None:
    """A typed key (``jax.random.key``) or a raw ``uint32`` ``(2,)`` key (``jax.random.PRNGKey``)."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape == ():
            return
    elif isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
        return
    raise TypeError(f"key must be a single JAX PRNG key (jax.random.key or jax.random.PRNGKey), "
                    f"got {type(key).__name__} {getattr(key, 'shape', '')}")


def _check_grid(grid) -> np.ndarray:
    g = as_finite_array("grid", grid)
    if g.ndim != 1 or g.size < 2:
        raise ValueError(f"grid must have shape (N + 1,) with N >= 1, got {g.shape}")
    if np.any(g <= 0) or np.any(g > 1) or np.any(np.diff(g) >= 0):
        raise ValueError("grid must lie in (0, 1] and be strictly decreasing (sampling runs backwards)")
    return g


def _bucket(n: int) -> int:
    return max(256, 1 << (n - 1).bit_length())


@jax.jit
def _reverse_em(mix, sde, x, grid, n_steps, key):
    def body(k, carry):
        xc, nfe = carry
        t_c, t_n = grid[k], grid[k + 1]
        c = _coeffs(sde, t_c)
        h = t_c - t_n
        s = _score(mix, xc, c.abar, c.bbar)
        z = jax.random.normal(jax.random.fold_in(key, k), xc.shape, xc.dtype)
        return xc - (c.f * xc - c.g2 * s) * h + jnp.sqrt(c.g2 * h) * z, nfe + 1

    return lax.fori_loop(0, n_steps, body, (x, jnp.asarray(0)))


def reverse_em_sample(mix: dm.Mixture, sde: LinearSDE, x_T, grid, key: jax.Array):
    """Euler–Maruyama for the reverse SDE with the mixture's exact score, from ``grid[0]`` down.

    Args:
        mix: the data mixture (its exact score stands in for a trained network).
        sde: the :class:`LinearSDE`.
        x_T: ``(B, d)`` states at ``grid[0]`` (e.g. exact samples of ``p_{grid[0]}``).
        grid: ``(N + 1,)`` strictly decreasing times in ``(0, 1]``, any spacing.
        key: PRNG key; step ``k`` draws its noise from ``fold_in(key, k)``.

    Returns:
        ``(x, nfe)``: the states ``(B, d)`` at ``grid[-1]`` and the number of score evaluations,
        counted inside the compiled loop (one per step). One compilation serves every ``N < 256``.
    """
    dm._check_mixture(mix)
    _check_sde(sde)
    _check_key(key)
    x = dm._check_x("x_T", x_T, mix)
    g = _check_grid(grid)
    N = g.size - 1
    dt = mix.means.dtype
    L = _bucket(N + 1)
    gp = jnp.asarray(np.concatenate([g, np.full(L - g.size, g[-1])]), dt)
    xN, nfe = _reverse_em(mix, sde, jnp.asarray(x, dt), gp, N, key)
    return xN, int(nfe)


@jax.jit
def _em_moments(sde, grid, m, v):
    """``grid`` may be padded by repeating its last time: those steps have ``h = 0`` and are identities."""
    c0 = _coeffs(sde, grid[0])
    mean0, var0 = c0.abar * m, c0.abar**2 * v + c0.bbar**2

    def step(carry, k):
        mu, s2 = carry
        c = _coeffs(sde, grid[k])
        h = grid[k] - grid[k + 1]
        V = c.abar**2 * v + c.bbar**2                 # score of N(ᾱ m, V): −(x − ᾱ m) / V
        gain = 1 - c.f * h - c.g2 * h / V
        return (gain * mu + c.g2 * h * c.abar * m / V, gain**2 * s2 + c.g2 * h), None

    (mu, s2), _ = lax.scan(step, (mean0, var0), jnp.arange(grid.shape[0] - 1))
    return mu, s2


def em_gaussian_moments(sde: LinearSDE, grid, mean, var) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and variance of the reverse Euler–Maruyama output for Gaussian data.

    Per coordinate, data ``N(m, v)``: the score of ``p_t = N(ᾱ m, ᾱ² v + β̄²)`` is linear, so one EM
    step maps a Gaussian to a Gaussian, ``x ← (1 − f h − g² h / V) x + g² h ᾱ m / V + g √h z``.
    The chain starts from the exact ``p_{grid[0]}``; one compilation serves every ``N < 8192``.

    Args:
        sde: the :class:`LinearSDE`.
        grid: ``(N + 1,)``, as in :func:`reverse_em_sample`.
        mean: ``m``, scalar or ``(d,)``; var: ``v`` >= 0, same shape.

    Returns:
        ``(mean, var)`` at ``grid[-1]``, NumPy arrays of the shape of ``mean``.
    """
    _check_sde(sde)
    g = _check_grid(grid)
    m = as_finite_array("mean", mean).astype(np.float64)
    v = as_finite_array("var", var).astype(np.float64)
    if v.shape != m.shape:
        raise ValueError(f"var must have the shape of mean {m.shape}, got {v.shape}")
    if np.any(v < 0):
        raise ValueError("var must be >= 0")
    L = max(8192, _bucket(g.size))                    # one compilation for every N < 8192
    gp = np.concatenate([g, np.full(L - g.size, g[-1])])
    mu, s2 = _em_moments(sde, jnp.asarray(gp), jnp.asarray(m), jnp.asarray(v))
    return np.asarray(mu), np.asarray(s2)


# --------------------------------------------------------------------------- denoising score matching


class DSMStats(NamedTuple):
    """Monte Carlo losses at the perturbed scores ``s + δ h`` (NumPy; ``H`` directions, ``n_delta`` values).

    Fields:
        deltas: ``(n_delta,)``, the ``δ`` values.
        dsm, dsm_se: ``(H, n_delta)``, ``E‖s + δh − ∇log p(x_t|x_0)‖²`` (the conditional loss) and its
            standard error.
        esm, esm_se: ``(H, n_delta)``, ``E‖s + δh − ∇log p_t(x_t)‖²`` (explicit score matching).
        gap, gap_se: ``(H, n_delta)``, ``dsm − esm`` per draw, averaged, and its standard error.
        slope, slope_se: ``(H,)``, ``E[2 h·(s − ∇log p(x_t|x_0))]``, the parabola's slope at ``δ = 0``.
        curvature: ``(H,)``, ``E‖h‖²``.
        fisher, fisher_se: ``E‖∇log p_t‖²`` from ``n`` independent draws of ``x_t``, scalars; the
            constant ``dsm − esm`` should equal ``d / β̄² − fisher``.
    """

    deltas: np.ndarray
    dsm: np.ndarray
    dsm_se: np.ndarray
    esm: np.ndarray
    esm_se: np.ndarray
    gap: np.ndarray
    gap_se: np.ndarray
    slope: np.ndarray
    slope_se: np.ndarray
    curvature: np.ndarray
    fisher: float
    fisher_se: float


def _mean_se(v, n):
    return jnp.mean(v), jnp.std(v) / jnp.sqrt(n)


@partial(jax.jit, static_argnames=("n", "directions"))
def _dsm(mix, abar, bbar, key, deltas, n: int, directions):
    k0, k1, k2, k3 = jax.random.split(key, 4)
    x0 = dm._sample(mix, k0, n)
    eps = jax.random.normal(k1, x0.shape, x0.dtype)
    xt = abar * x0 + bbar * eps
    s = _score(mix, xt, abar, bbar)
    cond = -eps / bbar                                   # −(x_t − ᾱ x_0) / β̄²

    def one(direction):
        h = direction(xt)

        def at(dl):
            a = s + dl * h
            ds = jnp.sum((a - cond) ** 2, -1)
            es = jnp.sum((a - s) ** 2, -1)
            return _mean_se(ds, n), _mean_se(es, n), _mean_se(ds - es, n)

        out = jax.vmap(at)(deltas)
        return out, _mean_se(2 * jnp.sum(h * (s - cond), -1), n), jnp.mean(jnp.sum(h**2, -1))

    per = [one(d) for d in directions]
    xf = abar * dm._sample(mix, k2, n) + bbar * jax.random.normal(k3, x0.shape, x0.dtype)
    fisher = _mean_se(jnp.sum(_score(mix, xf, abar, bbar) ** 2, -1), n)
    stack = lambda f: jnp.stack([f(p) for p in per])      # noqa: E731
    return (stack(lambda p: p[0][0][0]), stack(lambda p: p[0][0][1]),
            stack(lambda p: p[0][1][0]), stack(lambda p: p[0][1][1]),
            stack(lambda p: p[0][2][0]), stack(lambda p: p[0][2][1]),
            stack(lambda p: p[1][0]), stack(lambda p: p[1][1]), stack(lambda p: p[2]),
            fisher[0], fisher[1])


def dsm_mc(mix: dm.Mixture, abar: float, bbar: float, key: jax.Array, n: int, deltas,
           directions) -> DSMStats:
    """Denoising vs explicit score matching at ``s_δ = ∇log p_t + δ h``, one noise level.

    ``n`` pairs ``(x_0, ε)`` are drawn once (common random numbers for every ``δ`` and direction),
    ``x_t = ᾱ x_0 + β̄ ε``. Both losses are quadratics in ``δ``; the conditional one has its vertex
    at ``δ = 0`` when ``E[h·(∇log p_t − ∇log p(x_t|x_0))] = 0``, and the difference of the two is
    free of ``δ``. ``E‖∇log p_t‖²`` is estimated from ``n`` further, independent draws.

    Args:
        mix: the data mixture; abar, bbar: scalars ``> 0``.
        key: PRNG key; n: number of pairs, >= 2.
        deltas: ``(n_delta,)`` perturbation sizes.
        directions: a tuple of ``H`` jittable functions ``(B, d) -> (B, d)``, the perturbations
            ``h(x_t)`` (module-level functions, so that they hash the same on every call).

    Returns:
        :class:`DSMStats`.
    """
    dm._check_mixture(mix)
    n = positive_int("n", n, minimum=2)
    a, b = (as_finite_array(k, v) for k, v in (("abar", abar), ("bbar", bbar)))
    if a.ndim or b.ndim or a <= 0 or b <= 0:
        raise ValueError("abar and bbar must be scalars > 0")
    dl = as_finite_array("deltas", deltas)
    if dl.ndim != 1 or dl.size < 1:
        raise ValueError(f"deltas must have shape (n_delta,), got {dl.shape}")
    if not isinstance(directions, tuple) or not directions:
        raise TypeError(f"directions must be a non-empty tuple of functions, got "
                        f"{type(directions).__name__}")
    if not all(callable(d) for d in directions):
        raise TypeError("directions must hold functions (B, d) -> (B, d)")
    dt = mix.means.dtype
    out = _dsm(mix, jnp.asarray(a, dt), jnp.asarray(b, dt), key, jnp.asarray(dl, dt), n,
               directions)
    arr = [np.asarray(o) for o in out]
    return DSMStats(dl.astype(np.float64), *arr[:9], float(arr[9]), float(arr[10]))
