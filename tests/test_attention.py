import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.attention import (_EXP_COEFFS, _STATS_BLOCK, _exp_nonpositive, attention_scores,
                             attention_scores_by_dim, entropy_terms, matching_scale,
                             matching_scales, prefix_entropy_terms, softmax_entropy,
                             softmax_stats)

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)
score_rows = st.integers(1, 40).flatmap(lambda n: arrays(np.float64, (3, n), elements=finite))
scales = arrays(np.float64, st.integers(1, 4), elements=st.floats(0, 5))


def numpy_entropy(scores, lam):
    z = lam * scores
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)


@settings(max_examples=60, deadline=None)
@given(score_rows, scales)
def test_entropy_matches_numpy_and_the_decomposition_closes(scores, lams):
    t = entropy_terms(scores, lams)
    assert t.entropy.shape == (len(lams), 3)
    for k, lam in enumerate(lams):
        np.testing.assert_allclose(t.entropy[k], numpy_entropy(scores, lam), atol=1e-9)
    n = scores.shape[-1]
    np.testing.assert_allclose(t.approximation + t.jensen_gap + t.concentration_gap, t.entropy, atol=1e-8)
    assert np.all(t.jensen_gap >= -1e-9) and np.all(t.concentration_gap >= -1e-9)
    assert np.all(t.entropy >= -1e-12) and np.all(t.entropy <= np.log(n) + 1e-12)


@settings(max_examples=30, deadline=None)
@given(score_rows)
def test_entropy_is_log_n_at_zero_scale_and_falls_with_scale(scores):
    n = scores.shape[-1]
    h = np.asarray(softmax_entropy(scores, np.array([0.0, 0.5, 1.0, 2.0])))
    np.testing.assert_allclose(h[0], np.log(n), atol=1e-12)
    assert np.all(np.diff(h, axis=0) <= 1e-9)


def test_matching_scale_inverts_the_entropy():
    s = attention_scores(jax.random.PRNGKey(0), "gaussian", 256, 16, queries=8)
    for target in (1.0, 3.0, 5.0):
        lam = matching_scale(s, target)
        assert abs(float(softmax_entropy(s, lam).mean()) - target) < 1e-6
    lam = matching_scale(s, 0.8, normalized=True)
    assert abs(float(softmax_entropy(s, lam).mean()) / np.log(256) - 0.8) < 1e-6


def test_unreachable_target_is_an_error():
    s = attention_scores(jax.random.PRNGKey(0), "gaussian", 16, 8, queries=4)
    with pytest.raises(ValueError, match="target"):
        matching_scale(s, np.log(16) + 1.0)  # above the maximum entropy log n


def test_score_models():
    key = jax.random.PRNGKey(1)
    sphere = attention_scores(key, "sphere", 512, 64, queries=4)
    assert sphere.shape == (4, 512) and np.all(np.abs(sphere) <= 64 + 1e-9)  # |q.k| <= |q||k| = d
    margin = attention_scores(key, "margin", 512, 64, queries=64, rho=0.5)
    gap = np.asarray(margin[:, 0] - margin[:, 1:].mean(axis=1))
    assert 0.3 * 64 < gap.mean() < 0.7 * 64  # key 0 stands about rho * d above the rest


@settings(max_examples=30, deadline=None)
@given(score_rows, st.data())
def test_prefix_terms_equal_the_terms_of_each_slice(scores, data):
    n = scores.shape[-1]
    lengths = data.draw(st.lists(st.integers(1, n), min_size=1, max_size=4))
    lams = data.draw(arrays(np.float64, (2, len(lengths)), elements=st.floats(0, 5)))
    t = prefix_entropy_terms(scores, lengths, lams)
    assert t.entropy.shape == (2, len(lengths), 3)
    for m, L in enumerate(lengths):
        ref = entropy_terms(scores[:, :L], lams[:, m])
        for got, want in zip(t, ref):
            np.testing.assert_allclose(got[:, m], want, atol=1e-12)
    same = prefix_entropy_terms(scores, lengths, lams[:, 0])  # (k,) scales: same at every length
    for m, L in enumerate(lengths):
        np.testing.assert_allclose(same.entropy[:, m], softmax_entropy(scores[:, :L], lams[:, 0]),
                                   atol=1e-12)


