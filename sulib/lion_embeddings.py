"""Embedding drift under sign-based optimizers (Lion, Tiger) and its fixes (post 9736).

Lion and Tiger update a weight by ``-η [sign(c_t) + λ θ_{t-1}]``. When a row of an embedding
matrix stops receiving gradient, its momentum decays geometrically but keeps its sign, so the row
keeps moving by ``η`` per step towards the fixed point ``θ* = -sign/λ``. This module computes

* :func:`sign_decay_closed_form` -- the closed form of that recursion for a constant sign and step,
  ``θ_t = θ* + (1 - ηλ)^t (θ_0 - θ*)``;
* :func:`momentum_underflow_steps` -- how many steps ``m ← β m`` takes to reach exactly 0 in a
  given float dtype on the running XLA backend (with that backend's denormal handling), or ``-1``
  when the product stops changing before it reaches 0;
* :func:`lazy_rows` -- an optax transformation that zeroes the update of every row whose gradient
  row is all zero (the "lazy" embedding update);
* a Zipfian bigram source (:func:`zipf_bigram_source`) and a one-layer bigram language model
  (embedding, RMS norm, output matrix or the half-swapped tied embedding) trained by
  :func:`train_toy_lm` with one of :data:`ARMS`: AdamW, Lion, Lion with lazy embedding rows, Lion
  with the tied half-swap head, and Lion with AdamW for the embedding only
  (``optax.multi_transform``). With ``track_sign=True`` it also counts, per embedding row, how
  often the gradient's sign at a later step (per entry) agrees with its sign at the row's first
  step with a non-zero gradient: the post's "the gradient comes back with the same sign".
  ``norm=False`` drops the RMS norm: with it, ``∂L/∂E_x`` is orthogonal to the row ``E_x`` (the
  norm is scale-invariant), so no gradient can push a row further along itself.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from jax.typing import ArrayLike

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar

__all__ = ["ARMS", "RUN_CONFIG", "ToyRun", "lazy_rows", "momentum_underflow_steps",
           "near_fixed_point", "once_seen_residual", "run_config", "sign_decay_closed_form",
           "toy_logits", "train_toy_lm", "zipf_bigram_source"]

#: The optimizer arms of the toy language model.
ARMS = ("adamw", "lion", "lion_lazy", "lion_tied_swap", "lion_adam_emb")


def sign_decay_closed_form(theta0: ArrayLike, sign: ArrayLike, lr: float, wd: float,
                           t: ArrayLike) -> jax.Array:
    """``θ_t`` of ``θ_t = θ_{t-1} - lr (sign + wd θ_{t-1})``, constant ``sign``, ``lr``, ``wd``.

    ``θ_t = -sign/wd + (1 - lr wd)^t (θ_0 + sign/wd)``. Arrays broadcast against each other; ``t``
    holds step counts >= 0. Returns an array of the broadcast shape.

    Raises:
        ValueError: if ``lr`` or ``wd`` is not > 0, ``lr * wd >= 1`` (no monotone approach),
            ``sign`` holds values other than -1, 0, 1, or ``t`` is negative or not whole.
    """
    lr = positive_scalar("lr", lr)
    wd = positive_scalar("wd", wd)
    if lr * wd >= 1:
        raise ValueError(f"lr * wd must be < 1, got {lr * wd}")
    theta0 = as_finite_array("theta0", theta0)
    sign = as_finite_array("sign", sign)
    if not np.all(np.isin(sign, (-1, 0, 1))):
        raise ValueError("sign must hold only -1, 0 or 1")
    t = as_finite_array("t", t)
    if np.any(t < 0) or np.any(t != np.round(t)):
        raise ValueError("t must hold whole numbers >= 0")
    return _closed_form(jnp.asarray(theta0), jnp.asarray(sign), lr, wd, jnp.asarray(t))


@jax.jit
def _closed_form(theta0, sign, lr, wd, t):
    fixed = -sign / wd
    return fixed + (1 - lr * wd) ** t * (theta0 - fixed)


def momentum_underflow_steps(m0: float, beta: float, dtype: str = "float32",
                             max_steps: int = 1_000_000) -> int:
    """Steps of ``m ← round(β m)`` in ``dtype`` until ``m == 0``, on the running XLA backend.

    ``m0`` and ``beta`` are rounded to ``dtype`` first. Returns the step count at which ``m``
    first equals 0, or ``-1`` if ``m`` stopped changing (``round(β m) == m``) before reaching 0,
    or if ``max_steps`` passed. XLA on CPU flushes subnormal results to zero, so there the count is
    set by the smallest *normal* number; IEEE arithmetic with subnormals (NumPy) behaves
    differently.

    Raises:
        ValueError: if ``m0`` is not > 0, ``beta`` not in (0, 1), or ``dtype`` unknown.
    """
    m0 = positive_scalar("m0", m0)
    beta = positive_scalar("beta", beta)
    if beta >= 1:
        raise ValueError(f"beta must be < 1, got {beta}")
    one_of("dtype", dtype, ("float32", "bfloat16", "float16", "float64"))
    max_steps = positive_int("max_steps", max_steps)
    steps, m, moved = _underflow(jnp.dtype(dtype), max_steps, m0, beta)
    if float(m) != 0.0:
        return -1
    return int(steps)


@partial(jax.jit, static_argnums=(0, 1))
def _underflow(dtype, max_steps, m0, beta):
    b = jnp.asarray(beta).astype(dtype)

    def cond(c):
        m, t, moved = c
        return (m != 0) & moved & (t < max_steps)

    def body(c):
        m, t, _ = c
        new = (b * m).astype(dtype)
        return new, t + 1, new != m

    m, t, moved = jax.lax.while_loop(cond, body, (jnp.asarray(m0).astype(dtype), 0, True))
    return t, m, moved


def lazy_rows(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wrap ``inner``: rows (first axis) of a leaf whose gradient row is all zero get update 0.

    Leaves are ``(rows, ...)`` arrays. The inner state (momentum) is updated as ``inner`` does;
    only the parameter update of a row whose gradient is all zero is suppressed, its weight decay
    included (so such a row does not even decay). Leaves of ndim < 2 pass unchanged.
    """

    def init_fn(params):
        return inner.init(params)

    def update_fn(updates, state, params=None):
        new, state = inner.update(updates, state, params)

        def mask(u, g):
            if g.ndim < 2:
                return u
            live = jnp.any(g != 0, axis=tuple(range(1, g.ndim)), keepdims=True)
            return jnp.where(live, u, jnp.zeros_like(u))

        return jax.tree_util.tree_map(mask, new, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def zipf_bigram_source(key: jax.Array, n: int, zipf: float = 1.1,
                       spread: float = 2.0) -> tuple[jax.Array, jax.Array]:
    """A bigram source over ``n`` tokens: unigram ``u`` (shape ``(n,)``) ∝ ``rank^-zipf`` and a
    row-stochastic transition matrix ``T`` (shape ``(n, n)``),
    ``T[i] ∝ u · exp(spread·N(0,1))``.

    Raises:
        ValueError/TypeError: if ``n`` is not an int >= 2 or ``zipf``/``spread`` not > 0.
    """
    n = positive_int("n", n, minimum=2)
    zipf = positive_scalar("zipf", zipf)
    spread = positive_scalar("spread", spread)
    return _source(key, n, zipf, spread)


@partial(jax.jit, static_argnums=(1,))
def _source(key, n, zipf, spread):
    logu = -zipf * jnp.log(jnp.arange(1, n + 1, dtype=jnp.float32))
    u = jax.nn.softmax(logu)
    T = jax.nn.softmax(logu[None, :] + spread * jax.random.normal(key, (n, n)), axis=1)
    return u, T


def toy_logits(params: dict, x: jax.Array, tied_swap: bool, norm: bool = True) -> jax.Array:
    """Logits ``(batch, n)`` for context tokens ``x`` (``(batch,)``): ``h = RMSnorm(E[x])``, then
    ``h W^T`` (untied, ``W`` of shape ``(n, d)``) or ``S[h] E^T`` with the half swap
    ``S[h] = h[d/2:] ∘ h[:d/2]`` (tied). ``norm=False``: ``h = E[x]`` (no RMS norm)."""
    h = params["emb"][x]
    d = h.shape[-1]
    if norm:
        h = h * jax.lax.rsqrt(jnp.mean(h * h, axis=-1, keepdims=True) + 1e-12)
    if tied_swap:
        h = jnp.concatenate([h[:, d // 2:], h[:, : d // 2]], axis=-1)
        return h @ params["emb"].T
    return h @ params["out"].T


class ToyRun(NamedTuple):
    """Result of :func:`train_toy_lm`."""

    emb: np.ndarray       #: final input embedding, ``(n, d)``
    emb0: np.ndarray      #: initial input embedding, ``(n, d)``
    tokens: np.ndarray    #: context tokens fed, ``(steps, batch)``
    losses: np.ndarray    #: training loss per step (nats), ``(steps,)``
    source_loss: float    #: final expected loss on the source (nats)
    out: np.ndarray | None = None         #: final output matrix ``(n, d)``; None when tied
    sign_agree: np.ndarray | None = None  #: ``(n,)`` entries agreeing in sign (track_sign)
    sign_later: np.ndarray | None = None  #: ``(n,)`` later steps compared (track_sign)


def _optimizer(arm, lr, wd, b1, b2, adam_lr):
    lion = optax.lion(lr, b1=b1, b2=b2, weight_decay=wd)
    if arm == "adamw":
        return optax.adamw(adam_lr, weight_decay=wd)
    if arm in ("lion", "lion_tied_swap"):
        return lion
    if arm == "lion_lazy":
        return optax.multi_transform({"emb": lazy_rows(lion), "rest": lion},
                                     {"emb": "emb", "out": "rest"})
    return optax.multi_transform({"emb": optax.adamw(adam_lr, weight_decay=wd), "rest": lion},
                                 {"emb": "emb", "out": "rest"})


def train_toy_lm(seed: int, arm: str, *, n: int = 1000, d: int = 32, steps: int = 1500,
                 batch: int = 32, lr: float = 4e-3, wd: float = 0.5, adam_lr: float = 3e-3,
                 b1: float = 0.9, b2: float = 0.99, zipf: float = 1.1, init_std: float = 0.02,
                 source_seed: int = 0, track_sign: bool = False, norm: bool = True) -> ToyRun:
    """Train the bigram LM of :func:`toy_logits` on :func:`zipf_bigram_source` in float32.

    Each step draws ``batch`` context tokens from the unigram law and their next tokens from
    ``T``, and takes one step of ``arm`` (one of :data:`ARMS`) on the cross-entropy. Lion uses
    ``optax.lion(lr, b1, b2, weight_decay=wd)`` (so ``θ ← θ - lr (sign(c) + wd θ)``); AdamW
    uses
    ``optax.adamw(adam_lr, weight_decay=wd)``. The tied arm has no ``out`` matrix. ``norm=False``
    trains the model without its RMS norm (see :func:`toy_logits`).

    The draws depend on ``jax_enable_x64``: the stored run, the chapter and the tests set it
    (with it off, the sampled next tokens differ and so do all results).

    With ``track_sign``, the scan also keeps per row the sign ``(d,)`` of its gradient at its
    first step with a non-zero gradient row, and at every later such step adds to
    ``sign_agree[row]`` the number of entries whose gradient sign equals it, and 1 to
    ``sign_later[row]``; ``sign_agree / (d · sign_later)`` is the agreement fraction (1/2 for
    independent signs). A step counts once however many times the token occurs in its batch. In
    the tied arm every row has a gradient at every step, so there "later" means every later step.

    Raises:
        ValueError/TypeError: on an unknown ``arm``, non-positive sizes or rates, or odd ``d``.
    """
    one_of("arm", arm, ARMS)
    if not isinstance(norm, bool):
        raise TypeError(f"norm must be a bool, got {type(norm).__name__}")
    n = positive_int("n", n, minimum=2)
    d = positive_int("d", d, minimum=2)
    if d % 2:
        raise ValueError(f"d must be even (half swap), got {d}")
    steps = positive_int("steps", steps)
    batch = positive_int("batch", batch)
    seed = positive_int("seed", seed, minimum=0)
    source_seed = positive_int("source_seed", source_seed, minimum=0)
    for name, val in (("lr", lr), ("wd", wd), ("adam_lr", adam_lr), ("zipf", zipf),
                      ("init_std", init_std)):
        positive_scalar(name, val)
    for name, val in (("b1", b1), ("b2", b2)):
        if positive_scalar(name, val) >= 1:
            raise ValueError(f"{name} must be in (0, 1), got {val}")
    u, T = zipf_bigram_source(jax.random.PRNGKey(source_seed), n, zipf)
    key = jax.random.PRNGKey(seed)
    k_e, k_o, k_x, k_y = jax.random.split(key, 4)
    x = jax.random.choice(k_x, n, (steps, batch), p=u)
    params = {"emb": init_std * jax.random.normal(k_e, (n, d), jnp.float32)}
    if arm != "lion_tied_swap":
        params["out"] = init_std * jax.random.normal(k_o, (n, d), jnp.float32)
    opt = _optimizer(arm, lr, wd, b1, b2, adam_lr)
    final, losses, (_, _, agree, later) = _train(
        params, x, jax.random.split(k_y, steps), jnp.log(T), opt, arm == "lion_tied_swap",
        bool(track_sign), bool(norm))
    logits = toy_logits(final, jnp.arange(n), arm == "lion_tied_swap", bool(norm))
    src = -jnp.sum(u[:, None] * T * jax.nn.log_softmax(logits, axis=-1))
    out = np.asarray(final["out"]) if "out" in final else None
    return ToyRun(np.asarray(final["emb"]), np.asarray(params["emb"]), np.asarray(x),
                  np.asarray(losses), float(src), out,
                  np.asarray(agree) if track_sign else None,
                  np.asarray(later) if track_sign else None)


def _sign_step(track, g):
    """One step of the sign bookkeeping of :func:`train_toy_lm` for the gradient ``g`` (n, d)."""
    first, seen, agree, later = track
    live = jnp.any(g != 0, axis=1)
    sg = jnp.sign(g)
    again = live & seen
    agree = agree + jnp.where(again, jnp.sum(sg == first, axis=1), 0).astype(agree.dtype)
    later = later + again.astype(later.dtype)
    first = jnp.where((live & ~seen)[:, None], sg, first)
    return first, seen | live, agree, later


@partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _train(params, x, keys, logT, opt, tied_swap, track_sign, norm=True):
    def loss_fn(p, xb, yb):
        lp = jax.nn.log_softmax(toy_logits(p, xb, tied_swap, norm), axis=-1)
        return -jnp.mean(jnp.take_along_axis(lp, yb[:, None], axis=1))

    def step(carry, xk):
        p, s, track = carry
        xb, k = xk
        yb = jax.random.categorical(k, logT[xb], axis=-1)     # next tokens ~ T[x]
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        if track_sign:
            track = _sign_step(track, g["emb"])
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s, track), loss

    n = params["emb"].shape[0]
    track = (jnp.zeros_like(params["emb"]), jnp.zeros(n, bool), jnp.zeros(n, jnp.int32),
             jnp.zeros(n, jnp.int32))
    (p, _, track), losses = jax.lax.scan(step, (params, opt.init(params), track), (x, keys))
    return p, losses, track


#: The stored run of the chapter ``book/optim/lion_embeddings.ipynb``.
RUN_CONFIG = dict(seeds=[1, 2], n=1000, d=32, steps=1500, batch=32, lr=4e-3, wd=0.5,
                  adam_lr=4e-3, b1=0.9, b2=0.99, zipf=1.1, init_std=0.02, source_seed=0)


def once_seen_residual(run: ToyRun, lr: float, wd: float) -> tuple[int, float]:
    """For the rows fed exactly once, the largest ``|θ_T - closed form|`` under Lion.

    A row first fed at step ``s`` (1-based) only decays before it,
    ``θ_{s-1} = (1-lr wd)^{s-1} θ_0``,
    and from step ``s`` on its sign is the sign of that one gradient, so ``θ_T`` is
    :func:`sign_decay_closed_form` of ``θ_{s-1}`` over ``T - s + 1`` steps, for the sign (±1, per
    entry) that fits best: the two candidates differ by at least ``2 lr``, far above float32
    rounding. Returns (number of such rows, max abs residual). It assumes the untied Lion arm
    (``optax.lion(lr, weight_decay=wd)``): ``lr`` and ``wd`` must be the run's.

    Raises:
        ValueError: if ``lr`` or ``wd`` is not > 0 or ``lr * wd >= 1``.
    """
    lr = positive_scalar("lr", lr)
    wd = positive_scalar("wd", wd)
    if lr * wd >= 1:
        raise ValueError(f"lr * wd must be < 1, got {lr * wd}")
    steps = run.tokens.shape[0]
    counts = np.bincount(run.tokens.ravel(), minlength=run.emb.shape[0])
    rows = np.flatnonzero(counts == 1)
    first = np.array([np.flatnonzero((run.tokens == r).any(axis=1))[0] + 1 for r in rows])
    before = (1 - lr * wd) ** (first[:, None] - 1) * run.emb0[rows]
    k = steps - first[:, None] + 1
    err = [np.abs(np.asarray(sign_decay_closed_form(before, s, lr, wd, k)) - run.emb[rows])
           for s in (-1.0, 1.0)]
    return int(rows.size), float(np.max(np.minimum(*err), initial=0.0))


def near_fixed_point(w: np.ndarray, wd: float, tol: float = 0.1) -> np.ndarray:
    """Per row of ``w`` ``(rows, d)``: how many entries lie within ``tol/wd`` of ``±1/wd``."""
    wd = positive_scalar("wd", wd)
    w = as_finite_array("w", w, min_ndim=2)
    return np.sum(np.abs(np.abs(w.astype(np.float64)) * wd - 1) <= tol, axis=1)


def run_config(cfg: dict) -> dict:
    """Every arm and seed of ``cfg``: per row its count, RMS, max |entry|, entries within 10 % of
    ``±1/λ`` (embedding and, untied, output matrix) and the gradient-sign agreement counts of
    :func:`train_toy_lm`; losses; residuals."""
    kw = {k: v for k, v in cfg.items() if k != "seeds"}
    out = {}
    for arm in ARMS:
        per_seed = []
        for seed in cfg["seeds"]:
            r = train_toy_lm(seed, arm, track_sign=True, **kw)
            rec = dict(counts=np.bincount(r.tokens.ravel(), minlength=cfg["n"]).tolist(),
                       rms=np.round(np.sqrt((r.emb.astype(np.float64) ** 2).mean(1)), 6).tolist(),
                       maxabs=np.round(np.abs(r.emb).max(1).astype(np.float64), 6).tolist(),
                       near=near_fixed_point(r.emb, cfg["wd"]).tolist(),
                       sign_agree=r.sign_agree.tolist(), sign_later=r.sign_later.tolist(),
                       source_loss=round(r.source_loss, 6),
                       train_loss_last100=round(float(r.losses[-100:].mean()), 6))
            if r.out is not None:
                rec["out_near"] = near_fixed_point(r.out, cfg["wd"]).tolist()
            if arm == "lion":
                k, res = once_seen_residual(r, cfg["lr"], cfg["wd"])
                rec.update(once_seen_rows=k, once_seen_residual=float(f"{res:.3e}"))
            per_seed.append(rec)
        out[arm] = per_seed
    return out


def _main(argv=None) -> None:  # pragma: no cover - a CLI
    """``python -m sulib.lion_embeddings train OUT.json``: the chapter's stored run."""
    import argparse

    from sulib._stored import write_stored_run

    parser = argparse.ArgumentParser(prog="python -m sulib.lion_embeddings")
    parser.add_argument("what", choices=["train"])
    parser.add_argument("out", help="path of the .json file to write")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    write_stored_run(args.out, "sulib.lion_embeddings", argv, config=RUN_CONFIG,
                     arms=run_config(RUN_CONFIG))


if __name__ == "__main__":  # pragma: no cover
    _main()
