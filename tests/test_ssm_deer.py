"""sulib.ssm.deer: parallel sweeps for nonlinear recurrences.

Against the DEER authors' code (fixture tests/data/deer_reference.npz, made by
tests/data/make_deer_fixture.py; see tests/data/README.md): their GRU (equinox's GRUCell, as in
their demo) and a tanh RNN, sweep by sweep. Properties for random small systems: every method
reproduces the first n states after n sweeps (any linear part, any starting guess), Newton's
fixed point is the sequential scan, damping and clipping keep the fixed point. Bad input is
rejected with an error naming the argument.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.ssm.deer import (
    GRU,
    GRU_TORCH,
    METHODS,
    TANH_RNN,
    Cell,
    GRUParams,
    affine_scan,
    deer_solve,
    deer_sweep,
    diagonal_scan,
    gru_cell,
    gru_params,
    jacobians,
    rnn_sequential,
    sweep_flops,
    tanh_rnn_cell,
)
from sulib.ssm.deer import _real_flops  # the counter behind sweep_flops
from sulib.ssm.flops import jaxpr_flops

jax.config.update("jax_enable_x64", True)

FIXTURE = Path(__file__).parent / "data" / "deer_reference.npz"
# float64 rounding of a few hundred sweeps of O(1) states: measured 4e-16 (tanh) and 4e-16 (GRU)
TOL = 1e-12


@pytest.fixture(scope="module")
def ref():
    return np.load(FIXTURE)


def torch_params(ref) -> GRUParams:
    """equinox's GRUCell weights (gates stacked in the order reset, update, new) as GRUParams."""
    W, U, b = ref["gru_weight_ih"], ref["gru_weight_hh"], ref["gru_bias"]
    n = U.shape[1]
    r, z, h = slice(0, n), slice(n, 2 * n), slice(2 * n, 3 * n)
    return GRUParams(Wz=W[z], Uz=U[z], bz=b[z], Wr=W[r], Ur=U[r], br=b[r], Wh=W[h], Uh=U[h],
                     bh=b[h], bh_inner=ref["gru_bias_n"])


def random_tanh(seed, N, T, radius=0.9, sigma=1.0):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(N, N))
    A = radius * G / max(np.abs(np.linalg.eigvals(G)).max(), 1e-12)
    return A, sigma * rng.normal(size=(T, N)), rng.normal(size=N) * 0.5


# ------------------------------------------------------------------- against DEER's code


def test_fixture_records_its_source(ref):
    assert str(ref["commit"]) == "409140ff98d2426e49090e3552a63da10d9cd6dc"
    assert "fseq1d" in str(ref["source"])


def test_gru_torch_is_deers_gru_and_newton_sweeps_are_deers_iterates(ref):
    p = torch_params(ref)
    for k in range(ref["gru_x"].shape[1]):
        x, h0 = ref["gru_x"][:, k], ref["gru_h0"][k]
        seq = np.asarray(rnn_sequential(GRU_TORCH, p, x, h0))
        np.testing.assert_allclose(seq, ref["gru_sequential"][:, k], rtol=0, atol=TOL)
        res = deer_solve(GRU_TORCH, p, x, h0, return_iterates=True)
        assert res.converged and res.residual < TOL
        np.testing.assert_allclose(res.states, seq, rtol=0, atol=TOL)
        # DEER's output is its last iterate, which it stopped at its own (looser) tolerance
        its = np.asarray(res.iterates)
        gap = np.abs(its[:res.n_sweeps] - ref["gru_deer"][None, :, k]).max(axis=(1, 2))
        assert gap.min() < TOL
    n = int(ref["gru_n_iter"])
    res = deer_solve(GRU_TORCH, p, ref["gru_x"][:, 0], ref["gru_h0"][0], return_iterates=True)
    np.testing.assert_allclose(np.asarray(res.iterates)[:n], ref["gru_iterates"], rtol=0,
                               atol=TOL)


def test_tanh_newton_sweeps_are_deers_iterates(ref):
    A, u, y0 = ref["tanh_A"], ref["tanh_u"], ref["tanh_y0"]
    res = deer_solve(TANH_RNN, A, u, y0, return_iterates=True)
    n = int(ref["tanh_n_iter"])
    np.testing.assert_allclose(np.asarray(res.iterates)[:n], ref["tanh_iterates"], rtol=0,
                               atol=TOL)
    np.testing.assert_allclose(res.states, ref["tanh_sequential"], rtol=0, atol=TOL)
    np.testing.assert_allclose(rnn_sequential(TANH_RNN, A, u, y0), ref["tanh_sequential"],
                               rtol=0, atol=TOL)


