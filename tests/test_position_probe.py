import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sulib.position_probe as pp

jax.config.update("jax_enable_x64", True)

finite = st.floats(-4, 4, allow_nan=False, allow_infinity=False)
square = st.integers(2, 12).flatmap(
    lambda m: arrays(np.float64, (m, m), elements=finite))


@settings(max_examples=25, deadline=None)
@given(square, st.integers(1, 12))
def test_weight_rows_sum_or_norm_to_one(b, n_keys):
    """softmax rows sum to 1, l2 rows have unit 2-norm, exp is e^b; masked keys get 0."""
    m = b.shape[0]
    mask = (np.arange(m) < min(n_keys, m)).astype(float)
    sm = np.asarray(pp.attention_weights(b, mask, "softmax"))
    assert np.allclose(sm.sum(1), 1.0, atol=1e-12) and np.all(sm[:, mask == 0] == 0)
    for kind in ("l2", "swish_l2"):
        w = np.asarray(pp.attention_weights(b, mask, kind))
        norms = np.sqrt((w**2).sum(1))
        if kind == "l2":
            assert np.allclose(norms, 1.0, atol=1e-12)
        else:  # swish rows are normalised unless Σ swish² is below the 1e-30 guard
            f = np.asarray(jax.nn.swish(b)) * mask
            big = (f**2).sum(1) > 1e-20
            assert np.allclose(norms[big], 1.0, atol=1e-9) and np.all(norms <= 1 + 1e-12)
        assert np.all(w[:, mask == 0] == 0)
    ex = np.asarray(pp.attention_weights(b, mask, "exp"))
    assert np.allclose(ex, np.exp(b) * mask, rtol=1e-13)


def test_l2_row_sum_obeys_cauchy_schwarz():
    b = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (64, 64))) * 2
    s = np.asarray(pp.attention_weights(b, None, "l2")).sum(1)
    assert np.all(s <= np.sqrt(64) + 1e-12) and np.all(s >= 1 - 1e-12)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 5.0))
def test_softmax_outputs_are_constant_along_a_probe(seed, scale):
    """The defect: any parameters, any relative bias, one output per probe."""
    p = pp.init_params(jax.random.PRNGKey(seed))
    p["r"] = scale * jax.random.normal(jax.random.PRNGKey(seed + 1), p["r"].shape)
    y = pp.probe_outputs(p, [1, 5, 17], "softmax")
    assert np.nanmax(np.nanmax(y, 1) - np.nanmin(y, 1)) < 1e-12
    # and the same constant at every length: o_i = v does not depend on n either
    assert np.nanmax(y) - np.nanmin(y) < 1e-12


@pytest.mark.parametrize("variant", ["shaw", "toeplitz", "exp", "l2", "swish_l2", "boundary"])
def test_fixes_break_the_constant(variant):
    """With a nonzero relative bias / table, each fix makes the outputs vary along a probe."""
    p = pp.init_params(jax.random.PRNGKey(0))
    p["r"] = jnp.linspace(-1, 1, p["r"].shape[0])
    p["g"] = jnp.linspace(0.5, 1.5, p["g"].shape[0])
    y = pp.probe_outputs(p, [12], variant)
    assert np.ptp(y[0]) > 1e-4


def test_unnormalised_construction_counts():
    """r_k = 0 for k >= 0, -40 below: no denominator gives o_i = i (independent of sulib's helpers)."""
    d, clip = 4, 3
    ks = np.arange(-clip, clip + 1)
    eye = np.eye(d)
    p = dict(pp.init_params(jax.random.PRNGKey(0), d, clip))
    p.update(x0=eye[0], Wq=0 * eye, Wk=0 * eye, Wv=eye, r=np.where(ks >= 0, 0.0, -40.0),
             W1=eye[:, :1], c1=-np.ones(1), w2=np.ones(1), c2=np.zeros(()))
    p = {k: jnp.asarray(v, float) for k, v in p.items()}
    y = pp.probe_outputs(p, [1, 7, 20], "exp")
    for row, m in zip(y, [1, 7, 20]):
        assert np.allclose(row[:m], np.arange(1, m + 1), atol=1e-12 * m)
        assert np.all(np.isnan(row[m:]))


