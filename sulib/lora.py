"""LoRA initialisations and the one-step alignment objective of LoRA-GA (post 10226).

Notation of the post: a weight ``W ∈ R^{n×m}`` is fine-tuned as ``W = (W0 − s A0 B0) + s A B`` with
``A ∈ R^{n×r}``, ``B ∈ R^{r×m}`` and a LoRA multiplier ``s``, so that ``W = W0`` at the start. One SGD
step with gradient ``G = ∂L/∂W`` moves ``W`` by ``−η s² (A Aᵀ G + G Bᵀ B) + O(η²)``, while full
fine-tuning moves it by ``−η G``. LoRA-GA picks ``A0, B0`` that minimise the gap

    ‖A Aᵀ G + G Bᵀ B − G‖_F²                            (:func:`one_step_objective`)

whose floor is the Eckart–Young error ``Σ_{i>2r} σ_i²`` (:func:`eckart_young_floor`). This module
computes

* the initialisations :func:`lora_ga_init` (SVD of ``G``: ``A = U[:, :r]``, ``B = Vᵀ[r:2r]``, or the
  swapped assignment of the reference code), :func:`pissa_init` (SVD of ``W0``) and
  :func:`lora_init` (``A = 0``, ``B`` Gaussian);
* :func:`sign_objective`, the post's objective for Adam, whose first step is ``−η sign(g)``:
  ``‖A sign(Aᵀ G) + sign(G Bᵀ) B − sign(G)‖_F²``, and :func:`minimize_objective`, which minimises
  either objective over ``A, B`` by Adam (the sign through a ``tanh(x/τ)`` surrogate);
* :func:`first_step`: the exact weight change ``ΔW`` of the first SGD or Adam step, of full
  fine-tuning or of LoRA from given factors (the quantity both objectives approximate);
* :func:`train_lora` and :func:`train_full`: a linear-regression fine-tuning toy with loss
  ``½ tr((W − W*)ᵀ Σ (W − W*))``, full batch, SGD or Adam (optax), returning the loss curve and,
  for LoRA, the cosine between each step's ``ΔW`` and the full fine-tuning direction ``−G``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar

__all__ = ["ASSIGNMENTS", "OPTIMIZERS", "TrainResult", "eckart_young_floor", "first_step",
           "lora_ga_init", "lora_init", "minimize_objective", "one_step_objective", "pissa_init",
           "sign_objective", "train_full", "train_lora"]

#: Which singular vectors go to which factor: "post" gives A the first r left vectors and B the
#: right vectors r…2r (the reference code's "A2rBr"); "swapped" (its default "ArB2r") does the
#: opposite. The reference code (github.com/Outsider565/LoRA-GA, ``LoraLayer.lora_ga_init`` in
#: ``peft/src/peft/tuners/lora/layer.py``) writes ``W0 + B A`` with ``B (n, r)``, so its ``B`` is our
#: ``A`` and the letters in its option names refer to its own factors.
ASSIGNMENTS = ("post", "swapped")
#: Optimisers of the toy fine-tuning runs.
OPTIMIZERS = ("sgd", "adam")


def _matrix(name: str, value: ArrayLike) -> np.ndarray:
    array = as_finite_array(name, value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a matrix (2 dimensions), got shape {array.shape}")
    return array


def _factors(A: ArrayLike, B: ArrayLike, G: ArrayLike):
    A, B, G = _matrix("A", A), _matrix("B", B), _matrix("G", G)
    n, m = G.shape
    if A.shape[0] != n:
        raise ValueError(f"A must have {n} rows (G is {n}×{m}), got shape {A.shape}")
    if B.shape[1] != m:
        raise ValueError(f"B must have {m} columns (G is {n}×{m}), got shape {B.shape}")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A is {A.shape} and B is {B.shape}: their inner dimensions differ")
    return A, B, G


def _key(name: str, key: jax.Array) -> jax.Array:
    """A JAX PRNG key (raw ``uint32 (2,)`` or typed), or an error naming ``name``."""
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    array = np.asarray(key)
    if array.shape != (2,) or array.dtype != np.uint32:
        raise TypeError(f"{name} must be a JAX PRNG key (jax.random.PRNGKey or jax.random.key), "
                        f"got {type(key).__name__} of shape {array.shape}")
    return key


@jax.jit
def _one_step(A, B, G):
    return jnp.sum((A @ A.T @ G + G @ B.T @ B - G) ** 2)


def one_step_objective(A: ArrayLike, B: ArrayLike, G: ArrayLike) -> float:
    """``‖A Aᵀ G + G Bᵀ B − G‖_F²`` for ``A (n, r)``, ``B (r, m)``, ``G (n, m)``."""
    return float(_one_step(*_factors(A, B, G)))


@jax.jit
def _sign_obj(A, B, G):
    return jnp.sum((A @ jnp.sign(A.T @ G) + jnp.sign(G @ B.T) @ B - jnp.sign(G)) ** 2)


def sign_objective(A: ArrayLike, B: ArrayLike, G: ArrayLike) -> float:
    """The post's Adam objective ``‖A sign(Aᵀ G) + sign(G Bᵀ) B − sign(G)‖_F²`` (shapes as above)."""
    return float(_sign_obj(*_factors(A, B, G)))


