import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import diffusion as dm
from sulib.fit import power_law_fit

jax.config.update("jax_enable_x64", True)

D = 3


def _random_mixture(seed: int, K: int = 3, d: int = D) -> dm.Mixture:
    rng = np.random.default_rng(seed)
    U = np.stack([np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(K)])
    return dm.make_mixture(rng.uniform(0.2, 1.0, K), rng.standard_normal((K, d)), rng.uniform(0.05, 1.0, (K, d)), U)


def _single_gaussian(seed: int = 0, d: int = D) -> dm.Mixture:
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((d, d)))[0][None]
    return dm.make_mixture([1.0], rng.standard_normal((1, d)), rng.uniform(0.1, 1.0, (1, d)), U)


MIX = _random_mixture(0)
GAUSS = _single_gaussian(0)


# --------------------------------------------------------------------------- exact denoiser


def test_denoiser_matches_self_normalised_importance_sampling():
    # E[x0 | x_t = x] = Σ_i x0_i N(x; x0_i, t² I) / Σ_i N(x; x0_i, t² I) over data samples x0_i
    x0 = np.asarray(dm.sample_mixture(MIX, jax.random.PRNGKey(0), 400_000))
    x = np.array([[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]])
    t = 0.7
    logw = -0.5 * np.sum((x[:, None, :] - x0[None]) ** 2, axis=-1) / t**2
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    mc = w @ x0
    ess = 1.0 / np.sum(w**2, axis=1)
    exact = np.asarray(dm.denoiser(MIX, x, t))
    assert ess.min() > 1000
    np.testing.assert_allclose(exact, mc, atol=0.05)


def test_single_gaussian_denoiser_closed_form():
    mu, lam, U = (np.asarray(a)[0] for a in (GAUSS.means, GAUSS.eigvals, GAUSS.eigvecs))
    cov = U @ np.diag(lam) @ U.T
    x = np.random.default_rng(1).standard_normal((5, D))
    for t in (0.01, 0.5, 3.0):
        expected = mu + (x - mu) @ np.linalg.solve(cov + t**2 * np.eye(D), cov)  # Σ(Σ + t²I)^{-1}(x - μ), symmetric
        np.testing.assert_allclose(np.asarray(dm.denoiser(GAUSS, x, t)), expected, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.01, 50.0))
def test_score_and_velocity_are_the_denoiser_identities(seed, t):
    x = np.random.default_rng(seed).standard_normal((4, D)) * 3
    D_ = np.asarray(dm.denoiser(MIX, x, t))
    np.testing.assert_allclose(np.asarray(dm.score(MIX, x, t)), (D_ - x) / t**2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dm.velocity(MIX, x, t)), (x - D_) / t, rtol=1e-12, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.05, 10.0))
def test_score_is_the_gradient_of_the_log_density(seed, t):
    x = np.random.default_rng(seed).standard_normal((1, D))
    grad = jax.grad(lambda y: dm._log_density(MIX, y[None], jnp.asarray(t))[0])(jnp.asarray(x[0]))
    np.testing.assert_allclose(np.asarray(dm.score(MIX, x, t))[0], np.asarray(grad), rtol=1e-8, atol=1e-10)


def test_log_density_normalised_in_one_dimension():
    rng = np.random.default_rng(2)
    m = dm.make_mixture([0.3, 0.7], rng.standard_normal((2, 1)), [[0.2], [0.5]], np.ones((2, 1, 1)))
    grid = np.linspace(-12, 12, 20001)[:, None]
    p = np.exp(np.asarray(dm.log_density(m, grid, 0.5)))
    assert abs(np.trapezoid(p, grid[:, 0]) - 1) < 1e-8


def test_zero_weight_components_and_embedding_do_not_change_the_flow():
    padded = dm.make_mixture(np.r_[np.asarray(MIX.weights), 0.0], np.r_[np.asarray(MIX.means), np.zeros((1, D))],
                             np.r_[np.asarray(MIX.eigvals), np.ones((1, D))],
                             np.r_[np.asarray(MIX.eigvecs), np.eye(D)[None]])
    big = dm.embed(MIX, 7)
    x = np.random.default_rng(3).standard_normal((6, D))
    xb = np.concatenate([x, np.zeros((6, 4))], axis=1)
    v = np.asarray(dm.velocity(MIX, x, 0.8))
    np.testing.assert_allclose(np.asarray(dm.velocity(padded, x, 0.8)), v, atol=1e-13)
    vb = np.asarray(dm.velocity(big, xb, 0.8))
    np.testing.assert_allclose(vb[:, :D], v, atol=1e-13)
    assert np.all(vb[:, D:] == 0)


