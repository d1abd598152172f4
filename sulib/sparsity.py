"""Sparsity measures of a vector and randomized testers of the six desiderata (post 9595).

Every measure looks at magnitudes ``|x|`` along the last axis: ``x`` is ``(..., n)`` and the
result is ``(...)`` (one number per row; any leading batch axes are kept).

Two direction conventions meet here. The post's measures -- :func:`s0` (mean/max),
:func:`s1p` ((l1/n)/l_p) and :func:`s_star` (n^{1/p-1/q} l_q/l_p) -- are *lower = sparser*;
Hoyer's measure :func:`hoyer` and the Gini index :func:`gini` (Hurley & Rickard's sorted form)
are *higher = sparser*, as in Hurley & Rickard's paper. The testers take the convention as
an argument and report margins in the paper's orientation, so one table can hold both.

Desideratum testers (Hurley & Rickard's names): :func:`robin_hood` (D1: move wealth from a
richer entry to a poorer one, less than half the gap), :func:`rising_tide` (D3: add a
constant), scaling (D2) and :func:`clone` (D4: concatenate copies), :func:`bill_gates` (P1: one
entry grows without bound) and :func:`add_zeros` (P2, "babies": append zeros).
:func:`desideratum_margins` runs all six on a batch of vectors.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, positive_int, positive_scalar

__all__ = [
    "CRITERIA",
    "s0",
    "s1p",
    "s_star",
    "hoyer",
    "gini",
    "sign_cosine",
    "renyi_entropy",
    "s_star_from_renyi",
    "random_vectors",
    "robin_hood",
    "rising_tide",
    "rescale",
    "clone",
    "add_zeros",
    "bill_gates",
    "Margins",
    "desideratum_margins",
]

#: The six criteria of Hurley & Rickard, in the paper's order.
CRITERIA = ("D1", "D2", "D3", "D4", "P1", "P2")


def _rows(name: str, x, *, min_n: int = 1, nonzero: bool = True) -> jax.Array:
    """``|x|`` as a float array with a last axis of length >= ``min_n``; errors name ``name``."""
    a = as_finite_array(name, x, min_ndim=1)
    if a.shape[-1] < min_n:
        raise ValueError(f"{name} must have at least {min_n} entries on its last axis, "
                         f"got shape {a.shape}")
    a = np.abs(a.astype(np.result_type(a.dtype, np.float32)))
    if nonzero and a.size and np.any(np.all(a == 0, axis=-1)):
        raise ValueError(f"{name} has a row of zeros; a sparsity measure needs a nonzero entry")
    return jnp.asarray(a)


def _exponent(name: str, value) -> float:
    return positive_scalar(name, value)


@jax.jit
def _s0(a):
    return jnp.mean(a, axis=-1) / jnp.max(a, axis=-1)


@jax.jit
def _lp(a, p):
    # l_p via the row maximum, so large p (and large entries) neither overflow nor underflow
    m = jnp.max(a, axis=-1, keepdims=True)
    return m[..., 0] * jnp.sum((a / m) ** p, axis=-1) ** (1.0 / p)


@jax.jit
def _s_star(a, q, p):
    n = a.shape[-1]
    return n ** (1.0 / p - 1.0 / q) * _lp(a, q) / _lp(a, p)


@jax.jit
def _s1p(a, p):
    return jnp.sum(a, axis=-1) / a.shape[-1] / _lp(a, p)


@jax.jit
def _hoyer(a):
    n = a.shape[-1]
    r = jnp.sum(a, axis=-1) / jnp.sqrt(jnp.sum(a * a, axis=-1))
    return (jnp.sqrt(n) - r) / (jnp.sqrt(n) - 1.0)


@jax.jit
def _gini(a):
    n = a.shape[-1]
    c = jnp.sort(a, axis=-1)  # ascending: c_(1) <= ... <= c_(n)
    k = jnp.arange(1, n + 1, dtype=a.dtype)
    w = (n - k + 0.5) / n
    return 1.0 - 2.0 * jnp.sum(c * w, axis=-1) / jnp.sum(c, axis=-1)


def s0(x) -> jax.Array:
    """The post's first index S₀ = mean|x| / max|x| (lower = sparser); ``(..., n) -> (...)``."""
    return _s0(_rows("x", x))


def s1p(x, p: float = 2.0) -> jax.Array:
    """S_{1,p} = (l₁/n) / l_p (lower = sparser), p > 0; ``(..., n) -> (...)``.

    It tends to :func:`s0` as p → ∞; for fixed n it is the l₁/l_p ratio over n.
    """
    return _s1p(_rows("x", x), _exponent("p", p))