def eckart_young_floor(G: ArrayLike, k: int) -> float:
    """``Σ_{i>k} σ_i(G)²``: the least squared Frobenius error of a rank-``k`` approximation of ``G``."""
    G = _matrix("G", G)
    k = positive_int("k", k)
    if k > min(G.shape):
        raise ValueError(f"k must be <= min(G.shape) = {min(G.shape)}, got {k}")
    s = np.linalg.svd(G, compute_uv=False)
    return float(np.sum(s[k:] ** 2))


@partial(jax.jit, static_argnames=("rank", "swapped"))
def _ga(G, scale, *, rank: int, swapped: bool):
    U, _, Vt = jnp.linalg.svd(G, full_matrices=False)
    first, second = slice(0, rank), slice(rank, 2 * rank)
    left, right = (second, first) if swapped else (first, second)
    return scale * U[:, left], scale * Vt[right, :]


def lora_ga_init(G: ArrayLike, rank: int, *, assignment: str = "post",
                 scale: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """LoRA-GA's ``(A0 (n, r), B0 (r, m))`` from the SVD ``G = U Σ Vᵀ`` of the gradient ``G (n, m)``.

    ``assignment="post"``: ``A0 = c U[:, :r]``, ``B0 = c Vᵀ[r:2r]``; ``"swapped"``:
    ``A0 = c U[:, r:2r]``, ``B0 = c Vᵀ[:r]``; ``c = scale``. Needs ``2 r <= min(n, m)``.
    """
    G = _matrix("G", G)
    rank = positive_int("rank", rank)
    if 2 * rank > min(G.shape):
        raise ValueError(f"rank must satisfy 2·rank <= min(G.shape) = {min(G.shape)}, got {rank}")
    one_of("assignment", assignment, ASSIGNMENTS)
    scale = positive_scalar("scale", scale)
    return _ga(jnp.asarray(G), scale, rank=rank, swapped=assignment == "swapped")


@partial(jax.jit, static_argnames=("rank",))
def _pissa(W0, *, rank: int):
    U, s, Vt = jnp.linalg.svd(W0, full_matrices=False)
    root = jnp.sqrt(s[:rank])
    return U[:, :rank] * root, root[:, None] * Vt[:rank]


def pissa_init(W0: ArrayLike, rank: int) -> tuple[jax.Array, jax.Array]:
    """PiSSA's ``(A0 (n, r), B0 (r, m))`` = ``(U_r √Σ_r, √Σ_r V_rᵀ)`` from the SVD of ``W0 (n, m)``."""
    W0 = _matrix("W0", W0)
    rank = positive_int("rank", rank)
    if rank > min(W0.shape):
        raise ValueError(f"rank must be <= min(W0.shape) = {min(W0.shape)}, got {rank}")
    return _pissa(jnp.asarray(W0), rank=rank)


def lora_init(key: jax.Array, n: int, m: int, rank: int, *,
              std: float | None = None) -> tuple[jax.Array, jax.Array]:
    """Plain LoRA: ``A0 = 0 (n, r)`` and ``B0 (r, m)`` i.i.d. ``N(0, std²)``, ``std = 1/√m`` by default."""
    key = _key("key", key)
    n, m, rank = positive_int("n", n), positive_int("m", m), positive_int("rank", rank)
    std = 1.0 / np.sqrt(m) if std is None else positive_scalar("std", std)
    return jnp.zeros((n, rank)), std * jax.random.normal(key, (rank, m))


@partial(jax.jit, static_argnames=("rank", "objective", "steps"))
def _minimize(key, G, lr, tau, *, rank: int, objective: str, steps: int):
    n, m = G.shape
    ka, kb = jax.random.split(key)
    params = (jax.random.normal(ka, (n, rank)) / jnp.sqrt(n),
              jax.random.normal(kb, (rank, m)) / jnp.sqrt(m))
    if objective == "sgd":
        def loss(p):
            return _one_step(p[0], p[1], G)
    else:
        target = jnp.sign(G)

        def soft(x):  # tanh(x/τ) with τ relative to the entries' RMS
            return jnp.tanh(x / (tau * jnp.sqrt(jnp.mean(x ** 2)) + 1e-30))

        def loss(p):
            A, B = p
            return jnp.sum((A @ soft(A.T @ G) + soft(G @ B.T) @ B - target) ** 2)
    opt = optax.adam(lr)

    def step(carry, _):
        p, state = carry
        g = jax.grad(loss)(p)
        upd, state = opt.update(g, state, p)
        return (optax.apply_updates(p, upd), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


def minimize_objective(key: jax.Array, G: ArrayLike, rank: int, *, objective: str = "sgd",
                       steps: int = 500, lr: float = 0.02,
                       tau: float = 0.1) -> tuple[jax.Array, jax.Array]:
    """Minimise the one-step objective over ``A (n, r)``, ``B (r, m)`` by Adam from a random start.

    ``objective="sgd"``: :func:`one_step_objective`; ``"sign"``: :func:`sign_objective` with
    ``sign(x)`` replaced by ``tanh(x / (τ · rms(x)))`` (the sign has zero gradient almost everywhere).
    Returns ``(A, B)``; evaluate the exact objective on them.
    """
    key = _key("key", key)
    G = _matrix("G", G)
    rank = positive_int("rank", rank)
    if rank > min(G.shape):
        raise ValueError(f"rank must be <= min(G.shape) = {min(G.shape)}, got {rank}")
    one_of("objective", objective, ("sgd", "sign"))
    steps = positive_int("steps", steps)
    lr, tau = positive_scalar("lr", lr), positive_scalar("tau", tau)
    return _minimize(key, jnp.asarray(G), lr, tau, rank=rank, objective=objective, steps=steps)


@partial(jax.jit, static_argnames=("optimizer",))
def _first_full(G, lr, *, optimizer: str):
    opt = _make_opt(optimizer, lr)
    W = jnp.zeros_like(G)
    upd, _ = opt.update(G, opt.init(W), W)
    return upd


@partial(jax.jit, static_argnames=("optimizer",))
def _first_lora(A0, B0, G, s, lr, *, optimizer: str):
    opt = _make_opt(optimizer, lr)
    p = (A0, B0)
    grads = (s * G @ B0.T, s * A0.T @ G)            # ∂L/∂A, ∂L/∂B by the chain rule
    upd, _ = opt.update(grads, opt.init(p), p)
    A1, B1 = optax.apply_updates(p, upd)
    return s * (A1 @ B1 - A0 @ B0)


def first_step(G: ArrayLike, lr: float, *, A0: ArrayLike | None = None,
               B0: ArrayLike | None = None, optimizer: str = "adam", s: float = 1.0) -> jax.Array:
    """The weight change ``ΔW (n, m)`` of the first optimiser step, given ``G = ∂L/∂W (n, m)``.

    Without factors: full fine-tuning, ``ΔW = −lr G`` (SGD) or ``−lr G/(|G| + ε)`` (Adam, optax's
    ``ε = 1e-8``). With ``A0 (n, r)``, ``B0 (r, m)``: LoRA with ``W = (W0 − s A0 B0) + s A B``, whose
    factor gradients are ``s G B0ᵀ`` and ``s A0ᵀ G``; ``ΔW = s (A1 B1 − A0 B0)`` exactly (the
    ``lr²`` term included), from fresh optimiser state as at step one of :func:`train_lora`.
    """
    G = _matrix("G", G)
    lr, s = positive_scalar("lr", lr), positive_scalar("s", s)
    one_of("optimizer", optimizer, OPTIMIZERS)
    if (A0 is None) != (B0 is None):
        raise ValueError("A0 and B0 must be given together (or neither, for full fine-tuning)")
    if A0 is None:
        return _first_full(jnp.asarray(G), lr, optimizer=optimizer)
    A0, B0, G = _factors(A0, B0, G)
    return _first_lora(A0, B0, G, s, lr, optimizer=optimizer)


class TrainResult(NamedTuple):
    """Curves of one toy run: ``loss`` shape ``(steps + 1,)``, ``cosine`` shape ``(steps,)``."""

    loss: jax.Array
    cosine: jax.Array


def _quad_loss(W, W_star, Sigma):
    D = W - W_star
    return 0.5 * jnp.sum(D * (Sigma @ D))


def _make_opt(optimizer: str, lr):
    return optax.sgd(lr) if optimizer == "sgd" else optax.adam(lr)


@partial(jax.jit, static_argnames=("optimizer", "steps"))
def _train_lora(W0, W_star, Sigma, A0, B0, s, lr, *, optimizer: str, steps: int):
    if lr.ndim == 1:  # a grid of rates: one run each
        return jax.vmap(lambda rate: _lora_run(W0, W_star, Sigma, A0, B0, s, rate,
                                               optimizer=optimizer, steps=steps))(lr)
    return _lora_run(W0, W_star, Sigma, A0, B0, s, lr, optimizer=optimizer, steps=steps)


def _lora_run(W0, W_star, Sigma, A0, B0, s, lr, *, optimizer: str, steps: int):
    W_fixed = W0 - s * A0 @ B0
    opt = _make_opt(optimizer, lr)

    def weight(p):
        return W_fixed + s * p[0] @ p[1]

    def step(carry, _):
        p, state = carry
        W = weight(p)
        G = Sigma @ (W - W_star)                      # ∂L/∂W at the current weight
        g = jax.grad(lambda q: _quad_loss(weight(q), W_star, Sigma))(p)
        upd, state = opt.update(g, state, p)
        p = optax.apply_updates(p, upd)
        dW = weight(p) - W
        cos = -jnp.sum(dW * G) / (jnp.linalg.norm(dW) * jnp.linalg.norm(G) + 1e-300)
        return (p, state), (_quad_loss(W, W_star, Sigma), cos)

    params = (A0, B0)
    (params, _), (loss, cos) = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    final = _quad_loss(weight(params), W_star, Sigma)
    return jnp.append(loss, final), cos


@partial(jax.jit, static_argnames=("optimizer", "steps"))
def _train_full(W0, W_star, Sigma, lr, *, optimizer: str, steps: int):
    if lr.ndim == 1:
        return jax.vmap(lambda rate: _full_run(W0, W_star, Sigma, rate, optimizer=optimizer,
                                               steps=steps))(lr)
    return _full_run(W0, W_star, Sigma, lr, optimizer=optimizer, steps=steps)


def _full_run(W0, W_star, Sigma, lr, *, optimizer: str, steps: int):
    opt = _make_opt(optimizer, lr)

    def step(carry, _):
        W, state = carry
        g = Sigma @ (W - W_star)
        upd, state = opt.update(g, state, W)
        return (optax.apply_updates(W, upd), state), _quad_loss(W, W_star, Sigma)

    (W, _), loss = jax.lax.scan(step, (W0, opt.init(W0)), None, length=steps)
    return jnp.append(loss, _quad_loss(W, W_star, Sigma))


def _toy(W0: ArrayLike, W_star: ArrayLike, Sigma: ArrayLike):
    W0, W_star, Sigma = _matrix("W0", W0), _matrix("W_star", W_star), _matrix("Sigma", Sigma)
    if W_star.shape != W0.shape:
        raise ValueError(f"W_star must have the shape of W0 {W0.shape}, got {W_star.shape}")
    n = W0.shape[0]
    if Sigma.shape != (n, n):
        raise ValueError(f"Sigma must be ({n}, {n}), got {Sigma.shape}")
    scale = float(np.abs(Sigma).max()) or 1.0
    if np.abs(Sigma - Sigma.T).max() > 1e-10 * scale:   # far above the rounding of Q Λ Qᵀ
        raise ValueError("Sigma must be symmetric (an input covariance), "
                         f"got max |Sigma − Sigmaᵀ| = {np.abs(Sigma - Sigma.T).max():.2e}")
    low = float(np.linalg.eigvalsh(Sigma).min())
    if low < -1e-10 * scale:
        raise ValueError(f"Sigma must be positive semi-definite, got an eigenvalue {low:.2e}")
    return W0, W_star, Sigma


def _rates(lr: ArrayLike) -> jnp.ndarray:
    """``lr`` as a positive scalar or a 1-D grid of positive rates."""
    lr = as_finite_array("lr", lr)
    if lr.ndim > 1 or lr.size == 0:
        raise ValueError(f"lr must be a scalar or a non-empty 1-D array, got shape {lr.shape}")
    if np.any(lr <= 0):
        raise ValueError("lr must be > 0")
    return jnp.asarray(lr, dtype=float)


def train_lora(W0: ArrayLike, W_star: ArrayLike, Sigma: ArrayLike, A0: ArrayLike,
               B0: ArrayLike, *, lr: ArrayLike, steps: int, optimizer: str = "sgd",
               s: float = 1.0) -> TrainResult:
    """LoRA on the toy ``L(W) = ½ tr((W − W*)ᵀ Σ (W − W*))`` with ``W = (W0 − s A0 B0) + s A B``.

    Shapes: ``W0, W_star (n, m)``, ``Sigma (n, n)`` (symmetric PSD, checked), ``A0 (n, r)``,
    ``B0 (r, m)``. ``cosine[t]`` is the cosine between ``W_{t+1} − W_t`` and ``−∂L/∂W(W_t)``, the
    full fine-tuning SGD step from the same weight. ``lr`` may be a 1-D grid ``(k,)``: every output then gains a
    leading axis of length ``k`` (one run per rate, vectorised).
    """
    W0, W_star, Sigma = _toy(W0, W_star, Sigma)
    A0, B0, _ = _factors(A0, B0, W0)
    lr, s = _rates(lr), positive_scalar("s", s)
    steps = positive_int("steps", steps)
    one_of("optimizer", optimizer, OPTIMIZERS)
    return TrainResult(*_train_lora(W0, W_star, Sigma, A0, B0, s, lr, optimizer=optimizer,
                                    steps=steps))


def train_full(W0: ArrayLike, W_star: ArrayLike, Sigma: ArrayLike, *, lr: ArrayLike, steps: int,
               optimizer: str = "sgd") -> jax.Array:
    """Full fine-tuning on the same toy; the loss curve ``(steps + 1,)`` (``(k, steps + 1)`` for a grid)."""
    W0, W_star, Sigma = _toy(W0, W_star, Sigma)
    lr, steps = _rates(lr), positive_int("steps", steps)
    one_of("optimizer", optimizer, OPTIMIZERS)
    return _train_full(W0, W_star, Sigma, lr, optimizer=optimizer, steps=steps)
