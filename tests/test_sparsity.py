import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.sparsity import (add_zeros, bill_gates, clone, desideratum_margins, gini, hoyer,
                            random_vectors, renyi_entropy, rescale, rising_tide, robin_hood,
                            s0, s1p, s_star, s_star_from_renyi, sign_cosine)

jax.config.update("jax_enable_x64", True)

magnitude = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)
signed = st.one_of(magnitude, magnitude.map(lambda v: -v), st.just(0.0))
rows = st.integers(2, 12).flatmap(lambda n: arrays(np.float64, (3, n), elements=signed)).filter(
    lambda a: np.all(np.any(a != 0, axis=-1)))
dense = st.integers(2, 12).flatmap(lambda n: arrays(np.float64, (3, n), elements=magnitude))
scales = st.floats(1e-3, 1e3)
pairs = st.tuples(st.floats(0.2, 3.0), st.floats(0.1, 3.0)).map(lambda t: (t[0], t[0] + t[1]))

MEASURES = {
    "s0": s0,
    "s1p": lambda x: s1p(x, 2.0),
    "s_star": lambda x: s_star(x, 1.0, 2.0),
    "s_star_half": lambda x: s_star(x, 0.5, 3.0),
    "hoyer": hoyer,
    "gini": gini,
}


@settings(max_examples=40, deadline=None)
@given(rows, scales)
def test_every_measure_is_scale_invariant_and_sign_blind(x, alpha):
    for f in MEASURES.values():
        np.testing.assert_allclose(f(alpha * x), f(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(f(-x), f(x), rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(rows, st.integers(2, 4))
def test_cloning_leaves_s0_s_star_and_gini_unchanged(x, k):
    for name in ("s0", "s_star", "s_star_half", "gini"):
        f = MEASURES[name]
        np.testing.assert_allclose(f(clone(x, k)), f(x), rtol=1e-10, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(rows, pairs)
def test_ranges(x, qp):
    q, p = qp
    n = x.shape[-1]
    s = np.asarray(s_star(x, q, p))
    assert np.all(s <= 1 + 1e-12) and np.all(s >= n ** (1 / p - 1 / q) * (1 - 1e-12))
    assert np.all(np.asarray(s0(x)) >= 1 / n - 1e-12) and np.all(np.asarray(s0(x)) <= 1 + 1e-12)
    h = np.asarray(hoyer(x))
    assert np.all(h >= -1e-12) and np.all(h <= 1 + 1e-12)
    g = np.asarray(gini(x))
    assert np.all(g >= -1e-12) and np.all(g <= 1 - 1 / n + 1e-12)


@settings(max_examples=40, deadline=None)
@given(dense.map(lambda a: a * np.where(np.arange(a.size).reshape(a.shape) % 2, -1, 1)))
def test_s_star_12_is_the_cosine_with_the_sign_vector(x):
    np.testing.assert_allclose(s_star(x, 1.0, 2.0), sign_cosine(x), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(rows)
def test_gini_sorted_form_equals_mean_absolute_difference(x):
    a = np.abs(x)
    n = a.shape[-1]
    mad = np.abs(a[..., :, None] - a[..., None, :]).sum((-1, -2)) / (2 * n * a.sum(-1))
    np.testing.assert_allclose(gini(x), mad, rtol=1e-10, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(rows)
def test_hoyer_and_s1p_follow_from_l1_l2(x):
    a = np.abs(x)
    n = a.shape[-1]
    r = a.sum(-1) / np.sqrt((a * a).sum(-1))
    np.testing.assert_allclose(hoyer(x), (np.sqrt(n) - r) / (np.sqrt(n) - 1), rtol=1e-10,
                               atol=1e-13)
    np.testing.assert_allclose(s1p(x, 2.0), r / n, rtol=1e-12)
    np.testing.assert_allclose(s_star(x, 1.0, 2.0), r / np.sqrt(n), rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(rows)
def test_s1p_tends_to_s0(x):
    np.testing.assert_allclose(s1p(x, 4000.0), s0(x), rtol=2e-3)


@settings(max_examples=40, deadline=None)
@given(rows, st.floats(1.1, 6.0))
def test_s_star_is_a_function_of_the_renyi_entropy(x, p):
    prob = np.abs(x) / np.abs(x).sum(-1, keepdims=True)
    h = renyi_entropy(prob, p)
    np.testing.assert_allclose(s_star_from_renyi(h, x.shape[-1], p), s_star(prob, 1.0, p),
                               rtol=1e-10)
    assert np.all(np.asarray(h) >= -1e-12) and np.all(np.asarray(h) <= np.log(x.shape[-1]) + 1e-12)


def test_renyi_order_one_is_shannon():
    p = np.array([0.5, 0.25, 0.25, 0.0])
    shannon = -(0.5 * np.log(0.5) + 0.5 * np.log(0.25))
    np.testing.assert_allclose(renyi_entropy(p, 1.0), shannon, rtol=1e-14)
    np.testing.assert_allclose(renyi_entropy(p, 1.0 + 1e-7), shannon, rtol=1e-6)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([3, 7]))
def test_s_star_12_and_gini_pass_all_six_randomized_criteria(seed, n):
    x = random_vectors(jax.random.PRNGKey(seed), 64, n)
    key = jax.random.PRNGKey(seed + 1)
    for f, higher in ((lambda v: s_star(v, 1.0, 2.0), False), (gini, True)):
        m = desideratum_margins(f, key, x, higher_is_sparser=higher)
        assert np.nanmin(m.D1) > 0 and np.min(m.D3) > 0 and np.min(m.P2) > 0
        assert np.nanmin(m.P1) > -1e-12
        assert np.max(m.D2) < 1e-12 and np.max(m.D4) < 1e-12


def test_testers_detect_known_failures():
    x = random_vectors(jax.random.PRNGKey(0), 256, 6)
    key = jax.random.PRNGKey(1)
    assert np.max(desideratum_margins(hoyer, key, x, higher_is_sparser=True).D4) > 1e-3
    assert np.max(desideratum_margins(lambda v: s1p(v, 2.0), key, x,
                                      higher_is_sparser=False).D4) > 1e-3
    # S*_{q,p} with q > 1 breaks Robin Hood; flipping the direction breaks D3
    m = desideratum_margins(lambda v: s_star(v, 2.0, 3.0), key, x, higher_is_sparser=False)
    assert np.nanmin(m.D1) < -1e-3
    flipped = desideratum_margins(gini, key, x, higher_is_sparser=False)
    assert np.max(flipped.D3) < 0


def test_transformations():
    x = np.array([[3.0, 1.0, 0.0], [2.0, 2.0, 5.0]])
    y, moved = robin_hood(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(np.asarray(y).sum(-1), x.sum(-1))
    assert np.asarray(moved).dtype == bool
    np.testing.assert_allclose(rising_tide(x, np.array([1.0, 2.0])), x + [[1.0], [2.0]])
    np.testing.assert_allclose(rescale(x, np.array([2.0, 0.5])), x * [[2.0], [0.5]])
    assert clone(x, 3).shape == (2, 9) and add_zeros(x, 2).shape == (2, 5)
    g = bill_gates(x, np.array([0, 2]), np.array([1.0, 10.0]))
    assert g.shape == (2, 2, 3) and float(g[1, 1, 2]) == 15.0 and float(g[0, 0, 0]) == 4.0


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="x has a row of zeros"):
        s0(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="p must exceed q"):
        s_star([1.0, 2.0], 2.0, 1.0)
    with pytest.raises(ValueError, match="q must be > 0"):
        s_star([1.0, 2.0], 0.0, 1.0)
    with pytest.raises(ValueError, match="x must have at least 2"):
        hoyer([1.0])
    with pytest.raises(TypeError, match="x must hold real numbers"):
        gini(["a", "b"])
    with pytest.raises(ValueError, match="x contains non-finite"):
        s1p([1.0, np.nan])
    with pytest.raises(ValueError, match="prob rows must sum to 1"):
        renyi_entropy([0.5, 0.6], 2.0)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        rising_tide([[1.0, 2.0]], [-1.0])
    with pytest.raises(TypeError, match="index must be"):
        bill_gates([[1.0, 2.0]], np.array([0.5]), [1.0, 2.0])
    with pytest.raises(ValueError, match="zero_prob"):
        random_vectors(jax.random.PRNGKey(0), 4, 3, 1.0)
    with pytest.raises(TypeError, match="measure must be callable"):
        desideratum_margins(3, jax.random.PRNGKey(0), np.ones((2, 3)), higher_is_sparser=True)
    with pytest.raises(ValueError, match="gates_ladder"):
        desideratum_margins(gini, jax.random.PRNGKey(0), np.ones((2, 3)),
                            higher_is_sparser=True, gates_ladder=(2.0, 1.0))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 10.0), st.floats(0.0, 10.0), st.floats(0.05, 0.95),
       st.floats(1.05, 8.0), st.integers(0, 3))
def test_robin_hood_raises_s_star_1p_for_every_p(cj, gap, frac, p, extra):
    """Strict Schur-convexity of l_p^p (p > 1): a transfer keeps l1, lowers l_p."""
    ci = cj + gap + 0.1
    alpha = frac * (ci - cj) / 2
    rest = [1.0] * extra
    before = np.array([ci, cj] + rest)
    after = np.array([ci - alpha, cj + alpha] + rest)
    assert float(s_star(after, 1.0, p)) > float(s_star(before, 1.0, p))
    assert float(s1p(after, p)) > float(s1p(before, p))


@settings(max_examples=40, deadline=None)
@given(rows)
def test_appending_a_zero_never_moves_l2_over_l1_but_moves_hoyer(x):
    """P2: l2/l1 is unchanged by a zero on every vector; Hoyer rises unless one-hot."""
    z = add_zeros(x, 1)
    l2l1 = lambda v: 1.0 / (np.asarray(s1p(v, 2.0)) * v.shape[-1])  # noqa: E731
    np.testing.assert_allclose(l2l1(z), l2l1(x), rtol=1e-12)
    one_hot = np.sum(x != 0, axis=-1) == 1
    rise = np.asarray(hoyer(z)) - np.asarray(hoyer(x))
    assert np.all(rise[~one_hot] > 0)
    np.testing.assert_allclose(rise[one_hot], 0.0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(dense, st.floats(1.05, 7.0))
def test_power_mean_route_of_the_rising_tide_step(y, p):
    """(Σy/n)(Σy^(p-1)/n) <= Σy^p/n, the inequality behind D3 for S_1,p."""
    lhs = y.mean(-1) * (y ** (p - 1)).mean(-1)
    rhs = (y**p).mean(-1)
    assert np.all(lhs <= rhs * (1 + 1e-12))
