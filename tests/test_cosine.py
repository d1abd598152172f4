import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.flatten_util import ravel_pytree

from sulib.cosine import (block_cosines, cosine, pearson_split, tree_block_cosines,
                          two_block_family, update_gradient_trace)
from sulib.cosine import _toy_data
from sulib.nets import mlp_apply, mlp_init

KEY = jax.random.key(0)


def _blocks(seed, sizes):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    return rng.normal(size=n), rng.normal(size=n)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.lists(st.integers(1, 5), min_size=1, max_size=6))
def test_decomposition_and_bounds_hold_for_all_inputs(seed, sizes):
    x, y = _blocks(seed, sizes)
    scale = np.random.default_rng(seed + 1).uniform(0.01, 10.0, len(sizes))
    x = x * np.repeat(scale, sizes)          # block norms far from proportional
    d = block_cosines(x, y, sizes)
    direct = x @ y / np.linalg.norm(x) / np.linalg.norm(y)
    assert abs(float(d.total) - direct) < 1e-12
    assert abs(float(np.sum(d.weight * d.block)) - direct) < 1e-12
    assert abs(float(np.sum(d.weight)) - float(d.norm_cosine)) < 1e-12
    assert 0.0 <= float(d.norm_cosine) <= 1.0 + 1e-12
    top, bottom = float(d.block.max()), float(d.block.min())
    assert direct <= float(d.norm_cosine) * top + 1e-12        # every sign
    assert direct >= float(d.norm_cosine) * bottom - 1e-12
    if top >= 0:
        assert direct <= top + 1e-12                            # the post's bound


def test_block_cosines_match_explicit_slices():
    sizes = (3, 1, 4)
    x, y = _blocks(3, sizes)
    d = block_cosines(x, y, sizes)
    edges = np.cumsum((0,) + sizes)
    for b in range(3):
        xb, yb = x[edges[b]:edges[b + 1]], y[edges[b]:edges[b + 1]]
        assert abs(float(d.block[b]) - xb @ yb / np.linalg.norm(xb) / np.linalg.norm(yb)) < 1e-12
        w = np.linalg.norm(xb) * np.linalg.norm(yb) / np.linalg.norm(x) / np.linalg.norm(y)
        assert abs(float(d.weight[b]) - w) < 1e-12


def test_bound_fails_when_every_block_cosine_is_negative():
    eps = 0.1
    d = block_cosines([1.0, eps], [-eps, -1.0], (1, 1))
    np.testing.assert_allclose(d.block, [-1.0, -1.0], atol=1e-15)
    assert abs(float(d.total) + 2 * eps / (1 + eps**2)) < 1e-15
    assert float(d.total) > float(d.block.max()) + 0.5


@pytest.mark.parametrize("lam", [-0.9, -0.3, 0.2, 0.8, 1.0])
@pytest.mark.parametrize("delta", [1e-3, 0.1, 0.5, 1.0, 3.0])
def test_two_block_family(lam, delta):
    x, y, sizes = two_block_family(lam, delta)
    d = block_cosines(x, y, sizes)
    np.testing.assert_allclose(d.block, [lam, lam], atol=1e-12)
    assert abs(float(d.total) - 2 * delta * lam / (1 + delta**2)) < 1e-12


def test_tree_block_cosines_match_flat_blocks():
    u = mlp_init(KEY, (2, 3, 1))
    g = mlp_init(jax.random.key(1), (2, 3, 1), final_scale=2.0)
    u, g = [(w, b + 0.1) for w, b in u], [(w, b + 0.5) for w, b in g]
    d = tree_block_cosines(u, g)
    fu, fg = ravel_pytree(u)[0], ravel_pytree(g)[0]
    sizes = tuple(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(u))
    ref = block_cosines(np.asarray(fu), np.asarray(fg), sizes)
    np.testing.assert_allclose(d.block, ref.block, atol=1e-12)
    np.testing.assert_allclose(d.weight, ref.weight, atol=1e-12)
    assert abs(float(d.total) - float(cosine(fu, fg))) < 1e-12


