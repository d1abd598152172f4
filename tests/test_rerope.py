"""Tests of sulib.rerope: the Leaky ReRoPE map, its two-pass scores, the post's settings."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.rerope import (
    code_distance, forward_min_k, inverse_settings, leaky_rerope_attention,
    leaky_rerope_positions, leaky_rerope_scores, max_relative_position, nearest_trained,
    relative_matrix, rerope_positions, rope_attention,
)
from sulib.rope import frequencies, nearest_trained_distance, relative_scores

jax.config.update("jax_enable_x64", True)


def test_map_on_a_small_matrix_by_hand():
    r = np.asarray(leaky_rerope_positions(relative_matrix(6), 2.0, 4.0))
    # row 5: distances 5 4 3 2 1 0 -> 2 + 3/4, 2 + 2/4, 2 + 1/4, 2, 1, 0
    np.testing.assert_allclose(r[5], [2.75, 2.5, 2.25, 2.0, 1.0, 0.0], rtol=0, atol=0)
    assert r[0, 5] == -5.0                       # above the diagonal: unchanged


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), w=st.integers(1, 59), k=st.floats(0.05, 50))
def test_maximum_is_the_last_row_first_column(n, w, k):
    if w > n - 1:
        w = n - 1
    r = np.asarray(leaky_rerope_positions(relative_matrix(n), w, k))
    assert np.isclose(r.max(), max_relative_position(n, w, k), rtol=1e-13)
    assert np.isclose(r.max(), w + (n - 1 - w) / k, rtol=1e-13)


@settings(max_examples=30, deadline=None)
@given(w=st.floats(0.5, 40), k=st.floats(0.05, 50), d=st.floats(0, 200))
def test_map_is_continuous_and_increasing(w, k, d):
    r = lambda x: float(leaky_rerope_positions(np.array(x), w, k))  # noqa: E731
    assert abs(r(w) - w) < 1e-12 and abs(r(w - 1e-9) - w) < 1e-8
    assert r(d + 1.0) > r(d)


def test_rerope_is_the_large_k_limit():
    rel = relative_matrix(40)
    a = np.asarray(rerope_positions(rel, 7.0))
    b = np.asarray(leaky_rerope_positions(rel, 7.0, 1e12))
    np.testing.assert_allclose(a, b, atol=1e-10)
    assert a.max() == 7.0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 24), w=st.integers(1, 23),
       k=st.sampled_from([1 / 16, 0.5, 1.0, 3.0, 31.0]))
def test_two_pass_scores_equal_remapped_relative_scores(seed, n, w, k):
    rng = np.random.default_rng(seed)
    q, kk = rng.normal(size=(2, n, 8))
    f = frequencies(8)
    direct = np.asarray(leaky_rerope_scores(q, kk, f, w, k))
    via_rel = np.asarray(relative_scores(q, kk, leaky_rerope_positions(relative_matrix(n), w, k),
                                         f))
    low = np.tril(np.ones((n, n), bool))
    np.testing.assert_allclose(direct[low], via_rel[low], atol=1e-11)


def test_leaky_attention_with_a_wide_window_is_rope_attention_and_differs_otherwise():
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(3, 2, 30, 8))
    f = frequencies(8)
    np.testing.assert_allclose(leaky_rerope_attention(q, k, v, f, 29.0, 1 / 16),
                               rope_attention(q, k, v, f), atol=1e-13)
    assert np.abs(np.asarray(leaky_rerope_attention(q, k, v, f, 5.0, 1 / 16)
                             - rope_attention(q, k, v, f))).max() > 1e-3


def test_the_posts_settings():
    s = inverse_settings(512, 8)
    assert (s["w"], s["k"], s["coverage"], s["needed"], s["step"]) == (128, 1 / 16, 6256,
                                                                        4095, 16)
    assert forward_min_k(4096, 512, 128) == 31
    assert max_relative_position(4096, 128, 31) <= 256 < max_relative_position(4096, 128, 30)


@settings(max_examples=80, deadline=None)
@given(length=st.integers(2, 3000), train_len=st.integers(2, 3000), data=st.data())
def test_forward_min_k_is_the_smallest_integer_meeting_the_rule(length, train_len, data):
    """Brute force in exact integers: r_max(k) ≤ train_len/2  ⇔  2(L−1−w) ≤ k(train_len − 2w)."""
    w_hi = min(length - 1, (train_len - 1) // 2)
    if w_hi < 1:
        return
    w = data.draw(st.integers(1, w_hi))
    ks = np.arange(1, 2 * length + 2, dtype=np.int64)
    ok = 2 * (length - 1 - w) <= ks * (train_len - 2 * w)
    brute = int(ks[np.argmax(ok)])
    assert ok.any() and forward_min_k(length, train_len, w) == brute
    assert max_relative_position(length, w, brute) <= train_len / 2 + 1e-9
    if brute > 1:
        assert max_relative_position(length, w, brute - 1) > train_len / 2


@pytest.mark.parametrize("length, train_len, w, k", [
    (4096, 512, 128, 31), (4097, 512, 128, 31), (4098, 512, 128, 32),   # 3967, 3968, 3969
    (1025, 512, 0.5, 5), (11, 10, 1, 3), (10, 100, 9, 1)])
def test_forward_min_k_at_exact_integer_bounds(length, train_len, w, k):
    # (L − 1 − w)/(train_len/2 − w) = 3967/128, 31, 3969/128, 4, 3, 0: the ceiling edges
    assert forward_min_k(length, train_len, w) == k


def test_nearest_trained():
    out = np.asarray(nearest_trained([0.2, 3.5, 7.0, 100.0, -3.0], [0.0, 1, 2, 4, 8]))
    np.testing.assert_array_equal(out, [0, 4, 8, 8, 0])


def test_code_distance_agrees_with_rope_module_on_plain_training_positions():
    rng = np.random.default_rng(3)
    wts = rng.uniform(0.1, 1, size=(2, 8))
    f = frequencies(16)
    test = np.arange(0, 90, 0.5)
    ours = np.asarray(code_distance(wts, f, np.arange(40.0), test))
    theirs = np.asarray(nearest_trained_distance(wts, f, 40, f, test))
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    seen = (test < 40) & (test % 1 == 0)
    assert ours[:, seen].max() < 1e-12 and ours[:, ~seen].min() > 1e-3


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(1, 40))
def test_code_distance_on_an_uneven_non_integer_trained_set_by_brute_force(seed, m):
    rng = np.random.default_rng(seed)
    trained = np.sort(rng.uniform(0, 300, m))           # non-integer, unevenly spaced
    test = rng.uniform(0, 600, 25)
    wts = rng.uniform(0, 1, size=(3, 8))
    f = frequencies(16)
    codes = lambda r: np.exp(1j * np.multiply.outer(r, f))  # noqa: E731
    gap = np.abs(codes(test)[:, None, :] - codes(trained)[None, :, :])   # (n, m, h)
    brute = (gap @ wts.T).min(axis=1).T / wts.sum(axis=1)[:, None]       # (n_w, n)
    ours = np.asarray(code_distance(wts, f, trained, test))
    np.testing.assert_allclose(ours, brute, rtol=0, atol=1e-12)
    at_trained = np.asarray(code_distance(wts, f, trained, trained))
    assert at_trained.max() < 1e-12


@pytest.mark.parametrize("call, match", [
    (lambda: leaky_rerope_positions([1.0], 0.0, 2.0), "w must be > 0"),
    (lambda: leaky_rerope_positions([1.0], 2.0, -1.0), "k_slope must be > 0"),
    (lambda: leaky_rerope_positions([np.nan], 2.0, 2.0), "rel contains non-finite"),
    (lambda: relative_matrix(0), "n must be >= 1"),
    (lambda: max_relative_position(10, 12.0, 2.0), "w must be <= length - 1"),
    (lambda: max_relative_position(10, 2.0, 0.0), "k_slope must be > 0"),
    (lambda: forward_min_k(4096, 512, 300.0), "w must be < train_len/2"),
    (lambda: inverse_settings(512, 0.0), "factor must be > 0"),
    (lambda: leaky_rerope_scores(np.ones((4, 8)), np.ones((3, 8)), frequencies(8), 2.0, 2.0),
     "q and k must have one shape"),
    (lambda: leaky_rerope_scores(np.ones((4, 8)), np.ones((4, 8)), frequencies(6), 2.0, 2.0),
     "freqs must have shape"),
    (lambda: rope_attention(np.ones((4, 8)), np.ones((4, 8)), np.ones((3, 2)), frequencies(8)),
     "v must have shape"),
    (lambda: nearest_trained([1.0], [2.0, 1.0]), "trained must be sorted"),
    (lambda: nearest_trained([1.0], [2.0]), "trained must have shape"),
    (lambda: code_distance(-np.ones((1, 4)), frequencies(8), [0.0], [1.0]), "weights must be"),
    (lambda: code_distance(np.ones((1, 4)), frequencies(8), [], [1.0]), "trained must be a"),
])
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="n must be an int"):
        relative_matrix(3.0)
    with pytest.raises(TypeError, match="rel must hold real numbers"):
        leaky_rerope_positions(["a"], 1.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(train_len=st.integers(4, 100_000), factor=st.integers(1, 64))
def test_inverse_settings_always_cover_the_inference_range(train_len, factor):
    s = inverse_settings(train_len, factor)
    assert s["coverage"] >= s["needed"]
    margin = train_len / 4 + factor * (train_len / 2 - 2) + 1
    assert np.isclose(s["coverage"] - s["needed"], margin, rtol=1e-12, atol=1e-9)
