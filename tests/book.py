"""What the tests need to know about the book: its config, its chapters, the install cell."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SKELETON = ROOT / "templates" / "chapter_skeleton.ipynb"  # the notebook CONTRIBUTING.md tells authors to copy
sys.path.insert(0, str(ROOT / "_ext"))  # the book's Sphinx extension: `import kexue_book`
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY_URL: str = CONFIG["repository"]["url"]
BRANCH: str = CONFIG["repository"]["branch"]


def chapter_files() -> list[Path]:
    """Every notebook listed in _toc.yml, in order (the same list the book's generated pages use)."""
    import kexue_book

    return [path for _, _, path in kexue_book.chapters(ROOT)]


def install_cell_source() -> str:
    """The exact first cell every notebook must carry (sulib from the repository, in Colab only)."""
    return (
        "import sys\n"
        'if "google.colab" in sys.modules:  # only inside Colab: install the book\'s helper package\n'
        f'    %pip install -q "sulib @ git+{REPOSITORY_URL}"'
    )
