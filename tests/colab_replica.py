"""Google Colab's runtime as the chapters meet it: its published package snapshot, what a chapter needs
from it, and a virtual environment holding exactly that (the Colab replica of tests/test_colab.py).

Standard library only, so that ``tasks.py`` (the system Python) can build the replica while it creates
.venv:

    python3 tests/colab_replica.py      build the pristine replica in _build/colab-replica (if not up to date)
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "data" / "colab-pip-freeze.txt"
REPLICA = ROOT / "_build" / "colab-replica"  # pristine: the tests run hard-linked copies of it
# What Colab must already hold for a chapter to run: every distribution a chapter or sulib imports that
# Colab preinstalls (tests/test_dependencies.py keeps this list complete), and the kernel it runs them in.
PREINSTALLED = ("numpy", "scipy", "sympy", "matplotlib", "jax", "jaxlib", "optax", "scikit-learn",
                "ipython", "ipykernel")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def versions() -> dict[str, str]:
    """``{canonical name: version}`` of every package in Colab's published pip freeze (URL installs left out)."""
    pins = {}
    for line in SNAPSHOT.read_text().splitlines():
        if line.startswith("#") or " @ " in line or "==" not in line:
            continue
        name, version = line.split("==")
        pins[canonical(name)] = version.strip()
    return pins


def python_version() -> str:
    """The Python version of the snapshot's runtime, from the data file's header ('... Python 3.13.15 ...')."""
    match = re.search(r"^#.*\bPython (\d+\.\d+\.\d+)", SNAPSHOT.read_text(), flags=re.M)
    if match is None:
        raise ValueError(f"{SNAPSHOT}: the header must name the runtime's Python version")
    return match.group(1)


def pip_list(python: Path) -> dict[str, str]:
    """``{canonical name: version}`` of everything installed in the environment of ``python``."""
    out = subprocess.check_output([python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                                  text=True)
    return {canonical(name): version for name, version in (line.split("==") for line in out.split())}


def pip_install(python: Path, *args: str | Path) -> None:
    subprocess.check_call([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *map(str, args)])


def build(env_dir: Path = REPLICA) -> Path:
    """Build the replica in ``env_dir`` unless an up-to-date one is there; return its Python.

    Colab's pip, then PREINSTALLED with every package of the snapshot as a constraint, so that their
    dependencies take Colab's versions too. Safe to call from several processes at once (a file lock).
    """
    python = env_dir / "bin" / "python"
    stamp = env_dir / "replica.sha256"
    wanted = hashlib.sha256(SNAPSHOT.read_bytes() + repr((PREINSTALLED, sys.version)).encode()).hexdigest()
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(env_dir.with_name(env_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted:
            return python
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.create(env_dir, with_pip=True)
        colab = versions()
        constraints = env_dir / "colab-constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in colab.items()))
        pip_install(python, f"pip=={colab['pip']}", f"setuptools=={colab['setuptools']}")  # Colab's own pip
        pip_install(python, "-c", constraints, *PREINSTALLED)
        off = {name: (version, colab[name]) for name, version in pip_list(python).items()
               if colab.get(name, version) != version}
        if off:
            raise RuntimeError(f"the replica differs from the Colab snapshot (installed, Colab): {off}")
        stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    started = time.monotonic()
    python = build()
    print(f"colab_replica: {python.parent.parent.relative_to(ROOT)} ready after {time.monotonic() - started:.0f} s")
