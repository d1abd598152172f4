"""Benchmark: sulib.hubness.knn_indices against scikit-learn's NearestNeighbors (brute force).

    .venv/bin/python benchmarks/hubness.py        (writes book/geometry/data/hubness_bench.json)

Same data on both sides: N i.i.d. standard Gaussian points in d dimensions, float64, k = 5
nearest other points of every point (scikit-learn: ``kneighbors(n_neighbors=k + 1)`` with the
point itself dropped). The indices are compared first (fraction of rows that agree exactly);
then time ratios (sklearn / sulib; > 1: sulib faster) are medians of per-round ratios over
interleaved rounds with their range (see ``_timing.py``), on one CPU of a shared machine.
"""

from __future__ import annotations

import json
import pathlib
import sys

from _timing import interleaved, setting  # sets the bench environment; before numpy and jax

import jax  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

jax.config.update("jax_enable_x64", True)

from sulib.hubness import knn_indices  # noqa: E402

K = 5
CASES = ((2000, 10), (2000, 100), (2000, 1000))
OUT = pathlib.Path(__file__).resolve().parents[1] / "book/geometry/data/hubness_bench.json"


def sklearn_knn(x: np.ndarray, k: int) -> np.ndarray:
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    keep = idx != np.arange(len(x))[:, None]
    return np.stack([row[m][:k] for row, m in zip(idx, keep)])


def main() -> None:
    rows = []
    print(f"exact kNN, k = {K}, float64; {setting()}")
    for n, d in CASES:
        x = np.random.default_rng(d).standard_normal((n, d))
        ref = sklearn_knn(x, K)
        ours = np.asarray(knn_indices(x, K))
        agree = float(np.mean(np.all(ref == ours, axis=1)))
        fns = {"sklearn": lambda: sklearn_knn(x, K),
               "sulib": lambda: knn_indices(x, K).block_until_ready()}
        r = interleaved(fns, 5, warm_up=False).ratio("sklearn", "sulib")
        rows.append({"N": n, "d": d, "rows_agree": agree, "ratio_median": r.median,
                     "ratio_low": r.low, "ratio_high": r.high})
        print(f"N = {n} d = {d:>4}: rows agree {agree:.4f}, sklearn/sulib {r.show()}")
    OUT.write_text(json.dumps({"command": "python benchmarks/hubness.py",
                               "setting": setting(), "k": K, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
