"""Static checks of the chapter notebooks (their execution is nbval's job)."""

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from book import BRANCH, REPOSITORY_URL, ROOT, SKELETON, chapter_files, install_cell_source

import kexue_book  # noqa: E402  (after `book`, which puts _ext on sys.path)

CHAPTERS = chapter_files()
NOTEBOOKS = [*CHAPTERS, SKELETON]  # the skeleton must stay a working chapter


def test_every_notebook_is_in_the_toc():
    on_disk = {p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    assert CHAPTERS and on_disk == set(CHAPTERS)


def test_repository_url_is_a_github_repository():
    assert REPOSITORY_URL.startswith("https://github.com/") and REPOSITORY_URL.count("/") == 4
    assert BRANCH


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_installs_sulib_in_colab_only(path):
    nb = json.loads(path.read_text())
    first = nb["cells"][0]
    assert first["cell_type"] == "code"
    assert "".join(first["source"]) == install_cell_source(), "install cell does not match _config.yml"
    assert "remove-cell" in first["metadata"].get("tags", []), "install cell must be hidden in the book"
    assert first["outputs"] == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_was_run_top_to_bottom_without_errors(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        for out in cell["outputs"]:
            assert out["output_type"] != "error"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), "stderr output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_execution_timestamps_are_stored(path):
    # `tasks.py refresh` executes with record_timing=False: a re-run changes no byte it need not.
    nb = json.loads(path.read_text())
    stamped = [k for k, c in enumerate(nb["cells"]) if "execution" in c["metadata"]]
    assert not stamped, f"cells {stamped} store execution timestamps; refresh with `python3 tasks.py refresh`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_refresh_recorded_when_where_and_how_long(path):
    # the status page shows it as the time of the stored outputs
    record = kexue_book.refresh_record(path)
    assert record is not None, f"no refresh record: run `python3 tasks.py refresh {path.relative_to(ROOT)}`"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", record["date"]) and record["seconds"] > 0
    assert record["environment"].startswith("Python ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_links_and_cites_the_post(path):
    nb = json.loads(path.read_text())
    header = "".join(nb["cells"][1]["source"])
    assert header.startswith("# ")
    post = re.search(r"https://kexue\.fm/archives/(\d+)", header)
    assert post, "the header must link the post"
    assert f"{{footcite:p}}`kexue{post.group(1)}`" in header, "the header must cite the post"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_use_the_book_style(path):
    """Every figure cell ends with sulib.plotting.finish (labels checked) and the style is applied."""
    nb = json.loads(path.read_text())
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("use_book_style()" in src for src in sources), "call sulib.plotting.use_book_style()"
    for src in sources:
        if re.search(r"plt\.(subplots|figure)\(", src):
            assert "finish(fig" in src, f"a figure cell does not call finish(fig):\n{src[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_are_opaque(path):
    """Transparent figures turn unreadable on the theme's dark background: every pixel must be opaque."""
    nb = json.loads(path.read_text())
    pngs = [out["data"]["image/png"] for c in nb["cells"] for out in c.get("outputs", [])
            if "image/png" in out.get("data", {})]
    assert pngs, "a chapter needs at least one figure"
    for png in pngs:
        image = Image.open(io.BytesIO(base64.b64decode(png)))
        if "A" in image.getbands():
            assert np.asarray(image.getchannel("A")).min() == 255, "figure has transparent pixels"


# Reader-first rules (CONTRIBUTING.md "Before you call a chapter done").
MAX_CODE_LINE = 88  # what fits the theme's content column at 1280 px (book/_static/kexue.css; test_browser)
MAX_TABLE_ROWS = 12  # a longer table in the body becomes a figure or a collapsed block (tag `hide-output`)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_fit_the_page(path):
    nb = json.loads(path.read_text())
    long = [(k, line) for k, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
            and "remove-cell" not in c["metadata"].get("tags", [])
            for line in "".join(c["source"]).splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, f"{len(long)} code line(s) over {MAX_CODE_LINE} characters: {long[:3]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_long_tables_are_collapsed(path):
    """A table of more than MAX_TABLE_ROWS rows (sulib.report.Table) is collapsed, or becomes a figure;
    the verdict at the end is exempt."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for k, cell in enumerate(code[:-1]):
        if {"hide-output", "remove-output"} & set(cell["metadata"].get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            html = "".join(out.get("data", {}).get("text/html", ""))
            for body in re.findall(r'<table class="sulib-table.*?<tbody>(.*?)</tbody>', html, flags=re.S):
                rows = body.count("<tr>")
                assert rows <= MAX_TABLE_ROWS, \
                    f"a table of {rows} rows in the body ({''.join(cell['source'])[:80]!r}): make it a " \
                    f"figure, shorten it, or tag the cell `hide-output` (collapsed in the book)"