def test_matching_scales_agree_with_matching_scale_per_length():
    s = attention_scores(jax.random.PRNGKey(2), "margin", 1024, 16, queries=8)
    lengths = (16, 256, 1024, 1024)
    targets = np.array([0.7, 0.7, 0.7, 0.5])
    lam = matching_scales(s, lengths, targets, normalized=True)
    for L, r, got in zip(lengths, targets, lam):
        assert abs(got / matching_scale(s[:, :L], r, normalized=True) - 1) < 1e-8
        assert abs(float(softmax_entropy(s[:, :L], got).mean()) / np.log(L) - r) < 1e-6
    lam_abs = matching_scales(s, (256, 1024), 2.0)
    for L, got in zip((256, 1024), lam_abs):
        assert abs(float(softmax_entropy(s[:, :L], got).mean()) - 2.0) < 1e-6
    with pytest.raises(ValueError, match="targets"):
        matching_scales(s, (16, 1024), np.log(16) + 0.5)  # out of reach at n = 16


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: softmax_entropy(np.array([1.0, np.nan]), 1.0), ValueError, "scores"),
        (lambda: softmax_entropy(np.zeros((2, 0)), 1.0), ValueError, "scores"),
        (lambda: softmax_entropy(np.float64(1.0), 1.0), ValueError, "scores"),
        (lambda: softmax_entropy(np.ones(3), np.inf), ValueError, "scales"),
        (lambda: softmax_entropy(np.ones(3), np.ones((2, 2))), ValueError, "scales"),
        (lambda: softmax_entropy(["a", "b"], 1.0), TypeError, "scores"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "cauchy", 8, 4), ValueError, "model"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "gaussian", 0, 4), ValueError, "n"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "gaussian", 8, 2.5), TypeError, "d"),
        (lambda: attention_scores(jax.random.PRNGKey(0), "margin", 8, 4, rho=1.5), ValueError, "rho"),
        (lambda: matching_scale(np.ones((2, 4)), float("nan")), ValueError, "target"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (5,), 1.0), ValueError, "lengths"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (), 1.0), ValueError, "lengths"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (2.5,), 1.0), TypeError, "lengths"),
        (lambda: prefix_entropy_terms(np.ones((2, 4)), (2, 3), np.ones((1, 3))), ValueError,
         "scales"),
        (lambda: matching_scales(np.ones((2, 4)), (2, 3), np.ones(3)), ValueError, "targets"),
        (lambda: matching_scales(np.ones((2, 4)), (1, 3), 0.5, normalized=True), ValueError,
         "lengths"),
    ],
)
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("model", ["gaussian", "sphere", "margin"])
def test_scores_by_dim_with_one_dim_is_attention_scores(model):
    key = jax.random.PRNGKey(3)
    a = np.asarray(attention_scores_by_dim(key, model, 50, (12,), queries=4))
    b = np.asarray(attention_scores(key, model, 50, 12, queries=4))
    assert a.shape == (1, 4, 50)
    np.testing.assert_array_equal(a[0], b)


@settings(max_examples=5, deadline=None)
@given(st.lists(st.integers(1, 24), min_size=1, max_size=4, unique=True), st.integers(0, 2**31 - 1))
def test_scores_by_dim_margin_is_gaussian_plus_one_relevant_key(dims, seed):
    key = jax.random.PRNGKey(seed)
    g = np.asarray(attention_scores_by_dim(key, "gaussian", 9, dims, queries=3))
    m = np.asarray(attention_scores_by_dim(key, "margin", 9, dims, queries=3))
    assert g.shape == m.shape == (len(dims), 3, 9)
    np.testing.assert_array_equal(g[..., 1:], m[..., 1:])
    # nested in d: dimension d is the first d coordinates of the largest draw
    top = max(dims)
    full = np.asarray(attention_scores_by_dim(key, "gaussian", 9, (top,), queries=3))[0]
    np.testing.assert_allclose(g[dims.index(top)], full, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [(dict(dims=()), ValueError, "dims"), (dict(dims=(4, 4)), ValueError, "dims"),
     (dict(dims=(4, 0)), ValueError, "dims"), (dict(dims=(4.5,)), TypeError, "dims"),
     (dict(dims=5), TypeError, "dims"), (dict(dims=(4,), model="cube"), ValueError, "model"),
     (dict(dims=(4,), rho=2.0), ValueError, "rho")],
)
def test_scores_by_dim_checks_its_inputs(kwargs, exc, name):
    args = dict(model="gaussian", n=5) | kwargs
    with pytest.raises(exc, match=name):
        attention_scores_by_dim(jax.random.PRNGKey(0), args.pop("model"), args.pop("n"),
                                args.pop("dims"), **args)


