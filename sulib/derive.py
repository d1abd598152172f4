"""Chains of equalities that SymPy checks as they are written down.

A :class:`Chain` starts from an expression and grows one step at a time::

    H = e_1   (reason)
      = e_2   (reason)
      ≈ e_3   (reason; drops δ)

Every ``=`` step is verified when it is added: ``previous - new`` must simplify to
zero. An ``≈`` step must name the exact term it throws away, and
``previous - new - dropped`` must simplify to zero, so an approximation is always an
exact identity plus a named error term that the numerics can then measure.

Expressions may use short names (``p[i]``, ``Z``) whose meaning is given once in
``definitions``; they are substituted before checking and kept in the display.
Expressions containing ``Sum`` over a symbolic bound are checked for that bound in
general when SymPy manages to; otherwise exactly, term by term, for every value in
``check_n``. The rendered reason says which of the two happened.

Logarithms are expanded as if their arguments were positive (``log(ab) = log a + log b``),
which is what the book needs (probabilities, partition functions); do not use a chain
for identities between logarithms of possibly negative quantities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import sympy as sp

__all__ = ["Chain", "StepError"]


class StepError(ValueError):
    """A step of a :class:`Chain` does not follow from the previous one."""


@dataclass(frozen=True)
class _Step:
    relation: str  # "=" or "≈"
    expr: sp.Expr
    reason: str
    checked: str  # how SymPy verified it, e.g. "all n" (the sum's bound), "exact" or "n = 1…6"
    dropped: sp.Expr | None = None


def _is_zero(expr: sp.Expr) -> bool:
    """True when SymPy can show that ``expr`` is identically zero."""
    if expr == 0:
        return True
    candidate = expr
    for simplifier in (sp.expand, lambda e: sp.expand_log(e, force=True), sp.expand, sp.simplify):
        try:
            candidate = simplifier(candidate)
        except Exception:  # SymPy's Sum simplification can fail internally; treat as "not shown"
            return False
        if candidate == 0:
            return True
    return False


class Chain:
    """A chain of equalities and named approximations, each verified by SymPy.

    Args:
        lhs: what the chain is about (shown on the left, e.g. ``H``).
        first: its first form. When ``lhs`` is a bare symbol without a definition,
            this first line *is* its definition and is not checked; otherwise
            ``lhs`` and ``first`` must agree once ``definitions`` are substituted.
        reason: why ``lhs`` equals ``first`` (usually "definition").
        definitions: map from a symbol to its meaning, or from an ``IndexedBase``
            to a one-argument ``sympy.Lambda`` giving its element.
        check_n: ``(n, values)``: when a difference contains ``Sum`` over the symbol
            ``n`` and SymPy cannot simplify it in general, it is checked exactly for
            each ``n`` in ``values`` instead.

    Raises:
        StepError: when a step does not follow; the message shows the residual.
    """

    def __init__(
        self,
        lhs: sp.Expr,
        first: sp.Expr,
        reason: str = "definition",
        *,
        definitions: Mapping[sp.Basic, sp.Basic] | None = None,
        check_n: tuple[sp.Symbol, Iterable[int]] | None = None,
    ) -> None:
        self.lhs = sp.sympify(lhs)
        self._definitions = dict(definitions or {})
        for name, meaning in self._definitions.items():
            if isinstance(name, sp.IndexedBase) and not isinstance(meaning, sp.Lambda):
                raise TypeError(f"definitions[{name}] must be a sympy.Lambda of one index")
        if check_n is not None:
            symbol, values = check_n
            values = tuple(int(v) for v in values)
            if not isinstance(symbol, sp.Symbol) or not values:
                raise ValueError("check_n must be (sympy Symbol, non-empty iterable of ints)")
            check_n = (symbol, values)
        self._check_n = check_n
        self.steps: list[_Step] = []
        first = sp.sympify(first)
        if isinstance(self.lhs, sp.Symbol) and self.lhs not in self._definitions:
            self.steps.append(_Step("=", first, reason, "definition"))
        else:
            self._add("=", first, reason, previous=self.lhs, dropped=None)

    # -- building -------------------------------------------------------------------
    def eq(self, expr: sp.Expr, reason: str) -> "Chain":
        """Append ``= expr``; raises :class:`StepError` unless it equals the last form."""
        self._add("=", sp.sympify(expr), reason, previous=self.last, dropped=None)
        return self

    def approx(self, expr: sp.Expr, reason: str, *, dropped: sp.Expr) -> "Chain":
        """Append ``≈ expr``, where ``last = expr + dropped`` must hold exactly."""
        self._add("≈", sp.sympify(expr), reason, previous=self.last, dropped=sp.sympify(dropped))
        return self

    @property
    def last(self) -> sp.Expr:
        """The current right-hand side."""
        return self.steps[-1].expr

    # -- checking -------------------------------------------------------------------
    def expand_definitions(self, expr: sp.Expr) -> sp.Expr:
        """Substitute every definition into ``expr`` until none is left."""
        for _ in range(10):
            new = expr
            for name, meaning in self._definitions.items():
                if isinstance(name, sp.IndexedBase):
                    new = new.replace(
                        lambda e, base=name: isinstance(e, sp.Indexed) and e.base == base,
                        lambda e, f=meaning: f(*e.indices),
                    )
                else:
                    new = new.xreplace({name: meaning})
            if new == expr:
                return expr
            expr = new
        raise ValueError("definitions refer to each other in a cycle")

    def _residual_vanishes(self, residual: sp.Expr) -> str | None:
        """How ``residual == 0`` was shown, or None if it was not.

        "all T" (a sum identity proven for every value of its symbolic bounds, named), "exact"
        (no symbolic bound), or "n = 1…6" (checked term by term for the values in ``check_n``).
        """
        residual = self.expand_definitions(residual)
        if _is_zero(residual.doit()):
            bounds = sorted({str(b) for term in residual.atoms(sp.Sum) for limit in term.limits
                             for b in sp.Tuple(*limit[1:]).free_symbols})
            return f"all {', '.join(bounds)}" if bounds else "exact"
        if self._check_n is None or not residual.has(self._check_n[0]):
            return None
        symbol, values = self._check_n
        for value in values:
            if not _is_zero(residual.subs(symbol, value).doit()):
                return None
        return f"{symbol} = {values[0]}…{values[-1]}" if len(values) > 1 else f"{symbol} = {values[0]}"

    def _add(self, relation: str, expr: sp.Expr, reason: str, *, previous: sp.Expr, dropped) -> None:
        residual = previous - expr - (dropped if dropped is not None else 0)
        checked = self._residual_vanishes(residual)
        if checked is None:
            shown = sp.simplify(self.expand_definitions(residual).doit())
            what = "the previous line minus this line minus the dropped term" if dropped is not None \
                else "the previous line minus this line"
            raise StepError(
                f"step {len(self.steps)} ({reason!r}) does not follow:\n"
                f"  previous: {previous}\n  this:     {expr}\n"
                f"  {what} simplifies to {shown}, not 0"
            )
        self.steps.append(_Step(relation, expr, reason, checked, dropped))

    # -- display --------------------------------------------------------------------
    def latex(self) -> str:
        """The chain as an ``aligned`` LaTeX block, one step per line."""
        lines = []
        for k, step in enumerate(self.steps):
            left = sp.latex(self.lhs) if k == 0 else ""
            rel = "=" if step.relation == "=" else r"\approx"
            note = step.reason
            if step.checked not in ("exact", "definition"):
                note += f"; checked for {step.checked}"
            lines.append(f"{left} &{rel} {sp.latex(step.expr)}" + r"\quad\text{(" + note + ")}")
            if step.dropped is not None:  # on its own line: dropped terms are often long
                lines.append(r"&\qquad\text{dropped: }" + sp.latex(step.dropped))
        return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        rows = [f"{self.lhs}"] + [f"  {s.relation} {s.expr}   ({s.reason})" for s in self.steps]
        return "\n".join(rows)
