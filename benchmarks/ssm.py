"""Benchmarks of sulib.ssm: linear recurrences against a NumPy loop, and the structured LegS step.

    .venv/bin/python benchmarks/ssm.py

Everything is float64 on one CPU core (see ``_timing.py``). Ratios (reference time / sulib time)
are what to compare between machines: each is the median of per-round ratios over interleaved
rounds, with their range. Achieved GFLOP/s are put against the core's practical peak, a jitted
float64 2048x2048 matrix product timed in every round of the same comparison, so the fraction of
peak is a per-round ratio of times as well.

Flop counts:
    sequential scan: L (2N² + 2N)  (one matrix-vector product, one scaled add per step);
    parallel scan: what the odd/even recursion of ``scan_parallel`` performs, counted level by
        level (about twice the sequential count in batched matrix products, plus 2N³ per
        squaring of Abar): see ``parallel_flops``.
"""

from __future__ import annotations

from _timing import Spread, interleaved, setting  # the script's own folder is on sys.path; sets the bench environment

import jax  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg as sla  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from sulib.ssm import discretize, hippo, legs_scan, scan_parallel, scan_sequential  # noqa: E402

L_SCAN = 2**16
L_LEGS = 1024
PEAK_N = 2048  # the peak's matrix product: PEAK_N x PEAK_N times PEAK_N x PEAK_N
ROUNDS_SCAN = 7
ROUNDS_LEGS = {16: 9, 64: 9, 256: 9, 1024: 5}  # N = 1024: 8-18 s a round on the shared machine


def numpy_scan(Abar: np.ndarray, Bbar: np.ndarray, u: np.ndarray) -> np.ndarray:
    """States ``x_1 .. x_L`` of ``x_(k+1) = Abar x_k + Bbar u_k`` from ``x_0 = 0`` by a Python loop: ``(L, N)``."""
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
    """Flops of the sequential scan: one matvec and one scaled add per step."""
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


def scans() -> None:
    """LegT recurrences: NumPy loop, sequential and parallel scans, and the matmul peak, interleaved."""
    rng = np.random.default_rng(0)
    u = rng.standard_normal(L_SCAN)
    a, b = (jax.random.normal(jax.random.PRNGKey(i), (PEAK_N, PEAK_N), dtype=jnp.float64) for i in (0, 1))
    matmul = jax.jit(jnp.matmul)
    peak_flops, peak_times = 2.0 * PEAK_N**3, []
    matmul(a, b).block_until_ready()  # compile; the checks below warm the scans up
    print(f"\nLinear recurrence x_(k+1) = Abar x_k + Bbar u_k, HiPPO-LegT (bilinear, dt = 1/4096), L = {L_SCAN}")
    print(f"{'N':>4}{'numpy s':>9}{'seq s':>9}{'par s':>9}{'seq ratio (range)':>20}{'par ratio (range)':>20}"
          f"{'seq GF/s':>9}{'par GF/s':>9}{'seq %pk (range)':>19}{'par %pk (range)':>19}")
    for N in (16, 64, 256):
        Abar, Bbar = discretize(*hippo("legt", N), 1 / 4096, "bilinear")
        host_A, host_B = np.asarray(Abar), np.asarray(Bbar)
        reference = numpy_scan(host_A, host_B, u)
        scale = np.abs(reference).max()
        np.testing.assert_allclose(np.asarray(scan_sequential(Abar, Bbar, u)), reference, atol=1e-10 * scale)
        np.testing.assert_allclose(np.asarray(scan_parallel(Abar, Bbar, u)), reference, atol=1e-10 * scale)
        r = interleaved({"ref": lambda: numpy_scan(host_A, host_B, u),
                         "seq": lambda: scan_sequential(Abar, Bbar, u).block_until_ready(),
                         "par": lambda: scan_parallel(Abar, Bbar, u).block_until_ready(),
                         "peak": lambda: matmul(a, b).block_until_ready()}, ROUNDS_SCAN, warm_up=False)
        peak_times += r.times["peak"]
        flops = {"seq": sequential_flops(L_SCAN, N), "par": parallel_flops(L_SCAN, N)}
        pct = {k: r.stat(lambda t, k=k: 100 * flops[k] * t["peak"] / (peak_flops * t[k])) for k in flops}
        print(f"{N:>4}{r.median('ref'):>9.3f}{r.median('seq'):>9.4f}{r.median('par'):>9.4f}"
              f"{r.ratio('ref', 'seq').show():>20}{r.ratio('ref', 'par').show():>20}"
              f"{flops['seq'] / r.median('seq') / 1e9:>9.2f}{flops['par'] / r.median('par') / 1e9:>9.2f}"
              f"{pct['seq'].show('.1f'):>19}{pct['par'].show('.1f'):>19}")
    peak = Spread.of([peak_flops / t / 1e9 for t in peak_times])
    print(f"  practical peak: jitted float64 {PEAK_N}x{PEAK_N} matmul, timed in each of the {len(peak_times)} rounds "
          f"above = {peak.show('.1f')} GFLOP/s")
    print("  ratio = NumPy loop time / sulib time per round; %pk = achieved GFLOP/s over the same round's matmul;")
    print(f"  median (range) of {ROUNDS_SCAN} interleaved rounds; times and GF/s are medians.")
    print(f"  parallel flops = {parallel_flops(L_SCAN, 256) / sequential_flops(L_SCAN, 256):.2f}x the sequential "
          "count at N=256 (work-efficient odd/even scan, one shared power of Abar per level).")


