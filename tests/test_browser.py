"""Open every page of the built book in headless Chromium and check what a reader would see.

Run after the book is built (`python3 tasks.py test` does both). Screenshots of the pages (and of
each chapter in dark mode) go to _build/screenshots/ for people to look at.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from book import BRANCH, REPOSITORY_URL, ROOT, chapter_files, selected_notebooks  # also puts _ext on sys.path

import kexue_book  # noqa: E402

pytestmark = pytest.mark.browser

HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Flags for a sandboxed machine with no network: no first-run UI, no background traffic.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# TeX that would be visible if MathJax had not typeset it (code blocks are excluded from the scan).
RAW_TEX = re.compile(r"\\(begin|end|frac|sqrt|sum|log|lambda|left|right|mathrm)\b|\$\$|\\\(|\\\[")
# The chapters (all, or those named by `tasks.py check`) are opened by test_chapter_page, every other page
# by test_page_renders_offline.
CHAPTERS = [nb for nb in selected_notebooks() if nb in chapter_files()]
CHAPTER_PAGES = {nb.relative_to(ROOT).with_suffix(".html").as_posix() for nb in chapter_files()}
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not {"_static", "_sources", "_images"} & set(p.relative_to(HTML).parts)
               and p.relative_to(HTML).as_posix() not in CHAPTER_PAGES) if HTML.exists() else []


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("no built book in _build/html: run `python3 tasks.py book` first")
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def open_page(browser, url, color_scheme="light"):
    """Load ``url``; return the page and the list of problems seen while loading."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=color_scheme)
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("request", lambda r: r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            or problems.append(f"off-machine request: {r.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, problems


def check_renders(page) -> None:
    """Math typeset offline, no raw TeX in the visible text, every image loaded."""
    n_math = page.locator(".math").count()
    if n_math:
        page.wait_for_selector("mjx-container", state="attached", timeout=30_000)
        page.evaluate("() => window.MathJax.startup.promise")
        n_typeset = page.locator("mjx-container").count()
        assert n_typeset >= n_math, f"{n_math} math elements but only {n_typeset} typeset"
    text = page.evaluate("""() => {
        const body = document.body.cloneNode(true);
        body.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
        return body.textContent;
    }""")
    raw = RAW_TEX.search(text)
    assert raw is None, f"raw TeX left in the visible text: ...{text[max(0, raw.start() - 60):raw.end() + 60]}..."
    broken = page.evaluate("""() => Array.from(document.images)
        .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)""")
    assert broken == [], f"images that did not load: {broken}"


def screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # a full-page capture of a long page (the ledger: every claim of every chapter) can take over
    # Playwright's default 30 s on a loaded 2-core machine; the picture is for people, not a check
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, timeout=120_000)


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_offline(server, browser, path):
    """Every page but the chapters (test_chapter_page covers those, in both themes)."""
    page, problems = open_page(browser, f"{server}/{path}")
    check_renders(page)
    if path.startswith("book/"):
        screenshot(page, path.replace("/", "__")[:-5])
    page.close()
    assert problems == []


# Sphinx typesets the ledger and the summary box (smartquotes: quotes, "..." and "--"); a chapter's HTML
# output keeps the text as typed. Both sides are compared in the plain form.
def plain(text: str) -> str:
    for fancy, typed in (("‘", "'"), ("’", "'"), ("“", '"'), ("”", '"'), ("…", "..."), ("—", "---"), ("–", "--")):
        text = text.replace(fancy, typed)
    return " ".join(text.split())


def rows_of(page, selector):
    """Cell texts of every body row of the tables matched by ``selector``, in the plain form."""
    rows = page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel + ' tbody tr'))
        .map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText))""", selector)
    return [[plain(cell) for cell in row] for row in rows]


def verdict_rows(nb: Path) -> list[list[str]]:
    """The rows a chapter's verdict table shows, from the verdict recorded in the notebook."""
    return [[plain(str(c[key])) for key in ("id", "claim", "check", "measured", "status")]
            for c in kexue_book.read_verdict(nb)["claims"]]


