import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import ddpm
from sulib import diffusion as dm

jax.config.update("jax_enable_x64", True)

D = 3


def _gaussian(seed: int, d: int = D) -> dm.Mixture:
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((d, d)))[0][None]
    return dm.make_mixture([1.0], rng.standard_normal((1, d)), rng.uniform(0.05, 1.5, (1, d)), U)


def _mixture(seed: int, K: int = 3, d: int = D) -> dm.Mixture:
    rng = np.random.default_rng(seed)
    U = np.stack([np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(K)])
    return dm.make_mixture(rng.uniform(0.2, 1.0, K), rng.standard_normal((K, d)),
                           rng.uniform(0.05, 1.0, (K, d)), U)


MIX = _mixture(0)
DDPM = ddpm.named_schedule("ddpm", 1000)


# --------------------------------------------------------------------------- schedules


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 200))
def test_schedule_identities(seed, T):
    alphas = np.random.default_rng(seed).uniform(0.3, 0.9999, T)
    s = ddpm.schedule_from_alphas(alphas)
    np.testing.assert_allclose(np.asarray(s.alpha), alphas, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(s.alpha) ** 2 + np.asarray(s.beta) ** 2, 1.0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(s.abar), np.cumprod(alphas), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(s.abar) ** 2 + np.asarray(s.bbar) ** 2, 1.0, atol=1e-14)
    # the marginal variance built step by step: V_t = α_t² V_{t-1} + β_t², V_0 = 0
    V = 0.0
    for a in alphas:
        V = a**2 * V + (1 - a**2)
    np.testing.assert_allclose(float(s.bbar[-1]) ** 2, V, rtol=1e-10, atol=1e-14)
    assert s.T == T and np.asarray(s.times).tolist() == list(range(1, T + 1))


def test_beta2_and_alpha_constructors_agree():
    b2 = np.linspace(1e-4, 0.02, 50)
    s1 = ddpm.schedule_from_beta2(b2)
    s2 = ddpm.schedule_from_alphas(np.sqrt(1 - b2))
    for a, b in zip(s1[:4], s2[:4]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)


def test_named_schedules():
    s = ddpm.named_schedule("ddpm", 1000)
    t = np.arange(1, 1001)
    np.testing.assert_allclose(np.asarray(s.alpha), np.sqrt(1 - 0.02 * t / 1000), rtol=1e-15)
    # log ᾱ_T = ½ Σ log(1 − t/50000), summed in high precision
    import mpmath
    mpmath.mp.dps = 30
    exact = mpmath.fsum(mpmath.log(1 - mpmath.mpf(k) / 50000) for k in range(1, 1001)) / 2
    assert abs(np.log(float(s.abar[-1])) - float(exact)) < 1e-12
    h = ddpm.named_schedule("ho_linear", 1000)
    np.testing.assert_allclose(np.asarray(h.beta)[[0, -1]] ** 2, [1e-4, 0.02], rtol=1e-13)
    assert ddpm.named_schedule("ho_linear", 1).T == 1


@pytest.mark.parametrize("n", [1, 2, 7, 10, 999, 1000])
def test_respace_keeps_the_marginals(n):
    r = ddpm.respace(DDPM, n)
    tau = np.asarray(r.times).astype(int)
    assert r.T == n and tau[-1] == 1000 and (n == 1 or tau[0] == 1)
    assert np.all(np.diff(tau) > 0)
    np.testing.assert_allclose(np.asarray(r.abar), np.asarray(DDPM.abar)[tau - 1], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(r.alpha) ** 2 + np.asarray(r.beta) ** 2, 1.0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(r.abar) ** 2 + np.asarray(r.bbar) ** 2, 1.0, atol=1e-14)
    if n == 1000:  # the identity respacing
        for a, b in zip(r, DDPM):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


