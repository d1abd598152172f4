"""Tests of sulib.vq_attention: the four forms of Transformer-VQ attention agree, the bias window,
the training gradients, input checks, and agreement with the official implementation.

The reference outputs in tests/data/transformer_vq_reference.npz come from
transformer-vq/transformer_vq (``VQAttention.attn`` and ``update_state``) at commit
21943e4eea124fa1eec0939a24f36cfa6fe9c499, made by tests/data/make_transformer_vq_reference.py
(its docstring has the command).

The property test fixes the shapes per parametrized case and lets Hypothesis draw the data: the
jitted forms compile once per shape, not once per example (most of this file's time is XLA
compiling).
"""

import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.vq_attention import (block_attention, block_attention_kernel, code_statistics, kmeans,
                                pickout_attention, quadratic_attention, quantize,
                                recurrent_attention)

jax.config.update("jax_enable_x64", True)

REFERENCE = Path(__file__).parent / "data" / "transformer_vq_reference.npz"
REFERENCE_SHA256 = "264bc85122c6f4449263a8a9c4d43ce479bdbe19357e3305fc96a5680654ca3d"


def _inputs(seed, n=24, d_k=3, d_v=2, c=5, scale=1.0):
    rng = np.random.default_rng(seed)
    q = scale * rng.normal(size=(n, d_k))
    k = rng.normal(size=(n, d_k))
    v = rng.normal(size=(n, d_v))
    cb = rng.normal(size=(c, d_k))
    return q, k, v, cb


def _numpy_quadratic(q, k_hat, v, causal=True, bias=None):
    n = len(q)
    s = q @ k_hat.T
    if bias is not None:
        w = bias.shape[1] - 1
        for i in range(n):
            for t in range(min(w, i) + 1):
                s[i, i - t] += bias[i, t]
    if causal:
        s = np.where(np.tril(np.ones((n, n), bool)), s, -np.inf)
    a = np.exp(s - s.max(1, keepdims=True))
    return (a / a.sum(1, keepdims=True)) @ v


# (blocks m, block length l, codes c, window w; w = -1: no bias): the edges (n = 1, l = 1, one
# block, one code, w = 0, w = l) and interior shapes. Most share n = 12 and c = 5, so that only
# the block form recompiles between cases; every block count m that divides 12 is covered.
SHAPES = [(1, 1, 1, -1), (12, 1, 5, 1), (6, 2, 5, -1), (4, 3, 5, 0), (3, 4, 1, 4),
          (2, 6, 5, 3), (1, 12, 5, 12), (5, 3, 4, 3)]


@pytest.mark.parametrize("m, l, c, w", SHAPES)
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.1, 1.0, 30.0]))
def test_all_forms_equal_quadratic(m, l, c, w, seed, scale):
    """Quadratic (NumPy loops), recurrence, pick-out and blocks agree, window w <= l."""
    q, k, v, cb = _inputs(seed, n=m * l, c=c, scale=scale)
    rng = np.random.default_rng(seed + 1)
    bias = None if w < 0 else rng.normal(size=(m * l, w + 1))
    z, k_hat = quantize(k, cb)
    ref = _numpy_quadratic(q, np.asarray(k_hat), v, bias=bias)
    np.testing.assert_allclose(quadratic_attention(q, k_hat, v, bias=bias), ref, atol=1e-12)
    np.testing.assert_allclose(block_attention(q, k, cb, v, l, bias=bias), ref, atol=1e-12)
    # the recurrence and the pick-out form carry no bias: compare them on every shape
    np.testing.assert_allclose(recurrent_attention(q, cb, z, v),
                               _numpy_quadratic(q, np.asarray(k_hat), v), atol=1e-12)
    np.testing.assert_allclose(pickout_attention(q, cb, z, v),
                               _numpy_quadratic(q, np.asarray(k_hat), v, causal=False),
                               atol=1e-12)


def test_large_scores_stay_finite():
    """Scores of order 1e3 would overflow exp without the max subtraction."""
    q, k, v, cb = _inputs(3, n=32, scale=400.0)
    z, k_hat = quantize(k, cb)
    ref = _numpy_quadratic(q, np.asarray(k_hat), v)
    for out in (recurrent_attention(q, cb, z, v), block_attention(q, k, cb, v, 8)):
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out, ref, atol=1e-12)


