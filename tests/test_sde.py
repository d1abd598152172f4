import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import ddpm, sde
from sulib import diffusion as dm

jax.config.update("jax_enable_x64", True)

D = 2
K = 3


def _mixture(seed: int, k: int = K, d: int = D) -> dm.Mixture:
    rng = np.random.default_rng(seed)
    U = np.stack([np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(k)])
    return dm.make_mixture(rng.uniform(0.2, 1.0, k), rng.standard_normal((k, d)),
                           rng.uniform(0.05, 1.0, (k, d)), U)


MIX = _mixture(0)
MAKERS = {"ve": sde.ve_sde, "vp": sde.vp_sde, "subvp": sde.subvp_sde}


def _sde(kind: str, lo: float, span: float) -> sde.LinearSDE:
    return MAKERS[kind](lo, lo + span)


# --------------------------------------------------------------------------- schedules


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(MAKERS)), lo=st.floats(0.01, 1.0), span=st.floats(0.5, 30.0),
       t=st.floats(0.05, 0.95))
def test_f_and_g2_are_the_derivatives_of_the_schedule(kind, lo, span, t):
    """f = d ln ᾱ/dt and g² = ᾱ² d(β̄²/ᾱ²)/dt, by central differences of sulib's own ᾱ, β̄."""
    s = _sde(kind, lo, span)
    H = 1e-5
    c = sde.coefficients(s, np.array([t - H, t, t + H]))
    a, b = np.asarray(c.abar), np.asarray(c.bbar)
    f_fd = (np.log(a[2]) - np.log(a[0])) / (2 * H)
    g2_fd = a[1] ** 2 * ((b[2] / a[2]) ** 2 - (b[0] / a[0]) ** 2) / (2 * H)
    scale = abs(float(c.f[1])) + abs(float(c.g2[1])) + 1e-12
    assert abs(float(c.f[1]) - f_fd) / scale < 1e-6
    assert abs(float(c.g2[1]) - g2_fd) / scale < 1e-6
    # the second form of (sde-fg): g² = 2 ᾱ β̄ d(β̄/ᾱ)/dt
    g2_fd2 = 2 * a[1] * b[1] * (b[2] / a[2] - b[0] / a[0]) / (2 * H)
    assert abs(float(c.g2[1]) - g2_fd2) / scale < 1e-6


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_schedule_end_points_and_family_identities(kind):
    s = _sde(kind, 0.1, 19.9)
    t = np.linspace(0.0, 1.0, 101)
    c = sde.coefficients(s, t)
    a, b = np.asarray(c.abar), np.asarray(c.bbar)
    assert a[0] == 1.0 and b[0] == 0.0
    if kind == "ve":
        np.testing.assert_allclose(a, 1.0)
        np.testing.assert_allclose(b[-1] ** 2, 20.0**2 - 0.1**2, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(c.f), 0.0)
    elif kind == "vp":
        np.testing.assert_allclose(a**2 + b**2, 1.0, atol=1e-14)
    else:
        np.testing.assert_allclose(b, 1 - a**2, atol=1e-14)
    g2 = np.asarray(c.g2)
    if kind == "vp":                                          # g² = β(t)
        np.testing.assert_allclose(g2[[0, -1]], [0.1, 20.0], rtol=1e-14)
    if kind == "subvp":                                       # g² = β(t)(1 − ᾱ⁴)
        np.testing.assert_allclose(g2, (0.1 + 19.9 * t) * (1 - a**4), rtol=1e-12, atol=1e-15)


def test_post_ddpm_schedule_is_exp_minus_5t2():
    t = np.linspace(0, 1, 1001)
    a = np.asarray(sde.coefficients(sde.vp_sde(0.0, 20.0), t).abar)
    np.testing.assert_allclose(a, np.exp(-5 * t**2), rtol=1e-14)
    # and DDPM's discrete schedule is within 2e-3 of it at T = 1000
    disc = np.asarray(ddpm.named_schedule("ddpm", 1000).abar)
    assert np.max(np.abs(disc - a[1:])) < 2e-3


