import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sulib.nets import mlp_apply, mlp_init

KEY = jax.random.key(0)


def test_shapes_and_zero_final_layer():
    params = mlp_init(KEY, (3, 16, 16, 2), final_scale=0.0)
    assert [w.shape for w, _ in params] == [(3, 16), (16, 16), (16, 2)]
    x = jax.random.normal(KEY, (5, 7, 3))
    assert mlp_apply(params, x).shape == (5, 7, 2)
    np.testing.assert_array_equal(np.asarray(mlp_apply(params, x)), 0.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 8), st.sampled_from(["silu", "relu", "tanh", "gelu"]))
def test_matches_explicit_layers(d_in, width, activation):
    params = mlp_init(jax.random.key(d_in * 10 + width), (d_in, width, 1))
    x = np.linspace(-2, 2, 4 * d_in).reshape(4, d_in)
    (w1, b1), (w2, b2) = params
    act = {"silu": jax.nn.silu, "relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu}[activation]
    expected = act(x @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(mlp_apply(params, x, activation=activation), expected, rtol=1e-12, atol=1e-12)


def test_gradient_flows_through_params_and_input():
    params = mlp_init(KEY, (2, 8, 1))
    x = jnp.ones((4, 2))
    g_p = jax.grad(lambda p: mlp_apply(p, x).sum())(params)
    g_x = jax.grad(lambda z: mlp_apply(params, z).sum())(x)
    assert all(np.all(np.isfinite(w)) for w, _ in g_p) and np.any(np.asarray(g_x) != 0)


@pytest.mark.parametrize("sizes, exc", [((3,), ValueError), ((3, 0, 1), ValueError), ((3, 2.5), TypeError), (5, TypeError)])
def test_bad_sizes(sizes, exc):
    with pytest.raises(exc, match="sizes"):
        mlp_init(KEY, sizes)


def test_bad_apply_inputs():
    params = mlp_init(KEY, (3, 4, 1))
    with pytest.raises(ValueError, match="x must have shape"):
        mlp_apply(params, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="activation"):
        mlp_apply(params, jnp.ones((2, 3)), activation="swish")
    with pytest.raises(TypeError, match="params"):
        mlp_apply([], jnp.ones((2, 3)))
    with pytest.raises(TypeError, match="key"):
        mlp_init(3, (3, 1))
