"""Make tests/data/entmax_reference.npz: outputs of the reference sparsemax / 1.5-entmax.

The reference is deep-spin/entmax (PyTorch), commit REF_COMMIT; its code is not part of this
repository. Run, in a scratch environment with torch and numpy (never the book's .venv):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    git clone https://github.com/deep-spin/entmax /tmp/entmax_ref/entmax-src
    git -C /tmp/entmax_ref/entmax-src checkout c2bec6d5e7d649cba7766c2172d89123ec2a6d70
    /tmp/torchenv/bin/python tests/data/make_entmax_reference.py /tmp/entmax_ref/entmax-src

Inputs are float64, from numpy's default_rng(10145); for each input set the file holds ``x``, the
reference's ``sparsemax(x)``, ``entmax15(x)`` and the vector-Jacobian products of both with a fixed
cotangent ``v`` (the reference's backward). tests/test_sparsemax.py checks the file's sha256.
"""

import sys

import numpy as np
import torch

REF_COMMIT = "c2bec6d5e7d649cba7766c2172d89123ec2a6d70"


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(10145)
    sets = {f"normal_scale{s:g}": s * rng.standard_normal((64, 10)) for s in (0.1, 1.0, 4.0)}
    sets["wide"] = 2.0 * rng.standard_normal((4, 1000))
    ties = rng.integers(-3, 4, size=(32, 8)).astype(np.float64)   # many exact ties
    sets["ties"] = ties
    sets["two"] = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.5, 0.0]])
    return sets


def main(src: str) -> None:
    sys.path.insert(0, src)
    from entmax import entmax15, sparsemax  # noqa: E402  (the reference, from its checkout)

    out = {"ref_commit": np.array(REF_COMMIT), "torch_version": np.array(torch.__version__)}
    rng = np.random.default_rng(0)
    for name, x in inputs().items():
        v = rng.standard_normal(x.shape)
        out[f"{name}/x"], out[f"{name}/v"] = x, v
        for fname, f in (("sparsemax", sparsemax), ("entmax15", entmax15)):
            xt = torch.tensor(x, requires_grad=True)
            p = f(xt, dim=-1)
            p.backward(torch.tensor(v))
            out[f"{name}/{fname}"] = p.detach().numpy()
            out[f"{name}/{fname}_vjp"] = xt.grad.numpy()
    np.savez("tests/data/entmax_reference.npz", **out)


if __name__ == "__main__":
    main(sys.argv[1])
