"""sulib.scaling: exact Zipf tails, the quanta-model losses, their simulation, and multitask sparse parity."""

import jax
import mpmath as mp
import numpy as np
import pytest
import scipy.stats as sst
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.scaling import (
    quanta_loss,
    simulate_unlearned_mass,
    simulation_bins,
    sparse_parity_batch,
    sparse_parity_subsets,
    tail_power_law,
    train_sparse_parity,
    zipf_probs,
    zipf_tail,
)

gammas = st.floats(0.05, 3.0, allow_nan=False)


# ----------------------------------------------------------------------------- exact tails


@pytest.mark.parametrize("gamma", [0.1, 0.5, 1.3])
def test_exact_tail_matches_direct_summation(gamma):
    """ζ(γ+1, n+1)/ζ(γ+1) against a long direct sum plus mpmath's own Hurwitz zeta."""
    n = np.array([1, 3, 10, 50])
    direct = np.array([np.sum(np.arange(m + 1, 2_000_001, dtype=float) ** -(gamma + 1)) for m in n])
    remainder = 2_000_000.0 ** -gamma / gamma  # the sum beyond the cut, to leading order
    z = float(mp.zeta(gamma + 1))
    np.testing.assert_allclose(zipf_tail(gamma, n), (direct + remainder) / z, rtol=1e-6)
    ref = np.array([float(mp.zeta(gamma + 1, int(m) + 1) / mp.zeta(gamma + 1)) for m in n])
    np.testing.assert_allclose(zipf_tail(gamma, n), ref, rtol=1e-12)


def test_truncated_tail_is_the_sum_of_the_truncated_probabilities():
    p = zipf_probs(0.7, 100)
    assert p.shape == (100,) and p.sum() == pytest.approx(1.0, abs=1e-14) and np.all(np.diff(p) < 0)
    n = np.array([1, 2, 50, 99, 100, 150])
    expected = [p[m:].sum() for m in n]
    np.testing.assert_allclose(zipf_tail(0.7, n, 100), expected, rtol=1e-12, atol=1e-16)
    assert zipf_tail(0.7, 100, 100)[0] == 0.0


@settings(deadline=None, max_examples=60)
@given(gammas, st.integers(1, 10**7))
def test_tail_lies_between_its_integral_bounds(gamma, n):
    """(n+1)^{-γ}/γ ≤ Σ_{k>n} k^{-γ-1} ≤ n^{-γ}/γ: the power law is an upper bound."""
    z = float(mp.zeta(gamma + 1))
    tail = zipf_tail(gamma, n)[0] * z
    assert (n + 1.0) ** -gamma / gamma <= tail * (1 + 1e-10)
    assert tail <= n ** -gamma / gamma * (1 + 1e-10)
    assert tail_power_law(gamma, n)[0] >= zipf_tail(gamma, n)[0] * (1 - 1e-10)


@settings(deadline=None, max_examples=40)
@given(gammas, st.integers(20, 10**6))
def test_first_order_correction_of_the_power_law(gamma, n):
    """power law / exact tail − 1 = γ/(2n) + O(n^{-2})."""
    rel = tail_power_law(gamma, n)[0] / zipf_tail(gamma, n)[0] - 1
    assert abs(rel - gamma / (2 * n)) <= gamma * (gamma + 1) / n**2


def test_params_loss_is_affine_in_the_tail():
    n = np.array([1, 10, 100])
    np.testing.assert_allclose(quanta_loss(0.4, n, a=0.2, b=1.5), 0.2 + 1.3 * zipf_tail(0.4, n), rtol=1e-14)


def test_data_loss_matches_a_direct_binomial_sum_and_steps_are_data():
    gamma, n_max, tau = 0.6, 50, 3
    p = zipf_probs(gamma, n_max)
    D = np.array([10, 300])
    direct = [sum(pk * sst.binom.cdf(tau - 1, d, pk) for pk in p) for d in D]
    np.testing.assert_allclose(quanta_loss(gamma, D, "data", n_max=n_max, tau=tau), direct, rtol=1e-12)
    np.testing.assert_allclose(quanta_loss(gamma, D / 10, "steps", n_max=n_max, tau=tau, batch=10),
                               direct, rtol=1e-12)


