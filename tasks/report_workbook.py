"""The summary workbook of the county report: the consolidated tables, and every unit's figures side by side.

The breakdown sheet holds one row per unit and one column per cell (2 million cells for a province's 10,000 units):
openpyxl needs ~1.5 s for 1,000 units, so the sheet's rows are written straight into the saved file's XML instead,
each unit's figures as the exact texts they are stored as (tasks/xlsx_patch.py, tasks/accepted.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from schemas.form_spec import FormSpec
from tasks.accepted import AcceptedFigures
from tasks.report_tables import format_value
from tasks.xlsx_patch import CellValue, XlsxPatcher, text_then_number_rows

BREAKDOWN_SHEET = "分单位明细"
_HEADER = PatternFill("solid", fgColor="F2F2F2")


@dataclass(frozen=True)
class UnitRow:
    code: str
    name: str
    kind: str
    status: str


def summary_workbook(form: FormSpec, title: str, county: dict[str, Decimal], units: list[UnitRow],
                     accepted: AcceptedFigures | None = None) -> bytes:
    """The summary .xlsx: one sheet per statutory table with the county figures, then the per-unit breakdown
    (each unit's accepted figures as stored, or none), and their 合计."""
    # built for each report, not kept: a report runs in a process of its own (a served run, the CLI), and a kept
    # template would carry the first report's times in its properties
    patcher = XlsxPatcher(_template(form))
    fmt = format_value(form)
    patches: dict[str, dict[str, CellValue]] = {}
    for sheet in form.table_sheets:
        cells: dict[str, CellValue] = {sheet.unit_line.split(":")[0]: title}
        for cell in form.cells_on(sheet.id):
            cells[cell.address] = Decimal(fmt(cell.key, county[cell.key]))
        patches[sheet.name] = cells
    keys = tuple(cell.key for cell in form.cells)
    if accepted is None:  # no unit's figures (a year imported from its published report)
        accepted = AcceptedFigures(keys, {})
    table = accepted if accepted.cell_keys == keys else AcceptedFigures.from_values(keys, accepted)
    listed = {unit.code: table.rows[unit.code] for unit in units if unit.code in table.rows}
    # every accepted unit listed (as in the county report): the sums the county figures were made from
    totals = (table if len(listed) == len(table) else AcceptedFigures(keys, listed)).column_sums()
    rows: list[tuple[Sequence[str], Sequence[str]]] = [
        ((unit.code, unit.name, unit.kind, unit.status), listed.get(unit.code, ())) for unit in units]
    rows.append((("合计", "（各单位之和）", "", ""), [fmt(key, totals[key]) for key in keys]))
    # the breakdown's rows are made while the archive is written: a piece at a time, deflated on another thread
    return patcher.render(patches, {BREAKDOWN_SHEET: text_then_number_rows(3, rows)})


def _template(form: FormSpec) -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in form.table_sheets:
        ws = wb.create_sheet(sheet.name)
        for letter, width in sheet.column_widths.items():
            ws.column_dimensions[letter].width = width
        for label in [*sheet.labels]:
            if label.style == "check":
                continue
            if ":" in label.range:
                ws.merge_cells(label.range)
            top = ws[label.range.split(":")[0]]
            top.value = label.text
            top.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
            top.font = Font(bold=label.style in {"title", "header"}, size=14 if label.style == "title" else 11)
        for merged in sheet.merges:
            ws.merge_cells(merged)
        ws.merge_cells(sheet.unit_line)
        ws[sheet.unit_line.split(":")[0]] = "…"
        for cell in form.cells_on(sheet.id):
            ws[cell.address] = 0
            ws[cell.address].alignment = Alignment(horizontal="center")
    ws = wb.create_sheet(BREAKDOWN_SHEET)
    ws.append(["单位代码", "单位名称", "单位类型", "状态", *[f"{c.table}{c.label}" for c in form.cells]])
    ws.append(["code", "name", "kind", "status", *[c.key for c in form.cells]])
    for cell in ws[1]:
        cell.fill = _HEADER
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "E3"
    ws.column_dimensions["B"].width = 28
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
