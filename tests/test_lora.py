"""Tests for sulib.lora: LoRA-GA, PiSSA and LoRA initialisations, the objectives, the toy runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib import lora

jax.config.update("jax_enable_x64", True)


def _gradient(seed, n, m):
    return np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (n, m)))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([4, 9]), m=st.sampled_from([5, 8]),
       assignment=st.sampled_from(lora.ASSIGNMENTS))
def test_ga_init_reaches_eckart_young_floor(seed, n, m, assignment):
    r = min(n, m) // 2
    G = _gradient(seed, n, m)
    A, B = lora.lora_ga_init(G, r, assignment=assignment)
    floor = lora.eckart_young_floor(G, 2 * r)
    obj = lora.one_step_objective(A, B, G)
    assert abs(obj - floor) <= 1e-10 * np.sum(G ** 2)
    # orthonormal factors
    assert np.allclose(A.T @ A, np.eye(r), atol=1e-12)
    assert np.allclose(B @ B.T, np.eye(r), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_no_random_factors_beat_the_floor(seed):
    n, m, r = 8, 7, 2
    G = _gradient(seed, n, m)
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed + 1))
    A = np.asarray(jax.random.normal(k1, (n, r)))
    B = np.asarray(jax.random.normal(k2, (r, m)))
    assert lora.one_step_objective(A, B, G) >= lora.eckart_young_floor(G, 2 * r) * (1 - 1e-12)


def test_wrong_assignment_is_worse():
    """Mutation: taking singular vectors 2r…3r instead of r…2r must raise the objective."""
    G = _gradient(0, 10, 9)
    U, s, Vt = np.linalg.svd(G)
    r = 2
    good = lora.one_step_objective(U[:, :r], Vt[r:2 * r], G)
    bad = lora.one_step_objective(U[:, :r], Vt[2 * r:3 * r], G)
    assert bad > good + 0.5 * s[2 * r - 1] ** 2


def test_scaled_init_objective():
    """‖c²P − G‖² = (c² − 1)²‖P‖² + ‖G − P‖²."""
    G = _gradient(1, 9, 8)
    r = 2
    A, B = lora.lora_ga_init(G, r, scale=0.7)
    U, s, Vt = np.linalg.svd(G)
    P2 = np.sum(s[:2 * r] ** 2)
    expected = (0.49 - 1) ** 2 * P2 + lora.eckart_young_floor(G, 2 * r)
    assert abs(lora.one_step_objective(A, B, G) - expected) < 1e-10 * expected


def test_pissa_reconstructs_top_r():
    W0 = _gradient(2, 8, 6)
    A, B = lora.pissa_init(W0, 3)
    U, s, Vt = np.linalg.svd(W0)
    assert np.allclose(A @ B, (U[:, :3] * s[:3]) @ Vt[:3], atol=1e-12)


def test_lora_init_shapes_and_zero():
    A, B = lora.lora_init(jax.random.PRNGKey(0), 6, 5, 2)
    assert A.shape == (6, 2) and B.shape == (2, 5)
    assert np.all(np.asarray(A) == 0) and np.any(np.asarray(B) != 0)


def test_sign_objective_matches_numpy():
    G = _gradient(3, 7, 6)
    k1, k2 = jax.random.split(jax.random.PRNGKey(4))
    A = np.asarray(jax.random.normal(k1, (7, 2)))
    B = np.asarray(jax.random.normal(k2, (2, 6)))
    ref = np.sum((A @ np.sign(A.T @ G) + np.sign(G @ B.T) @ B - np.sign(G)) ** 2)
    assert abs(lora.sign_objective(A, B, G) - ref) < 1e-10 * ref
    zero = lora.sign_objective(np.zeros((7, 2)), np.zeros((2, 6)), G)
    assert zero == G.size


def test_minimize_objective_reaches_floor():
    G = _gradient(5, 10, 8)
    A, B = lora.minimize_objective(jax.random.PRNGKey(0), G, 2, steps=800, lr=0.02)
    floor = lora.eckart_young_floor(G, 4)
    obj = lora.one_step_objective(A, B, G)
    assert floor * (1 - 1e-9) <= obj < floor * 1.01


def test_minimize_sign_objective_improves_on_zero():
    G = _gradient(6, 12, 10)
    A, B = lora.minimize_objective(jax.random.PRNGKey(1), G, 2, objective="sign", steps=300,
                                   lr=0.03, tau=0.05)
    assert lora.sign_objective(A, B, G) < 0.9 * G.size


def _toy(seed=0, n=8):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    W0 = jax.random.normal(k[0], (n, n)) / np.sqrt(n)
    W_star = W0 + jax.random.normal(k[1], (n, n)) / n
    Q = jnp.linalg.qr(jax.random.normal(k[2], (n, n)))[0]
    Sigma = (Q * jnp.linspace(1.0, 0.2, n)) @ Q.T
    return W0, W_star, Sigma


def test_first_lora_ga_step_matches_full_step_direction():
    """SGD with LoRA-GA at full rank (2r = n): the first step is −η G to first order in η."""
    W0, W_star, Sigma = _toy()
    G = np.asarray(Sigma @ (W0 - W_star))
    A, B = lora.lora_ga_init(G, 4)
    res = lora.train_lora(W0, W_star, Sigma, A, B, lr=1e-6, steps=2)
    assert float(res.cosine[0]) > 1 - 1e-6


def test_train_grid_matches_single_runs():
    W0, W_star, Sigma = _toy(1)
    A, B = lora.lora_init(jax.random.PRNGKey(0), 8, 8, 2)
    lrs = np.array([0.05, 0.2])
    grid = lora.train_lora(W0, W_star, Sigma, A, B, lr=lrs, steps=20, optimizer="adam")
    one = lora.train_lora(W0, W_star, Sigma, A, B, lr=0.2, steps=20, optimizer="adam")
    assert grid.loss.shape == (2, 21) and grid.cosine.shape == (2, 20)
    assert np.allclose(grid.loss[1], one.loss, rtol=1e-10)
    full = lora.train_full(W0, W_star, Sigma, lr=lrs, steps=20)
    assert full.shape == (2, 21) and float(full[1, -1]) < float(full[1, 0])
    # the loss at step 0 is the loss at W0 for every initialisation
    ref = 0.5 * np.sum((W0 - W_star) * (Sigma @ (W0 - W_star)))
    assert abs(float(one.loss[0]) - ref) < 1e-12 * ref


def test_bad_inputs_name_the_argument():
    G = _gradient(0, 6, 5)
    with pytest.raises(ValueError, match="rank"):
        lora.lora_ga_init(G, 3)
    with pytest.raises(ValueError, match="assignment"):
        lora.lora_ga_init(G, 1, assignment="left")
    with pytest.raises(ValueError, match="G must be a matrix"):
        lora.lora_ga_init(G[0], 1)
    with pytest.raises(ValueError, match="G contains non-finite"):
        lora.one_step_objective(np.zeros((6, 1)), np.zeros((1, 5)), G * np.nan)
    with pytest.raises(ValueError, match="A must have 6 rows"):
        lora.one_step_objective(np.zeros((5, 1)), np.zeros((1, 5)), G)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        lora.sign_objective(np.zeros((6, 1)), np.zeros((2, 5)), G)
    with pytest.raises(TypeError, match="rank must be an int"):
        lora.pissa_init(G, 1.5)
    with pytest.raises(ValueError, match="objective"):
        lora.minimize_objective(jax.random.PRNGKey(0), G, 1, objective="adam")
    with pytest.raises(ValueError, match="k must be"):
        lora.eckart_young_floor(G, 6)
    W0, W_star, Sigma = _toy()
    A, B = lora.lora_init(jax.random.PRNGKey(0), 8, 8, 2)
    with pytest.raises(ValueError, match="lr must be > 0"):
        lora.train_lora(W0, W_star, Sigma, A, B, lr=-1.0, steps=3)
    with pytest.raises(ValueError, match="optimizer"):
        lora.train_full(W0, W_star, Sigma, lr=0.1, steps=3, optimizer="lion")
    with pytest.raises(ValueError, match="Sigma must be"):
        lora.train_full(W0, W_star, Sigma[:3], lr=0.1, steps=3)
    tilted = np.asarray(Sigma).copy()
    tilted[0, 1] += 1e-3
    with pytest.raises(ValueError, match="Sigma must be symmetric"):
        lora.train_lora(W0, W_star, tilted, A, B, lr=0.1, steps=3)
    with pytest.raises(ValueError, match="Sigma must be positive semi-definite"):
        lora.train_full(W0, W_star, -np.asarray(Sigma), lr=0.1, steps=3)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        lora.lora_init(0, 6, 5, 2)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        lora.minimize_objective(np.zeros(3, np.uint32), G, 1)
    lora.lora_init(jax.random.key(0), 6, 5, 2)      # a typed key is accepted
    with pytest.raises(ValueError, match="A0 and B0 must be given together"):
        lora.first_step(G, 0.1, A0=np.zeros((6, 1)))
    with pytest.raises(ValueError, match="lr must be > 0"):
        lora.first_step(G, 0.0)


def test_adam_first_full_step_is_sign_step():
    """The premise of the sign objective: Adam's first step is −lr·sign(G), up to optax's ε."""
    G = _gradient(2, 9, 7)
    lr, eps = 0.01, 1e-8
    step = np.asarray(lora.first_step(G, lr, optimizer="adam"))
    # −lr g/(|g| + ε) differs from −lr sign(g) by lr ε/(|g| + ε), plus rounding of a division
    bound = lr * (eps / np.abs(G).min() + 8 * np.finfo(float).eps)
    assert np.abs(step + lr * np.sign(G)).max() < bound
    # the SGD step is −lr G, which is not a sign step: the check above can fail
    sgd = np.asarray(lora.first_step(G, lr, optimizer="sgd"))
    assert np.abs(sgd + lr * G).max() < 8 * np.finfo(float).eps * lr * np.abs(G).max()
    assert np.abs(sgd + lr * np.sign(G)).max() > 0.1 * lr


@pytest.mark.parametrize("s", [1.0, 2.0])
def test_lora_adam_first_step_is_the_sign_objectives_step(s):
    """LoRA + Adam, first step: ΔW = −lr s (A sign(AᵀG) + sign(GBᵀ) B) + s lr² sign(GBᵀ) sign(AᵀG)."""
    G = _gradient(7, 8, 6)
    k1, k2 = jax.random.split(jax.random.PRNGKey(8))
    A = np.asarray(jax.random.normal(k1, (8, 2)))
    B = np.asarray(jax.random.normal(k2, (2, 6)))
    lr = 0.05
    Sa, Sb = np.sign(G @ B.T), np.sign(A.T @ G)
    expected = -lr * s * (A @ Sb + Sa @ B) + s * lr ** 2 * Sa @ Sb
    step = np.asarray(lora.first_step(G, lr, A0=A, B0=B, optimizer="adam", s=s))
    smallest = min(np.abs(G @ B.T).min(), np.abs(A.T @ G).min()) * s
    bound = 4 * lr * s * (np.abs(A).sum(1).max() + np.abs(B).sum(0).max()) * 1e-8 / smallest
    assert np.abs(step - expected).max() < bound + 1e-14
    # the SGD first-order step of the post is a different matrix: the check above can fail
    assert np.abs(step + lr * s ** 2 * (A @ A.T @ G + G @ B.T @ B)).max() > 10 * bound


@pytest.mark.parametrize("s", [1.0, 2.0])
@pytest.mark.parametrize("optimizer", lora.OPTIMIZERS)
def test_first_step_matches_the_training_runs(optimizer, s):
    """first_step (chain rule by hand) against step 1 of train_lora / train_full (jax.grad), with
    the LoRA multiplier s = 1 and s = 2 (under SGD the factor gradients carry s, so s = 2 catches
    a dropped s; Adam's first step sees s only through optax's ε)."""
    W0, W_star, Sigma = _toy(3)
    G = np.asarray(Sigma @ (W0 - W_star))
    A, B = lora.lora_ga_init(G, 2, scale=0.5)
    lr = 0.03

    def loss(W):
        return 0.5 * np.sum((W - W_star) * (Sigma @ (W - W_star)))

    run = lora.train_lora(W0, W_star, Sigma, A, B, lr=lr, steps=1, optimizer=optimizer, s=s)
    one = loss(W0 + np.asarray(lora.first_step(G, lr, A0=A, B0=B, optimizer=optimizer, s=s)))
    assert abs(float(run.loss[1]) - one) < 1e-12 * loss(W0)
    full = lora.train_full(W0, W_star, Sigma, lr=lr, steps=1, optimizer=optimizer)
    one = loss(W0 + np.asarray(lora.first_step(G, lr, optimizer=optimizer)))
    assert abs(float(full[1]) - one) < 1e-12 * loss(W0)


def test_plain_lora_first_cosine_is_known():
    """A0 = 0: B does not move, A1 = −η G B0ᵀ, so ΔW = −η G B0ᵀB0 exactly and its cosine with −G
    is ⟨G B0ᵀB0, G⟩ / (‖G B0ᵀB0‖ ‖G‖)."""
    W0, W_star, Sigma = _toy(4)
    G = np.asarray(Sigma @ (W0 - W_star))
    A, B = lora.lora_init(jax.random.PRNGKey(9), 8, 8, 3)
    B = np.asarray(B)
    P = G @ B.T @ B
    expected = np.sum(P * G) / (np.linalg.norm(P) * np.linalg.norm(G))
    res = lora.train_lora(W0, W_star, Sigma, A, B, lr=0.4, steps=1)
    assert 0 < expected < 0.99                      # not trivially aligned
    assert abs(float(res.cosine[0]) - expected) < 1e-12


@pytest.mark.parametrize("seed", [0, 11, 12])
def test_sign_minimiser_beats_both_svd_options(seed):
    """Option 2 of the post (minimise the sign objective) is below options 1 and 3 on it."""
    G = _gradient(seed, 32, 24)
    r = 3
    A, B = lora.minimize_objective(jax.random.PRNGKey(5), G, r, objective="sign", steps=400,
                                   lr=0.03, tau=0.05)
    brute = lora.sign_objective(A, B, G)
    svd_g = lora.sign_objective(*lora.lora_ga_init(G, r), G)
    svd_sign = lora.sign_objective(*lora.lora_ga_init(np.sign(G), r), G)
    assert brute < min(svd_g, svd_sign)
