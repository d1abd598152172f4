"""Small multilayer perceptrons for the book's toy training runs (JAX, optax-friendly).

Parameters are a plain list of ``(W, b)`` pairs, a pytree that ``optax`` updates
directly. The chapters that train critics, velocity fields and one-step generators on
2-D data (ReFlow → WGAN-GP, score-identity distillation) share this one definition.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import one_of, positive_int

__all__ = ["MlpParams", "mlp_init", "mlp_apply", "ACTIVATIONS"]

MlpParams = list  #: list of (W: (m, n), b: (n,)) pairs, one per layer

ACTIVATIONS = {"silu": jax.nn.silu, "relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu}


def mlp_init(key: jax.Array, sizes, *, dtype=jnp.float64, final_scale: float = 1.0) -> MlpParams:
    """He-normal weights and zero biases for an MLP with layer widths ``sizes``.

    ``sizes = (d_in, h_1, ..., d_out)`` (at least two entries, all >= 1); returns
    ``len(sizes) - 1`` pairs ``(W, b)`` with ``W`` of shape ``(sizes[i], sizes[i+1])``.
    ``final_scale`` multiplies the last layer's weights (0 gives a network that starts
    at the zero function, e.g. a critic or a residual velocity field).
    """
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape != (2,):
        raise TypeError("key must be a JAX PRNG key (jax.random.key or jax.random.PRNGKey)")
    try:
        sizes = tuple(sizes)
    except TypeError as exc:
        raise TypeError(f"sizes must be a sequence of ints, got {type(sizes).__name__}") from exc
    if len(sizes) < 2:
        raise ValueError(f"sizes must have at least 2 entries (input and output width), got {sizes}")
    sizes = tuple(positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes))
    if not np.isfinite(final_scale):
        raise ValueError(f"final_scale must be finite, got {final_scale}")
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, m, n) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        w = jax.random.normal(k, (m, n), dtype) * np.sqrt(2.0 / m)
        if i == len(sizes) - 2:
            w = w * final_scale
        params.append((w, jnp.zeros((n,), dtype)))
    return params


@partial(jax.jit, static_argnames="activation")
def _apply(params, x, activation: str):
    act = ACTIVATIONS[activation]
    for w, b in params[:-1]:
        x = act(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def mlp_apply(params: MlpParams, x, *, activation: str = "silu") -> jax.Array:
    """Evaluate the MLP on ``x`` of shape ``(..., d_in)``; returns ``(..., d_out)``.

    Hidden layers use ``activation`` (one of ``ACTIVATIONS``), the last layer is linear.
    Differentiable in ``params`` and ``x``; safe to call inside ``jax.jit``/``grad``
    (the checks below only look at static shapes).
    """
    one_of("activation", activation, ACTIVATIONS)
    if not isinstance(params, (list, tuple)) or not params:
        raise TypeError("params must be a non-empty list of (W, b) pairs from mlp_init")
    d_in = params[0][0].shape[0]
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != d_in:
        raise ValueError(f"x must have shape (..., {d_in}), got {jnp.shape(x)}")
    return _apply(params, x, activation)