def test_toy_mixtures_have_the_requested_std():
    for kind in dm.MIXTURE_KINDS:
        m = dm.toy_mixture(kind, 5, pad_to=16)
        assert m.n_components == 16 and m.dim == 5
        assert abs(dm.data_std(m) - 0.5) < 1e-12
        x = np.asarray(dm.sample_mixture(m, jax.random.PRNGKey(1), 100_000))
        assert abs(np.sqrt(np.mean(np.var(x, axis=0))) - 0.5) < 0.01


# --------------------------------------------------------------------------- grids


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 200), t_min=st.floats(1e-4, 0.5), t_max=st.floats(1.0, 200.0), rho=st.floats(0.5, 10.0))
def test_grids_are_decreasing_with_the_right_endpoints(n, t_min, t_max, rho):
    for g in (dm.edm_grid(n, t_min, t_max, rho), dm.uniform_grid(n, t_min, t_max)):
        assert g.shape == (n + 1,)
        assert g[0] == t_max and g[-1] == t_min
        assert np.all(np.diff(g) < 0)


def test_edm_grid_matches_the_formula():
    g = dm.edm_grid(4)
    i = np.arange(5)
    expected = (80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(g, expected, rtol=1e-14)


# --------------------------------------------------------------------------- solvers


def test_nfe_counts_and_budgets():
    x = np.ones((2, D))
    for solver in dm.SOLVERS:
        for N in (1, 3, 6):
            for afs in (False, True):
                _, nfe = dm.solve(GAUSS, x, dm.edm_grid(N), solver, afs=afs)
                assert nfe == dm.nfe_count(solver, N, afs) == dm._EVALS_PER_STEP[solver] * N - afs
    assert dm.steps_for_nfe("euler", 5) == (5, False)
    for solver in ("heun", "midpoint", "dpm2", "amed"):
        for nfe in (3, 5, 7, 9, 4, 10):
            N, afs = dm.steps_for_nfe(solver, nfe)
            assert dm.nfe_count(solver, N, afs) == nfe
            assert afs == (nfe % 2 == 1)


def test_solver_orders_on_the_single_gaussian_flow():
    # one Gaussian: the ODE is linear and its flow is known in closed form
    x_T = np.random.default_rng(4).standard_normal((8, D)) * 10
    exact = np.asarray(dm.gaussian_flow(GAUSS, x_T, 10.0, 0.5))
    Ns = np.array([16, 32, 64, 128])
    for solver, order in (("euler", 1), ("heun", 2), ("midpoint", 2), ("dpm2", 2), ("amed", 2)):
        errs = [np.abs(np.asarray(dm.solve(GAUSS, x_T, dm.uniform_grid(N, 0.5, 10.0), solver)[0]) - exact).max()
                for N in Ns]
        slope = power_law_fit(Ns, np.array(errs)).exponent
        # at least the nominal order (the midpoint rule happens to reach 3 on this particular linear ODE)
        assert slope < -order + 0.15, (solver, slope)
        if solver in ("euler", "heun", "dpm2"):
            assert slope > -order - 0.15, (solver, slope)


def test_amed_with_half_is_dpm2_and_path_ends_at_the_end_state():
    x = np.random.default_rng(5).standard_normal((4, D)) * 20
    g = dm.edm_grid(5, 0.01, 20.0)
    a, _ = dm.solve(MIX, x, g, "amed", r=np.full(5, 0.5))
    b, _ = dm.solve(MIX, x, g, "dpm2")
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)
    path, _ = dm.solve(MIX, x, g, "heun", return_path=True)
    assert path.shape == (6, 4, D)
    np.testing.assert_allclose(np.asarray(path[0]), x)
    np.testing.assert_allclose(np.asarray(path[-1]), np.asarray(dm.solve(MIX, x, g, "heun")[0]), atol=1e-12)


def test_afs_first_step_uses_x_over_t():
    x = np.random.default_rng(6).standard_normal((3, D)) * 80
    g = np.array([80.0, 0.5])
    out, nfe = dm.solve(MIX, x, g, "euler", afs=True)
    assert nfe == 0
    np.testing.assert_allclose(np.asarray(out), x + (0.5 - 80.0) * x / 80.0, atol=1e-12)


