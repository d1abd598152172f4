"""Benchmark: sulib's sparsemax / 1.5-entmax against the reference algorithm written in NumPy.

    .venv/bin/python benchmarks/sparsemax.py            (all sizes; or name sizes: ... 65536)

The reference algorithm is deep-spin/entmax's (full sort, cumulative sums, support size = number
of sorted entries above their candidate threshold, gather), transcribed to NumPy. sulib's default
finds the same threshold without sorting (Michelot's support iteration, sort as fallback);
``method="sort"`` is the sort-based definition jitted by XLA, timed too for n <= 2^12 (XLA's CPU
sort is slow, tens of seconds a call at 2^16). Batch 1024 rows, n = 2^8, 2^12, 2^16, float32 on
both sides (sulib keeps the input's dtype), so that the largest batch, 2^26 entries, stays at
256 MiB an array. Ratios (NumPy time / sulib time; > 1: sulib faster) are medians of per-round
ratios over interleaved rounds with their range (see ``_timing.py``); absolute times are printed
for context only.

Last run (2026-12-03, 1 of 2 CPUs, a shared machine: read ratios to about x2), numpy/sulib
with the range over rounds (> 1: sulib faster); the sort path (``method="sort"``) is 5-14x
*slower* than NumPy:

    sparsemax   n = 2^8: 2.28 (1.59-2.76)   2^12: 3.26 (1.07-6.99)   2^16: 4.38 (1.01-4.80)
    entmax1.5   n = 2^8: 2.37 (2.15-2.90)   2^12: 1.21 (1.12-4.58)   2^16: 2.62 (2.32-2.77)
    numpy/sort  n = 2^8: 0.07, 0.10         2^12: 0.19, 0.12         (sparsemax, entmax1.5)

max|Δp| against the NumPy reference, both float32: 2.4e-8 (sparsemax), 1.3e-6 (entmax1.5).
"""

from __future__ import annotations

import sys

from _timing import interleaved, setting  # sets the bench environment; before numpy and jax

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from sulib.sparsemax import entmax15, sparsemax  # noqa: E402

ROWS = 1024
SIZES = (2**8, 2**12, 2**16)
ROUNDS = {2**8: 15, 2**12: 9, 2**16: 5}  # the NumPy reference takes seconds at 2^16
SORT_MAX = 2**12


def numpy_sparsemax(x: np.ndarray) -> np.ndarray:
    """Reference sparsemax over the last axis of ``x`` ``(rows, n)``."""
    x = x - x.max(axis=-1, keepdims=True)
    z = -np.sort(-x, axis=-1)
    cum = np.cumsum(z, axis=-1) - 1
    k = np.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    support = np.sum(k * z > cum, axis=-1, keepdims=True)
    tau = np.take_along_axis(cum, support - 1, axis=-1) / support
    return np.maximum(x - tau, 0)


def numpy_entmax15(x: np.ndarray) -> np.ndarray:
    """Reference 1.5-entmax over the last axis of ``x`` ``(rows, n)``."""
    x = (x - x.max(axis=-1, keepdims=True)) / 2
    z = -np.sort(-x, axis=-1)
    k = np.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    mean = np.cumsum(z, axis=-1) / k
    mean_sq = np.cumsum(z * z, axis=-1) / k
    tau = mean - np.sqrt(np.maximum((1 - k * (mean_sq - mean**2)) / k, 0))
    support = np.sum(tau <= z, axis=-1, keepdims=True)
    tau = np.take_along_axis(tau, support - 1, axis=-1)
    return np.maximum(x - tau, 0) ** 2


def main() -> None:
    print(f"sparsemax / 1.5-entmax, batch {ROWS}, float32; {setting()}")
    print(f"{'map':>10}{'n':>7}{'numpy s':>9}{'sulib s':>9}{'numpy/sulib':>19}"
          f"{'numpy/sort':>19}{'max|Δp|':>9}")
    rng = np.random.default_rng(0)
    sizes = tuple(int(a) for a in sys.argv[1:]) or SIZES
    for n in sizes:
        x = jnp.asarray((2 * rng.standard_normal((ROWS, n))).astype(np.float32))
        x_np = np.asarray(x)
        for name, ref, ours in (("sparsemax", numpy_sparsemax, sparsemax),
                                ("entmax1.5", numpy_entmax15, entmax15)):
            p = ours(x)
            assert p.dtype == np.float32
            err = float(np.max(np.abs(ref(x_np) - np.asarray(p))))
            fns = {"numpy": lambda: ref(x_np), "sulib": lambda: ours(x).block_until_ready()}
            if n <= SORT_MAX:
                fns["sort"] = lambda: ours(x, method="sort").block_until_ready()
            rounds = interleaved(fns, ROUNDS.get(n, 5))
            sort = rounds.ratio("numpy", "sort").show() if "sort" in fns else "-"
            print(f"{name:>10}{n:>7}{rounds.median('numpy'):>9.4f}{rounds.median('sulib'):>9.4f}"
                  f"{rounds.ratio('numpy', 'sulib').show():>19}{sort:>19}{err:>9.1e}")


if __name__ == "__main__":
    main()
