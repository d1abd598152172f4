"""Checks of the built HTML book that need no browser: links, anchors, external links.

Run after the book is built (they are part of the `browser` stage of `python3 tasks.py test`).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from book import ROOT  # also puts _ext on sys.path

import kexue_book  # noqa: E402

pytestmark = pytest.mark.browser

HTML = ROOT / "_build" / "html"
LINK = re.compile(r'<(?:a|link|img|script)\b[^>]*?\b(?:href|src)="([^"]*)"', re.S)
ID = re.compile(r'\bid="([^"]+)"')


def pages() -> list[Path]:
    if not (HTML / "index.html").exists():
        pytest.fail("no built book in _build/html: run `python3 tasks.py book` first")
    return sorted(p for p in HTML.rglob("*.html") if not {"_static", "_sources"} & set(p.relative_to(HTML).parts))


def ids_of(path: Path, cache: dict = {}) -> set[str]:
    if path not in cache:
        cache[path] = {html.unescape(i) for i in ID.findall(path.read_text(errors="replace"))}
    return cache[path]


def test_every_internal_link_and_anchor_resolves():
    broken = []
    for page in pages():
        for raw in LINK.findall(page.read_text(errors="replace")):
            href = html.unescape(raw)
            if not href or kexue_book.is_external(href) or href.startswith(("//", "mailto:", "data:", "javascript:")):
                continue
            parts = urlsplit(href)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(HTML)}: {href} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids_of(target):
                broken.append(f"{page.relative_to(HTML)}: {href} (no anchor #{parts.fragment})")
    assert broken == []


def test_every_external_link_in_the_text_is_listed_and_well_formed():
    status = (HTML / "book" / "status.html").read_text()
    table = re.search(r'<table class="[^"]*external-links.*?</table>', status, re.S)
    assert table, "the status page has no table of external links"
    listed = {html.unescape(u) for u in re.findall(r'<a\b[^>]*?href="([^"]+)"', table.group(0))
              if kexue_book.is_external(html.unescape(u))}
    assert listed, "the status page lists no external links"
    for page in pages():
        text = page.read_text(errors="replace")
        article = re.search(r'<article class="bd-article[^"]*".*?</article>', text, re.S)
        if article is None:  # only the root redirect and the search page have no article
            assert 'http-equiv="Refresh"' in text or page.name == "search.html", \
                f"{page.relative_to(HTML)}: no article element"
            continue
        for raw in re.findall(r'<a\b[^>]*?href="([^"]*)"', article.group(0)):
            href = html.unescape(raw)
            if kexue_book.is_external(href):
                assert kexue_book.url_problem(href) is None, f"{page.relative_to(HTML)}: {href}"
                assert href in listed, f"{href} is not on the status page"


def test_status_page_times_every_chapter():
    """One row per chapter: its refresh time, and the time of each test run that preceded the build."""
    status = (HTML / "book" / "status.html").read_text()
    table = re.search(r'<table class="[^"]*execution-times.*?</table>', status, re.S)
    assert table, "the status page has no table of execution times"
    rows = [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(0), re.S)[1:]]
    chapters = kexue_book.chapters()
    assert len(rows) == len(chapters)
    runs = [run for run in (kexue_book.ci_run(stage) for stage in ("nbval", "colab")) if run is not None]
    for (_, _, nb), row in zip(chapters, rows):
        record = kexue_book.refresh_record(nb)
        assert row[1].startswith(f"{record['seconds']:.1f} s on {record['date']}"), row
        assert row[2:2 + len(runs)] == [kexue_book.ci_time(run, nb) for run in runs], row
