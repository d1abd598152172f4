"""Score identity Distillation (SiD) on data whose exact teacher is known: a Gaussian mixture.

Zhou et al. 2024 (arXiv 2404.04057; kexue.fm 10085) distil a diffusion model into a one-step
generator ``x_g = g_θ(z)`` without data and without sampling the teacher. Noise parametrization
here: **EDM's**, as in the paper, ``x_t = x_g + σ ε`` (the post's VP form with ``ᾱ = 1``,
``β̄ = σ``), with the networks written as ε-predictions, as in the post:

    teacher   ε_φ*(x, σ) = (x − D(x, σ)) / σ,  D the exact denoiser of the mixture (sulib.diffusion)
    fake      ε_ψ(x, σ)  = σ x / (σ² + σ_d²) − σ_d / √(σ² + σ_d²) · F_ψ(x / √(σ² + σ_d²), ¼ log σ)

(the fake score is EDM's preconditioned denoiser rewritten as an ε-prediction; ``F_ψ`` an MLP).
Per generated sample, with ``δ = ε_φ* − ε_ψ``,

    L₁ integrand  ‖δ‖²                     (the naive loss)
    L₂ integrand  ⟨δ, ε_φ* − ε⟩             (SiD's rewrite, equal to L₁ in expectation when
                                            ε_ψ = E[ε | x_t] exactly)

and a run minimises ``E[ω (w₂ L₂ + w₁ L₁)]`` over θ: ``(w₂, w₁) = (0, 1)`` is the naive loss,
``(1, −λ)`` SiD's ``L₂ − λL₁`` (the paper's α = 1.2). The weight is the paper's code's,
``ω = σ² / mean|x_g − D_φ(x_t)|`` (not differentiated), which in ε form is
``σ / mean|ε_φ* − ε|``. The generator's noise levels are the paper's, ``σ = (σ_max^{1/ρ} +
(1 − u)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`` with ``u ~ U(0, t_max)``, ``ρ = 7``, ``σ_min = 0.002``,
``σ_max = 80`` and ``t_max = 0.8``, so ``σ ∈ [0.002, 24.4]``; the fake score's loss is EDM's, ``log σ ~ N(−1.2, 1.2²)`` with weight
``(σ² + σ_d²) / σ_d²`` on ``‖ε_ψ − ε‖²``. Training alternates ``fake_steps`` Adam steps on ψ
(on the generator's current samples) with one Adam step on θ, in ``lax.scan``.

``python -m sulib.sid long OUT.npz`` runs :data:`LONG_CONFIG` (the run stored in
``book/diffusion/data/sid_long.npz``).

Shapes: samples ``(B, d)``; noise levels ``σ`` scalars or ``(B,)``; generator latents ``(B, d_z)``.
Everything is float64 when JAX's x64 mode is on.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from sulib import diffusion as dm
from sulib import nets
from sulib._checks import as_finite_array, positive_int, positive_scalar

__all__ = [
    "SIGMA_MIN",
    "SIGMA_MAX",
    "RHO",
    "teacher_eps",
    "loss_terms",
    "generator_sigma",
    "fake_sigma",
    "fake_init",
    "fake_eps",
    "generator_init",
    "generate",
    "SidRun",
    "train_sid",
    "generator_loss",
    "fake_loss",
    "LONG_CONFIG",
    "LONG_WEIGHTS",
    "ring_mixture",
]

SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
_ACT = "silu"


# ------------------------------------------------------------------------------ checks


def _check_sigma(name: str, sigma, batch: int) -> np.ndarray:
    s = as_finite_array(name, sigma)
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != batch):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {s.shape}")
    if np.any(s <= 0):
        raise ValueError(f"{name} must be > 0")
    return s


def _col(s, x):
    return jnp.reshape(jnp.asarray(s, x.dtype), (-1, 1))


# ------------------------------------------------------------------------------ teacher


@jax.jit
def _teacher_eps(mix, x, sigma):
    return (x - dm._denoise(mix, x, jnp.reshape(sigma, (-1,)))) / _col(sigma, x)


def teacher_eps(mix: dm.Mixture, x, sigma) -> jax.Array:
    """Exact ε-prediction ``E[ε | x_t = x] = (x − D(x, σ)) / σ`` of ``x_t = x_0 + σ ε``.

    This is the same function as ``sulib.diffusion.velocity`` (the probability-flow ODE's
    ``dx/dσ = (x − D)/σ``); it is kept under this name because SiD reads it as the teacher.

    Args:
        mix: the data mixture (its exact denoiser plays the trained teacher).
        x: ``(B, d)`` noisy points.
        sigma: noise level(s) > 0, a scalar or ``(B,)``.

    Returns:
        ``(B, d)``.
    """
    dm._check_mixture(mix)
    x = dm._check_x("x", x, mix)
    s = _check_sigma("sigma", sigma, x.shape[0])
    dt = mix.means.dtype
    return _teacher_eps(mix, jnp.asarray(x, dt), jnp.asarray(s, dt))


@jax.jit
def _loss_terms(eps_teacher, eps_fake, eps):
    delta = eps_teacher - eps_fake
    return jnp.sum(delta**2, axis=-1), jnp.sum(delta * (eps_teacher - eps), axis=-1)


def loss_terms(eps_teacher, eps_fake, eps) -> tuple[jax.Array, jax.Array]:
    """Per-sample integrands ``(‖ε_φ − ε_ψ‖², ⟨ε_φ − ε_ψ, ε_φ − ε⟩)`` of L₁ and L₂.

    Args:
        eps_teacher, eps_fake, eps: ``(B, d)`` each: the teacher's and the fake score's
            ε-predictions at ``x_t = x_g + σ ε``, and the noise ``ε`` itself.

    Returns:
        ``(l1, l2)``, each ``(B,)``.
    """
    a = as_finite_array("eps_teacher", eps_teacher)
    for name, v in (("eps_fake", eps_fake), ("eps", eps)):
        if as_finite_array(name, v).shape != a.shape:
            raise ValueError(f"{name} must have the shape of eps_teacher {a.shape}, "
                             f"got {np.shape(v)}")
    if a.ndim != 2:
        raise ValueError(f"eps_teacher must have shape (B, d), got {a.shape}")
    return _loss_terms(jnp.asarray(eps_teacher), jnp.asarray(eps_fake), jnp.asarray(eps))


# ------------------------------------------------------------------------------ noise levels


def _gen_sigma(key, n, t_max, dtype):
    u = jax.random.uniform(key, (n,), dtype) * t_max
    lo, hi = SIGMA_MIN ** (1 / RHO), SIGMA_MAX ** (1 / RHO)
    return (hi + (1 - u) * (lo - hi)) ** RHO


def _fake_sigma(key, n, dtype):
    return jnp.exp(-1.2 + 1.2 * jax.random.normal(key, (n,), dtype))


def generator_sigma(key: jax.Array, n: int, t_max: float = 0.8) -> jax.Array:
    """``n`` noise levels ``(n,)`` of the generator loss (the paper's code; ``t_max`` in (0, 1])."""
    n = positive_int("n", n)
    t_max = positive_scalar("t_max", t_max)
    if t_max > 1:
        raise ValueError(f"t_max must be <= 1, got {t_max}")
    return _gen_sigma(key, n, t_max, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)


def fake_sigma(key: jax.Array, n: int) -> jax.Array:
    """``n`` noise levels ``(n,)`` of the fake-score loss: EDM's ``log σ ~ N(−1.2, 1.2²)``."""
    n = positive_int("n", n)
    return _fake_sigma(key, n, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)


# ------------------------------------------------------------------------------ networks


def fake_init(key: jax.Array, d: int, width: int = 64, depth: int = 2) -> nets.MlpParams:
    """Parameters of the fake score ``F_ψ``: an MLP ``(d + 1) → width^depth → d``, last layer 0.

    With a zero last layer the fake score starts as the ε-prediction of ``N(0, σ_d² I)`` data.
    """
    d, width, depth = positive_int("d", d), positive_int("width", width), positive_int("depth", depth)
    return nets.mlp_init(key, (d + 1,) + (width,) * depth + (d,), final_scale=0.0)


def _fake_eps(psi, x, sigma, sigma_data):
    s = _col(sigma, x)
    c_in = 1 / jnp.sqrt(s**2 + sigma_data**2)
    feats = jnp.concatenate([x * c_in, jnp.broadcast_to(jnp.log(s) / 4, x[:, :1].shape)], -1)
    return s * c_in**2 * x - sigma_data * c_in * nets._apply(psi, feats, _ACT)


def fake_eps(psi: nets.MlpParams, x, sigma, sigma_data: float = 0.5) -> jax.Array:
    """The fake score's ε-prediction ``ε_ψ(x, σ)`` ``(B, d)`` (formula in the module docstring).

    Args:
        psi: parameters from :func:`fake_init`.
        x: ``(B, d)``; sigma: > 0, scalar or ``(B,)``; sigma_data: ``σ_d`` > 0.
    """
    x = as_finite_array("x", x)
    if x.ndim != 2 or x.shape[1] + 1 != psi[0][0].shape[0]:
        raise ValueError(f"x must have shape (B, {psi[0][0].shape[0] - 1}), got {x.shape}")
    s = _check_sigma("sigma", sigma, x.shape[0])
    sd = positive_scalar("sigma_data", sigma_data)
    return jax.jit(_fake_eps)(psi, jnp.asarray(x), jnp.asarray(s, x.dtype), sd)


def generator_init(key: jax.Array, d_z: int, d: int, width: int = 64,
                   depth: int = 2) -> nets.MlpParams:
    """Parameters of the one-step generator ``g_θ``: an MLP ``d_z → width^depth → d``."""
    d_z, d = positive_int("d_z", d_z), positive_int("d", d)
    width, depth = positive_int("width", width), positive_int("depth", depth)
    return nets.mlp_init(key, (d_z,) + (width,) * depth + (d,))


def generate(theta: nets.MlpParams, z) -> jax.Array:
    """Samples ``g_θ(z)`` ``(B, d)`` for latents ``z`` ``(B, d_z)``."""
    z = as_finite_array("z", z)
    if z.ndim != 2 or z.shape[1] != theta[0][0].shape[0]:
        raise ValueError(f"z must have shape (B, {theta[0][0].shape[0]}), got {z.shape}")
    return nets._apply(theta, jnp.asarray(z), _ACT)


# ------------------------------------------------------------------------------ training


class SidRun(NamedTuple):
    """Result of :func:`train_sid` for ``S`` runs (configs × seeds flattened), ``C`` checkpoints.

    Fields:
        steps: ``(C + 1,)`` generator steps at the checkpoints (0 first).
        sw2: ``(S, C + 1)`` sliced W₂ of ``n_eval`` generated samples to ``n_eval`` data samples.
        samples: ``(S, C + 1, n_eval, d)`` generated samples at the checkpoints (fixed latents).
        theta, psi: the final parameters, every leaf with a leading axis ``S``.
    """

    steps: np.ndarray
    sw2: np.ndarray
    samples: np.ndarray
    theta: list
    psi: list


def _gen_loss(theta, psi, mix, z, sig, eps, w, sigma_data, weighted=True):
    xg = nets._apply(theta, z, _ACT)
    xt = xg + sig[:, None] * eps
    e_t = _teacher_eps(mix, xt, sig)
    e_f = _fake_eps(lax.stop_gradient(psi), xt, sig, sigma_data)
    l1, l2 = _loss_terms(e_t, e_f, eps)
    omega = lax.stop_gradient(sig / jnp.maximum(jnp.mean(jnp.abs(e_t - eps), -1), 1e-5))
    omega = omega if weighted else jnp.ones_like(omega)
    return jnp.mean(omega * (w[0] * l2 + w[1] * l1)), (jnp.mean(l1), jnp.mean(l2))


def _check_batch(z, sigma, eps, d_z, d):
    z = as_finite_array("z", z)
    if z.ndim != 2 or z.shape[1] != d_z:
        raise ValueError(f"z must have shape (B, {d_z}), got {z.shape}")
    s = _check_sigma("sigma", sigma, z.shape[0])
    if s.ndim == 0:
        s = np.full(z.shape[0], float(s))
    e = as_finite_array("eps", eps)
    if e.shape != (z.shape[0], d):
        raise ValueError(f"eps must have shape ({z.shape[0]}, {d}), got {e.shape}")
    return z, s, e


def generator_loss(theta: nets.MlpParams, psi: nets.MlpParams, mix: dm.Mixture, z, sigma, eps,
                   w, sigma_data: float = 0.5, weighted: bool = True):
    """The generator's loss ``mean_b[ω_b (w₂ ℓ₂ + w₁ ℓ₁)]`` on one batch, the fake score frozen.

    ``x_t = g_θ(z) + σ ε``; ``ℓ₁ = ‖ε_φ* − ε_ψ‖²`` and ``ℓ₂ = ⟨ε_φ* − ε_ψ, ε_φ* − ε⟩`` at ``x_t``;
    ``ω = σ / mean_coords|ε_φ* − ε|`` (not differentiated; ``weighted=False`` sets ``ω = 1``).
    ``ψ`` is frozen (``stop_gradient``), but gradients flow through ``x_t`` into both score models.
    Differentiable in ``theta`` (the input checks touch only ``z``, ``sigma``, ``eps``, ``w``).

    Args:
        theta: generator parameters (:func:`generator_init`, or any ``nets`` MLP ``d_z → d``).
        psi: fake-score parameters (:func:`fake_init`).
        mix: the data mixture (teacher).
        z: ``(B, d_z)`` latents; sigma: > 0, scalar or ``(B,)``; eps: ``(B, d)`` noise.
        w: ``(2,)`` weights ``(w₂, w₁)``: ``(1, −λ)`` is ``L₂ − λ L₁``.
        sigma_data: the fake score's ``σ_d`` > 0. weighted: use the paper's ``ω``.

    Returns:
        ``(loss, (mean ℓ₁, mean ℓ₂))``, scalars.
    """
    dm._check_mixture(mix)
    z, s, e = _check_batch(z, sigma, eps, theta[0][0].shape[0], mix.dim)
    if psi[0][0].shape[0] != mix.dim + 1:
        raise ValueError(f"psi must take inputs of size {mix.dim + 1}, got {psi[0][0].shape[0]}")
    w = as_finite_array("w", w)
    if w.shape != (2,):
        raise ValueError(f"w must have shape (2,), got {w.shape}")
    sd = positive_scalar("sigma_data", sigma_data)
    dt = mix.means.dtype
    return _gen_loss_jit(theta, psi, mix, jnp.asarray(z, dt), jnp.asarray(s, dt),
                         jnp.asarray(e, dt), jnp.asarray(w, dt), sd, bool(weighted))


_gen_loss_jit = jax.jit(_gen_loss, static_argnames="weighted")


def _fake_loss(psi, xg, sig, eps, sigma_data):
    e_f = _fake_eps(psi, xg + sig[:, None] * eps, sig, sigma_data)
    lam = (sig**2 + sigma_data**2) / sigma_data**2
    return jnp.mean(lam * jnp.sum((e_f - eps) ** 2, -1))


def fake_loss(psi: nets.MlpParams, xg, sigma, eps, sigma_data: float = 0.5) -> jax.Array:
    """EDM's denoising loss of the fake score, ``mean_b λ_b ‖ε_ψ(x_g + σ ε, σ) − ε‖²``.

    ``λ = (σ² + σ_d²) / σ_d²``. For ``ε_ψ = E[ε | x_t]`` exactly and ``x_g ~ N(0, σ_d² I)`` its
    expectation is ``d`` at every ``σ``. Differentiable in ``psi``.

    Args:
        psi: :func:`fake_init` parameters. xg: ``(B, d)`` generated samples.
        sigma: > 0, scalar or ``(B,)``. eps: ``(B, d)``. sigma_data: ``σ_d`` > 0.

    Returns:
        a scalar.
    """
    xg = as_finite_array("xg", xg)
    if xg.ndim != 2 or xg.shape[1] + 1 != psi[0][0].shape[0]:
        raise ValueError(f"xg must have shape (B, {psi[0][0].shape[0] - 1}), got {xg.shape}")
    _, s, e = _check_batch(xg, sigma, eps, xg.shape[1], xg.shape[1])
    sd = positive_scalar("sigma_data", sigma_data)
    return jax.jit(_fake_loss)(psi, jnp.asarray(xg), jnp.asarray(s, xg.dtype),
                               jnp.asarray(e, xg.dtype), sd)


@partial(jax.jit, static_argnames=("n_ckpt", "batch", "fake_steps", "d_z", "opt"))
def _train_one(mix, theta, psi, key, w, z_eval, every, n_ckpt, batch, fake_steps, d_z,
               sigma_data, t_max, opt):
    opt_g = optax.adam(opt[0], b1=opt[2])
    opt_f = optax.adam(opt[1], b1=opt[2])
    d = mix.means.shape[1]

    def step(_, carry):
        theta, psi, st_g, st_f, k = carry
        k, *ks = jax.random.split(k, 4 + 3 * fake_steps)
        for j in range(fake_steps):  # ψ steps on the generator's current samples
            k1, k2, k3 = ks[3 + 3 * j: 6 + 3 * j]
            xg = lax.stop_gradient(nets._apply(theta, jax.random.normal(k1, (batch, d_z)), _ACT))
            sig = _fake_sigma(k2, batch, xg.dtype)
            eps = jax.random.normal(k3, xg.shape, xg.dtype)
            g = jax.grad(_fake_loss)(psi, xg, sig, eps, sigma_data)
            upd, st_f = opt_f.update(g, st_f, psi)
            psi = optax.apply_updates(psi, upd)
        z = jax.random.normal(ks[0], (batch, d_z))
        sig = _gen_sigma(ks[1], batch, t_max, z.dtype)
        eps = jax.random.normal(ks[2], (batch, d), z.dtype)
        g, _ = jax.grad(_gen_loss, has_aux=True)(theta, psi, mix, z, sig, eps, w, sigma_data)
        upd, st_g = opt_g.update(g, st_g, theta)
        return optax.apply_updates(theta, upd), psi, st_g, st_f, k

    def chunk(carry, i):
        # chunk 0 records the initial state; chunk i > 0 first runs `every` steps
        carry = lax.fori_loop(0, jnp.where(i == 0, 0, every), step, carry)
        xs = nets._apply(carry[0], z_eval, _ACT)
        return carry[:4] + (jax.random.split(carry[4])[0],), xs

    carry = (theta, psi, opt_g.init(theta), opt_f.init(psi), key)
    carry, recs = lax.scan(chunk, carry, jnp.arange(n_ckpt + 1))
    return carry[0], carry[1], recs


def train_sid(mix: dm.Mixture, key: jax.Array, weights, *, n_seeds: int = 1, n_steps: int = 2000,
              n_checkpoints: int = 10, batch: int = 256, fake_steps: int = 1, d_z: int = 4,
              width: int = 64, depth: int = 2, lr_gen: float = 1e-3, lr_fake: float = 1e-3,
              beta1: float = 0.0, t_max: float = 0.8, n_eval: int = 1024) -> SidRun:
    """Distil a one-step generator from the mixture's exact teacher, for several losses and seeds.

    Every loss in ``weights`` is trained from the same initial ``θ, ψ`` and the same random numbers
    as the others of its seed (paired comparison); seed ``s`` uses ``fold_in(key, s)``.

    Args:
        mix: the data mixture (teacher).
        key: PRNG key.
        weights: ``(L, 2)`` rows ``(w₂, w₁)``: the θ-loss is ``E[ω (w₂ L₂ + w₁ L₁)]``.
        n_seeds: seeds per loss. n_steps: generator steps (a multiple of ``n_checkpoints``).
        n_checkpoints: records after every ``n_steps / n_checkpoints`` steps (and at step 0).
        batch: batch size of both losses. fake_steps: ψ steps before each θ step.
        d_z: latent dimension. width, depth: hidden layers of both MLPs.
        lr_gen, lr_fake: Adam learning rates; beta1: Adam's β₁ of both (the paper's 0).
        t_max: range of the generator's noise levels (see the module docstring).
        n_eval: fixed latents and data samples of the sliced-W₂ record.

    Returns:
        :class:`SidRun` with ``S = L · n_seeds`` runs, loss-major (run ``l · n_seeds + s``).
    """
    dm._check_mixture(mix)
    w = as_finite_array("weights", weights)
    if w.ndim != 2 or w.shape[1] != 2 or w.shape[0] < 1:
        raise ValueError(f"weights must have shape (L, 2), got {w.shape}")
    n_seeds, n_steps = positive_int("n_seeds", n_seeds), positive_int("n_steps", n_steps)
    n_ckpt = positive_int("n_checkpoints", n_checkpoints)
    if n_steps % n_ckpt:
        raise ValueError(f"n_steps must be a multiple of n_checkpoints, got {n_steps}, {n_ckpt}")
    batch, fake_steps = positive_int("batch", batch), positive_int("fake_steps", fake_steps)
    d_z, width, depth = positive_int("d_z", d_z), positive_int("width", width), \
        positive_int("depth", depth)
    lr_gen, lr_fake = positive_scalar("lr_gen", lr_gen), positive_scalar("lr_fake", lr_fake)
    t_max = positive_scalar("t_max", t_max)
    if t_max > 1:
        raise ValueError(f"t_max must be <= 1, got {t_max}")
    beta1 = float(as_finite_array("beta1", beta1))
    if not 0 <= beta1 < 1:
        raise ValueError(f"beta1 must lie in [0, 1), got {beta1}")
    n_eval = positive_int("n_eval", n_eval, minimum=2)
    d = mix.dim
    sd = dm.data_std(mix)
    L = w.shape[0]
    k_data, k_zev, k_seeds, k_sw = jax.random.split(key, 4)
    x_data = dm._sample(mix, k_data, n_eval)
    z_eval = jax.random.normal(k_zev, (n_eval, d_z), mix.means.dtype)
    seed_keys = jnp.stack([jax.random.fold_in(k_seeds, s) for s in range(n_seeds)])
    inits = [jax.random.split(k, 3) for k in seed_keys]
    thetas = [generator_init(k[0], d_z, d, width, depth) for k in inits]
    psis = [fake_init(k[1], d, width, depth) for k in inits]
    stack = lambda trees: jax.tree_util.tree_map(lambda *a: np.stack(a), *trees)  # noqa: E731
    theta0 = stack([thetas[s] for _ in range(L) for s in range(n_seeds)])
    psi0 = stack([psis[s] for _ in range(L) for s in range(n_seeds)])
    run_keys = jnp.stack([inits[s][2] for _ in range(L) for s in range(n_seeds)])
    w_all = jnp.asarray(np.repeat(w, n_seeds, axis=0), mix.means.dtype)
    every = jnp.asarray(n_steps // n_ckpt)
    fn = jax.vmap(lambda th, ps, k, ww: _train_one(
        mix, th, ps, k, ww, z_eval, every, n_ckpt, batch, fake_steps, d_z, sd, t_max,
        (lr_gen, lr_fake, beta1)))
    theta, psi, xs = fn(theta0, psi0, run_keys, w_all)
    xs = np.asarray(xs, np.float64)
    sw = np.asarray(jax.vmap(jax.vmap(lambda a: dm._sliced_w2(a, x_data, k_sw, 256)))(
        jnp.asarray(xs)))
    steps = np.arange(n_ckpt + 1) * (n_steps // n_ckpt)
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    return SidRun(steps, f(sw), xs, theta, psi)


# ------------------------------------------------------------------------------ stored run

#: the longer run the chapter loads from ``book/diffusion/data/sid_long.npz``.
LONG_CONFIG = dict(n_seeds=4, n_steps=12000, n_checkpoints=24, batch=256, fake_steps=1, d_z=4,
                   width=64, depth=2, lr_gen=1e-3, lr_fake=1e-3, beta1=0.0, t_max=0.8,
                   n_eval=1024)
#: losses of the stored run, rows (w₂, w₁): L₁ alone, L₂ alone, SiD's L₂ − 1.2 L₁.
LONG_WEIGHTS = ((0.0, 1.0), (1.0, 0.0), (1.0, -1.2))
LONG_SEED = 10085


def ring_mixture(n_modes: int = 8, radius: float = 1.0, var: float = 0.01) -> dm.Mixture:
    """``n_modes`` isotropic Gaussians of variance ``var`` evenly spaced on a circle (2-D)."""
    n_modes = positive_int("n_modes", n_modes)
    radius, var = positive_scalar("radius", radius), positive_scalar("var", var)
    ang = 2 * np.pi * np.arange(n_modes) / n_modes
    mu = radius * np.stack([np.cos(ang), np.sin(ang)], 1)
    return dm.make_mixture(np.ones(n_modes), mu, np.full((n_modes, 2), var),
                           np.broadcast_to(np.eye(2), (n_modes, 2, 2)).copy())


def _main(argv=None) -> None:
    """``python -m sulib.sid long OUT.npz``: run :data:`LONG_CONFIG` on :func:`ring_mixture`."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m sulib.sid")
    parser.add_argument("what", choices=["long"])
    parser.add_argument("out", help="path of the .npz file to write")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    run = train_sid(ring_mixture(), jax.random.PRNGKey(LONG_SEED), np.array(LONG_WEIGHTS),
                    **LONG_CONFIG)
    command = "JAX_PLATFORMS=cpu python -m sulib.sid long " + args.out
    config = dict(LONG_CONFIG, seed=LONG_SEED, weights=LONG_WEIGHTS, mixture="ring_mixture()")
    env = (f"python {sys.version.split()[0]}, jax {jax.__version__}, numpy {np.__version__}, "
           f"backend {jax.default_backend()}")
    np.savez_compressed(args.out, steps=run.steps, sw2=run.sw2,
                        final_samples=run.samples[:, -1].astype(np.float32),
                        config=json.dumps(config), command=command, environment=env)


if __name__ == "__main__":
    _main()