# --- softmax_stats: the fused kernel -----------------------------------------------------------

def numpy_stats(scores, lam):
    """Float64 reference: logsumexp, entropy, Σp², max p, ½ Σ|J| for one scale, each (...)."""
    z = lam * np.asarray(scores, dtype=np.float64)
    z_max = z.max(axis=-1, keepdims=True)
    e = np.exp(z - z_max)
    total = e.sum(axis=-1, keepdims=True)
    p = e / total
    lse = z_max[..., 0] + np.log(total[..., 0])
    h = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)
    sum_p2 = (p * p).sum(axis=-1)
    return lse, h, sum_p2, p.max(axis=-1), abs(lam) * (1.0 - sum_p2)


stats_shapes = st.tuples(st.lists(st.integers(1, 4), max_size=2), st.integers(1, 40)).map(
    lambda t: (*t[0], t[1]))
stats_scores = stats_shapes.flatmap(lambda shape: arrays(np.float64, shape, elements=finite))
stats_scales = arrays(np.float64, st.integers(1, 4), elements=st.floats(-50, 50))  # λ·s down to -3000


@settings(max_examples=60, deadline=None)
@given(stats_scores, stats_scales)
def test_softmax_stats_match_numpy(scores, lams):
    got = softmax_stats(scores, lams)
    got32 = softmax_stats(scores, lams, dtype="float32")
    assert all(a.shape == (len(lams), *scores.shape[:-1]) for a in (*got, *got32))
    for k, lam in enumerate(lams):
        want = numpy_stats(scores, lam)
        for name, a, a32, w in zip(got._fields, got, got32, want):
            np.testing.assert_allclose(a[k], w, rtol=1e-12, atol=1e-11, err_msg=name)
            # float32 exponentials: about 1e-7 relative in each e, times |u| <= 3000 here
            np.testing.assert_allclose(a32[k], w, rtol=1e-6, atol=5e-4 if name == "entropy" else 1e-6,
                                       err_msg=f"{name} (float32)")


@pytest.mark.parametrize("shape", [(9, 4096), (7, 5000), (3, _STATS_BLOCK), (2, 2 * _STATS_BLOCK + 123),
                                   (_STATS_BLOCK + 1,)])
def test_softmax_stats_blocks_and_tails(shape):
    """Whole rows grouped into blocks with padding, long rows cut into pieces (whole blocks of
    pieces, pieces padded), and a remainder of columns."""
    scores = np.random.default_rng(0).normal(size=shape) * 8
    lams = np.array([-1.0, 0.0, 0.3, 2.0])
    got = softmax_stats(scores, lams)
    for k, lam in enumerate(lams):
        for name, a, w in zip(got._fields, got, numpy_stats(scores, lam)):
            np.testing.assert_allclose(a[k], w, rtol=1e-11, atol=1e-12, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: arrays(np.float64, (n,), elements=finite)), st.floats(-5, 5))