def test_reference_solve_matches_the_closed_form():
    x_T = np.random.default_rng(7).standard_normal((5, D)) * 80
    ts = dm.edm_grid(6)
    path, steps = dm.reference_solve(GAUSS, x_T, ts, chunk=4)
    exact = np.asarray(dm.gaussian_flow(GAUSS, x_T, 80.0, ts))
    assert path.shape == (7, 5, D) and steps.shape == (5,)
    np.testing.assert_allclose(np.asarray(path), exact, atol=1e-7)


def test_amed_training_improves_on_dpm2():
    x_T = np.random.default_rng(8).standard_normal((16, D)) * 80
    g = dm.edm_grid(3)
    ref, _ = dm.reference_solve(MIX, x_T, g, chunk=16)
    p, losses = dm.train_amed(MIX, ref, g, afs=True, learn_scale=True, iters=100, lr=0.1, pad_steps=4)
    assert p.r.shape == (3,) and losses.shape == (100,)
    assert float(losses[-1]) < float(losses[0])
    amed, _ = dm.solve(MIX, x_T, g, "amed", afs=True, r=np.asarray(p.r), scale=np.asarray(p.scale))
    dpm2, _ = dm.solve(MIX, x_T, g, "dpm2", afs=True)
    err = lambda x: np.linalg.norm(np.asarray(x) - np.asarray(ref[-1]))
    assert err(amed) < err(dpm2)


# --------------------------------------------------------------------------- diagnostics


def test_pca_shares_of_a_straight_and_a_planar_path():
    s = np.linspace(0, 1, 20)[:, None, None]
    line = 1.0 + s**2 * np.array([1.0, 2.0, 3.0])
    circle = np.stack([np.cos(4 * s[..., 0]), np.sin(4 * s[..., 0]), 0 * s[..., 0]], axis=-1)
    shares = np.asarray(dm.trajectory_pca_shares(np.concatenate([line, circle], axis=1)))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-12)
    assert shares[0, 0] > 1 - 1e-12
    assert shares[1, :2].sum() > 1 - 1e-12 and shares[1, 0] < 0.99


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), shift=st.floats(-5, 5))
def test_sliced_wasserstein_of_a_shift(seed, shift):
    x = np.random.default_rng(seed).standard_normal((300, 4))
    key = jax.random.PRNGKey(seed)
    assert dm.sliced_wasserstein(x, x, key) < 1e-12
    # every projection moves by θ·shift·1, so SW² = shift² E[(θ·1)²] = shift² |1|²/d = shift²
    assert abs(dm.sliced_wasserstein(x, x + shift, key, 4000) - abs(shift)) < 0.1 * abs(shift) + 1e-9