def test_sigma_choices():
    s = ddpm.schedule_from_alphas([0.9, 0.8, 0.7])
    beta, bbar = np.asarray(s.beta), np.asarray(s.bbar)
    post = np.asarray(ddpm.sigma_choice(s, "posterior"))
    assert post[0] == 0.0
    np.testing.assert_allclose(post[1:], bbar[:-1] * beta[1:] / bbar[1:], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(ddpm.sigma_choice(s, "beta")), beta)
    assert np.all(post <= beta)


# --------------------------------------------------------------------------- exact ε and score


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), abar=st.floats(0.01, 0.999))
def test_eps_of_one_gaussian_is_the_direct_vp_computation(seed, abar):
    # x_t = ᾱ x_0 + β̄ ε with x_0 ~ N(μ, Σ): E[ε | x_t] = β̄ (ᾱ² Σ + β̄² I)^{-1} (x − ᾱ μ)
    g = _gaussian(seed % 50)
    mu, lam, U = (np.asarray(a)[0] for a in (g.means, g.eigvals, g.eigvecs))
    cov = U @ np.diag(lam) @ U.T
    bbar = np.sqrt(1 - abar**2)
    x = np.random.default_rng(seed).standard_normal((4, D))
    direct = (x - abar * mu) @ np.linalg.inv(abar**2 * cov + bbar**2 * np.eye(D)) * bbar
    np.testing.assert_allclose(np.asarray(ddpm.eps_exact(g, x, abar)), direct, rtol=1e-9, atol=1e-10)
    x0 = mu + (x - abar * mu) @ np.linalg.inv(abar**2 * cov + bbar**2 * np.eye(D)) @ cov * abar
    np.testing.assert_allclose(np.asarray(ddpm.x0_exact(g, x, abar)), x0, rtol=1e-9, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), abar=st.floats(0.02, 0.99))
def test_score_vp_is_the_gradient_of_the_vp_log_density(seed, abar):
    # p_t(x) = ᾱ^{-d} p^EDM(x / ᾱ, σ = β̄ / ᾱ)
    bbar = np.sqrt(1 - abar**2)
    x = np.random.default_rng(seed).standard_normal((1, D))

    def logp(y):
        return dm._log_density(MIX, (y / abar)[None], jnp.asarray(bbar / abar))[0]

    grad = jax.grad(logp)(jnp.asarray(x[0]))
    np.testing.assert_allclose(np.asarray(ddpm.score_vp(MIX, x, abar))[0], np.asarray(grad),
                               rtol=1e-8, atol=1e-10)


def test_eps_accepts_per_sample_abar():
    x = np.random.default_rng(3).standard_normal((3, D))
    a = np.array([0.2, 0.5, 0.9])
    batched = np.asarray(ddpm.eps_exact(MIX, x, a))
    rows = np.stack([np.asarray(ddpm.eps_exact(MIX, x[i:i + 1], a[i]))[0] for i in range(3)])
    np.testing.assert_allclose(batched, rows, rtol=1e-13)


def test_eps_is_the_regression_of_the_noise():
    # E[ε | x_t] minimises the squared error: the residual is uncorrelated with any function of x_t
    key = jax.random.PRNGKey(0)
    x0 = np.asarray(dm.sample_mixture(MIX, key, 200_000))
    eps = np.asarray(jax.random.normal(jax.random.PRNGKey(1), x0.shape))
    a = 0.6
    xt = a * x0 + np.sqrt(1 - a**2) * eps
    res = eps - np.asarray(ddpm.eps_exact(MIX, xt, a))
    for f in (xt, np.tanh(xt), xt**2):
        corr = np.mean(res[:, :, None] * f[:, None, :], axis=0)
        assert np.max(np.abs(corr)) < 5 * np.std(res) * np.std(f) / np.sqrt(len(xt)) + 1e-3


# --------------------------------------------------------------------------- ancestral sampling


