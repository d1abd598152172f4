"""Benchmarks of sulib.ssm.kernels: three ways to the convolution kernel, and convolution against scans.

    .venv/bin/python benchmarks/ssm_kernels.py

Same method as ``ssm.py`` (see ``_timing.py``): float64 on one pinned CPU core, interleaved rounds,
per-round ratios (reference time / other time) reported as median (range), and achieved GFLOP/s
put against the practical peak of a jitted float64 2048x2048 matrix product timed in every round
of the same comparison (so % of peak is a per-round ratio of times too). Absolute times and GFLOP/s
are medians, for context only.

The system: HiPPO-LegS, ``A, B = hippo("legs", N)``, under the bilinear rule with the fixed step
``STEP`` (S4's time-invariant use of LegS), ``C`` standard normal. Every route is first checked
against ``kernel_powers`` (or the scans against each other and ``fft_conv``) before it is timed.

1. Kernel generation, ``K_j = C^T Abar^j Bbar`` for ``j < L``, N in {64, 256}, L in {2^10, 2^12, 2^14}:
   powers     ``kernel_powers(Abar, Bbar, C, L)``, dense real Abar: the reference;
   Cauchy     S4's route, ``kernel_dplr(Λ, P, P, B̃, C̃, STEP, L, c_tilde=True)`` in the unitary
              basis of ``legs_dplr(N)`` (``C̃`` precomputed, as S4 learns it), real part taken;
   rational   ``kernel_rational(b, a, L)`` with d = N. The LegS system's own ``(b, a)`` cannot be
              used: its denominator ``Π(1 - μ_i z)`` at z = 1 is ~1e-19 at N = 16 and ~1e-43 at
              N = 64 while ``a`` has entries up to ~7e3 and ~1e14, so the value evaluated from ``a``
              is lost to cancellation and kernel_rational rightly refuses it. Its cost does not
              depend on the values, so it is timed on a random stable ``(b, a)`` of the same order
              (``Σ|a_i| = 1/2``: the denominator stays >= 1/2 on the unit circle), checked against
              scipy.signal.lfilter's impulse response folded modulo L.
   Also the rational route alone at L = 2^14 against d in {16, ..., 4096} (the post: cost O(L log L)
   whatever d), timed interleaved with d = 16 as the reference.
2. The whole output ``y`` of one signal (batch 1), L = 2^6 .. 2^16 at N in {16, 64}:
   seq        ``scan_sequential(Abar, Bbar, u) @ C`` (the reference);
   par        ``scan_parallel(Abar, Bbar, u) @ C``;
   fft        ``fft_conv(u, K)`` with the kernel K precomputed (it is fixed once the model is);
   fft+K      the Cauchy route for K, then fft_conv: the end-to-end cost for one signal
              (a batch of B signals would share one K).

Flop counts (complex multiply 6, multiply-add 8, divide or reciprocal 11 real flops; an FFT of
size n costs 5 n log2 n complex, 2.5 n log2 n real; O(L) terms left out where a count says so):
    powers: L (2N² + 2N) real (the sequential scan's count, ``ssm.sequential_flops``); a complex
        system would cost 4x;
    Cauchy: 45 L N (for each of the L x N Cauchy entries: subtract 2, reciprocal 11, four
        multiply-adds 32, the four sums being one (L, N) @ (N, 4) product) + 5 L log2 L (inverse
        complex FFT); the O(L) Woodbury combination and the O(N) weights left out;
    rational: 3 x 2.5 L log2 L (two real FFTs and an inverse) + 11 (L/2 + 1) (the division);
    fft_conv: 3 x 2.5 (2L) log2(2L) (real FFTs of the zero-padded signal and kernel, and the
        inverse) + 6 (L + 1) (the product);
    seq / par: ``ssm.sequential_flops`` / ``ssm.parallel_flops`` + 2 L N for ``states @ C``;
    fft+K: Cauchy + fft_conv.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from _timing import Spread, interleaved, setting  # the script's own folder is on sys.path; sets the bench environment
from ssm import PEAK_N, parallel_flops, sequential_flops  # noqa: E402

import jax  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

jax.config.update("jax_enable_x64", True)
matplotlib.use("Agg")

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from sulib.plotting import finish, use_book_style  # noqa: E402
from sulib.ssm import (  # noqa: E402
    discretize,
    fft_conv,
    hippo,
    kernel_dplr,
    kernel_powers,
    kernel_rational,
    legs_dplr,
    scan_parallel,
    scan_sequential,
    truncated_output,
)

STEP = 0.01  # bilinear step of the time-invariant LegS system
N_KERNEL, L_KERNEL = (64, 256), (2**10, 2**12, 2**14)
D_RATIONAL, L_RATIONAL = (16, 64, 256, 1024, 4096), 2**14
N_CROSS, L_CROSS = (16, 64), tuple(2**k for k in range(6, 17))
ROUNDS_KERNEL, ROUNDS_RATIONAL, ROUNDS_CROSS = 7, 7, 7
FIGURE = Path(__file__).resolve().parent / "figures" / "ssm_kernels.png"


# ------------------------------------------------------------------------------------ flop counts


def fft_flops(n: int, real: bool = False) -> float:
    """One FFT of size ``n``: ``5 n log2 n`` complex, half that for a real input."""
    return (2.5 if real else 5.0) * n * math.log2(n)


def powers_flops(L: int, N: int, complex_: bool = False) -> float:
    """kernel_powers: a matvec and a dot product per entry; 4x for complex arithmetic."""
    return (4.0 if complex_ else 1.0) * sequential_flops(L, N)


def cauchy_flops(L: int, N: int) -> float:
    """kernel_dplr: L x N Cauchy entries (subtract, reciprocal, four multiply-adds) + inverse FFT."""
    return 45.0 * L * N + fft_flops(L)


def rational_flops(L: int) -> float:
    """kernel_rational, real (b, a): two real FFTs, an inverse, L/2 + 1 complex divisions."""
    return 3 * fft_flops(L, real=True) + 11.0 * (L // 2 + 1)


def conv_flops(L: int) -> float:
    """fft_conv, real kernel: three real FFTs of size 2L and L + 1 complex products."""
    return 3 * fft_flops(2 * L, real=True) + 6.0 * (L + 1)


def scan_output_flops(L: int, N: int, parallel: bool) -> float:
    """A scan's count (from ssm.py) plus ``states @ C``."""
    return (parallel_flops if parallel else sequential_flops)(L, N) + 2.0 * L * N


