"""Nonlinear recurrences evaluated in parallel over the sequence: DEER and its relatives.

A recurrence ``h_t = f(h_{t-1}, x_t)`` (``t = 1 … T``, ``h_0`` given) is rewritten as the
iteration of *linear* recurrences (kexue.fm/archives/9783; Lim et al. 2024, arXiv 2309.12252)::

    h^(n)_t = M_t h^(n)_{t-1} + [ f(h^(n-1)_{t-1}, x_t) - M_t h^(n-1)_{t-1} ],   h^(n)_0 = h_0,

where ``M_t`` (the *linear part*) is free. Each sweep ``n`` is a linear recurrence with a known
right-hand side, so it is solved by an associative (parallel prefix) scan over the affine maps
``h ↦ M_t h + b_t``. Whatever ``M_t`` is, the trajectory of the RNN is a fixed point, and sweep
``n`` reproduces the first ``n`` states exactly (in exact arithmetic), so ``T`` sweeps always
suffice. The methods differ in ``M_t``:

``"newton"`` (DEER)
    ``M_t = ∂f/∂h (h^(n-1)_{t-1}, x_t)``, the full Jacobian: Newton's method, quadratic
    convergence; the scan composes dense ``(N, N)`` matrices (``O(N³)`` per step).
``"quasi"`` (quasi-DEER, Gonzalez et al. 2024, arXiv 2407.19115)
    the diagonal of that Jacobian; an elementwise scan (``O(N)`` per step).
``"fixed"`` (the post's eq. rnn-iter)
    one fixed matrix ``M_t = A`` for all t and n, passed as ``A``; the scan runs in the
    eigenbasis of ``A`` (``A = P Λ P⁻¹``, complex), where it is elementwise.
``"input"`` (the post's ``A_t = sech²(u_t) ∘ A`` for the tanh RNN)
    the Jacobian at the zero state, ``∂f/∂h (0, x_t)``: time-varying, the same every sweep.

``damping = λ >= 0`` divides the linear part by ``1 + λ`` (our own simple damping, not ELK's
Levenberg–Marquardt step): it keeps the fixed point and the exactness after ``T`` sweeps, bounds
the products of the ``M_t`` that make Newton's iterates blow up on expanding (chaotic)
dynamics, and costs the quadratic convergence. ``λ → ∞`` is the Jacobi iteration ``M_t = 0``,
which advances the exact prefix by one step per sweep.

Cells are ``f(h, x, params) -> h_next`` with ``h`` ``(N,)``, ``x`` ``(D,)``; a :class:`Cell`
bundles ``f`` with optional analytic Jacobians (otherwise ``jax.jacfwd`` is used). Provided:
:data:`TANH_RNN` (``tanh(A h + u)``), :data:`GRU` (the post's convention) and
:data:`GRU_TORCH` (PyTorch / equinox / DEER's code).

Shapes: ``xs`` ``(T, D)`` inputs, ``h0`` ``(N,)``, states ``(T, N)`` with ``states[t-1] = h_t``
(``h_0`` not included). One sequence per call; ``jax.vmap`` :func:`deer_sweep` or the cells for
batches. Everything is float64 under JAX's x64 mode.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib._checks import as_finite_array, one_of, positive_int

__all__ = [
    "METHODS",
    "Cell",
    "TANH_RNN",
    "GRU",
    "GRU_TORCH",
    "GRUParams",
    "tanh_rnn_cell",
    "gru_cell",
    "gru_cell_torch",
    "gru_params",
    "jacobians",
    "affine_scan",
    "diagonal_scan",
    "rnn_sequential",
    "deer_sweep",
    "deer_solve",
    "sweep_flops",
    "DeerResult",
]

#: The choices of the linear part ``M_t``, see the module docstring.
METHODS = ("newton", "quasi", "fixed", "input")


class Cell(NamedTuple):
    """A recurrence ``h_t = f(h_{t-1}, x_t; params)`` with optional analytic Jacobians.

    Attributes:
        f: ``f(h, x, params) -> (N,)`` with ``h`` ``(N,)`` and ``x`` ``(D,)``.
        jac: ``jac(h, x, params) -> (N, N)``, ``∂f/∂h``; ``None``: ``jax.jacfwd(f)``.
        jac_diag: ``jac_diag(h, x, params) -> (N,)``, its diagonal; ``None``: the diagonal
            of ``jac``.
    """

    f: Callable
    jac: Callable | None = None
    jac_diag: Callable | None = None


# ------------------------------------------------------------------------------- cells


def tanh_rnn_cell(h: jax.Array, u: jax.Array, A: jax.Array) -> jax.Array:
    """The post's RNN step ``tanh(A h + u)``: ``h`` ``(N,)``, ``u`` ``(N,)``, ``A`` ``(N, N)``."""
    return jnp.tanh(A @ h + u)