def _propagate_gaussian_moments(g: dm.Mixture, s: ddpm.VPSchedule, sigma):
    """Exact mean and covariance of the sampler's output for Gaussian data (the sampler is affine)."""
    mu, lam, U = (np.asarray(a)[0] for a in (g.means, g.eigvals, g.eigvecs))
    cov = U @ np.diag(lam) @ U.T
    d = mu.size
    m, C = np.zeros(d), np.eye(d)
    alpha, beta, abar, bbar = (np.asarray(a) for a in (s.alpha, s.beta, s.abar, s.bbar))
    sigma = np.asarray(sigma)
    for i in range(s.T - 1, -1, -1):
        K = np.linalg.inv(abar[i] ** 2 * cov + bbar[i] ** 2 * np.eye(d)) * bbar[i]  # ε̂ = K (x − ᾱμ)
        A = (np.eye(d) - beta[i] ** 2 / bbar[i] * K) / alpha[i]
        c = (beta[i] ** 2 / bbar[i] * K @ (abar[i] * mu)) / alpha[i]
        m, C = A @ m + c, A @ C @ A.T + (sigma[i] ** 2 if i > 0 else 0.0) * np.eye(d)
    return m, C, mu, cov


def test_ancestral_sampling_matches_propagated_moments():
    g = _gaussian(1, d=2)
    s = ddpm.respace(DDPM, 20)
    sigma = ddpm.sigma_choice(s, "beta")
    n = 40_000
    xT = jax.random.normal(jax.random.PRNGKey(2), (n, 2))
    x0, nfe = ddpm.ancestral_sample(g, xT, s, sigma, jax.random.PRNGKey(3))
    assert nfe == 20
    m, C, _, _ = _propagate_gaussian_moments(g, s, sigma)
    x0 = np.asarray(x0)
    se = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(x0.mean(0) - m) < 5 * se)
    np.testing.assert_allclose(np.cov(x0.T), C, atol=6 * np.max(np.diag(C)) * np.sqrt(2 / n))


@pytest.mark.parametrize("kind", ddpm.SIGMA_CHOICES)
def test_ancestral_sampling_converges_on_gaussian_data(kind):
    g = _gaussian(4, d=2)
    errs = []
    for n_steps in (10, 100, 1000):
        s = ddpm.respace(DDPM, n_steps)
        m, C, mu, cov = _propagate_gaussian_moments(g, s, ddpm.sigma_choice(s, kind))
        errs.append(np.max(np.abs(m - mu)) + np.max(np.abs(C - cov)))
    # covariance error ~ 1/N (the mean is off by ~ᾱ_T |μ| at every N: x_T ~ N(0, I) exactly)
    assert errs[2] < errs[1] < errs[0] and errs[2] < 0.015
    assert errs[1] / errs[2] > 5


def test_ancestral_sampling_counts_and_reuses_noise():
    s = ddpm.respace(DDPM, 7)
    xT = jax.random.normal(jax.random.PRNGKey(0), (5, D))
    zero = np.zeros(7)
    a, n1 = ddpm.ancestral_sample(MIX, xT, s, zero, jax.random.PRNGKey(1))
    b, n2 = ddpm.ancestral_sample(MIX, xT, s, zero, jax.random.PRNGKey(9))
    assert n1 == n2 == 7
    np.testing.assert_allclose(np.asarray(a), np.asarray(b))  # σ = 0: no noise, key irrelevant
    c, _ = ddpm.ancestral_sample(MIX, xT, s, np.ones(7), jax.random.PRNGKey(1))
    d, _ = ddpm.ancestral_sample(MIX, xT, s, np.ones(7), jax.random.PRNGKey(1), final_noise=True)
    assert not np.allclose(np.asarray(a), np.asarray(c))
    assert not np.allclose(np.asarray(c), np.asarray(d))


