"""Local (per-block) versus global cosine similarity, and update/gradient cosines in training.

Cut ``x, y`` in R^n into blocks ``x_b, y_b`` (a model's parameters by layer). With
``a_b = |x_b|``, ``c_b = |y_b|`` and the block cosines ``cos_b = cos(x_b, y_b)``,

    cos(x, y) = sum_b w_b cos_b,    w_b = a_b c_b / (|a| |c|),    sum_b w_b = cos(a, c),

so the global cosine is a sub-convex combination of the block cosines whose total weight is
the cosine of the two vectors of block norms. Hence ``cos(x, y) <= cos(a, c) max_b cos_b``,
which is at most ``max_b cos_b`` when that maximum is >= 0 and can exceed it when every block
cosine is negative. This module computes the decomposition (:func:`block_cosines`,
:func:`tree_block_cosines`), the two-block family whose global cosine tends to 0 while both
block cosines stay at ``lam`` (:func:`two_block_family`), Pearson's r as the cosine of centred
data split into within-group and between-group parts (:func:`pearson_split`), and the
per-block and global cosine between an optimizer's update and the gradient along a short
optax run of a small MLP (:func:`update_gradient_trace`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._checks import as_finite_array, one_of, positive_int, positive_scalar
from .nets import mlp_apply, mlp_init

__all__ = ["BlockCosines", "cosine", "block_cosines", "tree_block_cosines", "two_block_family",
           "PearsonSplit", "pearson_split", "UpdateTrace", "update_gradient_trace", "OPTIMIZERS"]

OPTIMIZERS = ("adam", "lion", "sgd")


class BlockCosines(NamedTuple):
    """The block decomposition of one cosine; arrays of shape ``(B,)`` for B blocks."""

    block: jax.Array  #: cos(x_b, y_b), shape (B,)
    weight: jax.Array  #: w_b = |x_b| |y_b| / (|x| |y|), shape (B,)
    norm_cosine: jax.Array  #: cos(a, c) of the block-norm vectors = sum_b w_b, shape ()
    total: jax.Array  #: cos(x, y) computed directly from the full vectors, shape ()


def _pair(x, y, *, min_ndim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    x = as_finite_array("x", x, min_ndim=min_ndim)
    y = as_finite_array("y", y, min_ndim=min_ndim)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    return x, y


@jax.jit
def _cosine(x, y):
    return jnp.vdot(x, y) / (jnp.linalg.norm(x) * jnp.linalg.norm(y))


def cosine(x, y) -> jax.Array:
    """cos(x, y) = <x, y> / (|x| |y|) of two arrays of the same shape (flattened); shape ().

    Raises:
        ValueError: on different shapes, non-finite entries or a zero vector.
    """
    x, y = _pair(x, y)
    for name, v in (("x", x), ("y", y)):
        if not np.any(v):
            raise ValueError(f"{name} is the zero vector; its cosine is undefined")
    return _cosine(jnp.asarray(x, float).ravel(), jnp.asarray(y, float).ravel())


@partial(jax.jit, static_argnames="sizes")
def _block_kernel(x, y, sizes: tuple[int, ...]) -> BlockCosines:
    ids = jnp.asarray(np.repeat(np.arange(len(sizes)), sizes))
    seg = partial(jax.ops.segment_sum, segment_ids=ids, num_segments=len(sizes))
    xy, a, c = seg(x * y), jnp.sqrt(seg(x * x)), jnp.sqrt(seg(y * y))
    nx, ny = jnp.linalg.norm(x), jnp.linalg.norm(y)
    return BlockCosines(xy / (a * c), a * c / (nx * ny),
                        jnp.dot(a, c) / (jnp.linalg.norm(a) * jnp.linalg.norm(c)),
                        jnp.dot(x, y) / (nx * ny))


def block_cosines(x, y, sizes) -> BlockCosines:
    """Block cosines, their weights, cos of the block-norm vectors and the global cosine.

    Args:
        x, y: vectors of shape ``(n,)``.
        sizes: block lengths, positive ints summing to ``n``; block b is the slice
            ``x[s_b : s_b + sizes[b]]`` with ``s_b = sum(sizes[:b])``.

    Returns:
        :class:`BlockCosines` with ``block`` and ``weight`` of shape ``(len(sizes),)``;
        ``total`` equals ``sum(weight * block)`` up to rounding.

    Raises:
        ValueError: on shapes that differ or are not 1-D, sizes that do not sum to ``n``,
            or a block of ``x`` or ``y`` that is zero (its cosine is undefined).
        TypeError: on sizes that are not ints.
    """
    x, y = _pair(x, y)
    if x.ndim != 1:
        raise ValueError(f"x and y must be 1-D, got shape {x.shape}")
    try:
        sizes = tuple(sizes)
    except TypeError as exc:
        raise TypeError(f"sizes must be a sequence of ints, got {type(sizes).__name__}") from exc
    sizes = tuple(positive_int(f"sizes[{b}]", s) for b, s in enumerate(sizes))
    if not sizes or sum(sizes) != x.shape[0]:
        raise ValueError(f"sizes must sum to len(x) = {x.shape[0]}, got {sizes}")
    starts = np.cumsum((0,) + sizes[:-1])
    for name, v in (("x", x), ("y", y)):
        for b, (s, m) in enumerate(zip(starts, sizes)):
            if not np.any(v[s:s + m]):
                raise ValueError(f"block {b} of {name} is zero; its cosine is undefined")
    return _block_kernel(jnp.asarray(x, float), jnp.asarray(y, float), sizes)


@jax.jit
def _tree_kernel(u, g) -> BlockCosines:
    us = [jnp.ravel(leaf) for leaf in jax.tree_util.tree_leaves(u)]
    gs = [jnp.ravel(leaf) for leaf in jax.tree_util.tree_leaves(g)]
    xy = jnp.stack([jnp.dot(p, q) for p, q in zip(us, gs)])
    a = jnp.stack([jnp.linalg.norm(p) for p in us])
    c = jnp.stack([jnp.linalg.norm(q) for q in gs])
    na, nc = jnp.linalg.norm(a), jnp.linalg.norm(c)
    return BlockCosines(xy / (a * c), a * c / (na * nc), jnp.dot(a, c) / (na * nc),
                        jnp.sum(xy) / (na * nc))


def tree_block_cosines(u, g) -> BlockCosines:
    """:func:`block_cosines` with one block per leaf of two pytrees of the same structure.

    ``u`` and ``g`` are pytrees (e.g. an MLP's list of ``(W, b)`` pairs and its gradient)
    with equal structures and leaf shapes; the result has ``B = number of leaves``.

    Raises:
        ValueError: on different structures or leaf shapes, non-finite or all-zero leaves.
    """
    su, sg = jax.tree_util.tree_structure(u), jax.tree_util.tree_structure(g)
    if su != sg:
        raise ValueError(f"u and g must have the same tree structure, got {su} and {sg}")
    for k, (p, q) in enumerate(zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(g))):
        p, q = _pair(p, q, min_ndim=0)
        for name, v in (("u", p), ("g", q)):
            if not np.any(v):
                raise ValueError(f"leaf {k} of {name} is zero; its cosine is undefined")
    return _tree_kernel(u, g)


def two_block_family(lam: float,
                     delta: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Two blocks whose cosines both equal ``lam``, global cosine 2 δ λ / (1 + δ²).

    With unit vectors ``p = (1, 0)`` and ``q = (lam, sqrt(1 - lam²))`` (so cos(p, q) = lam),
    ``x = [delta p, p]`` and ``y = [q, delta q]``: the short blocks are ``x_1`` and ``y_2``.
    As ``delta -> 0`` the global cosine tends to 0 whatever ``lam`` is; with ``lam < 0`` and
    ``delta != 1`` it exceeds ``max_b cos_b = lam``.

    Returns:
        ``(x, y, sizes)`` with ``x, y`` of shape ``(4,)`` and ``sizes = (2, 2)``.

    Raises:
        ValueError: unless ``-1 <= lam <= 1`` and ``delta > 0``.
    """
    lam = float(as_finite_array("lam", lam))
    if not -1.0 <= lam <= 1.0:
        raise ValueError(f"lam must be a cosine in [-1, 1], got {lam}")
    delta = positive_scalar("delta", delta)
    p = np.array([1.0, 0.0])
    q = np.array([lam, np.sqrt(1.0 - lam * lam)])
    return np.concatenate([delta * p, p]), np.concatenate([q, delta * q]), (2, 2)


class PearsonSplit(NamedTuple):
    """Pooled Pearson r split into within-group and between-group parts; G groups."""

    within_r: np.ndarray  #: Pearson r inside each group, shape (G,)
    within_weight: np.ndarray  #: |x̃_g| |ỹ_g| / (|x̃| |ỹ|) of the group-centred parts, (G,)
    between_r: float  #: cosine of the group-mean parts (x̄_g - x̄, ȳ_g - ȳ) over all points
    between_weight: float  #: its weight
    pooled_r: float  #: Pearson r of all points, computed directly


def pearson_split(x, y, groups) -> PearsonSplit:
    """Pooled r = Σ_g w_g r_g + w_between r_between, the block identity for centred data.

    The centred data ``x - x̄`` splits into the group-centred part (``x_i - x̄_g`` inside
    group g) and the between part (``x̄_g - x̄`` repeated); the parts are orthogonal, so the
    pooled r is the block decomposition with one block per group plus one between block.

    Args:
        x, y: shape ``(n,)``.
        groups: integer labels of shape ``(n,)``; each group needs >= 2 points and
            non-constant x and y.

    Raises:
        ValueError: on shape mismatches, a group with fewer than 2 points or constant data.
    """
    x, y = _pair(x, y)
    g = np.asarray(groups)
    if g.shape != x.shape or x.ndim != 1:
        raise ValueError(f"groups must have the shape of x, 1-D {x.shape}, got {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        raise TypeError(f"groups must hold integer labels, got dtype {g.dtype}")
    labels = np.unique(g)
    x, y = x.astype(float), y.astype(float)
    bx, by = np.empty_like(x), np.empty_like(y)
    for lab in labels:
        m = g == lab
        if m.sum() < 2 or np.ptp(x[m]) == 0 or np.ptp(y[m]) == 0:
            raise ValueError(f"group {lab} needs >= 2 points and non-constant x and y")
        bx[m], by[m] = x[m].mean(), y[m].mean()
    wx, wy = x - bx, y - by           # group-centred parts
    bx, by = bx - x.mean(), by - y.mean()   # between parts
    order = np.argsort(g, kind="stable")
    sizes = tuple(int((g == lab).sum()) for lab in labels)
    dec = block_cosines(np.concatenate([wx[order], bx]), np.concatenate([wy[order], by]),
                        sizes + (x.size,)) if np.any(bx) and np.any(by) else None
    if dec is None:
        raise ValueError("the group means of x or of y are all equal; the between part is zero")
    pooled = float(cosine(x - x.mean(), y - y.mean()))
    block, weight = np.asarray(dec.block), np.asarray(dec.weight)
    return PearsonSplit(block[:-1], weight[:-1], float(block[-1]), float(weight[-1]), pooled)


class UpdateTrace(NamedTuple):
    """Per-step record of one optax run; T steps, B parameter blocks (leaves)."""

    block: np.ndarray  #: cos(u_b, g_b) per step and block (leaf W1, b1, ...), shape (T, B)
    weight: np.ndarray  #: the weights w_b, shape (T, B)
    norm_cosine: np.ndarray  #: cos of the block-norm vectors, shape (T,)
    total: np.ndarray  #: global cos(u, g), shape (T,)
    loss: np.ndarray  #: training loss before each step, shape (T,)
    names: tuple[str, ...]  #: block names, "W1", "b1", ...
    layer_block: np.ndarray  #: the same with one block per layer ((W_l, b_l) together), (T, L)
    layer_weight: np.ndarray  #: weights of the layer blocks, shape (T, L)
    layer_norm_cosine: np.ndarray  #: cos of the layer-norm vectors, shape (T,)


def _toy_data(key, n: int):
    """n points in [-2, 2]² and the regression target sin(2 x₁) + x₁ x₂ / 2."""
    x = jax.random.uniform(key, (n, 2), minval=-2.0, maxval=2.0)
    return x, (jnp.sin(2.0 * x[:, 0]) + 0.5 * x[:, 0] * x[:, 1])[:, None]


def _optimizer(name: str, lr: float):
    if name == "adam":
        return optax.adam(lr)
    if name == "lion":
        return optax.lion(lr, weight_decay=0.0)   # u = sign(β₁ m + (1 - β₁) g)
    return optax.sgd(lr)


def update_gradient_trace(key: jax.Array, optimizer: str, *, steps: int = 300,
                          sizes=(2, 32, 32, 1), lr: float = 1e-2,
                          n_data: int = 256) -> UpdateTrace:
    """Train an MLP on a 2-D toy regression and record update/gradient cosines per step.

    Full-batch mean-squared error on ``n_data`` points (:func:`_toy_data`), MLP of layer
    widths ``sizes`` (SiLU, :func:`sulib.nets.mlp_init`), ``optax.adam``, ``optax.lion``
    (no weight decay) or ``optax.sgd`` at learning rate ``lr``. At each step ``g`` is the
    gradient and ``u = -updates / lr`` the direction the optimizer moves against
    (θ ← θ - lr u). Two blockings are recorded: one block per leaf (W1, b1, W2, b2, ...)
    and one per layer ((W_l, b_l) flattened together). The loop is one ``lax.scan``
    under ``jit``.

    Returns:
        :class:`UpdateTrace` with arrays of shape ``(steps, B)``, ``(steps, L)`` or
        ``(steps,)``, ``L = len(sizes) - 1`` layers and ``B = 2 L`` leaves.

    Raises:
        ValueError: on an unknown optimizer, non-positive steps, lr or n_data.
    """
    one_of("optimizer", optimizer, OPTIMIZERS)
    steps = positive_int("steps", steps)
    n_data = positive_int("n_data", n_data, minimum=2)
    lr = positive_scalar("lr", lr)
    sizes = tuple(positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes))
    params, xs, ys = _setup(key, sizes, n_data)
    names = tuple(f"{p}{i + 1}" for i in range(len(params)) for p in ("W", "b"))
    out = _trace_kernel(params, xs, ys, optimizer, steps, jnp.asarray(lr, float))
    block, weight, normcos, total, loss, lblock, lweight, lnormcos = (np.asarray(v) for v in out)
    return UpdateTrace(block, weight, normcos, total, loss, names, lblock, lweight, lnormcos)


@partial(jax.jit, static_argnames=("sizes", "n_data"))
def _setup(key, sizes: tuple[int, ...], n_data: int):
    """Initial MLP parameters and the toy data set, from one key (one compiled call)."""
    k_data, k_init = jax.random.split(key)
    return (mlp_init(k_init, sizes), *_toy_data(k_data, n_data))


@partial(jax.jit, static_argnames=("optimizer", "steps"))
def _trace_kernel(params, xs, ys, optimizer: str, steps: int, lr: jax.Array):
    """The scan of :func:`update_gradient_trace`; ``lr`` is traced (no recompile per rate)."""
    opt = _optimizer(optimizer, lr)
    loss_fn = lambda p: jnp.mean((mlp_apply(p, xs) - ys) ** 2)

    def step(carry, _):
        p, state = carry
        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, state = opt.update(g, state, p)
        u = jax.tree_util.tree_map(lambda v: -v / lr, updates)
        dec = _tree_kernel(u, g)
        per_layer = lambda t: [jnp.concatenate([jnp.ravel(w), jnp.ravel(b)]) for w, b in t]
        lay = _tree_kernel(per_layer(u), per_layer(g))
        out = (*dec, loss, lay.block, lay.weight, lay.norm_cosine)
        return (optax.apply_updates(p, updates), state), out

    _, out = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return out
