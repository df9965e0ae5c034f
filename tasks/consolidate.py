"""The county figures: each cell consolidated by its rule in the form (sum over units, or one designated unit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from schemas.form_spec import CellType, Consolidation, FormSpec
from schemas.issues import Issue
from tasks.accepted import AcceptedFigures
from tasks.check import EXACT, recheck


@dataclass
class CountyFigures:
    year: int
    units_expected: int
    units_accepted: int
    cells: dict[str, Decimal]
    designated_unit: str | None
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def consolidate(form: FormSpec, year: int, per_unit: Mapping[str, Mapping[str, Decimal]], units_expected: int,
                designated_unit: str | None) -> CountyFigures:
    """County figures from the accepted figures of each unit in scope; re-checked against every sum rule."""
    if isinstance(per_unit, AcceptedFigures):  # the campaign's table of texts: summed a column at a time
        sums = per_unit.column_sums()
    else:
        with localcontext(EXACT):  # a county figure is the exact sum: 1 + 1E-65 yuan is not rounded to 1
            sums = {cell.key: sum((figures.get(cell.key, Decimal(0)) for figures in per_unit.values()), Decimal(0))
                    for cell in form.cells if cell.consolidation is not Consolidation.DESIGNATED}
    cells: dict[str, Decimal] = {}
    notes = []
    designated = per_unit.get(designated_unit) if designated_unit else None
    for cell in form.cells:
        if cell.consolidation is Consolidation.DESIGNATED:
            if designated is None:
                notes.append(f"{cell.label}：指定报送单位（{designated_unit or '未指定'}）尚未报送，暂按0列示")
            cells[cell.key] = designated.get(cell.key, Decimal(0)) if designated else Decimal(0)
        else:
            cells[cell.key] = sums[cell.key]
    return CountyFigures(year, units_expected, len(per_unit), cells, designated_unit, recheck(cells, form), notes)


def figures_json(form: FormSpec, figures: CountyFigures) -> dict[str, object]:
    """The JSON form of the county figures: whole numbers as numbers, decimals as strings with their places."""
    cells: dict[str, object] = {}
    for cell in form.cells:
        value = figures.cells[cell.key]
        if cell.type is CellType.INT:
            cells[cell.key] = int(value)
        else:
            cells[cell.key] = format(value.quantize(Decimal(1).scaleb(-cell.places)), "f")
    return {"year": figures.year, "units_expected": figures.units_expected,
            "units_accepted": figures.units_accepted, "cells": cells}
