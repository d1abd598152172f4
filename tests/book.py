"""What the tests need to know about the book: its config, its chapters, the install cell."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SKELETON = ROOT / "templates" / "chapter_skeleton.ipynb"  # the notebook CONTRIBUTING.md tells authors to copy
sys.path.insert(0, str(ROOT / "_ext"))  # the book's Sphinx extension: `import kexue_book`
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY_URL: str = CONFIG["repository"]["url"]
BRANCH: str = CONFIG["repository"]["branch"]
# `python3 tasks.py check NB...` sets this (paths relative to the root, separated by os.pathsep) to run
# the browser and Colab stages on those notebooks only; unset, they cover every chapter.
SELECTION_VARIABLE = "KEXUE_NOTEBOOKS"


def chapter_files() -> list[Path]:
    """Every notebook listed in _toc.yml, in order (the same list the book's generated pages use)."""
    import kexue_book

    return [path for _, _, path in kexue_book.chapters(ROOT)]


def selected_notebooks() -> list[Path]:
    """The notebooks the execution stages cover: every chapter, or those named in ``KEXUE_NOTEBOOKS``."""
    named = os.environ.get(SELECTION_VARIABLE, "")
    if not named:
        return chapter_files()
    return [(ROOT / name).resolve() for name in named.split(os.pathsep) if name]


def install_cell_source() -> str:
    """The exact first cell every notebook must carry: sulib from the repository, in Colab only.

    ``pip list`` pipes the version of every package the runtime already has into pip's constraints
    (``-c /dev/stdin``: no file that two runtimes could share), so pip resolves sulib's dependencies
    (diffrax and its JAX stack) to releases that fit Colab's JAX instead of upgrading JAX or IPython
    under the running kernel; when it cannot, the cell fails. ``tests/test_colab.py`` checks all this.
    """
    pip = "{sys.executable} -m pip"
    return (
        "import sys\n"
        'if "google.colab" in sys.modules:  # only inside Colab: install the book\'s helper package\n'
        "    # constrained to what Colab preinstalls, pip adds packages and never replaces one\n"
        f'    !{pip} list --format=freeze --exclude sulib | {pip} install -q -c /dev/stdin "sulib @ git+{REPOSITORY_URL}"\n'
        "    if _exit_code:  # set by IPython's `!`\n"
        '        raise RuntimeError("pip could not install sulib (its message is above)")'
    )

