"""DEER (Newton) and quasi-DEER against the sequential ``lax.scan`` for a GRU: speed-ups on one CPU core.

    .venv/bin/python benchmarks/deer.py

Same method as ``ssm.py`` (see ``_timing.py``): float64 on one pinned CPU core, interleaved rounds,
per-round ratios (sequential time / DEER time: the speed-up) reported as median (range). Where the
Newton sweep's work is dominated by (N, N) matrix products (N >= ``PEAK_FROM_N``), the jitted float64
2048x2048 matrix product of ``ssm.py`` is timed in every round of the same comparison, and achieved
GFLOP/s are put against it per round (% of peak); below that the GRU's elementwise work dominates and
the matmul rate is no yardstick, so only GFLOP/s are printed. Absolute times and GFLOP/s are medians.

The problem (the grid of DEER's ``experiments/01_speed_benchmark``, one sequence instead of a batch
of 16, float64 instead of float32): ``GRU_TORCH`` (the PyTorch / equinox / DEER-code GRU) with hidden
size N in ``HIDDEN`` and input size D = N (as that experiment), weights from ``gru_params`` (uniform on
±1/sqrt(N), PyTorch's default init), standard normal inputs, h0 = 0, L in ``LENGTHS``.

Routes, each compiled ahead of time for its shapes (``jax.jit(...).lower(...).compile()``) and
called as that executable:
    seq     the jitted ``lax.scan`` inside ``rnn_sequential`` (the reference);
    DEER    the jitted ``lax.while_loop`` of Newton sweeps inside ``deer_solve(method="newton")``,
            default ``tol = 1e-12`` (sweeps stop when one moves no state by more than that) and
            ``max_sweeps = L + 1``: the full (N, N) Jacobians, an associative scan over affine maps;
    quasi   the same with ``method="quasi"``: the Jacobians' diagonals, an elementwise scan.
The executables are those of ``sulib.ssm.deer._sequential`` and ``_solve``, the jitted cores the public
functions call after validating their inputs on the host; that validation (about 1-3 ms a call on
the shared machine, measured at the end) is left out so that the ratio compares the two algorithms, as DEER's
own benchmark compares two jitted functions.

Checks before timing: each DEER route's states agree with the sequential scan's to ``STATE_TOL``
(absolute; the states lie in (-1, 1)) and the iteration converged; the table prints max |Δ| and the
number of sweeps. ``STATE_TOL = 1e-10`` leaves a factor 100 over the stopping tolerance for the error
that remains after the last, tiny step (Newton converges quadratically, so its last step bounds the
error; quasi-DEER converges linearly, here from order 1 to 1e-12 in about 20 sweeps, about 4x a sweep).

Memory: before running, each DEER executable's temporaries are read from XLA's buffer assignment
(``memory_analysis().temp_size_in_bytes``); a route whose temporaries exceed ``MEMORY_LIMIT`` (4 GB)
is skipped and says so. Newton's grow like L N² (the (L, N, N) Jacobians, 3.3 GB alone at N = 64,
L = 1e5, and the scan's intermediates); quasi-DEER's like L N.

Work (flops, counted on the jaxprs by ``sulib.ssm.flops.jaxpr_flops``; tanh and sigmoid count 0):
    seq:   L x (one GRU step);
    DEER:  sweeps x ``sweep_flops(...)`` (the cell and its Jacobian at every t, the right-hand side and
           the associative scan) + L x (one GRU step) for the final residual. The work ratio (DEER
           flops / seq flops) is what one core has to pay; a GPU pays the depth instead.
    quasi: not counted. Every route evaluates the cell at every t in every sweep, so its work is at
           least (sweeps + 1) x seq. Its jaxpr count is no measure of what runs: ``GRU_TORCH`` has no
           analytic Jacobian diagonal, so the jaxpr builds the full (L, N, N) Jacobian tangents by
           ``jax.jacfwd`` and keeps their diagonals, and XLA's fusion computes only what is kept: the
           tangents are never materialized (the temporaries column: 0.56 GB at N = 64, L = 1e5 where
           one (L, N, N) array is 3.3 GB), and rates taken from that count came out above the matmul
           peak in a trial run, so none is printed.

Rounds: ``ROUNDS_FAST`` where every route's call takes under ``SLOW_CALL`` seconds, else
``ROUNDS_SLOW`` (the fewest that ``_timing.interleaved`` accepts). At the (N, L) in ``UNTIMED``
the routes are checked but not timed in rounds, to keep the script near 6 minutes on the shared
machine (quasi-DEER at N = 64, L = 1e5 takes 8-11 s a call there; Newton is skipped there for
memory anyway); the time of the single checking call is printed instead.
"""

