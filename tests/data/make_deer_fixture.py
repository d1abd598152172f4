"""Make ``deer_reference.npz``: the DEER authors' own code run on fixed GRU and tanh-RNN inputs.

DEER (Lim et al. 2024, github.com/machine-discovery/deer) is a JAX package. This script extracts
its ``deer/`` directory at a fixed commit from a local git clone (``git archive``) into a temporary
directory, imports it from there, runs it in float64 on the inputs built below, and saves inputs
and outputs. No DEER code is kept in this repository: it is read from the clone every time the
script runs. It needs jax and equinox (DEER's demo builds its GRU with ``equinox.nn.GRUCell``).

What is run:

* ``deer.demo.eval_gru`` (the authors' GRU benchmark function) with ``method="deer"`` and
  ``method="sequential"`` on an ``equinox.nn.GRUCell`` and a batch of input sequences;
* ``deer.seq1d(..., method=seq1d.DEER(max_iter=m))`` for ``m = 1, 2, …`` on the first sequence
  of that batch, and on a tanh RNN ``y_i = tanh(A y_{i-1} + x_i)``: with ``max_iter = m`` the
  solver stops after ``m`` Newton iterations unless it converged earlier, so this records DEER's
  iterates one by one. Its ``success`` flag is ``iterations < max_iter``, so the number of
  iterations it needs is (the smallest ``m`` with ``success``) − 1.

Usage (from the repository root)::

    python tests/data/make_deer_fixture.py [PATH_TO_DEER_GIT_DIR]

The default path is the mirror this book's sessions use. ``tests/data/README.md`` describes the
keys; ``tests/test_ssm_deer.py`` and the chapter ``book/ssm/deer.ipynb`` compare sulib with it.
"""

from __future__ import annotations

import importlib
import platform
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

COMMIT = "409140ff98d2426e49090e3552a63da10d9cd6dc"
SOURCE = "deer/fseq1d.py, deer/deer_iter.py, deer/demo.py"
DEFAULT_REPO = "/work/.mirror/machine-discovery+deer/repo"
OUT = Path(__file__).with_name("deer_reference.npz")

N_HIDDEN, N_INPUT, BATCH, T_GRU = 8, 4, 2, 512
N_TANH, T_TANH, RHO_TANH = 6, 256, 0.9
MAX_ITER = 40  # more than either system needs


def import_deer(repo: str):
    """The ``deer`` package at COMMIT, extracted into a temporary directory and imported."""
    tar = subprocess.run(["git", "-C", repo, "archive", COMMIT, "deer"],
                         check=True, capture_output=True).stdout
    root = tempfile.mkdtemp(prefix="deer-src-")
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(root, filter="data")
    sys.path.insert(0, root)
    deer = importlib.import_module("deer")
    demo = importlib.import_module("deer.demo")
    return deer, demo


def iterates(seq1d, func, y0, xs, params):
    """DEER's iterates y^(1), y^(2), … (stacked) and the number of iterations it needs."""
    its, needed = [], None
    for m in range(1, MAX_ITER + 1):
        res = seq1d(func, y0, xs, params, method=seq1d.DEER(max_iter=m))
        its.append(np.asarray(res.value))
        if bool(np.all(res.success)):
            needed = m - 1
            break
    if needed is None:
        raise RuntimeError(f"DEER did not converge in {MAX_ITER} iterations")
    # with max_iter = needed + 1 it stopped on its tolerance after `needed` iterations
    assert np.array_equal(its[-1], its[-2])
    return np.stack(its[:needed]), needed


def main(repo: str = DEFAULT_REPO) -> None:
    deer, demo = import_deer(repo)
    seq1d = deer.seq1d
    out = {"commit": COMMIT, "source": SOURCE,
           "environment": f"Python {platform.python_version()}, jax {jax.__version__}, "
                          f"equinox {eqx.__version__}, numpy {np.__version__}, x64",
           "command": "python tests/data/make_deer_fixture.py"}

    # --- GRU: equinox's GRUCell, as in DEER's demo.py, default initialization
    key = jax.random.PRNGKey(20230926)  # the post's date
    kcell, kx, kh = jax.random.split(key, 3)
    gru = eqx.nn.GRUCell(N_INPUT, N_HIDDEN, key=kcell)
    gru_params, gru_static = eqx.partition(gru, eqx.is_array)
    x = jax.random.normal(kx, (T_GRU, BATCH, N_INPUT))
    h0 = jnp.stack([jnp.zeros(N_HIDDEN), 0.5 * jax.random.normal(kh, (N_HIDDEN,))])
    out.update(gru_weight_ih=np.asarray(gru.weight_ih), gru_weight_hh=np.asarray(gru.weight_hh),
               gru_bias=np.asarray(gru.bias), gru_bias_n=np.asarray(gru.bias_n),
               gru_x=np.asarray(x), gru_h0=np.asarray(h0))
    out["gru_deer"] = np.asarray(demo.eval_gru(h0, x, gru_params, gru_static, method="deer"))
    out["gru_sequential"] = np.asarray(
        demo.eval_gru(h0, x, gru_params, gru_static, method="sequential"))

    def gru_func(h, xi, params):  # the wrapper demo.eval_gru passes to seq1d
        return eqx.combine(params, gru_static)(xi, h)

    out["gru_iterates"], out["gru_n_iter"] = iterates(seq1d, gru_func, h0[0], x[:, 0],
                                                      gru_params)

    # --- tanh RNN y_i = tanh(A y_{i-1} + x_i), spectral radius of A = RHO_TANH
    rng = np.random.default_rng(9783)
    G = rng.standard_normal((N_TANH, N_TANH))
    A = RHO_TANH * G / np.abs(np.linalg.eigvals(G)).max()
    u = rng.standard_normal((T_TANH, N_TANH))
    y0 = np.zeros(N_TANH)

    def tanh_func(y, xi, A):
        return jnp.tanh(A @ y + xi)

    out.update(tanh_A=A, tanh_u=u, tanh_y0=y0)
    out["tanh_deer"] = np.asarray(seq1d(tanh_func, jnp.asarray(y0), jnp.asarray(u),
                                        jnp.asarray(A)).value)
    out["tanh_sequential"] = np.asarray(seq1d(tanh_func, jnp.asarray(y0), jnp.asarray(u),
                                              jnp.asarray(A), method=seq1d.Sequential()).value)
    out["tanh_iterates"], out["tanh_n_iter"] = iterates(seq1d, tanh_func, jnp.asarray(y0),
                                                        jnp.asarray(u), jnp.asarray(A))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: GRU needs {out['gru_n_iter']} iterations, tanh RNN "
          f"{out['tanh_n_iter']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
