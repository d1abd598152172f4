import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.optim import (SGDRun, adversary_game, average_regret, ball_argmin, general_regret_bound, linear_loss, logistic_loss,
                         project_ball, projected_sgd, regret_bound, squared_loss)

jax.config.update("jax_enable_x64", True)

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
dims = st.integers(1, 6)


def numpy_psgd(grad, theta0, xs, etas, radius):
    """Plain loop reference: theta_{t+1} = proj(theta_t - eta_t grad(x_t, theta_t))."""
    theta, thetas = np.array(theta0, float), []
    for t, eta in enumerate(etas):
        thetas.append(theta.copy())
        theta = theta - eta * grad(tuple(x[t] for x in xs), theta)
        if radius is not None:
            n = np.linalg.norm(theta)
            theta = theta * min(1.0, radius / n) if n > 0 else theta
    return np.array(thetas), theta


# ----------------------------------------------------------------------------- projection


@settings(max_examples=80, deadline=None)
@given(dims.flatmap(lambda d: st.tuples(arrays(np.float64, d, elements=finite), arrays(np.float64, d, elements=finite))),
       st.floats(0.01, 20))
def test_projection_is_non_expansive_and_lands_in_the_ball(pair, radius):
    phi, raw = pair
    theta = np.asarray(project_ball(raw, radius))           # an arbitrary point of the ball
    p = np.asarray(project_ball(phi, radius))
    assert np.linalg.norm(p) <= radius * (1 + 1e-12)
    scale = 1 + np.sum(phi ** 2) + np.sum(theta ** 2)
    # ||p - theta||^2 <= ||phi - theta||^2 - ||phi - p||^2  (the chapter's eq. sgd-nonexpansive)
    assert np.sum((p - theta) ** 2) <= np.sum((phi - theta) ** 2) - np.sum((phi - p) ** 2) + 1e-10 * scale
    # variational inequality (p - theta).(phi - p) >= 0
    assert (p - theta) @ (phi - p) >= -1e-10 * scale
    np.testing.assert_allclose(np.asarray(project_ball(p, radius)), p, atol=1e-12 * scale)  # idempotent


def test_projection_leaves_inner_points_and_scales_outer_ones():
    np.testing.assert_allclose(project_ball([0.3, -0.4], 1.0), [0.3, -0.4])
    np.testing.assert_allclose(project_ball([[3.0, 4.0], [0.0, 0.0]], 2.0), [[1.2, 1.6], [0.0, 0.0]])


# ----------------------------------------------------------------------------- the SGD kernel


@pytest.mark.parametrize("radius", [None, 0.7])
def test_projected_sgd_matches_a_numpy_loop(radius):
    rng = np.random.default_rng(0)
    T, d = 50, 3
    a, y = rng.normal(size=(T, d)), rng.normal(size=T)
    etas = 0.3 / np.sqrt(np.arange(1, T + 1))
    comparator = np.array([0.1, -0.2, 0.3])
    run = projected_sgd(squared_loss, np.zeros(d), (a, y), etas, radius=radius, comparator=comparator)
    thetas, final = numpy_psgd(lambda x, th: (x[0] @ th - x[1]) * x[0], np.zeros(d), (a, y), etas, radius)
    np.testing.assert_allclose(run.final, final, atol=1e-12)
    np.testing.assert_allclose(run.losses, 0.5 * (np.sum(a * thetas, 1) - y) ** 2, atol=1e-12)
    np.testing.assert_allclose(run.comparator_losses, 0.5 * (a @ comparator - y) ** 2, atol=1e-12)
    np.testing.assert_allclose(run.distances, np.linalg.norm(thetas - comparator, axis=1), atol=1e-12)
    np.testing.assert_allclose(run.norms, np.linalg.norm(thetas, axis=1), atol=1e-12)
    grads = (np.sum(a * thetas, 1) - y)[:, None] * a
    np.testing.assert_allclose(run.grad_norms, np.linalg.norm(grads, axis=1), atol=1e-12)
    cum = np.cumsum(np.asarray(run.losses - run.comparator_losses))
    np.testing.assert_allclose(average_regret(run), cum / np.arange(1, T + 1), atol=1e-12)
    np.testing.assert_allclose(average_regret(run, np.array([1, 7, T])), cum[[0, 6, T - 1]] / [1, 7, T], atol=1e-12)


