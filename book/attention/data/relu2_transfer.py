"""Toy length-transfer run for post 9019 (relu² attention and the length divisor).

    .venv/bin/python book/attention/data/relu2_transfer.py [SEEDS] [book/attention/data/relu2_transfer.json]

(5 seeds: about 3.5 CPU minutes.)

One single-head attention layer, tokens x ∈ R^16, head size 32, q = RoPE(x W_q + b_q),
k = RoPE(x W_k + b_k) (RoPE base 100; the offsets b give q·k a content-free position term),
v = x W_v, output A v W_o. The task y_i = x_{i-1} + x_{i-3} (zero-filled, so a sample cut at its
length is still a valid sample) is concentrated and length-independent; the loss is the MSE per
dimension over each sample's own positions (predicting 0 scores 2).

Attention weights, with r_ij = relu(q_i·k_j/√32)² on the sample's own keys:

- ``length``:  r / ℓ, ℓ the sample's own length (the post's relu²/n);
- ``fixed``:   r / 64, the pre-training length (the post's remedy 1);
- ``sum``:     r / (Σ_j r_ij + 1e-6) (the row-sum normaliser);
- ``softmax``: softmax of the scores;
- ``mixed``:   r / ℓ, pre-trained on per-sample lengths uniform in 16..64 (the post's remedy 2).

Per divisor and seed: pre-train at n = 64 (``mixed``: lengths 16..64), Adam lr 1e-2, batch 32,
PRE steps; zero-shot loss at n ∈ EVAL_NS on one fixed batch of 256; then two fine-tunes from the
pre-trained weights, FT steps each at lr 1e-3: on per-sample lengths uniform in 8..32 (the case
where relu²/ℓ gives each sample a different gain) and, as the control, at the single length 16
(where a constant gain can be absorbed by the scales of q and k). Each fine-tune is scored on its
own distribution (a fixed batch of 256). With a path, the results go to that JSON file; the
chapter book/attention/softmax_vs_relu2.ipynb loads it and checks its sha256.
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the stored run was made with one BLAS thread and single-threaded XLA kernels
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS",
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

D, S = 16, 32
N_TRAIN = 64
BATCH = 32
PRE, FT = 1500, 200
LR_PRE, LR_FT = 1e-2, 1e-3
EVAL_NS = (16, 32, 64, 128, 256)
MODES = ("length", "fixed", "sum", "softmax", "mixed")


def rope(x: jax.Array) -> jax.Array:
    """Rotary position embedding, base 100, on the last axis of x (…, n, s)."""
    n, s = x.shape[-2], x.shape[-1]
    inv = 1.0 / (100.0 ** (jnp.arange(0, s, 2) / s))
    ang = jnp.arange(n)[:, None] * inv[None, :]
    c, si = jnp.cos(ang), jnp.sin(ang)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return jnp.concatenate([x1 * c - x2 * si, x1 * si + x2 * c], -1)


def init(key: jax.Array) -> dict:
    k = jax.random.split(key, 4)

    def g(kk, a, b):
        return jax.random.normal(kk, (a, b)) / np.sqrt(a)

    return dict(q=g(k[0], D, S), k=g(k[1], D, S), v=g(k[2], D, D), o=g(k[3], D, D),
                bq=jnp.ones(S), bk=jnp.ones(S))


def forward(p: dict, x: jax.Array, length: jax.Array, mode: str) -> jax.Array:
    """x (B, n, D), length (B,) → (B, n, D); keys at positions ≥ length are masked."""
    n = x.shape[1]
    q, k = rope(x @ p["q"] + p["bq"]), rope(x @ p["k"] + p["bk"])
    sc = q @ jnp.swapaxes(k, -1, -2) / np.sqrt(S)
    mask = jnp.arange(n)[None, None, :] < length[:, None, None]
    if mode == "softmax":
        a = jax.nn.softmax(jnp.where(mask, sc, -1e9), -1)
    else:
        r = jnp.where(mask, jnp.maximum(sc, 0.0) ** 2, 0.0)
        if mode in ("length", "mixed"):
            a = r / length[:, None, None]
        elif mode == "fixed":
            a = r / N_TRAIN
        else:
            a = r / (r.sum(-1, keepdims=True) + 1e-6)
    return (a @ (x @ p["v"])) @ p["o"]


def batch(key: jax.Array, b: int, n: int, lo: int | None = None):
    """b samples padded to n; lengths uniform in lo..n (all n when lo is None)."""
    x = jax.random.normal(key, (b, n, D))

    def shift(a, t):
        return jnp.pad(a, ((0, 0), (t, 0), (0, 0)))[:, :n]

    y = shift(x, 1) + shift(x, 3)
    if lo is None:
        length = jnp.full((b,), n)
    else:
        length = jax.random.randint(jax.random.fold_in(key, 1), (b,), lo, n + 1)
    x = jnp.where(jnp.arange(n)[None, :, None] < length[:, None, None], x, 0.0)
    return x, y, length


def loss(p, x, y, length, mode):
    out = forward(p, x, length, mode)
    m = (jnp.arange(x.shape[1])[None, :] < length[:, None])[..., None]
    return jnp.sum(m * (out - y) ** 2) / jnp.sum(m) / D


@partial(jax.jit, static_argnames=("mode", "steps", "n", "lo", "lr"))
def train(p, key, *, mode, steps, n, lo, lr):
    opt = optax.adam(lr)

    def step(c, kk):
        p, st = c
        x, y, length = batch(kk, BATCH, n, lo)
        g = jax.grad(loss)(p, x, y, length, mode)
        u, st = opt.update(g, st, p)
        return (optax.apply_updates(p, u), st), None

    (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), jax.random.split(key, steps))
    return p


@partial(jax.jit, static_argnames=("mode", "n", "lo"))
def evaluate(p, *, mode, n, lo=None):
    x, y, length = batch(jax.random.PRNGKey(123), 256, n, lo)
    return loss(p, x, y, length, mode)


def one(mode: str, seed: int) -> dict:
    key = jax.random.PRNGKey(seed)
    kp, kt, kf1, kf2 = jax.random.split(key, 4)
    p = train(init(kp), kt, mode=mode, steps=PRE, n=N_TRAIN,
              lo=16 if mode == "mixed" else None, lr=LR_PRE)
    zero_shot = {str(n): float(evaluate(p, mode=mode, n=n)) for n in EVAL_NS}
    pm = train(p, kf1, mode=mode, steps=FT, n=32, lo=8, lr=LR_FT)
    p16 = train(p, kf2, mode=mode, steps=FT, n=16, lo=None, lr=LR_FT)
    return dict(zero_shot=zero_shot,
                ft_mixed_before=float(evaluate(p, mode=mode, n=32, lo=8)),
                ft_mixed=float(evaluate(pm, mode=mode, n=32, lo=8)),
                ft_16=float(evaluate(p16, mode=mode, n=16)))


def main(seeds: int, path: str | None) -> None:
    out = dict(config=dict(D=D, S=S, n_train=N_TRAIN, batch=BATCH, pre_steps=PRE,
                           ft_steps=FT, lr_pre=LR_PRE, lr_ft=LR_FT, eval_ns=list(EVAL_NS),
                           mixed_pretrain_lengths=[16, N_TRAIN], ft_mixed_lengths=[8, 32],
                           jax=jax.__version__),
               runs={m: [] for m in MODES})
    for seed in range(seeds):
        for mode in MODES:
            r = one(mode, seed)
            out["runs"][mode].append(r)
            zs = " ".join(f"{v:.3f}" for v in r["zero_shot"].values())
            print(f"{mode:8s} seed {seed}: zero-shot {zs} | ft mixed {r['ft_mixed']:.3f}"
                  f" | ft 16 {r['ft_16']:.3f}", flush=True)
        if path:  # after each seed: seeds are independent, so the file written after
            # seed s is exactly what the command with SEEDS = s + 1 writes
            out["command"] = f".venv/bin/python book/attention/data/relu2_transfer.py {seed + 1} {path}"
            with open(path, "w") as f:
                json.dump(out, f, indent=1, sort_keys=True)
                f.write("\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1, sys.argv[2] if len(sys.argv) > 2 else None)
