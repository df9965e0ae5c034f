"""The summary workbook's breakdown sheet: each unit's stored figures in its own row, under the right column, read
alike by openpyxl and by calamine, and a 合计 row that is their exact sum."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from schemas.figures import figures_from_text, figures_text
from schemas.form_spec import FormSpec
from tasks import xlsx_patch
from tasks.accepted import AcceptedFigures
from tasks.check import check_values
from tasks.report_workbook import BREAKDOWN_SHEET, UnitRow, summary_workbook
from tests.factories import valid_figures


def _stored(form: FormSpec, **overrides: int | str) -> dict[str, Decimal]:
    """A unit's figures as an accepted return stores them: inputs and the totals the checker worked out."""
    result = check_values({k: float(v) for k, v in valid_figures(form, **overrides).items()}, form)
    assert result.passed, result.issues
    return figures_from_text(figures_text(result.values))


def test_each_unit_row_holds_its_own_figures_and_the_total_row_their_sum(form: FormSpec) -> None:
    first = _stored(form, active__license__decisions=120, active__fees__amount_wan="12.3456")
    second = _stored(form, active__license__decisions=7, active__fees__amount_wan="0.0004",
                     apply__new__natural_person=5, apply__result__open__natural_person=4)
    units = [UnitRow("D001", "县发改局", "县直部门", "已通过"), UnitRow("D002", "县教育局", "县直部门", "逾期未报"),
             UnitRow("T001", "城关镇", "乡镇（街道）", "已通过")]
    keys = tuple(cell.key for cell in form.cells)
    accepted = AcceptedFigures.from_values(keys, {"D001": first, "T001": second})
    county = {key: first[key] + second[key] for key in keys}

    data = summary_workbook(form, "测试县2021年政府信息公开工作年度报告", county, units, accepted)

    sheet = openpyxl.load_workbook(io.BytesIO(data))[BREAKDOWN_SHEET]
    by_openpyxl = [list(row) for row in sheet.iter_rows(min_row=2, values_only=True)]
    by_calamine = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_name(BREAKDOWN_SHEET).to_python()[1:]
    for rows in (by_openpyxl, by_calamine):
        header, body = rows[0], [row for row in rows[1:] if row and row[0] not in (None, "")]
        assert list(header[:4]) == ["code", "name", "kind", "status"] and list(header[4:]) == list(keys)
        assert [row[:4] for row in body] == [
            ["D001", "县发改局", "县直部门", "已通过"], ["D002", "县教育局", "县直部门", "逾期未报"],
            ["T001", "城关镇", "乡镇（街道）", "已通过"], ["合计", "（各单位之和）", "", ""]]
        column = {key: 4 + n for n, key in enumerate(keys)}
        for row, figures in ((body[0], first), (body[2], second), (body[3], county)):
            assert {key: Decimal(str(row[column[key]])) for key in keys} == figures
        assert all(value in (None, "") for value in body[1][4:])  # no return: no figures, not zeros
    licence = column["active.license.decisions"]
    assert by_openpyxl[-1][licence] == 127 and by_openpyxl[1][licence] == 120
    fees = Decimal(str(by_openpyxl[-1][column["active.fees.amount_wan"]]))
    assert fees == Decimal("12.3460")
    assert sheet.max_column == 4 + len(keys) and sheet.max_row == 2 + len(units) + 1  # <dimension> covers the rows


def test_a_breakdown_written_in_many_pieces_keeps_every_row_in_order(form: FormSpec,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The breakdown's rows are made a piece at a time while another thread deflates them: with pieces of 3 rows,
    23 units (every fourth without figures) still come back whole, in order, under the right row numbers."""
    monkeypatch.setattr(xlsx_patch, "ROWS_A_PIECE", 3)
    keys = tuple(cell.key for cell in form.cells)
    codes = [f"T{n:03d}" for n in range(23)]
    stored = {code: _stored(form, active__license__decisions=n) for n, code in enumerate(codes) if n % 4}
    accepted = AcceptedFigures.from_values(keys, stored)
    units = [UnitRow(code, f"第{n}镇", "乡镇（街道）", "已通过" if code in stored else "逾期未报")
             for n, code in enumerate(codes)]

    data = summary_workbook(form, "测试县", accepted.column_sums(), units, accepted)

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None  # the member deflated piece by piece: its CRC and size are the whole XML's
    sheet = openpyxl.load_workbook(io.BytesIO(data))[BREAKDOWN_SHEET]
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    assert [row[0] for row in rows] == [*codes, "合计"]
    licence = 4 + keys.index("active.license.decisions")
    assert [row[licence] for row in rows] == [n if n % 4 else None for n in range(23)] + [
        sum(n for n in range(23) if n % 4)]
    assert sheet.max_row == 2 + len(units) + 1 and sheet.max_column == 4 + len(keys)


def test_rows_given_once_are_written_alike_every_time() -> None:
    """A SheetRows made a piece at a time can be written twice: the second copy holds the rows too."""
    rows = xlsx_patch.text_then_number_rows(3, [(("T001", "城关镇"), ("1", "2.5")), (("T002", "河口乡"), ("3", "4"))])
    assert "".join(rows.pieces) == "".join(rows.pieces) and '<c r="D4"><v>4</v></c>' in "".join(rows.pieces)
