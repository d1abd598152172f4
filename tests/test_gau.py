import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.gau import (_attention_ffn_jit, attention_ffn_block, compiled_stats, entropy_invariant_scale,
                       gau_alpha_block, gau_layer, init_attention_ffn, init_gau_alpha,
                       init_gau_layer, param_count, rope)

jax.config.update("jax_enable_x64", True)
KEY = jax.random.PRNGKey(0)


def numpy_gau(p, x, normalization="softmax_plus", use_rope=True):
    """GAU layer written out in NumPy for one sequence x (n, d)."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    silu = lambda y: y / (1 + np.exp(-y))
    n, s = x.shape[0], p["W_z"].shape[1]
    u, v, z = silu(x @ p["W_u"]), silu(x @ p["W_v"]), silu(x @ p["W_z"])
    q, k = z * p["gamma"][0], z * p["gamma"][1]
    if "beta" in p:
        q, k = q + p["beta"][0], k + p["beta"][1]
    if use_rope:
        q, k = (np.asarray(rope(y[None]))[0] for y in (q, k))
    sc = q @ k.T
    if normalization == "softmax_plus":
        z = sc * np.log(n) / np.log(512) / np.sqrt(s)
        a = np.exp(z - z.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
    else:
        a = np.maximum(sc / n, 0) ** 2
    return (u * (a @ v)) @ p["W_o"]


@pytest.mark.parametrize("normalization", ["softmax_plus", "relu2"])
@pytest.mark.parametrize("offset", [True, False])
def test_gau_layer_matches_numpy(normalization, offset):
    p = init_gau_layer(KEY, 16, s=8, offset=offset, dtype=jnp.float64)
    if offset:  # nonzero offsets, so that they are exercised
        p["beta"] = 0.3 * jax.random.normal(jax.random.PRNGKey(3), (2, 8), jnp.float64)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (10, 16)))
    got = np.asarray(gau_layer(p, x, normalization=normalization))
    np.testing.assert_allclose(got, numpy_gau(p, x, normalization), atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 12), st.integers(0, 5), st.integers(0, 2**31 - 1))
def test_rope_scores_depend_only_on_offset(n, shift, seed):
    # for every n, shift and draw: rope(q)_m · rope(k)_l depends only on m - l
    q, k = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (2, 1, n + shift, 6)))
    qs = np.asarray(rope(np.repeat(q[:, :1], n + shift, axis=1)))[0]
    ks = np.asarray(rope(np.repeat(k[:, :1], n + shift, axis=1)))[0]
    g = qs @ ks.T
    for off in range(-(n - 1), n):
        np.testing.assert_allclose(np.diagonal(g, off), np.diagonal(g, off)[0], atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_batch_rows_are_independent(b, seed):
    # the batch axis is independent: block(x)[i] = block(x[i]) for every b and draw
    p = init_gau_alpha(KEY, 8, s=4, dtype=jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(seed), (b, 5, 8), jnp.float64)
    whole = np.asarray(gau_alpha_block(p, x))
    one = np.stack([np.asarray(gau_alpha_block(p, np.asarray(x[i]))) for i in range(b)])
    np.testing.assert_allclose(whole, one, atol=1e-10)


def test_attention_block_matches_numpy_bert():
    d, h, n = 8, 2, 5
    p = init_attention_ffn(KEY, d, h, style="bert", dtype=jnp.float64)
    p = {k: v + 0.1 * jax.random.normal(jax.random.fold_in(KEY, i), v.shape, v.dtype)
         for i, (k, v) in enumerate(p.items())}                  # nonzero biases and shifts
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (n, d)))
    P = {k: np.asarray(v) for k, v in p.items()}

    def ln(y, g, b):
        mu, var = y.mean(1, keepdims=True), y.var(1, keepdims=True)
        return (y - mu) / np.sqrt(var + 1e-12) * g + b

    q, k, v = (x @ P[f"W_{c}"] + P[f"b_{c}"] for c in "qkv")
    outs = []
    for j in range(h):
        sl = slice(j * d // h, (j + 1) * d // h)
        sc = q[:, sl] @ k[:, sl].T / np.sqrt(d // h)
        a = np.exp(sc - sc.max(1, keepdims=True))
        outs.append(a / a.sum(1, keepdims=True) @ v[:, sl])
    y = ln(x + np.concatenate(outs, 1) @ P["W_o"] + P["b_o"], P["ln1_g"], P["ln1_b"])
    f = np.asarray(jax.nn.gelu(y @ P["W_1"] + P["b_1"])) @ P["W_2"] + P["b_2"]
    want = ln(y + f, P["ln2_g"], P["ln2_b"])
    np.testing.assert_allclose(np.asarray(attention_ffn_block(p, x, heads=h)), want, atol=1e-9)


def test_roformer_v2_block_matches_numpy():
    # per-head RoPE on (n, heads, c), no biases, gain-free RMS post norms
    d, h, n = 12, 3, 6
    p = init_attention_ffn(KEY, d, h, style="roformer_v2", dtype=jnp.float64)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (n, d)))
    P = {k: np.asarray(v) for k, v in p.items()}
    c = d // h

    def rms(y):
        return y / np.sqrt((y * y).mean(1, keepdims=True) + 1e-12)

    def rot(y):  # (n, c): pair (i, i + c/2) turned by m·10000^(-2i/c)
        ang = np.arange(n)[:, None] * 10000.0 ** (-np.arange(c // 2) / (c // 2))
        y1, y2 = y[:, : c // 2], y[:, c // 2:]
        return np.concatenate([y1 * np.cos(ang) - y2 * np.sin(ang),
                               y1 * np.sin(ang) + y2 * np.cos(ang)], 1)

    q, k, v = (x @ P[f"W_{w}"] for w in "qkv")
    outs = []
    for j in range(h):
        sl = slice(j * c, (j + 1) * c)
        sc = rot(q[:, sl]) @ rot(k[:, sl]).T / np.sqrt(c)
        a = np.exp(sc - sc.max(1, keepdims=True))
        outs.append(a / a.sum(1, keepdims=True) @ v[:, sl])
    y = rms(x + np.concatenate(outs, 1) @ P["W_o"])
    want = rms(y + np.asarray(jax.nn.gelu(y @ P["W_1"])) @ P["W_2"])
    got = attention_ffn_block(p, x, heads=h, style="roformer_v2")
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["bert", "roformer_v2"]), st.integers(1, 3), st.integers(1, 9),
       st.integers(0, 2**31 - 1))
def test_heads_first_layout_equals_naive(style, b, n, seed):
    # the heads-first (b, h, n, c) products give the naive (b, n, h, c) einsums' numbers
    p = init_attention_ffn(KEY, 16, 4, style=style, dtype=jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(seed), (b, n, 16), jnp.float64)
    fast = np.asarray(_attention_ffn_jit(p, x, 4, style, True))
    naive = np.asarray(_attention_ffn_jit(p, x, 4, style, False))
    np.testing.assert_allclose(fast, naive, atol=1e-12)


@pytest.mark.parametrize("d,e,s,h", [(8, 16, 4, 2), (12, 20, 6, 3)])
def test_param_counts(d, e, s, h):
    assert param_count(init_gau_layer(KEY, d, e, s)) == 3 * d * e + d * s + 4 * s
    assert param_count(init_gau_layer(KEY, d, e, s, offset=False)) == 3 * d * e + d * s + 2 * s
    assert param_count(init_gau_alpha(KEY, d, e, s)) == 2 * (3 * d * e + d * s + 2 * s)
    assert param_count(init_attention_ffn(KEY, d, h, style="roformer_v2")) == 12 * d * d
    assert param_count(init_attention_ffn(KEY, d, h, style="bert")) == 12 * d * d + 13 * d


def test_compiled_stats_counts_the_matmuls():
    d, s, n = 64, 16, 32
    st_g = compiled_stats("gau_alpha", init_gau_alpha(KEY, d, s=s),
                          jax.ShapeDtypeStruct((1, n, d), jnp.float32))
    mm = 2 * (2 * n * d * (4 * d + s) + 2 * n * 2 * d * d + 2 * n * n * (s + 2 * d))
    assert mm <= st_g.flops < 1.1 * mm and st_g.temp_bytes > 0
    # the arguments are the weights and the tokens, float32
    p = init_gau_alpha(KEY, d, s=s)
    assert st_g.arg_bytes == 4 * (param_count(p) + n * d)
    # a training step (gradient of the weights) costs about three forward passes
    st_t = compiled_stats("gau_alpha", p, jax.ShapeDtypeStruct((1, n, d), jnp.float32),
                          mode="train")
    assert 2.5 * st_g.flops < st_t.flops < 4 * st_g.flops
    # one gradient per weight (plus XLA's small table of the output tuple's buffers)
    assert 4 * param_count(p) <= st_t.out_bytes < 4 * param_count(p) + 256


def test_entropy_invariant_scale():
    assert entropy_invariant_scale(512, 128) == pytest.approx(1 / np.sqrt(128), rel=1e-14)
    assert entropy_invariant_scale(4096, 64) == pytest.approx(4 / 3 / 8, rel=1e-14)


def test_input_checks():
    p = init_gau_alpha(KEY, 8, s=4)
    with pytest.raises(ValueError, match="x"):
        gau_alpha_block(p, np.zeros((3, 7)))
    with pytest.raises(ValueError, match="x"):
        gau_alpha_block(p, np.full((3, 8), np.nan))
    with pytest.raises(ValueError, match="normalization"):
        gau_layer(p["gau1"], np.zeros((3, 8)), normalization="softmax")
    with pytest.raises(ValueError, match="style"):
        init_attention_ffn(KEY, 8, 2, style="gpt")
    with pytest.raises(ValueError, match="heads"):
        attention_ffn_block(init_attention_ffn(KEY, 8, 2), np.zeros((3, 8)), heads=3)
    with pytest.raises(TypeError, match="d"):
        init_gau_layer(KEY, 8.0)
    with pytest.raises(ValueError, match="s"):
        init_gau_layer(KEY, 8, s=5)
    with pytest.raises(ValueError, match="block"):
        compiled_stats("gpt", p, np.zeros((1, 3, 8)))
    with pytest.raises(TypeError, match="params"):
        gau_layer([1], np.zeros((3, 8)))
    with pytest.raises(ValueError, match="n"):
        entropy_invariant_scale(0, 64)
    attn = init_attention_ffn(KEY, 8, 2, style="roformer_v2")
    with pytest.raises(ValueError, match="params"):
        compiled_stats("gau_alpha", attn, np.zeros((1, 3, 8)))
    with pytest.raises(ValueError, match="x"):
        compiled_stats("gau_alpha", p, jax.ShapeDtypeStruct((1, 3, 7), jnp.float32))
    with pytest.raises(ValueError, match="mode"):
        compiled_stats("gau_alpha", p, np.zeros((1, 3, 8)), mode="backward")
    bad = dict(p["gau1"], W_o=np.zeros((7, 8), np.float32))
    with pytest.raises(ValueError, match="params"):
        gau_layer(bad, np.zeros((3, 8)))
    odd = init_gau_layer(KEY, 8, s=4)
    odd = dict(odd, W_z=np.zeros((8, 5), np.float32), gamma=np.ones((2, 5), np.float32),
               beta=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="params"):
        gau_layer(odd, np.zeros((3, 8)))
    with pytest.raises(ValueError, match="params"):
        attention_ffn_block(init_attention_ffn(KEY, 8, 2), np.zeros((3, 8)), heads=2,
                            style="roformer_v2")
