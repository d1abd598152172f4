"""Tests of sulib.argmaxable: the exact LP test and the Frank–Wolfe min-norm test (post 9046).

The reference decisions in tests/data/unargmaxable_reference.npz come from the paper's own code,
andreasgrv/unargmaxable at commit d70d30fb0eec92c0989c8b02337c5af0ab1bca85 (``lp_chebyshev`` with
Gurobi and the "braid reflect" search), made by tests/data/make_unargmaxable_reference.py (its
docstring has the command); sha256 below.
"""

import hashlib
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull

from sulib.argmaxable import LP_TOL, argmaxable_lp, frank_wolfe_min_norm

jax.config.update("jax_enable_x64", True)

REFERENCE = Path(__file__).parent / "data" / "unargmaxable_reference.npz"
REFERENCE_SHA256 = "7d9c2a57f2db83ab143946653bc447b4fdea1cf96d85470f84f0cc86ea1f278a"
POST = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def _hull_vertices(W):
    mask = np.zeros(len(W), bool)
    mask[ConvexHull(W).vertices] = True
    return mask


def _upper_hull_vertices(W, b):
    """Vertices of the lifted points (w, b) on a facet whose outer normal points up in b."""
    hull = ConvexHull(np.column_stack([W, b]))
    mask = np.zeros(len(W), bool)
    for simplex, eq in zip(hull.simplices, hull.equations):
        if eq[-2] > 1e-12:  # normal's b-component > 0: an upper facet
            mask[simplex] = True
    return mask & np.isin(np.arange(len(W)), hull.vertices)


def test_post_example():
    r = argmaxable_lp(POST)
    assert r.argmaxable.tolist() == [True] * 4 + [False]
    assert abs(r.margin[4]) < 1e-12
    f = frank_wolfe_min_norm(POST, 50)
    assert f.argmaxable.tolist() == [True] * 4 + [False]
    assert f.norm[4, -1] < 1e-12  # w5 is the centre: min norm exactly 0


def test_bias_rescues_interior_token():
    b = np.array([0, 0, 0, 0, 1.0])
    r = argmaxable_lp(POST, b)
    assert r.argmaxable.all()
    logits = POST @ r.direction[4] + b
    assert np.argmax(logits) == 4
    # a small bias is not enough: the lifted point must clear the plane b = 0 over the square
    assert not argmaxable_lp(POST, np.array([0, 0, 0, 0, -1e-3])).argmaxable[4]


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_lp_matches_convex_hull(d, seed):
    W = np.random.default_rng(seed).normal(size=(40, d))
    assert np.array_equal(argmaxable_lp(W).argmaxable, _hull_vertices(W))


@pytest.mark.parametrize("seed", range(4))
def test_lp_with_bias_matches_upper_hull(seed):
    rng = np.random.default_rng(100 + seed)
    W, b = rng.normal(size=(40, 2)), rng.normal(size=40)
    assert np.array_equal(argmaxable_lp(W, b).argmaxable, _upper_hull_vertices(W, b))


def test_ties_duplicates_and_edges():
    W = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [2.0, 0.0]])
    r = argmaxable_lp(W)
    # row 3 lies on the edge [w0, w1]; rows 1 and 4 coincide, so neither is ever strict argmax
    assert r.argmaxable.tolist() == [True, False, True, False, False]
    # a bias breaks the tie of the duplicates in favour of the larger one
    r = argmaxable_lp(W, np.array([0, 0, 0, 0, 0.1]))
    assert r.argmaxable.tolist() == [True, False, True, False, True]


def test_equal_norm_points_are_all_argmaxable():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(300, 3))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    assert argmaxable_lp(W).argmaxable.all()
    assert argmaxable_lp(W, rng.normal(size=300) * 5).argmaxable.all()


def test_witnesses_make_the_token_the_argmax():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(60, 4)), rng.normal(size=60)
    r = argmaxable_lp(W, b)
    for i in np.flatnonzero(r.argmaxable):
        assert np.argmax(W @ r.direction[i] + b) == i


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 10.0),
       shift=st.floats(-5.0, 5.0))
