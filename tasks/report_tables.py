"""The statutory tables as grids of merged cells, laid out from the form definition (the same layout as the
workbook's sheets), for the HTML report and the summary workbook alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from openpyxl.utils.cell import range_boundaries
from pydantic import BaseModel

from schemas.form_spec import CellType, FormSpec, SheetSpec


class GridCell(BaseModel):
    text: str
    rowspan: int = 1
    colspan: int = 1
    header: bool = False
    number: bool = False


class TableGrid(BaseModel):
    title: str
    rows: list[list[GridCell]]


def table_grids(form: FormSpec, values: Mapping[str, Decimal]) -> list[TableGrid]:
    """One grid per statutory table: labels as laid out in the form, figures in their cells; checks left out."""
    return [_grid(form, sheet, values) for sheet in form.table_sheets]


def format_value(form: FormSpec) -> Callable[[str, Decimal], str]:
    def fmt(key: str, value: Decimal) -> str:
        cell = form.cell_by_key[key]
        if cell.type is CellType.INT:
            return str(int(value))
        return format(value.quantize(Decimal(1).scaleb(-cell.places)), "f")

    return fmt


def _grid(form: FormSpec, sheet: SheetSpec, values: Mapping[str, Decimal]) -> TableGrid:
    fmt = format_value(form)
    title = next((lb.text for lb in sheet.labels if lb.style == "title"), sheet.name)
    skip_rows = {range_boundaries(sheet.unit_line)[1]}
    skip_rows |= {range_boundaries(lb.range)[1] for lb in sheet.labels if lb.style in {"title", "check"}}
    placed: dict[tuple[int, int], GridCell] = {}
    covered: set[tuple[int, int]] = set()
    for label in sheet.labels:
        if label.style in {"title", "check"}:
            continue
        min_col, min_row, max_col, max_row = range_boundaries(label.range)
        placed[(min_row, min_col)] = GridCell(text=label.text, rowspan=max_row - min_row + 1,
                                              colspan=max_col - min_col + 1, header=label.style == "header")
        covered |= {(r, c) for r in range(min_row, max_row + 1) for c in range(min_col, max_col + 1)}
    spans = {m.split(":")[0]: range_boundaries(m) for m in sheet.merges}
    for cell in form.cells_on(sheet.id):
        min_col, row, max_col, _ = spans.get(cell.address) or range_boundaries(cell.address)
        placed[(row, min_col)] = GridCell(text=fmt(cell.key, values.get(cell.key, Decimal(0))), number=True,
                                          colspan=max_col - min_col + 1)
        covered |= {(row, c) for c in range(min_col, max_col + 1)}
    last_row = max(r for r, _ in covered)
    last_col = max(c for _, c in covered)
    rows = []
    for r in range(1, last_row + 1):
        if r in skip_rows:
            continue
        row = []
        for c in range(1, last_col + 1):
            if (r, c) in placed:
                row.append(placed[(r, c)])
            elif (r, c) not in covered:
                row.append(GridCell(text=""))
        if row:
            rows.append(row)
    return TableGrid(title=title, rows=rows)


def list_grid(title: str, header: list[str], rows: list[list[str]], numbers_from: int) -> TableGrid:
    """A plain table: one heading row, then rows whose cells from column numbers_from on are figures."""
    head = [GridCell(text=text, header=True) for text in header]
    body = [[GridCell(text=text, number=i >= numbers_from) for i, text in enumerate(row)] for row in rows]
    return TableGrid(title=title, rows=[head, *body])