@pytest.mark.parametrize("system", ["gru", "tanh"])
def test_deers_iteration_count_follows_from_our_steps(ref, system):
    # DEER stops at the first iterate with |y_n - y_(n-1)| <= 1e-6 + 1e-4 |y_n| everywhere
    if system == "gru":
        args = (GRU_TORCH, torch_params(ref), ref["gru_x"][:, 0], ref["gru_h0"][0])
    else:
        args = (TANH_RNN, ref["tanh_A"], ref["tanh_u"], ref["tanh_y0"])
    res = deer_solve(*args, return_iterates=True)
    its = np.concatenate([np.broadcast_to(args[3], (1,) + res.states.shape),
                          np.asarray(res.iterates)[:res.n_sweeps]])
    ok = [np.all(np.abs(its[n] - its[n - 1]) <= 1e-6 + 1e-4 * np.abs(its[n]))
          for n in range(1, len(its))]
    assert ok.index(True) + 1 == int(ref[f"{system}_n_iter"])


# ---------------------------------------------------------------------------- properties


@st.composite
def small_systems(draw):
    N = draw(st.sampled_from([1, 3]))
    seed = draw(st.integers(0, 2**32 - 1))
    radius = draw(st.floats(0.1, 1.5))
    sigma = draw(st.floats(0.1, 2.0))
    method = draw(st.sampled_from(METHODS))
    damping = draw(st.sampled_from([0.0, 0.5]))
    A, u, h0 = random_tanh(seed, N, 7, radius, sigma)
    rng = np.random.default_rng(seed + 1)
    guess = draw(st.sampled_from([None, rng.normal(size=(7, N))]))
    return A, u, h0, method, damping, guess


@settings(max_examples=40, deadline=None)
@given(small_systems())
def test_sweep_n_is_exact_on_the_first_n_states(system):
    A, u, h0, method, damping, guess = system
    T = u.shape[0]
    extra = {"A": A.T * 0.7} if method == "fixed" else {}  # any linear part will do
    res = deer_solve(TANH_RNN, A, u, h0, method=method, damping=damping, guess=guess, tol=0.0,
                     max_sweeps=T, return_iterates=True, **extra)
    seq = np.asarray(rnn_sequential(TANH_RNN, A, u, h0))
    its = np.asarray(res.iterates)[:res.n_sweeps]
    finite = np.isfinite(its)
    scale = 1 + np.abs(its[finite]).max()  # cancellation among large intermediate iterates
    for n in range(1, len(its) + 1):
        assert np.abs(its[n - 1, :n] - seq[:n]).max() <= 1e-13 * scale
    if res.n_sweeps == T:  # did not stop early on a non-finite iterate
        assert np.abs(its[-1] - seq).max() <= 1e-13 * scale


def test_newton_needs_a_handful_of_sweeps_at_n_32_too():
    # the chapter measures N = 6 and 16 (three systems each, radius 0.9, T = 256); N = 32 here
    for seed in range(3):
        g = np.random.default_rng(100 + seed).standard_normal((32, 32))
        A = 0.9 * g / np.abs(np.linalg.eigvals(g)).max()
        u = 0.5 * np.random.default_rng(200 + seed).standard_normal((256, 32))
        res = deer_solve(TANH_RNN, A, u, np.zeros(32))
        assert res.converged and res.n_sweeps <= 8  # measured 6, 6, 6


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 3]), st.floats(0.0, 0.95))
def test_newton_fixed_point_is_the_sequential_scan(seed, N, radius):
    T = 40
    A, u, h0 = random_tanh(seed, N, T, radius)
    res = deer_solve(TANH_RNN, A, u, h0)
    # contracting: far fewer sweeps than the T that any linear part needs at worst (measured
    # at most 14 over 600 random systems of this kind)
    assert res.converged and res.n_sweeps <= T // 2
    np.testing.assert_allclose(res.states, rnn_sequential(TANH_RNN, A, u, h0), rtol=0, atol=TOL)