def test_symbolic_local_error_orders():
    assert [dm.local_error_leading_term(m)[0] for m in ("euler", "heun", "midpoint", "dpm2")] == [2, 3, 3, 3]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, exc, word", [
    (lambda: dm.denoiser(MIX, np.ones((2, D + 1)), 1.0), ValueError, "x"),
    (lambda: dm.denoiser(MIX, np.full((2, D), np.nan), 1.0), ValueError, "x"),
    (lambda: dm.denoiser(MIX, np.ones((2, D)), -1.0), ValueError, "t"),
    (lambda: dm.denoiser(MIX, np.ones((2, D)), np.ones(3)), ValueError, "t"),
    (lambda: dm.denoiser("mix", np.ones((2, D)), 1.0), TypeError, "mixture"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "rk4"), ValueError, "solver"),
    (lambda: dm.solve(MIX, np.ones((2, D)), [1.0, 2.0], "euler"), ValueError, "grid"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "amed", r=np.full(2, 0.5)), ValueError, "r"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "amed", r=np.full(3, 1.5)), ValueError, "r"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "euler", r=np.full(3, 0.5)), ValueError, "r"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "euler", afs=1), TypeError, "afs"),
    (lambda: dm.edm_grid(0), ValueError, "n_steps"),
    (lambda: dm.edm_grid(2.5), TypeError, "n_steps"),
    (lambda: dm.edm_grid(4, t_min=90.0), ValueError, "t_min"),
    (lambda: dm.uniform_grid(3, t_max=float("inf")), ValueError, "t_max"),
    (lambda: dm.steps_for_nfe("heun", 1), ValueError, "nfe"),
    (lambda: dm.nfe_count("euler", 0), ValueError, "n_steps"),
    (lambda: dm.make_mixture([1.0], [[0.0, 0.0]], [[1.0, -1.0]], [np.eye(2)]), ValueError, "eigvals"),
    (lambda: dm.make_mixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]], [2 * np.eye(2)]), ValueError, "eigvecs"),
    (lambda: dm.make_mixture([1.0, 1.0], [[0.0, 0.0]], [[1.0, 1.0]], [np.eye(2)]), ValueError, "means"),
    (lambda: dm.toy_mixture("blobs", 4), ValueError, "kind"),
    (lambda: dm.gaussian_flow(MIX, np.ones((1, D)), 1.0, 0.5), ValueError, "mixture"),
    (lambda: dm.reference_solve(MIX, np.ones((1, D)), dm.edm_grid(2), method="euler"), ValueError, "method"),
    (lambda: dm.trajectory_pca_shares(np.ones((1, 2, 3))), ValueError, "paths"),
    (lambda: dm.sliced_wasserstein(np.ones((3, 2)), np.ones((4, 2)), jax.random.PRNGKey(0)), ValueError, "x"),
    (lambda: dm.train_amed(MIX, np.ones((3, 2, D)), dm.edm_grid(3)), ValueError, "ref_path"),
    (lambda: dm.train_amed(MIX, np.ones((4, 2, D)), dm.edm_grid(3), pad_steps=2), ValueError, "pad_steps"),
    (lambda: dm.train_amed(MIX, np.ones((4, 2, D)), dm.edm_grid(3), r_init=1.0), ValueError, "r_init"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "amed", scale=[1.0, -1.0, 1.0]), ValueError, "scale"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "amed", time_scale=[1.0, 0.0, 1.0]), ValueError,
     "time_scale"),
    (lambda: dm.solve(MIX, np.ones((2, D)), dm.edm_grid(3), "heun", time_scale=np.ones(3)), ValueError,
     "time_scale"),
    (lambda: dm.train_amed(MIX, np.ones((4, 2, D)), dm.edm_grid(3), paper_bounds=1), TypeError, "paper_bounds"),
    (lambda: dm.sliced_wasserstein_bootstrap(np.ones((3, 2)), np.ones((3, 2)), jax.random.PRNGKey(0)),
     ValueError, "xs"),
])
def test_bad_input_is_rejected_with_the_argument_named(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


# --------------------------------------------------------------------------- AMED time scale, bounds, bootstrap


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.5, 2.0), c=st.floats(0.5, 1.5))
def test_amed_time_scale_asks_the_denoiser_at_tau_s(seed, tau, c):
    # one step written out in NumPy: x + c h (x_s - D(x_s, tau s)) / s with x_s the Euler point at s
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, D)) * 2
    g = np.array([2.0, 0.3])
    r = rng.uniform(0.05, 0.95)
    d = np.asarray(dm.velocity(MIX, x, g[0]))
    s = g[1] ** r * g[0] ** (1 - r)
    xs = x + (s - g[0]) * d
    want = x + c * (g[1] - g[0]) * (xs - np.asarray(dm.denoiser(MIX, xs, tau * s))) / s
    got, nfe = dm.solve(MIX, x, g, "amed", r=[r], scale=[c], time_scale=[tau])
    assert nfe == 2
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_paper_bounds_keep_the_scales_inside_the_papers_ranges():
    x_T = 80.0 * np.asarray(jax.random.normal(jax.random.PRNGKey(5), (32, D)))
    g = dm.edm_grid(3)
    ref = np.asarray(dm.reference_solve(MIX, x_T, g)[0])
    p, losses = dm.train_amed(MIX, ref, g, afs=True, learn_scale=True, paper_bounds=True, iters=60, lr=0.3)
    assert p.paper_bounds and p.eta is not None
    assert np.all((np.asarray(p.scale) > 0.99) & (np.asarray(p.scale) < 1.01))
    assert np.all((np.asarray(p.time_scale) > 0.8) & (np.asarray(p.time_scale) < 1.2))
    assert float(losses[-1]) < float(losses[0])
    q, _ = dm.train_amed(MIX, ref, g, afs=True, learn_scale=False, paper_bounds=True, iters=5)
    np.testing.assert_allclose(np.asarray(q.scale), 1.0, atol=1e-15)   # not learned: stays at 1
    np.testing.assert_allclose(np.asarray(q.time_scale), 1.0, atol=1e-15)


def test_unbounded_params_keep_the_old_meaning():
    p = dm.AmedParams(jnp.zeros(2), jnp.array([0.5, -0.2]))
    np.testing.assert_allclose(np.asarray(p.scale), [1.5, 0.8])
    np.testing.assert_allclose(np.asarray(p.time_scale), [1.0, 1.0])
    np.testing.assert_allclose(np.asarray(p.r), [0.5, 0.5])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-3.0, 3.0))