def test_decisions_invariant_under_affine_maps(seed, scale, shift):
    """Scaling W, translating all rows and adding a constant to b change no decision."""
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(25, 3)), rng.normal(size=25)
    base = argmaxable_lp(W, b)
    moved = argmaxable_lp(scale * W + shift, b + shift)
    clear = np.abs(base.margin) > 100 * LP_TOL
    assert np.array_equal(base.argmaxable[clear], moved.argmaxable[clear])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_frank_wolfe_certificate_is_never_wrong(seed):
    """A positive certificate is an input that makes the token the argmax: no false positive."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(30, 2))
    f = frank_wolfe_min_norm(W, 300)
    lp = argmaxable_lp(W)
    assert not np.any(f.argmaxable & ~lp.argmaxable)
    assert np.all(f.first_certified[~f.argmaxable] == 300)
    # the gap bounds the suboptimality, so it is >= 0 up to rounding
    assert f.gap.min() > -1e-12


def test_frank_wolfe_agrees_with_lp_when_margins_are_clear():
    W = np.random.default_rng(11).normal(size=(80, 3))
    lp = argmaxable_lp(W)
    f = frank_wolfe_min_norm(W, 2000)
    clear = np.abs(lp.margin) > 1e-3
    assert np.array_equal(f.argmaxable[clear], lp.argmaxable[clear])
    # tokens inside the hull: the min-norm iterate goes to 0
    inner = ~lp.argmaxable
    assert np.all(f.norm[inner, -1] < 0.1)


def test_reference_file_hash():
    assert hashlib.sha256(REFERENCE.read_bytes()).hexdigest() == REFERENCE_SHA256


def test_lp_matches_paper_lp_chebyshev_and_braid_recall():
    ref = np.load(REFERENCE)
    names = sorted({k.rsplit("_W", 1)[0] for k in ref.files if k.endswith("_W")})
    assert len(names) == 5
    for name in names:
        W = ref[f"{name}_W"]
        b = ref[f"{name}_b"] if bool(ref[f"{name}_has_bias"]) else None
        ours = ~argmaxable_lp(W, b).argmaxable
        assert np.array_equal(ours, ref[f"{name}_lp_unargmaxable"]), name
        # braid reflect is approximate: it may flag argmaxable tokens, never miss one
        assert np.all(ref[f"{name}_braid_unargmaxable"][ours]), name


@pytest.mark.parametrize("bad, exc, word", [
    (np.ones(3), ValueError, "W"),
    (np.ones((1, 2)), ValueError, "W"),
    (np.array([[1.0, np.nan], [0, 1]]), ValueError, "W"),
    ([["a", "b"], ["c", "d"]], TypeError, "W"),
])
def test_bad_W(bad, exc, word):
    with pytest.raises(exc, match=word):
        argmaxable_lp(bad)
    with pytest.raises(exc, match=word):
        frank_wolfe_min_norm(bad)


def test_bad_b_tol_iters():
    with pytest.raises(ValueError, match="b"):
        argmaxable_lp(POST, np.ones(4))
    with pytest.raises(ValueError, match="b"):
        argmaxable_lp(POST, np.ones((5, 1)))
    with pytest.raises(ValueError, match="b"):
        argmaxable_lp(POST, np.array([0, 0, 0, 0, np.inf]))
    with pytest.raises(ValueError, match="tol"):
        argmaxable_lp(POST, tol=0.0)
    with pytest.raises(ValueError, match="tol"):
        argmaxable_lp(POST, tol=-1e-8)
    with pytest.raises(ValueError, match="tol"):
        argmaxable_lp(POST, tol=float("nan"))
    with pytest.raises(TypeError, match="tokens"):
        argmaxable_lp(POST, tokens=[[0, 1]])
    with pytest.raises(ValueError, match="tokens"):
        argmaxable_lp(POST, tokens=[-1])
    with pytest.raises(ValueError, match="tokens"):
        argmaxable_lp(POST, tokens=[5])
    with pytest.raises(TypeError, match="tokens"):
        argmaxable_lp(POST, tokens=[0.5])
    sub = argmaxable_lp(POST, tokens=[4, 0])
    assert sub.argmaxable.tolist() == [False, True]
    with pytest.raises(TypeError, match="num_iters"):
        frank_wolfe_min_norm(POST, 2.5)
    with pytest.raises(ValueError, match="num_iters"):
        frank_wolfe_min_norm(POST, 0)