def _tanh_rnn_jac(h, u, A):
    s = 1.0 - jnp.tanh(A @ h + u) ** 2  # sech²
    return s[:, None] * A  # diag(sech²(A h + u)) A: the post's "sech² ∘ A"


def _tanh_rnn_jac_diag(h, u, A):
    return (1.0 - jnp.tanh(A @ h + u) ** 2) * jnp.diagonal(A)


#: ``tanh(A h + u)`` with ``params = A``; Jacobian ``diag(sech²(A h + u)) A``.
TANH_RNN = Cell(tanh_rnn_cell, _tanh_rnn_jac, _tanh_rnn_jac_diag)


class GRUParams(NamedTuple):
    """Weights of a GRU with hidden size ``N`` and input size ``D``.

    ``W*`` ``(N, D)`` act on the input, ``U*`` ``(N, N)`` on the state, ``b*`` ``(N,)``; ``z`` is
    the update gate, ``r`` the reset gate, ``h`` the candidate. ``bh_inner`` ``(N,)`` is the bias
    inside the reset product of :func:`gru_cell_torch` (PyTorch's ``b_hn``); :func:`gru_cell`
    ignores it.
    """

    Wz: Any
    Uz: Any
    bz: Any
    Wr: Any
    Ur: Any
    br: Any
    Wh: Any
    Uh: Any
    bh: Any
    bh_inner: Any


def gru_cell(h: jax.Array, x: jax.Array, p: GRUParams) -> jax.Array:
    """One GRU step in the post's convention (Chung et al. 2014)::

        z = σ(Wz x + Uz h + bz),  r = σ(Wr x + Ur h + br),
        ĥ = tanh(Wh x + Uh (r ∘ h) + bh),  h' = (1 - z) ∘ h + z ∘ ĥ.

    ``h`` ``(N,)``, ``x`` ``(D,)``; returns ``(N,)``.
    """
    z = jax.nn.sigmoid(p.Wz @ x + p.Uz @ h + p.bz)
    r = jax.nn.sigmoid(p.Wr @ x + p.Ur @ h + p.br)
    cand = jnp.tanh(p.Wh @ x + p.Uh @ (r * h) + p.bh)
    return (1.0 - z) * h + z * cand


def gru_cell_torch(h: jax.Array, x: jax.Array, p: GRUParams) -> jax.Array:
    """One GRU step in the convention of PyTorch, equinox and DEER's code::

        z = σ(Wz x + Uz h + bz),  r = σ(Wr x + Ur h + br),
        ĥ = tanh(Wh x + bh + r ∘ (Uh h + bh_inner)),  h' = z ∘ h + (1 - z) ∘ ĥ.

    The update gate multiplies the *old* state (the post: the candidate), and the reset gate
    acts after ``Uh``. The first difference is a reparametrization (``z → 1 - z`` is
    ``(Wz, Uz, bz) → -(Wz, Uz, bz)``); the second is not.
    """
    z = jax.nn.sigmoid(p.Wz @ x + p.Uz @ h + p.bz)
    r = jax.nn.sigmoid(p.Wr @ x + p.Ur @ h + p.br)
    cand = jnp.tanh(p.Wh @ x + p.bh + r * (p.Uh @ h + p.bh_inner))
    return z * h + (1.0 - z) * cand


