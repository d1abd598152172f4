"""Pages generated from the chapters: the claims ledger, the chapter list, the build environment
and the list of external links.

Directives (used in book/*.md):

``{claims-ledger}``      every claim of every chapter, from the verdict in the chapter's last cell
``{chapter-list}``       the chapters by part, with post, date and ledger status (landing page)
``{build-environment}``  Python, JAX backend and package versions of the environment that built the book
``{execution-times}``    where and in how many seconds each chapter was executed (refresh, CI, this build)
``{external-links}``     every external link of the book, each checked for syntax

Every chapter also opens with a summary box, "The verdict at a glance" (each claim and its status),
inserted before the chapter's first section from the same recorded verdict: nothing to type in a notebook.

A chapter's verdict is the JSON that ``sulib.report.Verdict`` embeds in the HTML output of the last
code cell of the committed notebook (nbval makes sure that output is exactly what a fresh run
produces). The ledger and the chapter list declare every
notebook and ``references.bib`` as dependencies, so they are rebuilt when a chapter changes.
The functions above the Sphinx glue are plain Python and are used by the tests too.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import re
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from sulib.report import STATUSES, measured_problem, parse_verdict_html

LOGGER = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
BIBFILE = "references.bib"
STATUS_DOC = "book/status"  # re-read on every build: it describes the environment of the build
BUDGET_SECONDS = 40  # what one chapter may take to execute on the 2-core CI machine


class LedgerError(ValueError):
    """A chapter whose verdict is missing or malformed."""


# --------------------------------------------------------------------------- plain functions


def chapters(root: Path = ROOT) -> list[tuple[str, str, Path]]:
    """``(part caption, docname, notebook path)`` for every notebook in _toc.yml, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out = []
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            path = root / f"{chapter['file']}.ipynb"
            if path.exists():
                out.append((part["caption"], chapter["file"], path))
    return out


def read_verdict(path: Path) -> dict:
    """The verdict recorded by the last code cell of the notebook at ``path``.

    Raises:
        LedgerError: if the last code cell has no verdict output, or the verdict is malformed.
    """
    nb = json.loads(Path(path).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    if not code:
        raise LedgerError(f"{path}: no code cells, so no verdict")
    html = ["".join(out["data"]["text/html"]) for out in code[-1].get("outputs", [])
            if "text/html" in out.get("data", {})]
    try:
        (verdict,) = [parse_verdict_html(h) for h in html]
    except ValueError as exc:
        raise LedgerError(f"{path}: the last code cell must display exactly one sulib.report.Verdict "
                          f"({exc}); run `python3 tasks.py refresh {path}` after adding it") from None
    if not isinstance(verdict.get("post"), str) or not verdict.get("claims"):
        raise LedgerError(f"{path}: verdict without a post key or without claims")
    for k, claim in enumerate(verdict["claims"]):
        if claim.get("id") != f"C{k + 1}" or claim.get("status") not in STATUSES:
            raise LedgerError(f"{path}: claim {k} malformed: {claim}")
        problem = measured_problem(str(claim.get("measured", "")))
        if problem:
            raise LedgerError(f"{path}: {claim['id']}'s measured value {claim['measured']!r} {problem}")
    return verdict


def refresh_record(path: Path) -> dict | None:
    """What ``tasks.py refresh`` recorded when it last executed the notebook (date, seconds, environment)."""
    return json.loads(Path(path).read_text())["metadata"].get("kexue", {}).get("refresh")


def current_commit(root: Path = ROOT) -> str:
    """HEAD's short hash, with '+changes' when tracked files differ from it (as tests/notebook_timing.py)."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    return (git("rev-parse", "--short=12", "HEAD") or "unknown") + \
        ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def ci_run(stage: str, root: Path = ROOT) -> dict | None:
    """This checkout's last test run of ``stage`` ('nbval' or 'colab'): per-notebook seconds, outcome and
    hash (tests/notebook_timing.py), or None when there was none."""
    path = root / "_build" / "timings" / f"{stage}.json"
    run = json.loads(path.read_text()) if path.exists() else {}
    return run if "notebooks" in run else None  # none, or written by an older tests/notebook_timing.py


def ci_time(run: dict, path: Path, root: Path = ROOT) -> str:
    """The time ``run`` measured for the notebook at ``path``, if it ran this very notebook."""
    record = run["notebooks"].get(path.relative_to(root).as_posix())
    if record is None:
        return "not run"
    if record["sha256"] != hashlib.sha256(path.read_bytes()).hexdigest():
        return "notebook changed since"
    return f"{record['seconds']:.1f} s" if record["passed"] else f"failed ({record['seconds']:.1f} s)"


def status_counts(verdict: dict) -> str:
    """'2 verified, 1 holds with caveat, 1 refuted' (statuses in ledger order, zeros omitted)."""
    counts = Counter(c["status"] for c in verdict["claims"])
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])


def read_bibliography(root: Path = ROOT) -> dict[str, dict[str, str]]:
    """Fields of every entry in references.bib, by key (LaTeX braces removed)."""
    from pybtex.database import parse_file

    db = parse_file(str(root / BIBFILE), bib_format="bibtex")
    return {key: {k.lower(): v.replace("{", "").replace("}", "") for k, v in entry.fields.items()}
            for key, entry in db.entries.items()}


_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a well-formed external https link, or None if it is (no network used)."""
    if url != url.strip() or any(ch.isspace() for ch in url):
        return "contains whitespace"
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"scheme must be https, got {parts.scheme or 'none'!r}"
    if parts.username or parts.password or parts.port:
        return "must not carry credentials or a port"
    if not parts.hostname or not _HOST.fullmatch(parts.hostname):
        return f"malformed host {parts.hostname!r}"
    if re.search(r"%(?![0-9A-Fa-f]{2})", url):
        return "malformed percent-escape"
    if url.count("(") != url.count(")"):
        return "unbalanced parentheses (a Markdown link swallowed its closing bracket?)"
    return None


def is_external(uri: str) -> bool:
    return bool(re.match(r"[a-z][a-z0-9+.-]*:", uri)) and not uri.startswith(("data:", "mailto:"))


# --------------------------------------------------------------------------- docutils helpers


def _table(header: list[str], rows: list[list[nodes.Node | str]], classes=()) -> nodes.table:
    table = nodes.table(classes=["table", *classes])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)

    def row(cells):
        r = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", "", cell if isinstance(cell, nodes.Node) else nodes.Text(str(cell)))
            r += entry
        return r

    head = nodes.thead()
    head += row(header)
    body = nodes.tbody()
    body.extend(row(cells) for cells in rows)
    group += head
    group += body
    return table