# ------------------------------------------------------------------------------------ the systems


class LegS:
    """The bilinear LegS system of size N, densely (real) and in legs_dplr's unitary basis."""

    def __init__(self, N: int, seed: int = 0):
        A, B = hippo("legs", N)
        self.N = N
        self.Abar, self.Bbar = discretize(A, B, STEP, "bilinear")
        self.C = np.random.default_rng(seed).standard_normal(N)
        self.Lambda, self.P, self.Bv, V = legs_dplr(N)
        self.Cv = V.conj().T @ self.C  # y = C^T x = (V^* C)^* (V^* x)
        eye = np.eye(N)
        Av = np.diag(self.Lambda) - np.outer(self.P, self.P.conj())
        self.Abar_v = np.linalg.solve(eye - STEP / 2 * Av, eye + STEP / 2 * Av)

    def c_tilde(self, L: int) -> np.ndarray:
        """``C̃ = (I - Abar^L)^* C`` in the unitary basis (what S4 learns instead of C)."""
        return np.asarray(truncated_output(self.Abar_v, self.Cv, L))

    def cauchy(self, Ct: np.ndarray, L: int) -> jax.Array:
        """The real kernel by S4's route (the imaginary part is rounding for a real system)."""
        return kernel_dplr(self.Lambda, self.P, self.P, self.Bv, Ct, STEP, L, c_tilde=True).real


