"""Shared timing for ``benchmarks/``: interleaved rounds, per-round ratios, median and spread.

After a warm-up call of each function of a comparison (JAX compilation, caches), every function is
timed once per round, in the order given (reference first): ref, ours, ref, ours, ... A function
faster than ``MIN_TIME`` is timed over enough back-to-back calls to last that long (the count is
fixed from a first, calibration round), so that a short kernel and a long reference each average
over many scheduler slices. A ratio is taken within each round (``ref_i / ours_i``), so load that
changes from one round to the next mostly cancels in it; a figure is the median over the rounds
and its spread the range (minimum to maximum) of the per-round values. Absolute times are medians
too, printed for context only.

Importing this module (before numpy and jax) gives a script run alone the environment of
``python3 tasks.py bench`` (JAX on the CPU, single-threaded BLAS) and pins the process to one CPU,
so that XLA sizes its thread pools to one thread, like NumPy's BLAS: with a thread per core, an XLA
kernel on a shared machine waits for whichever of its threads another job has preempted, which made
ratios swing by up to 1.8x between runs (set ``BENCH_ALL_CPUS=1`` to keep every CPU).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if not os.environ.get("BENCH_ALL_CPUS"):
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})

import math  # noqa: E402
import statistics  # noqa: E402
import timeit  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

MIN_TIME = 0.1  # seconds: the shortest timing of one function in one round


@dataclass(frozen=True)
class Spread:
    """Median of per-round values with their minimum and maximum."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def show(self, fmt: str = ".2f") -> str:
        """``median (min–max)``, each number formatted with ``fmt``."""
        return f"{self.median:{fmt}} ({self.low:{fmt}}–{self.high:{fmt}})"


@dataclass(frozen=True)
class Rounds:
    """Seconds per call, ``times[name][i]`` in round i."""

    times: dict[str, list[float]]

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def stat(self, f: Callable[[Mapping[str, float]], float]) -> Spread:
        """Median and range of ``f`` applied to each round's times (a name -> seconds mapping)."""
        n = len(next(iter(self.times.values())))
        return Spread.of([f({k: v[i] for k, v in self.times.items()}) for i in range(n)])

    def ratio(self, num: str, den: str) -> Spread:
        """Per-round ``num / den`` time ratios (reference / sulib: the speed-up)."""
        return self.stat(lambda t: t[num] / t[den])


def interleaved(fns: Mapping[str, Callable[[], object]], rounds: int, *, warm_up: bool = True) -> Rounds:
    """Time each function once per round, in the mapping's order, after one warm-up call of each.

    ``warm_up=False`` when the caller has just called every function (for example in its correctness
    checks). A first round fixes how many back-to-back calls each timing takes (see ``MIN_TIME``);
    it counts as round 1 when every count is 1, and is discarded otherwise.
    """
    if rounds < 5:
        raise ValueError(f"at least 5 rounds, got {rounds}")
    if warm_up:
        for fn in fns.values():
            fn()
    first = {name: timeit.timeit(fn, number=1) for name, fn in fns.items()}  # gc off during the calls
    calls = {name: max(1, math.ceil(MIN_TIME / t)) for name, t in first.items()}
    times = {name: [t] if max(calls.values()) == 1 else [] for name, t in first.items()}
    while len(times[next(iter(fns))]) < rounds:
        for name, fn in fns.items():
            times[name].append(timeit.timeit(fn, number=calls[name]) / calls[name])
    return Rounds(times)


def setting() -> str:
    """Where the timings run: CPUs this process may use and BLAS threads."""
    return (f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs (BENCH_ALL_CPUS=1: all), "
            f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")


def write_result(path: str, script: str, **fields) -> None:
    """Store a benchmark's results as JSON at ``path``, for a chapter that loads it and checks its sha256.

    The record starts with the command that remakes the file (``script`` is the benchmark's path) and
    the machine it ran on; ``fields`` (config, a note on the ratios, results, ...) follow in order.
    """
    import json
    import platform

    import jax

    record = {"command": f"OPENBLAS_NUM_THREADS=1 .venv/bin/python {script} {path}",
              "machine": f"{platform.machine()} CPU, {setting()}; Python "
                         f"{platform.python_version()}, jax {jax.__version__}",
              **fields}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path}")