#: :func:`gru_cell` with autodiff Jacobians.
GRU = Cell(gru_cell)
#: :func:`gru_cell_torch` with autodiff Jacobians.
GRU_TORCH = Cell(gru_cell_torch)


def gru_params(key: jax.Array, n_hidden: int, n_input: int, *, scale: float = 1.0) -> GRUParams:
    """Random GRU weights, uniform on ``±scale / sqrt(fan-in)`` (PyTorch's default for
    ``scale = 1``: fan-in ``N`` for every weight and bias).

    Args:
        key: a ``jax.random`` key. n_hidden: ``N``. n_input: ``D``. scale: > 0.

    Returns:
        :class:`GRUParams` of float arrays.
    """
    n_hidden = positive_int("n_hidden", n_hidden)
    n_input = positive_int("n_input", n_input)
    scale = float(as_finite_array("scale", scale))
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    shapes = [(n_hidden, n_input), (n_hidden, n_hidden), (n_hidden,)] * 3 + [(n_hidden,)]
    keys = jax.random.split(key, len(shapes))
    bound = scale / np.sqrt(n_hidden)
    return GRUParams(*(jax.random.uniform(k, s, minval=-bound, maxval=bound)
                       for k, s in zip(keys, shapes)))


# ------------------------------------------------------------------------ linear scans


def _affine_combine(earlier, later):
    (Ma, va), (Mb, vb) = earlier, later
    return Mb @ Ma, jnp.einsum("...ij,...j->...i", Mb, va) + vb


def _diagonal_combine(earlier, later):
    (aa, va), (ab, vb) = earlier, later
    return ab * aa, ab * va + vb


@jax.jit
def affine_scan(M: jax.Array, b: jax.Array, h0: jax.Array) -> jax.Array:
    """``h_t = M_t h_{t-1} + b_t`` for ``t = 1 … T`` by ``lax.associative_scan``.

    Args:
        M: ``(T, N, N)``; b: ``(T, N)``; h0: ``(N,)``.

    Returns:
        ``(T, N)``, row ``t-1`` holding ``h_t``. Work ``O(T N³)`` (matrix compositions),
        depth ``O(log T)``. No input checks (a building block for jitted code).
    """
    # fold h0 into the first map: (0, M_1 h0 + b_1); then the prefix compositions' vector
    # parts are the states themselves
    first = M[0] @ h0 + b[0]
    mats = M.at[0].set(jnp.zeros_like(M[0]))
    vecs = b.at[0].set(first)
    return lax.associative_scan(_affine_combine, (mats, vecs))[1]


@jax.jit
def diagonal_scan(a: jax.Array, b: jax.Array, h0: jax.Array) -> jax.Array:
    """``h_t = a_t ∘ h_{t-1} + b_t`` (elementwise) by ``lax.associative_scan``.

    Args:
        a: ``(T, N)``; b: ``(T, N)``; h0: ``(N,)``; real or complex.

    Returns:
        ``(T, N)``, row ``t-1`` holding ``h_t``. Work ``O(T N)``, depth ``O(log T)``.
    """
    first = a[0] * h0 + b[0]
    coef = a.at[0].set(jnp.zeros_like(a[0]))
    vecs = b.at[0].set(first)
    return lax.associative_scan(_diagonal_combine, (coef, vecs))[1]


# ------------------------------------------------------------------------- the method


def _jac(cell: Cell):
    return cell.jac if cell.jac is not None else jax.jacfwd(cell.f, argnums=0)


def _jac_diag(cell: Cell):
    if cell.jac_diag is not None:
        return cell.jac_diag
    jac = _jac(cell)
    return lambda h, x, p: jnp.diagonal(jac(h, x, p))


