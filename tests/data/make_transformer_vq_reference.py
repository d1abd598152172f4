"""Make tests/data/transformer_vq_reference.npz: outputs of the official Transformer-VQ attention.

The official code (github.com/transformer-vq/transformer_vq, commit
21943e4eea124fa1eec0939a24f36cfa6fe9c499; module
``src/transformer_vq/nn/attn.py``) is not kept in this repository. To remake the file:

    git --git-dir=<mirror of transformer-vq/transformer_vq> archive 21943e4 src | tar x -C /tmp/tvq_src
    python3 -m venv /tmp/tvq_venv
    /tmp/tvq_venv/bin/pip install "jax==0.4.13" "jaxlib==0.4.13" "numpy<2" "scipy<1.13" \
        "ml_dtypes<0.3" "flax==0.6.11" "chex==0.1.7" "optax==0.1.5"
    PYTHONPATH=/tmp/tvq_src/src /tmp/tvq_venv/bin/python tests/data/make_transformer_vq_reference.py

(setup.py pins jax 0.4.9 with flax 0.6.11; jaxlib 0.4.9 has no wheel for this Python, 0.4.13 is the
nearest that installs.) One head, float64, inference (``is_train=False``), ``mem_len = block_len``,
``agg_cache=True``: the setting of the paper's block form. The sequence is fed block by block through
``VQAttention.attn`` and ``VQAttention.update_state``, exactly as the model's scan does, with our
q, k, v and codebook (``c_sum = codebook``, ``c_count = 1``). The Transformer-XL bias is kept
(random ``r_proj`` and ``v``; ``u = 0`` because our form has no content bias) and read back per query
and offset from the official helpers (``get_xl_helpers``, ``rel_shift``, ``get_causal_mask``), so
that ``sulib.vq_attention.block_attention`` can take the same bias.

Stored: q, k, v (n, d), codebook (c, d), block_len, bias (n, block_len + 1), out (n, d_v), codes (n,).
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from transformer_vq.nn.attn import VQAttention  # noqa: E402
from transformer_vq.nn.types import TransformerConfig  # noqa: E402
from transformer_vq.nn.vq import VQSpec  # noqa: E402

N, L, D_K, D_V, C = 48, 8, 4, 3, 6


def main() -> None:
    rng = np.random.default_rng(9844)
    q = rng.normal(size=(N, D_K))
    k = rng.normal(size=(N, D_K))
    v = rng.normal(size=(N, D_V))
    codebook = rng.normal(size=(C, D_K))
    config = TransformerConfig.create(
        param_dtype="float64", dtype="float64", global_batch_size=1, sequence_len=N,
        update_len=N, block_len=L, mem_len=L, grad_thru_cache=False, agg_cache=True,
        d_model=8, d_k=D_K, d_v=D_V, d_ff=0, n_head=1, n_code=C, n_layer=1, n_vocab=10,
        pe_abs=False, pe_lam=10_000, p_dropemb=0.0, p_dropsin=0.0, p_dropres=0.0,
        p_droplyr=0.0, p_nucleus=0.8, c_beta=0.02, c_gamma=0.99, e_tie=True, e_preln=True,
        e_scale=1.0, is_train=False)
    module = VQAttention(config)
    vq_spec = VQSpec.create(n_device=jnp.ones([1], jnp.int32),
                            n_block_per_update=jnp.ones([1], jnp.int32),
                            loss_mask=jnp.ones([1, L], jnp.int32))
    state = VQAttention.initial_state(config, 1)
    x = jnp.zeros([1, L, 8])
    params = module.init({"params": jax.random.PRNGKey(0)}, state,
                         dict(doc_ids=jnp.zeros([1, L], jnp.int32), vq_spec=vq_spec,
                              input_features=x))["params"]
    params = jax.tree_util.tree_map(lambda a: a, params.unfreeze() if hasattr(params, "unfreeze")
                                    else dict(params))
    params["quantizer"]["c_sum"] = jnp.asarray(codebook[None])
    params["quantizer"]["c_count"] = jnp.ones([1, C])
    params["u"] = jnp.zeros_like(params["u"])
    params["v"] = jnp.asarray(rng.normal(size=params["v"].shape))
    params["r_proj"]["kernel"] = jnp.asarray(rng.normal(size=params["r_proj"]["kernel"].shape))
    variables = {"params": params}
    xl_r, _, xl_v = module.apply(variables, method=VQAttention.get_xl_helpers)
    window = VQAttention.get_causal_mask(block_len=L, mem_len=L, invalid_len=jnp.array(0),
                                         with_locality=True).astype(jnp.float64)
    outs, codes, bias = [], [], np.zeros((N, L + 1))
    for b in range(N // L):
        rows = slice(b * L, (b + 1) * L)
        qb, kb, vb = (jnp.asarray(a[rows])[None, None] for a in (q, k, v))
        doc = jnp.zeros([1, L], jnp.int32)
        o = module.apply(variables, qb, kb, vb, doc, state, vq_spec, method=VQAttention.attn)
        state = module.apply(variables, o["recent_z"], o["recent_k_hat"], o["recent_v"],
                             o["recent_doc_ids"], state, method=VQAttention.update_state)
        outs.append(np.asarray(o["attn_out"][0]))
        codes.append(np.asarray(o["recent_z"][0, 0, L:]))
        bd = jnp.einsum("bhlk,hwk->bhlw", qb + xl_v, xl_r)
        bd = np.asarray(VQAttention.rel_shift(bd)[0, 0] * window)    # (L, 2L): key w = j - start
        for a in range(L):                                            # offset t = (a + L) - w
            for t in range(L + 1):
                bias[b * L + a, t] = bd[a, a + L - t]
    np.savez_compressed(
        "tests/data/transformer_vq_reference.npz", q=q, k=k, v=v, codebook=codebook,
        block_len=np.array(L), bias=bias, out=np.concatenate(outs), codes=np.concatenate(codes),
        commit=np.array("21943e4eea124fa1eec0939a24f36cfa6fe9c499"),
        path=np.array("src/transformer_vq/nn/attn.py"), jax_version=np.array(jax.__version__))
    print("wrote tests/data/transformer_vq_reference.npz")


if __name__ == "__main__":
    main()
