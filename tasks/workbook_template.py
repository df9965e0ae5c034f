"""Build the collection workbook of a form once, with openpyxl: the official table layouts, defined names,
protection, validation, total formulas and the visible 勾稽关系 checks.

Per-unit workbooks are not built here: openpyxl needs ~26 ms a workbook, so the template is built once and each
unit's copy is made by patching a handful of cells in the saved file (tasks/xlsx_patch.py), ~1 ms a workbook.
Every cell that differs between units therefore holds a placeholder here, and `UnitSlots` says where they are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import column_index_from_string
from openpyxl.utils.cell import coordinate_from_string
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from schemas.form_spec import CellSpec, CellType, FormSpec, SheetKind, SheetSpec, SumEqualsRule, TextSpec
from tasks.identity import IDENTITY_SHEET

INSTRUCTIONS_SHEET = "填报说明"
CHECK_OK = "✓ 相符"
CHECK_BROKEN = "✗ 不符"
IDENTITY_FIELDS = ("form_id", "form_version", "year", "campaign_id", "unit_code", "signature")
PLACEHOLDER = "…"

_THIN = Side(style="thin", color="808080")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
_TOTAL_FILL = PatternFill("solid", fgColor="DDEBF7")
_HEADER_FILL = PatternFill("solid", fgColor="F2F2F2")
_BROKEN_FILL = PatternFill("solid", fgColor="FFC7CE")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
_FONT = "宋体"


@dataclass(frozen=True)
class UnitSlots:
    """Where the per-unit text of the template sits: (sheet name, address) for each slot."""

    unit_lines: tuple[tuple[str, str], ...]
    info: dict[str, tuple[str, str]]  # unit_name, unit_code on the instructions sheet
    identity: dict[str, tuple[str, str]]  # identity field -> its value cell on the hidden sheet


@dataclass(frozen=True)
class WorkbookTemplate:
    form: FormSpec
    data: bytes
    slots: UnitSlots


def build_template(form: FormSpec, year: int, deadline: date) -> WorkbookTemplate:
    """Build a campaign's workbook with placeholders where unit data goes; return the saved bytes."""
    wb = Workbook()
    info = _write_instructions(wb.active, form, year, deadline)
    unit_lines = []
    for sheet in form.sheets:
        ws = wb.create_sheet(sheet.name)
        _write_table_sheet(ws, form, sheet)
        first = sheet.unit_line.split(":")[0]
        unit_lines.append((sheet.name, first))
    identity = _write_identity_sheet(wb.create_sheet(IDENTITY_SHEET))
    for key, sheet_id, address in [*((c.key, c.sheet, c.address) for c in form.cells),
                                   *((t.key, t.sheet, t.address) for t in form.texts)]:
        column, row = coordinate_from_string(address)
        ref = f"'{form.sheet_by_id[sheet_id].name}'!${column}${row}"
        wb.defined_names[key] = DefinedName(key, attr_text=ref)
    wb.active = 0
    buffer = io.BytesIO()
    wb.save(buffer)
    return WorkbookTemplate(form, buffer.getvalue(), UnitSlots(tuple(unit_lines), info, identity))