def _xref(env, reftype: str, target: str, text: str | None = None) -> addnodes.pending_xref:
    """A cross-reference that the build resolves (and, in nitpicky mode, fails on if it cannot)."""
    node = addnodes.pending_xref("", refdomain="std", reftype=reftype, reftarget=target,
                                 refexplicit=text is not None, refwarn=True, refdoc=env.docname)
    node += nodes.inline("", text or target)
    return node


def _link(url: str, text: str) -> nodes.reference:
    return nodes.reference("", text, refuri=url)


class _ChapterDirective(SphinxDirective):
    """Shared by the directives that read every chapter's verdict."""

    def verdicts(self) -> list[tuple[str, str, Path, dict]]:
        out = []
        for part, docname, path in chapters(Path(self.env.srcdir)):
            self.env.note_dependency(str(path))
            try:
                out.append((part, docname, path, read_verdict(path)))
            except LedgerError as exc:
                LOGGER.warning(str(exc), location=(self.env.docname, self.lineno))
        self.env.note_dependency(str(Path(self.env.srcdir) / BIBFILE))
        return out


class ClaimsLedger(_ChapterDirective):
    def run(self):
        verdicts = self.verdicts()
        everything = {"claims": [c for *_, v in verdicts for c in v["claims"]]}
        out = [nodes.paragraph("", f"{len(verdicts)} chapter(s), {len(everything['claims'])} claims: "
                                   f"{status_counts(everything) if everything['claims'] else 'none yet'}.")]
        header = ["claim", "statement", "how it was checked", "measured", "status"]
        for _, docname, _, verdict in verdicts:
            title = nodes.rubric("", "", _xref(self.env, "doc", "/" + docname))
            rows = [[_xref(self.env, "ref", c["section"], c["id"]), c["claim"], c["check"], c["measured"],
                     nodes.inline("", c["status"], classes=["status-" + c["status"].replace(" ", "-")])]
                    for c in verdict["claims"]]
            out += [title, _table(header, rows, classes=["ledger"])]
        return out