def test_ancestral_step_written_out():
    s = ddpm.respace(DDPM, 5)
    sigma = np.asarray(ddpm.sigma_choice(s, "beta"))
    key = jax.random.PRNGKey(4)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (6, D)))
    out, _ = ddpm.ancestral_sample(MIX, x, s, sigma, key)
    alpha, beta, abar, bbar = (np.asarray(a) for a in (s.alpha, s.beta, s.abar, s.bbar))
    for i in range(4, -1, -1):
        eps = (x - abar[i] * np.asarray(dm.denoiser(MIX, x / abar[i], bbar[i] / abar[i]))) / bbar[i]
        z = np.asarray(jax.random.normal(jax.random.fold_in(key, i), x.shape))
        x = (x - beta[i] ** 2 / bbar[i] * eps) / alpha[i] + (sigma[i] * z if i > 0 else 0)
    np.testing.assert_allclose(np.asarray(out), x, rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------- ELBO and optimal σ


def _joint_neg_elbo(alphas, sigma, m, v):
    """−ELBO of 1-D Gaussian data from the joint Gaussians of the encoder and the decoder."""
    T = len(alphas)
    beta = np.sqrt(1 - alphas**2)
    M = np.zeros((T + 1, T + 1))  # z = M w, w = (x_0, ε_1, …, ε_T)
    M[0, 0] = 1
    for t in range(1, T + 1):
        M[t] = alphas[t - 1] * M[t - 1]
        M[t, t] += beta[t - 1]
    mean_p = M[:, 0] * m
    cov_p = M @ np.diag([v] + [1.0] * T) @ M.T
    # decoder: x_T ~ N(0, 1), x_{t-1} = a_t x_t + c_t + σ_t ξ_t, (a_t, c_t) the regression under p
    Q = np.zeros((T + 1, T + 1))  # z = Q u + c, u = (ξ_1, …, ξ_T, x_T)
    c = np.zeros(T + 1)
    Q[T, T] = 1
    for t in range(T, 0, -1):
        a = cov_p[t - 1, t] / cov_p[t, t]
        b = mean_p[t - 1] - a * mean_p[t]
        Q[t - 1] = a * Q[t]
        Q[t - 1, t - 1] += sigma[t - 1]
        c[t - 1] = a * c[t] + b
    cov_q = Q @ Q.T
    diff = mean_p - c
    cross = 0.5 * (np.linalg.slogdet(2 * np.pi * cov_q)[1] + np.trace(np.linalg.solve(cov_q, cov_p))
                   + diff @ np.linalg.solve(cov_q, diff))
    ent_cond = 0.5 * np.sum(np.log(2 * np.pi * np.e * beta**2))  # H(x_{1:T} | x_0)
    return cross - ent_cond


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 8))
def test_gaussian_neg_elbo_equals_the_joint_computation(seed, T):
    rng = np.random.default_rng(seed)
    alphas = rng.uniform(0.3, 0.99, T)
    sigma = rng.uniform(0.1, 1.0, T)
    m, v = rng.normal(), rng.uniform(0.01, 2.0)
    s = ddpm.schedule_from_alphas(alphas)
    per_step = ddpm.gaussian_neg_elbo(s, sigma, m, v).total
    assert abs(per_step - _joint_neg_elbo(alphas, sigma, m, v)) < 1e-9 * max(1.0, abs(per_step))


