"""Benchmarks: each kernel against a reference implementation, as a ratio measured in the same run.

    python3 tasks.py bench          (or: .venv/bin/python benchmarks/attention.py;
                                     add `rnn` for the post-10017 comparison alone,
                                     `stats` for the fused softmax-statistics kernel alone)

Ratios (reference time / sulib time) are what to compare between machines: each is the median of
per-round ratios over interleaved rounds, with its range (see ``_timing.py``);
absolute times are medians, printed for context only.
"""

from __future__ import annotations

from _timing import interleaved, setting  # the script's own folder is on sys.path; sets the bench environment

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from sulib.attention import (attention_scores, attention_stack, causal_attention_blocked,  # noqa: E402
                             causal_attention_matrix, causal_attention_online,
                             causal_attention_recurrent, compiled_temp_bytes,
                             linear_attention_recurrent, prefix_entropy_terms, softmax_entropy,
                             softmax_stats)
from sulib.fit import power_law_fit  # noqa: E402

ROUNDS = 31
ROUNDS_RNN = 9  # the recurrences take up to about 1 s a call at n = 4096
ROUNDS_STATS = 15  # the NumPy reference takes about 0.3-1 s a call at n = 2^20
STATS_SIZES = ((4096, 32), (65536, 32), (2**20, 4))  # (n, rows): fewer rows at 2^20


