"""Causal attention as a recurrence (sulib.attention, post 10017): every form against the masked matrix,
the overflow of the unshifted recurrence, linear attention, the cached and recomputed attention stacks,
compiled memory, and bad input."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.attention import (ATTENTION_FORMS, MEMORY_KINDS, attention_stack, causal_attention,
                             causal_attention_blocked, causal_attention_matrix,
                             causal_attention_online, causal_attention_recurrent,
                             compiled_temp_bytes, linear_attention_recurrent)

jax.config.update("jax_enable_x64", True)

finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


# A few fixed shapes (batch, L, d, d_v), so that hypothesis varies the values without compiling
# every kernel for every shape it draws; L = 1, L a prime, and L not a multiple of any block.
SHAPES = [(1, 1, 1, 1), (2, 5, 3, 2), (1, 13, 4, 3), (3, 8, 2, 1)]
BLOCKS = [(1, 1), (3, 2), (4, 16), (5, 5)]


@st.composite
def qkv(draw, shapes=SHAPES):
    """Random (batch, L, d) queries and keys and (batch, L, d_v) values; |scores| <= 9 d."""
    batch, L, d, dv = draw(st.sampled_from(shapes))
    q = draw(arrays(np.float64, (batch, L, d), elements=finite))
    k = draw(arrays(np.float64, (batch, L, d), elements=finite))
    v = draw(arrays(np.float64, (batch, L, dv), elements=st.floats(-5, 5)))
    return q, k, v


def numpy_attention(q, k, v):
    """o_i = Σ_{j<=i} softmax_j(q_i·k_j) v_j per sequence, written out (row max subtracted)."""
    out = np.zeros(q.shape[:-1] + v.shape[-1:])
    for b in np.ndindex(q.shape[:-2]):
        for i in range(q.shape[-2]):
            s = k[b][: i + 1] @ q[b][i]
            w = np.exp(s - s.max())
            out[b][i] = w @ v[b][: i + 1] / w.sum()
    return out


@settings(max_examples=50, deadline=None)
@given(qkv(), st.sampled_from(BLOCKS))
def test_every_form_equals_the_masked_softmax(x, blocks):
    q, k, v = x
    block_q, block_k = blocks
    ref = numpy_attention(q, k, v)
    outs = {form: causal_attention(q, k, v, form=form, block_q=block_q, block_k=block_k)
            for form in ATTENTION_FORMS}
    for form, o in outs.items():
        assert o.shape == ref.shape
        np.testing.assert_allclose(np.asarray(o), ref, atol=1e-10, rtol=1e-10, err_msg=form)


@settings(max_examples=30, deadline=None)
@given(qkv(SHAPES[:3]), st.floats(-50, 50))
def test_a_common_shift_of_the_scores_changes_nothing_in_the_shifted_forms(x, shift):
    # one more coordinate adds `shift` to every score: softmax is invariant, so must the forms be
    q, k, v = x
    q2 = np.concatenate([q, np.ones(q.shape[:-1] + (1,))], axis=-1)
    k2 = np.concatenate([k, np.full(k.shape[:-1] + (1,), shift)], axis=-1)
    ref = numpy_attention(q, k, v)
    for f in (causal_attention_online, causal_attention_matrix,
              lambda a, b, c: causal_attention_blocked(a, b, c, block_q=3, block_k=2)):
        np.testing.assert_allclose(np.asarray(f(q2, k2, v)), ref, atol=1e-10, rtol=1e-10)


def test_the_unshifted_recurrence_overflows_and_underflows_where_the_online_form_does_not():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 16, 4))
    q_big = q.copy()
    q_big[5] = 800.0 * k[2] / (k[2] @ k[2])          # q_5 · k_2 = 800 > log(max float64) ≈ 709.8
    plain = np.asarray(causal_attention_recurrent(q_big, k, v))
    ref = numpy_attention(q_big[None], k[None], v[None])[0]
    assert not np.all(np.isfinite(plain[5])) and np.all(np.isfinite(plain[:5]))
    np.testing.assert_allclose(plain[:5], ref[:5], atol=1e-12)
    np.testing.assert_allclose(np.asarray(causal_attention_online(q_big, k, v)), ref, atol=1e-12)
    # every score shifted by -800: each e^s underflows to 0, and 0/0 = nan
    q_lo = np.concatenate([q, np.ones((16, 1))], axis=1)
    k_lo = np.concatenate([k, np.full((16, 1), -800.0)], axis=1)
    assert np.all(np.isnan(np.asarray(causal_attention_recurrent(q_lo, k_lo, v))))
    np.testing.assert_allclose(np.asarray(causal_attention_online(q_lo, k_lo, v)),
                               numpy_attention(q[None], k[None], v[None])[0], atol=1e-12)


def test_the_sum_overflows_although_every_term_is_finite():
    # three equal scores of 709 < log(max float64) ≈ 709.78 < 709 + log 3: each e^s is finite, the
    # sum of the three is not. Rows 0 and 1 stay below the threshold; row 2 cannot be right
    # whatever XLA does with the division (y / inf, y · (1/inf) and inf / inf are 0 or nan).
    q, k = np.full((3, 1), 709.0), np.ones((3, 1))
    v = np.array([[0.5], [0.75], [1.0]])
    exact = np.cumsum(v[:, 0]) / np.arange(1, 4)               # equal weights: running means
    plain = np.asarray(causal_attention_recurrent(q, k, v))[:, 0]
    assert not abs(plain[2] - exact[2]) <= 0.25                 # nan compares False
    np.testing.assert_allclose(np.asarray(causal_attention_online(q, k, v))[:, 0], exact,
                               rtol=1e-12)
    with np.errstate(over="ignore"):
        assert np.all(np.isfinite(np.exp(q[:, 0]))) and not np.isfinite(np.exp(q[:, 0]).sum())


def test_float32_input_is_computed_in_float32_and_overflows_at_its_own_threshold():
    q = np.array([[90.0], [1.0]], np.float32)        # e^90 > float32 max ≈ e^88.7
    k = np.ones((2, 1), np.float32)
    v = np.array([[0.5], [1.0]], np.float32)
    plain = causal_attention_recurrent(q, k, v)
    online = causal_attention_online(q, k, v)
    assert plain.dtype == np.float32 and online.dtype == np.float32
    assert np.isnan(np.asarray(plain)[0, 0])         # inf / inf
    np.testing.assert_allclose(np.asarray(online), [[0.5], [0.75]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(causal_attention_recurrent(q.astype(np.float64), k, v)),
                               [[0.5], [0.75]], rtol=1e-12)  # no overflow in float64


def test_the_recurrence_reads_keys_newest_first_and_matches_a_hand_computation():
    q = np.array([[0.0], [1.0], [2.0]])
    k = np.array([[1.0], [0.0], [-1.0]])
    v = np.array([[1.0], [2.0], [3.0]])
    s = np.array([1.0, 0.0, -1.0]) * 2.0            # query 2 against keys 0, 1, 2
    expected_last = np.exp(s) @ v[:, 0] / np.exp(s).sum()
    for form in ATTENTION_FORMS:
        o = np.asarray(causal_attention(q, k, v, form=form, block_q=2, block_k=2))
        assert o[0, 0] == pytest.approx(1.0)           # the first query sees only key 0
        assert o[1, 0] == pytest.approx((np.e * 1 + 1 * 2) / (np.e + 1))
        assert o[2, 0] == pytest.approx(expected_last)


@settings(max_examples=40, deadline=None)
@given(qkv())
def test_linear_attention_rnn_equals_its_masked_product(x):
    q, k, v = x
    L = q.shape[-2]
    mask = np.tri(L)
    plain = np.einsum("bij,bjv->biv", (q @ k.transpose(0, 2, 1)) * mask, v)
    np.testing.assert_allclose(
        np.asarray(linear_attention_recurrent(q, k, v, feature="identity", normalize=False)),
        plain, atol=1e-9, rtol=1e-9)
    phi = lambda a: np.where(a > 0, a + 1.0, np.exp(a))
    A = (phi(q) @ phi(k).transpose(0, 2, 1)) * mask
    normalized = np.einsum("bij,bjv->biv", A, v) / A.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(linear_attention_recurrent(q, k, v)), normalized,
                               atol=1e-10, rtol=1e-10)


def test_linear_attention_recalls_orthonormal_keys_exactly_and_not_beyond_d():
    rng = np.random.default_rng(1)
    d = 8
    keys = np.linalg.qr(rng.normal(size=(d, d)))[0]            # d orthonormal keys
    values = rng.normal(size=(d, 3))
    read = lambda K, V, m: np.asarray(linear_attention_recurrent(
        np.vstack([np.zeros_like(K), K[m:m + 1]]), np.vstack([K, np.zeros((1, d))]),
        np.vstack([V, np.zeros((1, 3))]), feature="identity", normalize=False))[-1]
    for m in range(d):
        np.testing.assert_allclose(read(keys, values, m), values[m], atol=1e-12)
    more = rng.normal(size=(2 * d, d))
    more /= np.linalg.norm(more, axis=1, keepdims=True)
    vals = rng.normal(size=(2 * d, 3))
    errors = [np.linalg.norm(read(more, vals, m) - vals[m]) for m in range(2 * d)]
    assert min(errors) > 1e-3                                  # n = 2d: no pair is exact


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_recomputing_the_stack_gives_the_cached_outputs(layers):
    rng = np.random.default_rng(layers)
    d, vocab, L = 4, 7, 9
    tokens = rng.integers(0, vocab, L)
    embed = rng.normal(size=(vocab, d))
    weights = rng.normal(size=(layers, 3, d, d)) / np.sqrt(d)
    cached = np.asarray(attention_stack(tokens, embed, weights, mode="cached"))
    recomputed = np.asarray(attention_stack(tokens, embed, weights, mode="recompute"))
    np.testing.assert_allclose(recomputed, cached, atol=1e-12)
    # and the cached stack is the attention forms applied layer by layer
    x = embed[tokens]
    for W in weights:
        x = numpy_attention((x @ W[0])[None], (x @ W[1])[None], (x @ W[2])[None])[0]
    np.testing.assert_allclose(cached, x, atol=1e-12)


def test_compiled_memory_grows_with_L_for_the_cache_and_the_matrix_but_not_for_recomputation():
    rng = np.random.default_rng(2)
    d = 8
    embed, weights = rng.normal(size=(5, d)), rng.normal(size=(2, 3, d, d))
    stack = {mode: [compiled_temp_bytes(f"stack-{mode}", np.zeros(L, int), embed, weights)
                    for L in (64, 256)] for mode in ("cached", "recompute")}
    assert stack["cached"][1] - stack["cached"][0] >= 192 * 2 * 2 * d * 8   # the KV cache at least
    assert stack["recompute"][1] - stack["recompute"][0] < 0.1 * (stack["cached"][1] - stack["cached"][0])
    x = lambda L: rng.normal(size=(1, L, d))
    matrix = [compiled_temp_bytes("matrix", x(L), x(L), x(L)) for L in (128, 256)]
    blocked = [compiled_temp_bytes("blocked", x(L), x(L), x(L), block_q=32, block_k=32)
               for L in (128, 256)]
    assert matrix[1] >= 3 * matrix[0]             # (L, L) scores: about 4x per doubling
    assert blocked[1] <= 2.5 * blocked[0]         # an (L, block_k) slab: about 2x
    for kind in MEMORY_KINDS:
        args = (np.zeros(8, int), embed, weights) if kind.startswith("stack") else (x(8),) * 3
        assert compiled_temp_bytes(kind, *args) >= 0


def test_bad_input_is_refused_with_the_argument_named():
    q = np.zeros((4, 3))
    with pytest.raises(ValueError, match="k must have the leading shape"):
        causal_attention_online(q, np.zeros((5, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="v must have the leading shape"):
        causal_attention_matrix(q, q, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="k must have the feature size"):
        causal_attention_recurrent(q, np.zeros((4, 2)), q)
    with pytest.raises(ValueError, match="q must have at least 2"):
        causal_attention_online(np.zeros(3), q, q)
    with pytest.raises(ValueError, match="q contains non-finite"):
        causal_attention_online(np.full((4, 3), np.nan), q, q)
    with pytest.raises(TypeError, match="v must be real"):
        causal_attention_online(q, q, q + 1j)
    with pytest.raises(TypeError, match="block_q must be an int"):
        causal_attention_blocked(q, q, q, block_q=2.0)
    with pytest.raises(ValueError, match="block_k must be >= 1"):
        causal_attention_blocked(q, q, q, block_k=0)
    with pytest.raises(ValueError, match="unknown form"):
        causal_attention(q, q, q, form="flash")
    with pytest.raises(ValueError, match="unknown feature"):
        linear_attention_recurrent(q, q, q, feature="relu")
    with pytest.raises(TypeError, match="normalize must be a bool"):
        linear_attention_recurrent(q, q, q, normalize=1)
    embed, weights = np.zeros((5, 2)), np.zeros((1, 3, 2, 2))
    with pytest.raises(TypeError, match="tokens must be a 1-d array of ints"):
        attention_stack(np.zeros(3), embed, weights)
    with pytest.raises(ValueError, match="tokens must lie in"):
        attention_stack(np.array([0, 5]), embed, weights)
    with pytest.raises(ValueError, match="weights must have shape"):
        attention_stack(np.array([0, 1]), embed, np.zeros((1, 3, 2, 3)))
    with pytest.raises(ValueError, match="unknown mode"):
        attention_stack(np.array([0, 1]), embed, weights, mode="flash")
    with pytest.raises(ValueError, match="unknown kind"):
        compiled_temp_bytes("flash", q, q, q)
    with pytest.raises(TypeError, match="takes \\(q, k, v\\)"):
        compiled_temp_bytes("online", q, q)
