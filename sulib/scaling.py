"""The quantization model of neural scaling (Michaud et al. 2023, arXiv 2303.13506; kexue.fm 9607).

A task is made of "quanta" ``k = 1, 2, ...`` used with Zipf frequencies ``p_k = k^{-(γ+1)} / Z``,
``Z = ζ(γ+1)`` (or ``Σ_{k ≤ n_max} k^{-(γ+1)}`` when the list is truncated at ``n_max`` quanta).
A sample that needs an unlearned quantum costs loss ``b``, a learned one ``a < b``. So the expected
loss is ``a + (b - a) U`` where ``U`` is the *unlearned mass*, the total frequency of the quanta
the model does not hold. This module computes ``U`` exactly and by simulation:

* :func:`zipf_probs`, :func:`zipf_tail`, :func:`tail_power_law` — frequencies, the exact tail
  ``Σ_{k>n} p_k`` (a Hurwitz zeta ``ζ(γ+1, n+1)/ζ(γ+1)`` for the infinite list) and its power law;
* :func:`quanta_loss` — the exact expected loss under parameter scaling (the ``n`` most frequent
  quanta are held), data scaling (a quantum is learned once it occurs ``τ`` times among ``D``
  samples) and step scaling (``S`` steps of fresh batches of ``B``: data scaling with ``D = S B``);
* :func:`simulate_unlearned_mass` — the same by drawing samples (JAX, jitted, vmapped over seeds),
  from a truncated list or from the infinite one, whose far tail :func:`simulation_bins` lumps into
  one never-learned bin with a bounded bias;
* :func:`sparse_parity_subsets`, :func:`sparse_parity_batch`, :func:`train_sparse_parity` — the
  paper's multitask sparse parity task and a one-hidden-layer MLP trained on it with optax.

``python -m sulib.scaling parity-full OUT.npz`` runs :data:`PARITY_FULL_CONFIG` and stores it (the
run that ``book/scaling/data/parity_full.npz`` holds).

Shapes: ``n``, ``D``, ``S`` are 1-d arrays of sizes ``(m,)``; a simulation with ``n_seeds`` seeds
returns ``(n_seeds, m)``. Exact functions return float64 NumPy arrays.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.special as ssp
import scipy.stats as sst

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar
from sulib.nets import mlp_apply, mlp_init

__all__ = [
    "SCALINGS",
    "zipf_probs",
    "zipf_tail",
    "tail_power_law",
    "quanta_loss",
    "simulation_bins",
    "simulate_unlearned_mass",
    "sparse_parity_subsets",
    "sparse_parity_batch",
    "SparseParityRun",
    "train_sparse_parity",
]

#: the three ways a model can hold more quanta (post 9607): parameters, data, training steps.
SCALINGS = ("params", "data", "steps")


# ------------------------------------------------------------------------------ argument checks


def _gamma(gamma) -> float:
    return positive_scalar("gamma", gamma)


def _n_max(n_max) -> int | None:
    return None if n_max is None else positive_int("n_max", n_max)


def _counts(name: str, value, *, minimum: float = 1.0) -> np.ndarray:
    """A 1-d array of numbers >= ``minimum`` (quanta counts, data sizes, step counts)."""
    array = as_finite_array(name, value)
    if array.ndim > 1:
        raise ValueError(f"{name} must be a scalar or one-dimensional, got shape {array.shape}")
    array = np.atleast_1d(array).astype(np.float64)
    if array.size and array.min() < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {array.min():g}")
    return array


# ------------------------------------------------------------------------------ exact quantities


def zipf_probs(gamma: float, n_max: int) -> np.ndarray:
    """Zipf frequencies ``p_k = k^{-(γ+1)} / Σ_{j ≤ n_max} j^{-(γ+1)}``, ``k = 1 … n_max``.

    Returns:
        float64 array of shape ``(n_max,)``, decreasing, summing to 1.
    """
    gamma, n_max = _gamma(gamma), positive_int("n_max", n_max)
    w = np.arange(1, n_max + 1, dtype=np.float64) ** -(gamma + 1.0)
    return w / w.sum()


def zipf_tail(gamma: float, n, n_max: int | None = None) -> np.ndarray:
    """Exact unlearned mass ``Σ_{k > n} p_k`` when the ``n`` most frequent quanta are held.

    Infinite list (``n_max=None``): ``ζ(γ+1, n+1) / ζ(γ+1)`` with the Hurwitz zeta (``n`` may be
    any real ``>= 1``). Truncated list: the sum over ``n < k ≤ n_max`` of :func:`zipf_probs`
    (``n`` rounded down to an integer; 0 for ``n >= n_max``).

    Args:
        gamma: Zipf exponent ``γ > 0``.
        n: shape ``()`` or ``(m,)``, number of quanta held, ``>= 1``.
        n_max: length of the list of quanta, or None for infinitely many.

    Returns:
        float64 array of shape ``(m,)``.
    """
    gamma, n_max = _gamma(gamma), _n_max(n_max)
    n = _counts("n", n)
    s = gamma + 1.0
    if n_max is None:
        return ssp.zeta(s, n + 1.0) / ssp.zeta(s, 1.0)
    p = zipf_probs(gamma, n_max)
    tails = np.concatenate([np.cumsum(p[::-1])[::-1], [0.0]])  # tails[j] = Σ_{k > j} p_k
    return tails[np.minimum(np.floor(n).astype(np.int64), n_max)]


def tail_power_law(gamma: float, n) -> np.ndarray:
    """The post's asymptotic tail ``n^{-γ} / (γ ζ(γ+1))`` (the integral ``∫_n^∞ p(x) dx``).

    Args:
        gamma: ``γ > 0``.  n: shape ``()`` or ``(m,)``, ``>= 1``.

    Returns:
        float64 array of shape ``(m,)``.
    """
    gamma = _gamma(gamma)
    n = _counts("n", n)
    return n**-gamma / (gamma * ssp.zeta(gamma + 1.0, 1.0))


def quanta_loss(gamma: float, x, scaling: str = "params", *, n_max: int | None = None,
                tau: int = 1, batch: int = 1, a: float = 0.0, b: float = 1.0) -> np.ndarray:
    """Exact expected loss ``a + (b - a) E[U]`` of the quanta model.

    * ``"params"``: ``x = n``, the ``n`` most frequent quanta are held: ``U = Σ_{k>n} p_k``.
    * ``"data"``: ``x = D`` i.i.d. samples; quantum ``k`` is learned when it occurs at least
      ``tau`` times among them: ``E[U] = Σ_k p_k P(Binomial(D, p_k) < τ)``.
    * ``"steps"``: ``x = S`` steps with fresh batches of ``batch`` samples: data scaling at
      ``D = S · batch``.

    Args:
        gamma: ``γ > 0``.  x: shape ``()`` or ``(m,)``, ``>= 1``.
        scaling: one of :data:`SCALINGS`.
        n_max: number of quanta, or None for infinitely many (for ``"data"``/``"steps"`` the sum is
            then exact up to a relative 1e-9, and a ValueError says when that needs more than
            2^24 quanta).
        tau: samples needed to learn a quantum, ``>= 1``.  batch: batch size, ``>= 1``.
        a, b: loss on a sample whose quantum is learned / not learned.

    Returns:
        float64 array of shape ``(m,)``.
    """
    gamma = _gamma(gamma)
    one_of("scaling", scaling, SCALINGS)
    tau, batch = positive_int("tau", tau), positive_int("batch", batch)
    a = float(as_finite_array("a", a))
    b = float(as_finite_array("b", b))
    if not b > a:
        raise ValueError(f"b (loss without the quantum) must exceed a, got a = {a}, b = {b}")
    x = _counts("x", x)
    if scaling == "params":
        return a + (b - a) * zipf_tail(gamma, x, n_max)
    D = np.round(x * (batch if scaling == "steps" else 1))
    if n_max is None:
        return a + (b - a) * _unlearned_infinite(gamma, D, tau)
    p = zipf_probs(gamma, _n_max(n_max))
    unlearned = np.array([p @ sst.binom.cdf(tau - 1, d, p) for d in D])
    return a + (b - a) * unlearned


def _tail_cap(gamma: float, d_max: float, tau: int, rtol: float, k_cap: int) -> int:
    """Smallest power of two ``K >= 1024`` with ``(D p_K)^τ/τ! ≤ rtol`` at ``D = d_max``.

    Every quantum ``k > K`` occurs ``τ`` times among ``d_max`` samples with probability at most
    ``(D p_k)^τ/τ! ≤ rtol`` (a union bound over the ``τ``-subsets of samples), so counting all of
    them as unlearned changes the unlearned mass by at most ``rtol`` times their total mass.
    """
    s = gamma + 1.0
    Z = ssp.zeta(s, 1.0)
    K = 1024
    # in logs: τ! overflows float64 from τ = 171 on
    while tau * np.log(d_max * K**-s / Z) - ssp.gammaln(tau + 1.0) > np.log(rtol):
        K *= 2
        if K > k_cap:
            raise ValueError(f"n_max=None: D = {d_max:g} with tau = {tau} needs more than {k_cap} "
                             "quanta summed exactly; pass a finite n_max")
    return K


def _unlearned_infinite(gamma: float, D: np.ndarray, tau: int, *, rtol: float = 1e-9,
                        k_cap: int = 2**24) -> np.ndarray:
    """``Σ_k p_k P(Binomial(D, p_k) < τ)`` over the infinite list, shape ``(m,)`` like ``D``.

    Quanta ``k ≤ K`` are summed exactly; beyond ``K`` each counts as unlearned, which drops
    ``Σ_{k>K} p_k P(Bin(D, p_k) ≥ τ) ≤ (D p_K)^τ/τ! · Σ_{k>K} p_k``. ``K`` (a power of two) is the
    first to make that factor ``≤ rtol`` at the largest ``D`` (:func:`_tail_cap`).
    """
    s = gamma + 1.0
    Z = ssp.zeta(s, 1.0)
    K = _tail_cap(gamma, float(D.max()), tau, rtol, k_cap)
    p = np.arange(1, K + 1, dtype=np.float64) ** -s / Z
    beyond = ssp.zeta(s, K + 1.0) / Z
    return np.array([p @ sst.binom.cdf(tau - 1, d, p) for d in D]) + beyond


# ------------------------------------------------------------------------------ simulation


@partial(jax.jit, static_argnames=("batch", "n_steps", "tau"))
def _mass_path(key, cdf, p, batch: int, n_steps: int, tau: int):
    """One run: ``n_steps`` batches of ``batch`` Zipf samples; unlearned mass after each batch.

    cdf: (M,) cumulative frequencies of the M bins; p: (M,) the mass each bin gives up when it is
    learned (0 for a bin that is never learned). Returns mass (n_steps,), starting from 1, and
    the final counts (M,).
    """
    n_bins = p.shape[0]

    def step(carry, k):
        counts, mass = carry
        u = jax.random.uniform(k, (batch,), dtype=cdf.dtype)
        idx = jnp.sort(jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n_bins - 1))
        first = jnp.concatenate([jnp.ones((1,), bool), idx[1:] != idx[:-1]])
        old = counts[idx]
        counts = counts.at[idx].add(1)
        crossed = first & (old < tau) & (counts[idx] >= tau)  # learned during this batch
        mass = mass - jnp.sum(jnp.where(crossed, p[idx], 0.0))
        return (counts, mass), mass

    init = (jnp.zeros((n_bins,), jnp.int32), jnp.ones((), cdf.dtype))
    (counts, _), masses = jax.lax.scan(step, init, jax.random.split(key, n_steps))
    return masses, counts


_mass_paths = jax.vmap(_mass_path, in_axes=(0, None, None, None, None, None))


def simulation_bins(gamma: float, n_max: int | None, *, d_max: float | None = None,
                    tau: int = 1, held_max: int = 1, rtol: float = 1e-3, k_cap: int = 2**23):
    """The bins a simulation samples from: ``(probs, learnable)``, both of shape ``(M,)``.

    Finite list: the ``n_max`` Zipf frequencies, all learnable (``M = n_max``). Infinite list
    (``n_max=None``): quanta ``1 … K`` exactly, plus one last bin holding the whole tail
    ``Σ_{k>K} p_k = ζ(γ+1, K+1)/ζ(γ+1)``, never learned (``M = K + 1``). ``K`` is the smallest
    power of two ``≥ max(1024, held_max)`` for which a quantum beyond ``K`` occurs ``τ`` times
    among ``d_max`` samples with probability ``≤ rtol``: the lumped bin then biases the
    unlearned mass upwards by at most ``rtol`` times the tail mass. With ``d_max=None`` (a
    parameter-scaling test set, nothing is learned) only ``K ≥ held_max`` is asked, and the
    test set is exact for every ``n ≤ held_max``.
    """
    gamma = _gamma(gamma)
    if n_max is not None:
        p = zipf_probs(gamma, positive_int("n_max", n_max))
        return p, np.ones(p.shape, bool)
    K = 1024
    if d_max is not None:
        K = _tail_cap(gamma, positive_scalar("d_max", d_max), positive_int("tau", tau),
                      positive_scalar("rtol", rtol), k_cap)
    while K < held_max:
        K *= 2
    s = gamma + 1.0
    Z = ssp.zeta(s, 1.0)
    p = np.append(np.arange(1, K + 1, dtype=np.float64) ** -s / Z, ssp.zeta(s, K + 1.0) / Z)
    return p, np.arange(K + 1) < K


def simulate_unlearned_mass(key, gamma: float, n_max: int | None, *, batch: int, n_steps: int,
                            tau: int = 1, n_seeds: int = 1, held=None, rtol: float = 1e-3):
    """Draw Zipf samples and measure the unlearned mass.

    Each seed draws ``n_steps`` batches of ``batch`` samples by inverse-CDF sampling. A quantum
    is learned once it has occurred ``tau`` times; the unlearned mass after step ``s`` (``D = s ·
    batch`` samples) is the frequency of the quanta not yet learned. With ``held`` given, the
    ``batch · n_steps`` samples are instead used as a *test set* for parameter scaling: the
    measured mass for ``n`` held quanta is the fraction of samples whose quantum is ``> n``.

    Args:
        key: a JAX PRNG key.  gamma: ``γ > 0``.
        n_max: number of quanta (the list truncated and renormalised), or None for the
            infinite list, sampled through :func:`simulation_bins` (its tail beyond a cap ``K``
            lumped into one never-learned bin; bias at most ``rtol`` times the tail mass).
        batch, n_steps: samples per step and number of steps (both ``>= 1``).
        tau: occurrences needed to learn a quantum.  n_seeds: independent runs.
        held: shape ``(m,)``, numbers of held quanta ``>= 1`` (parameter scaling), or None.
        rtol: tolerance of the lumped tail bin (infinite list only).

    Returns:
        ``(n_seeds, n_steps)`` unlearned mass after each step, or ``(n_seeds, m)`` when
        ``held`` is given. float64 NumPy arrays (when x64 is on).
    """
    gamma = _gamma(gamma)
    batch, n_steps = positive_int("batch", batch), positive_int("n_steps", n_steps)
    tau, n_seeds = positive_int("tau", tau), positive_int("n_seeds", n_seeds)
    held_arr = None if held is None else _counts("held", held).astype(np.int64)
    held_max = 1 if held_arr is None or held_arr.size == 0 else int(held_arr.max())
    d_max = None if held_arr is not None else float(batch * n_steps)
    p, learnable = simulation_bins(gamma, n_max, d_max=d_max, tau=tau, held_max=held_max,
                                   rtol=rtol)
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    keys = jax.random.split(key, n_seeds)
    masses, counts = _mass_paths(keys, jnp.asarray(cdf), jnp.asarray(np.where(learnable, p, 0.0)),
                                 batch, n_steps, tau)
    if held_arr is None:
        return np.asarray(masses)
    held_arr = np.minimum(held_arr, p.size)
    counts = np.asarray(counts, dtype=np.float64)
    seen_at_most = np.cumsum(counts, axis=1) / counts.sum(axis=1, keepdims=True)
    return 1.0 - seen_at_most[:, held_arr - 1]


# ------------------------------------------------------------------------------ sparse parity


def sparse_parity_subsets(key, n_tasks: int, n_bits: int, k: int) -> jax.Array:
    """For each subtask, the ``k`` distinct bit positions whose parity is its label.

    Returns:
        int array of shape ``(n_tasks, k)``, each row sorted, entries in ``[0, n_bits)``.
    """
    n_tasks, n_bits, k = (positive_int("n_tasks", n_tasks), positive_int("n_bits", n_bits),
                          positive_int("k", k))
    if k > n_bits:
        raise ValueError(f"k must be <= n_bits = {n_bits}, got {k}")
    perms = jax.vmap(lambda kk: jax.random.permutation(kk, n_bits))(jax.random.split(key, n_tasks))
    return jnp.sort(perms[:, :k], axis=1)


@partial(jax.jit, static_argnames=("batch", "n_bits"))
def _parity_batch(key, subsets, cdf, batch: int, n_bits: int):
    n_tasks = subsets.shape[0]
    kt, kb = jax.random.split(key)
    u = jax.random.uniform(kt, (batch,), dtype=cdf.dtype)
    task = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n_tasks - 1)
    bits = jax.random.bernoulli(kb, 0.5, (batch, n_bits)).astype(jnp.int32)
    chosen = jnp.take_along_axis(bits, subsets[task], axis=1)  # (batch, k)
    y = jnp.sum(chosen, axis=1) % 2
    x = jnp.concatenate([jax.nn.one_hot(task, n_tasks, dtype=jnp.float32),
                         bits.astype(jnp.float32)], axis=1)
    return x, y, task


def sparse_parity_batch(key, subsets, n_bits: int, gamma: float, batch: int):
    """A batch of multitask sparse parity (Michaud et al. 2023, Sec. 3).

    Subtask ``i`` (0-based) is drawn with frequency ``∝ (i+1)^{-(γ+1)}``; the input is the one-hot
    subtask id (the "control bits") followed by ``n_bits`` uniform random bits; the label is the
    parity of the bits at ``subsets[i]``.

    Args:
        key: PRNG key.  subsets: ``(n_tasks, k)`` from :func:`sparse_parity_subsets`.
        n_bits: number of task bits.  gamma: ``γ > 0``.  batch: number of samples.

    Returns:
        ``x`` float32 ``(batch, n_tasks + n_bits)``, ``y`` int ``(batch,)`` in {0, 1},
        ``task`` int ``(batch,)``.
    """
    subsets = np.asarray(as_finite_array("subsets", subsets, min_ndim=2)).astype(np.int64)
    n_bits, batch = positive_int("n_bits", n_bits), positive_int("batch", batch)
    if subsets.ndim != 2 or subsets.min() < 0 or subsets.max() >= n_bits:
        raise ValueError(f"subsets must be (n_tasks, k) bit positions in [0, {n_bits})")
    cdf = np.cumsum(zipf_probs(gamma, subsets.shape[0]))
    return _parity_batch(key, jnp.asarray(subsets), jnp.asarray(cdf), batch, n_bits)


class SparseParityRun(NamedTuple):
    """Result of :func:`train_sparse_parity` (``E`` evaluations, ``T`` subtasks)."""

    steps: np.ndarray  #: (E,) training step after which each evaluation was made
    task_loss: np.ndarray  #: (E, T) cross-entropy (nats) on a fixed test set per subtask
    task_acc: np.ndarray  #: (E, T) accuracy per subtask
    probs: np.ndarray  #: (T,) subtask frequencies
    n_params: int  #: number of trainable parameters of the MLP


@partial(jax.jit, static_argnames=("n_bits", "width", "batch", "n_evals", "eval_every", "lr"))
def _train(key, subsets, cdf, x_test, y_test, n_bits, width, batch, n_evals, eval_every, lr):
    n_tasks = subsets.shape[0]
    params = mlp_init(jax.random.fold_in(key, 0), (n_tasks + n_bits, width, 2), dtype=jnp.float32)
    opt = optax.adam(lr)
    state = opt.init(params)

    def loss_fn(prm, x, y):
        logits = mlp_apply(prm, x, activation="relu")
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def one_step(carry, k):
        prm, st = carry
        x, y, _ = _parity_batch(k, subsets, cdf, batch, n_bits)
        grads = jax.grad(loss_fn)(prm, x, y)
        updates, st = opt.update(grads, st, prm)
        return (optax.apply_updates(prm, updates), st), None

    def evaluate(prm):  # x_test (T, m, in), y_test (T, m)
        logits = mlp_apply(prm, x_test, activation="relu")
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_test).mean(axis=1)
        acc = (jnp.argmax(logits, axis=-1) == y_test).mean(axis=1)
        return ce, acc

    def block(carry, k):
        carry, _ = jax.lax.scan(one_step, carry, jax.random.split(k, eval_every))
        return carry, evaluate(carry[0])

    keys = jax.random.split(jax.random.fold_in(key, 1), n_evals)
    _, (ce, acc) = jax.lax.scan(block, (params, state), keys)
    return ce, acc


def train_sparse_parity(key, *, n_tasks: int, n_bits: int, k: int, gamma: float, width: int,
                        batch: int, n_evals: int, eval_every: int, lr: float = 1e-3,
                        n_test: int = 256) -> SparseParityRun:
    """Train a one-hidden-layer ReLU MLP with Adam on multitask sparse parity.

    Every step draws a fresh batch (the "infinite data" regime of step scaling). After every
    ``eval_every`` steps the cross-entropy and accuracy are measured on a fixed test set of
    ``n_test`` samples per subtask. The whole run is one jitted ``lax.scan``.

    Args:
        key: PRNG key (subsets, test set, initialisation and batches all derive from it).
        n_tasks, n_bits, k: subtasks, task bits, bits per parity.  gamma: Zipf exponent.
        width: hidden units.  batch: samples per step.  n_evals, eval_every: evaluation schedule
            (``n_evals · eval_every`` steps in all).  lr: Adam learning rate.  n_test: test
            samples per subtask.

    Returns:
        :class:`SparseParityRun` with ``task_loss`` and ``task_acc`` of shape ``(n_evals, n_tasks)``.
    """
    n_tasks, width = positive_int("n_tasks", n_tasks), positive_int("width", width)
    n_bits, k = positive_int("n_bits", n_bits), positive_int("k", k)
    batch, n_test = positive_int("batch", batch), positive_int("n_test", n_test)
    n_evals, eval_every = positive_int("n_evals", n_evals), positive_int("eval_every", eval_every)
    lr = positive_scalar("lr", lr)
    probs = zipf_probs(gamma, n_tasks)
    k_sub, k_test, k_train = jax.random.split(key, 3)
    subsets = sparse_parity_subsets(k_sub, n_tasks, n_bits, k)
    # test set: n_test samples of every subtask (uniform over subtasks, not Zipf)
    one_task = np.eye(n_tasks)  # frequencies concentrated on one subtask at a time
    xs, ys = [], []
    for t, kt in enumerate(jax.random.split(k_test, n_tasks)):
        x, y, _ = _parity_batch(kt, subsets, jnp.asarray(np.cumsum(one_task[t])), n_test, n_bits)
        xs.append(x)
        ys.append(y)
    ce, acc = _train(k_train, subsets, jnp.asarray(np.cumsum(probs)), jnp.stack(xs), jnp.stack(ys),
                     n_bits, width, batch, n_evals, eval_every, float(lr))
    n_params = (n_tasks + n_bits + 1) * width + (width + 1) * 2
    steps = eval_every * np.arange(1, n_evals + 1)
    return SparseParityRun(steps, np.asarray(ce, np.float64), np.asarray(acc, np.float64), probs, n_params)


# ------------------------------------------------------------------------------ stored runs

#: the larger sparse-parity run whose output the chapter loads from ``book/scaling/data/``.
PARITY_FULL_CONFIG = dict(n_tasks=24, n_bits=16, k=3, gamma=0.4, width=256, batch=4096,
                          n_evals=100, eval_every=150, lr=3e-3)
PARITY_FULL_SEED = 2303


def _main(argv=None) -> None:
    """``python -m sulib.scaling parity-full OUT.npz``: run :data:`PARITY_FULL_CONFIG`, store it.

    The file holds the :class:`SparseParityRun` fields, the configuration (JSON) and the
    exact command that produced it. x64 is enabled first, as in the chapter.
    """
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m sulib.scaling")
    parser.add_argument("what", choices=["parity-full"])
    parser.add_argument("out", help="path of the .npz file to write")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    run = train_sparse_parity(jax.random.PRNGKey(PARITY_FULL_SEED), **PARITY_FULL_CONFIG)
    command = "JAX_PLATFORMS=cpu python -m sulib.scaling parity-full " + args.out
    config = dict(PARITY_FULL_CONFIG, seed=PARITY_FULL_SEED)
    env = (f"python {sys.version.split()[0]}, jax {jax.__version__}, numpy {np.__version__}, "
           f"backend {jax.default_backend()}")
    np.savez(args.out, steps=run.steps, task_loss=run.task_loss, task_acc=run.task_acc,
             probs=run.probs, n_params=np.int64(run.n_params), config=json.dumps(config),
             command=command, environment=env)


if __name__ == "__main__":
    _main()
