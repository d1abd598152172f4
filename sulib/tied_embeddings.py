"""Tied output embeddings at initialization and in a toy bigram language model (post 9698).

A language model whose residual branches start near zero is, at initialization, a bigram model:
token ``i`` is embedded as ``w_i``, normalised by an RMS norm (``h_i = √d w_i / ‖w_i‖``), and scored
against every token ``k`` by ``h_i · u_k``. With tied embeddings ``u_k = w_k``, so the logit of the
token itself is ``√d ‖w_i‖ ≈ dσ`` and dominates the softmax. This module computes

* :func:`initial_loss_stats` -- a Monte Carlo of the initial loss ``-log p(j | i)`` averaged over the
  targets ``j ≠ i``, for i.i.d. ``N(0, σ²)`` weights, a vocabulary of ``n`` and width ``d``, for the
  output heads ``"tied"``, ``"untied"`` (an independent output matrix), ``"orthogonal"`` (``h_i P``
  with a random orthogonal ``P``, then tied) and ``"half_swap"`` (``S[h] = h[d/2:] ∘ h[:d/2]``, then
  tied). The output matrix is generated in chunks, so ``n = 32 000`` and ``d = 4096`` fit in memory;
* a toy bigram source (:func:`bigram_source`) and the bigram model with each head
  (:func:`init_params`, :func:`bigram_logits`, :func:`expected_loss`), trained with optax Adam by
  :func:`train_bigram`;
* ``python -m sulib.tied_embeddings train OUT.json``: the stored training comparison of the chapter
  ``book/optim/tied_embeddings.ipynb`` (:data:`TRAIN_CONFIG`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar

__all__ = ["HEADS", "InitialLoss", "TRAIN_CONFIG", "arm_sigma", "bigram_logits", "bigram_source",
           "expected_loss", "half_swap", "initial_loss_conditional", "init_params",
           "initial_loss_stats", "rms_normalize", "run_config", "train_bigram"]

#: The output heads compared in the chapter.
HEADS = ("tied", "untied", "orthogonal", "half_swap")


def rms_normalize(x: jax.Array) -> jax.Array:
    """RMS norm without gain over the last axis: ``x √d / ‖x‖``, shape unchanged ``(..., d)``."""
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have a last axis of length >= 1, got shape {x.shape}")
    d = x.shape[-1]
    return x * jnp.sqrt(d) / jnp.linalg.norm(x, axis=-1, keepdims=True)


def half_swap(h: jax.Array) -> jax.Array:
    """The post's ``S[h] = h[d/2:] ∘ h[:d/2]`` (swap the two halves of the last axis, ``d`` even)."""
    if h.ndim < 1 or h.shape[-1] % 2:
        raise ValueError(f"h must have an even last axis d, got shape {h.shape}")
    d = h.shape[-1]
    return jnp.concatenate([h[..., d // 2:], h[..., : d // 2]], axis=-1)


def _orthogonal(key: jax.Array, d: int) -> jax.Array:
    """A Haar-random ``(d, d)`` orthogonal matrix (QR of a Gaussian with the sign fix)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, d)))
    return q * jnp.sign(jnp.diag(r))[None, :]


class InitialLoss(NamedTuple):
    """Per sampled row ``i`` (each of shape ``(n_rows,)``).

    loss:       ``logsumexp_k z_ik - mean_{k≠i} z_ik``, the loss ``-log p(j|i)`` averaged over the
                ``n - 1`` targets ``j ≠ i``.
    self_logit: ``z_ii``.
    log_cross:  ``log mean_{k≠i} e^{z_ik}``.
    """

    loss: jax.Array
    self_logit: jax.Array
    log_cross: jax.Array


@partial(jax.jit, static_argnames=("n", "d", "n_rows", "chunk"))
def _initial_loss(key, sigma, head_index, *, n: int, d: int, n_rows: int, chunk: int):
    k_out, k_in, k_p = jax.random.split(key, 3)
    n_chunks = -(-n // chunk)

    def out_rows(c):  # rows c*chunk ... of the output matrix, (chunk, d)
        return sigma * jax.random.normal(jax.random.fold_in(k_out, c), (chunk, d))

    # the head is a traced index (one compilation serves all four heads); HEADS order
    branches = (lambda: rms_normalize(out_rows(0)[:n_rows]),
                lambda: rms_normalize(sigma * jax.random.normal(k_in, (n_rows, d))),
                lambda: rms_normalize(out_rows(0)[:n_rows]) @ _orthogonal(k_p, d),
                # odd d: never selected (the wrapper refuses it), so any branch will do
                (lambda: half_swap(rms_normalize(out_rows(0)[:n_rows]))) if d % 2 == 0
                else (lambda: rms_normalize(out_rows(0)[:n_rows])))
    g = jax.lax.switch(head_index, branches)
    rows = jnp.arange(n_rows)

    def step(carry, c):
        lse_all, lse_x, sum_x, self_z = carry
        z = g @ out_rows(c).T                                     # (n_rows, chunk)
        k = c * chunk + jnp.arange(chunk)
        valid = (k < n)[None, :]
        is_self = k[None, :] == rows[:, None]
        cross = valid & ~is_self
        lse_all = jnp.logaddexp(lse_all, jax.nn.logsumexp(jnp.where(valid, z, -jnp.inf), axis=1))
        lse_x = jnp.logaddexp(lse_x, jax.nn.logsumexp(jnp.where(cross, z, -jnp.inf), axis=1))
        sum_x = sum_x + jnp.sum(jnp.where(cross, z, 0.0), axis=1)
        self_z = self_z + jnp.sum(jnp.where(is_self, z, 0.0), axis=1)
        return (lse_all, lse_x, sum_x, self_z), None

    init = (jnp.full(n_rows, -jnp.inf), jnp.full(n_rows, -jnp.inf), jnp.zeros(n_rows),
            jnp.zeros(n_rows))
    (lse_all, lse_x, sum_x, self_z), _ = jax.lax.scan(step, init, jnp.arange(n_chunks))
    return InitialLoss(lse_all - sum_x / (n - 1), self_z, lse_x - jnp.log(n - 1))


def initial_loss_stats(key: jax.Array, n: int, d: int, sigma: float, head: str = "tied", *,
                       n_rows: int = 16, chunk: int = 4096) -> InitialLoss:
    """Monte Carlo of the initial bigram loss with i.i.d. ``N(0, σ²)`` embeddings.

    Args:
        key: a PRNG key. The same key gives the same embedding matrix for every head except
            ``"untied"``, whose input rows are drawn separately.
        n: vocabulary size (``>= 2``); d: width (``>= 2``, even for ``"half_swap"``).
        sigma: standard deviation of the entries.
        head: one of :data:`HEADS`.
        n_rows: how many rows ``i`` (the first ones; rows are exchangeable) to score, ``<= min(n, chunk)``.
        chunk: rows of the output matrix generated at a time.

    Returns:
        :class:`InitialLoss` with arrays of shape ``(n_rows,)``.
    """
    n = positive_int("n", n, minimum=2)
    d = positive_int("d", d, minimum=2)
    sigma = positive_scalar("sigma", sigma)
    head = one_of("head", head, HEADS)
    chunk = positive_int("chunk", chunk)
    n_rows = positive_int("n_rows", n_rows)
    if n_rows > min(n, chunk):
        raise ValueError(f"n_rows must be <= min(n, chunk) = {min(n, chunk)}, got {n_rows}")
    if head == "half_swap" and d % 2:
        raise ValueError(f"d must be even for head 'half_swap', got {d}")
    return _initial_loss(key, sigma, HEADS.index(head), n=n, d=d, n_rows=n_rows, chunk=chunk)


@partial(jax.jit, static_argnames=("n", "d", "n_rows"))
def _initial_loss_conditional(key, sigma, *, n: int, d: int, n_rows: int):
    # one draw, cut into w, v, the direction of h P and the cross logits (one RNG kernel
    # to compile instead of four)
    g = jax.random.normal(key, (n_rows, 3 * d + n - 1))
    w = sigma * g[:, :d]
    h = rms_normalize(w)                                          # ‖h‖² = d exactly
    v = sigma * g[:, d:2 * d]                                     # untied output row i
    r = rms_normalize(g[:, 2 * d:3 * d])                          # h P: uniform on the sphere
    self_z = jnp.stack([jnp.sum(h * w, 1), jnp.sum(h * v, 1), jnp.sum(r * w, 1),
                        jnp.sum(half_swap(h) * w, 1)])            # (4, n_rows), HEADS order
    cross = sigma * jnp.sqrt(d) * g[:, 3 * d:]
    lse_x = jax.nn.logsumexp(cross, axis=1)
    loss = jnp.logaddexp(self_z, lse_x[None]) - jnp.mean(cross, axis=1)[None]
    return InitialLoss(loss, self_z, jnp.broadcast_to(lse_x - jnp.log(n - 1), self_z.shape))


def initial_loss_conditional(key: jax.Array, n: int, d: int, sigma: float, *,
                             n_rows: int = 64) -> InitialLoss:
    """The same Monte Carlo as :func:`initial_loss_stats`, for all four heads at once, at cost
    ``O(n + d)`` per row instead of ``O(n d)``.

    It uses the exact conditional law for Gaussian weights: given ``w_i``, the ``n - 1`` logits
    ``g_i · w_k`` (``k ≠ i``) are i.i.d. ``N(0, ‖g_i‖² σ²) = N(0, d σ²)``, since every head's
    ``g_i`` has ``‖g_i‖² = d``; only the logit of ``i`` itself is computed from ``w_i``. For
    ``"orthogonal"``, ``h_i P`` with a Haar-random ``P`` is a uniform vector of norm ``√d``
    independent of ``w_i``, which is how it is drawn. The cross logits are shared by the heads.

    Returns:
        :class:`InitialLoss` with arrays of shape ``(4, n_rows)``, heads in :data:`HEADS` order.
    """
    n = positive_int("n", n, minimum=2)
    d = positive_int("d", d, minimum=2)
    if d % 2:
        raise ValueError(f"d must be even (the half-swap head), got {d}")
    sigma = positive_scalar("sigma", sigma)
    return _initial_loss_conditional(key, sigma, n=n, d=d,
                                     n_rows=positive_int("n_rows", n_rows))


# --------------------------------------------------------------------------- the toy bigram LM


def bigram_source(key: jax.Array, n: int, *, zipf: float = 1.0,
                  spread: float = 1.5) -> tuple[jax.Array, jax.Array]:
    """A random bigram source over ``n`` tokens with no immediate repeats.

    Contexts follow the Zipf law ``u_x ∝ x^{-zipf}``; the next token follows
    ``T[x, y] ∝ u_y e^{spread · Z_xy}`` with ``Z`` standard normal and ``T[x, x] = 0``.

    Returns:
        ``(u, T)``: shapes ``(n,)`` and ``(n, n)``, rows summing to one.
    """
    n = positive_int("n", n, minimum=2)
    zipf = positive_scalar("zipf", zipf)
    spread = positive_scalar("spread", spread)
    u = jnp.arange(1, n + 1, dtype=jnp.float64) ** -zipf
    u = u / u.sum()
    logits = jnp.log(u)[None, :] + spread * jax.random.normal(key, (n, n))
    logits = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, logits)
    return u, jax.nn.softmax(logits, axis=1)


def arm_sigma(rule: str, n: int, d: int) -> float:
    """Initial standard deviation: ``"1/sqrt(d)"`` → ``1/√d``, ``"log(n)/d"`` → ``(log n)/d``."""
    rule = one_of("rule", rule, ("1/sqrt(d)", "log(n)/d"))
    return 1.0 / math.sqrt(d) if rule == "1/sqrt(d)" else math.log(n) / d


def init_params(key: jax.Array, n: int, d: int, sigma: float, head: str) -> dict:
    """Parameters of the bigram model: ``E`` ``(n, d)`` ~ N(0, σ²), the final RMS-norm gain
    ``(d,)`` = 1, the residual MLP ``W1`` ``(d, 4d)`` ~ N(0, 1/d) and ``W2`` ``(4d, d)`` = 0 (so the
    model starts as the pure bigram head, as the post assumes), and ``V`` ``(n, d)`` ~ N(0, σ²)
    for ``"untied"`` or a random orthogonal ``P`` ``(d, d)`` for ``"orthogonal"``."""
    n = positive_int("n", n, minimum=2)
    d = positive_int("d", d, minimum=2)
    sigma = positive_scalar("sigma", sigma)
    head = one_of("head", head, HEADS)
    k_e, k_x, k_1 = jax.random.split(key, 3)
    params = {"E": sigma * jax.random.normal(k_e, (n, d)), "gain": jnp.ones(d),
              "W1": jax.random.normal(k_1, (d, 4 * d)) / jnp.sqrt(d), "W2": jnp.zeros((4 * d, d))}
    if head == "untied":
        params["V"] = sigma * jax.random.normal(k_x, (n, d))
    elif head == "orthogonal":
        params["P"] = _orthogonal(k_x, d)
    return params


def bigram_logits(params: dict, x: jax.Array, head: str) -> jax.Array:
    """Logits ``(B, n)`` of the next token after contexts ``x`` ``(B,)`` (ints in ``[0, n)``).

    ``e = E[x] + relu(rms(E[x]) W1) W2`` (one pre-norm residual MLP block), ``h = rms(e) ⊙ gain``,
    then ``h E^T`` (tied), ``h V^T`` (untied), ``(h P) E^T`` (orthogonal) or ``S[h] E^T`` (half swap).
    """
    e = params["E"][x]
    e = e + jax.nn.relu(rms_normalize(e) @ params["W1"]) @ params["W2"]  # zero at init
    h = rms_normalize(e) * params["gain"]
    if head == "orthogonal":
        h = h @ params["P"]
    elif head == "half_swap":
        h = half_swap(h)
    out = params["V"] if head == "untied" else params["E"]
    return h @ out.T


def expected_loss(params: dict, u: jax.Array, T: jax.Array, head: str) -> jax.Array:
    """Exact cross-entropy ``Σ_x u_x Σ_y T[x, y] (-log p(y|x))`` of the model on the source."""
    logp = jax.nn.log_softmax(bigram_logits(params, jnp.arange(u.shape[0]), head), axis=1)
    return -jnp.sum(u[:, None] * jnp.where(T > 0, T * logp, 0.0))


@partial(jax.jit, static_argnames=("head", "steps", "batch", "eval_every"))
def _train(key, u, T, params, *, head: str, steps: int, batch: int, lr: float, eval_every: int):
    opt = optax.adam(lr)
    log_u = jnp.log(u)

    def batch_loss(p, x):
        logp = jax.nn.log_softmax(bigram_logits(p, x, head), axis=1)
        return -jnp.mean(jnp.sum(jnp.where(T[x] > 0, T[x] * logp, 0.0), axis=1))

    def one_step(carry, k):
        p, s = carry
        x = jax.random.categorical(k, log_u, shape=(batch,))
        g = jax.grad(batch_loss)(p, x)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    def block(carry, keys):
        loss = expected_loss(carry[0], u, T, head)
        carry, _ = jax.lax.scan(one_step, carry, keys)
        return carry, loss

    n_blocks = steps // eval_every   # step t uses fold_in(key, t): runs of any length agree
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(steps))
    keys = keys.reshape(n_blocks, eval_every, *keys.shape[1:])
    (params, _), losses = jax.lax.scan(block, (params, opt.init(params)), keys)
    return jnp.append(losses, expected_loss(params, u, T, head)), params


def train_bigram(seed: int, u: jax.Array, T: jax.Array, d: int, sigma: float, head: str, *,
                 steps: int = 400, batch: int = 256, lr: float = 3e-3,
                 eval_every: int = 20) -> tuple[jax.Array, dict]:
    """Train the bigram model with Adam on minibatches of contexts ``x ~ u`` (exact over the next
    token), from :func:`init_params` with ``PRNGKey(seed)``.

    Args:
        u: ``(n,)`` context distribution; T: ``(n, n)`` next-token distributions (rows sum to 1).
        steps: a multiple of ``eval_every``.

    Returns:
        ``(losses, params)``: the exact loss :func:`expected_loss` at steps
        ``0, eval_every, …, steps`` (shape ``(steps // eval_every + 1,)``) and the final parameters.
    """
    u = as_finite_array("u", u, min_ndim=1)
    T = as_finite_array("T", T, min_ndim=2)
    n = u.shape[0]
    if u.ndim != 1 or T.shape != (n, n):
        raise ValueError(f"u must have shape (n,) and T shape (n, n), got {u.shape} and {T.shape}")
    if np.any(u < 0) or np.any(T < 0):
        raise ValueError("u and T must be non-negative")
    if abs(float(np.sum(u)) - 1) > 1e-9 or np.any(np.abs(np.sum(T, axis=1) - 1) > 1e-9):
        raise ValueError("u and the rows of T must each sum to 1")
    head = one_of("head", head, HEADS)
    steps = positive_int("steps", steps)
    eval_every = positive_int("eval_every", eval_every)
    if steps % eval_every:
        raise ValueError(f"steps must be a multiple of eval_every, got {steps} and {eval_every}")
    lr = positive_scalar("lr", lr)
    seed = positive_int("seed", seed, minimum=0)
    key_init, key_train = jax.random.split(jax.random.PRNGKey(seed))
    params = init_params(key_init, n, d, sigma, head)
    return _train(key_train, jnp.asarray(u), jnp.asarray(T), params, head=head, steps=steps,
                  batch=positive_int("batch", batch), lr=lr, eval_every=eval_every)


#: The stored training comparison (``python -m sulib.tied_embeddings train OUT.json``):
#: arm → (head, σ rule).
TRAIN_CONFIG = dict(
    n=1024, d=128, source_seed=0, zipf=1.0, spread=1.5, seeds=[0, 1, 2], steps=400, batch=256,
    lr=3e-3, eval_every=20,
    arms={"tied": ["tied", "1/sqrt(d)"], "tied_small": ["tied", "log(n)/d"],
          "untied": ["untied", "1/sqrt(d)"], "orthogonal": ["orthogonal", "1/sqrt(d)"],
          "half_swap": ["half_swap", "1/sqrt(d)"]})


def run_config(cfg: dict) -> dict[str, list[list[float]]]:
    """Train every arm of ``cfg`` (a dict shaped like :data:`TRAIN_CONFIG`) for every seed.

    Returns:
        ``{arm: losses}`` with ``losses`` a list (seeds) of lists (checkpoints) of floats.
    """
    u, T = bigram_source(jax.random.PRNGKey(cfg["source_seed"]), cfg["n"], zipf=cfg["zipf"],
                         spread=cfg["spread"])
    out = {}
    for name, (head, rule) in cfg["arms"].items():
        sigma = arm_sigma(rule, cfg["n"], cfg["d"])
        out[name] = [np.asarray(train_bigram(s, u, T, cfg["d"], sigma, head, steps=cfg["steps"],
                                             batch=cfg["batch"], lr=cfg["lr"],
                                             eval_every=cfg["eval_every"])[0]).tolist()
                     for s in cfg["seeds"]]
    return out


def _main(argv: list[str] | None = None) -> None:  # pragma: no cover - a CLI
    """``python -m sulib.tied_embeddings train OUT.json``: the stored training comparison."""
    import argparse

    from sulib._stored import write_stored_run

    parser = argparse.ArgumentParser(prog="python -m sulib.tied_embeddings")
    parser.add_argument("what", choices=["train"])
    parser.add_argument("out", help="path of the .json file to write")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    losses = run_config(TRAIN_CONFIG)
    write_stored_run(args.out, "sulib.tied_embeddings", argv, config=TRAIN_CONFIG, losses=losses)


if __name__ == "__main__":  # pragma: no cover
    _main()
