"""Tests for sulib.fsq: VQ and FSQ quantizers, straight-through gradients, EMA step, usage."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import fsq

jax.config.update("jax_enable_x64", True)


def _rand(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def test_vq_picks_nearest_code_and_passes_gradient():
    z, cb = _rand(0, 50, 3), _rand(1, 7, 3)
    zq, idx = fsq.vq_quantize(z, cb)
    d = ((z[:, None, :] - cb[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.asarray(idx), d.argmin(1))
    np.testing.assert_allclose(np.asarray(zq), cb[d.argmin(1)], atol=1e-14)
    w = _rand(2, 50, 3)
    g = jax.grad(lambda z: jnp.sum(w * fsq.vq_quantize(z, cb)[0]))(jnp.asarray(z))
    np.testing.assert_allclose(np.asarray(g), w, atol=0)   # identity Jacobian


# two shapes (the smallest and a general one), so JAX compiles twice, not once per example;
# hypothesis varies the data and its scale
@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([(1, 1), (5, 9)]), st.floats(1e-3, 1e3))
def test_aux_losses_have_the_gradient_of_the_squared_distance(seed, shape, scale):
    d, K = shape
    z = jnp.asarray(scale * _rand(seed, 11, d))
    cb = jnp.asarray(scale * _rand(seed + 1, K, d))

    def full(z, cb):
        idx = fsq.vq_quantize(z, cb)[1]
        return jnp.mean(jnp.sum((cb[idx] - z) ** 2, -1))

    def split(z, cb):
        a, b = fsq.vq_losses(z, cb)
        return a + b
    g1, g2 = jax.grad(full, (0, 1))(z, cb), jax.grad(split, (0, 1))(z, cb)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12 * scale)
    # the two terms act on different arguments
    gz = jax.grad(lambda z: fsq.vq_losses(z, cb)[0])(z)
    gc = jax.grad(lambda cb: fsq.vq_losses(z, cb)[1])(cb)
    assert float(jnp.abs(gz).max()) == 0 and float(jnp.abs(gc).max()) == 0


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.floats(0.0, 0.99))
def test_ema_step_is_sgd_on_per_code_mean_loss(seed, alpha):
    cb, z = _rand(seed, 6, 2), _rand(seed + 1, 40, 2)
    idx = np.asarray(fsq.vq_quantize(z, cb)[1])
    new = np.asarray(fsq.ema_update(cb, z, idx, alpha))
    eta = (1 - alpha) / 2
    for k in range(6):
        m = idx == k
        if not m.any():
            np.testing.assert_array_equal(new[k], cb[k])
            continue
        grad = 2 * (cb[k] - z[m].mean(0))       # of mean_i ‖e_k - z_i‖² over code k's vectors
        np.testing.assert_allclose(new[k], cb[k] - eta * grad, atol=1e-12)


def test_ema_reference_loop():
    cb, z = _rand(3, 4, 2), _rand(4, 9, 2)
    idx = np.array([0, 0, 1, 1, 1, 3, 3, 3, 3])
    new = np.asarray(fsq.ema_update(cb, z, idx, 0.9))
    for k, rows in {0: [0, 1], 1: [2, 3, 4], 3: [5, 6, 7, 8]}.items():
        np.testing.assert_allclose(new[k], 0.9 * cb[k] + 0.1 * z[rows].mean(0), atol=1e-14)
    np.testing.assert_array_equal(new[2], cb[2])


def test_ema_vq_step_equals_the_chapters_formula():
    # steady counts (N_k = n_k), m_k = N_k e_k, no smoothing: e_k ← α e_k + (1 - α) z̄_k
    cb, z = _rand(5, 4, 3), _rand(6, 12, 3)
    idx = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 2, 2])
    n_k = np.bincount(idx, minlength=4).astype(float)
    counts, sums, new = fsq.ema_vq_step(n_k, n_k[:, None] * cb, z, idx, 0.9, eps=0.0)
    np.testing.assert_allclose(np.asarray(new), np.asarray(fsq.ema_update(cb, z, idx, 0.9)),
                               atol=1e-14)
    np.testing.assert_allclose(np.asarray(counts), n_k, atol=1e-14)


def test_ema_vq_step_laplace_reference_loop():
    N, m, z = np.array([2.0, 1.5, 0.0]), _rand(7, 3, 2), _rand(8, 5, 2)
    idx = np.array([0, 0, 1, 0, 1])
    a, eps = 0.8, 0.1
    counts, sums, cb = (np.asarray(v) for v in fsq.ema_vq_step(N, m, z, idx, a, eps))
    for k in range(3):
        Nk = a * N[k] + (1 - a) * (idx == k).sum()
        mk = a * m[k] + (1 - a) * z[idx == k].sum(0)
        assert abs(counts[k] - Nk) < 1e-14
        np.testing.assert_allclose(sums[k], mk, atol=1e-14)
    total = counts.sum()
    assert abs(total - 3) > 0.5     # Σ N' ≠ K, so smoothing by K instead of Σ N would fail
    smoothed = (counts + eps) / (total + 3 * eps) * total
    np.testing.assert_allclose(cb, sums / smoothed[:, None], atol=1e-14)
    assert abs(smoothed.sum() - total) < 1e-13        # smoothing keeps the total count


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.floats(0.0, 0.99), st.floats(1e-2, 1e2))
def test_ema_vq_step_fixed_point_and_count_identity(seed, alpha, scale):
    # vectors that sit on their codes leave the codebook where it is, for any counts N_k > 0,
    # and the total count obeys Σ N' = α Σ N + (1 - α) n
    rng = np.random.default_rng(seed)
    cb, N = scale * rng.standard_normal((5, 3)), rng.uniform(0.1, 10.0, 5)
    idx = rng.integers(0, 5, 17)
    counts, _, new = fsq.ema_vq_step(N, N[:, None] * cb, cb[idx], idx, alpha, eps=0.0)
    np.testing.assert_allclose(np.asarray(new), cb, rtol=1e-12, atol=1e-12 * scale)
    assert abs(float(counts.sum()) - (alpha * N.sum() + (1 - alpha) * 17)) < 1e-12 * N.sum()


def test_dead_code_is_reseeded_from_the_batch():
    cb, z = _rand(9, 4, 2), 10 + _rand(10, 6, 2)          # z far from every code
    counts, sums = np.full(4, 3.0), 3.0 * cb             # m_k = N_k e_k with N_k = 3
    age = np.array([0, 2, 1, 5], dtype=np.int32)
    idx = np.array([0, 0, 2, 2, 0, 2])                    # codes 1 and 3 unused this step
    out = fsq.restart_dead_codes(cb, counts, sums, age, z, idx, jax.random.PRNGKey(0), 3)
    cb2, counts2, sums2, age2 = (np.asarray(v) for v in out)
    np.testing.assert_array_equal(age2, [0, 0, 0, 0])     # 1 and 3 reached age 3: restarted
    for k in (1, 3):                                      # re-seeded at a batch vector
        assert any(np.array_equal(cb2[k], row) for row in z)
        np.testing.assert_array_equal(sums2[k], cb2[k])
        assert counts2[k] == 1                            # reset from 3 to 1
    np.testing.assert_array_equal(cb2[[0, 2]], cb[[0, 2]])  # live codes untouched
    np.testing.assert_array_equal(counts2[[0, 2]], [3.0, 3.0])
    np.testing.assert_array_equal(sums2[[0, 2]], sums[[0, 2]])
    out = fsq.restart_dead_codes(cb, counts, sums, age, z, idx, jax.random.PRNGKey(0), 4)
    np.testing.assert_array_equal(np.asarray(out[3]), [0, 3, 0, 0])   # code 1 not yet dead
    np.testing.assert_array_equal(np.asarray(out[0])[[0, 1, 2]], cb[[0, 1, 2]])


@pytest.mark.parametrize("L", range(2, 10))
def test_sigmoid_fsq_has_L_levels(L):
    z = np.linspace(-30, 30, 20001)[:, None]
    q, idx = fsq.fsq_quantize(z, (L,), "sigmoid")
    assert sorted(set(np.asarray(q).ravel().tolist())) == list(range(L))
    np.testing.assert_array_equal(np.asarray(idx), np.asarray(q)[:, 0].astype(int))


@pytest.mark.parametrize("L", range(2, 10))
def test_tanh_fsq_has_L_levels_with_offset(L):
    z = np.linspace(-30, 30, 20001)[:, None]
    q, idx = fsq.fsq_quantize(z, (L,), "tanh")
    assert sorted(set(np.asarray(q).ravel().tolist())) == list(range(-(L // 2), L - L // 2))
    assert sorted(set(np.asarray(idx).tolist())) == list(range(L))


def test_fsq_index_is_a_bijection_onto_the_grid():
    levels = (3, 4, 2)
    grid = np.array(list(itertools.product(*[range(L) for L in levels])))
    idx = np.asarray(fsq.fsq_index(grid, levels))
    assert sorted(idx.tolist()) == list(range(24))
    np.testing.assert_array_equal(idx, grid[:, 0] + 3 * grid[:, 1] + 12 * grid[:, 2])


def test_fsq_straight_through_gradient():
    z = jnp.asarray(_rand(5, 20, 3))
    levels = (5, 4, 7)
    for bound in fsq.BOUNDS:
        g = jax.grad(lambda z: jnp.sum(fsq.fsq_quantize(z, levels, bound)[0]))(z)
        g_ref = jax.grad(lambda z: jnp.sum(fsq.fsq_bound(z, levels, bound)))(z)
        np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=0)
        assert float(jnp.abs(g).min()) > 0


def test_code_usage():
    used, ppl = fsq.code_usage(np.array([0, 0, 1, 1]), 4)
    assert used == 0.5 and abs(ppl - 2) < 1e-12
    used, ppl = fsq.code_usage(np.arange(8), 8)
    assert used == 1.0 and abs(ppl - 8) < 1e-9


def test_train_autoencoder_smoke():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 16))
    for kind, size in (("vq", 8), ("vq-ema", 8), ("fsq", (3, 3))):
        r = fsq.train_autoencoder(x[:48], x[48:], kind=kind, size=size, seed=0, hidden=(8,),
                                  n_tokens=2, vq_dim=2, steps=20, batch=8)
        assert r["K"] in (8, 9) and 0 < r["used"] <= 1 and r["test_mse"] > 0
        assert len(r["loss_curve"]) == 10


def test_training_restarts_dead_codes():
    # K = 64 codes for 96 training tokens: with restarts (max_age = 5) the trained VQ uses
    # more codes than the same run with restarts switched off (max_age beyond the run)
    x = np.random.default_rng(0).uniform(size=(64, 16))
    kw = dict(kind="vq-ema", size=64, seed=0, hidden=(8,), n_tokens=2, vq_dim=2, steps=100,
              batch=8)
    on = fsq.train_autoencoder(x[:48], x[48:], max_age=5, **kw)
    off = fsq.train_autoencoder(x[:48], x[48:], max_age=10**9, **kw)
    assert on["used"] > off["used"] + 0.1 and on["perplexity"] > off["perplexity"]


def test_bad_inputs():
    cb = np.zeros((4, 3))
    with pytest.raises(ValueError, match="codebook"):
        fsq.vq_quantize(np.zeros((2, 2)), cb)
    with pytest.raises(ValueError, match="z contains non-finite"):
        fsq.vq_quantize(np.array([[np.nan, 0, 0]]), cb)
    with pytest.raises(TypeError, match="z must hold real"):
        fsq.vq_losses(np.array([["a", "b", "c"]]), cb)
    with pytest.raises(ValueError, match="decay"):
        fsq.ema_update(cb, np.zeros((2, 3)), np.array([0, 1]), 1.0)
    with pytest.raises(ValueError, match="idx must lie"):
        fsq.ema_update(cb, np.zeros((2, 3)), np.array([0, 4]), 0.5)
    with pytest.raises(TypeError, match="idx must hold integers"):
        fsq.ema_update(cb, np.zeros((2, 3)), np.array([0.0, 1.0]), 0.5)
    with pytest.raises(ValueError, match="levels must have 2 entries"):
        fsq.fsq_quantize(np.zeros((3, 2)), (5,))
    with pytest.raises(ValueError, match=r"levels\[0\] must be >= 2"):
        fsq.fsq_quantize(np.zeros((3, 1)), (1,))
    with pytest.raises(ValueError, match="unknown bound"):
        fsq.fsq_quantize(np.zeros((3, 1)), (5,), "relu")
    with pytest.raises(ValueError, match="digits must lie"):
        fsq.fsq_index(np.array([[5]]), (5,))
    with pytest.raises(ValueError, match="idx must lie"):
        fsq.code_usage(np.array([0, 9]), 4)
    with pytest.raises(ValueError, match="int32 code index would overflow"):
        fsq.fsq_quantize(np.zeros((3, 4)), (256, 256, 256, 128))
    assert fsq.fsq_levels_count((256, 256, 256, 127)) == 256**3 * 127   # just below 2**31
    with pytest.raises(ValueError, match=r"size\[0\] must be >= 2"):
        fsq.train_autoencoder(np.zeros((4, 2)), np.zeros((2, 2)), kind="fsq", size=(1,), seed=0)
    with pytest.raises(ValueError, match="decay"):
        fsq.ema_vq_step(np.ones(4), cb, np.zeros((2, 3)), np.array([0, 1]), -0.1)
    with pytest.raises(ValueError, match="counts must be >= 0"):
        fsq.ema_vq_step(-np.ones(4), cb, np.zeros((2, 3)), np.array([0, 1]), 0.5)
    with pytest.raises(ValueError, match="sums must have shape"):
        fsq.ema_vq_step(np.ones(4), np.zeros((3, 3)), np.zeros((2, 3)), np.array([0, 1]), 0.5)
    with pytest.raises(ValueError, match="eps must be"):
        fsq.ema_vq_step(np.ones(4), cb, np.zeros((2, 3)), np.array([0, 1]), 0.5, eps=-1.0)
    with pytest.raises(ValueError, match="idx must have shape"):
        fsq.ema_vq_step(np.ones(4), cb, np.zeros((2, 3)), np.array([0]), 0.5)
    key = jax.random.PRNGKey(0)
    with pytest.raises(TypeError, match="age must hold integers"):
        fsq.restart_dead_codes(cb, np.ones(4), cb, np.zeros(4), np.zeros((2, 3)),
                               np.array([0, 1]), key, 3)
    with pytest.raises(ValueError, match="max_age must be >= 1"):
        fsq.restart_dead_codes(cb, np.ones(4), cb, np.zeros(4, int), np.zeros((2, 3)),
                               np.array([0, 1]), key, 0)
    with pytest.raises(ValueError, match="counts, sums must have shapes"):
        fsq.restart_dead_codes(cb, np.ones(3), cb[:3], np.zeros(4, int), np.zeros((2, 3)),
                               np.array([0, 1]), key, 3)
    with pytest.raises(ValueError, match="unknown kind"):
        fsq.train_autoencoder(np.zeros((4, 2)), np.zeros((2, 2)), kind="pq", size=4, seed=0)