def _shift(h0, hs):
    return jnp.concatenate([h0[None], hs[:-1]], axis=0)  # h_{t-1} for t = 1 … T


def _sweep(cell, method, params, xs, h0, h_prev, fixed, damping):
    """One sweep; ``fixed`` holds (lam, P, Pinv) for "fixed", the (T, N, N) or (T, N) linear
    part for "input", and is ignored otherwise."""
    s = _shift(h0, h_prev)
    fvals = jax.vmap(cell.f, in_axes=(0, 0, None))(s, xs, params)
    shrink = 1.0 / (1.0 + damping)
    if method == "fixed":
        lam, P, Pinv = fixed
        lam = lam * shrink
        ys = s.astype(P.dtype) @ Pinv.T  # the shifted iterate in the eigenbasis
        c = (fvals.astype(P.dtype) @ Pinv.T) - lam * ys
        y = diagonal_scan(jnp.broadcast_to(lam, c.shape), c, Pinv @ h0.astype(P.dtype))
        return jnp.real(y @ P.T).astype(fvals.dtype)
    if method == "quasi":
        d = jax.vmap(_jac_diag(cell), in_axes=(0, 0, None))(s, xs, params) * shrink
        return diagonal_scan(d, fvals - d * s, h0)
    if method == "newton":
        J = jax.vmap(_jac(cell), in_axes=(0, 0, None))(s, xs, params) * shrink
    else:  # "input": the Jacobian at the zero state, computed once
        J = fixed * shrink
    return affine_scan(J, fvals - jnp.einsum("tij,tj->ti", J, s), h0)


@partial(jax.jit, static_argnames=("cell", "method", "max_sweeps", "keep_iterates"))
def _solve(cell, method, params, xs, h0, guess, fixed, damping, clip, tol, max_sweeps,
           keep_iterates):
    T, N = guess.shape
    if method == "input":
        zero = jnp.zeros_like(h0)
        fixed = jax.vmap(_jac(cell), in_axes=(None, 0, None))(zero, xs, params)
    steps0 = jnp.full((max_sweeps,), jnp.nan, dtype=guess.dtype)
    prefix0 = jnp.zeros((max_sweeps,), dtype=jnp.int32)
    its0 = jnp.zeros((max_sweeps if keep_iterates else 0, T, N), guess.dtype)

    def cond(carry):
        n, _, steps, _, _ = carry
        last = steps[jnp.maximum(n - 1, 0)]
        going = (n == 0) | ((last > tol) & jnp.isfinite(last))
        return (n < max_sweeps) & going

    def body(carry):
        n, h, steps, prefix, its = carry
        h_new = _sweep(cell, method, params, xs, h0, h, fixed, damping)
        clipped = jnp.where(jnp.isnan(h_new), 0.0, jnp.clip(h_new, -clip, clip))
        h_new = jnp.where(jnp.isfinite(clip), clipped, h_new)  # DEER's workaround, opt-in
        moved = jnp.max(jnp.abs(h_new - h), axis=1)  # (T,); nan where not finite
        ok = jnp.isfinite(moved)
        step = jnp.where(jnp.all(ok), jnp.max(moved), jnp.inf)
        bad = ~(ok & (moved <= tol))
        first_bad = jnp.where(jnp.any(bad), jnp.argmax(bad), T).astype(jnp.int32)
        steps = steps.at[n].set(step)
        prefix = prefix.at[n].set(first_bad)
        if keep_iterates:
            its = lax.dynamic_update_index_in_dim(its, h_new, n, axis=0)
        return n + 1, h_new, steps, prefix, its

    n, h, steps, prefix, its = lax.while_loop(cond, body, (0, guess, steps0, prefix0, its0))
    fvals = jax.vmap(cell.f, in_axes=(0, 0, None))(_shift(h0, h), xs, params)
    residual = jnp.max(jnp.abs(h - fvals))
    return h, n, steps, prefix, residual, its


