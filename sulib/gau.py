"""Gated Attention Unit (GAU, FLASH paper) and the standard Attention + FFN block it replaces.

Post 9052 (GAU-α) swaps each Attention + FFN pair of a RoFormerV2 block for two GAU layers. This
module has the three blocks the post compares, with the same conventions throughout:

- :func:`gau_alpha_block`: two GAU layers, each ``x ← RMSNorm(x + GAU(x))`` (post norm, RMS norm
  without a gain, no biases and no query/key offsets, RoPE on the queries and keys, the
  entropy-invariant softmax).
- :func:`attention_ffn_block` with ``style="roformer_v2"``: multi-head attention with RoPE, then an
  FFN, each with a residual and a gain-free RMS post norm, no biases. The heads are moved in front
  of the positions before the per-head products (``(b, h, n, c)``), the layout XLA runs fastest
  on the CPU; the naive ``(b, n, h, c)`` einsum layout gives the same numbers about 2x slower.
- :func:`attention_ffn_block` with ``style="bert"``: the same with biases, LayerNorm (gain and
  shift) and no RoPE (BERT's positions are added to the embeddings, outside the block).

Shapes: tokens ``x`` are ``(n, d)`` or ``(b, n, d)``; a GAU layer has expansion ``e`` (the
paper's ``e = 2d``) and a shared query/key head of size ``s`` (the paper's 128). Parameters are
plain dicts of arrays (pytrees); :func:`param_count` counts their entries and
:func:`compiled_stats` reads XLA's FLOP count and memory for a block's forward pass or for the
gradient of its weights (a training step) at given shapes.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, one_of, positive_int

__all__ = [
    "NORMALIZATIONS",
    "STYLES",
    "BLOCKS",
    "entropy_invariant_scale",
    "rope",
    "init_gau_layer",
    "init_gau_alpha",
    "init_attention_ffn",
    "gau_layer",
    "gau_alpha_block",
    "attention_ffn_block",
    "param_count",
    "CompiledStats",
    "compiled_stats",
    "MODES",
]

#: Attention normalisations of a GAU layer: GAU-α's entropy-invariant softmax, the paper's relu².
NORMALIZATIONS = ("softmax_plus", "relu2")
#: Styles of the Attention + FFN block.
STYLES = ("bert", "roformer_v2")
#: Blocks :func:`compiled_stats` can compile.
BLOCKS = ("gau_alpha", "bert", "roformer_v2")


def entropy_invariant_scale(n, dim) -> float:
    """GAU-α's logit scale ``log_512(n) / sqrt(dim)`` for ``n`` keys and head size ``dim``."""
    n = positive_int("n", n)
    dim = positive_int("dim", dim)
    return math.log(n) / math.log(512) / math.sqrt(dim)