# --------------------------------------------------------------------------- exact scores


_GRAD_LOGP = jax.jit(jax.vmap(jax.grad(lambda y, a, b: sde._logp(MIX, y[None], a, b)[0]),
                              in_axes=(0, None, None)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), a=st.floats(0.05, 1.0), b=st.floats(0.05, 3.0))
def test_mixture_score_is_the_gradient_of_the_log_density(seed, a, b):
    x = np.random.default_rng(seed).standard_normal((5, D))
    s = np.asarray(sde.mixture_score(MIX, x, a, b))
    grad = _GRAD_LOGP(jnp.asarray(x), a, b)
    np.testing.assert_allclose(s, np.asarray(grad), rtol=1e-9, atol=1e-9)


def test_mixture_score_matches_the_vp_and_ve_scores():
    x = np.random.default_rng(1).standard_normal((7, D))
    for a in (0.1, 0.6, 0.95):
        b = np.sqrt(1 - a**2)
        np.testing.assert_allclose(np.asarray(sde.mixture_score(MIX, x, a, b)),
                                   np.asarray(ddpm.score_vp(MIX, x, a)), rtol=1e-12, atol=1e-12)
    for b in (0.05, 1.0, 7.0):
        np.testing.assert_allclose(np.asarray(sde.mixture_score(MIX, x, 1.0, b)),
                                   np.asarray(dm.score(MIX, x, b)), rtol=1e-12, atol=1e-12)
    # (B,) times
    a = np.linspace(0.2, 0.9, 7)
    np.testing.assert_allclose(np.asarray(sde.mixture_score(MIX, x, a, np.sqrt(1 - a**2))),
                               np.asarray(ddpm.score_vp(MIX, x, a)), rtol=1e-12, atol=1e-12)


def test_mixture_log_density_normalises():
    a, b = 0.7, 0.5
    g = np.linspace(-6, 6, 401)
    X, Y = np.meshgrid(g, g)
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    dens = np.exp(np.asarray(sde.mixture_log_density(MIX, pts, a, b)))
    assert abs(dens.sum() * (g[1] - g[0]) ** 2 - 1) < 1e-6


def test_mixture_log_density_gradient_is_the_score():
    x = np.random.default_rng(3).standard_normal((5, D))
    a, b, h = 0.7, 0.5, 1e-5
    fd = np.stack([(np.asarray(sde.mixture_log_density(MIX, x + h * e, a, b))
                    - np.asarray(sde.mixture_log_density(MIX, x - h * e, a, b))) / (2 * h)
                   for e in np.eye(D)], 1)
    np.testing.assert_allclose(fd, np.asarray(sde.mixture_score(MIX, x, a, b)), atol=1e-8)


def test_posterior_samples_have_the_exact_mean_and_variance():
    x = np.random.default_rng(2).standard_normal((3, D))
    a, b = 0.8, 0.6
    n = 100_000
    ps = np.asarray(sde.posterior_sample(MIX, x, a, b, jax.random.PRNGKey(0), n))
    assert ps.shape == (n, 3, D)
    mean = np.asarray(ddpm.x0_exact(MIX, x, a))
    se = ps.std(0) / np.sqrt(n)
    assert np.max(np.abs(ps.mean(0) - mean) / se) < 4.5
    # one component: the posterior covariance is Σ − Σ (Σ + s²)^(-1) Σ
    g1 = _mixture(3, k=1)
    ps1 = np.asarray(sde.posterior_sample(g1, x, a, b, jax.random.PRNGKey(1), n))
    U, lam = np.asarray(g1.eigvecs[0]), np.asarray(g1.eigvals[0])
    s2 = (b / a) ** 2
    cov = U @ np.diag(lam * s2 / (lam + s2)) @ U.T
    np.testing.assert_allclose(np.cov(ps1[:, 0].T), cov, atol=5e-3)
    # (B,) noise levels
    ab = np.array([0.3, 0.6, 0.9])
    ps2 = np.asarray(sde.posterior_sample(MIX, x, ab, np.sqrt(1 - ab**2), jax.random.PRNGKey(2),
                                          n))
    se2 = ps2.std(0) / np.sqrt(n)
    assert np.max(np.abs(ps2.mean(0) - np.asarray(ddpm.x0_exact(MIX, x, ab))) / se2) < 4.5


