"""Benchmark for post 9728 (inverse Leaky ReRoPE): the training-step overhead of Leaky ReRoPE.

    .venv/bin/python benchmarks/rerope.py [book/positions/data/rerope_overhead.json]

A small causal language model (2 blocks of pre-LN attention + MLP, width 128, vocabulary 256,
batch 1, float32) is timed for one forward + backward pass (``jax.value_and_grad`` of the
next-token loss) with plain RoPE and with Leaky ReRoPE in training (the post's inverse use,
w = n/4, k = 1/16: two score passes merged by the window mask, :mod:`sulib.rerope`). The figure
is the time ratio Leaky / RoPE per interleaved round, median and range (see ``_timing.py``),
for sequence lengths 256, 512, 1024 and for one head of size 128 (as GAU) and four of size 32.
These are CPU ratios of a toy model, not the post's GPU timings of a 100M-parameter GAU model.

The step calls sulib.rerope's jitted kernels ``_rope_attention`` and ``_leaky_attention``
directly: the public ``rope_attention`` / ``leaky_rerope_attention`` check their inputs on the
host (NumPy), which cannot run on the tracers inside this jitted training step.
"""

from __future__ import annotations

from _timing import interleaved, setting, write_result  # sets the bench environment

import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from sulib.rerope import _leaky_attention, _rope_attention  # noqa: E402
from sulib.rope import frequencies  # noqa: E402

WIDTH, VOCAB, LAYERS, BATCH = 128, 256, 2, 1
LENGTHS = (256, 512, 1024)
HEADS = (1, 4)
K_SLOPE = 1 / 16
ROUNDS = 15


def init(key, width=WIDTH, vocab=VOCAB, layers=LAYERS):
    keys = jax.random.split(key, 2 + 6 * layers)
    sc = width ** -0.5
    p = {"emb": jax.random.normal(keys[0], (vocab, width)) * 0.02,
         "out": jax.random.normal(keys[1], (width, vocab)) * sc, "blocks": []}
    for i in range(layers):
        k = keys[2 + 6 * i: 8 + 6 * i]
        p["blocks"].append({"q": jax.random.normal(k[0], (width, width)) * sc,
                            "k": jax.random.normal(k[1], (width, width)) * sc,
                            "v": jax.random.normal(k[2], (width, width)) * sc,
                            "o": jax.random.normal(k[3], (width, width)) * sc,
                            "m1": jax.random.normal(k[4], (width, 4 * width)) * sc,
                            "m2": jax.random.normal(k[5], (4 * width, width)) * sc / 2})
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), p)


def _ln(x):
    return (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5)


def make_loss(heads, scheme, n):
    dh = WIDTH // heads
    freqs = jnp.asarray(frequencies(dh), jnp.float32)
    w = n / 4

    def attend(q, k, v):
        if scheme == "rope":
            return _rope_attention(q, k, v, freqs)
        return _leaky_attention(q, k, v, freqs, w, K_SLOPE)

    def loss(p, tokens):
        x = p["emb"][tokens[:, :-1]]                                   # (b, n, c)
        b, m, _ = x.shape
        for blk in p["blocks"]:
            h = _ln(x)
            split = lambda a: a.reshape(b, m, heads, dh).transpose(0, 2, 1, 3)  # noqa: E731
            o = attend(split(h @ blk["q"]), split(h @ blk["k"]), split(h @ blk["v"]))
            x = x + o.transpose(0, 2, 1, 3).reshape(b, m, WIDTH) @ blk["o"]
            x = x + jax.nn.gelu(_ln(x) @ blk["m1"]) @ blk["m2"]
        logits = _ln(x) @ p["out"]
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1).mean()

    return jax.jit(jax.value_and_grad(loss))


def main(path: str | None) -> None:
    params = init(jax.random.PRNGKey(9728))
    print(f"Leaky ReRoPE (w = n/4, k = 1/16) vs RoPE training step, width {WIDTH}, "
          f"{LAYERS} blocks, batch {BATCH}, float32; {setting()}; {ROUNDS} rounds")
    rows = []
    for heads in HEADS:
        for n in LENGTHS:
            tokens = jax.random.randint(jax.random.PRNGKey(n), (BATCH, n + 1), 0, VOCAB)
            step = {s: make_loss(heads, s, n) for s in ("rope", "leaky")}
            fns = {s: (lambda f=f: jax.block_until_ready(f(params, tokens)))
                   for s, f in step.items()}
            r = interleaved(fns, ROUNDS)
            ratio = r.ratio("leaky", "rope")
            print(f"heads {heads}  n {n:>5}  RoPE step {1e3 * r.median('rope'):7.1f} ms  "
                  f"Leaky / RoPE {ratio.show()}")
            rows.append({"heads": heads, "n": n,
                         "median_seconds": {s: round(r.median(s), 6) for s in fns},
                         "leaky_over_rope": [round(v, 4) for v in
                                             (ratio.median, ratio.low, ratio.high)],
                         "leaky_over_rope_rounds": [round(a / b, 4) for a, b in
                                                    zip(r.times["leaky"], r.times["rope"])]})
    if path:
        write_result(path, "benchmarks/rerope.py",
                     config={"width": WIDTH, "vocab": VOCAB, "layers": LAYERS, "batch": BATCH,
                             "lengths": list(LENGTHS), "heads": list(HEADS), "w": "n/4",
                             "k": K_SLOPE, "dtype": "float32", "rounds": ROUNDS,
                             "pass": "forward + backward (value_and_grad)"},
                     ratios="leaky_over_rope: step time with Leaky ReRoPE / with RoPE, [median, "
                            "min, max] over interleaved rounds; _rounds: per-round values",
                     results=rows)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
