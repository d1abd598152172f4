"""Tests for sulib.tied_embeddings: heads, the initial-loss Monte Carlo, the toy bigram LM."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import tied_embeddings as te

jax.config.update("jax_enable_x64", True)


def _reference_rows(key, n, d, sigma, head, n_rows, chunk):
    """Dense NumPy version of the initial loss with the same draws as the chunked kernel."""
    k_out, k_in, k_p = jax.random.split(key, 3)
    W = np.concatenate([np.asarray(sigma * jax.random.normal(jax.random.fold_in(k_out, c),
                                                             (chunk, d)))
                        for c in range(-(-n // chunk))])[:n]
    w = (np.asarray(sigma * jax.random.normal(k_in, (n_rows, d))) if head == "untied"
         else W[:n_rows])
    g = w * math.sqrt(d) / np.linalg.norm(w, axis=1, keepdims=True)
    if head == "orthogonal":
        g = g @ np.asarray(te._orthogonal(k_p, d))
    elif head == "half_swap":
        g = np.concatenate([g[:, d // 2:], g[:, : d // 2]], axis=1)
    z = g @ W.T
    loss = []
    for i in range(n_rows):
        cross = np.delete(z[i], i)
        m = z[i].max()
        loss.append(m + np.log(np.exp(z[i] - m).sum()) - cross.mean())
    return np.array(loss), z[np.arange(n_rows), np.arange(n_rows)]


@pytest.mark.parametrize("head", te.HEADS)
def test_chunked_kernel_matches_dense_reference(head):
    key = jax.random.PRNGKey(3)
    n, d, sigma = 300, 16, 0.3
    for chunk in (n, 64):   # one chunk; a ragged last chunk
        ref_loss, ref_self = _reference_rows(key, n, d, sigma, head, 5, chunk)
        out = te.initial_loss_stats(key, n, d, sigma, head, n_rows=5, chunk=chunk)
        np.testing.assert_allclose(out.loss, ref_loss, rtol=1e-12)
        np.testing.assert_allclose(out.self_logit, ref_self, rtol=1e-12, atol=1e-12)


def test_chunking_ragged_last_chunk_counts_every_row_once():
    # σ → tiny: every logit, the row's own included, is ≈ 0, so logsumexp ≈ log n; a row
    # counted twice or skipped at a chunk edge would move it by ≈ 1/n (300 = 42·7 + 6)
    key = jax.random.PRNGKey(0)
    for chunk in (7, 300):
        out = te.initial_loss_stats(key, 300, 8, 1e-9, "untied", n_rows=5, chunk=chunk)
        np.testing.assert_allclose(out.loss, math.log(300), atol=1e-6)
        np.testing.assert_allclose(out.log_cross, 0.0, atol=1e-6)


def test_tied_self_logit_is_sqrt_d_times_norm():
    key = jax.random.PRNGKey(1)
    n, d, sigma = 50, 32, 0.2
    out = te.initial_loss_stats(key, n, d, sigma, "tied", n_rows=4, chunk=64)
    k_out = jax.random.split(key, 3)[0]
    W = np.asarray(sigma * jax.random.normal(jax.random.fold_in(k_out, 0), (64, d)))
    np.testing.assert_allclose(out.self_logit, math.sqrt(d) * np.linalg.norm(W[:4], axis=1),
                               rtol=1e-12)


def test_conditional_sampler_agrees_with_direct_in_distribution():
    n, d, sigma = 2000, 64, 1 / 8
    direct = {h: te.initial_loss_stats(jax.random.PRNGKey(5), n, d, sigma, h, n_rows=64,
                                       chunk=1024) for h in te.HEADS}
    cond = te.initial_loss_conditional(jax.random.PRNGKey(6), n, d, sigma, n_rows=256)
    for k, h in enumerate(te.HEADS):
        a, b = np.asarray(direct[h].loss), np.asarray(cond.loss[k])
        se = math.sqrt(a.var() / a.size + b.var() / b.size)
        assert abs(a.mean() - b.mean()) < 5 * se + 1e-3, h
    # the tied head is far above the others in both
    assert cond.loss[0].mean() > cond.loss[1].mean() + 0.5   # √d = 8 vs log n ≈ 7.6


def test_conditional_self_logits_match_exact_moments():
    # the own logit alone, against exact laws (a 2 % bias of the tied one is ≈ 10 SE here):
    # tied √d‖w‖ with E‖w‖ = σ√2 Γ((d+1)/2)/Γ(d/2); untied and orthogonal N(0, dσ²) given w;
    # half swap: with w = ‖w‖u (u uniform, independent of ‖w‖) it is 2√d‖w‖ Σ_a u_a u_{a+d/2},
    # mean 0, variance 4d · dσ² · (d/2) E[u_a² u_b²] = 2dσ² · d/(d + 2)
    n, d, sigma, rows = 64, 64, 1 / 8, 4096
    out = te.initial_loss_conditional(jax.random.PRNGKey(7), n, d, sigma, n_rows=rows)
    z = np.asarray(out.self_logit)
    tied_mean = math.sqrt(d) * sigma * math.sqrt(2) * math.exp(
        math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
    means = (tied_mean, 0.0, 0.0, 0.0)
    var = (d * sigma**2 * d - tied_mean**2, d * sigma**2, d * sigma**2,
           2 * d * sigma**2 * d / (d + 2))
    for k, h in enumerate(te.HEADS):
        se = math.sqrt(var[k] / rows)
        assert abs(z[k].mean() - means[k]) < 4 * se, h
        assert abs(z[k].var() / var[k] - 1) < 5 * math.sqrt(2 / rows) + 0.02, h


def test_conditional_cross_logit_law():
    n, d, sigma = 20001, 32, 0.25
    out = te.initial_loss_conditional(jax.random.PRNGKey(2), n, d, sigma, n_rows=32)
    # log mean e^z for z ~ N(0, dσ²) is dσ²/2 = 1
    np.testing.assert_allclose(np.asarray(out.log_cross).mean(), d * sigma**2 / 2, atol=0.03)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from((2, 6, 16)), st.integers(0, 2**31 - 1))
def test_half_swap_is_an_involution_and_preserves_norm(d, seed):
    h = jax.random.normal(jax.random.PRNGKey(seed), (3, d))
    np.testing.assert_array_equal(te.half_swap(te.half_swap(h)), h)
    np.testing.assert_allclose(jnp.linalg.norm(te.half_swap(h), axis=1),
                               jnp.linalg.norm(h, axis=1), rtol=1e-14)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from((1, 3, 40)), st.floats(1e-3, 1e3), st.integers(0, 2**31 - 1))
def test_rms_normalize_gives_squared_norm_d(d, scale, seed):
    x = scale * jax.random.normal(jax.random.PRNGKey(seed), (4, d))
    np.testing.assert_allclose(jnp.sum(te.rms_normalize(x) ** 2, axis=1), d, rtol=1e-12)


def test_orthogonal_is_orthogonal():
    P = np.asarray(te._orthogonal(jax.random.PRNGKey(0), 12))
    np.testing.assert_allclose(P @ P.T, np.eye(12), atol=1e-13)


def test_bigram_source_rows_and_diagonal():
    u, T = te.bigram_source(jax.random.PRNGKey(0), 50)
    np.testing.assert_allclose(u.sum(), 1.0, rtol=1e-13)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, rtol=1e-13)
    assert np.all(np.diag(T) == 0) and np.all(np.asarray(u)[:-1] > np.asarray(u)[1:])


def test_expected_loss_matches_numpy_and_model_starts_as_bigram_head():
    n, d = 40, 8
    u, T = te.bigram_source(jax.random.PRNGKey(1), n)
    for head in te.HEADS:
        p = te.init_params(jax.random.PRNGKey(2), n, d, 0.3, head)
        E = np.asarray(p["E"])
        h = E * math.sqrt(d) / np.linalg.norm(E, axis=1, keepdims=True)   # W2 = 0, gain = 1
        if head == "orthogonal":
            h = h @ np.asarray(p["P"])
        elif head == "half_swap":
            h = np.concatenate([h[:, d // 2:], h[:, : d // 2]], axis=1)
        z = h @ np.asarray(p["V"] if head == "untied" else E).T
        logp = z - z.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        T_ = np.asarray(T)
        ref = -np.sum(np.asarray(u)[:, None] * np.where(T_ > 0, T_ * logp, 0.0))
        np.testing.assert_allclose(te.expected_loss(p, u, T, head), ref, rtol=1e-12)


def test_training_lowers_loss_and_prefixes_agree():
    u, T = te.bigram_source(jax.random.PRNGKey(0), 64)
    long, _ = te.train_bigram(0, u, T, 16, 0.25, "tied", steps=40, batch=32, lr=1e-2,
                              eval_every=10)
    short, _ = te.train_bigram(0, u, T, 16, 0.25, "tied", steps=20, batch=32, lr=1e-2,
                               eval_every=10)
    np.testing.assert_allclose(short, long[:3], rtol=1e-12)
    assert long[-1] < long[0] - 0.1


def test_arm_sigma():
    assert te.arm_sigma("1/sqrt(d)", 100, 64) == 1 / 8
    assert te.arm_sigma("log(n)/d", 100, 64) == pytest.approx(math.log(100) / 64)


@pytest.mark.parametrize("call, match", [
    (lambda: te.initial_loss_stats(jax.random.PRNGKey(0), 1, 8, 0.1), "n must be"),
    (lambda: te.initial_loss_stats(jax.random.PRNGKey(0), 10, 8, -0.1), "sigma must be"),
    (lambda: te.initial_loss_stats(jax.random.PRNGKey(0), 10, 8, 0.1, "shared"), "unknown head"),
    (lambda: te.initial_loss_stats(jax.random.PRNGKey(0), 10, 7, 0.1, "half_swap", n_rows=4),
     "d must be even"),
    (lambda: te.initial_loss_stats(jax.random.PRNGKey(0), 10, 8, 0.1, n_rows=11), "n_rows must be"),
    (lambda: te.initial_loss_conditional(jax.random.PRNGKey(0), 10, 7, 0.1), "d must be even"),
    (lambda: te.arm_sigma("1/d", 10, 8), "unknown rule"),
    (lambda: te.half_swap(jnp.ones((2, 5))), "even last axis"),
    (lambda: te.rms_normalize(jnp.ones((2, 0))), "last axis of length"),
    (lambda: te.train_bigram(0, np.ones(3) / 2, np.ones((3, 3)) / 3, 4, 0.1, "tied"),
     "sum to 1"),
    (lambda: te.train_bigram(0, np.ones(3) / 3, np.ones((3, 2)), 4, 0.1, "tied"), "shape"),
    (lambda: te.train_bigram(0, np.ones(3) / 3, np.ones((3, 3)) / 3, 4, 0.1, "tied", steps=30,
                             eval_every=20), "multiple of eval_every"),
    (lambda: te.train_bigram(0, np.ones(3) / 3, np.ones((3, 3)) / 3, 4, 0.1, "tied", lr=0),
     "lr must be"),
])
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="n must be an int"):
        te.initial_loss_stats(jax.random.PRNGKey(0), 10.5, 8, 0.1)
    with pytest.raises(TypeError, match="u must hold real numbers"):
        te.train_bigram(0, ["a"], np.ones((1, 1)), 4, 0.1, "tied")