def stable_rational(d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random real ``(b, a)`` of order d with ``Σ|a_i| = 1/2``: no pole on or inside the unit circle."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(d)
    return rng.standard_normal(d) / math.sqrt(d), 0.5 * a / np.abs(a).sum()


def folded_impulse_response(b: np.ndarray, a: np.ndarray, L: int, periods: int = 4) -> np.ndarray:
    """``Σ_m h_{k + mL}`` for ``k < L``, h the impulse response of b(z)/(1 + a_1 z + ...) (lfilter)."""
    impulse = np.zeros(periods * L)
    impulse[0] = 1.0
    return scipy.signal.lfilter(b, np.r_[1.0, a], impulse).reshape(periods, L).sum(axis=0)


def close(x, reference, what: str, rtol: float = 1e-10) -> None:
    """Assert ``max|x - reference| <= rtol max|reference|`` (the routes agree to rounding)."""
    x, reference = np.asarray(x), np.asarray(reference)
    scale = np.abs(reference).max()
    err = np.abs(x - reference).max()
    if not err <= rtol * scale:
        raise AssertionError(f"{what}: max |Δ| = {err:.3g} > {rtol:g} x max|reference| = {rtol * scale:.3g}")


def peak_setup():
    """The peak's operands and jitted product (compiled), and its flop count."""
    a, b = (jax.random.normal(jax.random.PRNGKey(i), (PEAK_N, PEAK_N), dtype=jnp.float64) for i in (0, 1))
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    return (lambda: matmul(a, b).block_until_ready()), 2.0 * PEAK_N**3


def percent_of_peak(r, flops: dict[str, float], peak_flops: float) -> dict[str, Spread]:
    """Per-round achieved GFLOP/s over the same round's matmul GFLOP/s, in %."""
    return {k: r.stat(lambda t, k=k: 100 * flops[k] * t["peak"] / (peak_flops * t[k])) for k in flops}


# ------------------------------------------------------------------------------ kernel generation


def kernels(peak, peak_flops: float, peak_times: list[float]) -> None:
    """Powers vs Cauchy vs rational, N x L grid, interleaved with the peak."""
    print(f"\nKernel generation K_j = C^T Abar^j Bbar, j < L: HiPPO-LegS bilinear, step {STEP}; "
          f"ratio = powers time / route time; {ROUNDS_KERNEL} rounds")
    print(f"{'N':>4}{'L':>7}{'pow ms':>9}{'Cau ms':>9}{'rat ms':>9}{'Cauchy ratio (range)':>24}"
          f"{'rational ratio (range)':>26}{'pow GF/s':>9}{'Cau GF/s':>9}{'rat GF/s':>9}"
          f"{'pow %pk (range)':>19}{'Cau %pk (range)':>19}{'rat %pk (range)':>22}")
    for N in N_KERNEL:
        system = LegS(N)
        b, a = stable_rational(N, seed=N)
        for L in L_KERNEL:
            Ct = system.c_tilde(L)
            reference = np.asarray(kernel_powers(system.Abar, system.Bbar, system.C, L))
            close(system.cauchy(Ct, L), reference, f"Cauchy route, N={N} L={L}")
            close(kernel_rational(b, a, L), folded_impulse_response(b, a, L), f"rational route, d={N} L={L}")
            r = interleaved({"pow": lambda: kernel_powers(system.Abar, system.Bbar, system.C, L).block_until_ready(),
                             "Cau": lambda: system.cauchy(Ct, L).block_until_ready(),
                             "rat": lambda: kernel_rational(b, a, L).block_until_ready(),
                             "peak": peak}, ROUNDS_KERNEL, warm_up=False)
            peak_times += r.times["peak"]
            flops = {"pow": powers_flops(L, N), "Cau": cauchy_flops(L, N), "rat": rational_flops(L)}
            pct = percent_of_peak(r, flops, peak_flops)
            gf = {k: flops[k] / r.median(k) / 1e9 for k in flops}
            print(f"{N:>4}{L:>7}" + "".join(f"{1e3 * r.median(k):>9.3f}" for k in flops)
                  + f"{r.ratio('pow', 'Cau').show('.1f'):>24}{r.ratio('pow', 'rat').show('.1f'):>26}"
                  + "".join(f"{gf[k]:>9.2f}" for k in flops)
                  + f"{pct['pow'].show('.1f'):>19}{pct['Cau'].show('.1f'):>19}{pct['rat'].show('.2f'):>22}")
    print("  Cauchy: kernel_dplr(c_tilde=True), C̃ precomputed per L (S4 learns C̃); the real part is taken.")
    print("  rational: kernel_rational on a random stable (b, a) of order d = N (LegS's own (b, a) is lost to")
    print("  cancellation, see the docstring); its output checked against lfilter's folded impulse response.")


def rational_against_d(peak, peak_flops: float, peak_times: list[float]) -> None:
    """The rational route at fixed L for growing order d, interleaved (d = 16 the reference)."""
    cases = {d: stable_rational(d, seed=d) for d in D_RATIONAL}
    for d, (b, a) in cases.items():
        close(kernel_rational(b, a, L_RATIONAL), folded_impulse_response(b, a, L_RATIONAL), f"rational, d={d}")
    fns = {f"d={d}": (lambda b=b, a=a: kernel_rational(b, a, L_RATIONAL).block_until_ready())
           for d, (b, a) in cases.items()}
    r = interleaved({**fns, "peak": peak}, ROUNDS_RATIONAL, warm_up=False)
    peak_times += r.times["peak"]
    flops = {k: rational_flops(L_RATIONAL) for k in fns}
    pct = percent_of_peak(r, flops, peak_flops)
    first = next(iter(fns))
    print(f"\nRational route alone, L = {L_RATIONAL}, against the order d ({ROUNDS_RATIONAL} rounds); "
          f"ratio = d = {D_RATIONAL[0]} time / this time")
    print(f"{'d':>6}{'ms':>9}{'ratio (range)':>20}{'GF/s':>8}{'%pk (range)':>20}")
    for d, k in zip(D_RATIONAL, fns):
        print(f"{d:>6}{1e3 * r.median(k):>9.3f}{r.ratio(first, k).show():>20}"
              f"{flops[k] / r.median(k) / 1e9:>8.2f}{pct[k].show('.2f'):>20}")


# ------------------------------------------------------------------------------- the crossover


def spans(Ls: list[int]) -> str:
    """Powers of two as runs of exponents: [64, 128, 256, 1024] -> '2^6–2^8, 2^10'."""
    exps, runs = sorted(int(math.log2(L)) for L in Ls), []
    for e in exps:
        if runs and e == runs[-1][1] + 1:
            runs[-1][1] = e
        else:
            runs.append([e, e])
    return ", ".join(f"2^{a}" if a == b else f"2^{a}–2^{b}" for a, b in runs) or "none"


def crossover(peak, peak_flops: float, peak_times: list[float]) -> dict:
    """Scans + C vs fft_conv (kernel given) vs Cauchy kernel + fft_conv, one signal, L swept."""
    results, rates = {}, []
    names = ("seq", "par", "fft", "fft+K")
    print(f"\nWhole output y of one signal (batch 1), HiPPO-LegS bilinear, step {STEP}; ratio = seq time / "
          f"route time; {ROUNDS_CROSS} rounds")
    print(f"{'N':>4}{'L':>7}{'seq ms':>9}{'par ms':>9}{'fft ms':>9}{'fft+K ms':>10}{'par ratio (range)':>20}"
          f"{'fft ratio (range)':>20}{'fft+K ratio (range)':>22}")
    rng = np.random.default_rng(2)
    for N in N_CROSS:
        system = LegS(N)
        C = jnp.asarray(system.C)
        for L in L_CROSS:
            u = rng.standard_normal(L)
            Ct = system.c_tilde(L)
            K = system.cauchy(Ct, L)
            y_seq = scan_sequential(system.Abar, system.Bbar, u) @ C
            close(scan_parallel(system.Abar, system.Bbar, u) @ C, y_seq, f"parallel scan, N={N} L={L}")
            close(fft_conv(u, K), y_seq, f"fft_conv, N={N} L={L}")
            r = interleaved({"seq": lambda: (scan_sequential(system.Abar, system.Bbar, u) @ C).block_until_ready(),
                             "par": lambda: (scan_parallel(system.Abar, system.Bbar, u) @ C).block_until_ready(),
                             "fft": lambda: fft_conv(u, K).block_until_ready(),
                             "fft+K": lambda: fft_conv(u, system.cauchy(Ct, L)).block_until_ready(),
                             "peak": peak}, ROUNDS_CROSS, warm_up=True)
            peak_times += r.times["peak"]
            flops = {"seq": scan_output_flops(L, N, False), "par": scan_output_flops(L, N, True),
                     "fft": conv_flops(L), "fft+K": conv_flops(L) + cauchy_flops(L, N)}
            pct = percent_of_peak(r, flops, peak_flops)
            ratios = {k: r.ratio("seq", k) for k in names[1:]}
            results[N, L] = {"ratio": ratios, "time": {k: Spread.of(r.times[k]) for k in names}}
            print(f"{N:>4}{L:>7}" + "".join(f"{1e3 * r.median(k):>{10 if k == 'fft+K' else 9}.3f}" for k in names)
                  + f"{ratios['par'].show():>20}{ratios['fft'].show('.1f'):>20}{ratios['fft+K'].show():>22}")
            rates.append(f"{N:>4}{L:>7}" + "".join(f"{flops[k] / r.median(k) / 1e9:>11.2f}" for k in names)
                         + "".join(f"{pct[k].show('.1f' if k != 'fft' else '.2f'):>19}" for k in names))
    print("  seq/par: scan_sequential/scan_parallel(Abar, Bbar, u) @ C; fft: fft_conv(u, K), K precomputed;")
    print("  fft+K: kernel_dplr (Cauchy route, C̃ given) + real part + fft_conv. One signal per call.")
    for N in N_CROSS:
        for k in names[1:]:
            wins = [L for L in L_CROSS if results[N, L]["ratio"][k].median > 1]
            print(f"  N = {N:>3}, {k:<5}: faster than seq (median ratio > 1) at L = {spans(wins)}")
    print("\nThe same runs: achieved GFLOP/s (median) and % of the same round's matmul peak")
    print(f"{'N':>4}{'L':>7}" + "".join(f"{k + ' GF/s':>11}" for k in names)
          + "".join(f"{k + ' %pk (range)':>19}" for k in names))
    print("\n".join(rates))
    return results


def figure(results: dict) -> None:
    """Time per call against L (N = 64), and the speed-ups over the sequential scan (both N)."""
    use_book_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2))
    labels = {"seq": "sequential scan", "par": "parallel scan", "fft": "fft_conv (K given)",
              "fft+K": "Cauchy K + fft_conv"}
    N = max(N_CROSS)
    Ls = np.array(L_CROSS)
    for k, label in labels.items():
        t = [results[N, L]["time"][k] for L in L_CROSS]
        med = np.array([s.median for s in t]) * 1e3
        err = np.array([[s.median - s.low, s.high - s.median] for s in t]).T * 1e3
        left.errorbar(Ls, med, yerr=err, marker="o", label=label, capsize=2)
    left.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="time per call (ms)",
             title=f"one signal, N = {N}")
    left.set_xscale("log", base=2)
    left.legend(loc="upper left")
    markers = {N_CROSS[0]: "s", N_CROSS[-1]: "o"}
    lines = {N_CROSS[0]: "--", N_CROSS[-1]: "-"}
    for k, color in (("par", "C1"), ("fft", "C2"), ("fft+K", "C3")):
        for N in N_CROSS:
            s = [results[N, L]["ratio"][k] for L in L_CROSS]
            med = np.array([x.median for x in s])
            err = np.array([[x.median - x.low, x.high - x.median] for x in s]).T
            right.errorbar(Ls, med, yerr=err, color=color, marker=markers[N], linestyle=lines[N], capsize=2)
    right.axhline(1, color="black", linewidth=1)
    right.set(yscale="log", xlabel="sequence length L", ylabel="speed-up over the sequential scan",
              title="median (range) of per-round ratios", ylim=(0.2, 100))
    right.set_xscale("log", base=2)
    handles = [plt.Line2D([], [], color=c, label=labels[k]) for k, c in (("par", "C1"), ("fft", "C2"),
                                                                         ("fft+K", "C3"))]
    handles += [plt.Line2D([], [], color="black", marker=markers[N], linestyle=lines[N], label=f"N = {N}")
                for N in N_CROSS]
    right.legend(handles=handles, ncol=2, fontsize=8, loc="upper left")
    finish(fig)
    FIGURE.parent.mkdir(exist_ok=True)
    fig.savefig(FIGURE)
    plt.close(fig)
    print(f"\nfigure: {os.path.relpath(FIGURE, Path(__file__).resolve().parents[1])}")


def main() -> None:
    started = time.monotonic()
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s), float64; "
          f"{setting()}")
    peak, peak_flops = peak_setup()
    peak_times: list[float] = []
    kernels(peak, peak_flops, peak_times)
    rational_against_d(peak, peak_flops, peak_times)
    results = crossover(peak, peak_flops, peak_times)
    gf = Spread.of([peak_flops / t / 1e9 for t in peak_times])
    print(f"  practical peak: jitted float64 {PEAK_N}x{PEAK_N} matmul, timed in each of the {len(peak_times)} "
          f"rounds above = {gf.show('.1f')} GFLOP/s")
    print("  ratio and %pk: median (range) of per-round values; times and GF/s are medians.")
    figure(results)
    print(f"  total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
