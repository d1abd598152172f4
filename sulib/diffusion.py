"""Diffusion ODE samplers on data whose exact probability-flow ODE is known: a Gaussian mixture.

Setting (EDM parameterization, Karras et al. 2022): ``x_t = x_0 + t ε`` with ``σ(t) = t``. The
probability-flow ODE is ``dx/dt = v(x, t) = (x - D(x, t)) / t`` where ``D(x, t) = E[x_0 | x_t = x]`` is
the ideal denoiser and ``(D - x) / t²`` the score. For data drawn from a Gaussian mixture
``Σ_k w_k N(μ_k, Σ_k)`` all three are closed forms: with ``Σ_k = U_k diag(λ_k) U_kᵀ``,

    responsibilities  γ_k(x, t) ∝ w_k N(x; μ_k, Σ_k + t² I)                       (logsumexp)
    component means   m_k(x, t) = μ_k + U_k diag(λ_k / (λ_k + t²)) U_kᵀ (x - μ_k)
    denoiser          D(x, t) = Σ_k γ_k m_k.

Sampling runs the ODE backwards, from ``x_T`` at ``t_max`` down to ``t_min``, on a decreasing time
grid ``grid[0] = t_max > grid[1] > ... > grid[N] = t_min`` (``N`` steps). One step from ``t_c`` to
``t_n < t_c`` (``h = t_n - t_c < 0``), with ``d = v(x, t_c)``:

    euler     x + h d                                                   1 evaluation
    heun      x + h (d + v(x + h d, t_n)) / 2                           2 (EDM's 2nd-order step)
    midpoint  x + h v(x + (s - t_c) d, s),  s = (t_c + t_n) / 2         2
    dpm2      same with s = sqrt(t_c t_n) (the geometric mean)          2 (DPM-Solver-2's form)
    amed      same with s = t_n^r t_c^(1-r), the step scaled by c and   2 (r = 1/2, c = τ = 1 is dpm2)
              the denoiser asked at τ s: x + c h (x̃ - D(x̃, τ s)) / s, x̃ = x + (s - t_c) d

With the analytical first step (AFS, ``afs=True``) the first ``d`` is ``x_T / t_max`` instead of a
velocity evaluation, which saves one evaluation. NFE (number of velocity evaluations) is counted
inside the compiled loop, one per call of the velocity, and returned.

Shapes: ``K`` mixture components in ``d`` dimensions; samples ``x`` are ``(B, d)``; times ``t`` are
scalars or ``(B,)``; a grid is ``(N + 1,)``; a path (states on a grid) is ``(N + 1, B, d)``.
Everything is float64 when JAX's x64 mode is on.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jax import lax

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar

__all__ = [
    "SOLVERS",
    "MIXTURE_KINDS",
    "Mixture",
    "make_mixture",
    "mixture_from_covariances",
    "toy_mixture",
    "embed",
    "data_std",
    "sample_mixture",
    "denoiser",
    "score",
    "velocity",
    "log_density",
    "gaussian_flow",
    "edm_grid",
    "uniform_grid",
    "nfe_count",
    "steps_for_nfe",
    "solve",
    "reference_solve",
    "trajectory_pca_shares",
    "sliced_wasserstein",
    "sliced_wasserstein_bootstrap",
    "AmedParams",
    "train_amed",
    "local_error_leading_term",
]

#: Step rules understood by :func:`solve`.
SOLVERS = ("euler", "heun", "midpoint", "dpm2", "amed")
#: Mixture shapes built by :func:`toy_mixture`.
MIXTURE_KINDS = ("separated", "many", "elongated")
_EVALS_PER_STEP = {"euler": 1, "heun": 2, "midpoint": 2, "dpm2": 2, "amed": 2}


class Mixture(NamedTuple):
    """A Gaussian mixture ``Σ_k w_k N(μ_k, U_k diag(λ_k) U_kᵀ)`` (a JAX pytree).

    Fields:
        weights: ``(K,)``, non-negative, summing to 1 (a zero weight pads a component away).
        means: ``(K, d)``.
        eigvals: ``(K, d)``, the covariance eigenvalues ``λ_k``, all > 0.
        eigvecs: ``(K, d, d)``, orthogonal; column ``j`` of ``eigvecs[k]`` goes with ``eigvals[k, j]``.
    """

    weights: jax.Array
    means: jax.Array
    eigvals: jax.Array
    eigvecs: jax.Array

    @property
    def dim(self) -> int:
        return int(self.means.shape[-1])

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])


# --------------------------------------------------------------------------- construction


def make_mixture(weights, means, eigvals, eigvecs) -> Mixture:
    """A checked :class:`Mixture`; ``weights`` are normalised to sum to 1.

    Args:
        weights: ``(K,)``, >= 0, not all 0.
        means: ``(K, d)``.
        eigvals: ``(K, d)``, > 0.
        eigvecs: ``(K, d, d)``, each orthogonal to within 1e-8.
    """
    w = as_finite_array("weights", weights)
    mu = as_finite_array("means", means)
    lam = as_finite_array("eigvals", eigvals)
    U = as_finite_array("eigvecs", eigvecs)
    if w.ndim != 1 or w.size < 1:
        raise ValueError(f"weights must have shape (K,) with K >= 1, got {w.shape}")
    K = w.size
    if mu.ndim != 2 or mu.shape[0] != K or mu.shape[1] < 1:
        raise ValueError(f"means must have shape ({K}, d) with d >= 1, got {mu.shape}")
    d = mu.shape[1]
    if lam.shape != (K, d):
        raise ValueError(f"eigvals must have shape ({K}, {d}), got {lam.shape}")
    if U.shape != (K, d, d):
        raise ValueError(f"eigvecs must have shape ({K}, {d}, {d}), got {U.shape}")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be >= 0 and not all 0")
    if np.any(lam <= 0):
        raise ValueError("eigvals must be > 0 (covariances positive definite)")
    gram = np.einsum("kij,kil->kjl", U, U)
    if np.max(np.abs(gram - np.eye(d))) > 1e-8:
        raise ValueError("eigvecs must hold orthogonal matrices (U_kᵀ U_k = I)")
    f = lambda a: jnp.asarray(a, dtype=jax.dtypes.canonicalize_dtype(np.float64))
    return Mixture(f(w / w.sum()), f(mu), f(lam), f(U))


def mixture_from_covariances(weights, means, covariances) -> Mixture:
    """A :class:`Mixture` from full covariances ``(K, d, d)`` (eigendecomposed with ``numpy.linalg.eigh``)."""
    C = as_finite_array("covariances", covariances)
    if C.ndim != 3 or C.shape[1] != C.shape[2]:
        raise ValueError(f"covariances must have shape (K, d, d), got {C.shape}")
    if np.max(np.abs(C - np.swapaxes(C, 1, 2))) > 1e-10 * max(1.0, np.abs(C).max()):
        raise ValueError("covariances must be symmetric")
    lam, U = np.linalg.eigh(C)
    return make_mixture(weights, means, lam, U)


def data_std(mix: Mixture) -> float:
    """Root mean per-coordinate variance of the mixture, ``sqrt(tr Cov[x_0] / d)``."""
    w, mu, lam = (np.asarray(a) for a in mix[:3])
    centre = w @ mu
    total = w @ lam.sum(axis=1) + w @ np.sum((mu - centre) ** 2, axis=1)
    return float(np.sqrt(total / mu.shape[1]))


def toy_mixture(kind: str, d: int, seed: int = 0, *, std: float = 0.5, pad_to: int | None = None) -> Mixture:
    """One of the mixture shapes used in the book, rescaled so that :func:`data_std` is ``std``.

    Args:
        kind: ``"separated"`` (4 well-separated isotropic modes), ``"many"`` (16 overlapping modes
            with random anisotropic covariances) or ``"elongated"`` (4 modes, each with two long
            axes and tiny variance in the other ``d - 2`` directions).
        d: dimension, >= 2.
        seed: NumPy seed of the random means and axes.
        std: target :func:`data_std`, > 0.
        pad_to: if given, append zero-weight components up to this many (same shapes across kinds,
            so a jitted kernel compiles once).
    """
    one_of("kind", kind, MIXTURE_KINDS)
    d = positive_int("d", d, minimum=2)
    std = positive_scalar("std", std)
    rng = np.random.default_rng(seed)
    if kind == "separated":
        K = 4
        mu = rng.standard_normal((K, d))
        mu *= 4.0 / np.linalg.norm(mu, axis=1, keepdims=True)
        lam = np.full((K, d), 0.05)
        U = np.broadcast_to(np.eye(d), (K, d, d)).copy()
    elif kind == "many":
        K = 16
        mu = rng.standard_normal((K, d)) * 1.0
        lam = rng.uniform(0.05, 0.5, (K, d))
        U = np.stack([np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(K)])
    else:
        K = 4
        mu = rng.standard_normal((K, d)) * 1.0
        lam = np.full((K, d), 1e-3)
        lam[:, :2] = [4.0, 1.0]
        U = np.stack([np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(K)])
    w = np.full(K, 1.0 / K)
    if pad_to is not None:
        pad_to = positive_int("pad_to", pad_to, minimum=K)
        extra = pad_to - K
        w = np.concatenate([w, np.zeros(extra)])
        mu = np.concatenate([mu, np.zeros((extra, d))])
        lam = np.concatenate([lam, np.ones((extra, d))])
        U = np.concatenate([U, np.broadcast_to(np.eye(d), (extra, d, d))])
    mix = make_mixture(w, mu, lam, U)
    scale = std / data_std(mix)
    return make_mixture(w, mu * scale, lam * scale**2, U)


def embed(mix: Mixture, d: int, pad_eigval: float = 1.0) -> Mixture:
    """The same mixture in ``d`` >= its dimension, with zero means and variance ``pad_eigval`` in the new coordinates.

    On the subspace where the new coordinates are 0 the probability-flow ODE of the embedded mixture is
    exactly that of ``mix``: the new coordinates of ``D`` vanish there, and their Gaussian factors are the
    same for every component, so they cancel from the responsibilities. Lets mixtures of several
    dimensions share one compiled kernel (states padded with zeros).
    """
    _check_mixture(mix)
    d = positive_int("d", d, minimum=mix.dim)
    pad_eigval = positive_scalar("pad_eigval", pad_eigval)
    K, d0 = mix.n_components, mix.dim
    U = np.zeros((K, d, d))
    U[:, :d0, :d0] = np.asarray(mix.eigvecs)
    U[:, d0:, d0:] = np.eye(d - d0)
    lam = np.concatenate([np.asarray(mix.eigvals), np.full((K, d - d0), pad_eigval)], axis=1)
    mu = np.concatenate([np.asarray(mix.means), np.zeros((K, d - d0))], axis=1)
    return make_mixture(np.asarray(mix.weights), mu, lam, U)


def _check_mixture(mix) -> Mixture:
    if not isinstance(mix, Mixture):
        raise TypeError(f"mixture must be a sulib.diffusion.Mixture, got {type(mix).__name__}")
    return mix


def _check_x(name: str, x, mix: Mixture) -> np.ndarray:
    x = as_finite_array(name, x)
    if x.ndim != 2 or x.shape[1] != mix.dim:
        raise ValueError(f"{name} must have shape (B, {mix.dim}) to match the mixture, got {x.shape}")
    return x


def _check_t(name: str, t, batch: int) -> np.ndarray:
    t = as_finite_array(name, t)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {t.shape}")
    if np.any(t <= 0):
        raise ValueError(f"{name} must be > 0")
    return t


@partial(jax.jit, static_argnames="n")
def _sample(mix: Mixture, key: jax.Array, n: int) -> jax.Array:
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, jnp.log(mix.weights), shape=(n,))
    z = jax.random.normal(k2, (n, mix.means.shape[1]), dtype=mix.means.dtype)
    return mix.means[comp] + jnp.einsum("bij,bj->bi", mix.eigvecs[comp], jnp.sqrt(mix.eigvals[comp]) * z)


def sample_mixture(mix: Mixture, key: jax.Array, n: int) -> jax.Array:
    """``n`` samples ``(n, d)`` of the mixture, from the PRNG key ``key``."""
    _check_mixture(mix)
    return _sample(mix, key, positive_int("n", n))


# --------------------------------------------------------------------------- exact denoiser, score, velocity


def _components(mix: Mixture, x: jax.Array, t: jax.Array):
    """Log-responsibilities (unnormalised, with the Gaussian constant) ``(B, K)`` and posterior means ``(B, K, d)``."""
    t2 = jnp.reshape(jnp.asarray(t, x.dtype) ** 2, (-1, 1, 1))  # (1 or B, 1, 1)
    z = jnp.einsum("bkd,kde->bke", x[:, None, :] - mix.means[None], mix.eigvecs)  # U_kᵀ (x - μ_k)
    var = mix.eigvals[None] + t2  # (., K, d)
    logp = (jnp.log(mix.weights)[None]
            - 0.5 * jnp.sum(jnp.log(2 * jnp.pi * var) + z**2 / var, axis=-1))
    post = mix.means[None] + jnp.einsum("kde,bke->bkd", mix.eigvecs, z * mix.eigvals[None] / var)
    return logp, post


@jax.jit
def _denoise(mix: Mixture, x: jax.Array, t: jax.Array) -> jax.Array:
    logp, post = _components(mix, x, t)
    gamma = jax.nn.softmax(logp, axis=-1)
    return jnp.einsum("bk,bkd->bd", gamma, post)


def _velocity(mix: Mixture, x: jax.Array, t: jax.Array) -> jax.Array:
    tt = jnp.reshape(jnp.asarray(t, x.dtype), (-1, 1))
    return (x - _denoise(mix, x, t)) / tt


@jax.jit
def _log_density(mix: Mixture, x: jax.Array, t: jax.Array) -> jax.Array:
    logp, _ = _components(mix, x, t)
    return jax.nn.logsumexp(logp, axis=-1)


def denoiser(mix: Mixture, x, t) -> jax.Array:
    """Exact ``D(x, t) = E[x_0 | x_t = x]`` ``(B, d)`` for ``x`` ``(B, d)`` and ``t`` > 0 scalar or ``(B,)``."""
    _check_mixture(mix)
    x = _check_x("x", x, mix)
    return _denoise(mix, jnp.asarray(x, mix.means.dtype), jnp.asarray(_check_t("t", t, x.shape[0]), mix.means.dtype))


def score(mix: Mixture, x, t) -> jax.Array:
    """Exact score ``∇ log p_t(x) = (D(x, t) - x) / t²``, shape ``(B, d)``."""
    D = denoiser(mix, x, t)
    tt = jnp.reshape(jnp.asarray(t, D.dtype), (-1, 1))
    return (D - jnp.asarray(x, D.dtype)) / tt**2


def velocity(mix: Mixture, x, t) -> jax.Array:
    """Probability-flow velocity ``v(x, t) = (x - D(x, t)) / t = -t · score``, shape ``(B, d)``."""
    D = denoiser(mix, x, t)
    tt = jnp.reshape(jnp.asarray(t, D.dtype), (-1, 1))
    return (jnp.asarray(x, D.dtype) - D) / tt


def log_density(mix: Mixture, x, t=0.0) -> jax.Array:
    """``log p_t(x)`` ``(B,)`` of the noised mixture (``t = 0``: the data density itself)."""
    _check_mixture(mix)
    x = _check_x("x", x, mix)
    t = as_finite_array("t", t)
    if t.ndim != 0 or t < 0:
        raise ValueError(f"t must be a scalar >= 0, got {t}")
    return _log_density(mix, jnp.asarray(x, mix.means.dtype), jnp.asarray(t, mix.means.dtype))


def gaussian_flow(mix: Mixture, x_from, t_from: float, t_to) -> jax.Array:
    """Exact flow map of a one-component mixture.

    ``x_t - μ = U diag(sqrt((λ + t²) / (λ + t_from²))) Uᵀ (x_from - μ)``, eigendirection by eigendirection.

    Args:
        mix: a :class:`Mixture` with ``K = 1``.
        x_from: ``(B, d)``, states at time ``t_from`` > 0.
        t_to: a scalar or ``(T,)`` array of times > 0.

    Returns:
        ``(B, d)`` for a scalar ``t_to``, ``(T, B, d)`` otherwise.
    """
    _check_mixture(mix)
    if mix.n_components != 1:
        raise ValueError(f"mixture must have one component for the closed-form flow, got K = {mix.n_components}")
    x = _check_x("x_from", x_from, mix)
    t_from = positive_scalar("t_from", t_from)
    ts = as_finite_array("t_to", t_to)
    if ts.ndim > 1 or np.any(ts <= 0):
        raise ValueError("t_to must be a scalar or 1-D array of times > 0")
    mu, lam, U = mix.means[0], mix.eigvals[0], mix.eigvecs[0]
    z = (jnp.asarray(x) - mu) @ U  # (B, d)
    ratio = jnp.sqrt((lam + jnp.asarray(ts)[..., None] ** 2) / (lam + t_from**2))  # (..., d)
    return mu + jnp.einsum("...bd,ed->...be", ratio[..., None, :] * z, U)


# --------------------------------------------------------------------------- time grids


def edm_grid(n_steps: int, t_min: float = 0.002, t_max: float = 80.0, rho: float = 7.0) -> np.ndarray:
    """EDM's polynomial schedule, decreasing, shape ``(N + 1,)``.

    ``t_i = (t_max^(1/ρ) + i/N (t_min^(1/ρ) - t_max^(1/ρ)))^ρ`` for ``i = 0..N`` (the post's formula, indexed
    from the start of sampling); the endpoints are set exactly.
    """
    n = positive_int("n_steps", n_steps)
    t_min, t_max, rho = (positive_scalar(k, v) for k, v in (("t_min", t_min), ("t_max", t_max), ("rho", rho)))
    if t_min >= t_max:
        raise ValueError(f"t_min must be < t_max, got {t_min} >= {t_max}")
    i = np.arange(n + 1) / n
    grid = (t_max ** (1 / rho) + i * (t_min ** (1 / rho) - t_max ** (1 / rho))) ** rho
    grid[0], grid[-1] = t_max, t_min
    return grid


def uniform_grid(n_steps: int, t_min: float = 0.002, t_max: float = 80.0) -> np.ndarray:
    """Time-uniform grid from ``t_max`` down to ``t_min``, shape ``(N+1,)``."""
    n = positive_int("n_steps", n_steps)
    t_min, t_max = positive_scalar("t_min", t_min), positive_scalar("t_max", t_max)
    if t_min >= t_max:
        raise ValueError(f"t_min must be < t_max, got {t_min} >= {t_max}")
    return np.linspace(t_max, t_min, n + 1)


def _check_grid(grid) -> np.ndarray:
    g = as_finite_array("grid", grid)
    if g.ndim != 1 or g.size < 2:
        raise ValueError(f"grid must have shape (N + 1,) with N >= 1, got {g.shape}")
    if np.any(g <= 0) or np.any(np.diff(g) >= 0):
        raise ValueError("grid must be > 0 and strictly decreasing (sampling runs from t_max down)")
    return g


# --------------------------------------------------------------------------- solvers


def nfe_count(solver: str, n_steps: int, afs: bool = False) -> int:
    """Velocity evaluations used by ``n_steps`` steps of ``solver`` (AFS saves the first one)."""
    one_of("solver", solver, SOLVERS)
    n = positive_int("n_steps", n_steps)
    return _EVALS_PER_STEP[solver] * n - (1 if afs else 0)


def steps_for_nfe(solver: str, nfe: int) -> tuple[int, bool]:
    """``(n_steps, afs)`` spending exactly ``nfe`` evaluations, the AMED paper's convention.

    Euler: ``nfe`` steps, no AFS. Two-evaluation solvers: ``nfe / 2`` steps for even ``nfe``;
    for odd ``nfe``, ``(nfe + 1) / 2`` steps with the analytical first step.
    """
    one_of("solver", solver, SOLVERS)
    nfe = positive_int("nfe", nfe)
    if _EVALS_PER_STEP[solver] == 1:
        return nfe, False
    if nfe < 2:
        raise ValueError(f"nfe must be >= 2 for the two-evaluation solver {solver!r}, got {nfe}")
    return (nfe + 1) // 2, nfe % 2 == 1


def _step(mix, x, t_c, t_n, d, solver: str, r, c, tau):
    """One step from ``t_c`` to ``t_n`` given ``d`` (velocity at ``(x, t_c)``); returns ``(x_next, evals)``."""
    h = t_n - t_c
    if solver == "euler":
        return x + h * d, 0
    if solver == "heun":
        return x + 0.5 * h * (d + _velocity(mix, x + h * d, t_n)), 1
    if solver == "midpoint":
        s = 0.5 * (t_c + t_n)
    elif solver == "dpm2":
        s = jnp.sqrt(t_c * t_n)
    else:  # amed
        s = t_n**r * t_c ** (1 - r)
        xs = x + (s - t_c) * d
        return x + c * h * (xs - _denoise(mix, xs, tau * s)) / s, 1
    return x + h * _velocity(mix, x + (s - t_c) * d, s), 1


def _one_step_switch(mix, x, t_c, t_n, r, c, tau, solver_index, afs_here):
    """One step of ``SOLVERS[solver_index]``, AFS when ``afs_here``; both traced, so one compilation serves all."""
    d, n = lax.cond(afs_here, lambda: (x / t_c, jnp.asarray(0)), lambda: (_velocity(mix, x, t_c), jnp.asarray(1)))
    branches = [lambda s=s: _step(mix, x, t_c, t_n, d, s, r, c, tau) for s in SOLVERS]
    x_next, m = lax.switch(solver_index, [lambda b=b: (lambda o: (o[0], jnp.asarray(o[1])))(b()) for b in branches])
    return x_next, n + m


@partial(jax.jit, static_argnames="keep_path")
def _solve(mix, x, grid, n_steps, r, c, tau, solver_index, afs, keep_path: bool):
    """``grid``, ``r``, ``c``, ``tau`` are padded to a bucket length; only the first ``n_steps`` steps run."""
    x1, n1 = _one_step_switch(mix, x, grid[0], grid[1], r[0], c[0], tau[0], solver_index, afs)
    path = jnp.zeros((grid.shape[0],) + x.shape, x.dtype).at[0].set(x).at[1].set(x1) if keep_path else None

    def body(k, carry):
        xc, nfe, path = carry
        xn, n = _one_step_switch(mix, xc, grid[k], grid[k + 1], r[k], c[k], tau[k], solver_index, False)
        if keep_path:
            path = path.at[k + 1].set(xn)
        return xn, nfe + n, path

    xN, nfe, path = lax.fori_loop(1, n_steps, body, (x1, n1, path))
    return xN, nfe, path


def _bucket(n: int) -> int:
    return max(256, 1 << (n - 1).bit_length())


def solve(mix: Mixture, x_T, grid, solver: str = "euler", *, afs: bool = False, r=None, scale=None,
          time_scale=None, return_path: bool = False):
    """Integrate the probability-flow ODE from ``x_T`` at ``grid[0]`` down to ``grid[-1]``.

    Args:
        mix: the data mixture (its exact velocity plays the role of the trained network).
        x_T: ``(B, d)`` states at ``grid[0]``.
        grid: ``(N + 1,)`` strictly decreasing times > 0 (:func:`edm_grid`, :func:`uniform_grid`).
        solver: one of :data:`SOLVERS`.
        afs: analytical first step (first direction ``x_T / grid[0]``, one evaluation saved).
        r: ``(N,)`` AMED exponents in (0, 1), intermediate time ``s_n = t_next^r t_cur^(1-r)``;
            default 1/2. Only for ``solver="amed"``.
        scale: ``(N,)`` AMED step scale factors ``c``; default 1. Only for ``solver="amed"``.
        time_scale: ``(N,)`` AMED time scale factors ``τ`` > 0: the intermediate evaluation asks
            the denoiser at ``τ s`` and divides by ``s`` (the AMED paper's code); default 1.
        return_path: return the states at every grid time ``(N + 1, B, d)`` instead of the end ``(B, d)``.

    Returns:
        ``(x, nfe)``: the end state (or path) and the number of velocity evaluations, counted in the loop.
    """
    _check_mixture(mix)
    one_of("solver", solver, SOLVERS)
    x = _check_x("x_T", x_T, mix)
    g = _check_grid(grid)
    N = g.size - 1
    if solver != "amed" and (r is not None or scale is not None or time_scale is not None):
        raise ValueError(f"r, scale and time_scale are AMED parameters; solver {solver!r} takes none")
    r = np.full(N, 0.5) if r is None else as_finite_array("r", r)
    c = np.ones(N) if scale is None else as_finite_array("scale", scale)
    tau = np.ones(N) if time_scale is None else as_finite_array("time_scale", time_scale)
    if r.shape != (N,):
        raise ValueError(f"r must have shape ({N},) (one per step), got {r.shape}")
    if c.shape != (N,):
        raise ValueError(f"scale must have shape ({N},) (one per step), got {c.shape}")
    if np.any(r <= 0) or np.any(r >= 1):
        raise ValueError("r must lie in (0, 1)")
    if np.any(c <= 0):
        raise ValueError("scale must be > 0 (a step scale factor)")
    if tau.shape != (N,):
        raise ValueError(f"time_scale must have shape ({N},) (one per step), got {tau.shape}")
    if np.any(tau <= 0):
        raise ValueError("time_scale must be > 0 (a factor on the evaluation time)")
    if not isinstance(afs, (bool, np.bool_)):
        raise TypeError(f"afs must be a bool, got {type(afs).__name__}")
    dt = mix.means.dtype
    L = _bucket(N + 1)  # one compilation serves every N up to the bucket size
    pad = lambda a, v: np.concatenate([a, np.full(L - a.size, v)])
    xN, nfe, path = _solve(mix, jnp.asarray(x, dt), jnp.asarray(pad(g, g[-1]), dt), N, jnp.asarray(pad(r, 0.5), dt),
                           jnp.asarray(pad(c, 1.0), dt), jnp.asarray(pad(tau, 1.0), dt), SOLVERS.index(solver),
                           bool(afs), bool(return_path))
    return (path[: N + 1] if return_path else xN), int(nfe)


# --------------------------------------------------------------------------- reference solve (diffrax)


@partial(jax.jit, static_argnames=("method", "max_steps"))
def _reference(mix, x, log_ts, rtol, atol, method: str, max_steps: int):
    import diffrax

    def field(u, y, args):  # u = log t, dx/du = t v(x, t) = x - D(x, t)
        return y - _denoise(mix, y[None], jnp.exp(u))[0]

    solver = {"dopri8": diffrax.Dopri8(), "tsit5": diffrax.Tsit5(), "dopri5": diffrax.Dopri5()}[method]

    def one(y0):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), solver, t0=log_ts[0], t1=log_ts[-1], dt0=log_ts[1] - log_ts[0], y0=y0,
            saveat=diffrax.SaveAt(ts=log_ts),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps)
        return sol.ys, sol.stats["num_steps"]

    ys, steps = jax.vmap(one)(x)
    return jnp.swapaxes(ys, 0, 1), steps


def reference_solve(mix: Mixture, x_T, ts, *, rtol: float = 1e-10, atol: float = 1e-10, method: str = "dopri8",
                    max_steps: int = 4096, chunk: int = 64):
    """Accurate probability-flow trajectories from diffrax, one adaptive solve per sample (vmapped).

    The ODE is integrated in ``u = log t`` (``dx/du = x - D(x, t)``), where it is far from stiff.

    Args:
        mix: the data mixture.
        x_T: ``(B, d)`` states at ``ts[0]``.
        ts: ``(T,)`` strictly decreasing times > 0, ``T >= 2``; ``ts[0]`` is the start.
        rtol, atol: tolerances of diffrax's PID step-size controller.
        method: ``"dopri8"``, ``"tsit5"`` or ``"dopri5"``.
        max_steps: step limit per sample.
        chunk: samples per compiled call (the last chunk is padded), so that any batch size
            reuses one compilation.

    Returns:
        ``(path, n_steps)``: states ``(T, B, d)`` at ``ts`` and the accepted step counts ``(B,)``.
    """
    _check_mixture(mix)
    x = _check_x("x_T", x_T, mix)
    ts = _check_grid(ts)
    rtol, atol = positive_scalar("rtol", rtol), positive_scalar("atol", atol)
    one_of("method", method, ("dopri8", "tsit5", "dopri5"))
    max_steps = positive_int("max_steps", max_steps)
    chunk = positive_int("chunk", chunk)
    dt = mix.means.dtype
    log_ts = jnp.log(jnp.asarray(ts, dt))
    B = x.shape[0]
    padded = np.concatenate([x, np.repeat(x[-1:], (-B) % chunk, axis=0)])  # every call has shape (chunk, d)
    paths, steps = [], []
    for i in range(0, padded.shape[0], chunk):
        p, s = _reference(mix, jnp.asarray(padded[i:i + chunk], dt), log_ts, rtol, atol, method, max_steps)
        paths.append(p)
        steps.append(s)
    return jnp.concatenate(paths, axis=1)[:, :B], jnp.concatenate(steps)[:B]


# --------------------------------------------------------------------------- diagnostics


@jax.jit
def _pca_shares(paths):
    centred = paths - paths.mean(axis=1, keepdims=True)
    s = jnp.linalg.svd(centred, compute_uv=False)
    return s**2 / jnp.sum(s**2, axis=-1, keepdims=True)


def trajectory_pca_shares(paths) -> jax.Array:
    """Share of each principal component in the variance of each trajectory.

    Args:
        paths: ``(T, B, d)`` (as returned by :func:`reference_solve`), ``T >= 2`` time points.

    Returns:
        ``(B, min(T, d))``: per trajectory (centred over its own points), the explained-variance
        ratios in decreasing order; each row sums to 1.
    """
    p = as_finite_array("paths", paths)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"paths must have shape (T, B, d) with T >= 2, got {p.shape}")
    return _pca_shares(jnp.swapaxes(jnp.asarray(p), 0, 1))


@partial(jax.jit, static_argnames="n_projections")
def _sliced_w2(x, y, key, n_projections: int):
    dirs = jax.random.normal(key, (x.shape[1], n_projections), dtype=x.dtype)
    dirs = dirs / jnp.linalg.norm(dirs, axis=0, keepdims=True)
    px, py = jnp.sort(x @ dirs, axis=0), jnp.sort(y @ dirs, axis=0)
    return jnp.sqrt(jnp.mean((px - py) ** 2))


def sliced_wasserstein(x, y, key: jax.Array, n_projections: int = 256) -> float:
    """Sliced 2-Wasserstein distance between two equal-size samples ``(n, d)``.

    ``SW_2 = sqrt(E_θ W_2²(θᵀx, θᵀy))`` over ``n_projections`` random unit directions θ (from ``key``);
    the 1-D distances are exact between the empirical measures (sorted samples).
    """
    x = as_finite_array("x", x)
    y = as_finite_array("y", y)
    if x.ndim != 2 or y.shape != x.shape:
        raise ValueError(f"x and y must have the same shape (n, d), got {x.shape} and {y.shape}")
    n_projections = positive_int("n_projections", n_projections)
    return float(_sliced_w2(jnp.asarray(x), jnp.asarray(y), key, n_projections))


def sliced_wasserstein_bootstrap(xs, y, key: jax.Array, n_boot: int = 200,
                                 n_projections: int = 256) -> np.ndarray:
    """Bootstrap replicates of the sliced 2-Wasserstein distance of several sample sets to one.

    Each replicate resamples the rows of ``y`` and, with one shared index set, the rows of every
    candidate in ``xs`` (candidates computed from the same starting points stay paired), and draws
    fresh projection directions, shared by the candidates. Differences between candidates are
    therefore paired, and their spread includes the sampling noise of both sets and of the
    projections.

    Args:
        xs: ``(S, n, d)``, ``S`` candidate sample sets.
        y: ``(n, d)``, the target sample.
        key: PRNG key of the resampling and the directions.
        n_boot: number of replicates; n_projections: directions per replicate.

    Returns:
        ``(n_boot, S)`` sliced W₂ distances (a NumPy array).
    """
    xs = as_finite_array("xs", xs)
    y = as_finite_array("y", y)
    if y.ndim != 2 or xs.ndim != 3 or xs.shape[1:] != y.shape:
        raise ValueError(f"xs must have shape (S, n, d) and y shape (n, d), got {xs.shape} and {y.shape}")
    n_boot = positive_int("n_boot", n_boot)
    n_projections = positive_int("n_projections", n_projections)
    n, d = y.shape
    # a NumPy generator seeded by the key's bits: deterministic, and cheap for many small draws
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    idx_x = rng.integers(0, n, (n_boot, n))
    idx_y = rng.integers(0, n, (n_boot, n))
    dirs = rng.standard_normal((n_boot, d, n_projections))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    out = np.empty((n_boot, xs.shape[0]))
    for b in range(n_boot):  # NumPy's sort is several times faster than XLA's on CPU
        py = np.sort(y[idx_y[b]] @ dirs[b], axis=0)
        px = np.sort(xs[:, idx_x[b]] @ dirs[b], axis=1)
        out[b] = np.sqrt(np.mean((px - py[None]) ** 2, axis=(1, 2)))
    return out


def min_residual_norm(r, f, *, shared: bool = False, sub: int = 64):
    """Minimum over ``r`` of the norm of a smooth vector residual sampled on a uniform grid.

    The vector ``f(r)`` (not its norm, which has a kink at a zero) is interpolated by the cubic
    through four neighbouring grid values on each of the two grid intervals beside the grid
    minimum, and ``|f|`` is minimised over ``sub`` points per interval. A cubic reproduces a vector
    quadratic exactly, so a path whose residual is quadratic in ``r`` is minimised without error
    (up to the sub-grid).

    Args:
        r: ``(n,)`` uniform, increasing grid, ``n >= 4``.
        f: ``(n, B, d)`` residual vectors at ``r`` for ``B`` trajectories.
        shared: minimise the root mean square over the ``B`` trajectories of ``|f|`` (one ``r``
            for all) instead of each trajectory's own ``|f|``.
        sub: sub-grid points per interval.

    Returns:
        ``(value, r_min)``: each ``(B,)``, or scalars when ``shared``.
    """
    r = as_finite_array("r", r)
    f = as_finite_array("f", f)
    if r.ndim != 1 or r.size < 4 or np.any(np.diff(r) <= 0):
        raise ValueError(f"r must be an increasing 1-D grid of at least 4 points, got shape {r.shape}")
    if f.ndim != 3 or f.shape[0] != r.size:
        raise ValueError(f"f must have shape ({r.size}, B, d), got {f.shape}")
    sub = positive_int("sub", sub, minimum=2)
    n, h = r.size, r[1] - r[0]
    cost = lambda g: (np.sqrt(np.mean(np.sum(g**2, -1), -1, keepdims=True))  # noqa: E731
                      if shared else np.linalg.norm(g, axis=-1))
    grid_cost = cost(f)                                   # (n, B) or (n, 1)
    j = np.argmin(grid_cost, axis=0)                      # (B,) or (1,)
    u = np.linspace(0.0, 1.0, sub)
    best_v, best_r = grid_cost.min(axis=0), r[j]
    for left in (j - 1, j):                               # the intervals [r_left, r_left + h]
        ok = (left >= 0) & (left <= n - 2)
        lo = np.clip(left - 1, 0, n - 4)                  # first of the four stencil points
        z = (np.clip(left, 0, n - 2) - lo)[None] + u[:, None]      # position in stencil units
        w = [np.prod([(z - m) / (k - m) for m in range(4) if m != k], axis=0)
             for k in range(4)]                           # Lagrange weights, (sub, cols)
        cols = np.arange(lo.size)
        if shared:
            pts = np.stack([f[lo[0] + k] for k in range(4)])          # (4, B, d)
            g = sum(w[k][:, 0, None, None] * pts[k][None] for k in range(4))
            c = cost(g)[:, 0][:, None]                                  # (sub, 1)
        else:
            pts = np.stack([f[lo + k, cols] for k in range(4)])        # (4, B, d)
            g = sum(w[k][..., None] * pts[k][None] for k in range(4))  # (sub, B, d)
            c = cost(g)
        i = np.argmin(c, axis=0)
        v = c[i, np.arange(c.shape[1])]
        better = ok & (v < best_v)
        best_v = np.where(better, v, best_v)
        best_r = np.where(better, r[np.clip(left, 0, n - 2)] + h * u[i], best_r)
    if shared:
        return float(best_v[0]), float(best_r[0])
    return best_v, best_r


# --------------------------------------------------------------------------- AMED distillation


class AmedParams(NamedTuple):
    """Learned per-step AMED parameters, each field ``(N,)`` (a JAX pytree of its three arrays and a flag).

    ``r = sigmoid(theta)``. Unbounded (``paper_bounds=False``, the default): ``scale = 1 + gamma`` and
    ``time_scale = 1``. With ``paper_bounds=True``, the bounds of the AMED paper's code:
    ``scale = 0.99 + 0.02 sigmoid(gamma)`` in ``(0.99, 1.01)`` and
    ``time_scale = 0.8 + 0.4 sigmoid(eta)`` in ``(0.8, 1.2)``.
    """

    theta: jax.Array
    gamma: jax.Array
    eta: jax.Array | None = None
    paper_bounds: bool = False

    @property
    def r(self) -> jax.Array:
        return jax.nn.sigmoid(self.theta)

    @property
    def scale(self) -> jax.Array:
        return _amed_maps(self.theta, self.gamma, self.eta, self.paper_bounds)[1]

    @property
    def time_scale(self) -> jax.Array:
        return _amed_maps(self.theta, self.gamma, self.eta, self.paper_bounds)[2]


def _amed_maps(theta, gamma, eta, paper_bounds):
    """``(r, c, tau)`` from the raw parameters (see :class:`AmedParams`); ``paper_bounds`` may be traced."""
    r = jax.nn.sigmoid(theta)
    eta = jnp.zeros_like(theta) if eta is None else eta
    c = jnp.where(paper_bounds, 0.99 + 0.02 * jax.nn.sigmoid(gamma), 1.0 + gamma)
    tau = jnp.where(paper_bounds, 0.8 + 0.4 * jax.nn.sigmoid(eta), jnp.ones_like(theta))
    return r, c, tau


def _amed_loss(raw, mix, ref, grid, n_steps, afs, paper_bounds):
    """Sum over steps of the mean squared error of one student step taken from the student's own
    (gradient-stopped) previous state, against the reference state at the next grid time.
    Steps ``n >= n_steps`` (padding) leave the state alone and add nothing."""
    r, c, tau = _amed_maps(*raw, paper_bounds)

    def body(x, inp):
        n, t_c, t_n, rr, cc, tt, target = inp
        x_next, _ = _one_step_switch(mix, lax.stop_gradient(x), t_c, t_n, rr, cc, tt, SOLVERS.index("amed"),
                                     jnp.logical_and(afs, n == 0))
        live = n < n_steps
        err = jnp.mean(jnp.sum((x_next - target) ** 2, axis=-1))
        return jnp.where(live, x_next, x), jnp.where(live, err, 0.0)

    steps = jnp.arange(r.shape[0])
    _, errs = lax.scan(body, ref[0], (steps, grid[:-1], grid[1:], r, c, tau, ref[1:]))
    return jnp.sum(errs)


@partial(jax.jit, static_argnames="iters")
def _train(mix, ref, grid, n_steps, afs, learn_scale, iters: int, lr, theta0, paper_bounds, learn_time):
    import optax

    N = grid.shape[0] - 1
    raw = (jnp.full(N, theta0, ref.dtype), jnp.zeros(N, ref.dtype), jnp.zeros(N, ref.dtype))
    opt = optax.adam(lr)
    state = opt.init(raw)
    grad_fn = jax.value_and_grad(_amed_loss)

    def body(carry, _):
        p, s = carry
        loss, g = grad_fn(p, mix, ref, grid, n_steps, afs, paper_bounds)
        g = (g[0], jnp.where(learn_scale, g[1], 0.0), jnp.where(learn_time, g[2], 0.0))
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (raw, _), losses = lax.scan(body, (raw, state), None, length=iters)
    return raw, losses


def train_amed(mix: Mixture, ref_path, grid, *, afs: bool = False, learn_scale: bool = False, iters: int = 200,
               lr: float = 0.05, pad_steps: int | None = None, r_init: float = 0.5,
               paper_bounds: bool = False,
               learn_time_scale: bool | None = None) -> tuple[AmedParams, jax.Array]:
    """Distil the per-step AMED parameters from reference trajectories (Adam, full batch, jitted).

    Starts at ``r = r_init`` for every step (default 1/2, the geometric mean: DPM-Solver-2),
    ``scale = 1`` and ``time_scale = 1``. With ``learn_scale`` the step scale is learned too:
    unbounded by default, or, with ``paper_bounds``, confined as in the AMED paper's code to
    ``(0.99, 1.01)`` together with a time scale in ``(0.8, 1.2)`` (see :class:`AmedParams`).
    Each student step starts from the student's own previous state (gradient stopped) and is
    compared, in squared Euclidean norm averaged over samples, with the reference state at its end
    time (the paper's code restarts single-step solvers from the teacher's state instead). The loss
    is not convex in ``r``: try several ``r_init``.

    Args:
        mix: the data mixture.
        ref_path: ``(N + 1, B, d)`` reference states at the grid times (``ref_path[0]`` are the ``x_T``).
        grid: ``(N + 1,)`` the student's decreasing time grid.
        afs: whether the student uses the analytical first step.
        learn_scale: also learn the step scale factor (and, with ``paper_bounds``, the time scale).
        iters: Adam iterations; lr: learning rate.
        pad_steps: run the step loop over this many steps (>= N; the extra ones are masked out), so
            that grids of different lengths share one compilation.
        r_init: the starting ``r`` in (0, 1).
        paper_bounds: bound the scales as the paper's code does.
        learn_time_scale: with ``paper_bounds``, whether the time scale is learned too; the default
            ``None`` means ``learn_scale``. ``False`` keeps ``time_scale = 1`` exactly (the AMED code's
            recommended ``--scale_time=0``) while the step scale is still learned.

    Returns:
        ``(params, losses)``: :class:`AmedParams` with ``(N,)`` fields, and the loss ``(iters,)`` before each update.
    """
    _check_mixture(mix)
    g = _check_grid(grid)
    ref = as_finite_array("ref_path", ref_path)
    if ref.ndim != 3 or ref.shape[0] != g.size or ref.shape[2] != mix.dim:
        raise ValueError(f"ref_path must have shape ({g.size}, B, {mix.dim}), got {ref.shape}")
    iters = positive_int("iters", iters)
    lr = positive_scalar("lr", lr)
    r_init = positive_scalar("r_init", r_init)
    if not r_init < 1:
        raise ValueError(f"r_init must lie in (0, 1), got {r_init}")
    learn_time = learn_scale if learn_time_scale is None else learn_time_scale
    for name, flag in (("afs", afs), ("learn_scale", learn_scale), ("paper_bounds", paper_bounds),
                       ("learn_time_scale", learn_time)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    N = g.size - 1
    P = N if pad_steps is None else positive_int("pad_steps", pad_steps, minimum=N)
    g_pad = np.concatenate([g, np.full(P - N, g[-1])])
    ref_pad = np.concatenate([ref, np.repeat(ref[-1:], P - N, axis=0)])
    dt = mix.means.dtype
    raw, losses = _train(mix, jnp.asarray(ref_pad, dt), jnp.asarray(g_pad, dt), N, bool(afs), bool(learn_scale),
                         iters, lr, float(np.log(r_init / (1 - r_init))), bool(paper_bounds),
                         bool(learn_time and paper_bounds))
    eta = raw[2][:N] if paper_bounds else None
    return AmedParams(raw[0][:N], raw[1][:N], eta, bool(paper_bounds)), losses


# --------------------------------------------------------------------------- symbolic local error


def local_error_leading_term(method: str, order: int = 4):
    """Leading term of (exact solution - one step of ``method``) for a scalar ODE ``x' = f(x, t)``.

    The step goes from ``(x, t)`` to ``t + h``; the exact solution is expanded with total derivatives
    ``D g = g_t + f g_x`` and each step map by a bivariate Taylor expansion of ``f``, both to ``h^order``.

    Args:
        method: one of :data:`SOLVERS` except ``"amed"``.
        order: highest power of ``h`` kept, >= 3.

    Returns:
        ``(power, coefficient, h, f)``: the smallest power of ``h`` whose coefficient does not vanish,
        that coefficient (in derivatives of ``f(x, t)``), the step symbol and the function ``f``.
    """
    one_of("method", method, ("euler", "heun", "midpoint", "dpm2"))
    order = positive_int("order", order, minimum=3)
    x, t = sp.symbols("x t", real=True)
    h = sp.Symbol("h", real=True)
    tp = sp.Symbol("t", positive=True)
    f = sp.Function("f")
    F = f(x, t)

    def total(g):
        return sp.diff(g, t) + F * sp.diff(g, x)

    exact, term = x, x
    for k in range(1, order + 1):
        term = total(term) if k > 1 else F
        exact += h**k / sp.factorial(k) * term

    def f_at(dx, dt):  # Taylor expansion of f(x + dx, t + dt); dx, dt are O(h)
        out = 0
        for i in range(order):
            for j in range(order - i):
                out += sp.diff(F, x, i, t, j) * dx**i * dt**j / (sp.factorial(i) * sp.factorial(j))
        return out

    def trunc(e):
        return sp.series(sp.expand(e), h, 0, order + 1).removeO()

    if method == "euler":
        step = x + h * F
    elif method == "heun":
        step = x + h / 2 * (F + f_at(h * F, h))
    else:
        if method == "midpoint":
            ds = h / 2
        else:  # s = sqrt(t (t + h)) with t > 0, expanded in h
            ds = trunc(sp.sqrt(tp * (tp + h)) - tp).subs(tp, t)
        step = x + h * f_at(ds * F, ds)
    diff = sp.expand(trunc(exact - step))
    for p in range(1, order + 1):
        coeff = sp.simplify(diff.coeff(h, p))
        if coeff != 0:
            return p, coeff, h, f
    return None, sp.Integer(0), h, f
