"""The claims ledger: every chapter records a verdict, and what the ledger is built from is sound.

That the rendered ledger agrees with each rendered chapter is checked in the browser
(tests/test_browser.py), after the book is built.
"""

import copy
import hashlib
import json
import re

import pytest

from book import SKELETON, chapter_files  # also puts _ext on sys.path
from sulib.report import STATUSES

import kexue_book  # noqa: E402  (after `book`)

NOTEBOOKS = [*chapter_files(), SKELETON]
BIB = kexue_book.read_bibliography()


def test_the_toc_has_chapters():
    assert chapter_files(), "no chapter notebooks listed in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_records_a_verdict(path):
    verdict = kexue_book.read_verdict(path)
    assert verdict["post"] in BIB, f"verdict post {verdict['post']!r} is not in references.bib"
    assert all(c["status"] in STATUSES for c in verdict["claims"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_verdict_links_sections_of_its_own_chapter(path):
    nb = json.loads(path.read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    labels = set(re.findall(r"^\(([a-z0-9-]+)\)=\s*$", markdown, flags=re.M))
    for claim in kexue_book.read_verdict(path)["claims"]:
        assert claim["section"] in labels, f"{claim['id']}: no section labelled ({claim['section']})= here"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_verdict_text_and_data_agree(path):
    """The plain-text table (what nbval and a terminal show) holds the same claims as the JSON."""
    nb = json.loads(path.read_text())
    last = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    (text,) = ["".join(o["data"]["text/plain"]) for o in last["outputs"] if "text/plain" in o.get("data", {})]
    for claim in kexue_book.read_verdict(path)["claims"]:
        row = next(line for line in text.splitlines() if line.startswith(claim["id"] + " "))
        for field in ("claim", "check", "measured", "status"):
            assert claim[field] in row, f"{claim['id']}.{field} differs between the text and the data"


def _without_verdict(path, tmp_path, mutate):
    nb = json.loads(path.read_text())
    mutate(nb)
    out = tmp_path / path.name
    out.write_text(json.dumps(nb))
    return out


@pytest.mark.parametrize("how", ["outputs cleared", "verdict cell deleted", "cell shows a plain table"])
def test_a_chapter_without_a_verdict_is_refused(tmp_path, how):
    def mutate(nb):
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        if how == "outputs cleared":
            code[-1]["outputs"] = []
        elif how == "verdict cell deleted":
            nb["cells"].remove(code[-1])
        else:
            for out in code[-1]["outputs"]:
                out["data"]["text/html"] = re.sub(r"<script.*?</script>", "", "".join(out["data"]["text/html"]))
    broken = _without_verdict(chapter_files()[0], tmp_path, mutate)
    with pytest.raises(kexue_book.LedgerError, match="Verdict"):
        kexue_book.read_verdict(broken)


def test_every_chapter_cites_its_post_and_every_source_is_used():
    cited = set()
    for path in chapter_files():
        text = path.read_text()
        keys = set(re.findall(r"\{footcite:[pt]\}`([^`]+)`", text))
        cited |= {k.strip() for group in keys for k in group.split(",")}
        post = kexue_book.read_verdict(path)["post"]
        assert f"`{post}`" in text, f"{path.name} does not cite its post {post}"
        assert "{footbibliography}" in text, f"{path.name} does not end with its references"
    assert cited <= set(BIB), f"unknown keys: {cited - set(BIB)}"
    assert set(BIB) <= cited, f"entries no chapter cites: {sorted(set(BIB) - cited)}"


def test_posts_in_the_bibliography_carry_url_and_date():
    for key, fields in BIB.items():
        if key.startswith("kexue"):
            assert fields["url"] == f"https://kexue.fm/archives/{key.removeprefix('kexue')}"
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", fields["date"]), key


@pytest.mark.parametrize("url, problem", [
    ("https://kexue.fm/archives/9034", None),
    ("https://arxiv.org/abs/2202.12172", None),
    ("http://kexue.fm", "scheme"),
    ("https://kexue.fm/archives/9034 ", "whitespace"),
    ("https://kexue/archives", "host"),
    ("https://example.com/a%zz", "percent"),
    ("https://en.wikipedia.org/wiki/Foo_(bar", "parentheses"),
    ("https://user@example.com/", "credentials"),
])
def test_external_link_syntax(url, problem):
    found = kexue_book.url_problem(url)
    assert (found is None) if problem is None else (problem in found)


def test_ci_time_is_shown_only_for_the_notebook_it_measured(tmp_path):
    nb = tmp_path / "book" / "x.ipynb"
    nb.parent.mkdir()
    nb.write_text("{}")
    digest = hashlib.sha256(b"{}").hexdigest()
    run = {"notebooks": {"book/x.ipynb": {"seconds": 12.34, "passed": True, "sha256": digest}}}
    assert kexue_book.ci_time(run, nb, tmp_path) == "12.3 s"
    run["notebooks"]["book/x.ipynb"]["passed"] = False
    assert kexue_book.ci_time(run, nb, tmp_path) == "failed (12.3 s)"
    nb.write_text('{"changed": 1}')
    assert kexue_book.ci_time(run, nb, tmp_path) == "notebook changed since"
    assert kexue_book.ci_time({"notebooks": {}}, nb, tmp_path) == "not run"
