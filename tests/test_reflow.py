import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import diffusion as dm
from sulib import reflow as rf
from sulib.nets import mlp_apply, mlp_init

jax.config.update("jax_enable_x64", True)


def _random_mixture(seed: int, K: int = 3, d: int = 2) -> dm.Mixture:
    rng = np.random.default_rng(seed)
    U = np.stack([np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(K)])
    return dm.make_mixture(rng.uniform(0.2, 1.0, K), rng.standard_normal((K, d)),
                           rng.uniform(0.05, 1.0, (K, d)), U)


MIX = _random_mixture(0)


# --------------------------------------------------------------------------- v*


def test_exact_velocity_matches_monte_carlo_conditional_mean():
    # given x_t = x and x_1, the noise is x_0 = (x - t x_1)/(1 - t): weight each data draw by N(x_0; 0, I)
    x1 = np.asarray(dm.sample_mixture(MIX, jax.random.PRNGKey(1), 400_000))
    x = np.array([[0.3, -0.2], [1.0, 0.5], [-1.5, 0.8]])
    t = 0.6
    for xi, v in zip(x, np.asarray(rf.exact_velocity(MIX, x, t))):
        x0 = (xi - t * x1) / (1 - t)
        logw = -0.5 * np.sum(x0**2, axis=1)
        w = np.exp(logw - logw.max())
        w /= w.sum()
        assert 1.0 / np.sum(w**2) > 1000
        np.testing.assert_allclose(v, w @ (x1 - x0), atol=0.03)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.02, 0.98))
def test_exact_velocity_is_edm_velocity_after_change_of_variables(seed, t):
    # x_t / t = x_1 + σ x_0 with σ = (1 - t)/t, so E[x_1 | x_t = x] = D_EDM(x/t, σ)
    mix = _random_mixture(seed)
    x = np.random.default_rng(seed).standard_normal((6, 2)) * 2
    edm = (np.asarray(dm.denoiser(mix, x / t, (1 - t) / t)) - x) / (1 - t)
    np.testing.assert_allclose(np.asarray(rf.exact_velocity(mix, x, t)), edm, rtol=1e-8, atol=1e-8)


def test_exact_velocity_end_points():
    x = np.random.default_rng(2).standard_normal((5, 2))
    mean = np.asarray(MIX.weights) @ np.asarray(MIX.means)
    np.testing.assert_allclose(np.asarray(rf.exact_velocity(MIX, x, 0.0)), mean - x, atol=1e-12)
    np.testing.assert_allclose(np.asarray(rf.exact_velocity(MIX, x, 1.0)), x, atol=1e-12)


def test_log_density_t_normalised():
    g = np.linspace(-8, 8, 321)
    X, Y = np.meshgrid(g, g)
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    for t in (0.0, 0.5, 0.9):
        mass = np.exp(np.asarray(rf.log_density_t(MIX, pts, t))).sum() * (g[1] - g[0]) ** 2
        assert abs(mass - 1) < 1e-6


def test_time_free_velocity_is_weighted_average_and_converges():
    x = np.random.default_rng(3).standard_normal((7, 2))
    a = np.asarray(rf.time_free_velocity(MIX, x, 64))
    b = np.asarray(rf.time_free_velocity(MIX, x, 128))
    np.testing.assert_allclose(a, b, atol=1e-8)
    # brute force: midpoint rule in t with p_t weights
    ts = (np.arange(4000) + 0.5) / 4000
    num, den = 0.0, 0.0
    for t in ts:
        p = np.exp(np.asarray(rf.log_density_t(MIX, x, t)))[:, None]
        num = num + p * np.asarray(rf.exact_velocity(MIX, x, t))
        den = den + p
    np.testing.assert_allclose(a, num / den, atol=1e-6)


def test_vstar_minimises_reflow_loss_better_than_time_free():
    rng = np.random.default_rng(4)
    n = 20_000
    x0 = rng.standard_normal((n, 2))
    x1 = np.asarray(dm.sample_mixture(MIX, jax.random.PRNGKey(4), n))
    t = rng.uniform(size=n)
    xt = np.asarray(rf.interpolate(x0, x1, t))
    l_star = np.asarray(rf.reflow_losses(rf.exact_velocity(MIX, xt, t), x0, x1))
    l_bar = np.asarray(rf.reflow_losses(rf.time_free_velocity(MIX, xt), x0, x1))
    l_zero = np.asarray(rf.reflow_losses(np.zeros_like(x0), x0, x1))
    d1, d2 = l_bar - l_star, l_zero - l_bar
    assert d1.mean() > 5 * d1.std() / np.sqrt(n) and d2.mean() > 5 * d2.std() / np.sqrt(n)


