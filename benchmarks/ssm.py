"""Benchmarks of sulib.ssm: linear recurrences against a NumPy loop, and the structured LegS step.

    .venv/bin/python benchmarks/ssm.py

Everything is float64 on the CPU. Ratios (reference time / sulib time) are what to compare
between machines. Achieved GFLOP/s are put against the machine's practical peak, measured in the
same run as the best time of a jitted float64 matrix product.

Flop counts:
    sequential scan: L (2N² + 2N)  (one matrix-vector product, one scaled add per step);
    parallel scan: what the odd/even recursion of ``scan_parallel`` performs, counted level by
        level (about twice the sequential count in batched matrix products, plus 2N³ per
        squaring of Abar): see ``parallel_flops``.
"""

from __future__ import annotations

import timeit

import jax
import numpy as np
import scipy.linalg as sla

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from sulib.ssm import discretize, hippo, legs_scan, scan_parallel, scan_sequential  # noqa: E402

L_SCAN = 2**16
L_LEGS = 1024


def best_of(fn, repeat: int = 3) -> float:
    fn()  # warm-up (compilation)
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def numpy_scan(Abar: np.ndarray, Bbar: np.ndarray, u: np.ndarray) -> np.ndarray:
    x = np.zeros(Abar.shape[0])
    out = np.empty((u.size, x.size))
    for k in range(u.size):
        x = Abar @ x + Bbar * u[k]
        out[k] = x
    return out


def scipy_legs(u: np.ndarray, N: int) -> np.ndarray:
    """The post's LegS bilinear rule with dense matrices, one LAPACK triangular solve per step."""
    A, B = hippo("legs", N)
    eye = np.eye(N)
    x = u[0] * np.linalg.solve(A, -B)
    out = [x]
    for k in range(1, u.size):
        x = sla.solve_triangular(eye - A / (2 * (k + 1)), x + A @ x / (2 * k) + B * u[k] / k, lower=True)
        out.append(x)
    return np.array(out)


def sequential_flops(L: int, N: int) -> float:
    return L * (2.0 * N * N + 2.0 * N)


def parallel_flops(L: int, N: int) -> float:
    """Flops of scan_parallel: Bbar u, then per level M -> M//2 two rounds of (matvec + add)."""
    total, M = float(L * N), L + 1  # x0 joins the sequence as element -1
    while M > 1:
        half = M // 2
        total += (half + (M - 1) // 2) * (2.0 * N * N + N)
        if half > 1:
            total += 2.0 * N**3  # the squaring that the next level uses
        M = half
    return total


def peak_gflops(n: int = 2048) -> float:
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype=jnp.float64)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype=jnp.float64)
    matmul = jax.jit(jnp.matmul)
    return 2.0 * n**3 / best_of(lambda: matmul(a, b).block_until_ready(), repeat=5) / 1e9


def scans(peak: float) -> None:
    rng = np.random.default_rng(0)
    u = rng.standard_normal(L_SCAN)
    print(f"\nLinear recurrence x_(k+1) = Abar x_k + Bbar u_k, HiPPO-LegT (bilinear, dt = 1/4096), L = {L_SCAN}")
    print(f"{'N':>5}{'numpy s':>10}{'seq s':>9}{'par s':>9}{'seq ratio':>11}{'par ratio':>11}"
          f"{'seq GF/s':>10}{'seq %pk':>9}{'par GF/s':>10}{'par %pk':>9}")
    for N in (16, 64, 256):
        Abar, Bbar = discretize(*hippo("legt", N), 1 / 4096, "bilinear")
        host_A, host_B = np.asarray(Abar), np.asarray(Bbar)
        reference = numpy_scan(host_A, host_B, u)
        scale = np.abs(reference).max()
        np.testing.assert_allclose(np.asarray(scan_sequential(Abar, Bbar, u)), reference, atol=1e-10 * scale)
        np.testing.assert_allclose(np.asarray(scan_parallel(Abar, Bbar, u)), reference, atol=1e-10 * scale)
        t_ref = min(timeit.repeat(lambda: numpy_scan(host_A, host_B, u), number=1, repeat=2))
        t_seq = best_of(lambda: scan_sequential(Abar, Bbar, u).block_until_ready())
        t_par = best_of(lambda: scan_parallel(Abar, Bbar, u).block_until_ready())
        g_seq = sequential_flops(L_SCAN, N) / t_seq / 1e9
        g_par = parallel_flops(L_SCAN, N) / t_par / 1e9
        print(f"{N:>5}{t_ref:>10.3f}{t_seq:>9.4f}{t_par:>9.4f}{t_ref / t_seq:>11.1f}{t_ref / t_par:>11.1f}"
              f"{g_seq:>10.2f}{100 * g_seq / peak:>8.1f}%{g_par:>10.2f}{100 * g_par / peak:>8.1f}%")
    print("  ratio = NumPy loop time / sulib time; %pk = achieved GFLOP/s over the matmul peak above.")
    print(f"  parallel flops = {parallel_flops(L_SCAN, 256) / sequential_flops(L_SCAN, 256):.2f}x the sequential "
          "count at N=256 (work-efficient odd/even scan, one shared power of Abar per level).")


def structured_legs() -> None:
    rng = np.random.default_rng(1)
    u = rng.standard_normal(L_LEGS)
    print(f"\nHiPPO-LegS bilinear step (post 10137), L = {L_LEGS}: structured O(N) products vs dense "
          "(matvec + triangular solve)")
    print(f"{'N':>6}{'scipy us/step':>15}{'dense us/step':>15}{'struct us/step':>16}{'scipy ratio':>13}"
          f"{'dense ratio':>13}")
    for N in (16, 64, 256, 1024):
        fast = np.asarray(legs_scan(u, N))
        dense = np.asarray(legs_scan(u, N, structured=False))
        reference = scipy_legs(u, N)
        np.testing.assert_allclose(fast, reference, atol=1e-10 * np.abs(reference).max())
        np.testing.assert_allclose(dense, reference, atol=1e-10 * np.abs(reference).max())
        t_ref = min(timeit.repeat(lambda: scipy_legs(u, N), number=1, repeat=2))
        t_dense = best_of(lambda: legs_scan(u, N, structured=False).block_until_ready(), repeat=2 if N > 256 else 3)
        t_fast = best_of(lambda: legs_scan(u, N).block_until_ready(), repeat=5)
        per_step = [1e6 * t / L_LEGS for t in (t_ref, t_dense, t_fast)]
        print(f"{N:>6}{per_step[0]:>15.1f}{per_step[1]:>15.1f}{per_step[2]:>16.1f}{t_ref / t_fast:>13.1f}"
              f"{t_dense / t_fast:>13.1f}")
    print("  struct: legs_scan (cumsum + an associative scan over n: O(N) memory, O(N log N) work per step);")
    print("  dense: legs_scan(structured=False), jitted matvec + XLA triangular solve, O(N²) per step;")
    print("  scipy: NumPy matvec + LAPACK solve_triangular per step in a Python loop. ratio = that time / struct.")


def main() -> None:
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s), float64")
    peak = peak_gflops()
    print(f"practical peak: jitted float64 2048x2048 matmul = {peak:.1f} GFLOP/s")
    scans(peak)
    structured_legs()


if __name__ == "__main__":
    main()