def numpy_entropy(scores: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Softmax entropy of ``lam * scores`` over the last axis, for each ``lam``: shape ``(len(lams), ...)``."""
    out = []
    for lam in lams:
        z = lam * scores
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=-1, keepdims=True)
        out.append(np.log(e.sum(axis=-1)) - (p * z).sum(axis=-1))  # entropy of the shifted logits
    return np.array(out)


def numpy_stats(scores: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Float64 NumPy reference of ``softmax_stats``: ``(4, len(lams), ...)`` = logsumexp, entropy, Σp², max p."""
    out = []
    for lam in lams:
        z = lam * scores
        z_max = z.max(axis=-1, keepdims=True)
        e = np.exp(z - z_max)
        total = e.sum(axis=-1, keepdims=True)
        p = e / total
        lse = z_max[..., 0] + np.log(total[..., 0])
        out.append((lse, lse - (p * z).sum(axis=-1), (p * p).sum(axis=-1), p.max(axis=-1)))
    return np.moveaxis(np.array(out), 1, 0)


def softmax_stats_bench() -> None:
    """The fused kernel ``softmax_stats`` (8 scales) against its NumPy reference, and its exponentials
    per second against the machine's own rate for that work, measured in the same rounds: a jitted
    ``jnp.sum(jnp.exp(x), -1)`` over one scale's worth of exponents ((rows, n), nothing written
    out: XLA's fastest exp, vectorized inside its reduction), float64 and float32.

    ``% of exp`` is, per round, (k·rows·n / kernel time) / (rows·n / exp time): the share of that
    rate the kernel reaches while also taking three sums per element. The float64 kernel uses its
    own exp (``_exp_nonpositive``), not XLA's, so it can pass 100 %.
    Accuracy: each variant's max |Δ| of H and Σp² against the float64 NumPy reference.
    """
    lams = np.linspace(0.05, 1.0, 8)
    k = len(lams)
    print(f"\nfused softmax statistics (softmax_stats: logsumexp, entropy, Σp², max p), {k} scales, "
          f"{ROUNDS_STATS} rounds; ratio = NumPy time / kernel time")
    exp_jit = jax.jit(lambda x: jnp.sum(jnp.exp(x), axis=-1))
    print(f"{'n':>8}{'rows':>5}{'numpy s':>9}{'dtype':>9}{'ratio (range)':>20}{'Mexp/s':>8}"
          f"{'exp Mexp/s (range)':>22}{'% of exp (range)':>22}{'max|ΔH|':>10}{'max|ΔΣp²|':>11}")
    for n, rows in STATS_SIZES:
        scores = attention_scores(jax.random.PRNGKey(2), "gaussian", n, 64, queries=rows)
        host = np.asarray(scores)
        want = numpy_stats(host, lams)
        err = {}
        for dt in ("float64", "float32"):
            got = softmax_stats(scores, lams, dtype=dt)
            err[dt] = [float(np.abs(np.asarray(g) - w).max()) for g, w in
                       zip((got.logsumexp, got.entropy, got.sum_p2, got.max_p), want)]
        assert max(err["float64"]) < 1e-9, err
        neg = -np.abs(host)  # the kernel's exponents are <= 0 too
        x64, x32 = jnp.asarray(neg), jnp.asarray(neg, dtype=jnp.float32)
        fns = {"ref": lambda: numpy_stats(host, lams),
               "float64": lambda: softmax_stats(scores, lams).entropy.block_until_ready(),
               "float32": lambda: softmax_stats(scores, lams, dtype="float32").entropy.block_until_ready(),
               "exp64": lambda: exp_jit(x64).block_until_ready(),
               "exp32": lambda: exp_jit(x32).block_until_ready()}
        r = interleaved(fns, ROUNDS_STATS)
        size = rows * n
        for dt, lim in (("float64", "exp64"), ("float32", "exp32")):
            rate = r.stat(lambda t, lim=lim: size / t[lim] / 1e6)
            share = r.stat(lambda t, dt=dt, lim=lim: 100 * (k * size / t[dt]) / (size / t[lim]))
            print(f"{n:>8}{rows:>5}{r.median('ref'):>9.3f}{dt:>9}{r.ratio('ref', dt).show():>20}"
                  f"{k * size / r.median(dt) / 1e6:>8.0f}{rate.show('.0f'):>22}{share.show('.0f'):>22}"
                  f"{err[dt][1]:>10.1e}{err[dt][2]:>11.1e}")
    print(f"  NumPy reference: float64, {k} scales in a loop; exp = jitted sum(exp(x), -1) over one scale's "
          f"(rows, n), in that dtype; median (range) of {ROUNDS_STATS} interleaved rounds.")


def attention_rnn() -> None:
    """Post 10017: causal attention in its four forms and linear attention, time and memory per
    sequence against the length n; then a two-layer model, KV cache against recomputation.

    Each form runs one sequence (batch 1, d = d_v = 64, scores scaled by 1/√d), checked against the
    masked matrix first (to 1e-10); the ratio is matrix time / form time per round. Memory is the
    bytes of temporaries XLA assigns to the compiled kernel (``compiled_temp_bytes``: inputs and
    the (n, d_v) output not counted), a property of the program, not a measurement of the run.
    """
    print(f"\nattention as an RNN (post 10017); ratio = matrix time / form time, {ROUNDS_RNN} rounds")
    d = 64
    forms = {
        "recurrent (post)": (causal_attention_recurrent, {}, "recurrent"),
        "online": (causal_attention_online, {}, "online"),
        "blocked 64x64": (causal_attention_blocked, {"block_q": 64, "block_k": 64}, "blocked"),
        "linear (elu+1)": (linear_attention_recurrent, {}, "linear"),
    }
    print(f"{'form':<18}{'n':>6}{'ms':>10}{'ratio (range)':>22}{'temp MB':>10}{'matrix MB':>11}")
    for n in (256, 1024, 4096):
        key_q, key_k, key_v = jax.random.split(jax.random.PRNGKey(n), 3)
        q = jax.random.normal(key_q, (1, n, d)) / np.sqrt(d)
        k, v = jax.random.normal(key_k, (1, n, d)), jax.random.normal(key_v, (1, n, d))
        ref = causal_attention_matrix(q, k, v)
        matrix_mb = compiled_temp_bytes("matrix", q, k, v) / 2**20
        fns = {"matrix": lambda: causal_attention_matrix(q, k, v).block_until_ready()}
        for name, (f, kw, _) in forms.items():
            if name.startswith("linear"):  # a different function: checked against its own matrix
                fq, fk = jax.nn.elu(q[0]) + 1, jax.nn.elu(k[0]) + 1
                a = jnp.tril(fq @ fk.T)
                want = (a @ v[0]) / a.sum(-1, keepdims=True)
                np.testing.assert_allclose(np.asarray(f(q, k, v, **kw))[0], np.asarray(want), atol=1e-10)
            else:
                np.testing.assert_allclose(np.asarray(f(q, k, v, **kw)), np.asarray(ref), atol=1e-10)
            fns[name] = lambda f=f, kw=kw: f(q, k, v, **kw).block_until_ready()
        r = interleaved(fns, ROUNDS_RNN, warm_up=False)
        print(f"{'masked matrix':<18}{n:>6}{1e3 * r.median('matrix'):>10.2f}{'1':>22}"
              f"{matrix_mb:>10.2f}{matrix_mb:>11.2f}")
        for name, (f, kw, kind) in forms.items():
            temp_mb = compiled_temp_bytes(kind, q, k, v, **kw) / 2**20
            print(f"{name:<18}{n:>6}{1e3 * r.median(name):>10.2f}{r.ratio('matrix', name).show():>22}"
                  f"{temp_mb:>10.2f}{matrix_mb:>11.2f}")

    print(f"\ntwo attention layers, d = 16: recomputing keys and values vs a KV cache, {ROUNDS_RNN} rounds")
    print(f"{'L':>5}{'cached ms':>11}{'recompute ms':>14}{'slow-down (range)':>24}{'temp KB cached':>16}"
          f"{'recompute':>11}")
    rng = np.random.default_rng(0)
    d2, vocab = 16, 50
    embed = rng.normal(size=(vocab, d2))
    weights = rng.normal(size=(2, 3, d2, d2)) / np.sqrt(d2)
    lengths = (16, 32, 64, 128, 256)
    medians = {"cached": [], "recompute": []}
    for L in lengths:
        tokens = rng.integers(0, vocab, L)
        a = attention_stack(tokens, embed, weights, mode="cached")
        b = attention_stack(tokens, embed, weights, mode="recompute")
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-10)
        r = interleaved({m: lambda m=m: attention_stack(tokens, embed, weights, mode=m).block_until_ready()
                         for m in medians}, ROUNDS_RNN, warm_up=False)
        for m in medians:
            medians[m].append(r.median(m))
        kb = {m: compiled_temp_bytes(f"stack-{m}", tokens, embed, weights) / 2**10 for m in medians}
        print(f"{L:>5}{1e3 * r.median('cached'):>11.3f}{1e3 * r.median('recompute'):>14.3f}"
              f"{r.ratio('recompute', 'cached').show('.1f'):>24}{kb['cached']:>16.1f}{kb['recompute']:>11.1f}")
    for m, t in medians.items():
        fit = power_law_fit(np.array(lengths, float), np.array(t))
        print(f"  {m}: median time ∝ L^({fit.exponent:.2f} ± {fit.stderr:.2f}) over L = {lengths[0]}…{lengths[-1]}; "
              f"last doubling L^{np.log2(t[-1] / t[-2]):.2f}")
    print("  slow-down = recompute time / cached time per round; times include dispatch and argument checks.")


