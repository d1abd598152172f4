"""Benchmark for post 9052 (GAU-α): one GAU-α block (two GAU layers) against one Attention + FFN
block, BERT-style and RoFormerV2-style, across sequence lengths, as time ratios in the same run.

    .venv/bin/python benchmarks/gau.py [book/attention/data/gau_speed.json]

Base width (d = 768, 12 heads, FFN 3072; GAU e = 1536, s = 128), batch 1, float32, forward pass
only. A ratio is reference time / GAU-α time per interleaved round (> 1: GAU-α is faster); the
figure is the median over the rounds with its range (see ``_timing.py``). With a path, the results
go to that JSON file (the chapter book/attention/gau_alpha.ipynb loads it and checks its sha256).

Each block runs in its fastest plain-JAX form on this backend: the attention blocks move the heads
in front of the positions, ``(b, h, n, c)``, before the per-head products. For comparison the
RoFormerV2-style block is also timed in the naive ``(b, n, h, c)`` einsum layout (same numbers,
about 2x slower attention on XLA-CPU). Stored per length: the median seconds per call of each
block, and for each ratio its median, minimum and maximum and the per-round values.
"""

from __future__ import annotations

from _timing import interleaved, setting, write_result  # sets the bench environment

import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from sulib.gau import (_attention_ffn_jit, attention_ffn_block, gau_alpha_block,  # noqa: E402
                       init_attention_ffn, init_gau_alpha)

D, HEADS, S = 768, 12, 128
LENGTHS = (128, 256, 512, 1024, 2048)
ROUNDS = 21


def main(path: str | None) -> None:
    key = jax.random.PRNGKey(9052)
    kg, kb, kr, kx = jax.random.split(key, 4)
    params = {"gau_alpha": init_gau_alpha(kg, D, s=S),
              "bert": init_attention_ffn(kb, D, HEADS, style="bert"),
              "roformer_v2": init_attention_ffn(kr, D, HEADS, style="roformer_v2")}
    print(f"GAU-α vs Attention + FFN, d = {D}, {HEADS} heads, s = {S}, batch 1, float32; "
          f"{setting()}; ratio = reference time / GAU-α time, {ROUNDS} rounds")
    print(f"{'n':>6}{'GAU-α ms':>10}{'BERT / GAU-α':>20}{'RoFormerV2 / GAU-α':>22}"
          f"{'naive RoFV2 / GAU-α':>22}{'RoFV2 / BERT':>20}")
    rows = []
    pairs = {"bert_over_gau": ("bert", "gau_alpha"),
             "roformer_v2_over_gau": ("roformer_v2", "gau_alpha"),
             "roformer_v2_naive_over_gau": ("roformer_v2_naive", "gau_alpha"),
             "roformer_v2_over_bert": ("roformer_v2", "bert")}
    for n in LENGTHS:
        x = jax.random.normal(jax.random.fold_in(kx, n), (1, n, D), jnp.float32)
        fns = {"bert": lambda: attention_ffn_block(params["bert"], x, heads=HEADS,
                                                   style="bert").block_until_ready(),
               "roformer_v2": lambda: attention_ffn_block(params["roformer_v2"], x, heads=HEADS,
                                                          style="roformer_v2").block_until_ready(),
               "roformer_v2_naive": lambda: _attention_ffn_jit(
                   params["roformer_v2"], x, HEADS, "roformer_v2", False).block_until_ready(),
               "gau_alpha": lambda: gau_alpha_block(params["gau_alpha"], x).block_until_ready()}
        r = interleaved(fns, ROUNDS)
        sp = {k: r.ratio(*v) for k, v in pairs.items()}
        print(f"{n:>6}{1e3 * r.median('gau_alpha'):>10.1f}" + "".join(
            f"{sp[k].show():>{w}}" for k, w in zip(pairs, (20, 22, 22, 20))))
        row = {"n": n, "median_seconds": {k: round(r.median(k), 6) for k in fns}}
        for k, (num, den) in pairs.items():
            row[k] = [round(v, 4) for v in (sp[k].median, sp[k].low, sp[k].high)]
            row[k + "_rounds"] = [round(a / b, 4) for a, b in zip(r.times[num], r.times[den])]
        rows.append(row)
    if path:
        write_result(path, "benchmarks/gau.py",
                     config={"d": D, "heads": HEADS, "s": S, "e": 2 * D, "ffn": 4 * D, "batch": 1,
                             "dtype": "float32", "rounds": ROUNDS, "pass": "forward"},
                     ratios="X_over_Y: time of X / time of Y, [median, min, max] over interleaved "
                            "rounds; X_over_Y_rounds: the per-round values; blocks in the heads-"
                            "first layout except roformer_v2_naive ((b, n, h, c) einsums)",
                     results=rows)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
