"""Discrete variance-preserving (DDPM) diffusions: schedules, exact ε on a Gaussian mixture, sampling.

Notation of kexue.fm/archives/9152 (Su's, not the DDPM paper's): the forward (encoding) chain is

    x_t = α_t x_{t-1} + β_t ε_t,    α_t² + β_t² = 1,    t = 1..T,

so that ``x_t = ᾱ_t x_0 + β̄_t ε`` with ``ᾱ_t = α_1 ⋯ α_t`` and ``β̄_t = √(1 − ᾱ_t²)``. (Ho et al.'s
``β_t`` is this ``β_t²``, their ``ᾱ_t`` is this ``ᾱ_t²``.) The generative step is
``x_{t-1} ~ N(μ(x_t), σ_t² I)`` with ``μ(x_t) = (x_t − (β_t²/β̄_t) ε̂(x_t, t)) / α_t`` and ``ε̂`` the
ε-prediction; ``σ_t`` is a free choice, two of which the post derives:

    "posterior"  σ_t = β̄_{t-1} β_t / β̄_t   (optimal for data concentrated on one point)
    "beta"       σ_t = β_t                   (optimal for standard-normal data)

VP and EDM coordinates: ``x_t = ᾱ x_0 + β̄ ε`` is ``x_t/ᾱ = x_0 + (β̄/ᾱ) ε``, EDM's ``x_0 + s ε`` at noise
level ``s = β̄/ᾱ``. So for data drawn from a :class:`sulib.diffusion.Mixture` the exact posterior mean
``E[x_0 | x_t]`` is EDM's denoiser ``D(x_t/ᾱ, β̄/ᾱ)``, and

    E[ε | x_t = x] = (x − ᾱ D) / β̄,        ∇ log p_t(x) = (ᾱ D − x) / β̄² = −E[ε | x_t = x] / β̄.

Shapes: a schedule of ``T`` steps holds ``(T,)`` arrays indexed by ``t − 1``; samples ``x`` are
``(B, d)``; ``ᾱ`` and ``β̄`` are scalars or ``(B,)``. Everything is float64 when JAX's x64 mode is on.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib import diffusion as dm
from sulib._checks import as_finite_array, one_of, positive_int

__all__ = [
    "SCHEDULES",
    "SIGMA_CHOICES",
    "VPSchedule",
    "schedule_from_alphas",
    "schedule_from_beta2",
    "named_schedule",
    "respace",
    "sigma_choice",
    "x0_exact",
    "eps_exact",
    "score_vp",
    "ancestral_sample",
    "GaussianElbo",
    "gaussian_neg_elbo",
    "OptimalVariance",
    "optimal_variance",
    "optimal_variance_mc",
]

#: Named schedules of :func:`named_schedule`.
SCHEDULES = ("ddpm", "ho_linear")
#: Named reverse standard deviations of :func:`sigma_choice`.
SIGMA_CHOICES = ("posterior", "beta")


def _f64(a) -> jax.Array:
    return jnp.asarray(a, dtype=jax.dtypes.canonicalize_dtype(np.float64))


class VPSchedule(NamedTuple):
    """A discrete VP schedule of ``T`` steps (a JAX pytree); every field is ``(T,)``, entry ``t − 1``.

    Fields:
        alpha: ``α_t`` in (0, 1).
        beta: ``β_t = √(1 − α_t²)``.
        abar: ``ᾱ_t = α_1 ⋯ α_t``.
        bbar: ``β̄_t = √(1 − ᾱ_t²)``.
        times: the step's time on the schedule it was built from (``1..T`` for a fresh schedule,
            the kept times ``τ_i`` after :func:`respace`), as floats.
    """

    alpha: jax.Array
    beta: jax.Array
    abar: jax.Array
    bbar: jax.Array
    times: jax.Array

    @property
    def T(self) -> int:
        return int(self.alpha.shape[0])

    @property
    def abar_prev(self) -> jax.Array:
        """``ᾱ_{t−1}`` ``(T,)`` with ``ᾱ_0 = 1``."""
        return jnp.concatenate([jnp.ones(1, self.abar.dtype), self.abar[:-1]])

    @property
    def bbar_prev(self) -> jax.Array:
        """``β̄_{t−1}`` ``(T,)`` with ``β̄_0 = 0``."""
        return jnp.concatenate([jnp.zeros(1, self.bbar.dtype), self.bbar[:-1]])


def _from_log_alpha(log_alpha: np.ndarray, beta2: np.ndarray, times: np.ndarray) -> VPSchedule:
    """The schedule from ``log α_t`` and ``β_t² = 1 − α_t²`` (both given accurately)."""
    log_abar = np.cumsum(log_alpha)
    bbar = np.sqrt(-np.expm1(2 * log_abar))  # 1 − ᾱ² without cancellation
    return VPSchedule(_f64(np.exp(log_alpha)), _f64(np.sqrt(beta2)), _f64(np.exp(log_abar)),
                      _f64(bbar), _f64(times))


def _check_1d(name: str, a) -> np.ndarray:
    a = as_finite_array(name, a).astype(np.float64)
    if a.ndim != 1 or a.size < 1:
        raise ValueError(f"{name} must have shape (T,) with T >= 1, got {a.shape}")
    return a


def schedule_from_alphas(alphas) -> VPSchedule:
    """The schedule with ``α_t = alphas[t − 1]``.

    Args:
        alphas: ``(T,)``, each in (0, 1).
    """
    a = _check_1d("alphas", alphas)
    if np.any(a <= 0) or np.any(a >= 1):
        raise ValueError("alphas must lie in (0, 1) (α_t = 1 adds no noise, α_t = 0 erases x_{t-1})")
    beta2 = (1 - a) * (1 + a)  # exact difference: 1 − a is exact for a in [1/2, 1]
    return _from_log_alpha(np.log(a), beta2, np.arange(1.0, a.size + 1))


def schedule_from_beta2(beta2) -> VPSchedule:
    """The schedule with ``β_t² = beta2[t − 1]`` (Ho et al.'s ``β_t``), ``α_t = √(1 − β_t²)``.

    Args:
        beta2: ``(T,)``, each in (0, 1).
    """
    b2 = _check_1d("beta2", beta2)
    if np.any(b2 <= 0) or np.any(b2 >= 1):
        raise ValueError("beta2 must lie in (0, 1)")
    return _from_log_alpha(0.5 * np.log1p(-b2), b2, np.arange(1.0, b2.size + 1))


def named_schedule(name: str, T: int = 1000) -> VPSchedule:
    """A named schedule of ``T`` steps.

    ``"ddpm"``: the post's ``α_t = √(1 − 0.02 t / T)``, i.e. ``β_t² = 0.02 t / T``.
    ``"ho_linear"``: Ho et al.'s schedule, ``β_t²`` linear from ``1e-4`` (``t = 1``) to ``0.02``
    (``t = T``; for ``T = 1`` just ``0.02``).
    """
    one_of("name", name, SCHEDULES)
    T = positive_int("T", T)
    t = np.arange(1, T + 1)
    if name == "ddpm":
        return schedule_from_beta2(0.02 * t / T)
    return schedule_from_beta2(np.linspace(1e-4, 0.02, T) if T > 1 else np.array([0.02]))


def respace(schedule: VPSchedule, n_steps: int) -> VPSchedule:
    """The chain that visits only ``n_steps`` of the schedule's times, as a schedule of its own.

    Kept times ``τ_i = round(linspace(1, T, n_steps))`` (``τ = [T]`` for one step), which include
    ``t = 1`` and ``t = T``. Step ``i`` goes from ``τ_{i−1}`` to ``τ_i`` (``τ_0 = 0``) with
    ``α'_i = ᾱ_{τ_i} / ᾱ_{τ_{i−1}}``, so ``ᾱ'_i = ᾱ_{τ_i}``: the marginals at the kept times are those of
    the full chain (the respacing of Nichol & Dhariwal, and of DDIM's sub-sequences).

    Returns:
        A :class:`VPSchedule` of ``n_steps`` steps whose ``times`` are the ``τ_i``.
    """
    if not isinstance(schedule, VPSchedule):
        raise TypeError(f"schedule must be a VPSchedule, got {type(schedule).__name__}")
    n = positive_int("n_steps", n_steps)
    T = schedule.T
    if n > T:
        raise ValueError(f"n_steps must be <= the schedule's T = {T}, got {n}")
    tau = np.array([T]) if n == 1 else np.round(np.linspace(1, T, n)).astype(int)
    log_abar = np.log(np.asarray(schedule.abar))[tau - 1]
    log_alpha = np.diff(np.concatenate([[0.0], log_abar]))
    beta2 = -np.expm1(2 * log_alpha)
    times = np.asarray(schedule.times)[tau - 1]
    return _from_log_alpha(log_alpha, beta2, times)


def sigma_choice(schedule: VPSchedule, kind: str) -> jax.Array:
    """The reverse standard deviation ``σ_t`` ``(T,)`` named ``kind`` (see :data:`SIGMA_CHOICES`).

    ``"posterior"``: ``β̄_{t−1} β_t / β̄_t`` (0 at ``t = 1``); ``"beta"``: ``β_t``.
    """
    if not isinstance(schedule, VPSchedule):
        raise TypeError(f"schedule must be a VPSchedule, got {type(schedule).__name__}")
    one_of("kind", kind, SIGMA_CHOICES)
    if kind == "beta":
        return schedule.beta
    return schedule.bbar_prev * schedule.beta / schedule.bbar


# --------------------------------------------------------------------------- exact ε on a mixture


def _x0(mix, x, abar, bbar):
    """``E[x_0 | x_t = x]`` ``(B, d)``; ``abar``, ``bbar`` scalars or ``(B,)``."""
    a = jnp.reshape(abar, (-1, 1))
    return dm._denoise(mix, x / a, jnp.reshape(bbar / abar, (-1,)))


def _eps(mix, x, abar, bbar):
    a, b = jnp.reshape(abar, (-1, 1)), jnp.reshape(bbar, (-1, 1))
    return (x - a * _x0(mix, x, abar, bbar)) / b


def _check_x_abar(mix, x, abar):
    dm._check_mixture(mix)
    x = dm._check_x("x", x, mix)
    a = as_finite_array("abar", abar)
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != x.shape[0]):
        raise ValueError(f"abar must be a scalar or have shape ({x.shape[0]},), got {a.shape}")
    if np.any(a <= 0) or np.any(a >= 1):
        raise ValueError("abar must lie in (0, 1)")
    dt = mix.means.dtype
    return jnp.asarray(x, dt), jnp.asarray(a, dt), jnp.asarray(np.sqrt(-np.expm1(2 * np.log(a))), dt)


_x0_jit = jax.jit(_x0)
_eps_jit = jax.jit(_eps)


def x0_exact(mix: dm.Mixture, x, abar) -> jax.Array:
    """Exact ``E[x_0 | x_t = x]`` ``(B, d)`` for ``x_t = ᾱ x_0 + β̄ ε``, ``x_0`` from ``mix``.

    Args:
        mix: the data mixture.
        x: ``(B, d)``.
        abar: ``ᾱ`` in (0, 1), a scalar or ``(B,)``; ``β̄ = √(1 − ᾱ²)``.
    """
    return _x0_jit(mix, *_check_x_abar(mix, x, abar))


def eps_exact(mix: dm.Mixture, x, abar) -> jax.Array:
    """Exact ε-prediction ``E[ε | x_t = x] = (x − ᾱ E[x_0 | x_t = x]) / β̄``, shape ``(B, d)``.

    This is the minimiser of ``E‖ε − ε̂(ᾱ x_0 + β̄ ε)‖²`` over all functions ``ε̂``: the ideal trained
    network of the standard DDPM loss. Arguments as in :func:`x0_exact`.
    """
    return _eps_jit(mix, *_check_x_abar(mix, x, abar))


def score_vp(mix: dm.Mixture, x, abar) -> jax.Array:
    """Exact score ``∇_x log p_t(x) = −E[ε | x_t = x] / β̄`` of ``x_t = ᾱ x_0 + β̄ ε``, shape ``(B, d)``."""
    x, a, b = _check_x_abar(mix, x, abar)
    return -_eps_jit(mix, x, a, b) / jnp.reshape(b, (-1, 1))


# --------------------------------------------------------------------------- ancestral sampling


def _bucket(n: int) -> int:
    return max(1024, 1 << (n - 1).bit_length())


@jax.jit
def _ancestral(mix, x, alpha, beta, abar, bbar, sigma, n_steps, key, final_noise):
    """Steps ``i = n_steps − 1 … 0`` of padded ``(L,)`` arrays; returns ``(x_0, nfe)``."""

    def body(k, carry):
        xc, nfe = carry
        i = n_steps - 1 - k
        eps = _eps(mix, xc, abar[i], bbar[i])
        mean = (xc - beta[i] ** 2 / bbar[i] * eps) / alpha[i]
        z = jax.random.normal(jax.random.fold_in(key, i), xc.shape, xc.dtype)
        noisy = jnp.logical_or(i > 0, final_noise)
        return mean + jnp.where(noisy, sigma[i], 0.0) * z, nfe + 1

    return lax.fori_loop(0, n_steps, body, (x, jnp.asarray(0)))


def ancestral_sample(mix: dm.Mixture, x_T, schedule: VPSchedule, sigma, key: jax.Array, *,
                     final_noise: bool = False) -> tuple[jax.Array, int]:
    """DDPM ancestral sampling with the mixture's exact ε-prediction, from ``x_T`` down to ``x_0``.

    Step ``t = T … 1``: ``x_{t−1} = (x_t − (β_t²/β̄_t) ε̂(x_t)) / α_t + σ_t z_t`` with
    ``ε̂ = E[ε | x_t]`` (:func:`eps_exact`) and ``z_t ~ N(0, I)`` drawn from ``fold_in(key, t − 1)``:
    the same key gives the same noise for every ``σ``, so samplers that differ only in ``σ`` are
    compared on common random numbers. As in Ho et al.'s Algorithm 2, the last step adds no noise
    unless ``final_noise``. The loop is compiled once for all ``T`` up to 1024.

    Args:
        mix: the data mixture (its exact ε stands in for the trained network).
        x_T: ``(B, d)`` starting states (usually ``N(0, I)`` samples).
        schedule: the :class:`VPSchedule` (``T`` steps), e.g. from :func:`respace`.
        sigma: ``(T,)`` reverse standard deviations ``σ_t`` >= 0 (:func:`sigma_choice`).
        key: PRNG key of the noise.
        final_noise: add ``σ_1 z_1`` at the last step too.

    Returns:
        ``(x_0, nfe)``: samples ``(B, d)`` and the number of ε evaluations, counted in the loop.
    """
    dm._check_mixture(mix)
    if not isinstance(schedule, VPSchedule):
        raise TypeError(f"schedule must be a VPSchedule, got {type(schedule).__name__}")
    x = dm._check_x("x_T", x_T, mix)
    s = as_finite_array("sigma", sigma)
    T = schedule.T
    if s.shape != (T,):
        raise ValueError(f"sigma must have shape ({T},) (one per step), got {s.shape}")
    if np.any(s < 0):
        raise ValueError("sigma must be >= 0 (a standard deviation)")
    if not isinstance(final_noise, (bool, np.bool_)):
        raise TypeError(f"final_noise must be a bool, got {type(final_noise).__name__}")
    L = _bucket(T)
    dt = mix.means.dtype
    pad = lambda a, v: jnp.asarray(np.concatenate([np.asarray(a), np.full(L - T, v)]), dt)  # noqa: E731
    x0, nfe = _ancestral(mix, jnp.asarray(x, dt), pad(schedule.alpha, 0.5), pad(schedule.beta, 0.5),
                         pad(schedule.abar, 0.5), pad(schedule.bbar, 0.5), pad(s, 0.0), T, key,
                         bool(final_noise))
    return x0, int(nfe)


# --------------------------------------------------------------------------- negative ELBO


class GaussianElbo(NamedTuple):
    """Terms of the negative ELBO of :func:`gaussian_neg_elbo` (nats, summed over coordinates).

    Fields:
        prior: ``E[−log q(x_T)]``.
        steps: ``(T,)``, entry ``t − 1``: ``E[−log q(x_{t−1} | x_t)] − E[−log p(x_t | x_{t−1})]``.
        residual: ``(T,)``, entry ``t − 1``: ``E‖x_{t−1} − μ(x_t)‖²`` with the exact posterior mean
            ``μ``, i.e. ``d`` times the optimal ``σ_t²`` (the minimiser of ``steps[t − 1]``).
    """

    prior: float
    steps: np.ndarray
    residual: np.ndarray

    @property
    def total(self) -> float:
        """``prior + Σ_t steps``: ``E_p[log p(x_{1:T} | x_0) − log q(x_{0:T})]``."""
        return float(self.prior + np.sum(self.steps))


def gaussian_neg_elbo(schedule: VPSchedule, sigma, data_mean, data_var) -> GaussianElbo:
    """Exact negative ELBO of the DDPM with the exact ε, on Gaussian data ``N(m, diag(v))``.

    ``−ELBO = E_p[log p(x_{1:T}|x_0) − log q(x_{0:T})]`` with ``q(x_T) = N(0, I)`` and
    ``q(x_{t−1}|x_t) = N(μ(x_t), σ_t² I)``, ``μ(x_t) = E_p[x_{t−1} | x_t]``. Per coordinate, with
    ``V_t = ᾱ_t² v + β̄_t²`` (``V_0 = v``), the residual variance of ``x_{t−1}`` given ``x_t`` is
    ``R_t = V_{t−1} β_t² / V_t`` and

        E[−log q(x_{t−1}|x_t)] = ½ log(2π σ_t²) + R_t / (2 σ_t²),
        E[−log p(x_t|x_{t−1})] = ½ log(2π e β_t²),
        E[−log q(x_T)]        = ½ (log 2π + V_T + ᾱ_T² m²).

    Args:
        schedule: a :class:`VPSchedule` of ``T`` steps.
        sigma: ``(T,)``, each > 0 (``σ_t = 0`` makes the term infinite).
        data_mean: ``(d,)`` or a scalar (``d = 1``).
        data_var: ``(d,)`` or a scalar, each >= 0 (0: all data at the mean, the post's single point).

    Returns:
        :class:`GaussianElbo` (float64 NumPy; summed over the ``d`` coordinates).
    """
    if not isinstance(schedule, VPSchedule):
        raise TypeError(f"schedule must be a VPSchedule, got {type(schedule).__name__}")
    s = as_finite_array("sigma", sigma).astype(np.float64)
    T = schedule.T
    if s.shape != (T,):
        raise ValueError(f"sigma must have shape ({T},) (one per step), got {s.shape}")
    if np.any(s <= 0):
        raise ValueError("sigma must be > 0 for a finite ELBO")
    m = np.atleast_1d(as_finite_array("data_mean", data_mean)).astype(np.float64)
    v = np.atleast_1d(as_finite_array("data_var", data_var)).astype(np.float64)
    if m.ndim != 1 or v.shape != m.shape:
        raise ValueError(f"data_mean and data_var must have the same shape (d,), got {m.shape}, {v.shape}")
    if np.any(v < 0):
        raise ValueError("data_var must be >= 0")
    abar, bbar, beta = (np.asarray(a, np.float64) for a in (schedule.abar, schedule.bbar, schedule.beta))
    V = abar[:, None] ** 2 * v[None] + bbar[:, None] ** 2           # (T, d)
    V_prev = np.concatenate([v[None], V[:-1]])
    R = V_prev * beta[:, None] ** 2 / V                               # (T, d)
    log2pi = np.log(2 * np.pi)
    cross = 0.5 * (log2pi + np.log(s**2))[:, None] + R / (2 * s[:, None] ** 2)
    ent = 0.5 * (log2pi + 1 + np.log(beta**2))[:, None]
    prior = 0.5 * np.sum(log2pi + V[-1] + abar[-1] ** 2 * m**2)
    return GaussianElbo(float(prior), np.sum(cross - ent, axis=1), np.sum(R, axis=1))


# --------------------------------------------------------------------------- optimal σ on a mixture


class OptimalVariance(NamedTuple):
    """Monte Carlo estimate of the optimal reverse variance of each step (``(T,)`` fields).

    Fields:
        variance: ``σ_t*² = E‖x_{t−1} − E[x_{t−1}|x_t]‖² / d``.
        stderr: its standard error.
        mmse: ``E‖ε − E[ε|x_t]‖² / d``, the per-coordinate error of the exact ε-prediction.
    """

    variance: np.ndarray
    stderr: np.ndarray
    mmse: np.ndarray


@partial(jax.jit, static_argnames="n")
def _mmse(mix, abar, bbar, key, n: int):
    def one(args):
        a, b, k = args
        k1, k2 = jax.random.split(k)
        x0 = dm._sample(mix, k1, n)
        eps = jax.random.normal(k2, x0.shape, x0.dtype)
        err = jnp.mean((eps - _eps(mix, a * x0 + b * eps, a, b)) ** 2, axis=-1)  # (n,)
        return jnp.mean(err), jnp.std(err) / jnp.sqrt(n)

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(abar.shape[0]))
    return lax.map(one, (abar, bbar, keys))


def optimal_variance(schedule: VPSchedule, mmse) -> np.ndarray:
    """The optimal reverse variance ``σ_t*²`` ``(T,)`` from the ε-prediction error of each step.

    The minimiser of ``E[−log q(x_{t−1}|x_t)]`` over ``σ_t`` is the mean residual variance
    ``E‖x_{t−1} − μ(x_t)‖² / d`` with ``μ`` the exact posterior mean. Given ``(x_0, x_t)``,
    ``x_{t−1}`` is Gaussian with mean ``μ̃ = (x_t − (β_t²/β̄_t) ε) / α_t`` and variance
    ``β̄_{t−1}² β_t² / β̄_t²``; integrating it out (Rao–Blackwell),

        σ_t*² = β̄_{t−1}² β_t² / β̄_t² + β_t⁴ / (α_t² β̄_t²) · mmse_t,
        mmse_t = E‖ε − E[ε|x_t]‖² / d.

    ``mmse_t`` depends on the step only through ``ᾱ_t``, so the values of a schedule serve any
    :func:`respace` of it (take them at the kept ``times``).

    Args:
        schedule: a :class:`VPSchedule` of ``T`` steps.
        mmse: ``(T,)``, each in [0, 1] (the error of predicting ε by 0 is 1).
    """
    if not isinstance(schedule, VPSchedule):
        raise TypeError(f"schedule must be a VPSchedule, got {type(schedule).__name__}")
    e = as_finite_array("mmse", mmse).astype(np.float64)
    if e.shape != (schedule.T,):
        raise ValueError(f"mmse must have shape ({schedule.T},) (one per step), got {e.shape}")
    if np.any(e < 0) or np.any(e > 1 + 1e-12):
        raise ValueError("mmse must lie in [0, 1]")
    alpha, beta, bbar, bprev = (np.asarray(a, np.float64) for a in (schedule.alpha, schedule.beta,
                                                                    schedule.bbar, schedule.bbar_prev))
    return (bprev * beta / bbar) ** 2 + beta**4 / (alpha**2 * bbar**2) * e


def optimal_variance_mc(mix: dm.Mixture, schedule: VPSchedule, key: jax.Array, n: int = 1024) -> OptimalVariance:
    """The optimal ``σ_t²`` of every step on mixture data, by Monte Carlo with the exact ε.

    ``mmse_t = E‖ε − E[ε|x_t]‖² / d`` is estimated from ``n`` fresh ``(x_0, ε)`` pairs per step, and
    turned into ``σ_t*²`` by :func:`optimal_variance`.

    Args:
        mix: the data mixture.
        schedule: a :class:`VPSchedule` of ``T`` steps.
        key: PRNG key (step ``t`` uses ``fold_in(key, t − 1)``).
        n: samples per step, >= 2.

    Returns:
        :class:`OptimalVariance` with ``(T,)`` NumPy fields.
    """
    dm._check_mixture(mix)
    if not isinstance(schedule, VPSchedule):
        raise TypeError(f"schedule must be a VPSchedule, got {type(schedule).__name__}")
    n = positive_int("n", n, minimum=2)
    mmse, se = (np.asarray(a, np.float64) for a in _mmse(mix, schedule.abar, schedule.bbar, key, n))
    alpha, beta, bbar = (np.asarray(a, np.float64) for a in (schedule.alpha, schedule.beta, schedule.bbar))
    gain = beta**4 / (alpha**2 * bbar**2)
    return OptimalVariance(optimal_variance(schedule, np.clip(mmse, 0.0, 1.0)), gain * se, mmse)
