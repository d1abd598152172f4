"""Benchmarks: each kernel against a reference implementation, as a ratio measured in the same run.

    python3 tasks.py bench          (or: .venv/bin/python benchmarks/attention.py)

Ratios (reference time / sulib time) are what to compare between machines: each is the median of
per-round ratios over interleaved rounds, with its range (see ``_timing.py``);
absolute times are medians, printed for context only.
"""

from __future__ import annotations

from _timing import interleaved, setting  # the script's own folder is on sys.path; sets the bench environment

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from sulib.attention import attention_scores, prefix_entropy_terms, softmax_entropy  # noqa: E402

ROUNDS = 31


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


def main() -> None:
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


if __name__ == "__main__":
    main()