# ----------------------------------------------------------------------------- simulation


@settings(deadline=None, max_examples=30)
@given(st.floats(1.0, 3.0), st.integers(1, 10))
def test_infinite_list_data_loss_matches_zeta_closed_form(gamma, D):
    # τ = 1: U = Σ_k p_k (1 − p_k)^D = Σ_j C(D, j) (−1)^j ζ((j+1)s) / ζ(s)^(j+1), s = γ + 1.
    mp.mp.dps = 40
    s = mp.mpf(gamma) + 1
    exact = mp.fsum(mp.binomial(D, j) * (-1) ** j * mp.zeta((j + 1) * s) / mp.zeta(s) ** (j + 1)
                    for j in range(D + 1))
    assert quanta_loss(gamma, D, "data", tau=1)[0] == pytest.approx(float(exact), rel=1e-8)


def test_infinite_list_data_loss_for_large_tau():
    # τ! overflows float64 at τ = 171: the stopping rule must not silently stop early.
    gamma, tau, D = 0.5, 200, 1e8
    K = 2**22
    p = np.arange(1, K + 1, dtype=np.float64) ** -(gamma + 1) / float(mp.zeta(gamma + 1))
    direct = p @ sst.binom.cdf(tau - 1, D, p) + zipf_tail(gamma, K)[0]
    assert quanta_loss(gamma, D, "data", tau=tau)[0] == pytest.approx(direct, rel=1e-9)


def test_infinite_list_data_exponent_is_gamma_over_gamma_plus_one():
    D = 2.0 ** np.arange(14, 22)
    for gamma in (0.3, 0.8):
        u = quanta_loss(gamma, D, "data", tau=5)
        slope = np.polyfit(np.log(D), np.log(u), 1)[0]
        assert slope == pytest.approx(-gamma / (gamma + 1), abs=2e-3)


def test_simulated_params_loss_converges_to_the_exact_tail():
    held = np.array([1, 3, 10, 30])
    exact = zipf_tail(0.5, held, 1000)
    errs = []
    for n_steps in (4, 64):  # 2^12 and 2^16 test samples per seed
        sim = simulate_unlearned_mass(jax.random.PRNGKey(0), 0.5, 1000, batch=1024, n_steps=n_steps,
                                      n_seeds=4, held=held)
        assert sim.shape == (4, 4)
        errs.append(np.max(np.abs(sim.mean(0) - exact)))
    assert errs[1] < 0.005 and errs[1] < errs[0]


def test_simulated_data_loss_converges_to_its_expectation():
    gamma, n_max, tau = 0.5, 2000, 3
    sim = simulate_unlearned_mass(jax.random.PRNGKey(1), gamma, n_max, batch=256, n_steps=64, tau=tau, n_seeds=64)
    assert sim.shape == (64, 64)
    steps = np.array([4, 16, 64])
    exact = quanta_loss(gamma, steps, "steps", n_max=n_max, tau=tau, batch=256)
    se = sim.std(0)[steps - 1] / np.sqrt(sim.shape[0])
    assert np.all(np.abs(sim.mean(0)[steps - 1] - exact) < 5 * se + 1e-4)
    assert np.all(np.diff(sim, axis=1) <= 1e-12)  # the unlearned mass never grows


def test_simulated_mass_bookkeeping_matches_the_counts():
    """With tau = 1 and a tiny list every quantum is soon seen: the mass must reach exactly 0."""
    sim = simulate_unlearned_mass(jax.random.PRNGKey(2), 1.0, 5, batch=64, n_steps=50, n_seeds=2)
    assert np.all(np.abs(sim[:, -1]) < 1e-12)


