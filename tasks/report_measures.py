"""The figures a report talks about (the form's measures: 新收申请, 不予公开 over its eight reasons, ...), each with
last year's value where it is known, and how a change from last year is said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from schemas.form_spec import CellType, FormSpec, MeasureSpec

_ONE_PLACE = Decimal("0.1")


@dataclass(frozen=True)
class Measure:
    """One measure's figure this year (and last year's, if known); str() is the figure as the tables print it."""

    spec: MeasureSpec
    value: Decimal
    text: str
    previous: Decimal | None
    previous_text: str | None

    def __str__(self) -> str:
        return self.text

    @property
    def change(self) -> Decimal | None:
        return None if self.previous is None else self.value - self.previous

    def change_text(self) -> str:
        """增加2件（增长66.7%）, 减少1件（下降50.0%）, 持平; '' when last year is unknown."""
        change = self.change
        if change is None or self.previous is None:
            return ""
        if change == 0:
            return "持平"
        word = "增加" if change > 0 else "减少"
        amount = f"{word}{_plain(abs(change))}{self.spec.unit}"
        if self.previous == 0:
            return f"{amount}（上年为0）"
        percent = (abs(change) * 100 / self.previous).quantize(_ONE_PLACE, rounding=ROUND_HALF_UP)
        return f"{amount}（{'增长' if change > 0 else '下降'}{percent}%）"

    def percent_text(self) -> str:
        """The change in percent for a table: +66.7%, -50.0%, 0.0%; — when it cannot be said."""
        if self.change is None or not self.previous:
            return "—"
        percent = (self.change * 100 / self.previous).quantize(_ONE_PLACE, rounding=ROUND_HALF_UP)
        return f"{'+' if percent > 0 else ''}{percent}%"


def measures(form: FormSpec, cells: Mapping[str, Decimal],
             previous: Mapping[str, Decimal] | None = None) -> dict[str, Measure]:
    """Every measure of the form's report, by id, from the figures (and last year's, where given)."""
    assert form.report is not None
    result = {}
    for spec in form.report.measures:
        value = _sum(spec, cells)
        last = _sum(spec, previous) if previous is not None and all(k in previous for k in spec.cells) else None
        result[spec.id] = Measure(spec, value, format_measure(form, spec, value), last,
                                  None if last is None else format_measure(form, spec, last))
    return result


def format_measure(form: FormSpec, spec: MeasureSpec, value: Decimal) -> str:
    """As its cells are printed: whole numbers plain, money with the places the form keeps (309.0263)."""
    cell = form.cell_by_key[spec.cells[0]]
    if cell.type is CellType.INT:
        return str(int(value))
    return format(value.quantize(Decimal(1).scaleb(-cell.places)), "f")


def _sum(spec: MeasureSpec, cells: Mapping[str, Decimal]) -> Decimal:
    return sum((cells.get(key, Decimal(0)) for key in spec.cells), Decimal(0))


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")