# --------------------------------------------------------------------------- reverse Euler–Maruyama


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(sorted(MAKERS)), m=st.floats(-1.0, 1.0), v=st.floats(0.01, 2.0))
def test_em_moments_converge_to_the_exact_marginal(kind, m, v):
    """Gaussian data: the EM chain's output law tends to p_{t_min} at rate 1/N."""
    s = {"ve": sde.ve_sde(0.01, 5.0), "vp": sde.vp_sde(0.1, 20.0),
         "subvp": sde.subvp_sde(0.1, 20.0)}[kind]
    t_min = 1e-2
    c = sde.coefficients(s, t_min)
    exact_mean, exact_var = float(c.abar) * m, float(c.abar**2 * v + c.bbar**2)
    errs = []
    for N in (800, 1600, 3200):
        mu, var = sde.em_gaussian_moments(s, np.linspace(1.0, t_min, N + 1), m, v)
        errs.append(abs(float(var) - exact_var) + abs(float(mu) - exact_mean))
    assert errs[-1] < 0.002 * (1 + exact_var)
    # first order once asymptotic (VE's error constant changes sign at small N for some v)
    assert 1.5 < errs[-2] / errs[-1] < 2.5


def test_sampler_matches_the_exact_em_moments_on_gaussian_data():
    g = dm.make_mixture([1.0], [[0.4, -0.2]], [[0.3, 0.8]], [np.eye(2)])
    s = sde.vp_sde(0.1, 20.0)
    grid = np.geomspace(1.0, 1e-3, 25)                      # a non-uniform grid
    c1 = sde.coefficients(s, 1.0)
    k0, k1, k2 = jax.random.split(jax.random.PRNGKey(0), 3)
    n = 40_000
    x0 = dm.sample_mixture(g, k0, n)
    xT = c1.abar * x0 + c1.bbar * jax.random.normal(k1, x0.shape)
    x, nfe = sde.reverse_em_sample(g, s, xT, grid, k2)
    assert nfe == 24
    mu, var = sde.em_gaussian_moments(s, grid, np.array([0.4, -0.2]), np.array([0.3, 0.8]))
    x = np.asarray(x)
    assert np.max(np.abs(x.mean(0) - mu) / np.sqrt(var / n)) < 4.5
    assert np.max(np.abs(x.var(0) / var - 1) / np.sqrt(2 / n)) < 4.5


def test_sampler_is_the_written_out_loop_and_is_deterministic():
    s = sde.subvp_sde(0.1, 20.0)
    grid = np.array([1.0, 0.7, 0.3, 0.1, 0.02])
    x = np.random.default_rng(4).standard_normal((6, D))
    key = jax.random.PRNGKey(3)
    out, nfe = sde.reverse_em_sample(MIX, s, x, grid, key)
    ref = x.copy()
    for k in range(4):
        c = sde.coefficients(s, grid[k])
        h = grid[k] - grid[k + 1]
        sc = np.asarray(sde.mixture_score(MIX, ref, c.abar, c.bbar))
        z = np.asarray(jax.random.normal(jax.random.fold_in(key, k), ref.shape))
        ref = ref - (float(c.f) * ref - float(c.g2) * sc) * h + np.sqrt(float(c.g2) * h) * z
    assert nfe == 4
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-12, atol=1e-12)
    again, _ = sde.reverse_em_sample(MIX, s, x, grid, key)
    assert np.array_equal(np.asarray(out), np.asarray(again))


# --------------------------------------------------------------------------- score matching


def _h_const(x):
    return jnp.ones_like(x)