def main() -> None:
    import sys

    if sys.argv[1:] == ["rnn"]:  # only the post-10017 comparison
        print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, float64; {setting()}")
        attention_rnn()
        return
    if sys.argv[1:] == ["stats"]:  # only the fused softmax-statistics kernel
        print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, float64; {setting()}")
        softmax_stats_bench()
        return
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, float64; {setting()}")
    lams = np.linspace(0.05, 1.0, 8)
    print(f"{'kernel':<30}{'n':>7}{'numpy s':>10}{'sulib s':>10}{'ratio (range)':>20}")
    for n in (4096, 65536):
        scores = attention_scores(jax.random.PRNGKey(0), "gaussian", n, 64)
        host = np.asarray(scores)
        np.testing.assert_allclose(np.asarray(softmax_entropy(scores, lams)), numpy_entropy(host, lams), atol=1e-9)
        r = interleaved({"ref": lambda: numpy_entropy(host, lams),
                         "ours": lambda: softmax_entropy(scores, lams).block_until_ready()},
                        ROUNDS, warm_up=False)  # the check above was the warm-up
        print(f"{'softmax_entropy (8 scales)':<30}{n:>7}{r.median('ref'):>10.4f}{r.median('ours'):>10.4f}"
              f"{r.ratio('ref', 'ours').show():>20}")
    # nested prefixes (the chapter's sweep over n): one compiled call vs NumPy per length
    scores = attention_scores(jax.random.PRNGKey(1), "gaussian", 65536, 64)
    host = np.asarray(scores)
    lengths = tuple(2 ** k for k in range(4, 17))
    ours = lambda: prefix_entropy_terms(scores, lengths, lams).entropy.block_until_ready()
    ref = lambda: [numpy_entropy(host[:, :L], lams) for L in lengths]
    np.testing.assert_allclose(np.asarray(ours()), np.stack(ref(), axis=1), atol=1e-9)
    r = interleaved({"ref": ref, "ours": ours}, ROUNDS, warm_up=False)
    print(f"{'prefix_entropy_terms (13 n)':<30}{'2^4…16':>7}{r.median('ref'):>10.4f}"
          f"{r.median('ours'):>10.4f}{r.ratio('ref', 'ours').show():>20}")
    print(f"  ratio = NumPy time / sulib time per round; median (range) of {ROUNDS} interleaved rounds.")
    softmax_stats_bench()
    attention_rnn()


if __name__ == "__main__":
    main()
