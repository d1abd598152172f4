"""Hubness (post 9147): exact k-nearest neighbours, k-occurrence counts, skewness, balls.

* :func:`knn_indices` — the ``k`` nearest other points of each row of ``x`` (shape
  ``(N, d)``) in Euclidean distance, exact, computed in blocks of query rows so that memory
  stays ``O(block · N)`` instead of ``O(N²)``; returns int32 ``(N, k)``;
* :func:`k_occurrence` — ``N_k(i)``, how often point ``i`` is among the ``k`` nearest
  neighbours of the other points (the post's "hub value"); int32 ``(N,)``, sums to ``N k``;
* :func:`skewness` — the standardized third moment ``E[(X - μ)³] / σ³`` (population form,
  as Radovanović et al. use for ``S_{N_k}``);
* :func:`log_ball_cube_ratio` — ``log(V_n / 2ⁿ)`` with ``V_n = π^{n/2} / Γ(n/2 + 1)`` the
  volume of the unit ``n``-ball and ``2ⁿ`` that of its circumscribed cube.

``python -m sulib.hubness paper-run OUT.json`` writes the chapter's stored run
(:data:`PAPER_RUN_CONFIG`): Radovanović et al.'s configuration (``N = 10000``, ``k = 5``,
i.i.d. uniform on ``[0, 1]^d`` and standard normal data, ``d = 3, 20, 100``, plus normal
``d = 1000``), several seeds, with the skewness of ``N_k``, its maximum, and its Spearman
correlation with the distance to the sample mean and to a random data point; the post's hub
filter at its size; and ``N = 2000`` normal data at ``d = 10000``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from sulib._checks import as_finite_array, positive_int

__all__ = ["knn_indices", "k_occurrence", "skewness", "log_ball_cube_ratio"]


def _check_points(x, k: int, block: int) -> tuple[jax.Array, int, int]:
    array = as_finite_array("x", x)
    if array.ndim != 2:
        raise ValueError(f"x must have shape (N, d), got shape {array.shape}")
    if array.dtype == bool:
        raise TypeError("x must hold real coordinates, got dtype bool")
    k = positive_int("k", k)
    block = positive_int("block", block)
    if k >= array.shape[0]:
        raise ValueError(f"k must be < N = {array.shape[0]} (a point is not its own "
                         f"neighbour), got {k}")
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else jnp.result_type(float)
    return jnp.asarray(array, dtype=dtype), k, block


def _smallest_k(d2: jax.Array, k: int) -> jax.Array:
    """Column indices of the ``k`` smallest entries of each row, ascending, ties to the
    lower index: ``k`` rounds of argmin (``argmin`` returns the first minimum)."""
    rows = jnp.arange(d2.shape[0])

    def step(j, carry):
        d, out = carry
        i = jnp.argmin(d, axis=1).astype(jnp.int32)
        return d.at[rows, i].set(jnp.inf), out.at[:, j].set(i)

    out = jnp.zeros((d2.shape[0], k), jnp.int32)
    return jax.lax.fori_loop(0, k, step, (d2, out))[1]


@partial(jax.jit, static_argnames=("k", "block"))
def _knn(x: jax.Array, k: int, block: int) -> jax.Array:
    n = x.shape[0]
    blocks = -(-n // block)
    sq = jnp.sum(x * x, axis=1)
    rows = jnp.arange(blocks * block).reshape(blocks, block)

    def one_block(r):
        q = x[jnp.minimum(r, n - 1)]                            # (block, d), padded rows
        d2 = sq[jnp.minimum(r, n - 1)][:, None] + sq[None, :] - 2 * q @ x.T
        d2 = jnp.where(r[:, None] == jnp.arange(n)[None, :], jnp.inf, d2)  # not itself
        return _smallest_k(d2, k)                               # (block, k)

    return jax.lax.map(one_block, rows).reshape(blocks * block, k)[:n]


def knn_indices(x, k: int, *, block: int = 512) -> jax.Array:
    """Indices of the ``k`` nearest other points of every row of ``x``.

    ``x``: ``(N, d)`` real; ``k``: ``1 <= k < N``; ``block``: query rows per step (memory
    ``block × N`` distances). Returns int32 ``(N, k)``, nearest first; the point itself is
    excluded. Squared distances are ``‖q‖² + ‖x‖² − 2 q·x`` in ``x``'s float dtype.
    """
    x, k, block = _check_points(x, k, block)
    return _knn(x, k, min(block, x.shape[0]))


@partial(jax.jit, static_argnames=("n",))
def _count(idx: jax.Array, n: int) -> jax.Array:
    return jnp.zeros(n, jnp.int32).at[idx.ravel()].add(1)


def k_occurrence(x, k: int, *, block: int = 512) -> jax.Array:
    """``N_k(i)`` = number of points ``j ≠ i`` that have ``i`` among their ``k`` nearest.

    ``x``: ``(N, d)``; returns int32 ``(N,)`` with ``sum = N k``.
    """
    x, k, block = _check_points(x, k, block)
    return _count(_knn(x, k, min(block, x.shape[0])), x.shape[0])


@jax.jit
def _skew(v: jax.Array) -> jax.Array:
    c = v - jnp.mean(v, axis=-1, keepdims=True)
    return jnp.mean(c**3, axis=-1) / jnp.mean(c**2, axis=-1) ** 1.5


def skewness(values) -> jax.Array:
    """Population skewness ``mean((v−μ)³) / mean((v−μ)²)^{3/2}`` over the last axis.

    ``values``: ``(..., M)`` with ``M >= 2`` and not constant; returns ``(...)``.
    """
    v = as_finite_array("values", values, min_ndim=1)
    if v.shape[-1] < 2:
        raise ValueError(f"values must have at least 2 entries on the last axis, got {v.shape}")
    if np.any(np.ptp(v, axis=-1) == 0):
        raise ValueError("values must not be constant along the last axis (σ = 0)")
    return _skew(jnp.asarray(v, dtype=jnp.result_type(float)))


@jax.jit
def _log_ratio(n: jax.Array) -> jax.Array:
    return n / 2 * jnp.log(jnp.pi) - gammaln(n / 2 + 1) - n * jnp.log(2.0)


def log_ball_cube_ratio(n) -> jax.Array:
    """``log(V_n / 2ⁿ)``, the log volume fraction of the cube ``[-1, 1]ⁿ`` in the unit ball.

    ``n``: dimensions ``> 0``, any shape; returns the same shape (float).
    """
    arr = as_finite_array("n", n)
    if np.any(arr <= 0):
        raise ValueError("n must be > 0")
    return _log_ratio(jnp.asarray(arr, dtype=jnp.result_type(float)))


# ---------------------------------------------------------------------- the stored run

#: Configuration of the stored run (``python -m sulib.hubness paper-run OUT.json``).
PAPER_RUN_CONFIG = dict(
    k=5, n=10_000, n_bins=20,
    paper={"normal": {"dims": [3, 20, 100, 1000], "seeds": [0, 1, 2, 3, 4]},
           "uniform": {"dims": [3, 20, 100], "seeds": [0, 1, 2]}},
    filter={"z_dim": 128, "t": 50, "seeds": list(range(10))},
    high_d={"n": 2000, "d": 10_000, "seeds": [0, 1, 2]})


def _sample(dist: str, n: int, d: int, seed: int) -> np.ndarray:
    """``(n, d)`` float64 points, i.i.d. ``"normal"`` (standard) or ``"uniform"`` on [0, 1)."""
    rng = np.random.default_rng([seed, d, {"normal": 0, "uniform": 1}[dist]])
    if dist == "normal":
        return rng.standard_normal((n, d))
    return rng.uniform(0, 1, (n, d))


def _summary(x: np.ndarray, k: int, n_bins: int | None = None) -> dict:
    """Skewness and maximum of ``N_k`` for ``x`` ``(N, d)``, and the Spearman correlation of
    ``N_k`` with the distance to the sample mean and (other points) to ``x[0]``; with
    ``n_bins``, also the mean distance and mean ``N_k`` in ``n_bins`` equal-count bins of
    the distance to the mean (lists of length ``n_bins``)."""
    import scipy.stats

    counts = np.asarray(k_occurrence(x, k))
    dist_mean = np.linalg.norm(x - x.mean(0), axis=1)
    dist_point = np.linalg.norm(x - x[0], axis=1)
    out = {"skew": float(skewness(counts)), "max": int(counts.max()),
           "rho_mean": float(scipy.stats.spearmanr(counts, dist_mean)[0]),
           "rho_point": float(scipy.stats.spearmanr(counts[1:], dist_point[1:])[0])}
    if n_bins:  # mean N_k and distance in equal-count bins of the distance to the mean
        order = np.array_split(np.argsort(dist_mean, kind="stable"), n_bins)
        out["bin_dist"] = [float(dist_mean[b].mean()) for b in order]
        out["bin_count"] = [float(counts[b].mean()) for b in order]
    return out


def _main(argv=None) -> None:  # pragma: no cover - a CLI
    """``python -m sulib.hubness paper-run OUT.json``: the chapter's stored run."""
    import argparse
    import sys

    from sulib._stored import write_stored_run

    parser = argparse.ArgumentParser(prog="python -m sulib.hubness")
    parser.add_argument("what", choices=["paper-run"])
    parser.add_argument("out", help="path of the .json file to write")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    cfg = PAPER_RUN_CONFIG
    k, n = cfg["k"], cfg["n"]
    paper = []
    for dist, spec in cfg["paper"].items():
        for d in spec["dims"]:
            for seed in spec["seeds"]:
                bins = cfg["n_bins"] if seed == 0 else None   # binned profile: seed 0
                row = _summary(_sample(dist, n, d, seed), k, bins)
                paper.append({"dist": dist, "d": d, "seed": seed, **row})
                print(f"{dist} d = {d} seed {seed}: skew {row['skew']:.2f}",
                      file=sys.stderr, flush=True)
    filt = []
    for seed in cfg["filter"]["seeds"]:
        rng = np.random.default_rng([seed, 9147])
        z = rng.standard_normal((n, cfg["filter"]["z_dim"]))
        s = np.asarray(k_occurrence(z, k))
        t = cfg["filter"]["t"]
        filt.append({"seed": seed, "ge": int(np.sum(s >= t)), "gt": int(np.sum(s > t)),
                     "at": int(np.sum(s == t)), "max": int(s.max())})
    high = []
    for seed in cfg["high_d"]["seeds"]:
        x = _sample("normal", cfg["high_d"]["n"], cfg["high_d"]["d"], seed)
        high.append({"seed": seed, **_summary(x, k)})
    write_stored_run(args.out, "sulib.hubness", argv, config=cfg, paper=paper, filter=filt,
                     high_d=high)


if __name__ == "__main__":  # pragma: no cover
    _main()