# --------------------------------------------------------------------------- losses


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_critic_grad_matches_finite_differences(seed):
    params = mlp_init(jax.random.PRNGKey(seed), (2, 8, 1))
    x = np.random.default_rng(seed).standard_normal((4, 2))
    g = np.asarray(rf.critic_grad(params, x))
    h = 1e-6
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fd = (np.asarray(rf.critic_value(params, x + e)) - np.asarray(rf.critic_value(params, x - e)))
        np.testing.assert_allclose(g[:, j], fd / (2 * h), rtol=1e-6, atol=1e-8)


def test_critic_losses_written_out():
    params = mlp_init(jax.random.PRNGKey(0), (2, 16, 1))
    rng = np.random.default_rng(0)
    x0, x1, t = rng.standard_normal((50, 2)), rng.standard_normal((50, 2)) + 2, rng.uniform(size=50)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    D = lambda y: np.asarray(mlp_apply(params, y))[:, 0]
    g = np.asarray(rf.critic_grad(params, xt))
    post = np.mean(0.5 * np.sum(g**2, 1) - D(x1) + D(x0))
    wgan = np.mean(D(x0) - D(x1) + 10 * (np.linalg.norm(g, axis=1) - 1) ** 2)
    assert abs(float(rf.critic_loss(params, x0, x1, t)) - post) < 1e-12
    assert abs(float(rf.wgan_gp_critic_loss(params, x0, x1, t)) - wgan) < 1e-9


def test_generator_regression_gradient_is_2eps_times_minus_critic_gradient():
    crit = mlp_init(jax.random.PRNGKey(1), (2, 16, 1))
    gen = mlp_init(jax.random.PRNGKey(2), (2, 16, 2))
    z = jnp.asarray(np.random.default_rng(5).standard_normal((64, 2)))
    eps = 0.3
    g_reg = jax.grad(rf.generator_loss)(gen, crit, z, "reflow", eps)
    g_adv = jax.grad(rf.generator_loss)(gen, crit, z, "wgan-gp", eps)
    a, b = (jnp.concatenate([jnp.ravel(u) for u in jax.tree_util.tree_leaves(g)]) for g in (g_reg, g_adv))
    assert float(jnp.max(jnp.abs(a - 2 * eps * b))) < 1e-12 * float(jnp.max(jnp.abs(a)))


# --------------------------------------------------------------------------- training and sampling


def test_train_critic_decreases_loss_and_is_deterministic():
    p1, l1 = rf.train_critic(0, MIX, hidden=(16,), steps=200, batch=64)
    p2, l2 = rf.train_critic(0, MIX, hidden=(16,), steps=200, batch=64)
    assert np.asarray(l1).shape == (200,)
    assert float(np.mean(l1[-20:])) < float(np.mean(l1[:20]))
    np.testing.assert_array_equal(np.asarray(l1), np.asarray(l2))


def test_train_velocity_fits_a_deterministic_straight_coupling():
    # x1 = x0 + c: the coupling is straight with v = c everywhere
    rng = np.random.default_rng(6)
    x0 = rng.standard_normal((512, 2))
    c = np.array([1.0, -0.5])
    params, losses = rf.train_velocity(0, x0, x0 + c, hidden=(16,), steps=800, batch=64)
    v = np.asarray(rf.velocity_net(params)(jnp.asarray(x0[:100]), jnp.full((100,), 0.3)))
    assert np.sqrt(np.mean((v - c) ** 2)) < 0.05
    assert float(np.mean(losses[-50:])) < 0.01 * float(np.mean(losses[:10]))


def test_train_gan_shapes_both_kinds():
    for kind in rf.GAN_KINDS:
        run = rf.train_gan(0, MIX, kind, hidden=(8,), n_evals=2, eval_every=3, n_critic=2,
                           batch=16, n_show=10)
        assert run.samples.shape == (3, 10, 2)
        assert run.critic_losses.shape == (6,)
        assert np.all(np.isfinite(np.asarray(run.samples)))


def test_euler_counts_nfe_and_is_exact_for_constant_velocity():
    v = lambda x, t: jnp.ones_like(x)
    x0 = np.zeros((3, 2))
    x1, nfe = rf.euler_sample(v, x0, 7)
    assert nfe == 7
    np.testing.assert_allclose(np.asarray(x1), 1.0, atol=1e-14)
    _, nfe4 = rf.euler_sample(v, x0, 7, method="rk4")
    assert nfe4 == 28


