"""Run every chapter the way Google Colab would.

The replica (built by tests/colab_replica.py) is a fresh virtual environment holding what Colab
preinstalls, at the versions of Colab's latest published snapshot (``tests/data/colab-pip-freeze.txt``):
every package a chapter imports, and IPython/ipykernel, with their dependencies pinned to the snapshot too. Colab runs
Python 3.13; this machine has only its own Python (3.11), so the replica runs on that. A stand-in
``google.colab`` module is imported at start-up, as in Colab. sulib is not installed: the notebook's
own first cell must install it from the repository URL in _config.yml, which git redirects to this
checkout (``url.<checkout>.insteadOf``), so what is installed is the committed HEAD.

Each test executes one whole notebook in a fresh copy of the replica (in Colab each notebook has a
runtime of its own) and then compares ``pip list`` before and after: the install cell may add packages,
never change or remove one that was there, and what it adds that Colab preinstalls (and the replica
does not hold, not being needed by a chapter) must have Colab's version. pytest-xdist runs two
notebooks at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import colab_replica
from book import REPOSITORY_URL, ROOT, SELECTION_VARIABLE, SKELETON, chapter_files, selected_notebooks
from colab_replica import pip_list

# every chapter and the skeleton, or the notebooks `tasks.py check` names
NOTEBOOKS = selected_notebooks() if os.environ.get(SELECTION_VARIABLE) else [*chapter_files(), SKELETON]

pytestmark = pytest.mark.colab


@pytest.fixture
def colab_kernel(worker_id) -> Path:
    """A fresh runtime for one notebook; return its Python. The kernel is registered as ``colab`` (JUPYTER_PATH)."""
    # A hard-linked copy of the pristine replica (about a second; pip and Python replace files, never write
    # into them), next to it so that it is on the same file system.
    pristine = colab_replica.build()
    base = colab_replica.REPLICA.with_name(f"colab-run-{worker_id}")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    env_dir = base / "venv"
    subprocess.check_call(["cp", "-al", pristine.parent.parent, env_dir])
    python = env_dir / "bin" / "python"
    # Stand-in for Colab's runtime: google.colab exists and is already imported at start-up.
    standin = base / "standin"
    (standin / "google" / "colab").mkdir(parents=True)
    (standin / "google" / "__init__.py").write_text("")
    (standin / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab in tests."""\n')
    # JAX imports google.colab.output when it sees Colab (for its debugger UI).
    (standin / "google" / "colab" / "output.py").write_text('"""Stand-in for google.colab.output."""\n')
    (standin / "sitecustomize.py").write_text("import google.colab  # Colab imports it at start-up\n")
    gitconfig = base / "gitconfig"
    gitconfig.write_text(f'[url "file://{ROOT}"]\n\tinsteadOf = {REPOSITORY_URL}\n')
    kernels = base / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab replica",
        "language": "python",
        # not bin/ on PATH: its scripts' #! lines name the pristine copy (the install cell calls sys.executable)
        "env": {"PYTHONPATH": str(standin), "GIT_CONFIG_GLOBAL": str(gitconfig), "JAX_PLATFORMS": "cpu"},
    }))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(base / "jupyter")
    yield python
    if old is None:
        os.environ.pop("JUPYTER_PATH")
    else:
        os.environ["JUPYTER_PATH"] = old
    shutil.rmtree(base)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_as_in_colab(colab_kernel, path, record_property):
    record_property("notebook", path.relative_to(ROOT).as_posix())  # for the per-chapter timings
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    before = pip_list(colab_kernel)
    # Run outside the repository so that `import sulib` can only find the installed package.
    workdir = colab_kernel.parent.parent.parent / "work"
    workdir.mkdir(exist_ok=True)
    NotebookClient(nb, timeout=600, kernel_name="colab", resources={"metadata": {"path": str(workdir)}}).execute()
    after = pip_list(colab_kernel)
    changed = {name: f"{version} -> {after.get(name, 'removed')}" for name, version in before.items()
               if after.get(name) != version}
    assert not changed, f"the install cell replaced packages Colab preinstalls: {changed}"
    colab = colab_replica.versions()
    unlike_colab = {name: f"{version} (Colab: {colab[name]})" for name, version in after.items()
                    if name not in before and colab.get(name, version) != version}
    assert not unlike_colab, f"the install cell added packages at other versions than Colab has: {unlike_colab}"
    where = subprocess.check_output([colab_kernel, "-c", "import sulib; print(sulib.__file__)"], text=True,
                                    cwd=workdir)
    assert str(colab_kernel.parent.parent) in where, f"sulib was not installed into the Colab replica: {where}"
