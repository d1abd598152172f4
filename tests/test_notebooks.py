"""Static checks of the chapter notebooks (their execution is nbval's job)."""

import json

import pytest

from book import BRANCH, REPOSITORY_URL, ROOT, chapter_files, install_cell_source

CHAPTERS = chapter_files()


def test_every_notebook_is_in_the_toc():
    on_disk = {p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    assert CHAPTERS and on_disk == set(CHAPTERS)


def test_repository_url_is_a_github_repository():
    assert REPOSITORY_URL.startswith("https://github.com/") and REPOSITORY_URL.count("/") == 4
    assert BRANCH


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_cell_installs_sulib_in_colab_only(path):
    nb = json.loads(path.read_text())
    first = nb["cells"][0]
    assert first["cell_type"] == "code"
    assert "".join(first["source"]) == install_cell_source(), "install cell does not match _config.yml"
    assert "remove-cell" in first["metadata"].get("tags", []), "install cell must be hidden in the book"
    assert first["outputs"] == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_was_run_top_to_bottom_without_errors(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        for out in cell["outputs"]:
            assert out["output_type"] != "error"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), "stderr output"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_header_links_the_post(path):
    nb = json.loads(path.read_text())
    header = "".join(nb["cells"][1]["source"])
    assert header.startswith("# ") and "https://kexue.fm/archives/" in header
