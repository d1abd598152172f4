"""Sparse alternatives to softmax (post 10145): sparsemax, entmax-1.5, losses, Perturb Max.

All maps act on the last axis of ``x`` of shape ``(..., n)`` and return an array of the
same shape and floating dtype on the probability simplex.

* :func:`sparsemax` ``= relu(x - τ)`` and :func:`entmax15` ``= relu(x/2 - τ)²``. The
  threshold ``τ`` is *defined* by sorted cumulative sums (``method="sort"``); by default it
  is found without sorting, by Michelot's support iteration, exact once the support stops
  changing, with the sort as fallback after :data:`SUPPORT_STEPS` steps
  (:func:`sparsemax_threshold`, :func:`entmax15_threshold`). Jacobian-vector products are
  ``jax.custom_jvp`` rules (sparsemax: ``s ⊙ (v - mean_s v)`` with ``s`` the support;
  entmax-1.5: ``g ⊙ v - g (g·v)/Σg`` with ``g = √p``);
* :func:`entmax_bisection`: the threshold of α-entmax ``relu((α-1)x - τ)^{1/(α-1)}`` by
  bisection, an independent solver of the same optimisation;
* :func:`sparsemax_loss`: the loss whose gradient is ``sparsemax(x) - onehot(t)``;
* :func:`perturbmax`: ``P[argmax(x + ε) = i]`` for i.i.d. Gumbel or Gaussian noise by
  quadrature over the noise's inverse CDF.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from sulib._checks import as_finite_array, one_of, positive_int

__all__ = ["sparsemax", "entmax15", "sparsemax_threshold", "entmax15_threshold",
           "entmax_bisection", "sparsemax_loss", "perturbmax", "NOISES", "METHODS",
           "SUPPORT_STEPS"]

#: Noise laws :func:`perturbmax` knows.
NOISES = ("gumbel", "gaussian")

#: Threshold solvers: ``"support"`` (default, sort-free support iteration with the sort as
#: fallback) and ``"sort"`` (the sorted-cumulative-sum definition).
METHODS = ("support", "sort")

#: Cap on the support iteration; rows not converged by then are solved by the sort.
SUPPORT_STEPS = 50


def _check_x(x) -> jax.Array:
    """``x`` as a jax array in its own floating dtype (integers: the default float)."""
    if isinstance(x, jax.core.Tracer):  # under jax.grad / vmap: check what is static
        if x.ndim < 1 or x.shape[-1] < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"x must be a float array of shape (..., n >= 1), got {x.shape}")
        return x
    array = as_finite_array("x", x, min_ndim=1)
    if array.dtype == bool:
        raise TypeError("x must hold real scores, got dtype bool")
    if array.shape[-1] < 1:
        raise ValueError(
            f"x must have at least one entry on its last axis, got shape {array.shape}")
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else jnp.result_type(float)
    return jnp.asarray(array, dtype=dtype)


def _sorted_desc(x: jax.Array) -> jax.Array:
    return -jnp.sort(-x, axis=-1)


def _ranks(x: jax.Array) -> jax.Array:
    return jnp.arange(1, x.shape[-1] + 1, dtype=x.dtype)


def _sparsemax_tau_sort(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Definition: sort, ``λ_k = (Σ_{i≤k} z_i - 1)/k``, largest ``k`` with ``z_k > λ_k``."""
    z = _sorted_desc(x)
    cum = jnp.cumsum(z, axis=-1) - 1
    support = jnp.sum(_ranks(x) * z > cum, axis=-1, keepdims=True)  # largest k with z_k > λ_k
    tau = jnp.take_along_axis(cum, support - 1, axis=-1) / support.astype(x.dtype)
    return tau, support[..., 0].astype(jnp.int32)