def test_scans_agree_with_a_loop():
    rng = np.random.default_rng(0)
    T, N = 37, 4
    M, b, h0 = rng.normal(size=(T, N, N)) * 0.4, rng.normal(size=(T, N)), rng.normal(size=N)
    a = rng.normal(size=(T, N)) + 1j * rng.normal(size=(T, N))
    h, hd, dense, diag = h0, h0.astype(complex), [], []
    for t in range(T):
        h = M[t] @ h + b[t]
        hd = a[t] * hd + b[t]
        dense.append(h)
        diag.append(hd)
    np.testing.assert_allclose(affine_scan(M, b, h0), dense, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(diagonal_scan(a, b.astype(complex), h0), diag, rtol=1e-12,
                               atol=1e-12)


def test_cells_and_their_jacobians():
    A, u, _ = random_tanh(3, 4, 5)
    hs = np.random.default_rng(4).normal(size=(5, 4))
    auto = jacobians(Cell(tanh_rnn_cell), A, u, hs)
    np.testing.assert_allclose(jacobians(TANH_RNN, A, u, hs), auto, rtol=0, atol=1e-14)
    # the post's A_t = sech²(A h + u) ∘ A: row t scaled
    s = 1 - np.tanh(hs @ A.T + u) ** 2
    np.testing.assert_allclose(auto, s[:, :, None] * A[None], rtol=0, atol=1e-14)
    np.testing.assert_allclose(jacobians(TANH_RNN, A, u, hs, diagonal=True),
                               np.diagonal(auto, axis1=1, axis2=2), rtol=0, atol=1e-14)
    p = gru_params(jax.random.PRNGKey(0), 4, 3)
    h, x = hs[0], np.ones(3)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    P = [np.asarray(w) for w in p]
    z = sig(P[0] @ x + P[1] @ h + P[2])
    r = sig(P[3] @ x + P[4] @ h + P[5])
    cand = np.tanh(P[6] @ x + P[7] @ (r * h) + P[8])
    np.testing.assert_allclose(gru_cell(h, x, p), (1 - z) * h + z * cand, rtol=0, atol=1e-14)
    bound = 1 / np.sqrt(4)
    assert all(np.abs(w).max() <= bound for w in P)
    assert P[0].shape == (4, 3) and P[1].shape == (4, 4) and P[9].shape == (4,)


def test_methods_agree_on_the_fixed_point_and_quasi_is_newton_for_diagonal_A():
    A, u, h0 = random_tanh(5, 3, 40, radius=0.8, sigma=0.5)
    seq = np.asarray(rnn_sequential(TANH_RNN, A, u, h0))
    for method in METHODS:
        for damping in (0.0, 1.0):
            extra = {"A": A} if method == "fixed" else {}
            res = deer_solve(TANH_RNN, A, u, h0, method=method, damping=damping, **extra)
            assert res.converged
            np.testing.assert_allclose(res.states, seq, rtol=0, atol=1e-10)
    D = np.diag(np.diagonal(A))
    newton = deer_solve(TANH_RNN, D, u, h0, return_iterates=True)
    quasi = deer_solve(TANH_RNN, D, u, h0, method="quasi", return_iterates=True)
    assert newton.n_sweeps == quasi.n_sweeps
    np.testing.assert_allclose(newton.iterates, quasi.iterates, rtol=0, atol=1e-14)


def test_input_method_is_the_jacobian_at_zero_and_its_first_sweep_is_newtons():
    A, u, _ = random_tanh(6, 3, 20)
    h0 = np.zeros(3)
    one = deer_sweep(TANH_RNN, A, u, h0, np.zeros((20, 3)), method="input")
    np.testing.assert_allclose(one, deer_sweep(TANH_RNN, A, u, h0, np.zeros((20, 3))),
                               rtol=0, atol=1e-14)
    res = deer_solve(TANH_RNN, A, u, h0, method="input", return_iterates=True)
    np.testing.assert_allclose(res.iterates[0], one, rtol=0, atol=1e-14)


def test_prefix_gives_the_sweeps_of_every_shorter_problem():
    A, u, h0 = random_tanh(7, 3, 60, radius=1.3, sigma=0.3)
    long = deer_solve(TANH_RNN, A, u, h0, method="quasi", tol=1e-10, max_sweeps=61)
    for t in (5, 30, 60):
        short = deer_solve(TANH_RNN, A, u[:t], h0, method="quasi", tol=1e-10, max_sweeps=61)
        assert short.n_sweeps == int(np.argmax(long.prefix >= t)) + 1


def test_overflow_stops_the_iteration_and_clipping_rescues_it():
    A, u, h0 = random_tanh(0, 8, 1024, radius=5.0)
    h0 = np.zeros(8)
    plain = deer_solve(TANH_RNN, A, u, h0)
    assert not plain.converged and plain.n_sweeps == 1 and np.isinf(plain.steps[0])
    clipped = deer_solve(TANH_RNN, A, u, h0, clip=1e8)
    assert clipped.converged
    np.testing.assert_allclose(clipped.states, rnn_sequential(TANH_RNN, A, u, h0), rtol=0,
                               atol=1e-8)  # rounding amplified over 1024 steps of |A| ~ 5


def test_gru_cells_run_under_every_method():
    p = gru_params(jax.random.PRNGKey(1), 3, 2)
    x = np.random.default_rng(8).normal(size=(30, 2))
    h0 = np.zeros(3)
    for cell, methods in ((GRU, METHODS), (GRU_TORCH, ("newton",))):
        seq = np.asarray(rnn_sequential(cell, p, x, h0))
        for method in methods:
            extra = {"A": 0.5 * (np.eye(3) + 0.5 * np.asarray(p.Uh))} if method == "fixed" else {}
            res = deer_solve(cell, p, x, h0, method=method, **extra)
            assert res.converged
            np.testing.assert_allclose(res.states, seq, rtol=0, atol=1e-10)


def test_real_flops_counts_complex_arithmetic_in_real_operations():
    z, x = np.ones(5, complex), np.ones(5)
    assert _real_flops(lambda a: a * a, z) == 6 * 5  # (a + bi)(c + di): 4 mul + 2 add
    assert _real_flops(lambda a: a + a, z) == 2 * 5
    assert _real_flops(lambda a: a / a, z) == 11 * 5
    M, v = np.ones((3, 4), complex), np.ones(4, complex)
    assert _real_flops(lambda m, w: m @ w, M, v) == 4 * (2 * 3 * 4)

    def body(carry, w):  # inside a scan: counted once per step
        return carry * w + carry, None

    assert _real_flops(lambda w: jax.lax.scan(body, z[0], w)[0], z) == 5 * (6 + 2)
    real = lambda a: jnp.tanh(a) * a + a @ a  # noqa: E731
    assert _real_flops(real, x) == jaxpr_flops(real, x)


def test_sweep_flops_counts_the_fixed_methods_complex_basis_changes():
    T, N = 32, 6
    A, u, _ = random_tanh(10, N, T)
    fixed = sweep_flops(TANH_RNN, A, u, np.zeros(N), method="fixed", A=A)
    # two complex (N, N) matrix-vector products per step (into and out of A's eigenbasis,
    # 4 · 2N² real operations each) and the RNN step's real one (2N²)
    assert fixed >= T * (2 * 4 * 2 * N * N + 2 * N * N)


def test_sweep_flops_scale_as_n_cubed_for_newton_and_n_squared_otherwise():
    counts = {}
    for N in (8, 16):
        A, u, _ = random_tanh(9, N, 64)
        for method in METHODS:
            extra = {"A": A} if method == "fixed" else {}
            counts[method, N] = sweep_flops(TANH_RNN, A, u, np.zeros(N), method=method, **extra)
    assert 6 < counts["newton", 16] / counts["newton", 8] <= 8
    for method in ("quasi", "fixed"):
        assert 3 < counts[method, 16] / counts[method, 8] <= 4.2


# -------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    A, u, h0 = random_tanh(0, 3, 10)
    cases = [
        (dict(xs=u[:, 0]), ValueError, "xs"),
        (dict(xs=np.where(u > 0, np.nan, u)), ValueError, "xs"),
        (dict(h0=np.zeros(4)), ValueError, "cell.f"),
        (dict(h0=np.zeros((1, 3))), ValueError, "h0"),
        (dict(method="broyden"), ValueError, "method"),
        (dict(method="fixed"), ValueError, "A"),
        (dict(A=A), ValueError, "A"),
        (dict(method="fixed", A=np.array([[1.0, 1.0], [0.0, 1.0]]) * np.ones((1, 1))),
         ValueError, "A"),
        (dict(method="fixed", A=np.array([[1.0, 1e-30, 0], [0, 1.0, 0], [0, 0, 1.0]])
              + np.triu(np.ones((3, 3)), 1)), ValueError, "diagonalizable"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(max_sweeps=0), ValueError, "max_sweeps"),
        (dict(max_sweeps=2.5), TypeError, "max_sweeps"),
        (dict(damping=-0.1), ValueError, "damping"),
        (dict(clip=0.0), ValueError, "clip"),
        (dict(guess=np.zeros((9, 3))), ValueError, "guess"),
        (dict(return_iterates="yes"), TypeError, "return_iterates"),
        (dict(cell=42), TypeError, "cell"),
        (dict(params=np.full((3, 3), np.nan)), ValueError, "params"),
    ]
    for change, error, word in cases:
        args = dict(cell=TANH_RNN, params=A, xs=u, h0=h0)
        args.update(change)
        cell, params, xs, h = (args.pop(k) for k in ("cell", "params", "xs", "h0"))
        with pytest.raises(error, match=word):
            deer_solve(cell, params, xs, h, **args)
    with pytest.raises(ValueError, match="h_prev"):
        deer_sweep(TANH_RNN, A, u, h0, np.zeros((9, 3)))
    with pytest.raises(ValueError, match="hs"):
        jacobians(TANH_RNN, A, u, np.zeros(3))
    with pytest.raises(ValueError, match="n_hidden"):
        gru_params(jax.random.PRNGKey(0), 0, 2)
    with pytest.raises(ValueError, match="scale"):
        gru_params(jax.random.PRNGKey(0), 2, 2, scale=-1.0)