class DeerResult(NamedTuple):
    """What :func:`deer_solve` returns.

    Attributes:
        states: ``(T, N)``, the last iterate (``states[t-1] ≈ h_t``).
        n_sweeps: sweeps performed (an int).
        converged: whether the last sweep moved the iterate by at most ``tol``.
        steps: ``(max_sweeps,)``, ``max_t |h^(n)_t - h^(n-1)_t|`` of sweep ``n = 1, 2, …``;
            ``nan`` after the last sweep, ``inf`` where an iterate was not finite.
        prefix: ``(max_sweeps,)`` ints, the number of leading time steps that sweep ``n``
            moved by at most ``tol`` (0 after the last sweep). The iteration is causal (states
            ``<= t`` never depend on later inputs), so the first ``t`` rows of every iterate
            are the iterates of the length-``t`` problem, and that problem stops at the first
            sweep ``n`` with ``prefix[n-1] >= t``: one run gives the sweeps needed for every
            length.
        residual: ``max_t |states_t - f(states_{t-1}, x_t)|`` of the last iterate.
        iterates: ``(max_sweeps, T, N)`` iterates ``h^(1), h^(2), …`` (zeros after the last
            sweep) when ``return_iterates=True``, else ``None``.
    """

    states: jax.Array
    n_sweeps: int
    converged: bool
    steps: np.ndarray
    prefix: np.ndarray
    residual: float
    iterates: jax.Array | None


def _as_cell(cell) -> Cell:
    if isinstance(cell, Cell):
        if not callable(cell.f):
            raise TypeError(f"cell.f must be callable, got {type(cell.f).__name__}")
        return cell
    if callable(cell):
        return Cell(cell)
    raise TypeError(f"cell must be a Cell or a callable f(h, x, params), got {type(cell).__name__}")