def contrast(page, selector):
    """Lowest WCAG contrast ratio between the text of ``selector`` elements and what is behind it."""
    return page.evaluate("""(sel) => {
        const rgb = s => s.match(/[\\d.]+/g).map(Number);
        const lum = ([r, g, b]) => { const f = c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
                                     return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
        const background = el => { for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor); if (c.length < 4 || c[3] > 0) return c; }
            return [255, 255, 255]; };
        let worst = 21;
        for (const el of document.querySelectorAll(sel)) {
            if (!el.innerText.trim()) continue;
            const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
            worst = Math.min(worst, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
        }
        return worst; }""", selector)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page(server, browser, nb, scheme):
    """One load of the chapter per theme: it renders, it is legible, and it shows what the notebook holds."""
    rel = nb.relative_to(ROOT).with_suffix("").as_posix()
    page, problems = open_page(browser, f"{server}/{rel}.html", color_scheme=scheme)
    assert page.evaluate("document.documentElement.dataset.theme") == scheme
    check_renders(page)
    for selector in ("article p", "article a", "table.verdict td", "table.verdict-summary td", ".cell_output pre",
                     "article h1, article h2"):
        ratio = contrast(page, selector)
        assert ratio >= 4.5, f"{scheme} mode: text of {selector!r} has contrast {ratio:.1f} < 4.5 (WCAG AA)"
    colab = f"https://colab.research.google.com/github/{REPOSITORY_URL.removeprefix('https://github.com/')}" \
            f"/blob/{BRANCH}/{rel}.ipynb"
    assert page.locator(f'a[href="{colab}"]').count() >= 1, f"no launch link to {colab}"
    figures = sum("image/png" in out.get("data", {})
                  for cell in json.loads(nb.read_text())["cells"] for out in cell.get("outputs", []))
    assert figures >= 1 and page.locator("img").count() >= figures  # every stored figure is on the page
    assert rows_of(page, "table.verdict") == verdict_rows(nb), "the verdict table differs from the notebook's"
    summary = [[row[k] for k in (0, 1, 4)] for row in verdict_rows(nb)]
    assert rows_of(page, "table.verdict-summary") == summary, "the summary box differs from the verdict"
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('.cell_input pre'))
        .filter(pre => pre.scrollWidth > pre.clientWidth).map(pre => pre.innerText.slice(0, 60))""")
    assert wide == [], f"code cells that scroll sideways: {wide}"
    screenshot(page, rel.replace("/", "__") + ("__dark" if scheme == "dark" else ""))
    page.close()
    assert problems == []


def test_ledger_agrees_with_every_chapter(server, browser):
    """The ledger lists each chapter's recorded verdict (which test_chapter_page finds on the chapter's page),
    and the landing page states the same status counts."""
    ledger, problems = open_page(browser, f"{server}/book/ledger.html")
    landing, more = open_page(browser, f"{server}/book/intro.html")
    chapter_rows = []
    for _, docname, nb in kexue_book.chapters():
        rows = verdict_rows(nb)
        counts = kexue_book.status_counts({"claims": [{"status": r[-1]} for r in rows]})
        item = landing.locator("ul.chapter-list li", has=landing.locator(f'a[href$="{docname.split("/")[-1]}.html"]'))
        assert f"Ledger: {counts}." in item.inner_text(), f"landing page and {docname} disagree"
        chapter_rows += rows
    assert rows_of(ledger, "table.ledger") == chapter_rows, "the ledger and the chapters' verdicts disagree"
    assert problems + more == []


def test_screenshots_show_chinese_and_emoji(browser):
    """The screenshots are faithful only with CJK and emoji fonts installed (tasks.py installs them):
    without them every Chinese character is the same empty box, and emoji are not drawn in colour."""
    page = browser.new_page()
    page.set_content("".join(f'<span id="g{k}" style="font-size:48px">{ch}</span> ' for k, ch in enumerate("科学✅")))
    glyphs = [np.asarray(Image.open(io.BytesIO(page.locator(f"#g{k}").screenshot())).convert("RGB"), dtype=int)
              for k in range(3)]
    page.close()
    assert glyphs[0].shape != glyphs[1].shape or (glyphs[0] != glyphs[1]).any(), \
        "科 and 学 render as the same glyph: no CJK font (Debian: fonts-noto-cjk)"
    chroma = (glyphs[2].max(axis=-1) - glyphs[2].min(axis=-1)).max()
    assert chroma > 60, f"the emoji has no colour (max chroma {chroma}): no emoji font (Debian: fonts-noto-color-emoji)"
