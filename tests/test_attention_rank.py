import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.attention_rank import (attention_matrix, rank_measures, stack_residuals,
                                  triangular_logdet)

jax.config.update("jax_enable_x64", True)

entries = st.floats(-4, 4, allow_nan=False, allow_infinity=False)
qk = st.tuples(st.integers(1, 10), st.integers(1, 6)).flatmap(
    lambda s: st.tuples(arrays(np.float64, s, elements=entries),
                        arrays(np.float64, s, elements=entries)))
scales = st.floats(0.05, 3.0)


@settings(max_examples=40, deadline=None)
@given(qk, scales)
def test_causal_softmax_is_stochastic_lower_triangular_with_positive_diagonal(pair, lam):
    q, k = pair
    a = np.asarray(attention_matrix(q, k, mask="causal", scale=lam))
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(np.triu(a, 1) == 0)
    assert np.all(np.diag(a) > 0)
    ld = triangular_logdet(a)
    assert float(ld.sign) == 1.0
    np.testing.assert_allclose(float(ld.logabsdet), np.log(np.diag(a)).sum(), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(qk, scales)
def test_anticausal_is_the_upper_triangular_mirror(pair, lam):
    q, k = pair
    a = np.asarray(attention_matrix(q, k, mask="anticausal", scale=lam))
    b = np.asarray(attention_matrix(q[::-1], k[::-1], mask="causal", scale=lam))
    np.testing.assert_allclose(a, b[::-1, ::-1], rtol=1e-12, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(qk, st.sampled_from(["elu1", "exp"]))
def test_causal_linear_positive_feature_has_positive_diagonal(pair, feature):
    q, k = pair
    a = np.asarray(attention_matrix(q, k, kind="linear", mask="causal", feature=feature))
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(np.triu(a, 1) == 0) and np.all(np.diag(a) > 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2 ** 31 - 1))
def test_bidirectional_linear_rank_at_most_d(d, seed):
    rng = np.random.default_rng(seed)
    n = 12
    q, k = rng.normal(size=(2, n, d))
    m = rank_measures(attention_matrix(q, k, kind="linear"), rtol=1e-9)
    assert int(m.numerical_rank) <= d
    s = np.asarray(m.singular_values)
    assert s[d:].max() < 1e-12 * s[0]


def test_relu_feature_can_zero_the_diagonal():
    q = np.array([[1.0, 0.0], [1.0, 0.0]])
    k = np.array([[1.0, 0.0], [-1.0, 0.0]])
    a = np.asarray(attention_matrix(q, k, kind="linear", mask="causal", feature="relu"))
    np.testing.assert_allclose(a, [[1.0, 0.0], [1.0, 0.0]])
    assert float(triangular_logdet(a).sign) == 0.0


def test_softmax_matches_a_direct_formula():
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(2, 7, 3))
    s = q @ k.T / np.sqrt(3)
    e = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(attention_matrix(q, k), e / e.sum(1, keepdims=True), rtol=1e-12)
    e = np.tril(np.exp(s))
    np.testing.assert_allclose(attention_matrix(q, k, mask="causal"),
                               e / e.sum(1, keepdims=True), rtol=1e-12)


def test_rank_measures_on_known_matrices():
    m = rank_measures(np.diag([4.0, 2.0, 1.0, 1e-9]), rtol=1e-6)
    np.testing.assert_allclose(m.singular_values, [4, 2, 1, 1e-9])
    assert int(m.numerical_rank) == 3
    np.testing.assert_allclose(float(m.stable_rank), (16 + 4 + 1 + 1e-18) / 16)
    np.testing.assert_allclose(float(m.condition), 4e9)
    eq = rank_measures(np.eye(5))
    np.testing.assert_allclose(float(eq.entropy_rank), 5.0, rtol=1e-12)
    one = rank_measures(np.ones((4, 6)))
    np.testing.assert_allclose(float(one.entropy_rank), 1.0, rtol=1e-9)
    assert int(one.numerical_rank) == 1