def _check_inputs(cell, params, xs, h0):
    """Validate on the host; returns (cell, params, xs, h0) as float arrays."""
    cell = _as_cell(cell)
    xs = as_finite_array("xs", xs)
    if xs.ndim != 2 or xs.shape[0] < 1:
        raise ValueError(f"xs must have shape (T, D) with T >= 1, got shape {xs.shape}")
    h0 = as_finite_array("h0", h0)
    if h0.ndim != 1 or h0.shape[0] < 1:
        raise ValueError(f"h0 must have shape (N,) with N >= 1, got shape {h0.shape}")
    leaves, tree = jax.tree_util.tree_flatten(params)
    leaves = [as_finite_array(f"params leaf {k}", leaf) for k, leaf in enumerate(leaves)]
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    params = jax.tree_util.tree_unflatten(tree, [jnp.asarray(x, dtype) for x in leaves])
    xs, h0 = jnp.asarray(xs, dtype), jnp.asarray(h0, dtype)
    try:
        # shapes only: slicing xs[0] would compile a program per shape
        out = jax.eval_shape(cell.f, h0, jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype), params)
    except Exception as exc:
        raise ValueError(f"cell.f(h0, xs[0], params) fails: {exc}") from exc
    if getattr(out, "shape", None) != h0.shape:
        raise ValueError(f"cell.f must map h0 of shape {h0.shape} to the same shape, got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    return cell, params, xs, h0


def _eigen(A, n: int, dtype):
    A = as_finite_array("A", A)
    if A.shape != (n, n):
        raise ValueError(f"A must have shape ({n}, {n}) to match h0, got shape {A.shape}")
    lam, P = np.linalg.eig(A)
    cond = np.linalg.cond(P)
    if not np.isfinite(cond) or cond > 1e10:
        raise ValueError(f"A must be diagonalizable with well-conditioned eigenvectors "
                         f"(method='fixed' scans in its eigenbasis); cond(P) = {cond:.3g}")
    cdtype = jnp.result_type(dtype, jnp.complex64)
    return (jnp.asarray(lam, cdtype), jnp.asarray(P, cdtype),
            jnp.asarray(np.linalg.inv(P), cdtype))


def _check_method(method, A, n, dtype):
    one_of("method", method, METHODS)
    if method == "fixed":
        if A is None:
            raise ValueError("method='fixed' needs the fixed linear part A, shape (N, N)")
        return _eigen(A, n, dtype)
    if A is not None:
        raise ValueError(f"A is only used by method='fixed', got method={method!r}")
    return None


def _check_damping(damping) -> float:
    damping = as_finite_array("damping", damping)
    if damping.ndim != 0 or not damping >= 0:
        raise ValueError(f"damping must be a scalar >= 0, got {damping}")
    return float(damping)


def deer_sweep(cell, params, xs, h0, h_prev, *, method: str = "newton", A=None,
               damping: float = 0.0) -> jax.Array:
    """One sweep of the iteration: ``h^(n)`` from ``h^(n-1) = h_prev``.

    Args:
        cell: a :class:`Cell` or a callable ``f(h, x, params)``.
        params: the cell's parameters (a pytree of arrays).
        xs: ``(T, D)`` inputs. h0: ``(N,)`` initial state. h_prev: ``(T, N)`` previous iterate.
        method: one of :data:`METHODS`. A: ``(N, N)``, only for ``method="fixed"``.
        damping: ``λ >= 0``; the linear part is divided by ``1 + λ``.

    Returns:
        ``(T, N)``, the next iterate.
    """
    cell, params, xs, h0 = _check_inputs(cell, params, xs, h0)
    h_prev = as_finite_array("h_prev", h_prev)
    if h_prev.shape != (xs.shape[0], h0.shape[0]):
        raise ValueError(f"h_prev must have shape {(xs.shape[0], h0.shape[0])}, got "
                         f"{h_prev.shape}")
    fixed = _check_method(method, A, h0.shape[0], h0.dtype)
    h_prev = jnp.asarray(h_prev, h0.dtype)
    if method == "input":
        fixed = jax.vmap(_jac(cell), in_axes=(None, 0, None))(jnp.zeros_like(h0), xs, params)
    return _sweep_jit(cell, method, params, xs, h0, h_prev, fixed, _check_damping(damping))


_sweep_jit = jax.jit(_sweep, static_argnames=("cell", "method"))


def sweep_flops(cell, params, xs, h0, *, method: str = "newton", A=None) -> int:
    """Arithmetic operations of one sweep, counted on its jaxpr, in real operations.

    Counts the cell's evaluations, the linear part (Jacobians for ``"newton"`` and
    ``"quasi"``), the right-hand side, the scan and, for ``"fixed"``, the changes of basis;
    not the one-time work (the eigendecomposition of ``A``; the Jacobians at the zero state
    for ``"input"``). The count is :func:`sulib.ssm.jaxpr_flops` (transcendental functions such
    as tanh and sigmoid count 0) with complex arithmetic, which only ``"fixed"`` does (it scans
    in ``A``'s complex eigenbasis), converted to real operations by :func:`_real_flops`: a
    complex multiplication counts 6, an addition 2, a matrix product 4 times its real count.
    Deterministic; nothing is run.

    Args:
        as in :func:`deer_sweep`.

    Returns:
        the operation count, an int.
    """
    cell, params, xs, h0 = _check_inputs(cell, params, xs, h0)
    fixed = _check_method(method, A, h0.shape[0], h0.dtype)
    if method == "input":
        fixed = jax.eval_shape(
            jax.vmap(_jac(cell), in_axes=(None, 0, None)), h0, xs, params)
        fixed = np.zeros(fixed.shape, fixed.dtype)
    guess = np.zeros((xs.shape[0], h0.shape[0]), h0.dtype)
    return _real_flops(lambda h: _sweep(cell, method, params, xs, h0, h, fixed, 0.0), guess)


#: Real operations per complex one: (a + bi)(c + di) takes 4 multiplications and 2 additions;
#: a division 6 multiplications, 3 additions and 2 divisions; other elementwise operations act
#: on the two parts (2); in a complex matrix product each multiply-add is 6 + 2 = 8 real
#: operations, 4 times the real product's 2.
_COMPLEX_OPS = {"mul": 6, "div": 11}
_COMPLEX_OTHER, _COMPLEX_DOT, _COMPLEX_REDUCE = 2, 4, 2


def _is_complex(var) -> bool:
    dtype = getattr(getattr(var, "aval", None), "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating)


def _complex_surplus(jaxpr) -> int:
    """What :func:`sulib.ssm.flops.jaxpr_flops` leaves out for complex equations: the
    operations it counts once, times (real operations per complex one - 1)."""
    from sulib.ssm.flops import _ELEMENTWISE, _sub_jaxprs

    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in _ELEMENTWISE and any(map(_is_complex, eqn.outvars)):
            size = sum(int(np.prod(v.aval.shape)) for v in eqn.outvars)
            total += (_COMPLEX_OPS.get(name, _COMPLEX_OTHER) - 1) * size
        elif name in ("cumsum", "cumprod", "reduce_sum", "reduce_max") and _is_complex(
                eqn.invars[0]):
            total += (_COMPLEX_REDUCE - 1) * int(np.prod(eqn.invars[0].aval.shape))
        elif name == "dot_general" and any(map(_is_complex, eqn.invars)):
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            size = sum(int(np.prod(v.aval.shape)) for v in eqn.outvars)
            total += (_COMPLEX_DOT - 1) * 2 * size * int(np.prod([lhs[d] for d in contract]))
        for sub in _sub_jaxprs(eqn.params):
            inner = _complex_surplus(sub)
            total += inner * int(eqn.params.get("length", 1)) if name == "scan" else inner
    return total


def _real_flops(fn, *args) -> int:
    """:func:`sulib.ssm.jaxpr_flops` with complex operations counted in real ones."""
    from sulib.ssm.flops import _count_jaxpr  # jaxpr_flops's counter, on the same trace

    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return _count_jaxpr(jaxpr) + _complex_surplus(jaxpr)


def deer_solve(cell, params, xs, h0, *, method: str = "newton", A=None, guess=None,
               max_sweeps: int | None = None, tol: float = 1e-12, damping: float = 0.0,
               clip: float | None = None, return_iterates: bool = False) -> DeerResult:
    """Evaluate ``h_t = f(h_{t-1}, x_t)``, ``t = 1 … T``, by sweeps of parallel linear scans.

    Sweeps run until one moves the iterate by at most ``tol`` (max over t and the state),
    an iterate stops being finite, or ``max_sweeps`` were done.

    Args:
        cell: a :class:`Cell` (e.g. :data:`TANH_RNN`, :data:`GRU`) or a callable
            ``f(h, x, params) -> (N,)``.
        params: the cell's parameters (pytree of arrays; ``A`` ``(N, N)`` for TANH_RNN).
        xs: ``(T, D)`` inputs. h0: ``(N,)`` initial state.
        method: ``"newton"`` (DEER), ``"quasi"``, ``"fixed"`` or ``"input"`` (module docs).
        A: ``(N, N)`` fixed linear part, for ``method="fixed"`` only (diagonalizable).
        guess: ``(T, N)`` starting iterate ``h^(0)``; default ``h0`` at every t (as DEER's
            code; zero for ``h0 = 0``, the post's choice).
        max_sweeps: default ``T + 1`` (``T`` sweeps are exact, one more confirms it).
        tol: absolute tolerance >= 0 on ``max |h^(n) - h^(n-1)|``.
        damping: ``λ >= 0``; the linear part is divided by ``1 + λ``.
        clip: ``None`` (default), or ``c > 0``: after each sweep, clip the iterate to
            ``[-c, c]`` and replace ``nan`` by 0 — the workaround DEER's code applies to RNNs
            (``c = 1e8``); without it an overflowing iterate ends the iteration.
        return_iterates: keep every iterate (memory ``max_sweeps · T · N``).

    Returns:
        :class:`DeerResult`.

    Raises:
        ValueError / TypeError naming the argument on bad input.
    """
    cell, params, xs, h0 = _check_inputs(cell, params, xs, h0)
    T, N = xs.shape[0], h0.shape[0]
    fixed = _check_method(method, A, N, h0.dtype)
    if guess is None:  # on the host: jnp.broadcast_to would compile a program per shape
        guess = np.broadcast_to(np.asarray(h0), (T, N))
    else:
        guess = as_finite_array("guess", guess)
        if guess.shape != (T, N):
            raise ValueError(f"guess must have shape {(T, N)}, got {guess.shape}")
        guess = jnp.asarray(guess, h0.dtype)
    max_sweeps = T + 1 if max_sweeps is None else positive_int("max_sweeps", max_sweeps)
    tol = as_finite_array("tol", tol)
    if tol.ndim != 0 or not tol >= 0:
        raise ValueError(f"tol must be a scalar >= 0, got {tol}")
    if not isinstance(return_iterates, (bool, np.bool_)):
        raise TypeError(f"return_iterates must be a bool, got {type(return_iterates).__name__}")
    if clip is None:
        clip = np.inf
    else:
        clip = as_finite_array("clip", clip)
        if clip.ndim != 0 or not clip > 0:
            raise ValueError(f"clip must be None or a scalar > 0, got {clip}")
    h, n, steps, prefix, residual, its = _solve(
        cell, method, params, xs, h0, guess, fixed, _check_damping(damping),
        jnp.asarray(float(clip), h0.dtype), jnp.asarray(float(tol), h0.dtype), max_sweeps,
        bool(return_iterates))
    steps = np.asarray(steps)
    n = int(n)
    last = steps[n - 1] if n else np.inf
    return DeerResult(h, n, bool(last <= float(tol)), steps, np.asarray(prefix),
                      float(residual), its if return_iterates else None)


def rnn_sequential(cell, params, xs, h0) -> jax.Array:
    """The reference: ``h_t = f(h_{t-1}, x_t)`` one step at a time (``lax.scan``).

    Args:
        cell, params, xs ``(T, D)``, h0 ``(N,)``: as in :func:`deer_solve`.

    Returns:
        ``(T, N)`` states, row ``t-1`` holding ``h_t``.
    """
    cell, params, xs, h0 = _check_inputs(cell, params, xs, h0)
    return _sequential(cell, params, xs, h0)


@partial(jax.jit, static_argnames=("cell",))
def _sequential(cell, params, xs, h0):
    def step(h, x):
        h = cell.f(h, x, params)
        return h, h

    return lax.scan(step, h0, xs)[1]


def jacobians(cell, params, xs, hs, *, diagonal: bool = False) -> jax.Array:
    """``∂f/∂h`` at ``(hs[t], xs[t])`` for every t: ``(T, N, N)``, or ``(T, N)`` diagonals.

    Args:
        cell, params: as in :func:`deer_solve`. xs: ``(T, D)``. hs: ``(T, N)`` states at which
            to differentiate. diagonal: return only the diagonals.
    """
    hs = as_finite_array("hs", hs)
    if hs.ndim != 2:
        raise ValueError(f"hs must have shape (T, N), got shape {hs.shape}")
    cell, params, xs, h0 = _check_inputs(cell, params, xs, hs[0])
    if hs.shape[0] != xs.shape[0]:
        raise ValueError(f"hs must have T = {xs.shape[0]} rows to match xs, got {hs.shape}")
    fn = _jac_diag(cell) if diagonal else _jac(cell)
    return jax.jit(jax.vmap(fn, in_axes=(0, 0, None)))(jnp.asarray(hs, h0.dtype), xs, params)