def test_batched_runs_equal_separate_runs():
    rng = np.random.default_rng(1)
    B, T, d = 3, 40, 2
    x = rng.normal(size=(B, T, d))
    etas = np.full(T, 0.1)
    theta0 = rng.normal(size=(B, d)) * 0.2
    batched = projected_sgd(linear_loss, theta0, (x,), etas, radius=1.0, batched=True)
    for b in range(B):
        single = projected_sgd(linear_loss, theta0[b], (x[b],), etas, radius=1.0)
        np.testing.assert_allclose(batched.losses[b], single.losses, atol=1e-13)
        np.testing.assert_allclose(batched.final[b], single.final, atol=1e-13)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10 ** 6), st.sampled_from(["squared", "logistic"]), st.sampled_from(["constant", "decay"]),
       st.integers(1, 300), st.floats(0.2, 3.0))
def test_regret_bound_holds_on_random_convex_problems(seed, kind, schedule, T, R):
    """Projected SGD on a random bounded convex problem: average regret <= the post's bound, every prefix."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 5))
    a = rng.normal(size=(T, d))
    a /= np.maximum(1.0, np.linalg.norm(a, axis=1, keepdims=True))          # ||a|| <= 1
    comparator = project_ball(rng.normal(size=d), R)
    if kind == "squared":
        y = rng.uniform(-1, 1, size=T)                                     # |y| <= 1
        loss, G = squared_loss, R + 1.0                                    # ||(a.theta - y) a|| <= R + 1
    else:
        y = rng.choice([-1.0, 1.0], size=T)
        loss, G = logistic_loss, 1.0
    D = 2 * R
    etas = (np.full(T, D / (G * np.sqrt(T))) if schedule == "constant"
            else (D / (np.sqrt(2) * G)) / np.sqrt(np.arange(1, T + 1)))
    theta0 = project_ball(rng.normal(size=d) * 3, R)
    run = projected_sgd(loss, theta0, (a, y), etas, radius=R, comparator=comparator)
    assert float(run.grad_norms.max()) <= G + 1e-12
    assert np.all(np.asarray(average_regret(run)) <= regret_bound(etas, D, G) + 1e-12)


def test_regret_bound_formula_and_constant_optimum():
    etas = np.array([1.0, 0.5, 0.25])
    np.testing.assert_allclose(regret_bound(etas, 2.0, 3.0),
                               [4 / 2 + 9 * 1.0 / 2, 4 / (2 * 2 * 0.5) + 9 * 1.5 / 4, 4 / (2 * 3 * 0.25) + 9 * 1.75 / 6])
    T, D, G = 400, 2.0, 3.0
    np.testing.assert_allclose(regret_bound(np.full(T, D / (G * np.sqrt(T))), D, G)[-1], D * G / np.sqrt(T))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=40), st.floats(0.1, 5), st.floats(0.1, 5))
def test_general_bound_equals_the_post_bound_for_non_increasing_steps(etas, D, G):
    etas = np.sort(np.array(etas))[::-1]                                   # non-increasing
    np.testing.assert_allclose(general_regret_bound(etas, D, G), regret_bound(etas, D, G), rtol=1e-12)


def test_general_bound_for_a_warm_up_uses_the_first_step():
    etas = np.array([0.1, 0.2, 0.4])
    np.testing.assert_allclose(general_regret_bound(etas, 2.0, 1.0),
                               [4 / (2 * 0.1) + 0.1 / 2, 4 / (2 * 2 * 0.1) + 0.3 / 4, 4 / (2 * 3 * 0.1) + 0.7 / 6])


def sign_adversary(etas, R):
    """1-D adaptive adversary g_t = sign(theta_t) (sign(0) = +1) against projected SGD from 0."""
    theta, gs = 0.0, []
    for eta in etas:
        g = 1.0 if theta >= 0 else -1.0
        gs.append(g)
        theta = float(np.clip(theta - eta * g, -R, R))
    return np.array(gs)


def test_alternating_steps_break_the_post_bound_but_not_the_general_one():
    """The counterexample of issue 13: eta alternating 0.5 / 2 on [-1, 1], G = 1, T = 1024."""
    T, R = 1024, 1.0
    etas = np.where(np.arange(T) % 2 == 0, 0.5, 2.0)
    g = sign_adversary(etas, R)
    comparator = np.array([-R * np.sign(g.sum()) if g.sum() != 0 else R])
    run = projected_sgd(linear_loss, np.zeros(1), (-g[:, None],), etas, radius=R, comparator=comparator)
    regret = float(average_regret(run)[-1]) * T
    assert abs(regret - 769.0) < 1e-9
    assert regret > T * regret_bound(etas, 2 * R, 1.0)[-1]                    # 641: violated
    assert regret > (2 * R) ** 2 / (2 * etas.min()) + etas.sum() / 2        # 644, the "min eta" version
    assert regret <= T * general_regret_bound(etas, 2 * R, 1.0)[-1]          # 2177


def numpy_adversary(etas, theta1, switch, R):
    """Plain loop: sign adversary for t < switch, then push to +R and hold there (the chapter's games)."""
    theta, pushed, thetas, gs = theta1, False, [], []
    for t, eta in enumerate(etas):
        if t < switch:
            g = 1.0 if theta >= 0 else -1.0
        elif not pushed and theta < R:
            g = -1.0
        else:
            pushed = True
            g = 1.0 if theta >= R * (1 - 1e-12) else -1.0
        thetas.append(theta)
        gs.append(g)
        theta = float(np.clip(theta - eta * g, -R, R))
    thetas, gs = np.array(thetas), np.array(gs)
    steps = np.arange(1, len(etas) + 1)
    return thetas, gs, (np.cumsum(gs * thetas) + R * np.abs(np.cumsum(gs))) / steps


@settings(max_examples=40, deadline=None)
# no subnormal start: XLA on the CPU flushes them to zero, so the sign of θ₀ (hence g₀) differs from NumPy
@given(st.lists(st.floats(0.01, 3.0), min_size=1, max_size=60), st.floats(-1.0, 1.0, allow_subnormal=False),
       st.integers(0, 70), st.floats(0.2, 3.0))
def test_adversary_game_matches_a_numpy_loop_and_obeys_the_bound(etas, frac, switch, R):
    etas = np.sort(np.asarray(etas))[::-1]                                   # non-increasing
    run = adversary_game(etas, frac * R, switch=switch, radius=R)
    thetas, gs, regret = numpy_adversary(etas, frac * R, switch, R)
    np.testing.assert_allclose(run.thetas, thetas, atol=1e-12)
    np.testing.assert_array_equal(run.grads, gs)
    np.testing.assert_allclose(run.regret, regret, atol=1e-12 * (1 + R))
    # linear losses, |g| = 1, D = 2R: the post's bound holds at every prefix
    assert np.all(np.asarray(run.regret) <= regret_bound(etas, 2 * R, 1.0) + 1e-12)
    # the same game through projected_sgd (linear_loss is -a.theta, so a = -g)
    comp = np.array([-R if gs.sum() > 0 else R])
    sgd = projected_sgd(linear_loss, np.array([frac * R]), (-gs[:, None],), etas, radius=R, comparator=comp)
    np.testing.assert_allclose(sgd.norms, np.abs(thetas), atol=1e-12)
    np.testing.assert_allclose(float(average_regret(sgd)[-1]), regret[-1], atol=1e-12 * (1 + R))


def test_two_phase_adversary_attains_the_constant_step_bound():
    """From theta_1 = -R with eta = D/(G sqrt T), the push-then-hold game pays exactly DG/sqrt(T)."""
    for T in (16, 64, 256, 1024):                       # steps 2/sqrt(T) exact in binary
        regret = float(adversary_game(np.full(T, 2 / np.sqrt(T)), -1.0, switch=0).regret[-1])
        np.testing.assert_allclose(regret, 2 / np.sqrt(T), rtol=1e-12)
    runs = adversary_game(np.full(100, 0.2), 0.0, switch=np.array([0, 50, 100]))
    assert runs.regret.shape == (3, 100)
    np.testing.assert_allclose(runs.regret[2], adversary_game(np.full(100, 0.2), 0.0).regret)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10 ** 6), st.integers(1, 200), st.floats(0.2, 3.0))