def test_infinite_list_bins_lump_the_tail_into_one_unlearnable_bin():
    gamma, d_max, tau, rtol = 0.3, 2.0**20, 5, 1e-3
    p, learnable = simulation_bins(gamma, None, d_max=d_max, tau=tau, rtol=rtol)
    K = p.size - 1
    assert K >= 1024 and K & (K - 1) == 0 and not learnable[-1] and learnable[:-1].all()
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[-1] == pytest.approx(zipf_tail(gamma, K)[0], rel=1e-12)
    # the cap is the first power of two whose quanta are learned with probability <= rtol
    z = float(mp.zeta(gamma + 1))
    bound = lambda k: (d_max * k ** -(gamma + 1) / z) ** tau / 120.0  # 5! = 120
    assert bound(K) <= rtol < bound(K // 2)
    # a parameter-scaling test set only needs K >= the largest n held
    p_held, _ = simulation_bins(gamma, None, held_max=5000)
    assert p_held.size - 1 == 8192
    p_fin, learn_fin = simulation_bins(gamma, 50)
    np.testing.assert_array_equal(p_fin, zipf_probs(gamma, 50))
    assert learn_fin.all()


@pytest.mark.parametrize("gamma", [0.1, 0.6])
def test_infinite_list_simulation_matches_the_untruncated_expectation(gamma):
    """Sampling the infinite list (tail lumped) reproduces Σ_k p_k P(Bin(D, p_k) < τ)."""
    tau, batch, n_steps, seeds = 3, 512, 32, 32
    sim = simulate_unlearned_mass(jax.random.PRNGKey(7), gamma, None, batch=batch,
                                  n_steps=n_steps, tau=tau, n_seeds=seeds)
    steps = np.array([2, 8, 32])
    exact = quanta_loss(gamma, steps * batch, "data", tau=tau)
    truncated = quanta_loss(gamma, steps * batch, "data", tau=tau, n_max=1000)
    se = sim.std(0)[steps - 1] / np.sqrt(seeds)
    assert np.all(np.abs(sim.mean(0)[steps - 1] - exact) < 5 * se + 1e-3 * exact)
    # and it is not the truncated list's expectation (the test can fail)
    assert np.all(np.abs(sim.mean(0)[steps - 1] - truncated) > 5 * se)


def test_infinite_list_test_set_matches_the_hurwitz_tail():
    held = np.array([1, 10, 100, 3000])
    sim = simulate_unlearned_mass(jax.random.PRNGKey(8), 0.2, None, batch=4096, n_steps=16,
                                  n_seeds=8, held=held)
    exact = zipf_tail(0.2, held)
    se = np.sqrt(exact * (1 - exact) / (4096 * 16 * 8))
    assert np.all(np.abs(sim.mean(0) - exact) < 5 * se)


def test_parity_full_entry_point_writes_a_self_describing_file(tmp_path, monkeypatch):
    import json

    import sulib.scaling as scaling

    tiny = dict(n_tasks=3, n_bits=6, k=2, gamma=1.0, width=8, batch=32, n_evals=2,
                eval_every=5, lr=1e-3)
    monkeypatch.setattr(scaling, "PARITY_FULL_CONFIG", tiny)
    x64 = jax.config.jax_enable_x64
    out = tmp_path / "run.npz"
    try:
        scaling._main(["parity-full", str(out)])
    finally:
        jax.config.update("jax_enable_x64", x64)
    data = np.load(out)
    assert str(data["command"]).endswith("python -m sulib.scaling parity-full " + str(out))
    assert json.loads(str(data["config"])) == dict(tiny, seed=scaling.PARITY_FULL_SEED)
    assert data["task_acc"].shape == data["task_loss"].shape == (2, 3)
    np.testing.assert_array_equal(data["steps"], [5, 10])


# ----------------------------------------------------------------------------- sparse parity


def test_sparse_parity_labels_are_the_parity_of_the_task_bits():
    n_tasks, n_bits, k = 6, 12, 3
    subsets = sparse_parity_subsets(jax.random.PRNGKey(3), n_tasks, n_bits, k)
    subsets_np = np.asarray(subsets)
    assert subsets_np.shape == (n_tasks, k)
    assert all(len(set(row)) == k for row in subsets_np.tolist())
    x, y, task = (np.asarray(v) for v in sparse_parity_batch(jax.random.PRNGKey(4), subsets, n_bits, 0.4, 4000))
    assert x.shape == (4000, n_tasks + n_bits) and y.shape == task.shape == (4000,)
    np.testing.assert_array_equal(x[:, :n_tasks], np.eye(n_tasks)[task])  # control bits = one-hot task
    bits = x[:, n_tasks:].astype(int)
    expected = np.array([bits[i, subsets_np[t]].sum() % 2 for i, t in enumerate(task)])
    np.testing.assert_array_equal(y, expected)
    # subtask frequencies follow the Zipf law
    freq = np.bincount(task, minlength=n_tasks) / task.size
    np.testing.assert_allclose(freq, zipf_probs(0.4, n_tasks), atol=0.03)


def test_training_learns_the_most_frequent_subtask_first():
    run = train_sparse_parity(jax.random.PRNGKey(5), n_tasks=3, n_bits=8, k=2, gamma=1.0, width=32,
                              batch=256, n_evals=6, eval_every=100, lr=3e-3, n_test=128)
    assert run.task_loss.shape == run.task_acc.shape == (6, 3)
    assert run.n_params == (3 + 8 + 1) * 32 + 33 * 2
    assert run.task_acc[-1, 0] > 0.95  # the most frequent parity is solved
    assert np.all(run.task_acc[:, 0] >= run.task_acc[:, 2] - 0.05)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, error, match", [
    (lambda: zipf_tail(0.0, 3), ValueError, "gamma"),
    (lambda: zipf_tail(-1.0, 3), ValueError, "gamma"),
    (lambda: zipf_tail(float("nan"), 3), ValueError, "gamma"),
    (lambda: zipf_tail(0.5, 0), ValueError, "n must be >= 1"),
    (lambda: zipf_tail(0.5, [1, np.inf]), ValueError, "n contains non-finite"),
    (lambda: zipf_tail(0.5, "ten"), TypeError, "n must hold real numbers"),
    (lambda: zipf_tail(0.5, 3, n_max=0), ValueError, "n_max"),
    (lambda: zipf_probs(0.5, 2.5), TypeError, "n_max"),
    (lambda: tail_power_law(0.5, 0.5), ValueError, "n must be >= 1"),
    (lambda: quanta_loss(0.5, 10, "compute"), ValueError, "unknown scaling"),
    (lambda: quanta_loss(0.05, 1e6, "data", tau=1), ValueError, "needs more than"),
    (lambda: quanta_loss(0.5, 10, a=1.0, b=1.0), ValueError, "b .* must exceed a"),
    (lambda: quanta_loss(0.5, 10, "data", n_max=10, tau=0), ValueError, "tau"),
    (lambda: quanta_loss(0.5, 0, "steps", n_max=10), ValueError, "x must be >= 1"),
    (lambda: simulate_unlearned_mass(jax.random.PRNGKey(0), 0.5, 10, batch=0, n_steps=2), ValueError, "batch"),
    (lambda: simulate_unlearned_mass(jax.random.PRNGKey(0), 0.5, 10, batch=2, n_steps=2, held=[0]),
     ValueError, "held"),
    (lambda: simulation_bins(0.5, None, d_max=10.0, rtol=0.0), ValueError, "rtol"),
    (lambda: simulation_bins(0.5, None, d_max=-1.0), ValueError, "d_max"),
    (lambda: simulation_bins(0.05, None, d_max=1e9), ValueError, "needs more than"),
    (lambda: sparse_parity_subsets(jax.random.PRNGKey(0), 3, 4, 5), ValueError, "k must be <= n_bits"),
    (lambda: sparse_parity_batch(jax.random.PRNGKey(0), np.array([[0, 9]]), 4, 0.5, 8), ValueError, "subsets"),
    (lambda: train_sparse_parity(jax.random.PRNGKey(0), n_tasks=2, n_bits=4, k=2, gamma=0.5, width=8,
                                 batch=8, n_evals=1, eval_every=1, lr=-1.0), ValueError, "lr"),
])
def test_bad_input_is_refused_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()
