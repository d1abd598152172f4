"""Benchmarks: each kernel against a reference implementation, as a ratio measured in the same run.

    python3 tasks.py bench          (or: .venv/bin/python benchmarks/attention.py)

Ratios (reference time / sulib time) are what to compare between machines; absolute times are
printed for context only.
"""

from __future__ import annotations

import timeit

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from sulib.attention import attention_scores, softmax_entropy  # noqa: E402


def numpy_entropy(scores: np.ndarray, lams: np.ndarray) -> np.ndarray:
    out = []
    for lam in lams:
        z = lam * scores
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=-1, keepdims=True)
        out.append(np.log(e.sum(axis=-1)) - (p * z).sum(axis=-1))  # entropy of the shifted logits
    return np.array(out)


def best_of(fn, repeat: int = 5) -> float:
    fn()  # warm-up (compilation)
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def main() -> None:
    lams = np.linspace(0.05, 1.0, 8)
    print(f"{'kernel':<32}{'n':>8}{'reference s':>14}{'sulib s':>12}{'ratio':>8}")
    for n in (4096, 65536):
        scores = attention_scores(jax.random.PRNGKey(0), "gaussian", n, 64)
        host = np.asarray(scores)
        np.testing.assert_allclose(np.asarray(softmax_entropy(scores, lams)), numpy_entropy(host, lams), atol=1e-9)
        ref = best_of(lambda: numpy_entropy(host, lams))
        ours = best_of(lambda: softmax_entropy(scores, lams).block_until_ready())
        print(f"{'softmax_entropy (8 scales)':<32}{n:>8}{ref:>14.4f}{ours:>12.4f}{ref / ours:>8.2f}")


if __name__ == "__main__":
    main()