def test_general_bound_holds_for_random_schedules(seed, T, R):
    """Random positive schedules (up and down) on random bounded convex problems, every prefix."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 4))
    a = rng.normal(size=(T, d))
    a /= np.maximum(1.0, np.linalg.norm(a, axis=1, keepdims=True))
    y = rng.uniform(-1, 1, size=T)
    etas = np.exp(rng.uniform(-4, 1, size=T))
    comparator = project_ball(rng.normal(size=d), R)
    run = projected_sgd(squared_loss, project_ball(rng.normal(size=d) * 3, R), (a, y), etas, radius=R,
                        comparator=comparator)
    assert np.all(np.asarray(average_regret(run)) <= general_regret_bound(etas, 2 * R, R + 1.0) + 1e-12)


def test_unprojected_linear_loss_drifts_away():
    T = 10_000
    run = projected_sgd(linear_loss, np.zeros(1), (np.ones((T, 1)),), 1 / np.sqrt(np.arange(1, T + 1)))
    np.testing.assert_allclose(run.final[0], np.sum(1 / np.sqrt(np.arange(1, T + 1))), rtol=1e-12)


# ----------------------------------------------------------------------------- ball_argmin


def _quadratic(theta, data):
    M, b = data
    return 0.5 * theta @ M @ theta - b @ theta


@pytest.mark.parametrize("center, radius", [([0.2, -0.1, 0.3], 1.0), ([3.0, 4.0, 0.0], 2.0)])
def test_ball_argmin_finds_the_constrained_minimum(center, radius):
    center = np.array(center)
    M = np.diag([1.0, 2.0, 5.0])
    theta, res = ball_argmin(_quadratic, np.zeros(3), radius, 5.0, (M, M @ center), steps=3000)
    assert float(res) < 1e-8
    # KKT by brute force: no point of a fine sampling of the ball does better
    rng = np.random.default_rng(0)
    probe = np.asarray(project_ball(rng.normal(size=(20_000, 3)) * radius, radius))
    values = 0.5 * np.einsum("ni,ij,nj->n", probe, M, probe) - probe @ (M @ center)
    assert float(_quadratic(theta, (M, M @ center))) <= values.min() + 1e-12
    if np.linalg.norm(center) < radius:
        np.testing.assert_allclose(theta, center, atol=1e-8)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, exc, name", [
    (lambda: project_ball([1.0, 2.0], 0.0), ValueError, "radius"),
    (lambda: project_ball([1.0, np.nan], 1.0), ValueError, "phi"),
    (lambda: project_ball("ab", 1.0), TypeError, "phi"),
    (lambda: projected_sgd(3, np.zeros(2), (np.ones((4, 2)),), np.ones(4)), TypeError, "loss"),
    (lambda: projected_sgd(linear_loss, np.zeros(2), (np.ones((4, 2)),), np.ones(5)), ValueError, "etas"),
    (lambda: projected_sgd(linear_loss, np.zeros(2), (np.ones((4, 2)),), -np.ones(4)), ValueError, "etas"),
    (lambda: projected_sgd(linear_loss, np.ones(2) * 5, (np.ones((4, 2)),), np.ones(4), radius=1.0), ValueError, "theta0"),
    (lambda: projected_sgd(linear_loss, np.zeros(2), (np.ones((4, 2)),), np.ones(4), comparator=np.zeros(3)),
     ValueError, "comparator"),
    (lambda: projected_sgd(linear_loss, np.zeros(2), np.ones((4, 2)), np.ones(4)), TypeError, "xs"),
    (lambda: projected_sgd(linear_loss, np.zeros(2), (np.ones((4, 2)), np.ones(3)), np.ones(4)), ValueError, "xs[1]"),
    (lambda: projected_sgd(linear_loss, np.zeros(2), (np.ones((4, 2)),), np.ones(4), batched=1), TypeError, "batched"),
    (lambda: regret_bound(np.ones(3), 0.0, 1.0), ValueError, "D"),
    (lambda: regret_bound(np.ones(3), 1.0, None), ValueError, "G"),
    (lambda: regret_bound(np.ones(3), 1.0, 1.0, ts=np.array([0, 2])), ValueError, "ts"),
    (lambda: general_regret_bound(np.array([1.0, 0.0]), 1.0, 1.0), ValueError, "etas"),
    (lambda: general_regret_bound(np.ones(3), -1.0, 1.0), ValueError, "D"),
    (lambda: general_regret_bound(np.ones(3), 1.0, 1.0, ts=np.array([1.5])), TypeError, "ts"),
    (lambda: average_regret("run"), TypeError, "run"),
    (lambda: ball_argmin(_quadratic, np.zeros(2), 1.0, -1.0), ValueError, "smoothness"),
    (lambda: adversary_game(np.ones(3), 2.0), ValueError, "theta1"),
    (lambda: adversary_game(np.ones(3), [0.0, 0.0]), ValueError, "theta1"),
    (lambda: adversary_game(np.ones(3), 0.0, radius=0.0), ValueError, "radius"),
    (lambda: adversary_game(np.ones(3), 0.0, switch=1.5), TypeError, "switch"),
    (lambda: adversary_game(np.ones(3), 0.0, switch=-1), ValueError, "switch"),
    (lambda: adversary_game(np.zeros(3), 0.0), ValueError, "etas"),
    (lambda: ball_argmin(_quadratic, np.zeros(2), 1.0, 1.0, steps=0), ValueError, "steps"),
])
def test_bad_input_raises_naming_the_argument(call, exc, name):
    with pytest.raises(exc, match=name.replace("[", r"\[").replace("]", r"\]")):
        call()
