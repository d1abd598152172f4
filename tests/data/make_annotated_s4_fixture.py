"""Make ``annotated_s4_kernel.npz``: The Annotated S4's DPLR kernel on fixed inputs.

The Annotated S4 (github.com/srush/annotated-s4, file ``s4/s4.py``) is a literate JAX program whose
module imports Flax at the top. This script needs only JAX: it reads the file from a local git
clone at a fixed commit (``git show``), cuts the functions listed in ``FUNCTIONS`` out of it with
``ast``, executes them in a namespace where ``np`` is ``jax.numpy`` (as in the original), runs them
in float64 on the inputs built below, and saves inputs and outputs. No annotated-s4 code is kept in
this repository: it is read from the clone every time the script runs.

Usage (from the repository root)::

    python tests/data/make_annotated_s4_fixture.py [PATH_TO_ANNOTATED_S4_GIT_DIR]

The default path is the mirror this book's sessions use. ``tests/data/README.md`` describes the keys;
``tests/test_ssm_annotated_s4.py`` and the chapter ``book/ssm/s4_kernel.ipynb`` compare sulib with it.
"""

from __future__ import annotations

import ast
import functools
import platform
import subprocess
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.scipy.signal  # noqa: E402
import numpy as np  # noqa: E402

COMMIT = "f19e2464990f0c07943bb922894d6f2af65c9bd9"
SOURCE = "s4/s4.py"
DEFAULT_REPO = "/work/.mirror/srush+annotated-s4/repo"
OUT = Path(__file__).with_name("annotated_s4_kernel.npz")
FUNCTIONS = ("make_HiPPO", "make_NPLR_HiPPO", "make_DPLR_HiPPO", "discretize", "K_conv",
             "cauchy", "kernel_DPLR", "discrete_DPLR")

N_LEGS = 64
LEGS_RUNS = ((0.01, 2**10), (0.01, 2**14), (0.1, 2**10), (0.1, 2**14))  # (step, L)
RNN_STEP, RNN_L, KCONV_L = 0.01, 2**10, 256
N_RAND = 16
RAND_RUNS = ((0.05, 2**10), (0.05, 999))  # an odd L has no root of unity at z = -1


def annotated_s4_functions(repo: str) -> dict:
    """The functions in FUNCTIONS, compiled from ``s4/s4.py`` at COMMIT, with np = jax.numpy."""
    text = subprocess.run(["git", "-C", repo, "show", f"{COMMIT}:{SOURCE}"],
                          check=True, capture_output=True, text=True).stdout
    tree = ast.parse(text)
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in FUNCTIONS]
    missing = set(FUNCTIONS) - {n.name for n in nodes}
    if missing:
        raise RuntimeError(f"{SOURCE} at {COMMIT} has no function(s) {sorted(missing)}")
    module = ast.Module(body=nodes, type_ignores=[])
    namespace = {"np": jnp, "jax": jax, "partial": functools.partial,
                 "eigh": jnp.linalg.eigh, "inv": jnp.linalg.inv,
                 "matrix_power": jnp.linalg.matrix_power, "convolve": jax.scipy.signal.convolve}
    exec(compile(module, f"annotated-s4@{COMMIT[:8]}:{SOURCE}", "exec"), namespace)
    return {name: namespace[name] for name in FUNCTIONS}


def main(repo: str = DEFAULT_REPO) -> None:
    f = annotated_s4_functions(repo)
    rng = np.random.default_rng(20240620)  # the post's date
    cnormal = lambda n: (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    out = {"commit": COMMIT, "source": SOURCE,
           "environment": f"Python {platform.python_version()}, jax {jax.__version__}, "
                          f"numpy {np.__version__}, x64",
           "command": "python tests/data/make_annotated_s4_fixture.py"}

    # HiPPO-LegS and its DPLR form (make_DPLR_HiPPO diagonalizes with jax's eigh)
    out["legs_A"] = np.asarray(f["make_HiPPO"](N_LEGS))
    _, nplr_P, nplr_B = f["make_NPLR_HiPPO"](N_LEGS)
    out["nplr_P"], out["nplr_B"] = np.asarray(nplr_P), np.asarray(nplr_B)
    Lambda, P, B, V = (np.asarray(x) for x in f["make_DPLR_HiPPO"](N_LEGS))
    out.update(legs_Lambda=Lambda, legs_P=P, legs_B=B, legs_V=V)

    # kernel_DPLR takes C̃ (the learned output vector) and returns the real part of the kernel
    Ct = cnormal(N_LEGS)
    out["legs_Ct"] = Ct
    out["legs_steps"] = np.array([s for s, _ in LEGS_RUNS])
    out["legs_Ls"] = np.array([L for _, L in LEGS_RUNS])
    for i, (step, L) in enumerate(LEGS_RUNS):
        out[f"legs_K_{i}"] = np.asarray(f["kernel_DPLR"](Lambda, P, P, B, Ct, step, L))

    # the RNN side: Ā = A1 A0 from the Woodbury form, C recovered from C̃; K_conv by matrix powers
    Ab, Bb, Cb = f["discrete_DPLR"](Lambda, P, P, B, Ct, RNN_STEP, RNN_L)
    out.update(rnn_step=RNN_STEP, rnn_L=RNN_L, rnn_Ab=np.asarray(Ab), rnn_Bb=np.asarray(Bb),
               rnn_Cb=np.asarray(Cb))
    out["rnn_Kconv"] = np.asarray(f["K_conv"](Ab, Bb, Cb, KCONV_L))

    # a random DPLR system (stable: Re λ < 0), P ≠ Q
    lam = -rng.uniform(0.05, 1.0, N_RAND) + 1j * rng.uniform(-20, 20, N_RAND)
    rand = {"Lambda": lam, "P": cnormal(N_RAND), "Q": cnormal(N_RAND), "B": cnormal(N_RAND),
            "Ct": cnormal(N_RAND)}
    out.update({f"rand_{k}": v for k, v in rand.items()})
    out["rand_steps"] = np.array([s for s, _ in RAND_RUNS])
    out["rand_Ls"] = np.array([L for _, L in RAND_RUNS])
    for i, (step, L) in enumerate(RAND_RUNS):
        out[f"rand_K_{i}"] = np.asarray(f["kernel_DPLR"](
            rand["Lambda"], rand["P"], rand["Q"], rand["B"], rand["Ct"], step, L))

    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({len(out)} arrays)")


if __name__ == "__main__":
    main(*sys.argv[1:])
