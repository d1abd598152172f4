"""The position probe of post 9105: can a relative-position attention layer count?

The probe feeds ``n`` identical tokens ("0") and asks for the outputs ``1, 2, …, n`` (target
``"raw"``) or ``1/n, 2/n, …, 1`` (target ``"unit"``). With identical inputs every value vector is
the same, so any row-stochastic attention returns that vector at every position and the probe
cannot be solved. This module holds a one-layer model with a learned, clipped relative-position
bias ``b_ij = q_i·k_j/√d + r[clip(i − j, −P, P)]`` and the variants that break ``Σ_j a_ij = 1``:

* ``"softmax"``: plain softmax attention (the defect);
* ``"shaw"``: softmax, with Shaw et al.'s relative embeddings added to the values,
  ``o_i = Σ_j a_ij (v_j + e[clip(i − j)])``;
* ``"toeplitz"``: softmax times a Toeplitz gate, ``o_i = Σ_j a_ij g[clip(i − j)] v_j``;
* ``"exp"``: the softmax without its denominator, ``a_ij = e^{b_ij}``;
* ``"l2"``: ``a_ij = e^{b_ij} / √(Σ_j e^{2 b_ij})``;
* ``"swish_l2"``: ``a_ij = swish(b_ij) / √(Σ_j swish(b_ij)²)``;
* ``"boundary"``: plain softmax, with learned [CLS] and [SEP] tokens around the zeros.

A token's output is ``y = w₂·relu(W₁(x + o) + c₁) + c₂`` (a position-wise readout).
:func:`attention_weights` gives the weights of a score matrix, :func:`probe_outputs` the model's
outputs on the probe, :func:`train_probe` trains the model with optax Adam in one ``lax.scan``
(lengths ``1…n_train`` in every step) and :func:`probe_errors` measures it at other lengths.
``python -m sulib.position_probe out.json`` writes the chapter's stored run (:data:`RUN_CONFIG`);
``--config l2long`` writes the longer l2 run (:data:`L2_LONG_CONFIG`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, one_of, positive_int, positive_scalar

__all__ = ["KINDS", "VARIANTS", "TARGETS", "RUN_CONFIG", "attention_weights", "init_params",
           "probe_outputs", "probe_targets", "train_probe", "probe_errors", "ProbeRun",
           "L2_LONG_CONFIG"]

KINDS = ("softmax", "exp", "l2", "swish_l2")
"""Weight maps of :func:`attention_weights`."""

VARIANTS = ("softmax", "shaw", "toeplitz", "exp", "l2", "swish_l2", "boundary")
"""Model variants of :func:`probe_outputs`."""

TARGETS = ("raw", "unit")
"""Probe targets: ``i`` (raw) or ``i/n`` (unit)."""

_KIND_OF = {"softmax": "softmax", "shaw": "softmax", "toeplitz": "softmax", "exp": "exp",
            "l2": "l2", "swish_l2": "swish_l2", "boundary": "softmax"}


def _weights(b, key_mask, kind: str):
    # b (..., L, L) scores, key_mask (..., L) of 0/1; masked keys get weight exactly 0
    m = key_mask[..., None, :]
    if kind == "softmax":
        z = jnp.where(m > 0, b, -jnp.inf)
        return jax.nn.softmax(z, axis=-1) * m
    if kind == "exp":
        return jnp.exp(b) * m
    f = jnp.exp(b) if kind == "l2" else jax.nn.swish(b)
    f = f * m
    return f / jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True) + 1e-30)


_weights_jit = jax.jit(_weights, static_argnames=("kind",))


def attention_weights(b, key_mask=None, kind: str = "softmax") -> jax.Array:
    """Attention weights ``a_ij`` of scores ``b_ij`` for one of :data:`KINDS`.

    Args:
        b: scores, shape ``(..., L, L)`` (queries by keys).
        key_mask: 0/1 of shape ``(..., L)``; keys with 0 get weight 0 (default: all 1).
        kind: ``"softmax"`` (``e^b/Σe^b``), ``"exp"`` (``e^b``), ``"l2"`` (``e^b/‖e^b‖₂``) or
            ``"swish_l2"`` (``swish(b)/‖swish(b)‖₂``), the norms over the unmasked keys.
            The squared norm gets ``1e-30`` added, so a row whose weights all vanish stays 0.

    Returns:
        weights of the shape of ``b``.
    """
    b = as_finite_array("b", b, min_ndim=2)
    if b.shape[-1] != b.shape[-2]:
        raise ValueError(f"b must be square in its last two axes, got shape {b.shape}")
    if key_mask is None:
        key_mask = np.ones(b.shape[:-2] + b.shape[-1:])
    key_mask = as_finite_array("key_mask", key_mask, min_ndim=1)
    if key_mask.shape != b.shape[:-2] + b.shape[-1:]:
        raise ValueError(f"key_mask must have shape {b.shape[:-2] + b.shape[-1:]}, "
                         f"got {key_mask.shape}")
    one_of("kind", kind, KINDS)
    return _weights_jit(jnp.asarray(b, float), jnp.asarray(key_mask, float), kind)


def init_params(key, d: int = 8, clip: int = 8, hidden: int = 32) -> dict:
    """Initial parameters: token vectors ``x0, x_cls, x_sep`` (d,), ``Wq, Wk, Wv`` (d, d),
    relative bias ``r`` and gate ``g`` (2·clip + 1,), Shaw embeddings ``e`` (2·clip + 1, d),
    readout ``W1`` (d, hidden), ``c1`` (hidden,), ``w2`` (hidden,), ``c2`` ().
    ``r = 0`` and ``g = 1`` at the start, so every variant starts as plain attention."""
    d, clip, hidden = (positive_int(k, v) for k, v in
                       (("d", d), ("clip", clip), ("hidden", hidden)))
    return _init(key, d, clip, hidden)


def _forward(p, n, L: int, variant: str):
    # one sequence of n probe tokens in a padded length L; returns y (L,) at probe slots
    clip = (p["r"].shape[0] - 1) // 2
    pos = jnp.arange(L)
    if variant == "boundary":  # [CLS] at 0, zeros at 1…n, [SEP] at n + 1
        x = jnp.where((pos == 0)[:, None], p["x_cls"],
                      jnp.where((pos == n + 1)[:, None], p["x_sep"], p["x0"]))
        key_mask = (pos <= n + 1).astype(float)
    else:
        x = jnp.broadcast_to(p["x0"], (L, p["x0"].shape[0]))
        key_mask = (pos < n).astype(float)
    rel = jnp.clip(pos[:, None] - pos[None, :], -clip, clip) + clip
    q, k, v = x @ p["Wq"], x @ p["Wk"], x @ p["Wv"]
    b = q @ k.T / jnp.sqrt(q.shape[-1]) + p["r"][rel]
    a = _weights(b, key_mask, _KIND_OF[variant])
    if variant == "shaw":
        o = a @ v + jnp.einsum("ij,ijd->id", a, p["e"][rel])
    elif variant == "toeplitz":
        o = (a * p["g"][rel]) @ v
    else:
        o = a @ v
    h = jax.nn.relu((x + o) @ p["W1"] + p["c1"])
    y = h @ p["w2"] + p["c2"]
    return y[1:-1] if variant == "boundary" else y[:-2]  # probe slots, (L − 2,)


def _targets(n, L: int, target: str):
    i = jnp.arange(1, L - 1, dtype=float)
    return i if target == "raw" else i / n


@partial(jax.jit, static_argnames=("L", "variant"))
def _outputs(p, lengths, L: int, variant: str):
    return jax.vmap(lambda n: _forward(p, n, L, variant))(lengths)


def probe_targets(lengths, target: str = "raw") -> np.ndarray:
    """Targets ``(len(lengths), max(lengths))``: ``i`` or ``i/n``, NaN past each length."""
    lengths = np.asarray([positive_int("lengths[k]", int(n)) for n in np.ravel(lengths)])
    one_of("target", target, TARGETS)
    i = np.arange(1, lengths.max() + 1, dtype=float)
    t = np.where(i[None] <= lengths[:, None], i[None] / (1 if target == "raw"
                                                         else lengths[:, None]), np.nan)
    return t


def probe_outputs(params: dict, lengths, variant: str) -> np.ndarray:
    """Model outputs ``(len(lengths), max(lengths))`` on probes of the given lengths.

    Entry ``[k, i − 1]`` is the output at probe position ``i`` of the probe of length
    ``lengths[k]``; entries past a probe's length are NaN.
    """
    one_of("variant", variant, VARIANTS)
    if not isinstance(params, dict) or "r" not in params:
        raise TypeError("params must be a dict from init_params")
    lengths = np.asarray([positive_int("lengths[k]", int(n)) for n in np.ravel(lengths)])
    L = int(lengths.max()) + 2
    y = np.asarray(_outputs(params, jnp.asarray(lengths), L, variant))
    return np.where(np.arange(1, L - 1)[None] <= lengths[:, None], y, np.nan)


def _loss(p, lengths, L: int, variant: str, target: str):
    # mean over probes of the mean over positions of ((y − t)/s)², s = n (raw) or 1 (unit)
    def one(n):
        y = _forward(p, n, L, variant)
        t = _targets(n, L, target)
        s = n if target == "raw" else 1.0
        valid = jnp.arange(1, L - 1) <= n
        return jnp.sum(jnp.where(valid, ((y - t) / s) ** 2, 0.0)) / n
    return jnp.mean(jax.vmap(one)(lengths))


@partial(jax.jit, static_argnames=("variant", "target", "n_train", "steps", "d", "clip",
                                   "hidden", "lr"))
def _train(seed, variant: str, target: str, n_train: int, steps: int, d: int, clip: int,
           hidden: int, lr: float):
    import optax

    p0 = _init(jax.random.PRNGKey(seed), d, clip, hidden)
    opt = optax.adam(lr)
    lengths = jnp.arange(1, n_train + 1)
    L = n_train + 2

    def step(carry, _):
        p, s = carry
        loss, grad = jax.value_and_grad(_loss)(p, lengths, L, variant, target)
        upd, s = opt.update(grad, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (p, _), losses = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
    return p, losses


def _init(key, d, clip, hidden):
    # traced twin of init_params (no host checks)
    ks = jax.random.split(key, 9)
    nrm = lambda k, shape, s: s * jax.random.normal(k, shape)
    return dict(x0=nrm(ks[0], (d,), 1.0), x_cls=nrm(ks[1], (d,), 1.0),
                x_sep=nrm(ks[2], (d,), 1.0), Wq=nrm(ks[3], (d, d), d ** -0.5),
                Wk=nrm(ks[4], (d, d), d ** -0.5), Wv=nrm(ks[5], (d, d), d ** -0.5),
                r=jnp.zeros(2 * clip + 1), g=jnp.ones(2 * clip + 1),
                e=nrm(ks[6], (2 * clip + 1, d), 0.1),
                W1=nrm(ks[7], (d, hidden), d ** -0.5), c1=jnp.zeros(hidden),
                w2=nrm(ks[8], (hidden,), hidden ** -0.5), c2=jnp.zeros(()))


class ProbeRun(NamedTuple):
    """A trained probe model: final ``params`` and the loss ``losses`` (steps,) of each step."""

    params: dict
    losses: np.ndarray


def train_probe(seed: int, variant: str, target: str = "raw", *, n_train: int = 16,
                steps: int = 2000, d: int = 8, clip: int = 8, hidden: int = 32,
                lr: float = 1e-2) -> ProbeRun:
    """Train the one-layer model of ``variant`` on probes of lengths ``1…n_train``.

    Every Adam step uses all ``n_train`` probes; the loss is the mean over probes of the
    mean squared error at the positions, the error divided by ``n`` for the raw target (so
    each probe weighs the same and both targets are on the scale of ``i/n``).
    Parameters start from :func:`init_params` with ``PRNGKey(seed)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    one_of("variant", variant, VARIANTS)
    one_of("target", target, TARGETS)
    n_train, steps, d, clip, hidden = (positive_int(k, v) for k, v in (
        ("n_train", n_train), ("steps", steps), ("d", d), ("clip", clip), ("hidden", hidden)))
    lr = positive_scalar("lr", lr)
    p, losses = _train(int(seed), variant, target, n_train, steps, d, clip, hidden, lr)
    return ProbeRun(p, np.asarray(losses))


