"""Rectified flow (ReFlow) on a 2-D Gaussian mixture, and its reading as a WGAN with a gradient penalty.

Convention (Su's post 9668, and Liu et al.'s Rectified Flow): ``x_0 ~ N(0, I)`` is the noise,
``x_1 ~ Σ_k w_k N(μ_k, Σ_k)`` the data, and the straight path between independent draws is

    x_t = (1 - t) x_0 + t x_1,        dx_t/dt = x_1 - x_0,        t in [0, 1].

The ReFlow objective of a velocity field ``v(x, t)`` is ``E ½‖v(x_t, t) - (x_1 - x_0)‖²`` with
``t ~ U[0, 1]``. Its minimiser is the conditional mean ``v*(x, t) = E[x_1 - x_0 | x_t = x]``, which
for a Gaussian mixture is a closed form. Per component ``k`` (``Σ_k = U_k diag(λ_k) U_kᵀ``), ``x_t``
is Gaussian with mean ``t μ_k`` and covariance ``t² Σ_k + (1 - t)² I``, and

    γ_k(x, t) ∝ w_k N(x; t μ_k, t² Σ_k + (1 - t)² I)                          (responsibilities)
    E[x_1 - x_0 | x_t = x, k] = μ_k + U_k diag(c_k) U_kᵀ (x - t μ_k),
        c_k = (t λ_k - (1 - t)) / (t² λ_k + (1 - t)²)
    v*(x, t) = Σ_k γ_k E[x_1 - x_0 | x_t = x, k],

finite on all of ``[0, 1]`` (``v*(x, 0) = E[x_1] - x``, ``v*(x, 1) = x``). The best *time-free*
field (the post drops ``t`` from ``v``) is ``v̄(x) = ∫ p_t(x) v*(x, t) dt / ∫ p_t(x) dt``, computed
here by Gauss–Legendre quadrature in ``t``.

A critic ``D: R^d → R`` is a small MLP (:mod:`sulib.nets`); the post's critic loss is
``E[½‖∇D(x_t)‖² - D(x_1) + D(x_0)]``, WGAN-GP's is ``E[D(x_0) - D(x_1) + λ (‖∇D(x̂)‖ - 1)²]``.
Training loops run as ``lax.scan`` over steps and ``optax`` Adam, from fixed seeds: the initial
weights from ``jax.random.PRNGKey(seed)``, the batches drawn up front with
``numpy.random.default_rng(seed)`` (random numbers inside a compiled loop cost seconds of compile time).

Shapes: ``B`` samples in ``d`` dimensions: ``x`` is ``(B, d)``, ``t`` a scalar or ``(B,)``.
Parameters of MLPs are lists of ``(W, b)`` pairs (:func:`sulib.nets.mlp_init`). Everything is
float64 when JAX's x64 mode is on.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar
from sulib.diffusion import Mixture
from sulib.nets import mlp_apply, mlp_init

__all__ = [
    "GAN_KINDS",
    "interpolate",
    "exact_velocity",
    "log_density_t",
    "time_free_velocity",
    "reflow_losses",
    "critic_value",
    "critic_grad",
    "critic_loss",
    "wgan_gp_critic_loss",
    "train_critic",
    "train_velocity",
    "GanRun",
    "train_gan",
    "euler_sample",
    "straightness",
]

#: The two adversarial losses :func:`train_gan` knows.
GAN_KINDS = ("reflow", "wgan-gp")

Velocity = Callable[[jax.Array, jax.Array], jax.Array]  #: (x (B, d), t (B,)) -> (B, d)


# --------------------------------------------------------------------------- checks


def _check_mixture(mix) -> Mixture:
    if not isinstance(mix, Mixture):
        raise TypeError(f"mix must be a sulib.diffusion.Mixture, got {type(mix).__name__}")
    return mix


def _check_x(name: str, x, d: int | None = None) -> np.ndarray:
    x = as_finite_array(name, x)
    if x.ndim != 2 or x.shape[1] < 1 or (d is not None and x.shape[1] != d):
        want = f"(B, {d})" if d is not None else "(B, d)"
        raise ValueError(f"{name} must have shape {want}, got {x.shape}")
    return x


def _check_t(name: str, t, batch: int) -> np.ndarray:
    t = as_finite_array(name, t)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {t.shape}")
    if np.any(t < 0) or np.any(t > 1):
        raise ValueError(f"{name} must lie in [0, 1]")
    return t


def _check_params(name: str, params) -> list:
    if not isinstance(params, (list, tuple)) or not params:
        raise TypeError(f"{name} must be a non-empty list of (W, b) pairs from mlp_init")
    return params


def _f(x) -> jax.Array:
    return jnp.asarray(x, dtype=jax.dtypes.canonicalize_dtype(np.float64))


# --------------------------------------------------------------------------- the path and v*


@jax.jit
def _interp(x0, x1, t):
    tt = jnp.reshape(t, (-1, 1))
    return (1 - tt) * x0 + tt * x1


def interpolate(x0, x1, t) -> jax.Array:
    """``x_t = (1 - t) x_0 + t x_1`` ``(B, d)`` for ``x0, x1`` ``(B, d)`` and ``t`` in [0, 1]."""
    x0 = _check_x("x0", x0)
    x1 = _check_x("x1", x1, x0.shape[1])
    if x1.shape != x0.shape:
        raise ValueError(f"x1 must have the shape of x0 {x0.shape}, got {x1.shape}")
    t = _check_t("t", t, x0.shape[0])
    return _interp(_f(x0), _f(x1), _f(t))


def _parts(mix: Mixture, x, t):
    """Log-responsibilities (with the Gaussian constant) ``(B, K)`` and per-component means ``(B, K, d)``."""
    tt = jnp.reshape(t, (-1, 1, 1))
    z = jnp.einsum("bkd,kde->bke", x[:, None, :] - tt * mix.means[None], mix.eigvecs)
    lam = mix.eigvals[None]
    var = tt**2 * lam + (1 - tt) ** 2  # (., K, d)
    logp = jnp.log(mix.weights)[None] - 0.5 * jnp.sum(jnp.log(2 * jnp.pi * var) + z**2 / var, -1)
    c = (tt * lam - (1 - tt)) / var
    mean = mix.means[None] + jnp.einsum("kde,bke->bkd", mix.eigvecs, c * z)
    return logp, mean


@jax.jit
def _vstar(mix: Mixture, x, t):
    logp, mean = _parts(mix, x, t)
    return jnp.einsum("bk,bkd->bd", jax.nn.softmax(logp, axis=-1), mean)


@jax.jit
def _logp(mix: Mixture, x, t):
    return jax.nn.logsumexp(_parts(mix, x, t)[0], axis=-1)


def exact_velocity(mix: Mixture, x, t) -> jax.Array:
    """The ReFlow-optimal velocity ``v*(x, t) = E[x_1 - x_0 | x_t = x]``, shape ``(B, d)``.

    Args:
        mix: the data distribution (of ``x_1``); the noise ``x_0`` is ``N(0, I)``.
        x: ``(B, d)`` states. t: scalar or ``(B,)`` times in [0, 1].
    """
    _check_mixture(mix)
    x = _check_x("x", x, mix.dim)
    t = _check_t("t", t, x.shape[0])
    return _vstar(mix, _f(x), _f(t))


def log_density_t(mix: Mixture, x, t) -> jax.Array:
    """``log p_t(x)`` ``(B,)`` of ``x_t = (1 - t) x_0 + t x_1``; ``t`` scalar or ``(B,)`` in [0, 1]."""
    _check_mixture(mix)
    x = _check_x("x", x, mix.dim)
    t = _check_t("t", t, x.shape[0])
    return _logp(mix, _f(x), _f(t))


def exact_velocity_fn(mix: Mixture) -> Velocity:
    """``v*`` as a traceable callable ``v(x (B, d), t (B,) or scalar) -> (B, d)``, without host checks.

    For use inside ``jax.grad``/``jax.vmap`` and as the ``velocity`` of :func:`euler_sample`,
    :func:`flow_path` and :func:`straightness` (keep one object: each new one compiles anew).
    """
    _check_mixture(mix)
    return jax.tree_util.Partial(_vstar, mix)


def log_density_t_fn(mix: Mixture) -> Callable:
    """``log p_t`` as a traceable callable ``(x (B, d), t) -> (B,)``, without host checks."""
    _check_mixture(mix)
    return jax.tree_util.Partial(_logp, mix)


__all__ += ["exact_velocity_fn", "log_density_t_fn"]


@partial(jax.jit, static_argnames="n_nodes")
def _vbar(mix: Mixture, x, n_nodes: int):
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    ts, ws = _f((nodes + 1) / 2), _f(weights / 2)

    def one(t):
        logp, mean = _parts(mix, x, t)
        return jax.nn.logsumexp(logp, -1), jnp.einsum("bk,bkd->bd", jax.nn.softmax(logp, -1), mean)

    logps, vs = jax.vmap(one)(ts)  # (n, B), (n, B, d)
    a = jax.nn.softmax(logps + jnp.log(ws)[:, None], axis=0)  # p_t(x) dt, normalised over t
    return jnp.einsum("nb,nbd->bd", a, vs)


def time_free_velocity(mix: Mixture, x, n_nodes: int = 64) -> jax.Array:
    """The best velocity that does not depend on ``t``, ``v̄(x) = ∫ p_t v* dt / ∫ p_t dt``, ``(B, d)``.

    Minimises ``E ½‖v(x_t) - (x_1 - x_0)‖²`` over all fields ``v(x)`` (pointwise: ``v̄(x)`` is the
    conditional mean of ``x_1 - x_0`` given ``x_t = x`` with ``t`` random). ``n_nodes``
    Gauss–Legendre nodes on [0, 1].
    """
    _check_mixture(mix)
    x = _check_x("x", x, mix.dim)
    n_nodes = positive_int("n_nodes", n_nodes, minimum=2)
    return _vbar(mix, _f(x), n_nodes)


def reflow_losses(v, x0, x1) -> jax.Array:
    """Per-sample ReFlow losses ``½‖v - (x_1 - x_0)‖²`` ``(B,)``; ``v = v(x_t, t)`` given ``(B, d)``."""
    x0 = _check_x("x0", x0)
    x1 = _check_x("x1", x1, x0.shape[1])
    v = _check_x("v", v, x0.shape[1])
    if not (v.shape == x0.shape == x1.shape):
        raise ValueError(f"v, x0, x1 must share one shape, got {v.shape}, {x0.shape}, {x1.shape}")
    return 0.5 * jnp.sum((_f(v) - (_f(x1) - _f(x0))) ** 2, axis=-1)


# --------------------------------------------------------------------------- critics and losses


def _D(params, x):
    return mlp_apply(params, x)[..., 0]


def _gradD(params, x):
    return jax.grad(lambda y: jnp.sum(_D(params, y)))(x)  # rows are independent


@jax.jit
def _critic_value(params, x):
    return _D(params, x)


@jax.jit
def _critic_grad(params, x):
    return _gradD(params, x)


def critic_value(params, x) -> jax.Array:
    """``D(x)`` ``(B,)`` of the MLP critic ``params`` (output width 1) at ``x`` ``(B, d)``."""
    _check_params("params", params)
    return _critic_value(params, _f(_check_x("x", x)))


def critic_grad(params, x) -> jax.Array:
    """``∇_x D(x)`` ``(B, d)`` of the MLP critic ``params`` at ``x`` ``(B, d)``."""
    _check_params("params", params)
    return _critic_grad(params, _f(_check_x("x", x)))


def _post_loss(params, x0, x1, t):
    g = _gradD(params, _interp(x0, x1, t))
    return jnp.mean(0.5 * jnp.sum(g**2, -1) - _D(params, x1) + _D(params, x0))


def _wgan_loss(params, x0, x1, u, lam):
    g = _gradD(params, _interp(x0, x1, u))
    gp = (jnp.sqrt(jnp.sum(g**2, -1) + 1e-12) - 1.0) ** 2
    return jnp.mean(_D(params, x0) - _D(params, x1) + lam * gp)


def _check_pair(x0, x1, t):
    x0 = _check_x("x0", x0)
    x1 = _check_x("x1", x1, x0.shape[1])
    if x1.shape != x0.shape:
        raise ValueError(f"x1 must have the shape of x0 {x0.shape}, got {x1.shape}")
    t = _check_t("t", t, x0.shape[0])
    return _f(x0), _f(x1), _f(t)


def critic_loss(params, x0, x1, t) -> jax.Array:
    """The post's critic loss ``mean(½‖∇D(x_t)‖² - D(x_1) + D(x_0))`` (a scalar).

    Args:
        params: MLP critic ``d → ... → 1``. x0: ``(B, d)`` noise / generated samples.
        x1: ``(B, d)`` data. t: ``(B,)`` interpolation times in [0, 1].
    """
    _check_params("params", params)
    return jax.jit(_post_loss)(params, *_check_pair(x0, x1, t))


def wgan_gp_critic_loss(params, x0, x1, u, lam: float = 10.0) -> jax.Array:
    """WGAN-GP's critic loss ``mean(D(x_0) - D(x_1) + λ (‖∇D(x̂)‖ - 1)²)``, ``x̂ = (1-u) x_0 + u x_1``.

    ``x0`` ``(B, d)`` generated, ``x1`` ``(B, d)`` data, ``u`` ``(B,)`` in [0, 1], ``lam`` > 0.
    """
    _check_params("params", params)
    lam = positive_scalar("lam", lam)
    return jax.jit(_wgan_loss)(params, *_check_pair(x0, x1, u), lam)


def draw_mixture(mix: Mixture, rng: np.random.Generator, shape) -> np.ndarray:
    """``shape + (d,)`` samples of ``mix`` from a NumPy generator (no XLA compilation).

    Same distribution as :func:`sulib.diffusion.sample_mixture`, other random numbers.
    """
    _check_mixture(mix)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    shape = (positive_int("shape", shape),) if isinstance(shape, (int, np.integer)) else tuple(
        positive_int("shape", n) for n in shape)
    return _draw_mixture(mix, rng, shape)


__all__.append("draw_mixture")


def _draw_mixture(mix: Mixture, rng: np.random.Generator, shape: tuple) -> np.ndarray:
    w, mu, lam, U = (np.asarray(a) for a in mix)
    comp = rng.choice(len(w), size=shape, p=w / w.sum())
    z = rng.standard_normal(shape + (mu.shape[1],)) * np.sqrt(lam[comp])
    return mu[comp] + np.einsum("...ij,...j->...i", U[comp], z)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _adam(lr, b1=0.5):
    return optax.adam(lr, b1=b1, b2=0.9)


@jax.jit
def _train_critic(params, x0s, x1s, ts, lr):
    opt = _adam(lr)

    def body(carry, inp):
        p, s = carry
        loss, g = jax.value_and_grad(_post_loss)(p, *inp)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (params, _), losses = lax.scan(body, (params, opt.init(params)), (x0s, x1s, ts))
    return params, losses


def train_critic(seed: int, mix: Mixture, *, hidden=(64, 64), steps: int = 1000,
                 batch: int = 256, lr: float = 3e-3):
    """Train an MLP critic on the post's loss between ``N(0, I)`` and ``mix`` (fresh batches per step).

    The batches (noise, data, times ``t ~ U[0, 1]``) are drawn up front from
    ``numpy.random.default_rng(seed)``; the initial weights from ``jax.random.PRNGKey(seed)``; the
    loop is one compiled ``lax.scan`` with Adam(β = 0.5, 0.9).

    Returns ``(params, losses)``: the critic ``d → hidden → 1`` and the loss per step ``(steps,)``.
    """
    seed = _check_seed(seed)
    _check_mixture(mix)
    steps, batch = positive_int("steps", steps), positive_int("batch", batch)
    lr = positive_scalar("lr", lr)
    sizes = (mix.dim, *[positive_int("hidden", h) for h in hidden], 1)
    params = mlp_init(jax.random.PRNGKey(seed), sizes)
    rng = np.random.default_rng(seed)
    x0s = rng.standard_normal((steps, batch, mix.dim))
    x1s = _draw_mixture(mix, rng, (steps, batch))
    ts = rng.uniform(size=(steps, batch))
    return _train_critic(params, _f(x0s), _f(x1s), _f(ts), lr)


# --------------------------------------------------------------------------- a learned v(x, t)


def _vnet(params, x, t):
    tt = jnp.broadcast_to(jnp.reshape(t, (-1, 1)), (x.shape[0], 1))
    return mlp_apply(params, jnp.concatenate([x, tt], axis=-1))


@jax.jit
def _train_velocity(params, x0s, x1s, idx, ts, lr):
    opt = _adam(lr)
    steps = idx.shape[0]
    sched = optax.cosine_decay_schedule(1.0, steps)

    def loss_fn(p, x0, x1, t):
        v = _vnet(p, _interp(x0, x1, t), t)
        return jnp.mean(0.5 * jnp.sum((v - (x1 - x0)) ** 2, -1))

    def body(carry, inp):
        p, s = carry
        i, ix, t = inp
        loss, g = jax.value_and_grad(loss_fn)(p, x0s[ix], x1s[ix], t)
        upd, s = opt.update(g, s, p)
        upd = jax.tree_util.tree_map(lambda u: u * sched(i), upd)
        return (optax.apply_updates(p, upd), s), loss

    inputs = (jnp.arange(steps), idx, ts)
    (params, _), losses = lax.scan(body, (params, opt.init(params)), inputs)
    return params, losses


def train_velocity(seed: int, x0, x1, *, hidden=(64, 64), steps: int = 3000,
                   batch: int = 256, lr: float = 3e-3):
    """Fit an MLP ``v(x, t)`` to a coupling ``(x0, x1)`` ``(N, d)`` each with the ReFlow loss.

    Minibatches of ``batch`` pairs are drawn with replacement and ``t ~ U[0, 1]``, up front from
    ``numpy.random.default_rng(seed)``; Adam with a cosine decay of the step size. Returns
    ``(params, losses)``; evaluate with :func:`velocity_net`.
    """
    seed = _check_seed(seed)
    x0 = _check_x("x0", x0)
    x1 = _check_x("x1", x1, x0.shape[1])
    if x1.shape != x0.shape:
        raise ValueError(f"x1 must have the shape of x0 {x0.shape}, got {x1.shape}")
    steps, batch = positive_int("steps", steps), positive_int("batch", batch)
    lr = positive_scalar("lr", lr)
    sizes = (x0.shape[1] + 1, *[positive_int("hidden", h) for h in hidden], x0.shape[1])
    params = mlp_init(jax.random.PRNGKey(seed), sizes, final_scale=0.1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x0.shape[0], (steps, batch))
    ts = rng.uniform(size=(steps, batch))
    return _train_velocity(params, _f(x0), _f(x1), jnp.asarray(idx), _f(ts), lr)


def velocity_net(params) -> Velocity:
    """The callable ``v(x, t)`` ``(B, d)`` of parameters from :func:`train_velocity`."""
    _check_params("params", params)
    return jax.tree_util.Partial(_vnet, params)


__all__.append("velocity_net")


# --------------------------------------------------------------------------- GAN loops


class GanRun(NamedTuple):
    """Result of :func:`train_gan`.

    Fields:
        generator: final generator parameters.
        critic: final critic parameters.
        samples: ``(n_evals + 1, n_show, d)`` generator samples on fixed noise, before training and
            after every ``eval_every`` generator steps.
        critic_losses: ``(n_evals * eval_every,)`` mean critic loss of each generator step.
    """

    generator: list
    critic: list
    samples: jax.Array
    critic_losses: jax.Array


def _gen_loss(g_p, d_p, z, kind: str, eps):
    x = mlp_apply(g_p, z)
    if kind == "reflow":  # the post's regression: move each sample by ε ∇D, one step
        target = lax.stop_gradient(x + eps * _gradD(d_p, x))
        return jnp.mean(jnp.sum((x - target) ** 2, -1))
    return -jnp.mean(_D(d_p, x))


def generator_loss(gen_params, critic_params, z, kind: str = "reflow", eps: float = 0.1):
    """The generator loss of :func:`train_gan` (a scalar), differentiable in ``gen_params``.

    ``kind="reflow"``: ``mean ‖g(z) - stop_grad(g(z) + ε ∇D(g(z)))‖²``, the post's one-step
    regression; ``kind="wgan-gp"``: ``mean(-D(g(z)))``. ``z`` is ``(B, z_dim)``.
    """
    one_of("kind", kind, GAN_KINDS)
    _check_params("gen_params", gen_params)
    _check_params("critic_params", critic_params)
    return _gen_loss(gen_params, critic_params, z, kind, eps)


__all__.append("generator_loss")


@partial(jax.jit, static_argnames="kind")
def _gan_block(carry, zc, x1c, tc, zg, z_show, kind: str, lr, b1, lam, eps):
    """``E`` generator steps; ``zc (E, n_critic, B, z)``, ``x1c (E, n_critic, B, d)``, ``tc``, ``zg``."""
    opt_g, opt_d = _adam(lr, b1), _adam(lr, b1)

    def critic_step(c, inp):
        g_p, d_p, d_s = c
        z, x1, t = inp
        x0 = lax.stop_gradient(mlp_apply(g_p, z))
        if kind == "reflow":
            loss, g = jax.value_and_grad(_post_loss)(d_p, x0, x1, t)
        else:
            loss, g = jax.value_and_grad(_wgan_loss)(d_p, x0, x1, t, lam)
        upd, d_s = opt_d.update(g, d_s, d_p)
        return (g_p, optax.apply_updates(d_p, upd), d_s), loss

    def gen_step(c, inp):
        g_p, g_s, d_p, d_s = c
        z_c, x1_c, t_c, z_g = inp
        (_, d_p, d_s), losses = lax.scan(critic_step, (g_p, d_p, d_s), (z_c, x1_c, t_c))
        g = jax.grad(_gen_loss)(g_p, d_p, z_g, kind, eps)
        upd, g_s = opt_g.update(g, g_s, g_p)
        return (optax.apply_updates(g_p, upd), g_s, d_p, d_s), jnp.mean(losses)

    carry, losses = lax.scan(gen_step, carry, (zc, x1c, tc, zg))
    return carry, losses, mlp_apply(carry[0], z_show)


def train_gan(seed: int, mix: Mixture, kind: str, *, z_dim: int = 2, hidden=(64, 64),
              n_evals: int = 10, eval_every: int = 100, n_critic: int = 5, batch: int = 256,
              lr: float = 1e-3, b1: float = 0.5, lam: float = 10.0, eps: float = 0.1,
              n_show: int = 1000) -> GanRun:
    """Alternating GAN training: ``n_critic`` critic steps per generator step, Adam(lr, β = (b1, 0.9)).

    (WGAN-GP's paper uses ``lr = 1e-4, b1 = 0``.)

    ``kind="reflow"``: the post's loop, critic loss ``½‖∇D(x_t)‖² - D(x_1) + D(x_0)`` and the
    generator regressed one step onto ``stop_grad(g + ε ∇D(g))`` (its gradient is
    ``2ε ∇_θ E[-D(g_θ(z))]``). ``kind="wgan-gp"``: Gulrajani et al.'s critic loss with penalty
    weight ``lam`` and generator loss ``E[-D(g_θ(z))]``. Generator ``z_dim → hidden → d`` and critic
    ``d → hidden → 1`` start from ``jax.random.PRNGKey(seed)``, and every batch comes from
    ``numpy.random.default_rng(seed)``, so both kinds see the same initial weights and data.

    Returns a :class:`GanRun`; ``samples`` come from ``n_show`` fixed noises.
    """
    seed = _check_seed(seed)
    _check_mixture(mix)
    one_of("kind", kind, GAN_KINDS)
    z_dim = positive_int("z_dim", z_dim)
    n_evals, eval_every = positive_int("n_evals", n_evals), positive_int("eval_every", eval_every)
    n_critic, batch = positive_int("n_critic", n_critic), positive_int("batch", batch)
    n_show = positive_int("n_show", n_show)
    lr, lam, eps = (positive_scalar(n, v) for n, v in (("lr", lr), ("lam", lam), ("eps", eps)))
    b1 = as_finite_array("b1", b1)
    if b1.ndim != 0 or not 0 <= b1 < 1:
        raise ValueError(f"b1 must be a scalar in [0, 1), got {b1}")
    b1 = float(b1)
    hidden = tuple(positive_int("hidden", h) for h in hidden)
    k_g, k_d = jax.random.split(jax.random.PRNGKey(seed))
    gen = mlp_init(k_g, (z_dim, *hidden, mix.dim))
    crit = mlp_init(k_d, (mix.dim, *hidden, 1))
    rng = np.random.default_rng(seed)
    z_show = _f(rng.standard_normal((n_show, z_dim)))
    opt = _adam(lr, b1)
    carry = (gen, opt.init(gen), crit, opt.init(crit))
    samples, losses = [mlp_apply(gen, z_show)], []
    E, C = eval_every, n_critic
    for _ in range(n_evals):  # one compiled block per evaluation; batches drawn per block
        zc = rng.standard_normal((E, C, batch, z_dim))
        x1c = _draw_mixture(mix, rng, (E, C, batch))
        tc = rng.uniform(size=(E, C, batch))
        zg = rng.standard_normal((E, batch, z_dim))
        carry, loss, show = _gan_block(carry, _f(zc), _f(x1c), _f(tc), _f(zg), z_show, kind,
                                       lr, b1, lam, eps)
        samples.append(show)
        losses.append(loss)
    return GanRun(carry[0], carry[2], jnp.stack(samples), jnp.concatenate(losses))


# --------------------------------------------------------------------------- ODE sampling


@partial(jax.jit, static_argnames=("fn", "n_steps", "method"))
def _integrate(fn, x0, n_steps: int, method: str):
    h = 1.0 / n_steps
    B = x0.shape[0]

    def body(carry, i):
        x, nfe = carry
        t = i * h * jnp.ones((B,), x.dtype)
        k1 = fn(x, t)
        if method == "euler":
            return (x + h * k1, nfe + 1), (x, k1)
        k2 = fn(x + 0.5 * h * k1, t + 0.5 * h)
        k3 = fn(x + 0.5 * h * k2, t + 0.5 * h)
        k4 = fn(x + h * k3, t + h)
        return (x + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6, nfe + 4), (x, k1)

    (x1, nfe), (xs, vs) = lax.scan(body, (x0, 0), jnp.arange(n_steps))
    return x1, nfe, xs, vs


@partial(jax.jit, static_argnames=("fn", "method"))
def _integrate_end(fn, x0, n_steps, method: str):
    """End state only; ``n_steps`` is traced, so one compilation serves every step count."""
    h = 1.0 / n_steps
    ones = jnp.ones((x0.shape[0],), x0.dtype)

    def body(i, x):
        t = i * h * ones
        k1 = fn(x, t)
        if method == "euler":
            return x + h * k1
        k2 = fn(x + 0.5 * h * k1, t + 0.5 * h)
        k3 = fn(x + 0.5 * h * k2, t + 0.5 * h)
        k4 = fn(x + h * k3, t + h)
        return x + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6

    x1 = lax.fori_loop(0, n_steps, body, x0)
    return x1, n_steps * (1 if method == "euler" else 4)


def _as_fn(velocity) -> Callable:
    if not callable(velocity):
        raise TypeError(f"velocity must be a callable v(x, t) -> (B, d), got {type(velocity).__name__}")
    return velocity


def euler_sample(velocity: Velocity, x0, n_steps: int, method: str = "euler"):
    """Integrate ``dx/dt = v(x, t)`` from ``t = 0`` to 1 in ``n_steps`` uniform steps.

    Args:
        velocity: callable ``v(x (B, d), t (B,)) -> (B, d)``, jit-traceable and hashable (a
            ``functools.partial`` of a mixture, or :func:`velocity_net`).
        x0: ``(B, d)`` starting states (noise). method: ``"euler"`` or ``"rk4"``.

    Returns:
        ``(x1, nfe)``: end states ``(B, d)`` and the number of velocity evaluations per sample,
        counted inside the compiled loop.
    """
    fn = _as_fn(velocity)
    x0 = _check_x("x0", x0)
    n_steps = positive_int("n_steps", n_steps)
    one_of("method", method, ("euler", "rk4"))
    x1, nfe = _integrate_end(fn, _f(x0), jnp.asarray(n_steps), method)
    return x1, int(nfe)


def flow_path(velocity: Velocity, x0, n_steps: int = 100) -> jax.Array:
    """States ``(n_steps + 1, B, d)`` of ``dx/dt = v(x, t)`` from ``x0`` ``(B, d)`` (RK4, uniform grid)."""
    fn = _as_fn(velocity)
    x0 = _check_x("x0", x0)
    n_steps = positive_int("n_steps", n_steps)
    x1, _, xs, _ = _integrate(fn, _f(x0), n_steps, "rk4")
    return jnp.concatenate([xs, x1[None]], axis=0)


__all__.append("flow_path")


def straightness(velocity: Velocity, x0, n_steps: int = 100):
    """Liu et al.'s straightness ``S = ∫_0^1 E‖(Z_1 - Z_0) - v(Z_t, t)‖² dt`` of a flow.

    The flow is integrated with RK4 on ``n_steps`` uniform steps from ``x0`` ``(B, d)``; the time
    integral is the trapezoid rule over the ``n_steps + 1`` grid times.
    ``S = 0`` exactly when every trajectory is a straight line at constant speed.

    Returns:
        ``(S, x1)``: the straightness (a float) and the end states ``(B, d)``.
    """
    fn = _as_fn(velocity)
    x0 = _check_x("x0", x0)
    n_steps = positive_int("n_steps", n_steps, minimum=2)
    x1, _, xs, vs = _integrate(fn, _f(x0), n_steps, "rk4")
    v_end = fn(x1, jnp.ones((x1.shape[0],), x1.dtype))
    vs = jnp.concatenate([vs, v_end[None]], axis=0)  # (N + 1, B, d) on the grid
    dev = jnp.mean(jnp.sum(((x1 - _f(x0))[None] - vs) ** 2, axis=-1), axis=-1)  # (N + 1,)
    w = jnp.full((n_steps + 1,), 1.0 / n_steps).at[0].set(0.5 / n_steps).at[-1].set(0.5 / n_steps)
    return float(jnp.sum(w * dev)), x1


# --------------------------------------------------------------------------- the stored run


def _main(argv=None) -> None:  # pragma: no cover - a CLI
    """``python -m sulib.reflow gan-long OUT.npz``: the longer GAN comparison, stored."""
    import argparse
    import json
    import platform
    import sys

    from sulib.diffusion import toy_mixture

    parser = argparse.ArgumentParser(prog="python -m sulib.reflow")
    parser.add_argument("what", choices=["gan-long"])
    parser.add_argument("out", help="path of the .npz file to write")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    cfg = dict(GAN_LONG_CONFIG)
    mix = toy_mixture(cfg.pop("mixture"), 2, seed=cfg.pop("mixture_seed"), std=cfg.pop("std"))
    seeds, arms = cfg.pop("seeds"), cfg.pop("arms")
    out = {}
    for name, (kind, lr, b1, *lam) in arms.items():  # an arm's own λ overrides cfg["lam"]
        arm_cfg = dict(cfg, lam=lam[0]) if lam else cfg
        out[name] = np.stack([np.asarray(train_gan(s, mix, kind, lr=lr, b1=b1, **arm_cfg).samples)
                              for s in seeds]).astype(np.float32)
        print(f"{name} done", file=sys.stderr, flush=True)
    np.savez_compressed(
        args.out, **out, config=json.dumps(GAN_LONG_CONFIG),
        command=" ".join(["python -m sulib.reflow", *(argv if argv is not None else sys.argv[1:])]),
        environment=f"Python {platform.python_version()}, jax {jax.__version__}, numpy {np.__version__}")


#: Configuration of the stored longer run (``python -m sulib.reflow gan-long``).
GAN_LONG_CONFIG = dict(
    mixture="separated", mixture_seed=0, std=1.0, seeds=[0, 1, 2],
    arms={"reflow": ["reflow", 1e-3, 0.5], "wgan_gp": ["wgan-gp", 1e-3, 0.5],
          "wgan_gp_paper": ["wgan-gp", 1e-4, 0.0],
          "wgan_gp_half": ["wgan-gp", 1e-3, 0.5, 0.5]},  # (kind, Adam lr, b1[, λ])
    n_evals=10, eval_every=500, n_critic=5, batch=256, lam=10.0, eps=0.1, n_show=1000)

if __name__ == "__main__":  # pragma: no cover
    _main()
