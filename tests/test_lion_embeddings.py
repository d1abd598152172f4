"""Tests of sulib.lion_embeddings: the sign-decay closed form against optax.lion, momentum
underflow, the lazy-row wrapper, the toy LM and its input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import lion_embeddings as le

jax.config.update("jax_enable_x64", True)


@settings(max_examples=30, deadline=None)
@given(theta0=st.floats(-50, 50), sign=st.sampled_from([-1.0, 0.0, 1.0]),
       lr=st.floats(1e-4, 0.5), wd=st.floats(1e-3, 1.0), t=st.integers(0, 200))
def test_closed_form_satisfies_recursion(theta0, sign, lr, wd, t):
    if lr * wd >= 1:
        return
    a = float(le.sign_decay_closed_form(theta0, sign, lr, wd, t))
    b = float(le.sign_decay_closed_form(theta0, sign, lr, wd, t + 1))
    assert b == pytest.approx(a - lr * (sign + wd * a), abs=1e-9 * (1 + abs(a) + 1 / wd))
    assert float(le.sign_decay_closed_form(theta0, sign, lr, wd, 0)) == pytest.approx(theta0)


def test_closed_form_matches_optax_lion_with_constant_gradient_sign():
    lr, wd, theta0 = 0.01, 0.1, 3.0
    opt = optax.lion(lr, weight_decay=wd)
    p = jnp.array([theta0, -theta0], jnp.float64)
    state = opt.init(p)
    g = jnp.array([0.5, -2.0])                  # signs +1, -1: θ* = ∓1/wd
    for _ in range(300):
        u, state = opt.update(g, state, p)
        p = optax.apply_updates(p, u)
    want = le.sign_decay_closed_form(jnp.array([theta0, -theta0]), jnp.array([1.0, -1.0]),
                                     lr, wd, 300)
    np.testing.assert_allclose(np.asarray(p), np.asarray(want), rtol=0, atol=1e-12)


def test_underflow_steps_follow_the_smallest_normal_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip("flushing subnormals is XLA:CPU behaviour")
    # XLA:CPU flushes subnormals: the count is the first t with β^t m0 below the smallest normal
    m0, beta = 1e-3, 0.9
    t = le.momentum_underflow_steps(m0, beta, "float32")
    tiny = np.finfo(np.float32).tiny
    predicted = np.log(tiny / m0) / np.log(beta)
    assert abs(t - predicted) < 3
    assert le.momentum_underflow_steps(m0, beta, "float64") > 6 * t


def test_lazy_rows_freezes_zero_gradient_rows():
    opt = le.lazy_rows(optax.lion(0.1, weight_decay=0.5))
    p = jnp.ones((3, 2))
    s = opt.init(p)
    g = jnp.array([[1.0, -1.0], [0.0, 0.0], [0.0, 2.0]])
    u, s = opt.update(g, s, p)
    u = np.asarray(u)
    assert np.all(u[1] == 0) and np.all(u[[0, 2]] != 0)
    u, s = opt.update(jnp.zeros_like(g), s, p)      # momentum alive, but no row is fed
    assert np.all(np.asarray(u) == 0)
    plain = optax.lion(0.1, weight_decay=0.5)
    u2, _ = plain.update(jnp.zeros_like(g), plain.update(g, plain.init(p), p)[1], p)
    assert np.any(np.asarray(u2) != 0)             # without the wrapper the rows drift


def test_toy_lm_runs_and_lazy_keeps_unfed_rows():
    r = le.train_toy_lm(0, "lion_lazy", n=64, d=8, steps=20, batch=4)
    fed = np.bincount(r.tokens.ravel(), minlength=64) > 0
    assert (~fed).any()
    np.testing.assert_array_equal(r.emb[~fed], r.emb0[~fed])
    plain = le.train_toy_lm(0, "lion", n=64, d=8, steps=20, batch=4)
    assert np.all(plain.emb[~fed] != plain.emb0[~fed])         # decay moves them
    k, res = le.once_seen_residual(plain, 4e-3, 0.5)
    assert k > 0 and res < 1e-5


def test_source_is_normalised():
    u, T = le.zipf_bigram_source(jax.random.PRNGKey(0), 50)
    assert abs(float(u.sum()) - 1) < 1e-6
    np.testing.assert_allclose(np.asarray(T.sum(1)), 1, atol=1e-5)
    assert float(u[0]) > float(u[-1])


@pytest.mark.parametrize("call, match", [
    (lambda: le.sign_decay_closed_form(0.0, 2.0, 0.1, 0.1, 1), "sign"),
    (lambda: le.sign_decay_closed_form(0.0, 1.0, -0.1, 0.1, 1), "lr"),
    (lambda: le.sign_decay_closed_form(0.0, 1.0, 2.0, 0.6, 1), "lr \\* wd"),
    (lambda: le.sign_decay_closed_form(0.0, 1.0, 0.1, 0.1, 1.5), "t must"),
    (lambda: le.momentum_underflow_steps(1e-3, 1.2), "beta"),
    (lambda: le.momentum_underflow_steps(-1.0, 0.9), "m0"),
    (lambda: le.momentum_underflow_steps(1e-3, 0.9, "int8"), "dtype"),
    (lambda: le.train_toy_lm(0, "sgd"), "arm"),
    (lambda: le.train_toy_lm(0, "lion", d=7), "d must be even"),
    (lambda: le.train_toy_lm(0, "lion", b2=1.5), "b2"),
    (lambda: le.zipf_bigram_source(jax.random.PRNGKey(0), 1), "n must"),
    (lambda: le.once_seen_residual(None, -4e-3, 0.5), "lr"),
    (lambda: le.once_seen_residual(None, 4e-3, 0.0), "wd"),
    (lambda: le.near_fixed_point(np.ones((2, 2)), -1.0), "wd"),
    (lambda: le.near_fixed_point(np.ones(3), 0.5), "w must"),
])
def test_bad_input_messages(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_tied_logits_use_the_half_swap_of_the_normed_row():
    rng = np.random.default_rng(0)
    emb = jnp.asarray(rng.normal(size=(7, 6)))
    x = jnp.array([0, 3, 6, 3])
    h = np.asarray(emb)[np.asarray(x)]
    h = h / np.sqrt((h * h).mean(1, keepdims=True))
    s = np.concatenate([h[:, 3:], h[:, :3]], axis=1)          # S[h]
    got = np.asarray(le.toy_logits({"emb": emb}, x, True))
    np.testing.assert_allclose(got, s @ np.asarray(emb).T, rtol=1e-9, atol=1e-12)
    # without the swap the logits differ (the swap is not a no-op)
    assert np.max(np.abs(got - h @ np.asarray(emb).T)) > 0.1


def test_norm_makes_the_row_gradient_orthogonal_to_the_row():
    """RMS norm: ∂L/∂E_x ⊥ E_x for every row (scale invariance); without it, not."""
    rng = np.random.default_rng(1)
    n, d = 9, 6
    params = {"emb": jnp.asarray(rng.normal(size=(n, d))),
              "out": jnp.asarray(rng.normal(size=(n, d)))}
    x, y = jnp.array([0, 2, 2, 5]), jnp.array([1, 3, 8, 0])

    def loss(p, norm):
        lp = jax.nn.log_softmax(le.toy_logits(p, x, False, norm), axis=-1)
        return -jnp.mean(jnp.take_along_axis(lp, y[:, None], axis=1))

    for norm, small in ((True, True), (False, False)):
        g = np.asarray(jax.grad(loss)(params, norm)["emb"])
        e = np.asarray(params["emb"])
        fed = np.unique(np.asarray(x))
        cos = np.abs((g[fed] * e[fed]).sum(1)) / (np.linalg.norm(g[fed], axis=1)
                                                   * np.linalg.norm(e[fed], axis=1))
        assert (cos.max() < 1e-12) == small, (norm, cos)
    logits = le.toy_logits(params, x, False, False)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(params["emb"])[np.asarray(x)]
                               @ np.asarray(params["out"]).T, rtol=1e-12)


def test_train_toy_lm_rejects_a_non_bool_norm():
    with pytest.raises(TypeError, match="norm"):
        le.train_toy_lm(0, "lion", n=10, d=4, steps=2, batch=2, norm=1)


def test_adam_emb_arm_decays_unfed_rows_at_adamw_rate():
    lr, adam_lr, wd, steps = 4e-3, 1e-3, 0.5, 40
    r = le.train_toy_lm(1, "lion_adam_emb", n=300, d=8, steps=steps, batch=4, lr=lr,
                        wd=wd, adam_lr=adam_lr)
    unfed = np.bincount(r.tokens.ravel(), minlength=300) == 0
    assert unfed.sum() > 10
    ratio = r.emb[unfed] / r.emb0[unfed]
    np.testing.assert_allclose(ratio, (1 - adam_lr * wd) ** steps, rtol=1e-5)
    assert abs((1 - adam_lr * wd) ** steps - (1 - lr * wd) ** steps) > 1e-3   # not Lion's


def test_stored_run_comes_from_this_code_for_every_arm():
    """Re-run seed 1 of every arm and compare with book/optim/data (about 15 s of CPU)."""
    import json
    from pathlib import Path
    path = Path(__file__).parents[1] / "book/optim/data/lion_embeddings_train.json"
    stored = json.loads(path.read_text())
    cfg = stored["config"]
    kw = {k: v for k, v in cfg.items() if k != "seeds"}
    for arm in le.ARMS:
        t = le.train_toy_lm(cfg["seeds"][0], arm, track_sign=True, **kw)
        rec = stored["arms"][arm][0]
        rms = np.sqrt((t.emb.astype(np.float64) ** 2).mean(1))
        assert np.max(np.abs(rms - np.array(rec["rms"]))) < 1e-4, arm
        assert abs(t.source_loss - rec["source_loss"]) < 1e-4, arm
        if arm == "lion":                                  # tracking does not change training
            r = le.train_toy_lm(cfg["seeds"][0], arm, **kw)
            np.testing.assert_array_equal(t.emb, r.emb)
        # the sign-agreement counts and the entries near ±1/λ come from this code too
        np.testing.assert_array_equal(t.sign_later, rec["sign_later"])
        np.testing.assert_array_equal(t.sign_agree, rec["sign_agree"])
        np.testing.assert_array_equal(le.near_fixed_point(t.emb, cfg["wd"]), rec["near"])
        if t.out is not None:
            np.testing.assert_array_equal(le.near_fixed_point(t.out, cfg["wd"]),
                                          rec["out_near"])


def _replay_emb_grads(seed, arm, n, d, steps, batch, lr, wd):
    """train_toy_lm re-done step by step in Python: the embedding gradient at each step."""
    u, T = le.zipf_bigram_source(jax.random.PRNGKey(0), n)
    k_e, k_o, k_x, k_y = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.choice(k_x, n, (steps, batch), p=u)
    tied = arm == "lion_tied_swap"
    p = {"emb": 0.02 * jax.random.normal(k_e, (n, d), jnp.float32)}
    if not tied:
        p["out"] = 0.02 * jax.random.normal(k_o, (n, d), jnp.float32)
    opt = optax.lion(lr, b1=0.9, b2=0.99, weight_decay=wd)
    s = opt.init(p)
    out = []
    for xb, k in zip(x, jax.random.split(k_y, steps)):
        yb = jax.random.categorical(k, jnp.log(T)[xb], axis=-1)

        def loss(q):
            lp = jax.nn.log_softmax(le.toy_logits(q, xb, tied), axis=-1)
            return -jnp.mean(jnp.take_along_axis(lp, yb[:, None], axis=1))

        g = jax.grad(loss)(p)
        out.append(np.asarray(g["emb"]))
        upd, s = opt.update(g, s, p)
        p = optax.apply_updates(p, upd)
    return np.stack(out), np.asarray(p["emb"])


@pytest.mark.parametrize("arm", ["lion", "lion_tied_swap"])
def test_sign_agreement_counts_match_a_numpy_replay(arm):
    kw = dict(n=40, d=4, steps=25, batch=3, lr=4e-3, wd=0.5)
    r = le.train_toy_lm(2, arm, track_sign=True, **kw)
    g, emb = _replay_emb_grads(2, arm, **kw)
    np.testing.assert_allclose(emb, r.emb, rtol=1e-5, atol=1e-7)   # the same training
    live = np.any(g != 0, axis=2)                                     # (steps, n)
    agree, later = np.zeros(40, int), np.zeros(40, int)
    for row in range(40):
        steps_live = np.flatnonzero(live[:, row])
        if steps_live.size:
            first = np.sign(g[steps_live[0], row])
            later[row] = steps_live.size - 1
            agree[row] = sum(int(np.sum(np.sign(g[t, row]) == first)) for t in steps_live[1:])
    np.testing.assert_array_equal(r.sign_later, later)
    np.testing.assert_array_equal(r.sign_agree, agree)
    assert later.sum() > 10 and 0 < agree.sum() < 4 * later.sum()     # not all or nothing
    if arm == "lion_tied_swap":                    # every row has a gradient at every step
        np.testing.assert_array_equal(later, kw["steps"] - 1)


def test_near_fixed_point_counts_entries_within_the_band():
    w = np.array([[2.0, -1.81, 1.79, 2.19], [-2.21, 0.0, -2.0, 0.5]])
    np.testing.assert_array_equal(le.near_fixed_point(w, 0.5), [3, 1])   # band 1.8…2.2
    np.testing.assert_array_equal(le.near_fixed_point(w, 0.5, tol=0.2), [4, 2])
