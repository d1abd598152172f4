"""Tables for notebook output, and the structured verdict every chapter ends with.

Renderings are deterministic (no object addresses), so nbval can compare them. The HTML of a
:class:`Verdict` also carries its claims as JSON, in a ``<script type="{VERDICT_MIME}">`` element
(inert in a browser, compared exactly by nbval); the book's claims ledger and landing page are
generated from that output of each chapter's last cell.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import NamedTuple, Sequence

__all__ = ["Table", "Claim", "Verdict", "STATUSES", "VERDICT_MIME", "measured_problem", "noise_bound",
           "parse_verdict_html"]

#: The three outcomes a claim can have, in the order the ledger sorts them.
STATUSES = ("verified", "holds with caveat", "refuted")
#: Type of the <script> element that holds the machine-readable verdict in the HTML output.
VERDICT_MIME = "application/vnd.kexue.verdict+json"

_CLAIM_ID = re.compile(r"C[1-9][0-9]*")
_LABEL = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_BOOLEAN = re.compile(r"\b(True|False)\b")


def noise_bound(x: float) -> str:
    """A residual at the level of rounding noise, printed so that it reproduces on every machine.

    The digits of a residual like 2.2e-16 change with the CPU and the core count, so a notebook that
    printed them would not reproduce exactly (nbval). This gives the power of ten it stays below,
    e.g. ``"< 1e-15"``, or ``"= 0"`` when it is exactly zero; write ``f"max |Δp| {noise_bound(err)}"``.

    Raises:
        ValueError: if ``x`` is negative or not finite.
    """
    x = float(x)
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"x must be a finite residual >= 0, got {x!r}")
    if x == 0:
        return "= 0"
    e = math.floor(math.log10(x)) + 1
    e += (10.0**e <= x) - (10.0 ** (e - 1) > x)  # log10 may round the wrong way next to a power of ten
    return f"< 1e{e}"


def measured_problem(measured: str) -> str | None:
    """Why ``measured`` is not a measured value, or None if it is one.

    A verdict's measured value is a number: a residual, a fitted exponent with its standard error, a
    figure with its tolerance. A Python boolean ("within tolerance: True") says that an assert passed,
    not what was measured, and a value without a single digit is a description, not a measurement.
    """
    if _BOOLEAN.search(measured):
        return "reads True/False; give the number that was compared (a residual, a figure and its tolerance)"
    if not re.search(r"[0-9]", measured):
        return "holds no number; give the value that was measured"
    return None


class Table:
    """A small table of already-formatted cells.

    Args:
        header: column titles.
        rows: one sequence of cells per row, each as long as ``header``; cells are
            shown with ``str`` (format numbers before passing them in).
    """

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in row] for row in rows]
        for k, row in enumerate(self.rows):
            if len(row) != len(self.header):
                raise ValueError(f"rows[{k}] has {len(row)} cells, header has {len(self.header)}")

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows
        )
        return f'<table class="sulib-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        widths = [max(len(r[k]) for r in [self.header, *self.rows]) for k in range(len(self.header))]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        return "\n".join([line(self.header), line(["-" * w for w in widths]), *map(line, self.rows)])


class Claim(NamedTuple):
    """One row of a verdict.

    ``section`` is the MyST label (``(label)=`` above a heading) of the section of the chapter
    where the claim is checked; the ledger links to it and the book build fails if it does not exist.
    """

    id: str  #: "C1", "C2", ... as numbered in the chapter's Claims section
    claim: str  #: the claim in one line
    check: str  #: how it was checked
    measured: str  #: the measured value, already formatted: a number, never "True" (see measured_problem)
    status: str  #: one of STATUSES
    section: str  #: label of the section where it is checked


class Verdict:
    """The verdict table that ends a chapter, with the data the ledger is generated from.

    Args:
        post: BibTeX key of the chapter's post in ``references.bib`` (e.g. ``"kexue9034"``).
        claims: the chapter's claims, numbered C1, C2, ... in order.

    Raises:
        ValueError: on an unknown status, a malformed or out-of-order claim id, a malformed
            section label, or an empty field.
    """

    def __init__(self, post: str, claims: Sequence[Claim]) -> None:
        if not isinstance(post, str) or not re.fullmatch(r"[a-z]+[0-9]*", post):
            raise ValueError(f"post must be a BibTeX key like 'kexue9034', got {post!r}")
        if not claims:
            raise ValueError("claims must not be empty")
        self.post = post
        self.claims = [Claim(*c) for c in claims]
        for k, c in enumerate(self.claims):
            if c.id != f"C{k + 1}" or not _CLAIM_ID.fullmatch(c.id):
                raise ValueError(f"claims[{k}].id must be 'C{k + 1}', got {c.id!r}")
            if c.status not in STATUSES:
                raise ValueError(f"claims[{k}].status must be one of {STATUSES}, got {c.status!r}")
            if not _LABEL.fullmatch(c.section):
                raise ValueError(f"claims[{k}].section must be a lowercase-hyphenated label, got {c.section!r}")
            for field in ("claim", "check", "measured"):
                if not str(getattr(c, field)).strip():
                    raise ValueError(f"claims[{k}].{field} is empty")
            problem = measured_problem(str(c.measured))
            if problem:
                raise ValueError(f"claims[{k}].measured {c.measured!r} {problem}")

    def to_json(self) -> dict:
        """The machine-readable form stored under :data:`VERDICT_MIME`."""
        return {"post": self.post, "claims": [c._asdict() for c in self.claims]}

    def _table(self) -> Table:
        return Table(["claim", "statement", "how it was checked", "measured", "status"],
                     [[c.id, c.claim, c.check, c.measured, c.status] for c in self.claims])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._table().header)
        rows = "".join(
            f'<tr><td><a href="#{c.section}">{c.id}</a></td>'
            + "".join(f"<td>{html.escape(str(x))}</td>" for x in (c.claim, c.check, c.measured))
            + f'<td class="status-{c.status.replace(" ", "-")}">{html.escape(c.status)}</td></tr>'
            for c in self.claims
        )
        data = json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
        return (f'<script type="{VERDICT_MIME}">{data}</script>'
                f'<table class="sulib-table verdict"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')

    def __repr__(self) -> str:
        return repr(self._table())


def parse_verdict_html(text: str) -> dict:
    """The verdict data embedded in :meth:`Verdict._repr_html_` output.

    Raises:
        ValueError: if ``text`` holds no verdict, or more than one.
    """
    found = re.findall(rf'<script type="{re.escape(VERDICT_MIME)}">(.*?)</script>', text, flags=re.S)
    if len(found) != 1:
        raise ValueError(f"expected one verdict in the HTML, found {len(found)}")
    return json.loads(found[0])  # "<\\/" is JSON's escape for "</"