def test_triangular_logdet_at_scale_and_upper():
    diag = 1.0 / np.arange(1, 501)
    a = np.tril(np.full((500, 500), 0.3)) + np.diag(diag - 0.3)
    ld = triangular_logdet(a)
    assert np.linalg.det(a) == 0.0                       # underflows
    np.testing.assert_allclose(float(ld.logabsdet), np.log(diag).sum(), rtol=1e-12)
    ld_u = triangular_logdet(np.diag([-2.0, 3.0]) + np.array([[0, 5.0], [0, 0]]))
    assert float(ld_u.sign) == -1.0
    np.testing.assert_allclose(float(ld_u.logabsdet), np.log(6.0))


def test_stack_residuals_collapse_without_skip():
    rng = np.random.default_rng(0)
    n, d, layers = 32, 16, 12
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(2, layers, d, d)) / np.sqrt(d)
    r = np.asarray(stack_residuals(x, w[0], w[1]))
    assert r.shape == (layers + 1,) and r[-1] < 1e-3 * r[0]
    r_skip = np.asarray(stack_residuals(x, w[0], w[1], skip=True))
    assert r_skip[-1] > 0.1 * r_skip[0]


def test_stack_residuals_causal_mask_slows_the_collapse():
    # a mask that were ignored would give the bidirectional (doubly exponential) collapse
    rng = np.random.default_rng(0)
    n, d, layers = 32, 16, 12
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(2, layers, d, d)) / np.sqrt(d)
    r_bi = np.asarray(stack_residuals(x, w[0], w[1], mask="none"))
    r_ca = np.asarray(stack_residuals(x, w[0], w[1], mask="causal"))
    assert r_ca[-1] > 1e3 * r_bi[-1]
    assert r_ca[-1] < 0.1 * r_ca[0]                      # but it still collapses


@pytest.mark.parametrize("call, exc, word", [
    (lambda: attention_matrix(np.ones((3, 2)), np.ones((4, 2))), ValueError, "k"),
    (lambda: attention_matrix(np.ones(3), np.ones(3)), ValueError, "q"),
    (lambda: attention_matrix(np.ones((3, 2)), np.ones((3, 2)), kind="x"), ValueError, "kind"),
    (lambda: attention_matrix(np.ones((3, 2)), np.ones((3, 2)), mask="x"), ValueError, "mask"),
    (lambda: attention_matrix(np.ones((3, 2)), np.ones((3, 2)), scale=-1.0), ValueError,
     "scale"),
    (lambda: attention_matrix(np.ones((3, 2)), np.ones((3, 2)), feature="x"), ValueError,
     "feature"),
    (lambda: attention_matrix([["a"]], [["a"]]), TypeError, "q"),
    (lambda: triangular_logdet(np.ones((3, 3))), ValueError, "triangular"),
    (lambda: triangular_logdet(np.ones((3, 2))), ValueError, "square"),
    (lambda: rank_measures(np.zeros((3, 3))), ValueError, "all-zero"),
    (lambda: rank_measures(np.eye(3), rtol=2.0), ValueError, "rtol"),
    (lambda: rank_measures(np.eye(3), rtol=True), TypeError, "rtol"),
    (lambda: triangular_logdet(np.eye(3, dtype=bool)), TypeError, "a"),
    (lambda: attention_matrix(np.ones((2, 2), bool), np.ones((2, 2))), TypeError, "q"),
    (lambda: attention_matrix(1e200 * np.ones((2, 2)), np.ones((2, 2))), ValueError,
     "overflow"),
    (lambda: rank_measures(np.array([[np.nan]])), ValueError, "a"),
    (lambda: stack_residuals(np.ones((4, 2)), np.ones((1, 3, 3)), np.ones((1, 3, 3))),
     ValueError, "w_qk"),
    (lambda: stack_residuals(np.ones((4, 2)), np.ones((1, 2, 2)), np.ones((2, 2, 2))),
     ValueError, "w_v"),
    (lambda: stack_residuals(np.ones((4, 2)), np.ones((1, 2, 2)), np.ones((1, 2, 2)),
                             skip=1), TypeError, "skip"),
])
def test_input_checks_name_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()
