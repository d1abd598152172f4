"""Run the paper's own unargmaxability checks (andreasgrv/unargmaxable) on the chapter's matrices.

Grivas, Bogoychev & Lopez (ACL 2022) ship two detectors in ``stollen/__init__.py``: the
exact ``lp_chebyshev`` (a Chebyshev-ball linear program solved by Gurobi, inputs in the box
[-100, 100]^d) and the approximate "braid reflect" search ``candidate_is_bounded``. This
script imports them unchanged from commit d70d30fb0eec92c0989c8b02337c5af0ab1bca85 and
stores their decisions on the matrices the chapter book/attention/unargmaxable_words.ipynb
builds, together with the matrices themselves, in tests/data/unargmaxable_reference.npz.

Command that made the file (a throwaway venv; gurobipy's pip wheel carries a size-limited
licence that covers these LPs):

    python3 -m venv /tmp/unarg_ref
    /tmp/unarg_ref/bin/pip install gurobipy numpy scipy tqdm matplotlib
    git -C <mirror of andreasgrv/unargmaxable> archive d70d30fb stollen | tar -x -C /tmp/unarg_src
    PYTHONPATH=/tmp/unarg_src /tmp/unarg_ref/bin/python tests/data/make_unargmaxable_reference.py
"""

from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("unargmaxable_reference.npz")


def chapter_matrices():
    """The matrices of the chapter, by name: (W, b or None). Same seeds as the chapter."""
    post = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = {"post2d": (post, None), "post2d_bias": (post, np.array([0, 0, 0, 0, 1.0]))}
    rng = np.random.default_rng(9046)
    out["gauss_d3"] = (rng.normal(size=(60, 3)), None)
    out["gauss_d5_bias"] = (rng.normal(size=(120, 5)), rng.normal(size=120))
    trap = rng.normal(size=(200, 8))
    trap[:10] *= 0.2  # ten rare tokens with small norm
    out["trap_d8"] = (trap, None)
    return out


def main():
    import stollen  # the paper's package, imported from PYTHONPATH

    arrays = {}
    for name, (W, b) in chapter_matrices().items():
        b_col = None if b is None else b.reshape(-1, 1)
        stollen.W, stollen.b = W, b_col
        lp = [stollen.lp_chebyshev(i, W, b_col)["is_bounded"] for i in range(len(W))]
        braid = [stollen.candidate_is_bounded(i, W, b=b_col, patience=100)["is_bounded"]
                 for i in range(len(W))]
        arrays[f"{name}_W"] = W
        arrays[f"{name}_b"] = np.zeros(len(W)) if b is None else b
        arrays[f"{name}_has_bias"] = np.array(b is not None)
        arrays[f"{name}_lp_unargmaxable"] = np.array(lp)
        arrays[f"{name}_braid_unargmaxable"] = np.array(braid)
        print(name, "lp_chebyshev:", int(np.sum(lp)), "braid reflect:", int(np.sum(braid)))
    np.savez(OUT, **arrays)


if __name__ == "__main__":
    main()