def test_rk4_flow_of_vstar_pushes_noise_to_data():
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(7), (2000, 2)))
    x1, _ = rf.euler_sample(rf.exact_velocity_fn(MIX), z, 100, method="rk4")
    data = np.asarray(dm.sample_mixture(MIX, jax.random.PRNGKey(8), 2000))
    other = np.asarray(dm.sample_mixture(MIX, jax.random.PRNGKey(9), 2000))
    floor = dm.sliced_wasserstein(other, data, jax.random.PRNGKey(0))
    assert dm.sliced_wasserstein(np.asarray(x1), data, jax.random.PRNGKey(0)) < 2 * floor


def test_straightness_zero_for_straight_flow_positive_for_curved():
    x0 = np.random.default_rng(8).standard_normal((50, 2))
    s0, _ = rf.straightness(lambda x, t: jnp.broadcast_to(jnp.array([1.0, 2.0]), x.shape), x0)
    assert s0 < 1e-20
    rot = lambda x, t: jnp.stack([-x[:, 1], x[:, 0]], axis=1)  # rotation: curved paths
    s1, _ = rf.straightness(rot, x0)
    assert s1 > 0.01


# --------------------------------------------------------------------------- bad input


def test_bad_input():
    x = np.zeros((3, 2))
    with pytest.raises(TypeError, match="mix"):
        rf.exact_velocity("mixture", x, 0.5)
    with pytest.raises(ValueError, match="x"):
        rf.exact_velocity(MIX, np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match="t"):
        rf.exact_velocity(MIX, x, 1.5)
    with pytest.raises(ValueError, match="t"):
        rf.exact_velocity(MIX, x, np.zeros(4))
    with pytest.raises(ValueError, match="x"):
        rf.exact_velocity(MIX, np.full((3, 2), np.nan), 0.5)
    with pytest.raises(ValueError, match="n_nodes"):
        rf.time_free_velocity(MIX, x, 1)
    with pytest.raises(ValueError, match="x1"):
        rf.interpolate(x, np.zeros((4, 2)), 0.5)
    with pytest.raises(ValueError, match="v"):
        rf.reflow_losses(np.zeros((3, 3)), x, x)
    with pytest.raises(TypeError, match="params"):
        rf.critic_grad([], x)
    with pytest.raises(ValueError, match="lam"):
        rf.wgan_gp_critic_loss(mlp_init(jax.random.PRNGKey(0), (2, 1)), x, x, np.zeros(3), lam=0)
    with pytest.raises(TypeError, match="seed"):
        rf.train_critic(0.5, MIX)
    with pytest.raises(ValueError, match="steps"):
        rf.train_critic(0, MIX, steps=0)
    with pytest.raises(ValueError, match="kind"):
        rf.train_gan(0, MIX, "vanilla")
    with pytest.raises(ValueError, match="kind"):
        rf.generator_loss([(1, 1)], [(1, 1)], x, "vanilla")
    with pytest.raises(TypeError, match="mix"):
        rf.exact_velocity_fn(None)
    with pytest.raises(TypeError, match="velocity"):
        rf.euler_sample("v", x, 3)
    with pytest.raises(ValueError, match="method"):
        rf.euler_sample(lambda y, t: y, x, 3, method="heun")
    with pytest.raises(ValueError, match="n_steps"):
        rf.straightness(lambda y, t: y, x, 1)


def test_flow_path_ends_where_rk4_ends_and_draw_mixture_moments():
    z = np.random.default_rng(9).standard_normal((20, 2))
    v = rf.exact_velocity_fn(MIX)
    path = np.asarray(rf.flow_path(v, z, 40))
    assert path.shape == (41, 20, 2)
    np.testing.assert_allclose(path[0], z, atol=0)
    np.testing.assert_allclose(path[-1], np.asarray(rf.euler_sample(v, z, 40, "rk4")[0]),
                               atol=1e-12)
    x = rf.draw_mixture(MIX, np.random.default_rng(0), 200_000)
    mean = np.asarray(MIX.weights) @ np.asarray(MIX.means)
    assert np.abs(x.mean(axis=0) - mean).max() < 0.02
    with pytest.raises(TypeError, match="rng"):
        rf.draw_mixture(MIX, 0, 10)
