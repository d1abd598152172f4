"""Tests of sulib.sid: the exact teacher, SiD's loss terms, the networks and the training loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import diffusion as dm
from sulib import sde, sid

jax.config.update("jax_enable_x64", True)


def _random_mixture(seed: int, K: int = 3, d: int = 2) -> dm.Mixture:
    rng = np.random.default_rng(seed)
    U = np.stack([np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(K)])
    return dm.make_mixture(rng.uniform(0.2, 1.0, K), rng.standard_normal((K, d)),
                           rng.uniform(0.05, 1.0, (K, d)), U)


def _log_density(mix, y, sigma):
    """log p_σ(y) of x_0 + σ ε, x_0 from ``mix``, written out in jax.numpy (differentiable)."""
    cov = jnp.einsum("kij,kj,klj->kil", mix.eigvecs, mix.eigvals, mix.eigvecs)
    S = cov + sigma**2 * jnp.eye(y.shape[-1])
    res = y - mix.means
    quad = jnp.einsum("ki,kij,kj->k", res, jnp.linalg.inv(S), res)
    logn = -0.5 * (quad + jnp.linalg.slogdet(S)[1] + y.shape[-1] * jnp.log(2 * jnp.pi))
    return jax.scipy.special.logsumexp(jnp.log(mix.weights / mix.weights.sum()) + logn)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), sigma=st.floats(0.05, 5.0))
def test_score_identity_on_random_mixture(seed, sigma):
    """∇ log p_σ(x) (autodiff of the log-density) = E[∇ log p(x | x_0) | x] = −ε̂ / σ."""
    mix = _random_mixture(seed)
    x = np.random.default_rng(seed + 1).standard_normal((5, 2)) * 2
    grad = jax.vmap(jax.grad(lambda y: _log_density(mix, y, sigma)))(jnp.asarray(x))
    eps = sid.teacher_eps(mix, x, sigma)
    np.testing.assert_allclose(np.asarray(-sigma * grad), np.asarray(eps), rtol=1e-9, atol=1e-9)


def test_score_identity_by_posterior_sampling():
    """The conditional expectation of ∇ log p(x_t | x_0) over exact posterior draws of x_0."""
    mix = _random_mixture(3)
    x, sigma = np.array([[0.3, -0.7]]), 0.8
    n = 200_000
    x0 = np.asarray(sde.posterior_sample(mix, x, 1.0, sigma, jax.random.PRNGKey(0), n))[:, 0]
    g = (x0 - x) / sigma**2                     # ∇_{x_t} log N(x_t; x_0, σ² I)
    se = g.std(0) / np.sqrt(n)
    exact = -np.asarray(sid.teacher_eps(mix, x, sigma))[0] / sigma
    assert np.all(np.abs(g.mean(0) - exact) < 5 * se)


def _linear_gaussian_setup(n=200_000):
    """A linear generator x_g = z W + b (so p_θ = N(b, WᵀW)) at W = σ_d I, b = 0, where the
    zero-last-layer fake score is exactly ψ*(θ); a random teacher; one batch."""
    sd = 0.6
    theta = [(sd * jnp.eye(2), jnp.zeros(2))]
    psi = sid.fake_init(jax.random.PRNGKey(1), 2)
    mix = _random_mixture(11)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(2), 3)
    z = jax.random.normal(k1, (n, 2))
    sig = sid.generator_sigma(k2, n)
    eps = jax.random.normal(k3, (n, 2))
    return sd, theta, psi, mix, z, sig, eps


def _chunked_grads(fn, theta, n_chunks, n):
    """Gradients of fn(theta, slice) on n_chunks disjoint slices: mean and standard error."""
    rows = []
    for c in range(n_chunks):
        sl = slice(c * n // n_chunks, (c + 1) * n // n_chunks)
        (gw, gb), = jax.grad(fn)(theta, sl)
        rows.append(np.concatenate([np.ravel(gw), np.ravel(gb)]))
    rows = np.array(rows)
    return rows.mean(0), rows.std(0, ddof=1) / np.sqrt(n_chunks)


def test_generator_loss_gradient_is_half_the_true_gradient():
    """With the exact ψ* frozen, ∇_θ of L₂ − ½L₁ = ½ ∇_θ L₁(θ, ψ*(θ)), dψ*/dθ included; the
    frozen L₁ alone is biased. Fails if w is swapped, ε's sign flipped, or x_t's path into the
    fake score is cut."""
    sd, theta, psi, mix, z, sig, eps = _linear_gaussian_setup()
    n, K = z.shape[0], 20

    def true_l1(th, sl):           # L₁(θ, ψ*(θ)): ψ* = E[ε | x_t] of N(b, WᵀW), moving with θ
        (W, b), = th
        s = sig[sl]
        xt = z[sl] @ W + b + s[:, None] * eps[sl]
        C = W.T @ W
        e_f = s[:, None] * jnp.linalg.solve(C[None] + s[:, None, None] ** 2 * jnp.eye(2),
                                            (xt - b)[..., None])[..., 0]
        return jnp.mean(jnp.sum((sid._teacher_eps(mix, xt, s) - e_f) ** 2, -1))

    def gen(w):
        return lambda th, sl: sid.generator_loss(th, psi, mix, z[sl], sig[sl], eps[sl],
                                                 np.array(w), sd, weighted=False)[0]

    g_true, se_true = _chunked_grads(true_l1, theta, K, n)
    diffs = _chunked_grads(lambda th, sl: gen((1.0, -0.5))(th, sl) - 0.5 * true_l1(th, sl),
                           theta, K, n)
    assert np.all(np.abs(diffs[0]) < 4.5 * diffs[1] + 1e-12)
    assert np.max(np.abs(g_true) / se_true) > 20         # the target is not zero
    bias_l1 = _chunked_grads(lambda th, sl: gen((0.0, 1.0))(th, sl) - true_l1(th, sl),
                             theta, K, n)
    assert np.max(np.abs(bias_l1[0]) / bias_l1[1]) > 10  # frozen L₁ alone is biased


def test_generator_loss_matches_an_inline_weighted_loss():
    """Value and θ-gradient of the weighted loss against the formula written out here, with
    ω computed once outside (so not differentiated)."""
    sd, theta, psi, mix, z, sig, eps = _linear_gaussian_setup(n=512)
    theta = [(theta[0][0] + 0.1 * jnp.array([[0.0, 1.0], [0.5, 0.0]]), jnp.array([0.2, -0.1]))]
    psi = jax.tree_util.tree_map(lambda a: a + 0.05, psi)        # a non-optimal fake score
    w = np.array([1.0, -1.2])
    xt0 = z @ theta[0][0] + theta[0][1] + sig[:, None] * eps
    omega = sig / jnp.mean(jnp.abs(sid._teacher_eps(mix, xt0, sig) - eps), -1)

    def inline(th):
        (W, b), = th
        xt = z @ W + b + sig[:, None] * eps
        e_t = sid._teacher_eps(mix, xt, sig)
        delta = e_t - sid._fake_eps(psi, xt, sig, sd)
        l1, l2 = jnp.sum(delta**2, -1), jnp.sum(delta * (e_t - eps), -1)
        return jnp.mean(omega * (w[0] * l2 + w[1] * l1))

    got = lambda th: sid.generator_loss(th, psi, mix, z, sig, eps, w, sd)[0]  # noqa: E731
    np.testing.assert_allclose(got(theta), inline(theta), rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(jax.grad(got)(theta)),
                    jax.tree_util.tree_leaves(jax.grad(inline)(theta))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fake_loss_at_the_exact_fake_score_is_d():
    """For x_g ~ N(0, σ_d² I) the zero-last-layer fake score is E[ε | x_t]; then EDM's weighted
    loss has expectation d = 2 at every σ. A wrong ψ scores higher."""
    sd, n = 0.6, 100_000
    psi = sid.fake_init(jax.random.PRNGKey(1), 2)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(4), 3)
    xg = sd * jax.random.normal(k1, (n, 2))
    sig = sid.fake_sigma(k2, n)
    eps = jax.random.normal(k3, (n, 2))
    vals = np.array([float(sid.fake_loss(psi, xg[c::20], sig[c::20], eps[c::20], sd))
                     for c in range(20)])
    mean, se = vals.mean(), vals.std(ddof=1) / np.sqrt(20)
    assert abs(mean - 2) < 4 * se
    wrong = jax.tree_util.tree_map(lambda a: a + 0.1, psi)
    assert float(sid.fake_loss(wrong, xg, sig, eps, sd)) > mean + 10 * se


def test_l2_equals_l1_in_expectation_only_for_the_exact_fake_score():
    """L₁ − L₂ = E⟨ε_φ − ε_ψ, ε − ε_ψ⟩ vanishes for ε_ψ = E[ε | x_t], not for a wrong ε_ψ."""
    teacher = sid.ring_mixture()
    gen = _random_mixture(7)                     # the generator's distribution, a mixture
    wrong = dm.make_mixture(gen.weights, gen.means + 0.3, gen.eigvals, gen.eigvecs)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    n = 200_000
    xg = dm.sample_mixture(gen, k1, n)
    sig = sid.generator_sigma(k2, n)
    eps = jax.random.normal(k3, xg.shape)
    xt = xg + sig[:, None] * eps
    e_t = sid.teacher_eps(teacher, xt, sig)
    gaps = []
    for fake in (gen, wrong):
        l1, l2 = sid.loss_terms(e_t, sid.teacher_eps(fake, xt, sig), eps)
        diff = np.asarray(l1 - l2)
        gaps.append((diff.mean(), diff.std() / np.sqrt(n)))
    assert abs(gaps[0][0]) < 4 * gaps[0][1]
    assert abs(gaps[1][0]) > 10 * gaps[1][1]


def test_loss_terms_inline():
    rng = np.random.default_rng(0)
    a, b, e = (rng.standard_normal((6, 3)) for _ in range(3))
    l1, l2 = sid.loss_terms(a, b, e)
    np.testing.assert_allclose(l1, ((a - b) ** 2).sum(1), rtol=1e-13)
    np.testing.assert_allclose(l2, ((a - b) * (a - e)).sum(1), rtol=1e-13)


def test_fake_score_starts_as_the_gaussian_eps():
    """A zero last layer gives the exact ε-prediction of N(0, σ_d² I) data."""
    psi = sid.fake_init(jax.random.PRNGKey(0), 2)
    sd = 0.7
    gauss = dm.make_mixture([1.0], [[0.0, 0.0]], [[sd**2, sd**2]], [np.eye(2)])
    x = np.random.default_rng(1).standard_normal((4, 2))
    sig = np.array([0.01, 0.3, 2.0, 40.0])
    np.testing.assert_allclose(sid.fake_eps(psi, x, sig, sd), sid.teacher_eps(gauss, x, sig),
                               rtol=1e-10, atol=1e-12)


def test_generator_sigma_range():
    s = np.asarray(sid.generator_sigma(jax.random.PRNGKey(0), 10_000, t_max=0.8))
    top = (sid.SIGMA_MAX ** (1 / 7) + 0.2 * (sid.SIGMA_MIN ** (1 / 7) - sid.SIGMA_MAX ** (1 / 7))) ** 7
    assert s.min() >= sid.SIGMA_MIN and s.max() <= top and s.max() > 0.9 * top


def test_train_sid_small_run_is_deterministic_and_paired():
    mix = sid.ring_mixture()
    w = np.array([[0.0, 1.0], [1.0, -1.2]])
    kw = dict(n_seeds=2, n_steps=20, n_checkpoints=2, batch=32, n_eval=64)
    r1 = sid.train_sid(mix, jax.random.PRNGKey(3), w, **kw)
    r2 = sid.train_sid(mix, jax.random.PRNGKey(3), w, **kw)
    assert r1.sw2.shape == (4, 3) and r1.samples.shape == (4, 3, 64, 2)
    np.testing.assert_array_equal(r1.sw2, r2.sw2)
    # the two losses start from the same generator for each seed (paired), seeds differ
    np.testing.assert_array_equal(r1.samples[0, 0], r1.samples[2, 0])
    assert not np.array_equal(r1.samples[0, 0], r1.samples[1, 0])
    assert not np.array_equal(r1.samples[0, -1], r1.samples[2, -1])
    assert np.all(np.isfinite(r1.sw2))


def test_bad_input():
    mix = sid.ring_mixture()
    with pytest.raises(ValueError, match="sigma"):
        sid.teacher_eps(mix, np.zeros((2, 2)), -1.0)
    with pytest.raises(ValueError, match="sigma"):
        sid.teacher_eps(mix, np.zeros((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match="x"):
        sid.teacher_eps(mix, np.zeros((2, 3)), 1.0)
    with pytest.raises(TypeError, match="mixture"):
        sid.teacher_eps("ring", np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="eps_fake"):
        sid.loss_terms(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="weights"):
        sid.train_sid(mix, jax.random.PRNGKey(0), np.zeros(2))
    with pytest.raises(ValueError, match="n_steps"):
        sid.train_sid(mix, jax.random.PRNGKey(0), np.zeros((1, 2)), n_steps=7, n_checkpoints=2)
    with pytest.raises(TypeError, match="n_seeds"):
        sid.train_sid(mix, jax.random.PRNGKey(0), np.zeros((1, 2)), n_seeds=1.5)
    with pytest.raises(ValueError, match="t_max"):
        sid.generator_sigma(jax.random.PRNGKey(0), 3, t_max=2.0)
    with pytest.raises(ValueError, match="z"):
        sid.generate(sid.generator_init(jax.random.PRNGKey(0), 4, 2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="x"):
        sid.fake_eps(sid.fake_init(jax.random.PRNGKey(0), 2), np.zeros((3, 3)), 1.0)
    with pytest.raises(ValueError, match="var"):
        sid.ring_mixture(var=0.0)
    th, ps = sid.generator_init(jax.random.PRNGKey(0), 4, 2), sid.fake_init(jax.random.PRNGKey(0), 2)
    with pytest.raises(ValueError, match="eps"):
        sid.generator_loss(th, ps, mix, np.zeros((3, 4)), 1.0, np.zeros((3, 3)), [1.0, 0.0])
    with pytest.raises(ValueError, match="w"):
        sid.generator_loss(th, ps, mix, np.zeros((3, 4)), 1.0, np.zeros((3, 2)), [1.0])
    with pytest.raises(ValueError, match="sigma"):
        sid.fake_loss(ps, np.zeros((3, 2)), -1.0, np.zeros((3, 2)))


def test_long_entry_point_writes_a_self_describing_file(tmp_path, monkeypatch):
    import json

    tiny = dict(sid.LONG_CONFIG, n_seeds=1, n_steps=4, n_checkpoints=2, batch=8, n_eval=16)
    monkeypatch.setattr(sid, "LONG_CONFIG", tiny)
    out = tmp_path / "run.npz"
    sid._main(["long", str(out)])
    data = np.load(out)
    assert str(data["command"]).endswith("python -m sulib.sid long " + str(out))
    cfg = json.loads(str(data["config"]))
    assert cfg["seed"] == sid.LONG_SEED and cfg["n_steps"] == 4
    assert [tuple(w) for w in cfg["weights"]] == list(sid.LONG_WEIGHTS)
    assert data["sw2"].shape == (3, 3) and data["final_samples"].shape == (3, 16, 2)
    np.testing.assert_array_equal(data["steps"], [0, 2, 4])
