"""Open every page of the built book in headless Chromium and check what a reader would see.

Run after the book is built (`python3 tasks.py test` does both). Screenshots of the chapter
pages go to _build/screenshots/ for people to look at.
"""

from __future__ import annotations

import functools
import json
import http.server
import re
import threading
from pathlib import Path

import pytest

from book import BRANCH, REPOSITORY_URL, ROOT, chapter_files

pytestmark = pytest.mark.browser

HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Flags for a sandboxed machine with no network: no first-run UI, no background traffic.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# TeX that would be visible if MathJax had not typeset it (code blocks are excluded from the scan).
RAW_TEX = re.compile(r"\\(begin|end|frac|sqrt|sum|log|lambda|left|right|mathrm)\b|\$\$|\\\(|\\\[")
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not {"_static", "_sources", "_images"} & set(p.relative_to(HTML).parts)) if HTML.exists() else []


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


def open_page(browser, url):
    """Load ``url``; return the page and the list of problems seen while loading."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
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


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_offline(server, browser, path):
    page, problems = open_page(browser, f"{server}/{path}")
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
    if path.startswith("book/") or path == "index.html":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / (path.replace("/", "__")[:-5] + ".png")), full_page=True)
    page.close()
    assert problems == []


@pytest.mark.parametrize("nb", chapter_files(), ids=lambda p: p.stem)
def test_chapter_has_figures_and_a_colab_button(server, browser, nb):
    rel = nb.relative_to(ROOT).with_suffix("")
    page, problems = open_page(browser, f"{server}/{rel.as_posix()}.html")
    colab = f"https://colab.research.google.com/github/{REPOSITORY_URL.removeprefix('https://github.com/')}" \
            f"/blob/{BRANCH}/{rel.as_posix()}.ipynb"
    assert page.locator(f'a[href="{colab}"]').count() >= 1, f"no launch link to {colab}"
    figures = sum("image/png" in out.get("data", {})
                  for cell in json.loads(nb.read_text())["cells"] for out in cell.get("outputs", []))
    assert figures >= 1 and page.locator("img").count() >= figures  # every stored figure is on the page
    assert page.locator("table").count() >= 1  # the verdict table
    page.close()
    assert problems == []