def test_pearson_split_against_corrcoef():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(3), [5, 7, 6])
    x = rng.normal(size=18) + 2.0 * groups
    y = 0.8 * x - 3.0 * groups + rng.normal(size=18) * 0.3
    s = pearson_split(x, y, groups)
    assert abs(s.pooled_r - np.corrcoef(x, y)[0, 1]) < 1e-12
    for lab in range(3):
        m = groups == lab
        assert abs(s.within_r[lab] - np.corrcoef(x[m], y[m])[0, 1]) < 1e-12
    total = np.sum(s.within_weight * s.within_r) + s.between_weight * s.between_r
    assert abs(total - s.pooled_r) < 1e-12
    assert np.all(s.within_r > 0) and s.pooled_r < 0      # the data are a Simpson case


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.permutations(range(21)))
def test_pearson_split_with_shuffled_labels(seed, perm):
    """Labels in any order (not sorted, not contiguous): each group's r is its own."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.array([4, 1, 7]), [6, 8, 7])[list(perm)]   # shuffled, gaps in labels
    x = rng.normal(size=21) + groups
    y = 0.5 * x - groups + rng.normal(size=21)
    s = pearson_split(x, y, groups)
    for k, lab in enumerate((1, 4, 7)):                  # within_r follows sorted labels
        m = groups == lab
        assert abs(s.within_r[k] - np.corrcoef(x[m], y[m])[0, 1]) < 1e-12
        xc, yc = x[m] - x[m].mean(), y[m] - y[m].mean()
        w = np.linalg.norm(xc) * np.linalg.norm(yc)
        w /= np.linalg.norm(x - x.mean()) * np.linalg.norm(y - y.mean())
        assert abs(s.within_weight[k] - w) < 1e-12
    means = lambda v: np.array([v[groups == lab].mean() for lab in groups])
    bx, by = means(x) - x.mean(), means(y) - y.mean()
    assert abs(s.between_r - bx @ by / np.linalg.norm(bx) / np.linalg.norm(by)) < 1e-12
    total = np.sum(s.within_weight * s.within_r) + s.between_weight * s.between_r
    assert abs(total - np.corrcoef(x, y)[0, 1]) < 1e-12


def test_tree_block_cosines_against_numpy_leaves():
    """Each leaf's cosine, weight and the global cosine, computed leaf by leaf in NumPy."""
    rng = np.random.default_rng(5)
    shapes = [(3, 4), (4,), (4, 2), (2,), (2, 1), (1,)]
    u = [rng.normal(size=sh) * rng.uniform(0.1, 5.0) for sh in shapes]
    g = [rng.normal(size=sh) * rng.uniform(0.1, 5.0) for sh in shapes]
    d = tree_block_cosines(u, g)
    a = np.array([np.sqrt(np.sum(p * p)) for p in u])
    c = np.array([np.sqrt(np.sum(q * q)) for q in g])
    inner = np.array([np.sum(p * q) for p, q in zip(u, g)])
    np.testing.assert_allclose(d.block, inner / (a * c), rtol=0, atol=1e-13)
    np.testing.assert_allclose(d.weight, a * c / (np.hypot.reduce(a) * np.hypot.reduce(c)),
                               rtol=0, atol=1e-13)
    fu = np.concatenate([p.ravel() for p in u])
    fg = np.concatenate([q.ravel() for q in g])
    assert abs(float(d.total) - fu @ fg / np.linalg.norm(fu) / np.linalg.norm(fg)) < 1e-13
    assert abs(float(d.norm_cosine) - a @ c / np.linalg.norm(a) / np.linalg.norm(c)) < 1e-13


def _first_gradient(key, sizes=(2, 32, 32, 1), n_data=256):
    """The gradient at the first step of update_gradient_trace, rebuilt from its parts."""
    k_data, k_init = jax.random.split(key)
    params = mlp_init(k_init, sizes)
    xs, ys = _toy_data(k_data, n_data)
    return jax.grad(lambda p: jnp.mean((mlp_apply(p, xs) - ys) ** 2))(params)