def test_targets_and_errors():
    t = pp.probe_targets([2, 3], "unit")
    assert np.allclose(t[0, :2], [0.5, 1.0]) and np.isnan(t[0, 2])
    assert np.allclose(pp.probe_targets([3], "raw")[0], [1, 2, 3])


def test_training_is_deterministic_and_lowers_the_loss():
    a = pp.train_probe(0, "exp", "raw", n_train=4, steps=30, hidden=8, d=4, clip=2)
    b = pp.train_probe(0, "exp", "raw", n_train=4, steps=30, hidden=8, d=4, clip=2)
    assert np.array_equal(a.losses, b.losses)
    assert a.losses[-1] < a.losses[0]
    # probe_errors measures the training loss: the mean of err² over the training lengths at
    # the final parameters equals the loss a 31-step run logs at its step 30 (same first steps)
    err = pp.probe_errors(a.params, "exp", "raw", [1, 2, 3, 4])
    c = pp.train_probe(0, "exp", "raw", n_train=4, steps=31, hidden=8, d=4, clip=2)
    assert np.array_equal(c.losses[:30], a.losses)
    assert abs(np.mean(err**2) - c.losses[30]) <= 1e-12 * c.losses[30]


def test_softmax_training_stays_at_a_constant():
    run = pp.train_probe(1, "softmax", "unit", n_train=5, steps=40, hidden=8, d=4, clip=2)
    y = pp.probe_outputs(run.params, [5], "softmax")
    assert np.ptp(y[0]) < 1e-12


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="variant"):
        pp.probe_outputs(pp.init_params(jax.random.PRNGKey(0)), [3], "rope")
    with pytest.raises(ValueError, match="kind"):
        pp.attention_weights(np.zeros((3, 3)), None, "relu")
    with pytest.raises(ValueError, match="b must be square"):
        pp.attention_weights(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="key_mask"):
        pp.attention_weights(np.zeros((3, 3)), np.ones(4))
    with pytest.raises(ValueError, match="b contains non-finite"):
        pp.attention_weights(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="seed"):
        pp.train_probe(-1, "exp")
    with pytest.raises(ValueError, match="target"):
        pp.train_probe(0, "exp", "log")
    with pytest.raises(ValueError, match="lengths"):
        pp.probe_targets([0, 3])
    with pytest.raises(TypeError, match="steps"):
        pp.train_probe(0, "exp", steps=2.5)
    with pytest.raises(ValueError, match="lr"):
        pp.train_probe(0, "exp", lr=-1.0)
    with pytest.raises(TypeError, match="params"):
        pp.probe_outputs([1, 2], [3], "exp")


def test_run_config_is_consistent():
    cfg = pp.RUN_CONFIG
    assert set(cfg["variants"]) == set(pp.VARIANTS) and set(cfg["targets"]) == set(pp.TARGETS)
    assert cfg["steps"] % cfg["log_every"] == 0