def probe_errors(params: dict, variant: str, target: str, lengths) -> np.ndarray:
    """Root-mean-square error at each length, ``(len(lengths),)``, on the loss's scale:
    ``√(mean_i ((y_i − t_i)/s)²)`` with ``s = n`` for the raw target, 1 for the unit one."""
    one_of("target", target, TARGETS)
    y = probe_outputs(params, lengths, variant)
    t = probe_targets(lengths, target)
    s = np.asarray(np.ravel(lengths), float)[:, None] if target == "raw" else 1.0
    return np.sqrt(np.nanmean(((y - t) / s) ** 2, axis=1))


#: Configuration of the chapter's stored run (``python -m sulib.position_probe out.json``).
RUN_CONFIG = dict(variants=list(VARIANTS), targets=list(TARGETS), seeds=[0, 1, 2],
                  n_train=16, steps=2000, d=8, clip=8, hidden=32, lr=1e-2, log_every=20,
                  eval_lengths=[8, 16, 24, 32, 48, 64, 96, 128])


#: A longer, slower budget for the two l2 variants (``--config l2long``): 10 000 steps at
#: learning rate 3e-3 instead of 2000 at 1e-2, otherwise :data:`RUN_CONFIG`.
L2_LONG_CONFIG = dict(RUN_CONFIG, variants=["l2", "swish_l2"], steps=10000, lr=3e-3,
                      log_every=100)

