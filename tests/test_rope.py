"""Tests of sulib.rope: rotations are orthogonal and scores depend on relative position only."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.rope import frequencies, relative_scores, rotate

jax.config.update("jax_enable_x64", True)


def test_frequencies_match_the_roformer_formula():
    f = frequencies(8, 100.0)
    np.testing.assert_allclose(f, [1.0, 100 ** -0.25, 100 ** -0.5, 100 ** -0.75], rtol=1e-15)


def test_one_pair_is_the_two_by_two_rotation():
    x = np.array([[1.0, 2.0]])
    out = np.asarray(rotate(x, [0.7], [1.0]))
    c, s = np.cos(0.7), np.sin(0.7)
    np.testing.assert_allclose(out, [[c - 2 * s, s + 2 * c]], rtol=1e-14)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), half=st.integers(1, 6), n=st.integers(1, 7),
       m=st.integers(1, 7))
def test_scores_of_rotated_vectors_depend_on_the_difference_only(seed, half, n, m):
    rng = np.random.default_rng(seed)
    d = 2 * half
    q, k = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    a, b = rng.uniform(-50, 50, n), rng.uniform(-50, 50, m)
    f = frequencies(d)
    direct = np.asarray(rotate(q, a, f)) @ np.asarray(rotate(k, b, f)).T
    via_rel = np.asarray(relative_scores(q, k, a[:, None] - b[None, :], f))
    np.testing.assert_allclose(via_rel, direct, atol=1e-10 * d)
    # rotations keep norms
    np.testing.assert_allclose(np.linalg.norm(rotate(q, a, f), axis=1),
                               np.linalg.norm(q, axis=1), rtol=1e-12)


def test_a_shifted_sign_convention_would_fail():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    a = np.arange(3.0)
    f = frequencies(4)
    direct = np.asarray(rotate(q, a, f)) @ np.asarray(rotate(k, a, f)).T
    wrong = np.asarray(relative_scores(q, k, a[None, :] - a[:, None], f))
    assert np.abs(wrong - direct).max() > 1e-2


@pytest.mark.parametrize("call,match", [
    (lambda: frequencies(5), "d must be even"),
    (lambda: frequencies(0), "d must be >= 2"),
    (lambda: frequencies(4, -1.0), "base must be > 0"),
    (lambda: rotate(np.ones((2, 3)), [0, 1], [1.0]), "x must have an even last axis"),
    (lambda: rotate(np.ones((2, 4)), [0, 1, 2], [1.0, 0.1]), "positions must have shape"),
    (lambda: rotate(np.ones((2, 4)), [0, np.nan], [1.0, 0.1]), "positions contains non-finite"),
    (lambda: rotate(np.ones((2, 4)), [0, 1], [1.0]), "freqs must have shape"),
    (lambda: relative_scores(np.ones((2, 4)), np.ones((3, 4)), np.ones((2, 2)), [1, .1]),
     "rel must have shape"),
    (lambda: relative_scores(np.ones((2, 4)), np.ones((3, 2)), np.ones((2, 3)), [1, .1]),
     "q and k must be"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