def _reference_outputs(p, n, variant):
    """The model written out in NumPy for one probe of length n, offsets i − j by hand."""
    p = {k: np.asarray(v, float) for k, v in p.items()}
    clip = (p["r"].shape[0] - 1) // 2
    if variant == "boundary":  # [CLS], n zeros, [SEP]: all n + 2 tokens are keys
        x = np.vstack([p["x_cls"], np.tile(p["x0"], (n, 1)), p["x_sep"]])
    else:
        x = np.tile(p["x0"], (n, 1))
    m = x.shape[0]
    off = np.array([[qi - kj for kj in range(m)] for qi in range(m)])  # i − j
    idx = np.clip(off, -clip, clip) + clip
    q, k, v = x @ p["Wq"], x @ p["Wk"], x @ p["Wv"]
    b = q @ k.T / np.sqrt(q.shape[1]) + p["r"][idx]
    kind = {"exp": "exp", "l2": "l2", "swish_l2": "swish_l2"}.get(variant, "softmax")
    if kind == "softmax":
        a = np.exp(b - b.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
    elif kind == "exp":
        a = np.exp(b)
    else:
        f = np.exp(b) if kind == "l2" else b / (1 + np.exp(-b))
        a = f / np.sqrt((f**2).sum(1, keepdims=True))
    o = np.zeros_like(x)
    for qi in range(m):
        for kj in range(m):
            val = v[kj] + (p["e"][idx[qi, kj]] if variant == "shaw" else 0.0)
            gate = p["g"][idx[qi, kj]] if variant == "toeplitz" else 1.0
            o[qi] += a[qi, kj] * gate * val
    y = np.maximum((x + o) @ p["W1"] + p["c1"], 0.0) @ p["w2"] + p["c2"]
    return y[1:-1] if variant == "boundary" else y


@pytest.mark.parametrize("variant", list(pp.VARIANTS))
def test_forward_matches_the_written_out_model(variant):
    """Each variant against an inline formula with random, asymmetric r, g, e and tokens:
    pins the sign of the offset i − j in r, g and e, and [SEP] among the keys."""
    p = pp.init_params(jax.random.PRNGKey(3), d=4, clip=3, hidden=6)
    ks = jax.random.split(jax.random.PRNGKey(4), 3)
    p["r"] = 1.5 * jax.random.normal(ks[0], p["r"].shape)
    p["g"] = 1.0 + jax.random.normal(ks[1], p["g"].shape)
    p["e"] = jax.random.normal(ks[2], p["e"].shape)
    p["c1"] = jnp.full(p["c1"].shape, 0.5)          # keep most ReLUs active
    lens = [1, 2, 5, 9]
    y = pp.probe_outputs(p, lens, variant)
    for row, n in zip(y, lens):
        ref = _reference_outputs(p, n, variant)
        assert np.allclose(row[:n], ref, rtol=1e-10, atol=1e-12), (variant, n)
        assert n < 9 or variant == "softmax" or np.ptp(ref) > 1e-4   # not degenerate


def test_offset_sign_and_sep_matter():
    """The written-out model itself tells the mutations apart (so the test above can fail)."""
    p = pp.init_params(jax.random.PRNGKey(3), d=4, clip=3, hidden=6)
    p["r"] = jnp.arange(7.0) / 3
    p["g"] = jnp.arange(7.0)
    p["e"] = jnp.outer(jnp.arange(7.0), jnp.ones(4))
    flip = {k: (v[::-1] if k in ("r", "g", "e") else v) for k, v in p.items()}
    for variant in ("shaw", "toeplitz"):
        assert np.ptp(_reference_outputs(p, 6, variant)
                      - _reference_outputs(flip, 6, variant)) > 1e-3
    no_sep = dict(p, x_sep=p["x0"])
    assert np.max(np.abs(_reference_outputs(p, 6, "boundary")
                         - _reference_outputs(no_sep, 6, "boundary"))) > 1e-3


def test_boundary_tokens_equal_to_the_zeros_fall_back_to_the_defect():
    p = pp.init_params(jax.random.PRNGKey(5))
    p["r"] = jnp.linspace(-2, 2, p["r"].shape[0])
    p = dict(p, x_cls=p["x0"], x_sep=p["x0"])
    y = pp.probe_outputs(p, [3, 11], "boundary")
    assert np.nanmax(y) - np.nanmin(y) < 1e-12


def test_l2_long_config():
    cfg = pp.L2_LONG_CONFIG
    assert cfg["variants"] == ["l2", "swish_l2"] and cfg["steps"] % cfg["log_every"] == 0
    assert {k: v for k, v in cfg.items() if k not in ("variants", "steps", "lr", "log_every")} \
        == {k: v for k, v in pp.RUN_CONFIG.items()
            if k not in ("variants", "steps", "lr", "log_every")}