def test_jacobian_half_l1_is_one_minus_sum_p2(scores, lam):
    """½ Σ_ij |∂p_i/∂s_j| of p = softmax(λ s) equals |λ| (1 - Σ p²): checked on the explicit Jacobian."""
    jac = np.asarray(jax.jacobian(lambda s: jax.nn.softmax(lam * s))(scores))
    half_l1 = 0.5 * np.abs(jac).sum()
    got = softmax_stats(scores, lam)
    np.testing.assert_allclose(got.jacobian_half_l1[0], half_l1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.jacobian_half_l1[0], abs(lam) * (1 - got.sum_p2[0]), rtol=1e-14, atol=1e-15)
    assert 0.0 <= float(got.jacobian_half_l1[0]) <= abs(lam) * (1 - 1 / len(scores)) + 1e-12


@settings(max_examples=30, deadline=None)
@given(score_rows, scales)
def test_softmax_entropy_agrees_with_entropy_terms(scores, lams):
    np.testing.assert_allclose(softmax_entropy(scores, lams), entropy_terms(scores, lams).entropy,
                               rtol=1e-12, atol=1e-12)


def test_kernel_exp_coefficients_interpolate_at_chebyshev_nodes():
    """The kernel's c_0 … c_9 re-derived in 50-digit arithmetic: the degree-9 interpolant of
    q(r) = (e^r - 1 - r)/r² at the 10 Chebyshev nodes of [-ln2/2, ln2/2], rounded to float64;
    and 1 + r + r² q(r) with the rounded coefficients, evaluated exactly, is within 2e-17 of e^r
    (relative) on that interval."""
    import mpmath as mp

    with mp.workdps(50):
        a = mp.log(2) / 2
        q = lambda r: mp.nsum(lambda i: r**i / mp.factorial(i + 2), [0, mp.inf])
        nodes = [a * mp.cos(mp.pi * (2 * i + 1) / 20) for i in range(10)]
        coeffs = mp.lu_solve(mp.matrix([[x**j for j in range(10)] for x in nodes]), mp.matrix([q(x) for x in nodes]))
        assert tuple(float(c) for c in coeffs) == _EXP_COEFFS
        exact = [mp.mpf(c) for c in _EXP_COEFFS]
        grid = [a * i / 500 for i in range(-500, 501)]
        worst = max(abs((1 + r + r**2 * mp.polyval(exact[::-1], r)) / mp.exp(r) - 1) for r in grid)
    assert worst < 2e-17, float(worst)


def test_kernel_exp_is_within_an_ulp():
    u = np.concatenate([-np.linspace(0.0, 700.0, 200_001), -np.random.default_rng(1).exponential(3.0, 100_000)])
    got = np.asarray(jax.jit(_exp_nonpositive)(u))
    want = np.exp(u)
    assert np.max(np.abs(got - want) / np.spacing(want)) <= 1.0
    tiny = np.asarray(jax.jit(_exp_nonpositive)(np.array([-700.0, -745.0, -1e6])))
    assert np.all((tiny > 0) & (tiny <= np.exp(-700.0) * (1 + 1e-15)))  # clamped, never nan or inf


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"scores": np.array([1.0, np.inf])}, ValueError, "scores"),
        ({"scores": np.zeros((3, 0))}, ValueError, "scores"),
        ({"scores": np.float64(2.0)}, ValueError, "scores"),
        ({"scores": [["a"]]}, TypeError, "scores"),
        ({"scales": np.ones((2, 2))}, ValueError, "scales"),
        ({"scales": np.nan}, ValueError, "scales"),
        ({"scales": 1j}, TypeError, "scales"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"dtype": np.int32}, ValueError, "dtype"),
        ({"dtype": 3.5}, TypeError, "dtype"),
    ],
)
def test_softmax_stats_bad_input_names_the_argument(kwargs, error, name):
    args = {"scores": np.ones((2, 3)), "scales": 1.0, "dtype": "float64", **kwargs}
    with pytest.raises(error, match=name):
        softmax_stats(args.pop("scores"), args.pop("scales"), **args)


def test_softmax_stats_accepts_numpy_dtypes():
    s = np.random.default_rng(2).normal(size=(2, 9))
    a = softmax_stats(s, [0.5, 1.0], dtype=np.float32)
    b = softmax_stats(s, [0.5, 1.0], dtype="float32")
    np.testing.assert_array_equal(a.entropy, b.entropy)