_CONFIGS = {"main": RUN_CONFIG, "l2long": L2_LONG_CONFIG}


def _main(argv=None) -> None:
    import argparse
    import sys

    from sulib._stored import write_stored_run

    parser = argparse.ArgumentParser(prog="python -m sulib.position_probe")
    parser.add_argument("out", help="path of the .json file to write")
    parser.add_argument("--config", choices=sorted(_CONFIGS), default="main",
                        help="RUN_CONFIG (main, the default) or L2_LONG_CONFIG (l2long)")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    cfg = _CONFIGS[args.config]
    hyper = {k: cfg[k] for k in ("n_train", "steps", "d", "clip", "hidden", "lr")}
    runs = {}
    for variant in cfg["variants"]:
        for target in cfg["targets"]:
            rows = []
            for seed in cfg["seeds"]:
                run = train_probe(seed, variant, target, **hyper)
                rows.append(dict(
                    seed=seed, losses=[float(x) for x in run.losses[::cfg["log_every"]]],
                    final_loss=float(run.losses[-1]),
                    errors=[float(x) for x in probe_errors(run.params, variant, target,
                                                           cfg["eval_lengths"])]))
            runs[f"{variant}/{target}"] = rows
            print(f"{variant}/{target} done", file=sys.stderr, flush=True)
    write_stored_run(args.out, "sulib.position_probe", argv, config=cfg, runs=runs)


if __name__ == "__main__":  # pragma: no cover
    _main()