def s_star(x, q: float = 1.0, p: float = 2.0) -> jax.Array:
    """S*_{q,p} = n^{1/p-1/q} l_q/l_p = M_q/M_p (ratio of power means), p > q > 0.

    Lower = sparser; the range is [n^{1/p-1/q}, 1]. With q = 1 it is the post's
    normalized index S*_{1,p} = n^{(1-p)/p} l₁/l_p. ``(..., n) -> (...)``.
    """
    q, p = _exponent("q", q), _exponent("p", p)
    if not p > q:
        raise ValueError(f"p must exceed q, got q={q}, p={p}")
    return _s_star(_rows("x", x), q, p)


def hoyer(x) -> jax.Array:
    """Hoyer's sparseness (√n - l₁/l₂)/(√n - 1) in [0, 1] (higher = sparser), n >= 2."""
    return _hoyer(_rows("x", x, min_n=2))


def gini(x) -> jax.Array:
    """Gini index in Hurley & Rickard's sorted form (higher = sparser), ``(..., n) -> (...)``.

    With c_(1) <= ... <= c_(n) the sorted magnitudes,
    G = 1 - 2 Σ_k (c_(k)/‖c‖₁) (n - k + 1/2)/n, which lies in [0, 1 - 1/n].
    """
    return _gini(_rows("x", x))


def sign_cosine(x) -> jax.Array:
    """cos(sign x, x) = Σ|x_i| / (‖sign x‖₂ ‖x‖₂), ``(..., n) -> (...)``.

    Equals :func:`s_star` (q=1, p=2) when no entry of x is zero.
    """
    a = as_finite_array("x", x, min_ndim=1)
    _rows("x", a)  # same checks as the measures
    s = jnp.sign(jnp.asarray(a, dtype=jnp.result_type(float)))
    xa = jnp.asarray(a, dtype=s.dtype)
    return jnp.sum(s * xa, axis=-1) / (jnp.linalg.norm(s, axis=-1) * jnp.linalg.norm(xa, axis=-1))


@jax.jit
def _renyi(prob, order):
    safe = jnp.where(prob > 0, prob, 1.0)
    shannon = -jnp.sum(prob * jnp.log(safe), axis=-1)
    lse = jnp.log(jnp.sum(jnp.where(prob > 0, safe ** order, 0.0), axis=-1))
    general = lse / (1.0 - jnp.where(order == 1.0, 2.0, order))
    return jnp.where(order == 1.0, shannon, general)


def renyi_entropy(prob, order: float) -> jax.Array:
    """Rényi entropy H_α = log(Σ p_i^α)/(1 - α) in nats (Shannon's at α = 1); α > 0.

    ``prob`` is ``(..., n)``, non-negative, each row summing to 1 (checked to 1e-9).
    """
    order = _exponent("order", order)
    a = as_finite_array("prob", prob, min_ndim=1)
    if np.any(a < 0):
        raise ValueError("prob must be non-negative")
    if not np.allclose(a.sum(axis=-1), 1.0, atol=1e-9, rtol=0):
        raise ValueError("prob rows must sum to 1")
    return _renyi(jnp.asarray(a, dtype=jnp.result_type(float)), order)


def s_star_from_renyi(entropy, n: int, p: float = 2.0) -> jax.Array:
    """S*_{1,p} of a probability vector from its Rényi entropy H_p (nats):

    S*_{1,p} = exp(-(1 - 1/p)(log n - H_p)), p > 1. ``entropy`` any shape, same shape out.
    """
    n = positive_int("n", n)
    p = _exponent("p", p)
    h = jnp.asarray(as_finite_array("entropy", entropy), dtype=jnp.result_type(float))
    return jnp.exp(-(1.0 - 1.0 / p) * (jnp.log(n) - h))


# --------------------------------------------------------------------------------------
# random test vectors and the transformations behind the six criteria
# --------------------------------------------------------------------------------------

@partial(jax.jit, static_argnums=(1, 2))
def _random_vectors(key, batch, n, zero_prob):  # zero_prob traced: one compile per shape
    k1, k2, k3 = jax.random.split(key, 3)
    spread = jax.random.uniform(k1, (batch, 1), minval=0.1, maxval=2.5)
    mags = jnp.exp(spread * jax.random.normal(k2, (batch, n)))
    keep = jax.random.uniform(k3, (batch, n)) >= zero_prob
    keep = keep.at[:, 0].set(keep[:, 0] | ~jnp.any(keep, axis=-1))  # no all-zero row
    return jnp.where(keep, mags, 0.0)