from __future__ import annotations

import time

from _timing import Spread, interleaved, setting  # the script's own folder is on sys.path; sets the bench environment
from ssm import PEAK_N  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from sulib.ssm import deer  # noqa: E402
from sulib.ssm.deer import GRU_TORCH, deer_solve, gru_params, rnn_sequential, sweep_flops  # noqa: E402
from sulib.ssm.flops import jaxpr_flops  # noqa: E402

HIDDEN = (1, 2, 4, 8, 16, 32, 64)
LENGTHS = (10**3, 10**4, 10**5)
TOL = 1e-12  # deer_solve's default stopping tolerance
STATE_TOL = 1e-10  # max |DEER states - sequential states| accepted before timing
MEMORY_LIMIT = 4e9  # bytes of XLA temporaries above which a route is skipped
PEAK_FROM_N = 16  # the matmul peak is timed alongside from this hidden size on
ROUNDS_FAST, ROUNDS_SLOW, SLOW_CALL = 7, 5, 0.5
UNTIMED = {(64, 10**5)}  # (N, L): routes checked by one call, not timed in rounds (time)
METHODS = {"DEER": "newton", "quasi": "quasi"}


class Problem:
    """One GRU problem (N, L): inputs, validated arguments, compiled routes, checks and flop counts."""

    def __init__(self, N: int, L: int):
        self.N, self.L = N, L
        self.params = gru_params(jax.random.PRNGKey(N), N, N)
        self.xs = jax.random.normal(jax.random.PRNGKey(1000 + N), (L, N), dtype=jnp.float64)
        self.h0 = jnp.zeros(N)
        cell, params, xs, h0 = deer._check_inputs(GRU_TORCH, self.params, self.xs, self.h0)
        self.seq_args = (params, xs, h0)
        guess = jnp.broadcast_to(h0, (L, N))  # deer_solve's default start
        self.solve_args = (params, xs, h0, guess, None, 0.0, jnp.asarray(np.inf), jnp.asarray(TOL))
        self.seq = deer._sequential.lower(cell, *self.seq_args).compile()
        self.solve, self.temp, self.skipped = {}, {}, {}
        for name, method in METHODS.items():
            compiled = deer._solve.lower(cell, method, *self.solve_args, L + 1, False).compile()
            self.temp[name] = compiled.memory_analysis().temp_size_in_bytes
            if self.temp[name] > MEMORY_LIMIT:
                self.skipped[name] = f"for memory: XLA temporaries {self.temp[name] / 1e9:.1f} GB > {MEMORY_LIMIT / 1e9:.0f} GB"
            else:
                self.solve[name] = compiled
        step = jaxpr_flops(lambda h: GRU_TORCH.f(h, self.xs[0], self.params), self.h0)
        self.flops = {"seq": float(L * step)}
        self.per_sweep = sweep_flops(GRU_TORCH, self.params, self.xs, self.h0, method="newton")
        self.step_flops = step

    def call(self, name: str):
        """A zero-argument timing closure for route ``name``."""
        if name == "seq":
            return lambda: self.seq(*self.seq_args).block_until_ready()
        compiled = self.solve[name]
        return lambda: compiled(*self.solve_args)[0].block_until_ready()

    def check(self) -> dict[str, float]:
        """Run every route once (untimed, warms it up); assert agreement; record sweeps and flops.

        Returns the seconds each route's call took (to choose the number of rounds).
        """
        seconds = {}
        t = time.perf_counter()
        reference = np.asarray(self.seq(*self.seq_args))
        seconds["seq"] = time.perf_counter() - t
        self.sweeps, self.error = {}, {}
        for name, compiled in self.solve.items():
            t = time.perf_counter()
            states, n, steps, _, _, _ = compiled(*self.solve_args)
            states = np.asarray(states)
            seconds[name] = time.perf_counter() - t
            n = int(n)
            if not (n >= 1 and float(steps[n - 1]) <= TOL):
                raise AssertionError(f"{name}, N={self.N} L={self.L}: not converged after {n} sweeps "
                                     f"(last step {float(steps[n - 1]):.3g})")
            err = float(np.abs(states - reference).max())
            if not err <= STATE_TOL:
                raise AssertionError(f"{name}, N={self.N} L={self.L}: max |Δ| = {err:.3g} > {STATE_TOL:g}")
            self.sweeps[name], self.error[name] = n, err
            if name == "DEER":
                self.flops[name] = float(n * self.per_sweep + self.L * self.step_flops)
        return seconds


