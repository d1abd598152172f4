"""Tables for notebook output: rendered as HTML in the book, as aligned text elsewhere.

Both renderings are deterministic (no object addresses), so nbval can compare them.
"""

from __future__ import annotations

import html
from typing import Sequence

__all__ = ["Table"]


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