def build_narrative_sheet(form: FormSpec, year: int) -> bytes:
    """The coordinator's sheet for the county report's prose: the 文字部分 sheet with its texts only (the county's
    信息处理费 is the sum of the units', not typed here); read back by tasks/narrative_sources.py."""
    sheet = next(s for s in form.sheets if s.kind is SheetKind.NARRATIVE)
    texts = form.texts_on(sheet.id)
    rows = {coordinate_from_string(t.address)[1] for t in texts}
    wb = Workbook()
    ws = wb.active
    ws.title = sheet.name
    for letter, width in sheet.column_widths.items():
        ws.column_dimensions[letter].width = width
    for row, height in sheet.row_heights.items():
        ws.row_dimensions[row].height = height
    for label in sheet.labels:
        top = coordinate_from_string(label.range.split(":")[0])[1]
        if top > max(rows) or (top > min(rows) and top not in rows):
            continue  # the figures below the texts are the units' to report
        if ":" in label.range:
            ws.merge_cells(label.range)
        _style(ws[label.range.split(":")[0]], label.text, label.style)
    ws.merge_cells(sheet.unit_line)
    _style(ws[sheet.unit_line.split(":")[0]], f"{year}年度县（区）政府信息公开工作年度报告（由政务公开办填写）", "unit")
    _write_texts(ws, texts)
    for text in texts:
        column, row = coordinate_from_string(text.address)
        wb.defined_names[text.key] = DefinedName(text.key, attr_text=f"'{sheet.name}'!${column}${row}")
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _write_instructions(ws: Worksheet, form: FormSpec, year: int, deadline: date) -> dict[str, tuple[str, str]]:
    ws.title = INSTRUCTIONS_SHEET
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 90
    ws.merge_cells("A1:B1")
    _style(ws["A1"], f"{form.title}填报表", "title")
    slots = {}
    for offset, (label, slot) in enumerate([("填报单位", "unit_name"), ("单位代码", "unit_code")]):
        _style(ws.cell(3 + offset, 1), label, "header")
        _style(ws.cell(3 + offset, 2), PLACEHOLDER, "row")
        slots[slot] = (INSTRUCTIONS_SHEET, f"B{3 + offset}")
    _style(ws.cell(5, 1), "报告年度", "header")
    _style(ws.cell(5, 2), f"{year}年", "row")
    _style(ws.cell(6, 1), "报送截止日期", "header")
    _style(ws.cell(6, 2), chinese_date(deadline), "row")
    _style(ws.cell(7, 1), "表格格式", "header")
    _style(ws.cell(7, 2), f"{form.basis}（{form.version}版）", "row")
    _style(ws.cell(9, 1), "填报说明", "header")
    for offset, text in enumerate(form.instructions):
        row = 10 + offset
        _style(ws.cell(row, 1), f"{offset + 1}.", "row")
        _style(ws.cell(row, 2), text.format(year=year, deadline=chinese_date(deadline)), "row")
        ws.row_dimensions[row].height = 32
    ws.protection.sheet = True
    return slots


def _write_table_sheet(ws: Worksheet, form: FormSpec, sheet: SheetSpec) -> None:
    for letter, width in sheet.column_widths.items():
        ws.column_dimensions[letter].width = width
    for row, height in sheet.row_heights.items():
        ws.row_dimensions[row].height = height
    for label in sheet.labels:
        if ":" in label.range:
            ws.merge_cells(label.range)
        first = label.range.split(":")[0]
        _style(ws[first], label.text, label.style)
        if label.style != "title":
            _border_range(ws, label.range)
    ws.merge_cells(sheet.unit_line)
    _style(ws[sheet.unit_line.split(":")[0]], PLACEHOLDER, "unit")
    for merged in sheet.merges:
        ws.merge_cells(merged)
        _border_range(ws, merged)
    _write_cells(ws, form, form.cells_on(sheet.id))
    _write_texts(ws, form.texts_on(sheet.id))
    _write_checks(ws, form, sheet)
    ws.protection.sheet = True
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def _write_cells(ws: Worksheet, form: FormSpec, cells: list[CellSpec]) -> None:
    whole = DataValidation(type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=False,
                           showErrorMessage=True, errorTitle="填写有误", error="请填写大于或等于0的整数（件数）。")
    money: dict[str, DataValidation] = {}  # one a wording: 万元 with 4 places, 元 with 2
    for cell in cells:
        target = ws[cell.address]
        target.border = _BORDER
        target.alignment = _CENTER
        target.font = Font(name=_FONT, size=11)
        if cell.key in form.totals:
            target.value = "=" + _sum_formula(form, form.totals[cell.key])
            target.fill = _TOTAL_FILL
            continue
        target.value = 0
        target.fill = _INPUT_FILL
        target.protection = Protection(locked=False)
        if cell.type is CellType.DECIMAL:
            target.number_format = "0." + "0" * cell.places
            unit = "万元" if "万元" in cell.col else "元"
            error = f"请填写大于或等于0的金额（单位：{unit}，最多{cell.places}位小数）。"
            money.setdefault(error, DataValidation(type="decimal", operator="greaterThanOrEqual", formula1="0",
                                                   allow_blank=False, showErrorMessage=True, errorTitle="填写有误",
                                                   error=error)).add(cell.address)
        else:
            target.number_format = "0"
            whole.add(cell.address)
    for validation in (whole, *money.values()):
        if validation.sqref:
            ws.add_data_validation(validation)