def peak_setup():
    """The peak's operands and jitted product (compiled), and its flop count."""
    a, b = (jax.random.normal(jax.random.PRNGKey(i), (PEAK_N, PEAK_N), dtype=jnp.float64) for i in (0, 1))
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    return (lambda: matmul(a, b).block_until_ready()), 2.0 * PEAK_N**3


def fmt(spread: Spread | None, digits: str) -> str:
    return "–" if spread is None else spread.show(digits)


def ratio_digits(s: Spread) -> str:
    return ".3f" if s.median < 0.1 else ".2f"


def grid(peak, peak_flops: float) -> dict:
    """Every (N, L): check, time seq / DEER / quasi (and the peak from PEAK_FROM_N on), print a row."""
    results, peak_times, rates = {}, [], []
    print(f"\nGRU (GRU_TORCH, D = N, PyTorch-like init, h0 = 0), one sequence; speed-up = seq time / route time "
          f"per round; median (range) of {ROUNDS_FAST} rounds ({ROUNDS_SLOW} where a call takes > {SLOW_CALL} s)")
    print(f"{'N':>3}{'L':>8}{'rounds':>7}{'sweeps':>8}{'seq ms':>10}{'DEER ms':>11}{'quasi ms':>10}"
          f"{'DEER speed-up (range)':>26}{'quasi speed-up (range)':>26}{'work DEER':>11}"
          f"{'max|Δ| DEER':>13}{'max|Δ| quasi':>13}")
    for N in HIDDEN:
        for L in LENGTHS:
            p = Problem(N, L)
            seconds = p.check()
            for k in list(p.solve) if (N, L) in UNTIMED else []:
                p.skipped[k] = (f"for time: its one checking call took {seconds[k]:.1f} s, the sequential scan's "
                                f"{seconds['seq']:.2f} s (single calls, not timed in rounds)")
                del p.solve[k]
            if not p.solve:  # nothing to compare with: report the checks and the compiled sizes
                print(f"{N:>3}{L:>8}{'–':>7}{'/'.join(str(p.sweeps.get(k, '–')) for k in METHODS):>8}"
                      + "".join(f"{'–':>{w}}" for w in (10, 11, 10, 26, 26, 11))
                      + "".join(f"{p.error[k]:>13.1e}" if k in p.error else f"{'–':>13}" for k in METHODS))
                for k, why in p.skipped.items():
                    print(f"      {k} skipped {why}")
                rates.append(f"{N:>3}{L:>8}" + f"{'–':>10}" * 3 + "".join(f"{p.temp[k] / 1e6:>10.1f}" for k in METHODS)
                             + f"{'–':>10}" * 2 + f"{'–':>19}" * 2)
                continue
            timed = {"seq": seconds["seq"], **{k: seconds[k] for k in p.solve}}
            rounds = ROUNDS_SLOW if max(timed.values()) > SLOW_CALL else ROUNDS_FAST
            fns = {"seq": p.call("seq"), **{k: p.call(k) for k in p.solve}}
            with_peak = N >= PEAK_FROM_N
            if with_peak:
                fns["peak"] = peak
            r = interleaved(fns, rounds, warm_up=False)
            if with_peak:
                peak_times += r.times["peak"]
            speed = {k: r.ratio("seq", k) for k in METHODS if k in p.solve}
            results[N, L] = {"speed": speed, "sweeps": p.sweeps}
            ms = {k: (f"{1e3 * r.median(k):.3f}" if k in r.times else "–") for k in ("seq", *METHODS)}
            work = f"{p.flops['DEER'] / p.flops['seq']:.1f}" if "DEER" in p.flops else "–"
            sweeps = "/".join(str(p.sweeps.get(k, "–")) for k in METHODS)
            err = {k: (f"{p.error[k]:.1e}" if k in p.error else "–") for k in METHODS}
            print(f"{N:>3}{L:>8}{rounds:>7}{sweeps:>8}{ms['seq']:>10}{ms['DEER']:>11}{ms['quasi']:>10}"
                  + "".join(f"{fmt(speed.get(k), ratio_digits(speed[k]) if k in speed else ''):>26}" for k in METHODS)
                  + f"{work:>11}{err['DEER']:>13}{err['quasi']:>13}", flush=True)
            for k, why in p.skipped.items():
                print(f"      {k} skipped {why}")
            per_step = {k: 1e9 * r.median(k) / (L * (1 if k == "seq" else p.sweeps[k])) for k in r.times
                        if k != "peak"}
            gf = {k: p.flops[k] / r.median(k) / 1e9 for k in ("seq", "DEER") if k in r.times}
            pct = ({k: r.stat(lambda t, k=k: 100 * p.flops[k] * t["peak"] / (peak_flops * t[k])) for k in gf}
                   if with_peak else {})
            rates.append(f"{N:>3}{L:>8}"
                         + "".join(f"{per_step[k]:>10.0f}" if k in per_step else f"{'–':>10}" for k in ("seq", *METHODS))
                         + "".join(f"{p.temp[k] / 1e6:>10.1f}" for k in METHODS)
                         + "".join(f"{gf[k]:>10.2f}" if k in gf else f"{'–':>10}" for k in ("seq", "DEER"))
                         + "".join(f"{fmt(pct.get(k), '.1f'):>19}" for k in ("seq", "DEER")))
    print("  sweeps: DEER/quasi sweeps to convergence (tol 1e-12 on the largest change of a state);")
    print("  work DEER: Newton's flops / the sequential scan's (jaxpr counts); quasi-DEER's work is at least")
    print("  (sweeps + 1) x seq (one cell evaluation per step and sweep, and the residual; see the docstring);")
    print(f"  max|Δ|: against the sequential states, asserted <= {STATE_TOL:g} before timing.")
    print("\nThe same runs: ns per step (seq) or per step and sweep (DEER, quasi), XLA temporaries of the compiled")
    print(f"solvers (MB), achieved GFLOP/s (median) and % of the same round's {PEAK_N}x{PEAK_N} matmul (N >= {PEAK_FROM_N})")
    print(f"{'N':>3}{'L':>8}{'seq ns':>10}{'DEER ns':>10}{'quasi ns':>10}{'DEER MB':>10}{'quasi MB':>10}"
          f"{'seq GF/s':>10}{'DEER GF/s':>10}{'seq %pk':>19}{'DEER %pk':>19}")
    print("\n".join(rates))
    if peak_times:
        gf = Spread.of([peak_flops / t / 1e9 for t in peak_times])
        print(f"  practical peak: jitted float64 {PEAK_N}x{PEAK_N} matmul, timed in each of the {len(peak_times)} "
              f"rounds with N >= {PEAK_FROM_N} = {gf.show('.1f')} GFLOP/s")
    return results


