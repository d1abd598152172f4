"""Vector quantization (VQ-VAE) and finite scalar quantization (FSQ), with straight-through gradients.

VQ (van den Oord et al.) replaces an encoder vector ``z`` by its nearest code ``e_k`` of a learned
codebook and lets the gradient through unchanged, ``z_q = z + sg[e_k - z]``; the codebook learns
from ``‖e_k - sg[z]‖²`` (or from an exponential moving average of the vectors assigned to each code)
and the encoder is held near its code by the commitment term ``‖z - sg[e_k]‖²``. FSQ (Mentzer et
al.) has no codebook: each of the ``d`` coordinates is squashed into an interval and rounded to one
of ``L_i`` integers, ``FSQ(z) = Round[(L - 1) σ(z)]`` in post 9826's sigmoid form or
``Round[tanh(z + s) h - o]`` in the paper's (``h = (L - 1)(1 - ε)/2``, offset ``o = ½`` for even
``L``), again with a straight-through gradient; the implicit codebook has ``∏ L_i`` codes (below
``2**31``: code indices are int32, and larger level tuples are rejected).

Functions (host-side checks, then jitted kernels):

* :func:`vq_quantize` — nearest code and the straight-through output;
* :func:`vq_losses` — the codebook and commitment losses;
* :func:`ema_update` — the moving-average codebook step ``e_k ← α e_k + (1 - α) mean(z | k)``;
* :func:`ema_vq_step` — VQ-VAE-2's form of it: moving averages of counts ``N_k`` and sums ``m_k``,
  Laplace-smoothed counts, ``e_k = m_k / Ñ_k``;
* :func:`restart_dead_codes` — re-seed codes unused for ``max_age`` steps at encoder outputs of
  the current batch;
* :func:`fsq_bound`, :func:`fsq_quantize`, :func:`fsq_index` — FSQ's squashing, rounding and code index;
* :func:`code_usage` — codebook utilization (share of codes used) and perplexity ``exp H``;
* :func:`train_autoencoder` — a small MLP autoencoder with either quantizer (optax Adam), used by
  the stored run ``python -m sulib.fsq sweep OUT.json`` of the chapter on post 9826; ``kind="vq-ema"``
  is the stronger VQ baseline (EMA codebook + dead-code restart, commitment loss only), stored by
  ``python -m sulib.fsq ema OUT.json``; its restart-free ablation by
  ``python -m sulib.fsq ema-only OUT.json``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._checks import as_finite_array, index_array, one_of, positive_int, positive_scalar
from .nets import mlp_apply, mlp_init

__all__ = ["vq_quantize", "vq_losses", "ema_update", "ema_vq_step", "restart_dead_codes",
           "fsq_bound", "fsq_quantize", "fsq_index", "fsq_levels_count", "code_usage",
           "train_autoencoder", "BOUNDS", "SWEEP_CONFIG", "EMA_CONFIG",
           "EMA_ONLY_CONFIG"]

BOUNDS = ("sigmoid", "tanh")
sg = jax.lax.stop_gradient


# --------------------------------------------------------------------------- checks

class _Shape:
    """Shape and dtype of a traced array (values are checked only outside jit/grad)."""

    def __init__(self, value):
        self.shape, self.dtype = tuple(value.shape), value.dtype
        self.ndim = len(self.shape)

    def astype(self, _):
        return self


def _host(name: str, value, min_ndim: int = 0):
    if isinstance(value, jax.core.Tracer):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(f"{name} must hold real floats, got dtype {value.dtype}")
        if value.ndim < min_ndim:
            raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got {value.shape}")
        return _Shape(value)
    return as_finite_array(name, value, min_ndim=min_ndim)


def _vectors(name: str, value) -> np.ndarray:
    array = _host(name, value, min_ndim=1)
    if array.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last axis, got shape {array.shape}")
    return array


def _codebook(value, d: int) -> np.ndarray:
    array = _host("codebook", value)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"codebook must have shape (K, {d}) with K >= 1, got {array.shape}")
    if array.shape[1] != d:
        raise ValueError(f"codebook must have {d} columns (the last axis of z), got {array.shape}")
    return array


def _levels(value, d: int | None = None, name: str = "levels") -> tuple[int, ...]:
    try:
        levels = tuple(value)
    except TypeError as exc:
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__}") from exc
    if not levels:
        raise ValueError(f"{name} must not be empty")
    levels = tuple(positive_int(f"{name}[{i}]", v, minimum=2) for i, v in enumerate(levels))
    if d is not None and len(levels) != d:
        raise ValueError(f"{name} must have {d} entries (the last axis of z), got {len(levels)}")
    if int(np.prod([float(L) for L in levels])) >= _MAX_CODES:   # code index is int32
        raise ValueError(f"{name} give ∏ L_i >= 2**31 codes; the int32 code index would overflow")
    return levels


_MAX_CODES = 2**31   # FSQ code indices are int32


def _float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


# --------------------------------------------------------------------------- VQ

@jax.jit
def _vq(z, codebook):
    d2 = (jnp.sum(z**2, -1, keepdims=True) - 2 * z @ codebook.T
          + jnp.sum(codebook**2, -1))                      # (..., K)
    idx = jnp.argmin(d2, axis=-1)
    e = codebook[idx]
    return z + sg(e - z), idx


def vq_quantize(z, codebook) -> tuple[jax.Array, jax.Array]:
    """Nearest-code quantization with the straight-through estimator.

    Args:
        z: ``(..., d)`` encoder outputs. codebook: ``(K, d)`` codes ``e_1 … e_K``.

    Returns:
        ``(z_q, idx)``: ``z_q = z + sg[e_k - z]`` ``(..., d)``, equal to ``e_k`` in value and with
        the gradient of ``z`` (identity Jacobian); ``idx`` ``(...)`` the index ``k`` of the nearest
        code (Euclidean, computed as ``‖z‖² - 2 z·e + ‖e‖²``, so near-ties within rounding may
        pick either code; exact ties go to the lower index). Differentiable in ``z`` and ``codebook``
        (the codebook gets no gradient through ``z_q``).
    """
    z_np = _vectors("z", z)
    _codebook(codebook, z_np.shape[-1])
    return _vq(_float(z), _float(codebook))


@jax.jit
def _vq_losses(z, codebook):
    _, idx = _vq(z, codebook)
    e = codebook[idx]
    cb = jnp.mean(jnp.sum((e - sg(z)) ** 2, -1))
    commit = jnp.mean(jnp.sum((z - sg(e)) ** 2, -1))
    return cb, commit


def vq_losses(z, codebook) -> tuple[jax.Array, jax.Array]:
    """VQ-VAE's auxiliary losses, averaged over the vectors of ``z``.

    Args:
        z: ``(..., d)`` encoder outputs. codebook: ``(K, d)``.

    Returns:
        ``(codebook_loss, commitment_loss)``: ``mean ‖e_k - sg[z]‖²`` (gradient to the codebook
        only) and ``mean ‖z - sg[e_k]‖²`` (gradient to ``z`` only), ``e_k`` the nearest code.
    """
    z_np = _vectors("z", z)
    _codebook(codebook, z_np.shape[-1])
    return _vq_losses(_float(z), _float(codebook))


@jax.jit
def _ema(codebook, z, idx, decay):
    K = codebook.shape[0]
    onehot = jax.nn.one_hot(idx, K, dtype=z.dtype)        # (n, K)
    counts = onehot.sum(0)                                 # (K,)
    means = (onehot.T @ z) / jnp.maximum(counts, 1)[:, None]
    new = decay * codebook + (1 - decay) * means
    return jnp.where((counts > 0)[:, None], new, codebook)


def ema_update(codebook, z, idx, decay: float) -> jax.Array:
    """One moving-average codebook step, post 9826's form.

    ``e_k ← α e_k + (1 - α) z̄_k`` for every code ``k`` that has vectors assigned, ``z̄_k`` their
    mean; codes without vectors stay. (VQ-VAE's appendix keeps separate averages of counts and
    sums instead; on a batch where every code's count is steady the two agree.)

    Args:
        codebook: ``(K, d)``. z: ``(n, d)`` encoder outputs. idx: ``(n,)`` integer codes in
        ``[0, K)`` (e.g. from :func:`vq_quantize`). decay: ``α`` in ``[0, 1)``.

    Returns:
        The new codebook ``(K, d)``.
    """
    z_np = _vectors("z", z)
    if z_np.ndim != 2:
        raise ValueError(f"z must have shape (n, d), got {z_np.shape}")
    cb = _codebook(codebook, z_np.shape[1])
    idx_np = np.asarray(idx)
    if not np.issubdtype(idx_np.dtype, np.integer):
        raise TypeError(f"idx must hold integers, got dtype {idx_np.dtype}")
    if idx_np.shape != (z_np.shape[0],):
        raise ValueError(f"idx must have shape ({z_np.shape[0]},), got {idx_np.shape}")
    if idx_np.size and (idx_np.min() < 0 or idx_np.max() >= cb.shape[0]):
        raise ValueError(f"idx must lie in [0, {cb.shape[0]}), got [{idx_np.min()}, {idx_np.max()}]")
    a = as_finite_array("decay", decay)
    if a.ndim != 0 or not 0 <= float(a) < 1:
        raise ValueError(f"decay must be a scalar in [0, 1), got {decay!r}")
    return _ema(_float(codebook), _float(z), jnp.asarray(idx_np), float(a))


@jax.jit
def _ema_vq(counts, sums, z, idx, decay, eps):
    K = counts.shape[0]
    onehot = jax.nn.one_hot(idx, K, dtype=z.dtype)        # (n, K)
    counts = decay * counts + (1 - decay) * onehot.sum(0)
    sums = decay * sums + (1 - decay) * (onehot.T @ z)
    total = counts.sum()
    smoothed = (counts + eps) / (total + K * eps) * total  # Laplace smoothing
    return counts, sums, sums / smoothed[:, None]


def _ema_state(counts, sums):
    c = _host("counts", counts, min_ndim=1)
    if c.ndim != 1 or c.shape[0] == 0:
        raise ValueError(f"counts must have shape (K,) with K >= 1, got {c.shape}")
    if not isinstance(c, _Shape) and (c < 0).any():
        raise ValueError("counts must be >= 0")
    m = _host("sums", sums, min_ndim=2)
    if m.ndim != 2 or m.shape[0] != c.shape[0]:
        raise ValueError(f"sums must have shape ({c.shape[0]}, d), got {m.shape}")
    return c, m


def _decay(decay) -> float:
    a = as_finite_array("decay", decay)
    if a.ndim != 0 or not 0 <= float(a) < 1:
        raise ValueError(f"decay must be a scalar in [0, 1), got {decay!r}")
    return float(a)


def ema_vq_step(counts, sums, z, idx, decay: float,
                eps: float = 1e-5) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One EMA codebook step in VQ-VAE-2's form (counts and sums averaged separately).

    ``N_k ← α N_k + (1 - α) n_k``, ``m_k ← α m_k + (1 - α) Σ_{i: k_i = k} z_i``, then the
    Laplace-smoothed counts ``Ñ_k = (N_k + ε) / (Σ N + K ε) · Σ N`` and ``e_k = m_k / Ñ_k``.
    With ``ε = 0`` and a state where ``N_k = n_k`` and ``m_k = N_k e_k`` this is the chapter's
    ``e_k ← α e_k + (1 - α) z̄_k`` (:func:`ema_update`) for every code in use.

    Args:
        counts: ``(K,)`` moving-average counts ``N_k >= 0``. sums: ``(K, d)`` moving-average sums
        ``m_k``. z: ``(n, d)`` encoder outputs. idx: ``(n,)`` integer codes in ``[0, K)``.
        decay: ``α`` in ``[0, 1)``. eps: Laplace smoothing ``ε >= 0``.

    Returns:
        ``(counts, sums, codebook)``, shapes ``(K,)``, ``(K, d)``, ``(K, d)``.
    """
    c, m = _ema_state(counts, sums)
    z_np = _vectors("z", z)
    if z_np.ndim != 2 or z_np.shape[1] != m.shape[1]:
        raise ValueError(f"z must have shape (n, {m.shape[1]}), got {z_np.shape}")
    idx_np = index_array("idx", idx, z_np.shape[0], c.shape[0])
    e = as_finite_array("eps", eps)
    if e.ndim != 0 or float(e) < 0:
        raise ValueError(f"eps must be a scalar >= 0, got {eps!r}")
    return _ema_vq(_float(counts), _float(sums), _float(z), jnp.asarray(idx_np),
                   _decay(decay), float(e))


@jax.jit
def _restart(codebook, counts, sums, age, z, idx, key, max_age):
    K = codebook.shape[0]
    used = jnp.zeros(K, bool).at[idx].set(True)
    age = jnp.where(used, 0, age + 1)
    dead = age >= max_age
    fresh = z[jax.random.randint(key, (K,), 0, z.shape[0])]   # a random batch vector per code
    d = dead[:, None]
    return (jnp.where(d, fresh, codebook), jnp.where(dead, 1.0, counts).astype(counts.dtype),
            jnp.where(d, fresh, sums), jnp.where(dead, 0, age))


def restart_dead_codes(codebook, counts, sums, age, z, idx, key,
                       max_age: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Dead-code restart: re-seed every code unused for ``max_age`` consecutive steps.

    The age of each code becomes 0 if it occurs in ``idx`` (this step's codes) and grows by 1
    otherwise; a code whose age reaches ``max_age`` is moved to a vector of ``z`` drawn uniformly
    (``codebook_k = sums_k = z_r``, ``counts_k = 1``, so the EMA state stays ``m_k = N_k e_k``)
    and its age is reset to 0. Other codes are returned unchanged.

    Args:
        codebook: ``(K, d)``. counts: ``(K,)`` and sums: ``(K, d)``, the EMA state of
        :func:`ema_vq_step`. age: ``(K,)`` integer steps since each code was last used.
        z: ``(n, d)`` this batch's encoder outputs. idx: ``(n,)`` their codes in ``[0, K)``.
        key: a ``jax.random`` key. max_age: steps without use before a restart (>= 1).

    Returns:
        ``(codebook, counts, sums, age)`` after the restarts.
    """
    z_np = _vectors("z", z)
    if z_np.ndim != 2 or z_np.shape[0] == 0:
        raise ValueError(f"z must have shape (n, d) with n >= 1, got {z_np.shape}")
    cb = _codebook(codebook, z_np.shape[1])
    c, m = _ema_state(counts, sums)
    if c.shape[0] != cb.shape[0] or m.shape != cb.shape:
        raise ValueError(f"counts, sums must have shapes ({cb.shape[0]},), {cb.shape}, "
                         f"got {c.shape}, {m.shape}")
    age_np = np.asarray(age)
    if not np.issubdtype(age_np.dtype, np.integer):
        raise TypeError(f"age must hold integers, got dtype {age_np.dtype}")
    if age_np.shape != (cb.shape[0],) or (age_np < 0).any():
        raise ValueError(f"age must have shape ({cb.shape[0]},) and be >= 0, got {age_np.shape}")
    idx_np = index_array("idx", idx, z_np.shape[0], cb.shape[0])
    max_age = positive_int("max_age", max_age)
    return _restart(_float(codebook), _float(counts), _float(sums), jnp.asarray(age_np),
                    _float(z), jnp.asarray(idx_np), key, max_age)


# --------------------------------------------------------------------------- FSQ

_EPS = 1e-3  # the reference implementation's margin inside (-h, h)


def _bound(z, levels, bound: str):
    L = jnp.asarray(levels, z.dtype)
    if bound == "sigmoid":
        return (L - 1) * jax.nn.sigmoid(z)
    half_l = (L - 1) * (1 - _EPS) / 2
    offset = jnp.where(jnp.asarray(levels) % 2 == 1, 0.0, 0.5).astype(z.dtype)
    shift = jnp.tan(offset / half_l)          # as in the paper's code (tan, not arctanh)
    return jnp.tanh(z + shift) * half_l - offset


@partial(jax.jit, static_argnames=("levels", "bound"))
def _fsq(z, levels, bound):
    b = _bound(z, levels, bound)
    q = b + sg(jnp.round(b) - b)
    digits = jnp.round(b).astype(jnp.int32)
    if bound == "tanh":
        digits = digits + jnp.asarray([L // 2 for L in levels], jnp.int32)
    return q, _index(digits, levels)


def _index(digits, levels):
    basis = np.concatenate([[1], np.cumprod(levels[:-1])]).astype(np.int64)
    return jnp.sum(digits * jnp.asarray(basis, digits.dtype), axis=-1)


def fsq_bound(z, levels, bound: str = "sigmoid") -> jax.Array:
    """FSQ's squashing before rounding, per coordinate.

    ``"sigmoid"`` (post 9826): ``(L - 1) σ(z)`` in ``(0, L - 1)``. ``"tanh"`` (the paper's code):
    ``tanh(z + tan(o/h)) h - o`` with ``h = (L - 1)(1 - 10⁻³)/2`` and ``o = ½`` for even ``L``
    (0 for odd), in ``(-h - o, h - o)``.

    Args:
        z: ``(..., d)``. levels: ``d`` ints ``L_i >= 2``. bound: one of ``BOUNDS``.
    """
    z_np = _vectors("z", z)
    levels = _levels(levels, z_np.shape[-1])
    one_of("bound", bound, BOUNDS)
    return _bound(_float(z), levels, bound)


def fsq_quantize(z, levels, bound: str = "sigmoid") -> tuple[jax.Array, jax.Array]:
    """Finite scalar quantization with the straight-through estimator.

    Args:
        z: ``(..., d)`` encoder outputs. levels: ``d`` ints ``L_i >= 2``. bound: ``"sigmoid"``
        (post 9826, values ``0 … L - 1``) or ``"tanh"`` (the paper, values ``-⌊L/2⌋ … ⌈L/2⌉ - 1``).

    Returns:
        ``(q, idx)``: ``q = b + sg[Round(b) - b]`` ``(..., d)`` with ``b`` = :func:`fsq_bound`,
        integers in value and with the gradient of ``b``; ``idx`` ``(...)`` the mixed-radix code
        index ``Σ_i digit_i ∏_{j<i} L_j`` in ``[0, ∏ L_i)`` (digits shifted to start at 0).
    """
    z_np = _vectors("z", z)
    levels = _levels(levels, z_np.shape[-1])
    one_of("bound", bound, BOUNDS)
    return _fsq(_float(z), levels, bound)


def fsq_index(digits, levels) -> jax.Array:
    """Mixed-radix index ``Σ_i digit_i ∏_{j<i} L_j`` of integer digits ``(..., d)``, ``0 <= digit_i < L_i``."""
    arr = np.asarray(digits)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"digits must hold integers, got dtype {arr.dtype}")
    if arr.ndim < 1:
        raise ValueError(f"digits must have shape (..., d), got {arr.shape}")
    levels = _levels(levels, arr.shape[-1])
    if arr.size and (np.any(arr < 0) or np.any(arr >= np.asarray(levels))):
        raise ValueError(f"digits must lie in [0, L_i) for levels {levels}")
    return _index(jnp.asarray(arr), levels)


def fsq_levels_count(levels) -> int:
    """Size ``∏ L_i`` of the implicit FSQ codebook."""
    return int(np.prod(_levels(levels)))


@partial(jax.jit, static_argnames="K")
def _usage(idx, K):
    counts = jnp.bincount(idx.reshape(-1), length=K)
    p = counts / counts.sum()
    H = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return jnp.mean(counts > 0), jnp.exp(H)


def code_usage(idx, K: int) -> tuple[float, float]:
    """Codebook utilization and perplexity of the codes ``idx`` (any shape) out of ``K``.

    Returns:
        ``(used, perplexity)``: the share of the ``K`` codes that occur at least once, and
        ``exp(H)`` of the empirical code distribution (``K`` when every code is equally used).
    """
    K = positive_int("K", K)
    arr = np.asarray(idx)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"idx must hold integers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError("idx must not be empty")
    if arr.min() < 0 or arr.max() >= K:
        raise ValueError(f"idx must lie in [0, {K}), got [{arr.min()}, {arr.max()}]")
    used, ppl = _usage(jnp.asarray(arr), K)
    return float(used), float(ppl)


# --------------------------------------------------------------------------- autoencoder

def _quantize_fn(kind: str, levels, bound: str):
    if kind == "vq":
        return None
    lv = np.asarray(levels, np.float64)
    if bound == "sigmoid":   # 0 … L-1 → [-1, 1]
        scale, shift = 2.0 / (lv - 1), -1.0
    else:                    # the paper: divide by ⌊L/2⌋
        scale, shift = 1.0 / (lv // 2), 0.0

    def q(z):
        v, idx = _fsq(z, levels, bound)
        return v * scale.astype(z.dtype) + shift, idx
    return q


def train_autoencoder(x_train, x_test, *, kind: str, size, seed: int, hidden=(256, 256),
                      n_tokens: int = 8, vq_dim: int = 8, steps: int = 1500, batch: int = 32,
                      lr: float = 1e-3, beta: float = 1.0, gamma: float = 0.25,
                      bound: str = "sigmoid", decay: float = 0.99, eps: float = 1e-5,
                      max_age: int = 100) -> dict:
    """Train an MLP autoencoder with a VQ or FSQ bottleneck (float32, optax Adam).

    The encoder ``64 → hidden → n_tokens·d`` gives ``n_tokens`` vectors per image; each is
    quantized (VQ: a shared codebook of ``size`` codes of width ``vq_dim``, loss
    ``MSE + β‖e - sg z‖² + γ‖z - sg e‖²``, codes initialised at ``K`` encoder outputs of random
    training tokens; ``"vq-ema"``: the same codebook updated by :func:`ema_vq_step` (decay, eps)
    instead of by gradient, codes unused for ``max_age`` steps re-seeded by
    :func:`restart_dead_codes`, loss ``MSE + γ‖z - sg e‖²``; FSQ: ``size`` is the tuple of levels,
    loss ``MSE``) and the decoder mirrors the encoder. The same seed gives the same initial
    encoder, decoder, codebook and batches for ``"vq"`` and ``"vq-ema"``.

    Args:
        x_train, x_test: ``(n, p)`` images in ``[0, 1]``. kind: ``"vq"``, ``"vq-ema"`` or
        ``"fsq"``. size: ``K`` (VQ) or the levels tuple (FSQ). seed: PRNG seed of init and batches.

    Returns:
        dict with ``K``, ``train_mse``/``test_mse`` (per pixel, after quantization),
        ``used``/``perplexity`` (over the tokens of train and test images together) and
        ``loss_curve`` (mean training loss over each tenth of the steps).
    """
    one_of("kind", kind, ("vq", "vq-ema", "fsq"))
    one_of("bound", bound, BOUNDS)
    xtr = _vectors("x_train", x_train).astype(np.float32)
    xte = _vectors("x_test", x_test).astype(np.float32)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"x_train, x_test must be (n, p) with one p, got {xtr.shape}, {xte.shape}")
    seed, n_tokens, steps, batch = (positive_int(n, v, minimum=0 if n == "seed" else 1)
                                    for n, v in (("seed", seed), ("n_tokens", n_tokens),
                                                 ("steps", steps), ("batch", batch)))
    hidden = tuple(positive_int(f"hidden[{i}]", h) for i, h in enumerate(hidden))
    lr = positive_scalar("lr", lr)
    if kind == "vq-ema":
        decay, max_age = _decay(decay), positive_int("max_age", max_age)
        eps = float(as_finite_array("eps", eps))
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
    if kind in ("vq", "vq-ema"):
        K = positive_int("size", size)
        d, levels = positive_int("vq_dim", vq_dim), None
    else:
        levels = _levels(size, name="size")
        K, d = int(np.prod(levels)), len(levels)
    p = xtr.shape[1]
    k_enc, k_dec, k_cb, k_batch = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = {"enc": mlp_init(k_enc, (p, *hidden, n_tokens * d), dtype=jnp.float32),
              "dec": mlp_init(k_dec, (n_tokens * d, *hidden[::-1], p), dtype=jnp.float32)}
    if kind in ("vq", "vq-ema"):   # codes start at K encoder outputs of random training tokens
        z0 = mlp_apply(params["enc"], jnp.asarray(xtr)).reshape(-1, d)
        pick = jax.random.choice(k_cb, z0.shape[0], (K,), replace=K > z0.shape[0])
        params["codebook"] = z0[pick]
    if kind == "vq-ema":
        return _train_vq_ema(params, xtr, xte, K=K, d=d, n_tokens=n_tokens, steps=steps,
                             batch=batch, lr=lr, gamma=gamma, decay=decay, eps=eps,
                             max_age=max_age, k_batch=k_batch)
    fsq_q = _quantize_fn(kind, levels, bound)

    def forward(params, x):
        z = mlp_apply(params["enc"], x).reshape(x.shape[0], n_tokens, d)
        if kind == "vq":
            zq, idx = _vq(z, params["codebook"])
            e = params["codebook"][idx]
            aux = (beta * jnp.mean(jnp.sum((e - sg(z)) ** 2, -1))
                   + gamma * jnp.mean(jnp.sum((z - sg(e)) ** 2, -1)))
        else:
            zq, idx = fsq_q(z)
            aux = 0.0
        xh = mlp_apply(params["dec"], zq.reshape(x.shape[0], -1))
        mse = jnp.mean((xh - x) ** 2)
        return mse, aux, idx

    opt = optax.adam(lr)
    xtr_j = jnp.asarray(xtr)

    @jax.jit
    def run(params):
        def step(carry, key):
            params, state = carry
            xb = xtr_j[jax.random.choice(key, xtr_j.shape[0], (batch,), replace=False)]

            def loss(pr):
                mse, aux, _ = forward(pr, xb)
                return mse + aux, mse
            (_, mse), g = jax.value_and_grad(loss, has_aux=True)(params)
            upd, state = opt.update(g, state, params)
            return (optax.apply_updates(params, upd), state), mse
        (params, _), mses = jax.lax.scan(step, (params, opt.init(params)),
                                          jax.random.split(k_batch, steps))
        return params, mses

    params, mses = run(params)
    return _finish(forward, params, xtr_j, xte, K, mses, steps)


def _finish(forward, params, xtr_j, xte, K, mses, steps) -> dict:
    """Held-out and training MSE, code usage and the loss curve of a trained autoencoder."""
    mse_tr, _, idx_tr = jax.jit(forward)(params, xtr_j)
    mse_te, _, idx_te = jax.jit(forward)(params, jnp.asarray(xte))
    used, ppl = code_usage(np.concatenate([np.asarray(idx_tr).ravel(),
                                           np.asarray(idx_te).ravel()]), K)
    curve = np.asarray(mses).reshape(10, -1).mean(1) if steps % 10 == 0 else np.asarray(mses)
    return {"K": K, "train_mse": float(mse_tr), "test_mse": float(mse_te), "used": used,
            "perplexity": ppl, "loss_curve": [float(c) for c in curve]}


def _train_vq_ema(params, xtr, xte, *, K, d, n_tokens, steps, batch, lr, gamma, decay, eps,
                  max_age, k_batch) -> dict:
    """The ``"vq-ema"`` arm of :func:`train_autoencoder` (inputs already checked)."""
    codebook = params.pop("codebook")
    ema0 = (codebook, jnp.ones(K, codebook.dtype), codebook, jnp.zeros(K, jnp.int32))

    def forward(params, x, codebook):
        z = mlp_apply(params["enc"], x).reshape(x.shape[0], n_tokens, d)
        zq, idx = _vq(z, codebook)
        commit = jnp.mean(jnp.sum((z - sg(codebook[idx])) ** 2, -1))
        xh = mlp_apply(params["dec"], zq.reshape(x.shape[0], -1))
        return jnp.mean((xh - x) ** 2), gamma * commit, idx, z

    opt = optax.adam(lr)
    xtr_j = jnp.asarray(xtr)

    @jax.jit
    def run(params, ema):
        def step(carry, key):
            params, state, (codebook, counts, sums, age) = carry
            xb = xtr_j[jax.random.choice(key, xtr_j.shape[0], (batch,), replace=False)]

            def loss(pr):
                mse, aux, idx, z = forward(pr, xb, codebook)
                return mse + aux, (mse, idx, z)
            (_, (mse, idx, z)), g = jax.value_and_grad(loss, has_aux=True)(params)
            upd, state = opt.update(g, state, params)
            zf, idf = z.reshape(-1, d), idx.reshape(-1)
            counts, sums, codebook = _ema_vq(counts, sums, zf, idf, decay, eps)
            ema = _restart(codebook, counts, sums, age, zf, idf,
                           jax.random.fold_in(key, 1), max_age)
            return (optax.apply_updates(params, upd), state, ema), mse
        (params, _, ema), mses = jax.lax.scan(step, (params, opt.init(params), ema),
                                              jax.random.split(k_batch, steps))
        return params, ema, mses

    params, ema, mses = run(params, ema0)
    codebook = ema[0]
    return _finish(lambda p, x: forward(p, x, codebook)[:3], params, xtr_j, xte, K, mses, steps)


# --------------------------------------------------------------------------- the stored run

#: Configuration of the stored sweep (``python -m sulib.fsq sweep OUT.json``).
SWEEP_CONFIG = dict(
    data="sklearn load_digits / 16, first 1500 images train, last 297 test",
    vq_sizes=[16, 256, 1024, 4096],
    fsq_levels=[[5, 3], [8, 6, 5], [8, 5, 5, 5], [7, 5, 5, 5, 5]],
    bounds=["sigmoid", "tanh"], seeds=[0, 1],
    widths={"strong": [256, 256], "weak": [32]},
    n_tokens=8, vq_dim=8, steps=1500, batch=32, lr=1e-3, beta=1.0, gamma=0.25)


#: Configuration of the stored run of the stronger VQ (``python -m sulib.fsq ema OUT.json``):
#: the sweep's data, sizes, widths, seeds and budget, VQ with an EMA codebook and restarts.
EMA_CONFIG = dict(
    {k: SWEEP_CONFIG[k] for k in ("data", "vq_sizes", "seeds", "widths", "n_tokens", "vq_dim",
                                  "steps", "batch", "lr", "gamma")},
    decay=0.99, eps=1e-5, max_age=100)

#: The ablation (``python -m sulib.fsq ema-only OUT.json``): the same EMA codebook at the
#: largest size with the restart switched off (``max_age`` beyond any run's length).
EMA_ONLY_CONFIG = dict(EMA_CONFIG, vq_sizes=SWEEP_CONFIG["vq_sizes"][-1:], max_age=10**9)


def ema_runs(cfg: dict = EMA_CONFIG, prefix: str = "vq-ema"):
    """The (name, kwargs) of every run of the stronger-VQ stored run, in order."""
    return [(f"{prefix}/{width}/{K}/{seed}",
             dict(seed=seed, hidden=tuple(hidden), n_tokens=cfg["n_tokens"], steps=cfg["steps"],
                  batch=cfg["batch"], lr=cfg["lr"], kind="vq-ema", size=K, vq_dim=cfg["vq_dim"],
                  gamma=cfg["gamma"], decay=cfg["decay"], eps=cfg["eps"], max_age=cfg["max_age"]))
            for width, hidden in cfg["widths"].items() for seed in cfg["seeds"]
            for K in cfg["vq_sizes"]]


def digits_data():
    """sklearn's 8×8 digits scaled to [0, 1]: ``(x_train (1500, 64), x_test (297, 64))``."""
    from sklearn.datasets import load_digits
    x = load_digits().data.astype(np.float32) / 16.0
    return x[:1500], x[1500:]


def sweep_runs(cfg: dict = SWEEP_CONFIG):
    """The (name, kwargs) of every run of the sweep, in order."""
    runs = []
    for width, hidden in cfg["widths"].items():
        for seed in cfg["seeds"]:
            common = dict(seed=seed, hidden=tuple(hidden), n_tokens=cfg["n_tokens"],
                          steps=cfg["steps"], batch=cfg["batch"], lr=cfg["lr"])
            for K, lv in zip(cfg["vq_sizes"], cfg["fsq_levels"]):
                runs.append((f"vq/{width}/{K}/{seed}",
                             dict(common, kind="vq", size=K, vq_dim=cfg["vq_dim"],
                                  beta=cfg["beta"], gamma=cfg["gamma"])))
                for bound in cfg["bounds"] if width == "strong" else cfg["bounds"][:1]:
                    runs.append((f"fsq-{bound}/{width}/{K}/{seed}",
                                 dict(common, kind="fsq", size=tuple(lv), bound=bound)))
    return runs


def _main(argv=None) -> None:  # pragma: no cover - a CLI
    """``python -m sulib.fsq sweep|ema|ema-only OUT.json``: the chapter's VQ vs FSQ sweep, its
    stronger VQ (EMA codebook + dead-code restart), or that VQ without restarts, stored."""
    import argparse
    import sys

    from sulib._stored import write_stored_run

    parser = argparse.ArgumentParser(prog="python -m sulib.fsq")
    parser.add_argument("what", choices=["sweep", "ema", "ema-only"])
    parser.add_argument("out", help="path of the .json file to write")
    args = parser.parse_args(argv)
    xtr, xte = digits_data()
    results = {}
    runs, config = {"sweep": (sweep_runs(), SWEEP_CONFIG), "ema": (ema_runs(), EMA_CONFIG),
                    "ema-only": (ema_runs(EMA_ONLY_CONFIG, "vq-ema-only"),
                                 EMA_ONLY_CONFIG)}[args.what]
    for name, kw in runs:
        results[name] = train_autoencoder(xtr, xte, **kw)
        print(name, {k: round(v, 4) for k, v in results[name].items() if k != "loss_curve"},
              file=sys.stderr, flush=True)
    write_stored_run(args.out, "sulib.fsq", argv, config=config, results=results)


if __name__ == "__main__":  # pragma: no cover
    _main()