def random_vectors(key, batch: int, n: int, zero_prob: float = 0.2) -> jax.Array:
    """``(batch, n)`` non-negative test vectors: log-normal magnitudes whose spread varies by
    row (from nearly flat to heavy-tailed), each entry zeroed with probability ``zero_prob``;
    no row is all zeros."""
    batch, n = positive_int("batch", batch), positive_int("n", n, minimum=2)
    zp = float(as_finite_array("zero_prob", zero_prob))
    if not 0.0 <= zp < 1.0:
        raise ValueError(f"zero_prob must lie in [0, 1), got {zp}")
    return _random_vectors(key, batch, n, zp)


@jax.jit
def _robin_hood(key, x):
    batch, n = x.shape
    k1, k2, k3 = jax.random.split(key, 3)
    i = jax.random.randint(k1, (batch,), 0, n)
    j = (i + jax.random.randint(k2, (batch,), 1, n)) % n  # j != i
    rows = jnp.arange(batch)
    xi, xj = x[rows, i], x[rows, j]
    rich = jnp.where(xi >= xj, i, j)
    poor = jnp.where(xi >= xj, j, i)
    gap = jnp.abs(xi - xj)
    alpha = jax.random.uniform(k3, (batch,), minval=0.05, maxval=0.95) * gap / 2
    y = x.at[rows, rich].add(-alpha).at[rows, poor].add(alpha)
    return y, gap > 0


def robin_hood(key, x) -> tuple[jax.Array, jax.Array]:
    """D1's transfer on each row of ``x`` ``(batch, n)``: pick i ≠ j at random, take α from the
    richer and give it to the poorer, 0 < α < gap/2 (α is drawn in [0.05, 0.95]·gap/2).
    Returns ``(y, moved)``: the new rows and a ``(batch,)`` mask, false where x_i = x_j."""
    a = as_finite_array("x", x, min_ndim=2)
    if a.ndim != 2 or a.shape[-1] < 2:
        raise ValueError(f"x must be (batch, n) with n >= 2, got shape {a.shape}")
    return _robin_hood(key, jnp.asarray(a, dtype=jnp.result_type(float)))


def _positive(name: str, value) -> np.ndarray:
    v = as_finite_array(name, value)
    if np.any(v <= 0):
        raise ValueError(f"{name} must be > 0")
    return v


def rising_tide(x, alpha) -> np.ndarray:
    """D3: ``x + α`` with α > 0 broadcast against the batch axes, ``(..., n)`` and ``(...)``."""
    a = as_finite_array("x", x, min_ndim=1)
    return a + _positive("alpha", alpha)[..., None]


def rescale(x, alpha) -> np.ndarray:
    """D2: ``α x`` with α > 0 broadcast against the batch axes, ``(..., n)`` and ``(...)``."""
    a = as_finite_array("x", x, min_ndim=1)
    return a * _positive("alpha", alpha)[..., None]


def clone(x, copies: int = 2) -> np.ndarray:
    """D4: ``x ∘ x ∘ ...`` (``copies`` concatenated copies), ``(..., n) -> (..., copies·n)``."""
    a = as_finite_array("x", x, min_ndim=1)
    copies = positive_int("copies", copies)
    return np.concatenate([a] * copies, axis=-1)


def add_zeros(x, zeros: int = 1) -> np.ndarray:
    """P2 ("babies"): ``x ∘ [0, ..., 0]``, ``(..., n) -> (..., n + zeros)``."""
    a = as_finite_array("x", x, min_ndim=1)
    zeros = positive_int("zeros", zeros)
    pad = np.zeros(a.shape[:-1] + (zeros,), dtype=np.result_type(a.dtype, float))
    return np.concatenate([a.astype(pad.dtype), pad], axis=-1)


def bill_gates(x, index, amounts) -> np.ndarray:
    """P1: entry ``index`` of each row raised by each of ``amounts``.

    ``x`` ``(batch, n)``, ``index`` ``(batch,)`` ints, ``amounts`` ``(batch, k)`` (or ``(k,)``,
    shared) -> ``(batch, k, n)``."""
    a = as_finite_array("x", x, min_ndim=2)
    if a.ndim != 2:
        raise ValueError(f"x must be (batch, n), got shape {a.shape}")
    idx = np.asarray(index)
    if idx.shape != a.shape[:1] or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"index must be ({a.shape[0]},) ints, got {idx.dtype} {idx.shape}")
    if np.any((idx < 0) | (idx >= a.shape[1])):
        raise ValueError("index out of range")
    amt = as_finite_array("amounts", amounts, min_ndim=1)
    amt = np.broadcast_to(amt, (a.shape[0], amt.shape[-1]))
    onehot = np.eye(a.shape[1])[idx]  # (batch, n)
    return a[:, None, :] + amt[:, :, None] * onehot[:, None, :]