def test_trace_first_step_is_sign_of_gradient_and_sgd_is_parallel():
    lion = update_gradient_trace(KEY, "lion", steps=3)
    adam = update_gradient_trace(KEY, "adam", steps=3)
    sgd = update_gradient_trace(KEY, "sgd", steps=3)
    g = jax.tree_util.tree_leaves(_first_gradient(KEY))
    # step 1: Lion moves along sign(g), Adam along g / (|g| + eps), eps = 1e-8
    for b, leaf in enumerate(g):
        v = np.ravel(leaf)
        for trace, u in ((lion, np.sign(v)), (adam, v / (np.abs(v) + 1e-8))):
            expected = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
            assert abs(trace.block[0, b] - expected) < 1e-12
    assert abs(abs(float(lion.block[0, -1])) - 1.0) < 1e-12   # b3 has one entry: cos = ±1
    np.testing.assert_allclose(sgd.block, 1.0, atol=1e-12)
    np.testing.assert_allclose(sgd.total, 1.0, atol=1e-12)
    assert lion.block.shape == (3, 6) and lion.names == ("W1", "b1", "W2", "b2", "W3", "b3")
    assert lion.layer_block.shape == (3, 3)
    # layer blocks: the same global cosine, and a layer is two leaves merged (C1 on the pair)
    for tr in (lion, adam):
        np.testing.assert_allclose(np.sum(tr.layer_weight * tr.layer_block, axis=1), tr.total,
                                   atol=1e-12)
        leafwise = tr.weight * tr.block               # <u_b, g_b> / (|u| |g|) per leaf
        np.testing.assert_allclose(tr.layer_weight * tr.layer_block,
                                   leafwise[:, 0::2] + leafwise[:, 1::2], atol=1e-12)
    assert lion.loss[-1] < lion.loss[0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        block_cosines(np.ones(3), np.ones(4), (3,))
    with pytest.raises(ValueError, match="sizes must sum"):
        block_cosines(np.ones(3), np.ones(3), (1, 1))
    with pytest.raises(TypeError, match="sizes"):
        block_cosines(np.ones(3), np.ones(3), (1.5, 1.5))
    with pytest.raises(ValueError, match="block 1 of y is zero"):
        block_cosines(np.ones(3), np.array([1.0, 0.0, 0.0]), (1, 2))
    with pytest.raises(ValueError, match="non-finite"):
        block_cosines(np.array([1.0, np.nan]), np.ones(2), (2,))
    with pytest.raises(ValueError, match="x is the zero vector"):
        cosine(np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="lam"):
        two_block_family(1.5, 0.1)
    with pytest.raises(ValueError, match="delta"):
        two_block_family(0.5, 0.0)
    with pytest.raises(ValueError, match="group 1"):
        pearson_split(np.arange(4.0), np.arange(4.0), np.array([0, 0, 0, 1]))
    with pytest.raises(TypeError, match="groups"):
        pearson_split(np.arange(4.0), np.arange(4.0), np.array([0.0, 0, 1, 1]))
    with pytest.raises(ValueError, match="optimizer"):
        update_gradient_trace(KEY, "rmsprop")
    with pytest.raises(ValueError, match="steps"):
        update_gradient_trace(KEY, "adam", steps=0)
    with pytest.raises(ValueError, match="lr"):
        update_gradient_trace(KEY, "adam", steps=1, lr=0.0)
    with pytest.raises(ValueError, match="n_data"):
        update_gradient_trace(KEY, "adam", steps=1, n_data=1)
    with pytest.raises(ValueError, match="leaf 1 of g is zero"):
        tree_block_cosines([np.ones(2), np.ones(3)], [np.ones(2), np.zeros(3)])
    with pytest.raises(ValueError, match="leaf 0 of u is zero"):
        tree_block_cosines([np.zeros(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="tree structure"):
        tree_block_cosines([np.ones(2)], (np.ones(2), np.ones(2)))