def _entmax15_tau_sort(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Definition: sort z = x/2; λ_k = μ_k - √(1/k - σ_k²); largest k with z_k ≥ λ_k."""
    z = _sorted_desc(x / 2)
    k = _ranks(x)
    mean = jnp.cumsum(z, axis=-1) / k
    var = jnp.cumsum(z * z, axis=-1) / k - mean**2
    lam = mean - jnp.sqrt(jnp.maximum(1 / k - var, 0))
    support = jnp.sum(lam <= z, axis=-1, keepdims=True)  # largest k with z_k >= λ_k
    tau = jnp.take_along_axis(lam, support - 1, axis=-1)
    return tau, jnp.sum(z > tau, axis=-1, dtype=jnp.int32)  # |{p > 0}|: drops z_k = λ_k


def _support_iteration(z: jax.Array, update) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Michelot's iteration ``S = {z > τ}``, ``τ ← update(S)`` from ``τ₀ = max z - 1``.

    From below, each step raises ``τ`` and shrinks ``S`` until it stops changing (exact:
    ``S`` is then the support). Threshold sets are nested, so an unchanged size means an
    unchanged set. Returns ``τ`` ``(..., 1)``, ``|S|`` ``(...,)`` and whether every row
    converged within :data:`SUPPORT_STEPS` steps.
    """
    tau0 = jnp.max(z, axis=-1, keepdims=True) - 1
    size0 = jnp.full(z.shape[:-1], -1, jnp.int32)

    def step(carry):
        tau, size, _, it = carry
        on = z > tau
        new_size = jnp.sum(on, axis=-1, dtype=jnp.int32)
        return update(on, new_size[..., None].astype(z.dtype)), new_size, size, it + 1

    def going(carry):
        _, size, old, it = carry
        return jnp.any(size != old) & (it < SUPPORT_STEPS)

    tau, size, old, _ = jax.lax.while_loop(going, step, step((tau0, size0, size0, jnp.int32(0))))
    return tau, size, jnp.all(size == old)


def _sparsemax_update(z, on, k):
    return (jnp.sum(jnp.where(on, z, 0), axis=-1, keepdims=True) - 1) / k


def _entmax15_update(z, on, k):
    mean = jnp.sum(jnp.where(on, z, 0), axis=-1, keepdims=True) / k
    var = jnp.sum(jnp.where(on, z * z, 0), axis=-1, keepdims=True) / k - mean**2
    return mean - jnp.sqrt(jnp.maximum(1 / k - var, 0))


def _sparsemax_tau_support(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x0 = jax.lax.stop_gradient(x)
    tau, size, done = _support_iteration(x0, lambda on, k: _sparsemax_update(x0, on, k))
    tau, size = jax.lax.cond(done, lambda: (tau, size), lambda: _sparsemax_tau_sort(x0))
    # once more on the found support, differentiably in x (no gradient through the loop)
    return _sparsemax_update(x, x0 > tau, size[..., None].astype(x.dtype)), size


def _entmax15_tau_support(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    z0 = jax.lax.stop_gradient(x) / 2
    tau, size, done = _support_iteration(z0, lambda on, k: _entmax15_update(z0, on, k))
    tau, size = jax.lax.cond(done, lambda: (tau, size), lambda: _entmax15_tau_sort(2 * z0))
    return _entmax15_update(x / 2, z0 > tau, size[..., None].astype(x.dtype)), size


_TAU = {("sparsemax", "support"): _sparsemax_tau_support,
        ("sparsemax", "sort"): _sparsemax_tau_sort,
        ("entmax15", "support"): _entmax15_tau_support,
        ("entmax15", "sort"): _entmax15_tau_sort}


def _make_map(name: str, method: str):
    tau_fn = _TAU[name, method]

    @jax.custom_jvp
    def f(x):
        x = x - jnp.max(x, axis=-1, keepdims=True)
        tau, _ = tau_fn(x)
        if name == "sparsemax":
            return jnp.maximum(x - tau, 0)
        return jnp.maximum(x / 2 - tau, 0) ** 2

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (v,) = primals, tangents
        p = f(x)
        if name == "sparsemax":
            s = (p > 0).astype(p.dtype)
            mean = jnp.sum(s * v, axis=-1, keepdims=True) / jnp.sum(s, axis=-1, keepdims=True)
            return p, s * (v - mean)
        g = jnp.sqrt(p)
        gv = jnp.sum(g * v, axis=-1, keepdims=True)
        return p, g * v - g * gv / jnp.sum(g, axis=-1, keepdims=True)

    return f


_MAPS = {key: jax.jit(_make_map(*key)) for key in _TAU}
_TAU_JIT = {key: jax.jit(fn) for key, fn in _TAU.items()}


def _make_plain(name: str):
    """Forward pass by the support iteration alone, and whether it converged."""
    update = _sparsemax_update if name == "sparsemax" else _entmax15_update

    def f(x):
        x = x - jnp.max(x, axis=-1, keepdims=True)
        z = x if name == "sparsemax" else x / 2
        tau, _, done = _support_iteration(z, lambda on, k: update(z, on, k))
        p = jnp.maximum(z - tau, 0)
        return (p if name == "sparsemax" else p**2), done

    return jax.jit(f)


_PLAIN = {name: _make_plain(name) for name in ("sparsemax", "entmax15")}


def _apply(name: str, x, method: str) -> jax.Array:
    """Concrete input: support iteration, the sort only if it did not converge (decided on
    the host, so the sort is compiled only when needed). Traced input (jax.grad, jit,
    vmap): the ``custom_jvp`` map, with the fallback as ``lax.cond`` inside."""
    x = _check_x(x)
    if one_of("method", method, METHODS) == "support" and not isinstance(x, jax.core.Tracer):
        p, done = _PLAIN[name](x)
        if bool(done):
            return p
        method = "sort"
    return _MAPS[name, method](x)


def sparsemax(x, *, method: str = "support") -> jax.Array:
    """Euclidean projection of each row onto the simplex: ``relu(x - τ(x))``.

    Args:
        x: ``(..., n)`` real, finite scores (not bool). Floating inputs keep their dtype
            (float32 stays float32); integer inputs become the default float.
        method: threshold solver, one of :data:`METHODS` (see :func:`sparsemax_threshold`).

    Returns:
        ``(..., n)``, non-negative, each row summing to 1. Differentiable with ``jax.grad`` /
        ``jax.jvp``: the JVP is ``s ⊙ (v - Σ s v / Σ s)`` with ``s`` the indicator of ``p > 0``.

    Raises:
        TypeError, ValueError: if ``x`` is not a real, finite array with a non-empty last axis,
            or ``method`` is unknown.
    """
    return _apply("sparsemax", x, method)


def entmax15(x, *, method: str = "support") -> jax.Array:
    """1.5-entmax of each row: ``relu(x/2 - τ(x))²`` with ``Σ = 1`` (Peters et al., 2019).

    Args:
        x: ``(..., n)`` real, finite scores; dtype as in :func:`sparsemax`.
        method: threshold solver, one of :data:`METHODS` (see :func:`entmax15_threshold`).

    Returns:
        ``(..., n)`` on the simplex; JVP ``g ⊙ v - g (g·v)/Σg`` with ``g = √p``.

    Raises:
        TypeError, ValueError: as :func:`sparsemax`.
    """
    return _apply("entmax15", x, method)


def sparsemax_threshold(x, *, method: str = "support") -> tuple[jax.Array, jax.Array]:
    """Threshold τ ``(...,)`` and support size ``|{p > 0}|`` ``(...,)`` of :func:`sparsemax`.

    Definition (``method="sort"``): ``τ = (Σ_{i≤k} z_i - 1)/k`` for the sorted ``z`` and the
    largest ``k`` with ``z_k > τ_k``. Default (``"support"``): the same τ without sorting, by
    Michelot's iteration ``S = {x > τ}``, ``τ ← (Σ_S x - 1)/|S|`` from ``τ = max x - 1``,
    which is exact once ``S`` stops changing; after :data:`SUPPORT_STEPS` steps without
    convergence the batch falls back to the sort (under ``jax.vmap`` both branches run).
    """
    tau, k = _TAU_JIT["sparsemax", one_of("method", method, METHODS)](_check_x(x))
    return tau[..., 0], k


def entmax15_threshold(x, *, method: str = "support") -> tuple[jax.Array, jax.Array]:
    """Threshold τ ``(...,)`` (on the scale of ``x/2``) and support size ``|{p > 0}|``.

    Definition (``method="sort"``): ``τ = μ_k - √(1/k - σ_k²)`` for the sorted ``z = x/2``
    (``μ_k``, ``σ_k²`` the mean and variance of the top ``k``) and the largest ``k`` with
    ``z_k ≥ τ_k``. Default (``"support"``): the support iteration of
    :func:`sparsemax_threshold` with ``τ ← μ_S - √max(1/|S| - σ_S², 0)``, sort as fallback.
    """
    tau, k = _TAU_JIT["entmax15", one_of("method", method, METHODS)](_check_x(x))
    return tau[..., 0], k


def _entmax_bisect(x, alpha, iterations: int):
    z = (alpha - 1.0) * (x - jnp.max(x, axis=-1, keepdims=True))   # max z = 0
    power = 1.0 / (alpha - 1.0)
    lo = jnp.full(z.shape[:-1] + (1,), -1.0, z.dtype)    # Σ relu(z - lo)^power >= 1
    hi = jnp.zeros_like(lo)                              # Σ relu(z - hi)^power = 0

    def body(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        big = jnp.sum(jnp.maximum(z - mid, 0.0) ** power, axis=-1, keepdims=True) >= 1.0
        return jnp.where(big, mid, lo), jnp.where(big, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    tau = (lo + hi) / 2
    p = jnp.maximum(z - tau, 0.0) ** power
    return p / jnp.sum(p, axis=-1, keepdims=True), tau[..., 0]


_entmax_bisect_jit = jax.jit(_entmax_bisect, static_argnums=2)


def entmax_bisection(x, alpha: float, *, iterations: int = 100) -> tuple[jax.Array, jax.Array]:
    """α-entmax by bisection on its threshold: ``p = relu((α-1)(x - max x) - τ)^{1/(α-1)}``.

    The threshold lies in ``[-1, 0]`` once the largest entry is 0 (at ``τ = -1`` that entry alone
    gives 1); each step halves the bracket, so 100 steps reach float64 rounding.

    Args:
        x: ``(..., n)`` real, finite scores.
        alpha: ``α > 1`` (2: sparsemax, 1.5: 1.5-entmax).
        iterations: bisection steps, ``>= 1``.

    Returns:
        ``p`` ``(..., n)`` (renormalised to sum 1) and ``τ`` ``(...,)`` for the shifted scores.

    Raises:
        TypeError, ValueError: for a bad ``x``, ``alpha <= 1`` or ``iterations < 1``.
    """
    arr = _check_x(x)
    a = as_finite_array("alpha", alpha)
    if a.ndim != 0 or not a > 1:
        raise ValueError(f"alpha must be a scalar > 1, got {alpha!r}")
    return _entmax_bisect_jit(arr, float(a), positive_int("iterations", iterations))


@jax.jit
def _sparsemax_loss(x, target):
    tau, _ = _sparsemax_tau_support(x)
    tau = tau[..., 0]
    on = x > tau[..., None]
    half_sq = 0.5 * jnp.sum(jnp.where(on, x**2 - tau[..., None] ** 2, 0.0), axis=-1)
    x_t = jnp.take_along_axis(x, target[..., None], axis=-1)[..., 0]
    return 0.5 - x_t + half_sq


def sparsemax_loss(x, target) -> jax.Array:
    """Sparsemax loss ``½ - x_t + ½ Σ_{i: x_i > τ} (x_i² - τ²)`` (Martins & Astudillo, 2016).

    Its gradient in ``x`` is ``sparsemax(x) - onehot(t)``; it is ``>= 0`` and ``0`` exactly when
    ``sparsemax(x) = onehot(t)``.

    Args:
        x: ``(..., n)`` real, finite scores.
        target: ``(...)`` integer class indices in ``[0, n)``.

    Returns:
        ``(...)`` losses.

    Raises:
        TypeError, ValueError: for a bad ``x``, a non-integer ``target``, a shape mismatch or an
        index out of range.
    """
    arr = _check_x(x)
    t = np.asarray(target)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"target must hold integers, got dtype {t.dtype}")
    if t.shape != arr.shape[:-1]:
        raise ValueError(f"target must have shape {arr.shape[:-1]}, got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= arr.shape[-1]):
        raise ValueError(f"target must lie in [0, {arr.shape[-1]}), got {t.min()}..{t.max()}")
    return _sparsemax_loss(arr, jnp.asarray(t))


def _quantiles(noise: str, nodes: int, dtype) -> jax.Array:
    t = (jnp.arange(nodes, dtype=dtype) + 0.5) / nodes           # midpoints of [0, 1]
    return -jnp.log(-jnp.log(t)) if noise == "gumbel" else ndtri(t)


def _log_cdf(noise: str, e: jax.Array) -> jax.Array:
    return -jnp.exp(-e) if noise == "gumbel" else jnp.log(ndtr(e))


def _perturbmax(x, noise: str, nodes: int):
    eps = _quantiles(noise, nodes, x.dtype)                       # (M,)
    diff = x[..., :, None] - x[..., None, :]                      # (..., n, n): x_i - x_j
    logs = _log_cdf(noise, diff[..., None] + eps)                 # (..., n, n, M)
    # Π_{j≠i} Φ(x_i - x_j + ε): drop the diagonal term log Φ(ε)
    total = jnp.sum(logs, axis=-2) - _log_cdf(noise, eps)         # (..., n, M)
    return jnp.mean(jnp.exp(total), axis=-1)


_perturbmax_jit = jax.jit(_perturbmax, static_argnums=(1, 2))


def perturbmax(x, noise: str = "gaussian", *, nodes: int = 4096) -> jax.Array:
    """Perturb Max ``p_i = E_ε[Π_{j≠i} Φ(x_i - x_j + ε)] = P[argmax(x + ε) = i]``.

    The expectation over the noise ε (CDF Φ) is the midpoint rule on ``ε = Φ⁻¹(u)``, ``u`` on
    a uniform grid of ``nodes`` points of ``(0, 1)``: deterministic, no sampling.

    Args:
        x: ``(..., n)`` real, finite scores (``n`` small: the work is ``n² · nodes`` per row).
        noise: ``"gumbel"`` (then ``p = softmax(x)``) or ``"gaussian"``.
        nodes: quadrature points, ``>= 2``.

    Returns:
        ``(..., n)`` probabilities (their sum is 1 up to the quadrature error).

    Raises:
        TypeError, ValueError: for a bad ``x``, an unknown ``noise`` or ``nodes < 2``.
    """
    arr = _check_x(x)
    one_of("noise", noise, NOISES)
    return _perturbmax_jit(arr, noise, positive_int("nodes", nodes, minimum=2))