@partial(jax.jit, static_argnums=(1, 2))
def _draws(key, batch, n):
    k2, k3, k4 = jax.random.split(key, 3)
    log_scale = jax.random.uniform(k2, (batch,), minval=-1.0, maxval=1.0) * 3 * jnp.log(10.0)
    tide = jax.random.uniform(k3, (batch,), minval=0.01, maxval=10.0)
    idx = jax.random.randint(k4, (batch,), 0, n)
    return jnp.exp(log_scale), tide, idx


class Margins(NamedTuple):
    """Per-row margins of the six criteria, each ``(batch,)``, in the paper's orientation.

    For D1, D3, P1, P2 a margin > 0 means the strict inequality holds for that row, = 0 a tie,
    < 0 a violation; D1 is NaN where the two picked entries were equal. For D2 and D4 the
    value is |S(transformed) - S(x)| (the criterion asks for 0). P1 is NaN where the
    raised entry is the only nonzero one.
    """

    D1: np.ndarray
    D2: np.ndarray
    D3: np.ndarray
    D4: np.ndarray
    P1: np.ndarray
    P2: np.ndarray


def desideratum_margins(measure: Callable, key, x, *, higher_is_sparser: bool,
                        gates_ladder=(1.0, 4.0, 16.0, 64.0)) -> Margins:
    """Run the six criteria on every row of ``x`` ``(batch, n)`` for ``measure`` (a function
    ``(..., n) -> (...)``). Scores are oriented so that higher = sparser before comparing.

    D1 uses :func:`robin_hood`; D2 multiplies by α log-uniform in [1e-3, 1e3]; D3 adds α
    drawn in [0.01, 10]·mean(x); D4 compares x with x∘x∘x; P2 appends one zero. P1 cannot
    test "there exists β": it raises a random entry to x_i + t·‖x‖₁ for t on
    ``gates_ladder`` and takes the smallest score increase between consecutive rungs; it is
    NaN where the other entries are all zero (the vector stays one-hot, and no measure that
    is constant on one-hot vectors can move).
    """
    if not callable(measure):
        raise TypeError(f"measure must be callable, got {type(measure).__name__}")
    if not isinstance(higher_is_sparser, bool):
        raise TypeError("higher_is_sparser must be a bool")
    a = np.asarray(as_finite_array("x", x, min_ndim=2), dtype=float)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"x must be (batch, n) with n >= 2, got shape {a.shape}")
    ladder = np.asarray(as_finite_array("gates_ladder", gates_ladder, min_ndim=1), float)
    if ladder.size < 2 or np.any(np.diff(ladder) <= 0) or ladder[0] <= 0:
        raise ValueError("gates_ladder must be >= 2 increasing positive numbers")
    sign = 1.0 if higher_is_sparser else -1.0

    def score(v):
        return sign * np.asarray(measure(v), dtype=float)

    batch = a.shape[0]
    k1, k2 = jax.random.split(key)
    scale, tide, idx = (np.asarray(v) for v in _draws(k2, batch, a.shape[1]))
    y, moved = robin_hood(k1, a)
    raised = bill_gates(a, idx, ladder[None, :] * a.sum(-1, keepdims=True))
    # everything of width n in one call (one compiled kernel per width)
    same_width = np.concatenate([a, np.asarray(y), rescale(a, scale),
                                 rising_tide(a, tide * a.mean(-1)),
                                 raised.reshape(-1, a.shape[1])])
    base, after_rh, scaled, tided, gates = np.split(score(same_width),
                                                    np.cumsum([batch] * 4))
    gates = gates.reshape(batch, ladder.size)
    d1 = np.where(np.asarray(moved), base - after_rh, np.nan)
    d2 = np.abs(scaled - base)
    d3 = base - tided
    d4 = np.abs(score(clone(a, 3)) - base)
    others = a.sum(-1) - a[np.arange(batch), idx]
    p1 = np.where(others > 0, np.min(np.diff(gates, axis=-1), axis=-1), np.nan)
    p2 = score(add_zeros(a, 1)) - base
    return Margins(d1, d2, d3, d4, p1, p2)
