"""Softmax attention entropy: scores under simple query/key models, and the entropy of
softmax(λ·s) together with the two terms the mean-field approximation drops.

Shapes: ``scores`` is ``(..., n)`` (one softmax over the last axis per row);
``scales`` is ``(k,)``; results are ``(k, ...)``. Everything is float64 when JAX's x64
mode is on (the chapters turn it on), float32 otherwise.

Causal attention as a recurrence (post 10017): the same outputs in four forms,
:func:`causal_attention_recurrent` (the post's RNN, no running max), :func:`causal_attention_online`
(running max), :func:`causal_attention_blocked` (FlashAttention's blocks) and
:func:`causal_attention_matrix` (the masked matrix); :func:`linear_attention_recurrent`, an RNN with
a fixed-size state; :func:`attention_stack`, a multi-layer attention model run with a KV cache or
recomputing everything from the token ids. Shapes ``(..., L, d)`` for queries and keys,
``(..., L, d_v)`` for values and outputs.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sulib._checks import as_finite_array, one_of, positive_int

__all__ = [
    "SCORE_MODELS",
    "EntropyTerms",
    "attention_scores",
    "attention_scores_by_dim",
    "entropy_terms",
    "prefix_entropy_terms",
    "softmax_entropy",
    "SoftmaxStats",
    "softmax_stats",
    "STATS_DTYPES",
    "matching_scale",
    "matching_scales",
    "ATTENTION_FORMS",
    "LINEAR_FEATURES",
    "STACK_MODES",
    "causal_attention",
    "causal_attention_recurrent",
    "causal_attention_online",
    "causal_attention_blocked",
    "causal_attention_matrix",
    "linear_attention_recurrent",
    "attention_stack",
    "MEMORY_KINDS",
    "compiled_temp_bytes",
]

#: Query/key models understood by :func:`attention_scores`.
SCORE_MODELS = ("gaussian", "sphere", "margin")


class EntropyTerms(NamedTuple):
    """Exact entropy and the pieces of ``H ≈ log n - λ(s_max - s̄)``; each ``(k, ...)``.

    ``entropy == log(n) - scale * (s_max - s_mean) + jensen_gap + concentration_gap``
    holds exactly (up to rounding), and both gaps are >= 0.
    """

    entropy: jax.Array  #: H = -Σ p_i log p_i
    approximation: jax.Array  #: log n - λ (s_max - s̄)
    jensen_gap: jax.Array  #: log((1/n) Σ e^{λ s_i}) - λ s̄ >= 0 (mean field drops it)
    concentration_gap: jax.Array  #: λ (s_max - Σ p_i s_i) >= 0 ("p sits on the max" drops it)


@jax.jit
def _terms(scores: jax.Array, scales: jax.Array) -> EntropyTerms:
    n = scores.shape[-1]

    def one(lam):
        z = lam * scores
        z_max = jnp.max(z, axis=-1, keepdims=True)
        e = jnp.exp(z - z_max)  # one exponential pass serves both logsumexp and softmax
        total = jnp.sum(e, axis=-1)
        lse = z_max[..., 0] + jnp.log(total)
        mean_z = jnp.sum(e * z, axis=-1) / total
        s_max = jnp.max(scores, axis=-1)
        s_bar = jnp.mean(scores, axis=-1)
        return EntropyTerms(
            entropy=lse - mean_z,
            approximation=jnp.log(n) - lam * (s_max - s_bar),
            jensen_gap=lse - jnp.log(n) - lam * s_bar,
            concentration_gap=lam * s_max - mean_z,
        )

    return jax.vmap(one)(scales)


def _check_scores_scales(scores, scales):
    checked = as_finite_array("scores", scores, min_ndim=1)  # a view of a JAX array on the CPU
    if checked.shape[-1] < 1:
        raise ValueError(f"scores must have n >= 1 entries on its last axis, got shape {checked.shape}")
    scales = as_finite_array("scales", scales)
    if scales.ndim > 1:
        raise ValueError(f"scales must be a scalar or a 1-d array, got shape {scales.shape}")
    # a JAX array goes on as it is (converting the checked view back would copy it), and the
    # scales stay NumPy until the kernel's call: small jnp operations each cost a dispatch, and
    # together these were a quarter of the kernel's time at n = 4096 with 8 scales
    scores = scores if isinstance(scores, jax.Array) else jnp.asarray(checked)
    return scores, np.atleast_1d(scales.astype(jnp.result_type(float)))


def entropy_terms(scores, scales) -> EntropyTerms:
    """Entropy of ``softmax(λ s)`` per row, for each λ in ``scales``, with the dropped terms.

    Args:
        scores: ``(..., n)`` real, finite.
        scales: scalar or ``(k,)``: the inverse temperatures λ.

    Returns:
        :class:`EntropyTerms` of arrays of shape ``(k, ...)`` (``k = 1`` for a scalar).
    """
    return _terms(*_check_scores_scales(scores, scales))


def _check_lengths(lengths, n: int) -> tuple[int, ...]:
    if isinstance(lengths, (int, np.integer)):
        lengths = (lengths,)
    try:
        lengths = tuple(lengths)
    except TypeError as exc:
        raise TypeError(f"lengths must be a sequence of ints, got {type(lengths).__name__}") from exc
    if not lengths:
        raise ValueError("lengths must not be empty")
    lengths = tuple(positive_int("lengths", L) for L in lengths)
    if max(lengths) > n:
        raise ValueError(f"lengths must be <= n = {n} (the last axis of scores), got {max(lengths)}")
    return lengths


@partial(jax.jit, static_argnames=("lengths",))
def _prefix_terms(scores, scales, lengths):
    # lax.map, not vmap, over the scales: one (..., L) block in memory at a time
    parts = [jax.lax.map(lambda lam, L=L: _terms(scores[..., :L], lam[None]), scales[:, m])
             for m, L in enumerate(lengths)]  # each leaf (k, 1, ...)
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *parts)


def prefix_entropy_terms(scores, lengths, scales) -> EntropyTerms:
    """:func:`entropy_terms` of the nested prefixes ``scores[..., :L]``, all in one compiled call.

    The chapters sweep the number of keys by taking the first ``L`` keys of one long sample;
    calling :func:`entropy_terms` once per ``L`` would compile once per shape. Here the scale
    may depend on the length (``scales[k, m]`` is used with ``lengths[m]``).

    Args:
        scores: ``(..., n)`` real, finite.
        lengths: ``m`` ints in ``[1, n]``.
        scales: ``(k,)`` (the same scales at every length) or ``(k, m)``.

    Returns:
        :class:`EntropyTerms` of arrays of shape ``(k, m, ...)``; entry ``[:, m]`` equals
        ``entropy_terms(scores[..., :lengths[m]], scales[:, m])``.
    """
    scores, _ = _check_scores_scales(scores, 1.0)
    lengths = _check_lengths(lengths, scores.shape[-1])
    scales = as_finite_array("scales", scales)
    if scales.ndim == 1:
        scales = np.repeat(scales[:, None], len(lengths), axis=1)
    if scales.ndim != 2 or scales.shape[1] != len(lengths):
        raise ValueError(f"scales must have shape (k,) or (k, {len(lengths)}), got {scales.shape}")
    scales = jnp.asarray(scales, dtype=jnp.result_type(float))
    return _prefix_terms(scores, scales, lengths)


def softmax_entropy(scores, scales) -> jax.Array:
    """``-Σ_i p_i log p_i`` with ``p = softmax(λ s)`` over the last axis; shape ``(k, ...)``.

    Computed by the fused kernel of :func:`softmax_stats` (float64 when x64 is on) without its
    third sum Σe²; it agrees with ``entropy_terms(scores, scales).entropy`` to rounding (about
    1e-15 relative).
    """
    scores, scales = _check_scores_scales(scores, scales)
    return _stats(scores, scales, scales.dtype.name, bool(np.any(scales < 0)), moments=2).entropy


class SoftmaxStats(NamedTuple):
    """Per-row statistics of ``p = softmax(λ s)``; each ``(k, ...)`` (see :func:`softmax_stats`)."""

    logsumexp: jax.Array  #: log Σ_i e^{λ s_i}
    entropy: jax.Array  #: H = -Σ p_i log p_i
    sum_p2: jax.Array  #: Σ p_i² (the collision probability; 1/Σp² is the effective number of keys)
    max_p: jax.Array  #: max_i p_i
    jacobian_half_l1: jax.Array  #: ½ Σ_ij |∂p_i/∂s_j| = |λ| (1 - Σ p_i²)


#: Elements of one block of :func:`softmax_stats`: 256 KiB of float64, so that a block and its
#: exponentials stay in the core's L2 cache while every scale passes over it.
_STATS_BLOCK = 2**15
#: Fewest rows in a block of :func:`softmax_stats` (longer rows are cut into pieces).
_STATS_SUBROWS = 8
#: Compute dtypes of :func:`softmax_stats`.
STATS_DTYPES = ("float64", "float32")


# exp(u) for u <= 0 in float64: u = k ln2 + r, |r| <= ln2/2, e^r = 1 + r + r² q(r) with q the
# polynomial of degree 9 that interpolates (e^r - 1 - r)/r² at the 10 Chebyshev nodes of
# [-ln2/2, ln2/2] (relative error of e^r < 2e-17 there; Taylor needs degree 13 for that), then
# times 2^k put straight into the exponent bits. q is evaluated in Estrin's scheme (pairs
# c_i + c_{i+1} r combined with r², r⁴, r⁸: a dependency chain of 5 multiply-adds instead of
# Horner's 10), and the two leading terms added last, which keeps the rounding of Horner's form.
# Measured within 1 ulp of NumPy's exp over u in [-700, 0]; the coefficients are re-derived in
# 50-digit arithmetic and the bound checked there (tests/test_attention.py). Below -700 it returns
# e^-700 ≈ 1e-304 (no subnormals), below rounding of any sum that also holds the row maximum's e^0 = 1.
# XLA's own float64 exp on the CPU is slower (benchmarks/attention.py measures both).
_LN2_HI, _LN2_LO = 0.6931471803691238, 1.9082149292705877e-10  # ln 2 = HI + LO, HI has 32 bits
_EXP_COEFFS = (  # c_0 ... c_9 of q (c_i ≈ 1/(i+2)!)
    0.5000000000000001, 0.16666666666666669, 0.041666666666624164, 0.008333333333330065,
    0.0013888888917196719, 0.00019841269863040545, 2.4801521322368692e-05, 2.7557268480310024e-06,
    2.7620075879983367e-07, 2.5100375832561234e-08)
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: k + SHIFT holds k in its low mantissa bits


def _exp_nonpositive(u):
    u = jnp.maximum(u, -700.0)
    k = jnp.round(u * (1.0 / math.log(2.0)))
    r = (u - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    terms = [c0 + c1 * r for c0, c1 in zip(_EXP_COEFFS[0::2], _EXP_COEFFS[1::2])]  # 5 pairs
    power = r2
    while len(terms) > 1:  # Estrin: 5 -> 3 -> 2 -> 1 terms, with r², r⁴, r⁸
        pairs = [terms[i] + terms[i + 1] * power for i in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(terms) - len(terms) % 2:]
        power = power * power
    p = 1.0 + (r + r2 * terms[0])
    k_bits = lax.bitcast_convert_type(k + _SHIFT, jnp.int64)  # the exponent field shifts k out
    return lax.bitcast_convert_type(lax.bitcast_convert_type(p, jnp.int64) + (k_bits << 52), jnp.float64)


def _block_sums(xc, lam, exp_dtype, moments):
    """Σe, Σe·xc, Σe² (the first ``moments`` of them) over the last axis of ``xc`` ``(G, C)`` (entries
    <= 0), ``e = exp(λ xc)``, λ >= 0: shape ``(moments, G)``.

    ``xc`` and the sums are in the accumulation dtype; only ``exp`` runs in ``exp_dtype``.
    """
    u = lam * xc
    if exp_dtype == "float64":
        e = _exp_nonpositive(u)
    else:
        e = jnp.exp(u.astype(exp_dtype)).astype(xc.dtype)
    # without the barrier XLA recomputes exp in each of the three reductions; with it the block
    # of exponentials is written once (it is small enough to stay in cache) and read three times
    e = lax.optimization_barrier(e)
    sums = [jnp.sum(e, axis=-1), jnp.sum(e * xc, axis=-1), jnp.sum(e * e, axis=-1)][:moments]
    return jnp.stack(sums)


def _scale_sums(xh, xn, lam, exp_dtype, moments):
    """:func:`_block_sums` of ``|λ| xh`` (λ >= 0) or ``|λ| xn`` (λ < 0, softmax(λs) = softmax(|λ|(-s)))."""
    if xn is None:
        return _block_sums(xh, lam, exp_dtype, moments)
    return lax.cond(lam >= 0, lambda: _block_sums(xh, lam, exp_dtype, moments),
                    lambda: _block_sums(xn, -lam, exp_dtype, moments))


@partial(jax.jit, static_argnames=("exp_dtype", "negative", "moments", "block"))
def _stats(scores, scales, exp_dtype, negative: bool, moments: int = 3,
           block: int = _STATS_BLOCK) -> SoftmaxStats:
    # moments = 2 skips Σe² (softmax_entropy): sum_p2 and jacobian_half_l1 are then nan
    lead, n = scores.shape[:-1], scores.shape[-1]
    x = scores.reshape(-1, n).astype(scales.dtype)
    rows, k = x.shape[0], scales.shape[0]
    # softmax(λs) = softmax(λ(s - max s)) for λ >= 0 and softmax(|λ|(min s - s)) for λ < 0: the
    # centred scores (<= 0) are formed once for all scales, the row max of every λs is known up
    # front (so partial sums over column blocks add up), and u = |λ| xc is one multiply
    s_max, s_min = jnp.max(x, axis=-1), jnp.min(x, axis=-1)
    z_max = jnp.where(scales[:, None] >= 0, scales[:, None] * s_max, scales[:, None] * s_min)  # (k, rows)
    xh = x - s_max[:, None]
    xn = (s_min[:, None] - x) if negative else None

    def sums_of_blocks(bh, bn):  # (B, G, C) each -> (k, moments, B, G)
        def one_block(args):  # a block stays in cache while the scales pass over it
            gh, gn = args
            return lax.map(lambda lam: _scale_sums(gh, gn, lam, exp_dtype, moments), scales)
        return jnp.moveaxis(lax.map(one_block, (bh, bn)), 0, 2)

    def row_sums(h, g):  # (R, c) each -> (k, moments, R): whole rows, `per` of them to a block
        r, c = h.shape
        per = min(r, max(1, block // c))
        nb = -(-r // per)
        per = -(-r // nb)  # spread the rows evenly: at most nb - 1 rows of padding
        pad = ((0, nb * per - r), (0, 0))
        cut = lambda a: None if a is None else jnp.pad(a, pad).reshape(nb, per, c)
        return sums_of_blocks(cut(h), cut(g)).reshape(k, moments, nb * per)[:, :, :r]

    # XLA reduces the rows of a block side by side in vector registers, but a block of one long
    # row in a single chain bound by the add latency: rows longer than `width` are cut into
    # pieces of `width` columns, so that every block holds _STATS_SUBROWS rows or more
    width = max(1, block // _STATS_SUBROWS)
    if n <= width:
        sums = row_sums(xh, xn)
    else:  # pieces summed per row, then the remaining columns of each row
        m = n // width
        piece = lambda a: None if a is None else a[:, :m * width].reshape(rows * m, width)
        sums = row_sums(piece(xh), piece(xn)).reshape(k, moments, rows, m).sum(axis=-1)
        if n > m * width:
            tail = lambda a: None if a is None else a[:, m * width:]
            sums = sums + row_sums(tail(xh), tail(xn))
    total, e_xc = sums[:, 0], sums[:, 1]
    e2 = sums[:, 2] if moments == 3 else jnp.full_like(total, jnp.nan)
    log_total = jnp.log(total)
    sum_p2 = e2 / total**2
    shape = (k, *lead)
    return SoftmaxStats(
        logsumexp=(z_max + log_total).reshape(shape),
        entropy=(log_total - jnp.abs(scales)[:, None] * e_xc / total).reshape(shape),
        sum_p2=sum_p2.reshape(shape),
        max_p=(1.0 / total).reshape(shape),  # the largest e is e^0 = 1
        jacobian_half_l1=(jnp.abs(scales)[:, None] * (1.0 - sum_p2)).reshape(shape),
    )


def softmax_stats(scores, scales, *, dtype="float64") -> SoftmaxStats:
    """Entropy, Σp², max p, logsumexp and the Jacobian's half-L1 norm of ``p = softmax(λ s)``.

    One fused kernel for every row and scale: the row maxima of ``s`` give the shift
    ``max_i λ s_i`` of every scale at once, then the scores are cut into blocks of about
    2^15 entries (whole rows of up to 4096 entries, longer rows cut into pieces of 4096 and a
    remainder), and each block, while it sits in cache, is passed once per scale to take
    ``u = λ s - max``, ``e = exp(u)`` and the three sums ``Σe``, ``Σe·u``, ``Σe²``, from which
    ``log Σe^{λs} = max + log Σe``, ``H = log Σe - Σe·u / Σe``, ``Σp² = Σe² / (Σe)²``,
    ``max p = 1 / Σe`` and ``½‖J‖₁ = |λ| (1 - Σp²)`` (``J = λ (diag p - p pᵀ)``, the Jacobian
    of ``softmax(λ s)`` in ``s``; its entries' absolute values sum to ``2|λ| (1 - Σp²)``).
    Nothing of size ``(k, ..., n)`` is formed.

    Args:
        scores: ``(..., n)`` real, finite.
        scales: scalar or ``(k,)``: the inverse temperatures λ (any sign).
        dtype: ``"float64"`` (default: every step in float64 when x64 is on) or ``"float32"``:
            the exponentials in float32, everything else (``u``, the sums) in float64. It costs
            about 1e-7 relative in each ``e`` (max |ΔH| ≈ 5e-8 nats, |ΔΣp²| ≈ 2e-8 on the
            benchmark's scores) and, although XLA's float32 ``exp`` runs at twice the float64
            rate, buys no speed on the CPU measured: the kernel's time is in its passes over each
            block, not in ``exp`` (``benchmarks/attention.py``). Without x64 both are float32.

    Returns:
        :class:`SoftmaxStats` of arrays of shape ``(k, ...)`` (``k = 1`` for a scalar scale).
        ``entropy`` equals ``entropy_terms(scores, scales).entropy`` to rounding.

    Raises:
        ValueError, TypeError: naming the argument, for non-finite or ill-shaped ``scores`` /
            ``scales`` or an unknown ``dtype``.
    """
    if not isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype).name
        except TypeError as exc:
            raise TypeError(f"dtype must be one of {STATS_DTYPES}, got {dtype!r}") from exc
    one_of("dtype", dtype, STATS_DTYPES)
    scores, scales = _check_scores_scales(scores, scales)
    exp_dtype = "float32" if dtype == "float32" else scales.dtype.name
    return _stats(scores, scales, exp_dtype, bool(np.any(scales < 0)))


@partial(jax.jit, static_argnames=("model", "n", "d", "queries"))
def _scores(key, model: str, n: int, d: int, queries: int, rho) -> jax.Array:
    kq, kk, kr = jax.random.split(key, 3)
    q = jax.random.normal(kq, (queries, d))
    k = jax.random.normal(kk, (n, d))
    if model == "sphere":  # |q| = |k| = sqrt(d), directions uniform on the sphere
        q = q * jnp.sqrt(d) / jnp.linalg.norm(q, axis=-1, keepdims=True)
        k = k * jnp.sqrt(d) / jnp.linalg.norm(k, axis=-1, keepdims=True)
    scores = q @ k.T
    if model == "margin":  # key 0 of each row leans towards its query: cos(q, k_0) ≈ rho
        z = jax.random.normal(kr, (queries, d))
        relevant = rho * q + jnp.sqrt(1.0 - rho**2) * z
        scores = scores.at[:, 0].set(jnp.sum(q * relevant, axis=-1))
    return scores


def attention_scores(key: jax.Array, model: str, n: int, d: int, *, queries: int = 32,
                     rho: float = 0.5) -> jax.Array:
    """Dot-product scores ``s_ij = q_i · k_j`` of ``queries`` queries against ``n`` keys.

    Keys are drawn independently, so ``scores[:, :m]`` is a valid sample for ``m`` keys:
    one call at the largest ``n`` gives nested samples for every smaller length.

    Models:
        ``"gaussian"``: q, k with i.i.d. N(0, 1) entries (s has mean 0, variance ≈ d).
        ``"sphere"``: q, k uniform on the sphere of radius √d (the post's assumption).
        ``"margin"``: as ``"gaussian"``, but key 0 of each query is ``rho·q + √(1-rho²)·z``,
        one relevant key whose score stands about ``rho·d`` above the rest.

    Returns:
        ``(queries, n)`` array of scores.
    """
    one_of("model", model, SCORE_MODELS)
    n = positive_int("n", n)
    d = positive_int("d", d)
    queries = positive_int("queries", queries)
    rho = float(as_finite_array("rho", rho))
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    return _scores(key, model, n, d, queries, rho)


@partial(jax.jit, static_argnames=("model", "n", "dims", "queries"))
def _scores_by_dim(key, model: str, n: int, dims: tuple[int, ...], queries: int, rho):
    kq, kk, kr = jax.random.split(key, 3)
    top = max(dims)
    q_all = jax.random.normal(kq, (queries, top))
    k_all = jax.random.normal(kk, (n, top))
    z_all = jax.random.normal(kr, (queries, top))
    out = []
    for d in dims:  # the first d coordinates of one draw: nested in d
        q, k = q_all[:, :d], k_all[:, :d]
        if model == "sphere":
            q = q * jnp.sqrt(d) / jnp.linalg.norm(q, axis=-1, keepdims=True)
            k = k * jnp.sqrt(d) / jnp.linalg.norm(k, axis=-1, keepdims=True)
        scores = q @ k.T
        if model == "margin":
            relevant = rho * q + jnp.sqrt(1.0 - rho**2) * z_all[:, :d]
            scores = scores.at[:, 0].set(jnp.sum(q * relevant, axis=-1))
        out.append(scores)
    return jnp.stack(out)


def attention_scores_by_dim(key: jax.Array, model: str, n: int, dims, *, queries: int = 32,
                            rho: float = 0.5) -> jax.Array:
    """:func:`attention_scores` for several head dimensions from one draw, in one compile.

    Queries, keys (and the margin model's noise) are drawn once at ``max(dims)`` coordinates;
    dimension ``d`` uses the first ``d`` of them (renormalised for ``"sphere"``), so the
    samples are nested in ``d``. For ``dims == (d,)`` the result equals
    ``attention_scores(key, model, n, d, ...)[None]``.

    Args:
        dims: ``m`` distinct positive ints.

    Returns:
        ``(m, queries, n)`` array; entry ``j`` holds the scores at dimension ``dims[j]``.
    """
    one_of("model", model, SCORE_MODELS)
    n = positive_int("n", n)
    queries = positive_int("queries", queries)
    try:
        dims = tuple(positive_int("dims", d) for d in dims)
    except TypeError as exc:
        raise TypeError(f"dims must be a sequence of ints, got {type(dims).__name__}") from exc
    if not dims:
        raise ValueError("dims must not be empty")
    if len(set(dims)) != len(dims):
        raise ValueError(f"dims must be distinct, got {dims}")
    rho = float(as_finite_array("rho", rho))
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    return _scores_by_dim(key, model, n, dims, queries, rho)


@partial(jax.jit, static_argnames=("iterations",))
def _bisect(scores, target, lo, hi, norm, iterations: int):
    def mean_h(log_lam):
        return jnp.mean(_terms(scores, jnp.exp(log_lam)[None]).entropy) / norm

    def body(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        too_spread = mean_h(mid) > target  # entropy falls as λ grows
        return jnp.where(too_spread, mid, a), jnp.where(too_spread, b, mid)

    a, b = jax.lax.fori_loop(0, iterations, body, (jnp.log(lo), jnp.log(hi)))
    lam = jnp.exp(0.5 * (a + b))
    return lam, mean_h(jnp.log(lam))


def matching_scale(scores, target: float, *, normalized: bool = False, lo: float = 1e-4,
                   hi: float = 1e2, iterations: int = 48) -> float:
    """The λ at which the row-mean entropy of ``softmax(λ s)`` equals ``target``.

    The mean entropy decreases monotonically in λ >= 0 (dH/dλ = -λ Var_p(s)), so the
    answer is found by bisection on log λ in ``[lo, hi]``.

    Args:
        scores: ``(..., n)``.
        target: entropy in nats, or, with ``normalized=True``, entropy / log n.
        normalized: match ``H / log n`` instead of ``H``.

    Raises:
        ValueError: if ``target`` is not reachable for λ in ``[lo, hi]``.
    """
    scores, _ = _check_scores_scales(scores, 1.0)
    target = float(as_finite_array("target", target))
    if not (0.0 < lo < hi):
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    iterations = positive_int("iterations", iterations)
    norm = np.log(scores.shape[-1]) if normalized else 1.0
    lam, reached = _bisect(scores, target, lo, hi, norm, iterations)
    if abs(float(reached) - target) > 1e-5 * max(1.0, abs(target)):
        n = scores.shape[-1]
        raise ValueError(
            f"target={target} is not reached for scales in [{lo}, {hi}] with n={n} "
            f"(closest mean entropy{' / log n' if normalized else ''}: {float(reached):.6g})"
        )
    return float(lam)


@partial(jax.jit, static_argnames=("lengths", "iterations"))
def _bisect_prefixes(scores, targets, lo, hi, norms, lengths, iterations: int):
    def mean_h(log_lam):  # (m,) mean entropy / norm of each prefix at its own λ
        return jnp.stack([jnp.mean(_terms(scores[..., :L], jnp.exp(log_lam[m])[None]).entropy)
                          for m, L in enumerate(lengths)]) / norms

    def body(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        too_spread = mean_h(mid) > targets
        return jnp.where(too_spread, mid, a), jnp.where(too_spread, b, mid)

    start = (jnp.full(len(lengths), jnp.log(lo)), jnp.full(len(lengths), jnp.log(hi)))
    a, b = jax.lax.fori_loop(0, iterations, body, start)
    log_lam = 0.5 * (a + b)
    return jnp.exp(log_lam), mean_h(log_lam)


def matching_scales(scores, lengths, targets, *, normalized: bool = False, lo: float = 1e-4,
                    hi: float = 1e2, iterations: int = 40) -> np.ndarray:
    """:func:`matching_scale` for every prefix ``scores[..., :L]`` at once; shape ``(m,)``.

    Bisection on log λ runs for all lengths in one compiled loop (``iterations`` halvings of
    ``[log lo, log hi]``: 40 leave a relative error in λ below 1e-11).

    Args:
        scores: ``(..., n)``.
        lengths: ``m`` ints in ``[1, n]``.
        targets: scalar or ``(m,)``: entropy in nats, or entropy / log L with ``normalized``.
        normalized: match ``H / log L`` instead of ``H`` (then every length must be >= 2).

    Returns:
        NumPy array ``(m,)`` of the matching λ, entry ``m`` for ``lengths[m]``.

    Raises:
        ValueError: if a target is not reached for λ in ``[lo, hi]``.
    """
    scores, _ = _check_scores_scales(scores, 1.0)
    lengths = _check_lengths(lengths, scores.shape[-1])
    targets = as_finite_array("targets", targets)
    if targets.ndim > 1 or (targets.ndim == 1 and targets.shape[0] != len(lengths)):
        raise ValueError(f"targets must be a scalar or have shape ({len(lengths)},), got {targets.shape}")
    targets = np.broadcast_to(targets, (len(lengths),)).astype(float)
    if not (0.0 < lo < hi):
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    iterations = positive_int("iterations", iterations)
    if normalized and min(lengths) < 2:
        raise ValueError("lengths must be >= 2 with normalized=True (log 1 = 0)")
    norms = np.log(np.array(lengths, dtype=float)) if normalized else np.ones(len(lengths))
    lam, reached = _bisect_prefixes(scores, jnp.asarray(targets), lo, hi, jnp.asarray(norms),
                                    lengths, iterations)
    lam, reached = np.asarray(lam), np.asarray(reached)
    miss = np.abs(reached - targets) > 1e-5 * np.maximum(1.0, np.abs(targets))
    if miss.any():
        m = int(np.argmax(miss))
        raise ValueError(
            f"targets[{m}]={targets[m]} is not reached for scales in [{lo}, {hi}] with "
            f"n={lengths[m]} (closest mean entropy{' / log n' if normalized else ''}: "
            f"{reached[m]:.6g})"
        )
    return lam


# ---------------------------------------------------------------------------------------------
# Causal attention as a recurrence (post 10017): the post's RNN, the online softmax, blocks,
# the masked matrix; linear attention as an RNN; a multi-layer model cached or recomputed.
# ---------------------------------------------------------------------------------------------
#
# Conventions: scores are the plain dot products q_i · k_j, as in the post's e^{q_i·k_j} (scale
# q beforehand for the usual 1/√d); queries, keys and values are (..., L, d), (..., L, d),
# (..., L, d_v) with the same leading (batch) dimensions; output i attends to keys j <= i.

#: Causal softmax-attention forms that compute the same outputs (see :func:`causal_attention`).
ATTENTION_FORMS = ("recurrent", "online", "blocked", "matrix")
#: Feature maps of :func:`linear_attention_recurrent`.
LINEAR_FEATURES = ("elu1", "identity")
#: Modes of :func:`attention_stack`.
STACK_MODES = ("cached", "recompute")


def _float_dtype(*arrays: np.ndarray):
    """The common floating dtype of ``arrays``; integers and bools go to JAX's default float."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.floating) else jnp.result_type(float)


def _check_qkv(q, k, v):
    q = as_finite_array("q", q, min_ndim=2)
    k = as_finite_array("k", k, min_ndim=2)
    v = as_finite_array("v", v, min_ndim=2)
    if q.shape[-2] < 1:
        raise ValueError(f"q must hold L >= 1 positions on axis -2, got shape {q.shape}")
    if k.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"k must have the leading shape of q {q.shape[:-1]} (batch, L), got {k.shape}")
    if v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"v must have the leading shape of q {q.shape[:-1]} (batch, L), got {v.shape}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k must have the feature size of q (d = {q.shape[-1]}), got {k.shape[-1]}")
    if q.shape[-1] < 1 or v.shape[-1] < 1:
        raise ValueError(f"q and v need >= 1 features, got shapes {q.shape} and {v.shape}")
    dtype = _float_dtype(q, k, v)
    return tuple(jnp.asarray(x, dtype=dtype) for x in (q, k, v))


def _batched(core):
    """Run ``core(q, k, v)`` of single (L, ·) sequences over any leading dimensions."""

    def run(q, k, v, *args):
        lead = q.shape[:-2]
        flat = lambda x: x.reshape((-1,) + x.shape[-2:])
        out = jax.vmap(lambda a, b, c: core(a, b, c, *args))(flat(q), flat(k), flat(v))
        return out.reshape(lead + out.shape[-2:])

    return run


def _recurrent_one(q, k, v):
    # The post's recurrence for every query i at once: step t reads key j = i - t (newest first)
    # and adds e^{q_i·k_j} (v_j, 1) to (y_i, z_i). No running max: e^{s} overflows for s > log(max).
    L = q.shape[0]
    idx = jnp.arange(L)

    def step(carry, t):
        y, z = carry
        j = idx - t
        valid = j >= 0
        jc = jnp.maximum(j, 0)
        w = jnp.where(valid, jnp.exp(jnp.sum(q * k[jc], axis=-1)), 0.0)
        return (y + w[:, None] * v[jc], z + w), None

    init = (jnp.zeros((L, v.shape[-1]), v.dtype), jnp.zeros(L, v.dtype))
    (y, z), _ = lax.scan(step, init, idx)
    return y / z[:, None]


def _online_one(q, k, v):
    # The same scan with a running maximum m_i: (y, z) hold Σ e^{s - m}(v, 1), every exponent <= 0.
    L = q.shape[0]
    idx = jnp.arange(L)

    def step(carry, t):
        m, y, z = carry
        j = idx - t
        valid = j >= 0
        jc = jnp.maximum(j, 0)
        s = jnp.sum(q * k[jc], axis=-1)
        m_new = jnp.where(valid, jnp.maximum(m, s), m)
        alpha = jnp.exp(m - m_new)  # m = -inf before the first key: alpha = 0
        p = jnp.where(valid, jnp.exp(s - m_new), 0.0)
        return (m_new, alpha[:, None] * y + p[:, None] * v[jc], alpha * z + p), None

    init = (jnp.full(L, -jnp.inf, v.dtype), jnp.zeros((L, v.shape[-1]), v.dtype),
            jnp.zeros(L, v.dtype))
    (_, y, z), _ = lax.scan(step, init, idx)
    return y / z[:, None]


def _blocked_one(q, k, v, block_q: int, block_k: int):
    # FlashAttention's schedule: query blocks in parallel, a scan over key blocks, each merged
    # into the running (m, y, z) of its rows; scores live as one (L_q, block_k) slab at a time.
    L, dv = q.shape[0], v.shape[-1]
    nq, nk = -(-L // block_q), -(-L // block_k)
    pad = lambda x, n, b: jnp.pad(x, ((0, n * b - L), (0, 0))).reshape(n, b, x.shape[-1])
    qb, kb, vb = pad(q, nq, block_q), pad(k, nk, block_k), pad(v, nk, block_k)
    q_idx = jnp.arange(nq * block_q).reshape(nq, block_q)

    def step(carry, blk):
        m, y, z = carry  # (nq, Bq), (nq, Bq, dv), (nq, Bq)
        kk, vv, k0 = blk
        k_idx = k0 + jnp.arange(block_k)
        valid = (k_idx[None, None, :] <= q_idx[:, :, None]) & (k_idx < L)[None, None, :]
        s = jnp.where(valid, jnp.einsum("qbd,kd->qbk", qb, kk), -jnp.inf)
        m_new = jnp.maximum(m, s.max(axis=-1))
        m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)  # a row with no key yet
        p = jnp.exp(s - m_safe[..., None])  # masked scores: exp(-inf) = 0
        alpha = jnp.exp(m - m_safe)
        y = alpha[..., None] * y + jnp.einsum("qbk,kv->qbv", p, vv)
        return (m_new, y, alpha * z + p.sum(axis=-1)), None

    init = (jnp.full((nq, block_q), -jnp.inf, v.dtype),
            jnp.zeros((nq, block_q, dv), v.dtype), jnp.zeros((nq, block_q), v.dtype))
    (_, y, z), _ = lax.scan(step, init, (kb, vb, jnp.arange(nk) * block_k))
    return (y / z[..., None]).reshape(nq * block_q, dv)[:L]


def _matrix_one(q, k, v):
    L = q.shape[0]
    s = jnp.where(jnp.tril(jnp.ones((L, L), bool)), q @ k.T, -jnp.inf)
    return jax.nn.softmax(s, axis=-1) @ v


_recurrent = jax.jit(_batched(_recurrent_one))
_online = jax.jit(_batched(_online_one))
_blocked = jax.jit(_batched(_blocked_one), static_argnums=(3, 4))
_matrix = jax.jit(_batched(_matrix_one))


def causal_attention_recurrent(q, k, v) -> jax.Array:
    """Causal softmax attention as the post's RNN, *without* a running maximum.

    For each query ``i`` the state ``(y_i, z_i)`` (``d_v + 1`` numbers) starts at zero and reads
    the keys newest first, ``j = i, i-1, …, 0``, adding ``e^{q_i·k_j} (v_j, 1)``; the output is
    ``o_i = y_i / z_i``. Every query runs its own pass, so the work is ``O(L²)`` score evaluations
    while the state stays fixed-size.

    The exponentials are not shifted: once ``Σ_j e^{q_i·k_j}`` passes ``finfo.max`` (log 709.8 in
    float64, 88.7 in float32) ``z_i`` is infinite, and scores that all lie below about ``-745``
    (float64) make it zero; the output becomes ``nan`` or ``0``. It can fail earlier: XLA may
    rewrite the division as a multiplication by a reciprocal (``1/z``, or ``e^{-s}`` when ``z``
    is a single exponential), and the CPU flushes subnormals to zero, so the output can already
    be 0 once ``z_i > 1/finfo.tiny`` (log 708.4 in float64, 87.3 in float32). Whether XLA
    rewrites depends on the shapes, the platform and the JAX version. That is the point of this
    form — use :func:`causal_attention_online` for the safe version.

    Args:
        q, k: ``(..., L, d)``; v: ``(..., L, d_v)``; the same leading (batch) dimensions. Integer
            input is computed in JAX's default float; float input keeps its dtype.

    Returns:
        ``(..., L, d_v)``: ``o_i = Σ_{j<=i} e^{q_i·k_j} v_j / Σ_{j<=i} e^{q_i·k_j}``.
    """
    return _recurrent(*_check_qkv(q, k, v))


def causal_attention_online(q, k, v) -> jax.Array:
    """Causal softmax attention as an RNN with a running maximum (the online softmax).

    The state per query is ``(m_i, y_i, z_i)``: with ``s = q_i·k_j`` and ``m' = max(m_i, s)``, one
    step is ``y ← e^{m_i - m'} y + e^{s - m'} v_j``, ``z ← e^{m_i - m'} z + e^{s - m'}``,
    ``m_i ← m'``, so that ``(y, z) = e^{-m} Σ e^{q_i·k_j}(v_j, 1)`` and no exponent is positive
    (Rabe & Staats 2021; Milakov & Gimelshein 2018). Same order of keys and same work as
    :func:`causal_attention_recurrent`.

    Args:
        q, k: ``(..., L, d)``; v: ``(..., L, d_v)``; the same leading dimensions.

    Returns:
        ``(..., L, d_v)``, finite for every finite input.
    """
    return _online(*_check_qkv(q, k, v))


def causal_attention_blocked(q, k, v, *, block_q: int = 64, block_k: int = 64) -> jax.Array:
    """Causal softmax attention in FlashAttention's blocks of queries and keys.

    Queries are cut into blocks of ``block_q`` rows (processed side by side) and keys/values into
    blocks of ``block_k``; a scan over the key blocks merges each block's scores into every row's
    running ``(m, y, z)`` as :func:`causal_attention_online` does one key at a time. ``L`` need
    not be a multiple of the blocks (the tail is padded and masked). Live scores: one
    ``(L, block_k)`` slab instead of the ``(L, L)`` matrix. Blocks above the diagonal are masked,
    not skipped (FlashAttention skips them), so the work is ``L²`` scores, not ``L²/2``.

    Args:
        q, k: ``(..., L, d)``; v: ``(..., L, d_v)``; the same leading dimensions.
        block_q, block_k: block sizes, ints >= 1.

    Returns:
        ``(..., L, d_v)``.
    """
    q, k, v = _check_qkv(q, k, v)
    return _blocked(q, k, v, positive_int("block_q", block_q), positive_int("block_k", block_k))


def causal_attention_matrix(q, k, v) -> jax.Array:
    """Causal softmax attention as the masked matrix ``softmax(Q Kᵀ + M) V`` (``M_ij = -∞``, j > i).

    The reference form: one ``(L, L)`` score matrix per sequence (``O(L²)`` memory), row-wise
    softmax with its maximum subtracted (``jax.nn.softmax``).

    Args:
        q, k: ``(..., L, d)``; v: ``(..., L, d_v)``; the same leading dimensions.

    Returns:
        ``(..., L, d_v)``.
    """
    return _matrix(*_check_qkv(q, k, v))


def causal_attention(q, k, v, *, form: str = "online", block_q: int = 64,
                     block_k: int = 64) -> jax.Array:
    """Causal softmax attention in any of :data:`ATTENTION_FORMS` (same outputs, different cost).

    ``"recurrent"``: :func:`causal_attention_recurrent` (the post's RNN, no max: overflows);
    ``"online"``: :func:`causal_attention_online`; ``"blocked"``:
    :func:`causal_attention_blocked` (with ``block_q``, ``block_k``); ``"matrix"``:
    :func:`causal_attention_matrix`. Shapes as there: ``(..., L, d)``, ``(..., L, d)``,
    ``(..., L, d_v)`` to ``(..., L, d_v)``.
    """
    one_of("form", form, ATTENTION_FORMS)
    if form == "blocked":
        return causal_attention_blocked(q, k, v, block_q=block_q, block_k=block_k)
    return {"recurrent": causal_attention_recurrent, "online": causal_attention_online,
            "matrix": causal_attention_matrix}[form](q, k, v)


def _features(x, feature: str):
    return jax.nn.elu(x) + 1.0 if feature == "elu1" else x


def _linear_one(q, k, v, feature: str, normalize: bool):
    fq, fk = _features(q, feature), _features(k, feature)

    def step(carry, x):
        S, z = carry
        fq_t, fk_t, v_t = x
        S = S + jnp.outer(fk_t, v_t)
        z = z + fk_t
        o = fq_t @ S
        return (S, z), (o / (fq_t @ z) if normalize else o)

    init = (jnp.zeros((q.shape[-1], v.shape[-1]), v.dtype), jnp.zeros(q.shape[-1], v.dtype))
    _, out = lax.scan(step, init, (fq, fk, v))
    return out


_linear = jax.jit(_batched(_linear_one), static_argnums=(3, 4))


def linear_attention_recurrent(q, k, v, *, feature: str = "elu1",
                               normalize: bool = True) -> jax.Array:
    """Causal linear attention as an RNN with a fixed-size state (Katharopoulos et al. 2020).

    With a feature map ``φ``, the state is ``S_t = S_{t-1} + φ(k_t) v_tᵀ`` (``d × d_v``) and
    ``z_t = z_{t-1} + φ(k_t)`` (``d``); the output is ``o_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t``
    (or ``φ(q_t)ᵀ S_t`` without ``normalize``). Equal to the masked product
    ``(φ(Q) φ(K)ᵀ ∘ M) V`` row-normalized, but the state does not grow with ``t``.

    Args:
        q, k: ``(..., L, d)``; v: ``(..., L, d_v)``; the same leading dimensions.
        feature: ``"elu1"`` (``φ(x) = elu(x) + 1 > 0``, the paper's) or ``"identity"``.
        normalize: divide by ``φ(q_t)ᵀ z_t``. With ``"identity"`` that denominator can be zero
            or negative; use ``normalize=False`` there (an outer-product associative memory).

    Returns:
        ``(..., L, d_v)``.
    """
    one_of("feature", feature, LINEAR_FEATURES)
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
    return _linear(*_check_qkv(q, k, v), feature, bool(normalize))


def _stack_cached(tokens, embed, weights):
    x = embed[tokens]
    for W in weights:  # the layers in turn, each with its keys and values for every position
        x = _online_one(x @ W[0], x @ W[1], x @ W[2])
    return x


def _stack_recompute(tokens, embed, weights):
    dtype = embed.dtype

    def hidden(layer: int, j):
        """Layer ``layer``'s output at position j, recomputed from the token ids (no cache)."""
        if layer == 0:
            return embed[tokens[j]]
        W = weights[layer - 1]
        q = hidden(layer - 1, j) @ W[0]

        def body(t, carry):
            m, y, z = carry
            x_t = hidden(layer - 1, t)  # recomputed for every query of every layer above
            s = q @ (x_t @ W[1])
            m_new = jnp.maximum(m, s)
            alpha, p = jnp.exp(m - m_new), jnp.exp(s - m_new)
            return m_new, alpha * y + p * (x_t @ W[2]), alpha * z + p

        init = (jnp.array(-jnp.inf, dtype), jnp.zeros(embed.shape[1], dtype), jnp.array(0, dtype))
        _, y, z = lax.fori_loop(0, j + 1, body, init)  # dynamic bound: exactly j + 1 keys
        return y / z

    return lax.map(lambda j: hidden(weights.shape[0], j), jnp.arange(tokens.shape[0]))


_stack = {"cached": jax.jit(_stack_cached), "recompute": jax.jit(_stack_recompute)}


def attention_stack(tokens, embed, weights, *, mode: str = "cached") -> jax.Array:
    """A causal attention-only model: token embeddings, then ``layers`` softmax-attention layers.

    Layer ``l`` maps its input rows ``x_j`` to ``o_i = Σ_{j<=i} e^{q_i·k_j} v_j / Σ e^{q_i·k_j}``
    with ``q, k, v = x W_l[0], x W_l[1], x W_l[2]`` (no residual, no MLP, one head: the
    token-wise parts would change the constants of the counts, not their degree). Two
    schedules, equal outputs:

    ``"cached"``: layer by layer, keeping every position's keys and values (the KV cache):
    ``O(layers · L · d)`` memory and ``layers · L(L+1)/2`` score evaluations.

    ``"recompute"``: the post's constant-memory extreme. Output ``i`` of layer ``l`` runs an
    online-softmax recurrence over ``j <= i`` whose keys and values are recomputed from the token
    ids through every layer below, for every use; nothing is cached, so the working memory is
    ``O(layers · d)`` whatever ``L`` (besides the token ids and the ``(L, d)`` result), and the
    score evaluations number ``Σ_{b=1}^{N} C(N, b) C(L+b, b+1)`` for ``N = layers``, a
    polynomial of degree ``N + 1`` with leading coefficient ``1/(N+1)!``; every key and value
    projection is repeated with them. Tracing grows like ``2^layers``.

    Args:
        tokens: ``(L,)`` ints in ``[0, vocab)``.
        embed: ``(vocab, d)`` token embeddings.
        weights: ``(layers, 3, d, d)``: each layer's ``W_q, W_k, W_v`` (applied as ``x @ W``).
        mode: ``"cached"`` or ``"recompute"``.

    Returns:
        ``(L, d)``: the last layer's output at every position.
    """
    one_of("mode", mode, STACK_MODES)
    return _stack[mode](*_check_stack(tokens, embed, weights))


def _check_stack(tokens, embed, weights):
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.size < 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise TypeError(f"tokens must be a 1-d array of ints with L >= 1 entries, got dtype "
                        f"{tokens.dtype} and shape {tokens.shape}")
    embed = as_finite_array("embed", embed)
    if embed.ndim != 2 or min(embed.shape) < 1:
        raise ValueError(f"embed must have shape (vocab, d) with vocab, d >= 1, got {embed.shape}")
    if tokens.min() < 0 or tokens.max() >= embed.shape[0]:
        raise ValueError(f"tokens must lie in [0, vocab = {embed.shape[0]}), got "
                         f"{tokens.min()}…{tokens.max()}")
    weights = as_finite_array("weights", weights)
    d = embed.shape[1]
    if weights.ndim != 4 or weights.shape[0] < 1 or weights.shape[1:] != (3, d, d):
        raise ValueError(f"weights must have shape (layers, 3, {d}, {d}) with layers >= 1, "
                         f"got {weights.shape}")
    dtype = _float_dtype(embed, weights)
    return jnp.asarray(tokens), jnp.asarray(embed, dtype), jnp.asarray(weights, dtype)


#: Kernels :func:`compiled_temp_bytes` can measure: the attention forms, linear attention and the
#: two schedules of :func:`attention_stack`.
MEMORY_KINDS = (*ATTENTION_FORMS, "linear", "stack-cached", "stack-recompute")


def compiled_temp_bytes(kind: str, *args, block_q: int = 64, block_k: int = 64,
                        feature: str = "elu1", normalize: bool = True) -> int:
    """Bytes of temporaries XLA assigns to one of this module's compiled kernels for ``args``.

    The kernel is lowered and compiled for the shapes of ``args`` (nothing runs) and its
    ``memory_analysis()`` is read: ``temp_size_in_bytes`` counts XLA's scratch buffers, not the
    arguments or the result. A property of the compiled program, deterministic for one JAX/XLA
    version and backend; it can change between versions.

    Args:
        kind: one of :data:`MEMORY_KINDS`: an attention form (``"recurrent"``, ``"online"``,
            ``"blocked"``, ``"matrix"``), ``"linear"`` (:func:`linear_attention_recurrent`) or
            ``"stack-cached"`` / ``"stack-recompute"`` (:func:`attention_stack`).
        args: the arguments of that function: ``q, k, v`` or ``tokens, embed, weights``.
        block_q, block_k: for ``"blocked"``; feature, normalize: for ``"linear"``.

    Returns:
        the number of bytes, an int.

    Raises:
        RuntimeError: if this JAX cannot report a memory analysis.
    """
    one_of("kind", kind, MEMORY_KINDS)
    if kind.startswith("stack-"):
        if len(args) != 3:
            raise TypeError(f"kind {kind!r} takes (tokens, embed, weights), got {len(args)} arguments")
        fn, call = _stack[kind[6:]], _check_stack(*args)
    else:
        if len(args) != 3:
            raise TypeError(f"kind {kind!r} takes (q, k, v), got {len(args)} arguments")
        call = _check_qkv(*args)
        if kind == "blocked":
            fn = _blocked
            call = (*call, positive_int("block_q", block_q), positive_int("block_k", block_k))
        elif kind == "linear":
            one_of("feature", feature, LINEAR_FEATURES)
            fn, call = _linear, (*call, feature, bool(normalize))
        else:
            fn = {"recurrent": _recurrent, "online": _online, "matrix": _matrix}[kind]
    stats = fn.lower(*call).compile().memory_analysis()
    if stats is None:
        raise RuntimeError("this JAX backend reports no memory analysis for compiled functions")
    return int(stats.temp_size_in_bytes)
