"""Projected stochastic gradient descent and its regret (Zinkevich 2003; kexue.fm/archives/9902).

Online convex optimisation on a Euclidean ball ``Θ = {θ : ‖θ‖ ≤ R}``: at step ``t`` a sample
``x_t`` arrives, the learner pays ``L(x_t, θ_t)`` and moves to

    θ_{t+1} = Π_Θ(θ_t − η_t ∇_θ L(x_t, θ_t)),

where ``Π_Θ`` is the Euclidean projection onto the ball (``radius=None`` skips it). The average
regret against a fixed comparator ``θ_c`` after ``T`` steps is
``(1/T) Σ_{t≤T} [L(x_t, θ_t) − L(x_t, θ_c)]``; for a convex loss, ``θ_c ∈ Θ``, gradients bounded by
``G`` on ``Θ`` and a non-increasing ``η_t`` it is at most ``D²/(2Tη_T) + (G²/2T) Σ_{t≤T} η_t`` with
``D`` the diameter of ``Θ`` (:func:`regret_bound`); for any positive schedule it is at most
``(D²/2T)(1/η_1 + Σ_{2≤t≤T} (1/η_t − 1/η_{t−1})₊) + (G²/2T) Σ_{t≤T} η_t``
(:func:`general_regret_bound`), which is the same number when ``η_t`` never increases.

Shapes:
    ``d`` parameters, ``T`` steps, optional leading batch axis ``B`` (e.g. random seeds).
    ``theta0`` ``(d,)`` or ``(B, d)``: the first iterate θ_1.
    ``xs``: a tuple of arrays, each ``(T, ...)`` (or ``(B, T, ...)`` with ``batched=True``);
    step ``t`` sees the tuple of their ``t``-th slices. ``etas`` ``(T,)``: η_1 … η_T.
    A loss is a JAX-traceable ``loss(x, theta) -> scalar`` of one step's slice tuple ``x`` and ``theta``
    ``(d,)``; pass a module-level function (it is a static argument of the jitted kernel).

Everything is float64 when JAX's x64 mode is on.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib._checks import as_finite_array, positive_int, positive_scalar

__all__ = [
    "SGDRun",
    "project_ball",
    "projected_sgd",
    "average_regret",
    "regret_bound",
    "general_regret_bound",
    "ball_argmin",
    "squared_loss",
    "logistic_loss",
    "linear_loss",
    "AdversaryRun",
    "adversary_game",
]

Loss = Callable[[tuple, jax.Array], jax.Array]


class SGDRun(NamedTuple):
    """What :func:`projected_sgd` records; ``(..., T)`` arrays, ``...`` = ``(B,)`` when batched."""

    losses: jax.Array  #: (..., T) L(x_t, θ_t), the loss paid at step t
    comparator_losses: jax.Array  #: (..., T) L(x_t, θ_c)
    grad_norms: jax.Array  #: (..., T) ‖∇L(x_t, θ_t)‖
    distances: jax.Array  #: (..., T) ‖θ_t − θ_c‖
    norms: jax.Array  #: (..., T) ‖θ_t‖
    final: jax.Array  #: (..., d) θ_{T+1}


# --------------------------------------------------------------------------- losses


def squared_loss(x: tuple, theta: jax.Array) -> jax.Array:
    """``½ (a·θ − y)²`` for ``x = (a, y)``, ``a`` ``(d,)``, ``y`` scalar."""
    a, y = x
    return 0.5 * (a @ theta - y) ** 2


def logistic_loss(x: tuple, theta: jax.Array) -> jax.Array:
    """``log(1 + exp(−y a·θ))`` for ``x = (a, y)``, labels ``y ∈ {−1, +1}``."""
    a, y = x
    return jnp.logaddexp(0.0, -y * (a @ theta))


def linear_loss(x: tuple, theta: jax.Array) -> jax.Array:
    """``−a·θ`` for ``x = (a,)``: convex, gradient ``−a``, unbounded below on ``R^d``."""
    (a,) = x
    return -(a @ theta)


# --------------------------------------------------------------------------- checks


def _radius(radius) -> float | None:
    return None if radius is None else positive_scalar("radius", radius)


def _point(name: str, value, d: int | None, batch: int | None) -> np.ndarray:
    p = as_finite_array(name, value, min_ndim=1)
    if p.ndim > 2 or (p.ndim == 2 and batch is None):
        raise ValueError(f"{name} must have shape (d,){' or (B, d)' if batch is not None else ''}, got {p.shape}")
    if p.ndim == 2 and p.shape[0] != batch:
        raise ValueError(f"{name} has {p.shape[0]} rows, expected B = {batch}")
    if d is not None and p.shape[-1] != d:
        raise ValueError(f"{name} must have d = {d} entries on its last axis, got shape {p.shape}")
    if p.shape[-1] < 1:
        raise ValueError(f"{name} must have d >= 1, got shape {p.shape}")
    return p


def _etas(etas) -> np.ndarray:
    e = as_finite_array("etas", etas, min_ndim=1)
    if e.ndim != 1 or e.shape[0] < 1:
        raise ValueError(f"etas must have shape (T,) with T >= 1, got {e.shape}")
    if not np.all(e > 0):
        raise ValueError("etas must be > 0 at every step")
    return e


# --------------------------------------------------------------------------- projection


@jax.jit
def _project_ball(phi, radius):
    norm = jnp.linalg.norm(phi, axis=-1, keepdims=True)
    return phi * jnp.minimum(1.0, radius / jnp.maximum(norm, jnp.finfo(phi.dtype).tiny))


def project_ball(phi, radius) -> jax.Array:
    """Euclidean projection ``Π(φ) = φ · min(1, R/‖φ‖)`` onto ``{θ : ‖θ‖ ≤ R}``.

    Args:
        phi: ``(..., d)`` points, projected along the last axis.
        radius: ``R > 0``.

    Returns:
        ``(..., d)`` the nearest points of the ball.
    """
    phi = as_finite_array("phi", phi, min_ndim=1)
    r = positive_scalar("radius", radius)
    return _project_ball(jnp.asarray(phi, float), r)


# --------------------------------------------------------------------------- projected SGD


@partial(jax.jit, static_argnames=("loss", "project"))
def _psgd(loss, project, theta0, comparator, xs, etas, radius):
    value_and_grad = jax.value_and_grad(loss, argnums=1)

    def step(theta, inputs):
        x, eta = inputs
        value, g = value_and_grad(x, theta)
        out = (value, loss(x, comparator), jnp.linalg.norm(g), jnp.linalg.norm(theta - comparator),
               jnp.linalg.norm(theta))
        new = theta - eta * g
        if project:
            new = _project_ball(new, radius)
        return new, out

    final, (losses, comp, gnorm, dist, norms) = lax.scan(step, theta0, (xs, etas))
    return SGDRun(losses, comp, gnorm, dist, norms, final)


def projected_sgd(loss: Loss, theta0, xs, etas, *, radius=None, comparator=None,
                  batched: bool = False) -> SGDRun:
    """Run (projected) SGD ``θ_{t+1} = Π(θ_t − η_t ∇L(x_t, θ_t))`` for ``T`` steps.

    Args:
        loss: ``loss(x, theta) -> scalar``, JAX-traceable (see the module docstring).
        theta0: ``(d,)`` (or ``(B, d)`` when batched) first iterate θ_1; inside the ball if ``radius``.
        xs: tuple of arrays ``(T, ...)``, or ``(B, T, ...)`` when ``batched``.
        etas: ``(T,)`` positive learning rates η_1 … η_T (shared by the batch).
        radius: radius ``R`` of the ball ``Θ``; ``None`` runs plain, unprojected SGD.
        comparator: ``(d,)`` or ``(B, d)`` fixed point θ_c whose losses are recorded (default 0).
        batched: whether ``xs`` carries a leading batch axis ``B`` (runs are vmapped over it).

    Returns:
        :class:`SGDRun` with ``(T,)`` (or ``(B, T)``) records and the final iterate.

    Raises:
        TypeError / ValueError naming the argument: non-callable loss, bad shapes, non-positive
        learning rates or radius, θ_1 outside the ball, mismatched step counts.
    """
    if not callable(loss):
        raise TypeError(f"loss must be callable, got {type(loss).__name__}")
    if not isinstance(batched, bool):
        raise TypeError(f"batched must be a bool, got {type(batched).__name__}")
    if not isinstance(xs, (tuple, list)) or not xs:
        raise TypeError("xs must be a non-empty tuple of arrays")
    xs = tuple(as_finite_array(f"xs[{k}]", x, min_ndim=2 if batched else 1) for k, x in enumerate(xs))
    etas = _etas(etas)
    T = etas.shape[0]
    lead = xs[0].shape[:2] if batched else xs[0].shape[:1]
    for k, x in enumerate(xs):
        if x.shape[: len(lead)] != lead:
            raise ValueError(f"xs[{k}] has leading shape {x.shape[:len(lead)]}, xs[0] has {lead}")
    if lead[-1] != T:
        raise ValueError(f"xs has {lead[-1]} steps but etas has T = {T}")
    batch = lead[0] if batched else None
    theta0 = _point("theta0", theta0, None, batch)
    d = theta0.shape[-1]
    comparator = np.zeros(d) if comparator is None else _point("comparator", comparator, d, batch)
    r = _radius(radius)
    if r is not None and np.max(np.linalg.norm(theta0, axis=-1)) > r * (1 + 1e-12):
        raise ValueError(f"theta0 must lie in the ball of radius {r}")
    args = [jnp.asarray(theta0, float), jnp.asarray(comparator, float), tuple(jnp.asarray(x) for x in xs)]
    kernel = partial(_psgd, loss, r is not None)
    rr = jnp.asarray(r if r is not None else 1.0, float)
    e = jnp.asarray(etas, float)
    if not batched:
        return kernel(*args, e, rr)
    axes = (0 if args[0].ndim == 2 else None, 0 if args[1].ndim == 2 else None, 0)
    return jax.vmap(kernel, in_axes=(*axes, None, None))(*args, e, rr)


# --------------------------------------------------------------------------- regret and its bound


def _steps(name: str, ts, T: int) -> np.ndarray:
    if ts is None:
        return np.arange(1, T + 1)
    ts = np.asarray(ts)
    if ts.ndim != 1 or ts.size == 0 or not np.issubdtype(ts.dtype, np.integer):
        raise TypeError(f"{name} must be a 1-D array of integers")
    if ts.min() < 1 or ts.max() > T:
        raise ValueError(f"{name} must lie in 1..{T}, got {ts.min()}..{ts.max()}")
    return ts


def average_regret(run: SGDRun, ts=None) -> jax.Array:
    """``(1/T) Σ_{t≤T} [L(x_t, θ_t) − L(x_t, θ_c)]`` for every prefix ``T`` in ``ts``.

    Args:
        run: an :class:`SGDRun` with ``(..., T_max)`` records.
        ts: ``(K,)`` integer prefix lengths in ``1..T_max`` (default: all).

    Returns:
        ``(..., K)`` average regrets.
    """
    if not isinstance(run, SGDRun):
        raise TypeError(f"run must be an SGDRun, got {type(run).__name__}")
    ts = _steps("ts", ts, run.losses.shape[-1])
    cum = jnp.cumsum(run.losses - run.comparator_losses, axis=-1)
    return cum[..., ts - 1] / ts


def regret_bound(etas, D, G, ts=None) -> np.ndarray:
    """The post's bound ``D²/(2Tη_T) + (G²/2T) Σ_{t≤T} η_t`` for every prefix ``T`` in ``ts``.

    Valid for non-increasing ``etas`` only (the telescoping step needs it). For other schedules it
    is still computed as written, and it can be violated: a warm-up, or a step that alternates
    between two values, makes the regret exceed it. Use :func:`general_regret_bound` for those.

    Args:
        etas: ``(T_max,)`` positive learning rates.
        D: diameter of Θ (``2R`` for a ball), ``> 0``.
        G: bound on ``‖∇L‖`` over Θ and all samples, ``> 0``.
        ts: ``(K,)`` integer prefix lengths (default: all).

    Returns:
        ``(K,)`` float64 bounds.
    """
    etas = _etas(etas)
    D, G = positive_scalar("D", D), positive_scalar("G", G)
    ts = _steps("ts", ts, etas.shape[0])
    cum = np.cumsum(etas)[ts - 1]
    return D ** 2 / (2 * ts * etas[ts - 1]) + G ** 2 * cum / (2 * ts)


def general_regret_bound(etas, D, G, ts=None) -> np.ndarray:
    """The bound for any positive schedule, for every prefix ``T`` in ``ts``:

    ``(D²/2T) (1/η_1 + Σ_{t=2}^{T} max(0, 1/η_t − 1/η_{t−1})) + (G²/2T) Σ_{t≤T} η_t``.

    Only the steps where ``1/η_t`` grows (the step size shrinks) enter the first term, so for a
    non-increasing schedule the sum telescopes to ``1/η_T`` and this equals :func:`regret_bound`;
    for a non-decreasing one (a warm-up) the first term is ``D²/(2Tη_1)``.

    Args:
        etas: ``(T_max,)`` positive learning rates.
        D: diameter of Θ (``2R`` for a ball), ``> 0``.
        G: bound on ``‖∇L‖`` over Θ and all samples, ``> 0``.
        ts: ``(K,)`` integer prefix lengths (default: all).

    Returns:
        ``(K,)`` float64 bounds.
    """
    etas = _etas(etas)
    D, G = positive_scalar("D", D), positive_scalar("G", G)
    ts = _steps("ts", ts, etas.shape[0])
    inverse = 1.0 / etas
    growth = np.concatenate([[inverse[0]], np.maximum(0.0, np.diff(inverse))])
    first = np.cumsum(growth)[ts - 1]
    cum = np.cumsum(etas)[ts - 1]
    return D ** 2 * first / (2 * ts) + G ** 2 * cum / (2 * ts)


# --------------------------------------------------------------------------- adaptive adversary


class AdversaryRun(NamedTuple):
    """What :func:`adversary_game` records; ``(..., T)`` arrays, ``...`` = ``(K,)`` for ``K`` switches."""

    thetas: jax.Array  #: (..., T) θ_t, the point the learner holds at step t
    grads: jax.Array  #: (..., T) g_t ∈ {−1, +1}, the slope the adversary plays
    regret: jax.Array  #: (..., T) average regret of every prefix vs the best fixed point of [−R, R]


@jax.jit
def _adversary(etas, theta1, switch, radius):
    def step(state, inputs):
        theta, pushed = state
        t, eta = inputs
        sign = jnp.where(theta >= 0, 1.0, -1.0)
        pushing = (~pushed) & (theta < radius)
        at_edge = jnp.where(theta >= radius * (1 - 1e-12), 1.0, -1.0)
        late = jnp.where(pushing, -1.0, at_edge)
        g = jnp.where(t < switch, sign, late)
        pushed = pushed | ((t >= switch) & ~pushing)
        new = jnp.clip(theta - eta * g, -radius, radius)
        return (new, pushed), (theta, g)

    steps = jnp.arange(etas.shape[0])
    _, (thetas, grads) = lax.scan(step, (theta1, jnp.zeros((), bool)), (steps, etas))
    # best fixed point in hindsight: −R sign(Σ g), paying −R |Σ g|
    prefix = jnp.cumsum(grads * thetas) + radius * jnp.abs(jnp.cumsum(grads))
    return AdversaryRun(thetas, grads, prefix / (steps + 1))


def adversary_game(etas, theta1=0.0, *, switch=None, radius=1.0) -> AdversaryRun:
    """Projected SGD on ``[−R, R]`` against an adaptive adversary playing ``L_t(θ) = g_t θ``.

    For ``t < switch`` (steps counted from 0) the adversary plays ``g_t = sign(θ_t)`` (``+1`` at 0),
    so the learner pays ``R``-independent ``|θ_t|`` per step. From ``switch`` on it plays ``−1``
    ("push") until θ reaches ``+R``, then ``+1`` whenever ``θ_t = R`` and ``−1`` otherwise, which
    keeps θ at the edge and ``Σ g`` near its value at the end of the push. ``switch=None`` (or any
    ``switch >= T``) is the pure sign adversary; ``switch=0`` is the two-phase adversary.
    The learner steps ``θ_{t+1} = clip(θ_t − η_t g_t, −R, R)``; ``D = 2R``, ``G = 1``.

    Args:
        etas: ``(T,)`` positive learning rates η_1 … η_T.
        theta1: first iterate θ_1 in ``[−R, R]``.
        switch: ``None``, an integer ``>= 0``, or ``(K,)`` integers (one game per entry, vmapped).
        radius: ``R > 0``.

    Returns:
        :class:`AdversaryRun` with ``(T,)`` records, or ``(K, T)`` for an array of switches.

    Raises:
        TypeError / ValueError naming the argument: bad shapes, non-positive learning rates or
        radius, θ_1 outside ``[−R, R]``, negative or non-integer switches.
    """
    etas = _etas(etas)
    r = positive_scalar("radius", radius)
    th = as_finite_array("theta1", theta1)
    if th.ndim != 0:
        raise ValueError(f"theta1 must be a scalar, got shape {th.shape}")
    if abs(float(th)) > r * (1 + 1e-12):
        raise ValueError(f"theta1 must lie in [-{r}, {r}], got {float(th)}")
    T = etas.shape[0]
    sw = np.asarray(T if switch is None else switch)
    if not np.issubdtype(sw.dtype, np.integer) or sw.ndim > 1:
        raise TypeError("switch must be None, an integer or a 1-D array of integers")
    if np.any(sw < 0):
        raise ValueError(f"switch must be >= 0, got {sw.min()}")
    args = (jnp.asarray(etas, float), jnp.asarray(float(th)))
    rr = jnp.asarray(r, float)
    if sw.ndim == 0:
        return _adversary(*args, jnp.asarray(sw), rr)
    return jax.vmap(_adversary, in_axes=(None, None, 0, None))(*args, jnp.asarray(sw), rr)


# --------------------------------------------------------------------------- comparator in hindsight


@partial(jax.jit, static_argnames=("f", "steps"))
def _fista(f, theta0, radius, smoothness, data, steps):
    grad = jax.grad(f)
    step = 1.0 / smoothness

    def body(_, state):
        theta, z, k = state
        new = _project_ball(z - step * grad(z, data), radius)
        momentum = (k - 1.0) / (k + 2.0)
        return new, new + momentum * (new - theta), k + 1.0

    theta, _, _ = lax.fori_loop(0, steps, body, (theta0, theta0, jnp.ones((), theta0.dtype)))
    mapped = _project_ball(theta - step * grad(theta, data), radius)
    return theta, jnp.linalg.norm(mapped - theta) * smoothness


def ball_argmin(f, theta0, radius, smoothness, data=(), *, steps: int = 2000) -> tuple[jax.Array, jax.Array]:
    """Minimise a smooth convex ``f(theta, data)`` over the ball by accelerated projected gradient (FISTA).

    Args:
        f: ``f(theta, data) -> scalar``, JAX-traceable, convex and ``smoothness``-smooth in ``theta``.
        theta0: ``(d,)`` start inside the ball.
        radius: ``R > 0``.
        smoothness: Lipschitz constant of ``∇f`` (step ``1/smoothness``), ``> 0``.
        data: pytree of arrays passed to ``f`` (lets one compiled kernel serve many data sets).
        steps: number of iterations.

    Returns:
        ``(theta, residual)``: the minimiser ``(d,)`` and the norm of the gradient mapping
        ``‖Π(θ − ∇f/β) − θ‖·β`` (zero exactly at the constrained minimiser).
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    theta0 = _point("theta0", theta0, None, None)
    r, beta = positive_scalar("radius", radius), positive_scalar("smoothness", smoothness)
    steps = positive_int("steps", steps)
    data = jax.tree_util.tree_map(jnp.asarray, data)
    return _fista(f, jnp.asarray(theta0, float), jnp.asarray(r), jnp.asarray(beta), data, steps)