class ChapterList(_ChapterDirective):
    def run(self):
        bib = read_bibliography(Path(self.env.srcdir))
        out, items_by_part = [], {}
        for part, docname, path, verdict in self.verdicts():
            post = bib.get(verdict["post"])
            if post is None:
                LOGGER.warning(f"{path}: verdict post {verdict['post']!r} is not in {BIBFILE}",
                               location=(self.env.docname, self.lineno))
                continue
            para = nodes.paragraph()
            para += _xref(self.env, "doc", "/" + docname)
            para += nodes.Text(" — post ")
            para += _link(post["url"], f"{verdict['post'].removeprefix('kexue')}")
            para += nodes.Text(", ")
            para += nodes.emphasis("", post["title"])
            para += nodes.Text(f", {post['date']}. Ledger: {status_counts(verdict)}.")
            item = nodes.list_item()
            item += para
            items_by_part.setdefault(part, []).append(item)
        for part, items in items_by_part.items():
            out.append(nodes.rubric("", part))
            bullets = nodes.bullet_list(classes=["chapter-list"])
            bullets.extend(items)
            out.append(bullets)
        return out


class BuildEnvironment(SphinxDirective):
    """The environment this build ran in; notebooks execute in it too (kernel ``python3`` of .venv)."""

    PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "sympy", "matplotlib", "jupyter-book", "sphinx",
                "myst-nb", "ipykernel", "sulib")

    def run(self):
        import jax

        rows = [["Python", f"{platform.python_version()} ({platform.python_implementation()})"],
                ["platform", f"{platform.system()} {platform.machine()}"],
                ["JAX backend", f"{jax.default_backend()} ({len(jax.devices())} device(s))"],
                ["kernel", "python3 (the project's .venv; see tasks.py)"]]
        for name in self.PACKAGES:
            try:
                rows.append([name, importlib.metadata.version(name)])
            except importlib.metadata.PackageNotFoundError:
                rows.append([name, "not installed"])
        return [_table(["component", "version"], rows, classes=["build-environment"])]


class ExecutionTimes(SphinxDirective):
    """Each chapter's execution time, from each place it was really executed, saying which run that was."""

    STAGES = {"nbval": ("nbval", "`pytest --nbval` (strict) in the project's environment (below)"),
              "colab": ("Colab replica", "Colab's package versions (`tests/data/colab-pip-freeze.txt`) on this "
                                         "machine's Python, each notebook in a fresh copy, its install cell included")}

    def run(self):
        from myst_nb.sphinx_ import NbMetadataCollector

        root = Path(self.env.srcdir)
        runs = {stage: ci_run(stage, root) for stage in self.STAGES}
        runs = {stage: run for stage, run in runs.items() if run is not None}
        executed = self.env.config.nb_execution_mode != "off"
        header = ["chapter", "refresh", *(self.STAGES[s][0] for s in runs), *(["this build"] if executed else [])]
        rows, environments = [], set()
        for _, docname, path in chapters(root):
            self.env.note_dependency(str(path))
            record = refresh_record(path)
            if record is None:
                LOGGER.warning(f"{path}: no refresh record; run `python3 tasks.py refresh {path}`",
                               location=(self.env.docname, self.lineno))
                refresh = "not recorded"
            else:
                environments.add(record["environment"])
                refresh = f"{record['seconds']:.1f} s on {record['date']}"
                if record["seconds"] > BUDGET_SECONDS:
                    refresh += f" (over the {BUDGET_SECONDS} s budget)"
            row = [_xref(self.env, "doc", "/" + docname), refresh, *(ci_time(run, path, root) for run in runs.values())]
            if executed:
                data = NbMetadataCollector.get_exec_data(self.env, docname)
                row.append(f"{data['runtime']:.1f} s" if data and data.get("runtime") else "not executed")
            rows.append(row)
        notes = [("refresh", "the run that produced the stored outputs: `python3 tasks.py refresh`, one notebook "
                             f"at a time, in {'; '.join(sorted(environments)) or 'an unrecorded environment'}.")]
        for stage, run in runs.items():
            name, where = self.STAGES[stage]
            notes.append((name, f"the last test run in this checkout (commit {run['commit']}, ended {run['finished']}): "
                                f"{where}; {run['at_a_time']} notebook(s) at a time. A time is shown only for "
                                "the notebook as it is now."))
        if not runs:
            notes.append(("CI", "no test run preceded this build in this checkout, so only the refresh times are "
                                "known here; `python3 tasks.py test` prints them for its own run."))
        notes.append(("this build", "re-executed every notebook (`python3 tasks.py book --execute`)." if executed
                      else "executed nothing: it rendered the stored outputs, which the nbval stage of "
                           "`python3 tasks.py test` proves reproduce."))
        items = nodes.bullet_list()
        for name, text in notes:
            para = nodes.paragraph()
            para += nodes.strong("", name)
            para += nodes.Text(": ")
            for k, part in enumerate(text.split("`")):  # `...` is a command or a path
                para += nodes.literal("", part) if k % 2 else nodes.Text(part)
            item = nodes.list_item()
            item += para
            items += item
        return [_table(header, rows, classes=["execution-times"]), items]


