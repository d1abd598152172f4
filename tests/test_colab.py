"""Run every chapter the way Google Colab would.

The replica is a fresh virtual environment holding what Colab preinstalls, at the versions of
Colab's latest published snapshot (``tests/data/colab-pip-freeze.txt``): every package a chapter
imports, and IPython/ipykernel, with their dependencies pinned to the snapshot too. Colab runs
Python 3.13; this machine has only its own Python (3.11), so the replica runs on that. A stand-in
``google.colab`` module is imported at start-up, as in Colab. sulib is not installed: the notebook's
own first cell must install it from the repository URL in _config.yml, which git redirects to this
checkout (``url.<checkout>.insteadOf``), so what is installed is the committed HEAD.

Each test executes one whole notebook and then compares ``pip list`` before and after: the install
cell may add packages, never change or remove one that was there. pytest-xdist runs two notebooks at
a time, each worker in a replica of its own (as in Colab, where each notebook has its own runtime).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from book import COLAB_PREINSTALLED, REPOSITORY_URL, ROOT, canonical, colab_versions, selected_notebooks

pytestmark = pytest.mark.colab


def pip_list(python: Path) -> dict[str, str]:
    """``{canonical name: version}`` of everything installed in the environment of ``python``."""
    out = subprocess.check_output([python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                                  text=True)
    return {canonical(name): version for name, version in (line.split("==") for line in out.split())}


def pip_install(python: Path, *args: str | Path) -> None:
    subprocess.check_call([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *map(str, args)])


def build_replica(env_dir: Path) -> None:
    """A virtual environment with Colab's pip and Colab's versions of COLAB_PREINSTALLED and their dependencies."""
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    colab = colab_versions()
    constraints = env_dir / "colab-constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in colab.items()))
    pip_install(python, f"pip=={colab['pip']}", f"setuptools=={colab['setuptools']}")  # Colab's own pip
    pip_install(python, "-c", constraints, *COLAB_PREINSTALLED)
    off = {name: (version, colab[name]) for name, version in pip_list(python).items()
           if colab.get(name, version) != version}
    assert not off, f"the replica differs from the Colab snapshot (installed, Colab): {off}"


@pytest.fixture(scope="module")
def colab_kernel(tmp_path_factory, worker_id) -> Path:
    """A replica of this worker's own; return its Python. The kernel is registered as ``colab`` (JUPYTER_PATH)."""
    # The first worker builds a pristine replica in the folder the workers share; each worker then
    # takes a hard-linked copy (instant; pip and Python replace files, never write into them).
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker_id != "master" else shared
    pristine = shared / "colab-pristine"
    with open(shared / "colab-pristine.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (pristine / "complete").exists():
            shutil.rmtree(pristine, ignore_errors=True)
            build_replica(pristine)
            (pristine / "complete").touch()
    base = tmp_path_factory.mktemp("colab")
    env_dir = base / "venv"
    subprocess.check_call(["cp", "-al", pristine, env_dir])
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


@pytest.mark.parametrize("path", selected_notebooks(), ids=lambda p: p.stem)
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
    where = subprocess.check_output([colab_kernel, "-c", "import sulib; print(sulib.__file__)"], text=True,
                                    cwd=workdir)
    assert str(colab_kernel.parent.parent) in where, f"sulib was not installed into the Colab replica: {where}"
