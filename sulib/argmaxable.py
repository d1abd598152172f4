"""Which tokens can a softmax layer ever predict (post 9046)?

A token ``i`` of a layer with output embeddings ``W`` (shape ``(V, d)``) and biases ``b``
(shape ``(V,)``) is *argmaxable* when some input ``h`` gives it the strictly largest logit,
``(w_i - w_j)·h + (b_i - b_j) > 0`` for every ``j != i``.

* :func:`argmaxable_lp` decides it exactly, one linear program per token (SciPy ``linprog``,
  HiGHS). The condition is homogenised with a scale variable ``s``: maximise ``t`` subject to
  ``(w_i - w_j)·h + (b_i - b_j) s >= t`` for ``j != i``, ``s >= t``, ``h`` in the box
  ``[-1, 1]^d`` and ``0 <= s <= 1``. The strict system has a solution iff ``t* > 0``, so the
  box loses nothing (any solution can be scaled into it). ``t*`` is returned as a *relative
  margin*, divided by the largest value a constraint can take on the box, and a token is
  argmaxable iff it exceeds ``tol`` (default :data:`LP_TOL`).
* :func:`frank_wolfe_min_norm` is the post's own route for the bias-free case: minimise
  ``||Σ_j α_j (w_i - w_j)||`` over the simplex of ``α`` (``j != i``) by Frank–Wolfe with exact
  line search, for a fixed number of steps (``lax.scan``), all tokens at once (``vmap``).
  Every iterate ``u`` is a candidate input: if ``min_j (w_i - w_j)·u > 0`` the token is
  *certified* argmaxable. Without a bias the minimum norm is 0 exactly when the token is
  not argmaxable, so the certificate appears after finitely many steps for every argmaxable
  token and never for the others.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linprog

from sulib._checks import as_finite_array, positive_int, positive_scalar

__all__ = ["LPResult", "FWResult", "argmaxable_lp", "frank_wolfe_min_norm", "LP_TOL"]

#: Relative margin above which :func:`argmaxable_lp` calls a token argmaxable. HiGHS is run
#: with feasibility tolerances of 1e-10; margins of tokens on a hull face come back at that
#: level, so the threshold sits two decades above it.
LP_TOL = 1e-8


class LPResult(NamedTuple):
    """Output of :func:`argmaxable_lp`.

    Attributes:
        margin: ``(n,)`` the optimal relative margin ``t*/scale`` per tested token
            (``n = V`` unless ``tokens`` was given).
        argmaxable: ``(n,)`` bool, ``margin > tol``.
        direction: ``(n, d)`` the optimal ``h/s`` (an input that makes the token the
            argmax when it is argmaxable; meaningless otherwise).
    """

    margin: np.ndarray
    argmaxable: np.ndarray
    direction: np.ndarray


class FWResult(NamedTuple):
    """Output of :func:`frank_wolfe_min_norm` (``T`` = ``num_iters``).

    Attributes:
        u: ``(V, d)`` the last iterate ``Σ_j α_j (w_i - w_j)`` per token.
        norm: ``(V, T)`` ``||u_t||`` before step ``t`` (an upper bound on the minimum norm).
        gap: ``(V, T)`` the Frank–Wolfe duality gap ``u_t·(u_t - s_t)`` of
            ``½||u||²`` (an upper bound on ``½||u_t||² - ½ min||u||²``).
        certificate: ``(V, T)`` ``min_{j != i} (w_i - w_j)·u_t``; positive means ``u_t``
            makes token ``i`` the strict argmax.
        argmaxable: ``(V,)`` bool, some iterate certified the token.
        first_certified: ``(V,)`` int, the first step with a positive certificate
            (``T`` when none).
    """

    u: np.ndarray
    norm: np.ndarray
    gap: np.ndarray
    certificate: np.ndarray
    argmaxable: np.ndarray
    first_certified: np.ndarray


def _check_W_b(W, b):
    W = as_finite_array("W", W, min_ndim=2)
    if W.ndim != 2 or W.dtype == bool:
        raise ValueError(f"W must be a real matrix of shape (V, d), got shape {W.shape}")
    if W.shape[0] < 2 or W.shape[1] < 1:
        raise ValueError(f"W must have V >= 2 rows and d >= 1 columns, got shape {W.shape}")
    W = W.astype(np.float64)
    if b is None:
        return W, np.zeros(W.shape[0])
    b = as_finite_array("b", b, min_ndim=1)
    if b.shape != (W.shape[0],) or b.dtype == bool:
        raise ValueError(f"b must be a real vector of shape ({W.shape[0]},), got {b.shape}")
    return W, b.astype(np.float64)


def argmaxable_lp(W, b=None, *, tol: float = LP_TOL, tokens=None) -> LPResult:
    """Decide exactly which rows of ``W`` (with biases ``b``) can be the strict argmax.

    Args:
        W: ``(V, d)`` output embeddings, logits ``W h + b``.
        b: ``(V,)`` biases, or ``None`` for a layer without bias.
        tol: relative margin above which a token counts as argmaxable.
        tokens: indices of the tokens to test (default: all ``V``); the result then has
            ``len(tokens)`` rows, in that order.

    Returns:
        :class:`LPResult` with per-token margins, decisions and witnesses.

    Raises:
        ValueError/TypeError: naming ``W``, ``b`` or ``tol``.
    """
    W, b = _check_W_b(W, b)
    tol = positive_scalar("tol", tol)
    V, d = W.shape
    if tokens is None:
        tokens = np.arange(V)
    else:
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"tokens must be a 1-D array of ints, got {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= V):
            raise ValueError(f"tokens must lie in [0, {V}), got {tokens.min()}..{tokens.max()}")
    margins = np.empty(len(tokens))
    directions = np.zeros((len(tokens), d))
    c = np.zeros(d + 2)
    c[-1] = -1.0  # maximise t
    bounds = [(-1.0, 1.0)] * d + [(0.0, 1.0), (None, None)]
    options = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
    for row, i in enumerate(tokens):
        dw = np.delete(W[i] - W, i, axis=0)
        db = np.delete(b[i] - b, i)
        # -(dw·h + db s) + t <= 0  and  t - s <= 0
        A = np.block([[-dw, -db[:, None], np.ones((V - 1, 1))],
                      [np.zeros((1, d)), -np.ones((1, 1)), np.ones((1, 1))]])
        res = linprog(c, A_ub=A, b_ub=np.zeros(V), bounds=bounds, method="highs",
                      options=options)
        if res.status != 0:  # pragma: no cover - the LP is always feasible and bounded
            raise RuntimeError(f"linprog failed on token {i}: {res.message}")
        scale = float(np.max(np.abs(dw).sum(axis=1) + np.abs(db)))
        margins[row] = -res.fun / scale if scale > 0 else 0.0
        h, s = res.x[:d], res.x[d]
        if s > 0:
            directions[row] = h / s
    return LPResult(margins, margins > tol, directions)


@partial(jax.jit, static_argnames=("num_iters",))
def _fw_all(W: jax.Array, n_valid: jax.Array, num_iters: int):
    V = W.shape[0]  # padded; rows >= n_valid are ignored
    idx = jnp.arange(V)

    def one(i):
        wi = W[i]
        u0 = wi - W[jnp.where(i == 0, 1, 0)]  # the first other row

        def step(u, _):
            # (w_i - w_j)·u for every rival j; the token itself and padding rows excluded
            scores = jnp.where((idx == i) | (idx >= n_valid), jnp.inf, wi @ u - W @ u)
            k = jnp.argmin(scores)
            s = wi - W[k]  # the simplex vertex that minimises the linearisation
            diff = u - s
            gap = u @ diff
            den = diff @ diff
            gamma = jnp.clip(jnp.where(den > 0, gap / jnp.where(den > 0, den, 1.0), 0.0),
                             0.0, 1.0)
            return u - gamma * diff, (jnp.sqrt(u @ u), gap, scores[k])

        u, (norm, gap, cert) = jax.lax.scan(step, u0, None, length=num_iters)
        return u, norm, gap, cert

    return jax.vmap(one)(idx)


def frank_wolfe_min_norm(W, num_iters: int = 200) -> FWResult:
    """The post's test: Frank–Wolfe on ``min_α ||Σ_j α_j (w_i - w_j)||`` for every token.

    Args:
        W: ``(V, d)`` output embeddings (no bias: the post drops it).
        num_iters: number of Frank–Wolfe steps ``T`` (fixed; the loop is ``lax.scan``).

    Returns:
        :class:`FWResult` with the iterates' norms, duality gaps and certificates,
        each of shape ``(V, T)``.

    Raises:
        ValueError/TypeError: naming ``W`` or ``num_iters``.
    """
    W, _ = _check_W_b(W, None)
    num_iters = positive_int("num_iters", num_iters)
    V, d = W.shape
    # pad to a power of two in V and a multiple of 8 in d (zero columns change no inner
    # product; padded rows are masked), so that a sweep over sizes compiles a few times
    Vp, dp = max(16, 1 << (V - 1).bit_length()), -(-d // 8) * 8
    Wp = np.zeros((Vp, dp))
    Wp[:V, :d] = W
    out = _fw_all(jnp.asarray(Wp), jnp.asarray(V), num_iters)
    u, norm, gap, cert = (np.asarray(a)[:V] for a in out)
    u = u[:, :d]
    ok = cert > 0
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), num_iters)
    return FWResult(u, norm, gap, cert, ok.any(axis=1), first)