def _rope(x: jax.Array) -> jax.Array:
    # rotary position embedding on (b, n, ..., k), k even: pairs (x_i, x_{i+k/2}) turn by pos·θ_i
    n, k = x.shape[1], x.shape[-1]
    theta = 10000.0 ** (-jnp.arange(k // 2, dtype=x.dtype) / (k // 2))
    angle = jnp.arange(n, dtype=x.dtype)[:, None] * theta          # (n, k/2)
    angle = angle.reshape((1, n) + (1,) * (x.ndim - 3) + (k // 2,))
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    x1, x2 = x[..., : k // 2], x[..., k // 2:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def rope(x) -> jax.Array:
    """Rotary position embedding of ``x``, shape ``(b, n, k)`` or ``(b, n, heads, k)``, k even.

    Position ``m`` turns the pair ``(x_i, x_{i+k/2})`` by the angle ``m·10000^{-2i/k}``, so that
    ``rope(q)_m · rope(k)_l`` depends on the positions only through ``m - l``.
    """
    x = as_finite_array("x", x, min_ndim=3)
    if x.shape[-1] % 2:
        raise ValueError(f"x must have an even last dimension, got {x.shape[-1]}")
    return _rope(jnp.asarray(x))


def _rms(x: jax.Array) -> jax.Array:
    # the simplest RMS norm (no gain), as in RoFormerV2 and GAU-α
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-12)


def _layer_norm(x: jax.Array, gain: jax.Array, shift: jax.Array) -> jax.Array:
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-12) * gain + shift


def _normal(key, shape, fan_in, dtype):
    return jax.random.normal(key, shape, dtype) / math.sqrt(fan_in)


def init_gau_layer(key, d: int, e: int | None = None, s: int = 128, *, offset: bool = True,
                   dtype=jnp.float32) -> dict:
    """Parameters of one GAU layer (no dense biases).

    Args:
        key: a PRNG key.
        d: model width; e: expansion (default ``2d``); s: shared query/key size (default 128).
        offset: give the queries and keys a per-dimension offset ``beta`` (the FLASH paper's GAU);
            GAU-α has none (bert4keras ``GatedAttentionUnit(use_bias=False)``).
        dtype: parameter dtype.

    Returns:
        ``{"W_u": (d, e), "W_v": (d, e), "W_z": (d, s), "gamma": (2, s), "W_o": (e, d)}`` and,
        with ``offset``, ``"beta": (2, s)``; ``gamma``/``beta`` are the per-dimension scale and
        offset that turn the shared ``Z`` into the queries (row 0) and keys (row 1).
    """
    d = positive_int("d", d)
    e = 2 * d if e is None else positive_int("e", e)
    s = positive_int("s", s, minimum=2)
    if s % 2:
        raise ValueError(f"s must be even (RoPE turns pairs), got {s}")
    ku, kv, kz, kg, ko = jax.random.split(key, 5)
    p = {"W_u": _normal(ku, (d, e), d, dtype), "W_v": _normal(kv, (d, e), d, dtype),
         "W_z": _normal(kz, (d, s), d, dtype),
         "gamma": 1.0 + 0.02 * jax.random.normal(kg, (2, s), dtype),
         "W_o": _normal(ko, (e, d), e, dtype)}
    if offset:
        p["beta"] = jnp.zeros((2, s), dtype)
    return p


def init_gau_alpha(key, d: int, e: int | None = None, s: int = 128, *,
                   dtype=jnp.float32) -> dict:
    """Parameters of a GAU-α block: ``{"gau1": layer, "gau2": layer}``, each from
    :func:`init_gau_layer` with ``offset=False`` (the released GAU-α has no query/key offsets)."""
    k1, k2 = jax.random.split(key)
    return {"gau1": init_gau_layer(k1, d, e, s, offset=False, dtype=dtype),
            "gau2": init_gau_layer(k2, d, e, s, offset=False, dtype=dtype)}


def init_attention_ffn(key, d: int, heads: int, ffn: int | None = None, *, style: str = "bert",
                       dtype=jnp.float32) -> dict:
    """Parameters of a multi-head attention + FFN block.

    Args:
        d: model width, divisible by ``heads`` (and ``d/heads`` even for RoPE); ffn: FFN width
        (default ``4d``); style: ``"bert"`` (biases, LayerNorm gains and shifts) or
        ``"roformer_v2"`` (no biases, gain-free RMS norm: weights only).

    Returns:
        ``W_q, W_k, W_v, W_o`` (d, d), ``W_1`` (d, ffn), ``W_2`` (ffn, d); for ``"bert"`` also
        ``b_q, b_k, b_v, b_o, b_2`` (d,), ``b_1`` (ffn,) and ``ln1_g, ln1_b, ln2_g, ln2_b`` (d,).
    """
    one_of("style", style, STYLES)
    d = positive_int("d", d)
    heads = positive_int("heads", heads)
    ffn = 4 * d if ffn is None else positive_int("ffn", ffn)
    if d % heads or (d // heads) % 2:
        raise ValueError(f"d must be a multiple of 2·heads, got d={d}, heads={heads}")
    ks = jax.random.split(key, 6)
    p = {name: _normal(k, (d, d), d, dtype) for name, k in zip(("W_q", "W_k", "W_v", "W_o"), ks)}
    p["W_1"] = _normal(ks[4], (d, ffn), d, dtype)
    p["W_2"] = _normal(ks[5], (ffn, d), ffn, dtype)
    if style == "bert":
        for name in ("b_q", "b_k", "b_v", "b_o", "b_2", "ln1_b", "ln2_b"):
            p[name] = jnp.zeros((d,), dtype)
        p["b_1"] = jnp.zeros((ffn,), dtype)
        p["ln1_g"] = jnp.ones((d,), dtype)
        p["ln2_g"] = jnp.ones((d,), dtype)
    return p


def _gau(p: dict, x: jax.Array, normalization: str, use_rope: bool) -> jax.Array:
    # x (b, n, d) -> (b, n, d)
    n, s = x.shape[1], p["W_z"].shape[1]
    u = jax.nn.silu(x @ p["W_u"])                                   # (b, n, e)
    v = jax.nn.silu(x @ p["W_v"])                                   # (b, n, e)
    z = jax.nn.silu(x @ p["W_z"])                                   # (b, n, s)
    q, k = z * p["gamma"][0], z * p["gamma"][1]
    if "beta" in p:
        q, k = q + p["beta"][0], k + p["beta"][1]
    if use_rope:
        q, k = _rope(q), _rope(k)
    scores = jnp.einsum("bis,bjs->bij", q, k)                       # (b, n, n)
    if normalization == "softmax_plus":
        a = jax.nn.softmax(scores * (math.log(n) / math.log(512) / math.sqrt(s)), axis=-1)
    else:
        a = jnp.square(jax.nn.relu(scores / n))
    return (u * (a @ v)) @ p["W_o"]


@partial(jax.jit, static_argnames=("normalization", "use_rope"))
def _gau_layer(p, x, normalization, use_rope):
    return _gau(p, x, normalization, use_rope)


@jax.jit
def _gau_alpha(p, x):
    for name in ("gau1", "gau2"):
        x = _rms(x + _gau(p[name], x, "softmax_plus", True))
    return x


def _attention_ffn(p: dict, x: jax.Array, heads: int, style: str,
                   heads_first: bool = True) -> jax.Array:
    # heads_first=False: the naive (b, n, h, c) einsum layout, same numbers, slower on XLA-CPU
    b, n, d = x.shape
    bert = style == "bert"

    def dense(y, w, bias):
        return y @ p[w] + p[bias] if bert else y @ p[w]

    def split(y):
        return y.reshape(b, n, heads, d // heads)

    q, k, v = (split(dense(x, f"W_{c}", f"b_{c}")) for c in "qkv")
    if not bert:
        q, k = _rope(q), _rope(k)
    if heads_first:
        q, k, v = (y.transpose(0, 2, 1, 3) for y in (q, k, v))              # (b, h, n, c)
        scores = jnp.einsum("bhic,bhjc->bhij", q, k) / math.sqrt(d // heads)
        a = jax.nn.softmax(scores, axis=-1)                               # (b, h, n, n)
        o = jnp.einsum("bhij,bhjc->bhic", a, v).transpose(0, 2, 1, 3)
    else:
        scores = jnp.einsum("bihc,bjhc->bhij", q, k) / math.sqrt(d // heads)
        a = jax.nn.softmax(scores, axis=-1)
        o = jnp.einsum("bhij,bjhc->bihc", a, v)
    o = dense(o.reshape(b, n, d), "W_o", "b_o")
    x = _layer_norm(x + o, p["ln1_g"], p["ln1_b"]) if bert else _rms(x + o)
    f = dense(jax.nn.gelu(dense(x, "W_1", "b_1")), "W_2", "b_2")
    return _layer_norm(x + f, p["ln2_g"], p["ln2_b"]) if bert else _rms(x + f)


_attention_ffn_jit = jax.jit(_attention_ffn, static_argnames=("heads", "style", "heads_first"))


def _check_tokens(x, d: int) -> tuple[jax.Array, bool]:
    arr = as_finite_array("x", x, min_ndim=2)
    if arr.ndim > 3:
        raise ValueError(f"x must have shape (n, d) or (b, n, d), got {arr.shape}")
    if arr.shape[-1] != d:
        raise ValueError(f"x must have last dimension d = {d} (the parameters'), got {arr.shape[-1]}")
    if arr.shape[-2] < 1:
        raise ValueError("x must hold at least one token")
    squeeze = arr.ndim == 2
    x = jnp.asarray(x)
    return (x[None] if squeeze else x), squeeze


def _check_params(params, names: tuple[str, ...], what: str) -> dict:
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict ({what}), got {type(params).__name__}")
    missing = [k for k in names if k not in params]
    if missing:
        raise ValueError(f"params is missing {', '.join(missing)} ({what})")
    return params


_GAU_NAMES = ("W_u", "W_v", "W_z", "gamma", "W_o")
_ATTN_NAMES = ("W_q", "W_k", "W_v", "W_o", "W_1", "W_2")
_BERT_NAMES = ("b_q", "b_k", "b_v", "b_o", "b_1", "b_2", "ln1_g", "ln1_b", "ln2_g", "ln2_b")


def _check_gau_params(params) -> int:
    # a GAU layer's dict: names and shapes; returns d
    p = _check_params(params, _GAU_NAMES, "a GAU layer")
    if np.ndim(p["W_u"]) != 2:
        raise ValueError(f"params['W_u'] must be (d, e), got shape {np.shape(p['W_u'])}")
    d, e = np.shape(p["W_u"])
    s = np.shape(p["W_z"])[-1] if np.ndim(p["W_z"]) == 2 else -1
    want = {"W_v": (d, e), "W_z": (d, s), "gamma": (2, s), "W_o": (e, d)}
    if "beta" in p:
        want["beta"] = (2, s)
    for name, shape in want.items():
        if tuple(np.shape(p[name])) != shape:
            raise ValueError(f"params[{name!r}] must have shape {shape} (W_u is {(d, e)}, "
                             f"W_z {np.shape(p['W_z'])}), got {tuple(np.shape(p[name]))}")
    if s % 2:
        raise ValueError(f"params['W_z'] must have an even number of columns s (RoPE), got {s}")
    return d


def _check_gau_alpha_params(params) -> int:
    if not isinstance(params, dict) or set(params) != {"gau1", "gau2"}:
        raise ValueError("params must be {'gau1': ..., 'gau2': ...} from init_gau_alpha")
    d1, d2 = (_check_gau_params(params[name]) for name in ("gau1", "gau2"))
    if d1 != d2:
        raise ValueError(f"params' two GAU layers have different widths d: {d1} and {d2}")
    return d1


def _check_attention_params(params, heads: int, style: str) -> int:
    names = _ATTN_NAMES + (_BERT_NAMES if style == "bert" else ())
    p = _check_params(params, names, f"an attention + FFN block, style {style!r}")
    if style == "roformer_v2":
        extra = sorted(set(p) & set(_BERT_NAMES))
        if extra:
            raise ValueError(f"params has {', '.join(extra)}, which style 'roformer_v2' would "
                             "ignore (no biases, no norm gains); use style='bert'")
    if np.ndim(p["W_q"]) != 2:
        raise ValueError(f"params['W_q'] must be (d, d), got shape {np.shape(p['W_q'])}")
    d = np.shape(p["W_q"])[0]
    if d % heads or (d // heads) % 2:
        raise ValueError(f"heads must divide d = {d} into even head sizes, got {heads}")
    return d


def gau_layer(params: dict, x, *, normalization: str = "softmax_plus",
              use_rope: bool = True) -> jax.Array:
    """One GAU layer (FLASH paper), without residual or norm.

    ``U = φ(XW_u)``, ``V = φ(XW_v)``, ``Z = φ(XW_z)`` with ``φ = SiLU``; ``Q = Zγ₀ (+ β₀)``,
    ``K = Zγ₁ (+ β₁)`` (offsets if ``params`` has ``beta``; RoPE on both if ``use_rope``); ``A = softmax(log_512(n)/√s · QKᵀ)``
    (``"softmax_plus"``, GAU-α) or ``relu²(QKᵀ/n)`` (``"relu2"``, the paper);
    ``O = (U ⊙ AV) W_o``.

    Args:
        params: from :func:`init_gau_layer`.
        x: ``(n, d)`` or ``(b, n, d)``.

    Returns:
        an array of the shape of ``x``.
    """
    one_of("normalization", normalization, NORMALIZATIONS)
    d = _check_gau_params(params)
    x, squeeze = _check_tokens(x, d)
    out = _gau_layer(params, x, normalization, bool(use_rope))
    return out[0] if squeeze else out


def gau_alpha_block(params: dict, x) -> jax.Array:
    """A GAU-α block: two GAU layers (softmax_plus, RoPE), each with residual and RMS post norm.

    Args:
        params: from :func:`init_gau_alpha`.
        x: ``(n, d)`` or ``(b, n, d)``.

    Returns:
        an array of the shape of ``x``.
    """
    d = _check_gau_alpha_params(params)
    x, squeeze = _check_tokens(x, d)
    out = _gau_alpha(params, x)
    return out[0] if squeeze else out


def attention_ffn_block(params: dict, x, *, heads: int, style: str = "bert") -> jax.Array:
    """Multi-head self-attention then FFN (GELU), each with a residual and a post norm.

    ``style="bert"``: biases and LayerNorm; ``"roformer_v2"``: RoPE on queries and keys, no
    biases, gain-free RMS norm. Scores are scaled by ``1/√(d/heads)``.

    Args:
        params: from :func:`init_attention_ffn` with the same ``style``.
        x: ``(n, d)`` or ``(b, n, d)``; heads: number of heads.

    Returns:
        an array of the shape of ``x``.
    """
    one_of("style", style, STYLES)
    heads = positive_int("heads", heads)
    d = _check_attention_params(params, heads, style)
    x, squeeze = _check_tokens(x, d)
    out = _attention_ffn_jit(params, x, heads, style)
    return out[0] if squeeze else out


def param_count(params) -> int:
    """Number of scalar parameters in a pytree of arrays or ``jax.ShapeDtypeStruct`` leaves
    (e.g. from ``jax.eval_shape``, which gives the shapes without drawing any numbers)."""
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("params holds no arrays")
    return int(sum(math.prod(leaf.shape) if hasattr(leaf, "shape") else np.size(leaf)
                   for leaf in leaves))


class CompiledStats(NamedTuple):
    """What XLA reports for one compiled program (nothing is run)."""

    flops: float  #: cost_analysis()["flops"]: multiply-adds count 2, elementwise ops 1
    transcendentals: float  #: cost_analysis()["transcendentals"]: exp, rsqrt, tanh, ...
    temp_bytes: int  #: memory_analysis().temp_size_in_bytes: XLA's scratch buffers
    arg_bytes: int  #: memory_analysis().argument_size_in_bytes: weights and tokens
    out_bytes: int  #: memory_analysis().output_size_in_bytes: the result (or the gradients)

    @property
    def total_bytes(self) -> int:
        """Arguments + temporaries + output: what the program holds at its peak, at most."""
        return self.arg_bytes + self.temp_bytes + self.out_bytes


MODES = ("forward", "train")


def _block_fn(block: str, heads: int):
    if block == "gau_alpha":
        return _gau_alpha
    return partial(_attention_ffn, heads=heads, style=block)


def compiled_stats(block: str, params: dict, x, *, heads: int = 12,
                   mode: str = "forward") -> CompiledStats:
    """Compile ``block`` for the shapes of ``params`` and ``x`` and read XLA's analyses.

    Args:
        block: one of :data:`BLOCKS`; params: its parameters (arrays, or their
            ``jax.eval_shape`` structs); x: ``(b, n, d)`` tokens (or a
            ``jax.ShapeDtypeStruct`` of that shape); heads: for the attention blocks.
        mode: ``"forward"`` (the block's output) or ``"train"`` (the gradient of
            ``block(params, x).sum()`` with respect to ``params``: the forward pass, the saved
            activations and the backward pass of one training step).

    Returns:
        :class:`CompiledStats`; deterministic for one JAX/XLA version and backend.

    Raises:
        RuntimeError: if this JAX reports no cost or memory analysis.
    """
    one_of("block", block, BLOCKS)
    one_of("mode", mode, MODES)
    heads = positive_int("heads", heads)
    if block == "gau_alpha":
        d = _check_gau_alpha_params(params)
    else:
        d = _check_attention_params(params, heads, block)
    if not isinstance(x, jax.ShapeDtypeStruct):
        arr = as_finite_array("x", x)
        x = jax.ShapeDtypeStruct(arr.shape, jnp.asarray(x).dtype)
    if len(x.shape) != 3 or x.shape[-1] != d or x.shape[1] < 1:
        raise ValueError(f"x must have shape (b, n, d) with d = {d} (the parameters'), "
                         f"got {x.shape}")
    block_fn = _block_fn(block, heads)
    if mode == "train":
        fn = jax.jit(jax.grad(lambda p, y: block_fn(p, y).sum()))
    else:
        fn = jax.jit(block_fn)
    compiled = fn.lower(params, x).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per device
        cost = cost[0] if cost else None
    memory = compiled.memory_analysis()
    if cost is None or memory is None:
        raise RuntimeError("this JAX backend reports no cost or memory analysis")
    return CompiledStats(float(cost.get("flops", 0.0)), float(cost.get("transcendentals", 0.0)),
                         int(memory.temp_size_in_bytes), int(memory.argument_size_in_bytes),
                         int(memory.output_size_in_bytes))