def _insert_verdict_summary(app, doctree):
    """Put a box with each claim and its status before a chapter's first section (after its header)."""
    env = app.env
    paths = {docname: path for _, docname, path in chapters(Path(env.srcdir))}
    if env.docname not in paths:
        return
    try:
        verdict = read_verdict(paths[env.docname])
    except LedgerError:
        return  # the ledger reports it
    title = next(iter(doctree.findall(nodes.section)), None)
    first = next((n for n in title.children if isinstance(n, nodes.section)), None) if title else None
    if first is None:
        LOGGER.warning("a chapter needs a title and sections to take the verdict summary", location=doctree)
        return
    box = nodes.admonition(classes=["verdict-summary"])
    box += nodes.title("", "The verdict at a glance")
    box += nodes.paragraph("", f"{status_counts(verdict)}. Each claim links to the section that checks it; "
                               "the verdict at the end gives how it was checked and what was measured.")
    rows = [[_xref(env, "ref", c["section"], c["id"]), c["claim"],
             nodes.inline("", c["status"], classes=["status-" + c["status"].replace(" ", "-")])]
            for c in verdict["claims"]]
    box += _table(["claim", "statement", "status"], rows, classes=["verdict-summary"])
    first.parent.insert(first.parent.index(first), box)


class external_links_node(nodes.General, nodes.Element):
    """Placeholder, replaced by the list of external links once every document has been read."""


class ExternalLinks(SphinxDirective):
    def run(self):
        self.env.note_dependency(str(Path(self.env.srcdir) / BIBFILE))
        return [external_links_node()]


def _collect_links(app, doctree):
    env = app.env
    found = env.kexue_links = getattr(env, "kexue_links", {})
    links = set()
    for ref in doctree.findall(nodes.reference):
        uri = ref.get("refuri", "")
        if is_external(uri):
            problem = url_problem(uri)
            if problem:
                LOGGER.warning(f"external link {uri!r}: {problem}", location=ref)
            links.add(uri)
    found[env.docname] = links


def _purge_links(app, env, docname):
    getattr(env, "kexue_links", {}).pop(docname, None)


def _merge_links(app, env, docnames, other):
    env.kexue_links = getattr(env, "kexue_links", {})
    env.kexue_links.update({d: other.kexue_links[d] for d in docnames if d in getattr(other, "kexue_links", {})})


def all_external_links(app) -> dict[str, set[str]]:
    """Every external link, with where it comes from: pages, references.bib, _config.yml."""
    sources: dict[str, set[str]] = {}
    for docname, links in getattr(app.env, "kexue_links", {}).items():
        for url in links:
            sources.setdefault(url, set()).add(docname)
    for key, fields in read_bibliography(Path(app.srcdir)).items():
        if "url" in fields:
            sources.setdefault(fields["url"], set()).add(f"{BIBFILE}: {key}")
    repo = app.config.html_theme_options.get("repository_url")
    if repo:
        sources.setdefault(repo, set()).add("_config.yml: repository.url")
    return sources


class ExternalLinksTransform(SphinxPostTransform):
    default_priority = 8  # before references are resolved: the table holds document cross-references

    def run(self, **kwargs):
        for placeholder in list(self.document.findall(external_links_node)):
            sources = all_external_links(self.app)
            rows = []
            for url in sorted(sources):
                problem = url_problem(url)
                if problem:
                    LOGGER.warning(f"external link {url!r}: {problem}", location=placeholder)
                where = nodes.inline()
                for k, src in enumerate(sorted(sources[url])):
                    if k:
                        where += nodes.Text(", ")
                    where += _xref(self.env, "doc", "/" + src) if ":" not in src else nodes.literal("", src)
                rows.append([_link(url, url), where])
            placeholder.replace_self(_table(["link", "used in"], rows, classes=["external-links"]))


def _always_reread(app, env, added, changed, removed):
    """The status page describes the current environment: re-read it on every build."""
    return [STATUS_DOC] if STATUS_DOC in env.found_docs else []


def setup(app):
    app.add_directive("claims-ledger", ClaimsLedger)
    app.add_directive("chapter-list", ChapterList)
    app.add_directive("build-environment", BuildEnvironment)
    app.add_directive("external-links", ExternalLinks)
    app.add_directive("execution-times", ExecutionTimes)
    app.add_node(external_links_node)
    app.add_post_transform(ExternalLinksTransform)
    app.connect("doctree-read", _collect_links)
    app.connect("doctree-read", _insert_verdict_summary)
    app.connect("env-purge-doc", _purge_links)
    app.connect("env-merge-info", _merge_links)
    app.connect("env-get-outdated", _always_reread)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 2}
