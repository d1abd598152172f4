"""Run every chapter the way Google Colab would.

A fresh virtual environment holds only what Colab preinstalls and the chapters need
(numpy, scipy, sympy, matplotlib, jax, ipykernel, optax, scikit-learn: the versions pinned in
requirements.txt)
plus a stand-in ``google.colab`` module imported at start-up, as in Colab. Nothing else: no
sulib. The notebook's own first cell must then install sulib from the repository URL in
_config.yml, which git redirects to this checkout (``url.<checkout>.insteadOf``), so what is
installed is the committed HEAD. Then the whole notebook must execute without error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from book import REPOSITORY_URL, ROOT, chapter_files

pytestmark = pytest.mark.colab

COLAB_PACKAGES = ("numpy", "scipy", "sympy", "matplotlib", "jax", "jaxlib", "ipykernel", "optax", "scikit-learn")


def pinned(names):
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = f"{name}=={version}"
    return [pins[n] for n in names]


@pytest.fixture(scope="module")
def colab_kernel(tmp_path_factory):
    base = tmp_path_factory.mktemp("colab")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.check_call([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           *pinned(COLAB_PACKAGES)])
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
        "env": {"PYTHONPATH": str(standin), "GIT_CONFIG_GLOBAL": str(gitconfig), "JAX_PLATFORMS": "cpu"},
    }))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(base / "jupyter")
    yield python
    if old is None:
        os.environ.pop("JUPYTER_PATH")
    else:
        os.environ["JUPYTER_PATH"] = old


@pytest.mark.parametrize("path", chapter_files(), ids=lambda p: p.stem)
def test_notebook_runs_as_in_colab(colab_kernel, path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    # Run outside the repository so that `import sulib` can only find the installed package.
    workdir = colab_kernel.parent.parent / "work"
    workdir.mkdir(exist_ok=True)
    NotebookClient(nb, timeout=600, kernel_name="colab", resources={"metadata": {"path": str(workdir)}}).execute()
    where = subprocess.check_output([colab_kernel, "-c", "import sulib; print(sulib.__file__)"], text=True,
                                    cwd=workdir)
    assert str(colab_kernel.parent.parent) in where, f"sulib was not installed into the Colab replica: {where}"