def test_dsm_is_minimised_by_the_score_and_differs_from_esm_by_a_constant():
    a, b = 0.7, float(np.sqrt(1 - 0.49))
    deltas = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    st_ = sde.dsm_mc(MIX, a, b, jax.random.PRNGKey(0), 100_000, deltas, (_h_const, jnp.tanh))
    assert st_.dsm.shape == (2, 5) and st_.slope.shape == (2,)
    assert np.all(np.abs(st_.slope) < 4.5 * st_.slope_se)
    # consistency check (holds by construction: ESM at s + δh is δ² E‖h‖² per draw)
    np.testing.assert_allclose(st_.esm, st_.curvature[:, None] * deltas**2, rtol=1e-10)
    const = D / b**2 - st_.fisher
    gap0 = st_.gap[:, 2]
    assert np.all(np.abs(gap0 - const) < 4.5 * np.hypot(st_.gap_se[:, 2], st_.fisher_se))
    # the gap moves with δ only by δ · slope (common draws)
    np.testing.assert_allclose(st_.gap - gap0[:, None], st_.slope[:, None] * deltas, atol=1e-9)


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="sigma_min"):
        sde.ve_sde(0.0, 1.0)
    with pytest.raises(ValueError, match="beta_max"):
        sde.vp_sde(1.0, 0.5)
    with pytest.raises(ValueError, match="beta_min"):
        sde.subvp_sde(-0.1, 1.0)
    with pytest.raises(ValueError, match="beta_min"):
        sde.vp_sde([0.1, 0.2], 1.0)
    with pytest.raises(TypeError, match="sde"):
        sde.coefficients("vp", 0.5)
    with pytest.raises(ValueError, match="sde.kind"):
        sde.coefficients(sde.LinearSDE("xx", 0.1, 1.0), 0.5)
    with pytest.raises(ValueError, match="t must"):
        sde.coefficients(sde.vp_sde(), 1.5)
    with pytest.raises(ValueError, match="nan"):
        sde.coefficients(sde.vp_sde(), np.nan)
    s = sde.vp_sde()
    x = np.zeros((4, D))
    with pytest.raises(ValueError, match="grid"):
        sde.reverse_em_sample(MIX, s, x, [0.1, 0.5], jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="grid"):
        sde.reverse_em_sample(MIX, s, x, [1.0, 0.0], jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="x_T"):
        sde.reverse_em_sample(MIX, s, np.zeros((4, 3)), [1.0, 0.5], jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="mixture"):
        sde.reverse_em_sample("mix", s, x, [1.0, 0.5], jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="key"):
        sde.reverse_em_sample(MIX, s, x, [1.0, 0.5], "notakey")
    with pytest.raises(TypeError, match="key"):
        sde.reverse_em_sample(MIX, s, x, [1.0, 0.5], jax.random.split(jax.random.PRNGKey(0)))
    sde.reverse_em_sample(MIX, s, x, [1.0, 0.5], jax.random.key(0))       # typed keys work
    with pytest.raises(ValueError, match="abar"):
        sde.mixture_score(MIX, x, 0.0, 1.0)
    with pytest.raises(ValueError, match="bbar"):
        sde.mixture_score(MIX, x, 0.5, np.ones(3))
    with pytest.raises(ValueError, match="n must"):
        sde.posterior_sample(MIX, x, 0.5, 0.5, jax.random.PRNGKey(0), 0)
    with pytest.raises(ValueError, match="var"):
        sde.em_gaussian_moments(s, [1.0, 0.5], 0.0, -1.0)
    with pytest.raises(ValueError, match="var"):
        sde.em_gaussian_moments(s, [1.0, 0.5], [0.0, 1.0], 1.0)
    with pytest.raises(TypeError, match="directions"):
        sde.dsm_mc(MIX, 0.5, 0.5, jax.random.PRNGKey(0), 10, [0.0], jnp.tanh)
    with pytest.raises(ValueError, match="deltas"):
        sde.dsm_mc(MIX, 0.5, 0.5, jax.random.PRNGKey(0), 10, [[0.0]], (jnp.tanh,))
    with pytest.raises(ValueError, match="abar"):
        sde.dsm_mc(MIX, -0.5, 0.5, jax.random.PRNGKey(0), 10, [0.0], (jnp.tanh,))
