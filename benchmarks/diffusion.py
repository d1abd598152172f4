"""Benchmarks of sulib.diffusion: samples per second of each solver at NFE 5, against NumPy.

    .venv/bin/python benchmarks/diffusion.py

Everything is float64 on one CPU core (see ``_timing.py``). The reference is a plain NumPy
implementation of the same solver (the exact mixture velocity, vectorized over the batch, no jit),
run in the same process; ratios (NumPy time / sulib time) are what to compare between machines:
each is the median of per-round ratios over interleaved rounds, with their range. Both sides
compute the same samples, which is asserted before timing.

Setting: a 16-component mixture in d = 64 (``toy_mixture("many", 64)``), batch 4096, EDM schedule,
NFE 5 under the AMED paper's convention (Euler: 5 steps; two-evaluation solvers: 3 steps with the
analytical first step). One velocity evaluation costs about 4 B K d² flops (two batched products with
the covariance eigenvectors), 1.1 GFLOP here.
"""

from __future__ import annotations

from _timing import interleaved, setting  # the script's own folder is on sys.path; sets the bench environment

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from sulib import diffusion as dm  # noqa: E402

B, D, NFE = 4096, 64, 5
ROUNDS = 9


def numpy_velocity(mix: dm.Mixture, x: np.ndarray, t: float) -> np.ndarray:
    """Exact velocity ``(x - E[x_0 | x_t = x]) / t`` of the mixture at noise level ``t``, batch ``(B, d)``."""
    w, mu, lam, U = (np.asarray(a) for a in mix)
    z = np.einsum("bkd,kde->bke", x[:, None, :] - mu[None], U, optimize=True)
    var = lam[None] + t * t
    with np.errstate(divide="ignore"):
        logp = np.log(w)[None] - 0.5 * np.sum(np.log(2 * np.pi * var) + z * z / var, axis=-1)
    logp -= logp.max(axis=1, keepdims=True)
    gamma = np.exp(logp)
    gamma /= gamma.sum(axis=1, keepdims=True)
    post = mu[None] + np.einsum("kde,bke->bkd", U, z * lam[None] / var, optimize=True)
    return (x - np.einsum("bk,bkd->bd", gamma, post)) / t


def numpy_solve(mix: dm.Mixture, x: np.ndarray, grid: np.ndarray, solver: str, afs: bool,
                r: np.ndarray | None = None) -> np.ndarray:
    """The sulib solver ``solver`` on ``grid`` in plain NumPy (AMED: ratios ``r`` per step)."""
    for n, (tc, tn) in enumerate(zip(grid[:-1], grid[1:])):
        d = x / tc if (afs and n == 0) else numpy_velocity(mix, x, tc)
        h = tn - tc
        if solver == "euler":
            x = x + h * d
        elif solver == "heun":
            x = x + 0.5 * h * (d + numpy_velocity(mix, x + h * d, tn))
        else:
            rr = 0.5 if r is None else r[n]
            s = {"midpoint": 0.5 * (tc + tn)}.get(solver, tn**rr * tc ** (1 - rr))
            x = x + h * numpy_velocity(mix, x + (s - tc) * d, s)
    return x


def main() -> None:
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s), float64; "
          f"{setting()}")
    mix = dm.toy_mixture("many", D, seed=0)
    x_T = 80.0 * np.asarray(jax.random.normal(jax.random.PRNGKey(0), (B, D)))
    r = np.array([0.15, 0.4, 0.1])
    print(f"\nSolvers at NFE {NFE}: batch {B}, d = {D}, K = {mix.n_components}; samples per second")
    print(f"{'solver':>9}{'steps':>7}{'AFS':>5}{'numpy s':>10}{'sulib s':>10}{'numpy/s':>10}"
          f"{'sulib/s':>10}{'ratio (range)':>18}")
    for solver in dm.SOLVERS:
        N, afs = dm.steps_for_nfe(solver, NFE)
        grid = dm.edm_grid(N)
        kw = {"r": r} if solver == "amed" else {}
        ref = numpy_solve(mix, x_T, grid, solver, afs, kw.get("r"))
        out, nfe = dm.solve(mix, x_T, grid, solver, afs=afs, **kw)
        assert nfe == NFE
        np.testing.assert_allclose(np.asarray(out), ref, atol=1e-8 * np.abs(ref).max())
        t = interleaved({"ref": lambda: numpy_solve(mix, x_T, grid, solver, afs, kw.get("r")),
                         "ours": lambda: dm.solve(mix, x_T, grid, solver, afs=afs, **kw)[0].block_until_ready()},
                        ROUNDS, warm_up=False)  # the check above was the warm-up
        t_np, t_jx = t.median("ref"), t.median("ours")
        print(f"{solver:>9}{N:>7}{'yes' if afs else 'no':>5}{t_np:>10.3f}{t_jx:>10.3f}{B / t_np:>10.0f}"
              f"{B / t_jx:>10.0f}{t.ratio('ref', 'ours').show():>18}")
    print("  ratio = NumPy time / sulib time per round (jitted solve; compilation excluded by a warm-up call);")
    print(f"  median (range) of {ROUNDS} interleaved rounds; times and samples/s are medians.")


if __name__ == "__main__":
    main()