def test_bootstrap_sliced_wasserstein_is_paired_and_sees_a_shift(seed, shift):
    key = jax.random.PRNGKey(seed)
    y = np.asarray(jax.random.normal(key, (200, 2)))
    xs = np.stack([y, y + shift])
    b = np.asarray(dm.sliced_wasserstein_bootstrap(xs, y, jax.random.PRNGKey(seed + 1), n_boot=20,
                                                    n_projections=500))
    assert b.shape == (20, 2)
    # the same rows drawn for x and y only when the index sets agree: the identity copy is never worse
    assert np.all(b[:, 0] >= 0)
    # the paired difference is the shift seen through the projections, about |shift| up to resampling
    assert abs(np.median(b[:, 1] - b[:, 0]) - abs(shift)) < 0.25 + 0.15 * abs(shift)


# --------------------------------------------------------------------------- mean-value residual minimiser


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 0.95), st.floats(0.0, 0.3))
def test_min_residual_norm_is_exact_for_a_vector_quadratic(seed, r0, floor):
    # f(r) = a (r - r0) + b (r - r0)^2 + floor * e with e orthogonal to a and b: min |f| = floor at r0
    # (exact up to the sub-grid: spacing 1/16/2000, slope |a| = 1, so within 1e-4)
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((4, 3)))[0]          # orthonormal columns
    a, b, e = q[:, 0], 0.7 * q[:, 1], q[:, 2]
    r = np.linspace(0.0, 1.0, 17)
    f = (a * (r - r0)[:, None] + b * ((r - r0) ** 2)[:, None] + floor * e)[:, None, :]
    val, at_r = dm.min_residual_norm(r, f, sub=2001)
    assert abs(float(val[0]) - floor) < 1e-4 and abs(float(at_r[0]) - r0) < 1e-3
    # the grid minimum alone is worse when r0 falls between grid points
    v2, r2 = dm.min_residual_norm(r, np.concatenate([f, 2 * f], axis=1), shared=True, sub=2001)
    assert abs(v2 - floor * np.sqrt(2.5)) < 1e-4 and abs(r2 - r0) < 1e-3


def test_min_residual_norm_per_trajectory_and_shared_differ():
    r = np.linspace(0.0, 1.0, 33)
    lines = [np.outer(r - c, [1.0, 0.0]) + [0.0, 0.01] for c in (0.3, 0.6)]
    f = np.stack(lines, axis=1)                                # (33, 2, 2)
    own, where = dm.min_residual_norm(r, f, sub=1001)
    np.testing.assert_allclose(own, 0.01, atol=1e-9)
    np.testing.assert_allclose(where, [0.3, 0.6], atol=1e-3)
    shared, r_s = dm.min_residual_norm(r, f, shared=True, sub=1001)
    assert abs(r_s - 0.45) < 1e-3 and abs(shared - np.sqrt(0.15**2 + 0.01**2)) < 1e-6


@pytest.mark.parametrize("call, exc, word", [
    (lambda: dm.min_residual_norm(np.linspace(0, 1, 3), np.ones((3, 1, 2))), ValueError, "r"),
    (lambda: dm.min_residual_norm(np.linspace(0, 1, 5), np.ones((4, 1, 2))), ValueError, "f"),
    (lambda: dm.min_residual_norm(np.linspace(0, 1, 5), np.ones((5, 1, 2)), sub=1), ValueError, "sub"),
])
def test_min_residual_norm_rejects_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_learn_time_scale_false_keeps_tau_at_one_and_learns_c():
    x_T = 80.0 * np.asarray(jax.random.normal(jax.random.PRNGKey(5), (32, D)))
    g = dm.edm_grid(3)
    ref = np.asarray(dm.reference_solve(MIX, x_T, g)[0])
    p, losses = dm.train_amed(MIX, ref, g, afs=True, learn_scale=True, paper_bounds=True,
                              learn_time_scale=False, iters=60, lr=0.3)
    np.testing.assert_allclose(np.asarray(p.time_scale), 1.0, atol=1e-15)
    assert np.any(np.abs(np.asarray(p.scale) - 1.0) > 1e-4)   # c did move
    assert float(losses[-1]) < float(losses[0])
    with pytest.raises(TypeError, match="learn_time_scale"):
        dm.train_amed(MIX, ref, g, learn_time_scale=1)