def test_quantize_is_nearest():
    q, k, v, cb = _inputs(4, n=40, c=9)
    z, k_hat = quantize(k, cb)
    d2 = ((k[:, None, :] - cb[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(z, d2.argmin(1))
    np.testing.assert_array_equal(k_hat, cb[d2.argmin(1)])


def test_code_statistics():
    _, _, v, _ = _inputs(5)
    z = np.array([0, 2, 2, 0, 2] + [1] * 19)
    counts, means = code_statistics(z, v, 4)
    np.testing.assert_array_equal(counts, [2, 19, 3, 0])
    np.testing.assert_allclose(means[2], v[[1, 2, 4]].mean(0), atol=1e-15)
    np.testing.assert_array_equal(means[3], 0.0)


def test_window_wider_than_block_breaks_block_form():
    """With w = l + 1 the bias reaches block i - 2, which the block form cannot see."""
    q, k, v, cb = _inputs(6, n=24)
    l = 4
    bias = np.random.default_rng(0).normal(size=(24, l + 2))
    z, k_hat = quantize(k, cb)
    with pytest.raises(ValueError, match="bias window"):
        block_attention(q, k, cb, v, l, bias=bias)
    out = block_attention_kernel(jnp.asarray(q), jnp.asarray(k), jnp.asarray(cb), jnp.asarray(v),
                                 jnp.asarray(bias), l)
    ref = quadratic_attention(q, k_hat, v, bias=bias)
    assert np.abs(out - ref).max() > 1e-3


def test_gradients_local_ste_history_stopped():
    """d out[block i] / d keys and / d v vanish outside blocks i-1, i; inside they equal the
    straight-through gradient of quadratic attention with the history held constant."""
    n, l = 24, 4
    q, k, v, cb = (jnp.asarray(a) for a in _inputs(7, n=n))
    i = 4
    rows = slice(i * l, (i + 1) * l)
    wts = jnp.asarray(np.random.default_rng(1).normal(size=(l, v.shape[1])))

    def loss_block(k, v, cb):
        return jnp.sum(wts * block_attention_kernel(q, k, cb, v, None, l)[rows])

    _, k_hat = quantize(np.asarray(k), np.asarray(cb))

    def loss_masked_quadratic(k, v):
        k_st = k + jax.lax.stop_gradient(k_hat - k)
        local = (jnp.arange(n) >= (i - 1) * l)[:, None]
        k_use = jnp.where(local, k_st, jax.lax.stop_gradient(k_st))
        v_use = jnp.where(local, v, jax.lax.stop_gradient(v))
        s = q[rows] @ k_use.T
        s = jnp.where(jnp.arange(n)[None, :] <= jnp.arange(i * l, (i + 1) * l)[:, None], s,
                      -jnp.inf)
        return jnp.sum(wts * (jax.nn.softmax(s, -1) @ v_use))

    gk, gv, gc = jax.grad(loss_block, argnums=(0, 1, 2))(k, v, cb)    # one compile
    rk, rv = jax.jit(jax.grad(loss_masked_quadratic, argnums=(0, 1)))(k, v)
    np.testing.assert_allclose(gk, rk, atol=1e-12)
    np.testing.assert_allclose(gv, rv, atol=1e-12)
    assert np.all(gk[: (i - 1) * l] == 0) and np.all(gv[: (i - 1) * l] == 0)
    assert np.abs(gk[(i - 1) * l:]).max() > 1e-3 and np.abs(gv[: (i + 1) * l]).max() > 1e-3
    assert np.all(gc == 0)


@pytest.mark.parametrize("call, match", [
    (lambda q, k, v, cb: quantize(k, cb[:, :2]), "codebook must have 3 columns"),
    (lambda q, k, v, cb: quadratic_attention(q[:5], k, v), "same length"),
    (lambda q, k, v, cb: quadratic_attention(q, k, v, causal=1), "causal must be a bool"),
    (lambda q, k, v, cb: quadratic_attention(q, k, v, bias=np.ones((3, 2))), "bias must"),
    (lambda q, k, v, cb: pickout_attention(q, cb, np.zeros(24), v), "codes must hold integers"),
    (lambda q, k, v, cb: pickout_attention(q, cb, np.full(24, 5), v), r"codes must lie in"),
    (lambda q, k, v, cb: recurrent_attention(q, cb, np.zeros(23, int), v), "codes must have"),
    (lambda q, k, v, cb: block_attention(q, k, cb, v, 5), "block_len must divide"),
    (lambda q, k, v, cb: block_attention(q, k, cb, v, 0), "block_len must be >= 1"),
    (lambda q, k, v, cb: block_attention(q, k, cb, v[:, 0], 4), "v must be a 2-D"),
    (lambda q, k, v, cb: block_attention(q * np.nan, k, cb, v, 4), "q contains non-finite"),
    (lambda q, k, v, cb: code_statistics(np.zeros(24, int), v, 0), "c must be >= 1"),
])
def test_bad_inputs(call, match):
    q, k, v, cb = _inputs(8)
    with pytest.raises((ValueError, TypeError), match=match):
        call(q, k, v, cb)


def test_matches_official_transformer_vq():
    """Block form with the official Transformer-XL bias equals the official attention output."""
    assert hashlib.sha256(REFERENCE.read_bytes()).hexdigest() == REFERENCE_SHA256
    r = np.load(REFERENCE)
    l = int(r["block_len"])
    z, k_hat = quantize(r["k"], r["codebook"])
    np.testing.assert_array_equal(z, r["codes"])
    assert np.abs(r["bias"][:, l]).max() > 1e-2           # the window includes offset l
    ours = block_attention(r["q"], r["k"], r["codebook"], r["v"], l, bias=r["bias"])
    np.testing.assert_allclose(ours, r["out"], atol=1e-12)
    np.testing.assert_allclose(quadratic_attention(r["q"], k_hat, r["v"], bias=r["bias"]),
                               r["out"], atol=1e-12)
    # the bias matters: without it the outputs differ at order one
    assert np.abs(quadratic_attention(r["q"], k_hat, r["v"]) - r["out"]).max() > 0.1


def test_kmeans_fixed_point_and_error_decreases():
    """Well-separated clusters are found exactly; more codes never raise the error here."""
    rng = np.random.default_rng(9)
    centres = 10 * rng.normal(size=(4, 3))
    keys = np.repeat(centres, 25, axis=0) + 0.01 * rng.normal(size=(100, 3))
    errs = []
    for c in (1, 2, 4, 8):
        cb = kmeans(keys, c, seed=1)
        _, k_hat = quantize(keys, cb)
        errs.append(float(np.sum((keys - np.asarray(k_hat)) ** 2)))
        # Lloyd fixed point: every used centre is the mean of its cluster
        z, _ = quantize(keys, cb)
        for s in np.unique(z):
            np.testing.assert_allclose(cb[s], keys[np.asarray(z) == s].mean(0), atol=1e-12)
    assert errs[2] < 0.1 * errs[1] and errs[3] <= errs[2] * 1.0001
    with pytest.raises(ValueError, match="c must be <="):
        kmeans(keys, 101)