def crossover(results: dict) -> None:
    """Where each route beats the sequential scan (median speed-up > 1), and its best median."""
    print()
    for k in METHODS:
        cells = {key: v["speed"][k] for key, v in results.items() if k in v["speed"]}
        wins = [f"N={N} L={L}" for (N, L), s in cells.items() if s.median > 1]
        (bN, bL), best = max(cells.items(), key=lambda item: item[1].median)
        print(f"  {k:<5}: faster than seq (median > 1) at {', '.join(wins) or 'no (N, L) of the grid'}; "
              f"best median {best.show(ratio_digits(best))} at N={bN}, L={bL}")


def overhead() -> None:
    """The public functions (host-side validation + dispatch) against the compiled cores, N = 1, L = 1e3."""
    p = Problem(1, 10**3)
    p.check()
    public = {"rnn_sequential": lambda: rnn_sequential(GRU_TORCH, p.params, p.xs, p.h0).block_until_ready(),
              "deer_solve": lambda: deer_solve(GRU_TORCH, p.params, p.xs, p.h0).states.block_until_ready()}
    for fn, core in zip(public.values(), ("seq", "DEER")):  # the public route returns the same states
        np.testing.assert_array_equal(np.asarray(fn()), np.asarray(p.call(core)()))
    r = interleaved({"seq": p.call("seq"), "rnn_sequential": public["rnn_sequential"],
                     "DEER": p.call("DEER"), "deer_solve": public["deer_solve"]}, ROUNDS_FAST)
    extra = {k: r.stat(lambda t, k=k, c=c: 1e3 * (t[k] - t[c]))
             for k, c in (("rnn_sequential", "seq"), ("deer_solve", "DEER"))}
    print(f"\nPublic entry points at N = 1, L = 1e3 (same states as the cores, {ROUNDS_FAST} rounds): "
          f"rnn_sequential {1e3 * r.median('rnn_sequential'):.2f} ms against its core {1e3 * r.median('seq'):.3f} ms "
          f"(+{extra['rnn_sequential'].show()} ms); deer_solve {1e3 * r.median('deer_solve'):.2f} ms against "
          f"{1e3 * r.median('DEER'):.3f} ms (+{extra['deer_solve'].show()} ms): host-side validation and dispatch.")


def main() -> None:
    started = time.monotonic()
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s), float64; "
          f"{setting()}")
    peak, peak_flops = peak_setup()
    results = grid(peak, peak_flops)
    crossover(results)
    overhead()
    print(f"  total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