def structured_legs() -> None:
    """The LegS step: structured legs_scan against the dense jitted step and a SciPy loop, interleaved."""
    rng = np.random.default_rng(1)
    u = rng.standard_normal(L_LEGS)
    print(f"\nHiPPO-LegS bilinear step (post 10137), L = {L_LEGS}: structured O(N) products vs dense "
          "(matvec + triangular solve)")
    print(f"{'N':>6}{'scipy us/step':>15}{'dense us/step':>15}{'struct us/step':>16}{'scipy ratio (range)':>20}"
          f"{'dense ratio (range)':>20}")
    for N, rounds in ROUNDS_LEGS.items():
        fast = np.asarray(legs_scan(u, N))
        dense = np.asarray(legs_scan(u, N, structured=False))
        reference = scipy_legs(u, N)
        np.testing.assert_allclose(fast, reference, atol=1e-10 * np.abs(reference).max())
        np.testing.assert_allclose(dense, reference, atol=1e-10 * np.abs(reference).max())
        r = interleaved({"scipy": lambda: scipy_legs(u, N),
                         "dense": lambda: legs_scan(u, N, structured=False).block_until_ready(),
                         "struct": lambda: legs_scan(u, N).block_until_ready()}, rounds, warm_up=False)
        per_step = [1e6 * r.median(k) / L_LEGS for k in ("scipy", "dense", "struct")]
        print(f"{N:>6}{per_step[0]:>15.1f}{per_step[1]:>15.1f}{per_step[2]:>16.1f}"
              f"{r.ratio('scipy', 'struct').show('.1f'):>20}{r.ratio('dense', 'struct').show('.1f'):>20}")
    print("  struct: legs_scan (cumsum + an associative scan over n: O(N) memory, O(N log N) work per step);")
    print("  dense: legs_scan(structured=False), jitted matvec + XLA triangular solve, O(N²) per step;")
    print("  scipy: NumPy matvec + LAPACK solve_triangular per step in a Python loop. ratio = that time / struct,")
    print(f"  per round; median (range) of {', '.join(map(str, ROUNDS_LEGS.values()))} interleaved "
          "rounds (by N); us/step are medians.")


def main() -> None:
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s), float64; "
          f"{setting()}")
    scans()
    structured_legs()


if __name__ == "__main__":
    main()