def _write_texts(ws: Worksheet, texts: list[TextSpec]) -> None:
    """Text input cells: empty, unlocked, wrapped from the top left, with a length check Excel enforces."""
    length = DataValidation(type="textLength", operator="lessThanOrEqual", formula1=str(max(
        (t.max_chars for t in texts), default=1)), allow_blank=True, showErrorMessage=True, errorTitle="内容过长",
        error="单元格内容过长，请精简或分段后再填写。")
    for text in texts:
        target = ws[text.address]
        target.border = _BORDER
        target.alignment = Alignment(horizontal="left", vertical="top", wrap_text=True)
        target.font = Font(name=_FONT, size=11)
        target.fill = _INPUT_FILL
        target.protection = Protection(locked=False)
        length.add(text.address)
    if texts:
        ws.add_data_validation(length)


def _write_checks(ws: Worksheet, form: FormSpec, sheet: SheetSpec) -> None:
    for rule in form.sum_rules():
        if rule.check_cell is None or rule.check_cell.sheet != sheet.id:
            continue
        target = ws[rule.check_cell.address]
        left, right = _refs(form, rule.left), _refs(form, rule.right)
        target.value = f'=IF(SUM({left})=SUM({right}),"{CHECK_OK}","{CHECK_BROKEN}")'
        _style(target, target.value, "check")
        ws.conditional_formatting.add(
            rule.check_cell.address,
            CellIsRule(operator="equal", formula=[f'"{CHECK_BROKEN}"'], fill=_BROKEN_FILL,
                       font=Font(color="9C0006", bold=True)),
        )


def _write_identity_sheet(ws: Worksheet) -> dict[str, tuple[str, str]]:
    slots = {}
    for row, field in enumerate(IDENTITY_FIELDS, start=1):
        ws.cell(row, 1, field)
        ws.cell(row, 2, PLACEHOLDER)
        slots[field] = (IDENTITY_SHEET, f"B{row}")
    ws.sheet_state = "veryHidden"
    ws.protection.sheet = True
    return slots


def _sum_formula(form: FormSpec, rule: SumEqualsRule) -> str:
    return f"SUM({_refs(form, rule.right)})"


def _refs(form: FormSpec, keys: list[str]) -> str:
    """Comma-separated addresses; a run of cells down one column becomes a range (SUM(D8:D28))."""
    cells = [form.cell_by_key[k] for k in keys]
    rows = [c.row_number for c in cells]
    columns = [column_index_from_string(c.column_letter) for c in cells]
    down = len(set(columns)) == 1 and rows == list(range(rows[0], rows[0] + len(rows)))
    across = len(set(rows)) == 1 and columns == list(range(columns[0], columns[0] + len(columns)))
    if len(cells) > 2 and (down or across):
        return f"{cells[0].address}:{cells[-1].address}"
    return ",".join(c.address for c in cells)


def chinese_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _style(cell: Cell, value: object, style: str) -> None:
    cell.value = value
    cell.font = Font(name=_FONT, size=16 if style == "title" else 11, bold=style in {"title", "header", "check"})
    cell.alignment = _LEFT if style in {"row", "unit"} else _CENTER
    if style == "header":
        cell.fill = _HEADER_FILL
    if style != "title" and style != "unit":
        cell.border = _BORDER


def _border_range(ws: Worksheet, cell_range: str) -> None:
    for row in ws[cell_range] if ":" in cell_range else ((ws[cell_range],),):
        for cell in row:
            cell.border = _BORDER