def test_gaussian_neg_elbo_optimal_sigma_and_dimensions():
    s = ddpm.respace(DDPM, 50)
    post = np.asarray(ddpm.sigma_choice(s, "posterior"))
    beta = np.asarray(s.beta)
    # single point: residual = posterior variance; standard normal: residual = β²
    np.testing.assert_allclose(ddpm.gaussian_neg_elbo(s, beta, 0.3, 0.0).residual, post**2,
                               rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(ddpm.gaussian_neg_elbo(s, beta, 0.0, 1.0).residual, beta**2, rtol=1e-10)
    # d coordinates add up
    e1 = ddpm.gaussian_neg_elbo(s, beta, 0.2, 0.3)
    e2 = ddpm.gaussian_neg_elbo(s, beta, [0.2, 0.2], [0.3, 0.3])
    assert abs(e2.total - 2 * e1.total) < 1e-9
    # the residual is the minimiser of each step term
    R = ddpm.gaussian_neg_elbo(s, beta, 0.0, 0.25).residual
    best = ddpm.gaussian_neg_elbo(s, np.sqrt(R), 0.0, 0.25).steps
    for f in (0.9, 1.1):
        assert np.all(ddpm.gaussian_neg_elbo(s, f * np.sqrt(R), 0.0, 0.25).steps > best)


def test_optimal_variance_of_gaussian_data_matches_the_closed_form():
    # one isotropic Gaussian N(0, v I): mmse_t = ᾱ_t² v / (ᾱ_t² v + β̄_t²)
    v = 0.25
    g = dm.make_mixture([1.0], np.zeros((1, 2)), np.full((1, 2), v), np.eye(2)[None])
    s = ddpm.respace(DDPM, 40)
    ov = ddpm.optimal_variance_mc(g, s, jax.random.PRNGKey(0), n=4096)
    abar, bbar = np.asarray(s.abar), np.asarray(s.bbar)
    mmse = abar**2 * v / (abar**2 * v + bbar**2)
    assert np.all(np.abs(ov.mmse - mmse) < 5 * ov.stderr / (np.asarray(s.beta) ** 4 / (
        np.asarray(s.alpha) ** 2 * bbar**2)) + 1e-12)
    exact = ddpm.gaussian_neg_elbo(s, np.asarray(s.beta), 0.0, v).residual
    np.testing.assert_allclose(ddpm.optimal_variance(s, mmse), exact, rtol=1e-10)


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    s = ddpm.respace(DDPM, 4)
    x = np.zeros((2, D))
    with pytest.raises(ValueError, match="alphas"):
        ddpm.schedule_from_alphas([0.5, 1.0])
    with pytest.raises(ValueError, match="alphas"):
        ddpm.schedule_from_alphas(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="alphas"):
        ddpm.schedule_from_alphas(["a"])
    with pytest.raises(ValueError, match="beta2"):
        ddpm.schedule_from_beta2([0.0, 0.1])
    with pytest.raises(ValueError, match="name"):
        ddpm.named_schedule("cosine")
    with pytest.raises(TypeError, match="T"):
        ddpm.named_schedule("ddpm", 10.0)
    with pytest.raises(ValueError, match="n_steps"):
        ddpm.respace(s, 5)
    with pytest.raises(TypeError, match="schedule"):
        ddpm.respace(np.ones(3), 2)
    with pytest.raises(ValueError, match="kind"):
        ddpm.sigma_choice(s, "learned")
    with pytest.raises(ValueError, match="abar"):
        ddpm.eps_exact(MIX, x, 1.0)
    with pytest.raises(ValueError, match="abar"):
        ddpm.eps_exact(MIX, x, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="x"):
        ddpm.eps_exact(MIX, np.zeros((2, D + 1)), 0.5)
    with pytest.raises(TypeError, match="mixture"):
        ddpm.score_vp("mix", x, 0.5)
    with pytest.raises(ValueError, match="sigma"):
        ddpm.ancestral_sample(MIX, x, s, np.ones(3), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="sigma"):
        ddpm.ancestral_sample(MIX, x, s, -np.ones(4), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="x_T"):
        ddpm.ancestral_sample(MIX, np.full((2, D), np.nan), s, np.ones(4), jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="final_noise"):
        ddpm.ancestral_sample(MIX, x, s, np.ones(4), jax.random.PRNGKey(0), final_noise=1)
    with pytest.raises(ValueError, match="sigma"):
        ddpm.gaussian_neg_elbo(s, np.zeros(4), 0.0, 1.0)
    with pytest.raises(ValueError, match="data_var"):
        ddpm.gaussian_neg_elbo(s, np.ones(4), 0.0, -1.0)
    with pytest.raises(ValueError, match="data_mean"):
        ddpm.gaussian_neg_elbo(s, np.ones(4), [0.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="mmse"):
        ddpm.optimal_variance(s, np.full(4, 2.0))
    with pytest.raises(ValueError, match="n"):
        ddpm.optimal_variance_mc(MIX, s, jax.random.PRNGKey(0), n=1)
