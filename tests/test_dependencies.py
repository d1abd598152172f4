"""sulib installs into Colab without replacing anything there, and the Colab replica holds what chapters import.

Both are checked against Colab's published package snapshot (tests/data/colab-pip-freeze.txt);
tests/test_colab.py then runs every chapter in a replica built from it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from book import ROOT, SKELETON, chapter_files
from colab_replica import PREINSTALLED, canonical, python_version, versions

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DECLARED = [Requirement(r) for r in PROJECT["dependencies"]]


@pytest.mark.parametrize("requirement", DECLARED, ids=str)
def test_declared_range_admits_colabs_version(requirement):
    colab = versions()
    name = canonical(requirement.name)
    if name not in colab:
        pytest.skip(f"{name} is not preinstalled in Colab: the install cell adds it")
    assert requirement.specifier.contains(colab[name], prereleases=True), \
        f"pyproject.toml asks for {requirement}, Colab has {name}=={colab[name]}: pip would replace it"


def test_requires_python_admits_colabs_python():
    assert SpecifierSet(PROJECT["requires-python"]).contains(python_version())


def test_colab_snapshot_has_every_preinstalled_package():
    colab = versions()
    assert {canonical(n) for n in PREINSTALLED} <= colab.keys()


def imported_modules(source: str) -> set[str]:
    """Top-level names of the absolute imports in ``source`` (IPython's ``%``/``!`` lines left out)."""
    python = "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                       else line for line in source.splitlines())
    names = set()
    for node in ast.walk(ast.parse(python)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_replica_holds_every_package_a_chapter_imports():
    """Every third-party import of a chapter or of sulib is preinstalled in the replica or declared by sulib."""
    sources = [path.read_text() for path in (ROOT / "sulib").rglob("*.py")]
    for path in [*chapter_files(), SKELETON]:
        sources += ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    modules = set().union(*map(imported_modules, sources)) - set(sys.stdlib_module_names) - {"sulib", "google"}
    owners = importlib.metadata.packages_distributions()
    preinstalled = {canonical(n) for n in PREINSTALLED}
    # what the preinstalled packages themselves require is in the replica too (cycler with matplotlib, ...)
    pulled_in = {canonical(Requirement(r).name) for n in PREINSTALLED
                 for r in importlib.metadata.requires(n) or [] if "extra ==" not in r}
    allowed = preinstalled | pulled_in | {canonical(r.name) for r in DECLARED}
    missing = {m: owners.get(m) for m in modules if not {canonical(d) for d in owners.get(m, [m])} & allowed}
    assert not missing, f"imported, but neither in the Colab replica nor declared by sulib: {missing}"
