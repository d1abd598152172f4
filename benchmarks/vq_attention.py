"""Benchmark for post 9844 (Transformer-VQ): causal attention with quantized keys, quadratic
(``softmax(Q K̂ᵀ + mask) V``, the full n × n matrix) against the linear block form of
``sulib.vq_attention`` (blocks of ``L``, codebook of ``C`` codes), across lengths, in the same run.

    .venv/bin/python benchmarks/vq_attention.py [book/vq/data/vq_attention_cost.json]

One head, d_k = d_v = 32, float32, forward pass, both including the quantization of the keys.
Time: a ratio is quadratic time / block time per interleaved round (> 1: the block form is
faster); the figure is the median over the rounds with its range (see ``_timing.py``). Memory:
XLA's own accounting of each compiled function (``compiled.memory_analysis()``: temporary buffers
plus output, in bytes), read for more lengths than are timed, since it needs no run. With a path,
the results go to that JSON file (book/vq/transformer_vq.ipynb loads it and checks its sha256).
"""

from __future__ import annotations

from _timing import interleaved, setting, write_result  # sets the bench environment

import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from sulib.vq_attention import _block, _quadratic, _quantize  # noqa: E402

D, C, L = 32, 256, 128
TIMED = (256, 512, 1024, 2048, 4096, 8192)
MEMORY = TIMED + (16384, 32768)
ROUNDS = 7


@jax.jit
def quadratic(q, k, cb, v):
    return _quadratic(q, _quantize(k, cb)[1], v, None, True)


@jax.jit
def blocks(q, k, cb, v):
    return _block(q, k, cb, v, None, L)


def inputs(n):
    kq, kk, kc, kv = jax.random.split(jax.random.PRNGKey(n), 4)
    shape = (n, D)
    return (jax.random.normal(kq, shape, jnp.float32) / D**0.5,
            jax.random.normal(kk, shape, jnp.float32),
            jax.random.normal(kc, (C, D), jnp.float32),
            jax.random.normal(kv, shape, jnp.float32))


def memory_bytes(fn, args) -> int | None:
    stats = fn.lower(*args).compile().memory_analysis()
    if stats is None:
        return None
    return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)


def main(path: str | None) -> None:
    print(f"VQ attention, quadratic vs blocks: d = {D}, c = {C}, block {L}, float32; "
          f"{setting()}; ratio = quadratic time / block time, {ROUNDS} rounds")
    rows = []
    for n in MEMORY:
        args = inputs(n)
        row = {"n": n, "memory_bytes": {"quadratic": memory_bytes(quadratic, args),
                                        "blocks": memory_bytes(blocks, args)}}
        if n in TIMED:
            fns = {"quadratic": lambda: quadratic(*args).block_until_ready(),
                   "blocks": lambda: blocks(*args).block_until_ready()}
            r = interleaved(fns, ROUNDS)
            sp = r.ratio("quadratic", "blocks")
            row["median_seconds"] = {k: round(r.median(k), 6) for k in fns}
            row["quadratic_over_blocks"] = [round(x, 4) for x in (sp.median, sp.low, sp.high)]
            row["quadratic_over_blocks_rounds"] = [
                round(a / b, 4) for a, b in zip(r.times["quadratic"], r.times["blocks"])]
            print(f"{n:>6} {1e3 * r.median('blocks'):8.2f} ms  ratio {sp.show()}  "
                  f"memory {row['memory_bytes']}")
        else:
            print(f"{n:>6} memory {row['memory_bytes']}")
        rows.append(row)
    if path:
        write_result(path, "benchmarks/vq_attention.py",
                     config={"d_k": D, "d_v": D, "codes": C, "block_len": L, "dtype": "float32",
                             "rounds": ROUNDS, "pass": "forward, causal, one head"},
                     ratios="quadratic_over_blocks: time of quadratic / time of blocks, [median, "
                            "min, max] over interleaved rounds; _rounds: the per-round values",
                     memory="XLA compiled memory_analysis(): temp_size_in_bytes + "
                            "output_size_in_bytes",
                     results=rows)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
