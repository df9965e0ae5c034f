"""The issued workbook: template built once with openpyxl, patched per unit, then opened as a unit would open it."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
import python_calamine
from openpyxl.utils.cell import get_column_letter, range_boundaries
from sqlmodel import Session

from cli.simulate import fill_by_names
from schemas.form_spec import CellType, FormSpec
from schemas.settings import Settings
from schemas.tables import Campaign
from tasks.check import check_values, texts_of
from tasks.db import get_engine
from tasks.identity import IDENTITY_SHEET, WorkbookIdentity, verify
from tasks.issue_workbooks import IssuedWorkbook, UnitToIssue, units_to_issue, workbook_file_name, write_workbooks
from tasks.workbook_read import read_workbook
from tasks.workbook_template import CHECK_BROKEN, CHECK_OK, INSTRUCTIONS_SHEET, WorkbookTemplate, build_template
from tasks.xlsx_patch import XlsxPatcher
from tests.factories import register_units, valid_figures

YEAR = 2021
DEADLINE = date(2022, 1, 20)
SECRET = "test-secret"
CAMPAIGN_ID = 7
TABLE_SHEETS = ["表二 主动公开", "表三 依申请公开", "表四 复议诉讼"]
NARRATIVE_SHEET = "文字部分"
UNITS = [
    UnitToIssue(1, "T001", "城关镇",
                {"apply.carried.natural_person": Decimal(2), "apply.carried.legal_service": Decimal(1)}),
    UnitToIssue(2, "D001", "示范县市场监督管理局", {}),
]


@pytest.fixture(scope="module")
def template(form: FormSpec) -> WorkbookTemplate:
    return build_template(form, YEAR, DEADLINE)


@pytest.fixture(scope="module")
def issued(template: WorkbookTemplate, tmp_path_factory: pytest.TempPathFactory) -> list[IssuedWorkbook]:
    return write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=CAMPAIGN_ID, year=YEAR,
                           secret=SECRET, units=UNITS, folder=tmp_path_factory.mktemp("outbox") / "workbooks")


@pytest.fixture(scope="module")
def book(issued: list[IssuedWorkbook]) -> openpyxl.Workbook:
    return openpyxl.load_workbook(issued[0].path)


def _expand(refs: str) -> set[str]:
    """'D8:D28' or 'A6,B6' -> the set of addresses."""
    addresses = set()
    for part in refs.split(","):
        min_col, min_row, max_col, max_row = range_boundaries(part.strip())
        for col in range(min_col, max_col + 1):
            for row in range(min_row, max_row + 1):
                addresses.add(f"{get_column_letter(col)}{row}")
    return addresses


def _sqref_cells(sqref: object) -> set[str]:
    return set().union(*(_expand(str(r)) for r in str(sqref).split()))


def test_write_workbooks_writes_one_file_per_unit(issued: list[IssuedWorkbook]) -> None:
    assert [(w.unit_id, w.code) for w in issued] == [(1, "T001"), (2, "D001")]
    for workbook, unit in zip(issued, UNITS, strict=True):
        path = Path(workbook.path)
        assert path.name == workbook_file_name(YEAR, unit.code, unit.name)
        assert unit.code in path.name and unit.name in path.name and path.suffix == ".xlsx"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == workbook.sha256
    assert issued[0].sha256 != issued[1].sha256
    assert not list(Path(issued[0].path).parent.glob("*.part"))


def test_file_name_is_safe() -> None:
    name = workbook_file_name(2021, "D9", 'a/b:c*d?"e<f>g|h i')
    assert not re.search(r'[\\/:*?"<>|\s]', name.removesuffix(".xlsx").split("-", 1)[1])


def test_sheets_and_hidden_identity(book: openpyxl.Workbook) -> None:
    assert book.sheetnames[:5] == [INSTRUCTIONS_SHEET, *TABLE_SHEETS, NARRATIVE_SHEET]
    assert IDENTITY_SHEET in book.sheetnames
    assert book[IDENTITY_SHEET].sheet_state == "veryHidden"
    for name in [INSTRUCTIONS_SHEET, *TABLE_SHEETS, NARRATIVE_SHEET]:
        assert book[name].sheet_state == "visible"
    assert book.active.title == INSTRUCTIONS_SHEET


def test_all_sheets_are_protected(book: openpyxl.Workbook) -> None:
    for name in [INSTRUCTIONS_SHEET, *TABLE_SHEETS, NARRATIVE_SHEET, IDENTITY_SHEET]:
        assert book[name].protection.sheet is True, name


def test_defined_names_point_at_the_form_addresses(book: openpyxl.Workbook, form: FormSpec) -> None:
    names = dict(book.defined_names.items())
    assert set(names) == {c.key for c in form.cells} | {t.key for t in form.texts}
    assert len(names) == 200 + 3 + 3  # the statutory cells, the 信息处理费 figures, the three texts
    for cell in form.cells:
        destinations = list(names[cell.key].destinations)
        sheet_name = form.sheet_by_id[cell.sheet].name
        assert destinations == [(sheet_name, f"${cell.column_letter}${cell.row_number}")], cell.key
    for text in form.texts:
        column, row = re.fullmatch(r"([A-Z]+)([0-9]+)", text.address).groups()  # type: ignore[union-attr]
        assert list(names[text.key].destinations) == [(NARRATIVE_SHEET, f"${column}${row}")], text.key


def test_narrative_sheet_takes_the_prose_and_the_processing_fee(book: openpyxl.Workbook, form: FormSpec) -> None:
    ws = book[NARRATIVE_SHEET]
    for text in form.texts:
        target = ws[text.address]
        assert target.value is None and target.protection.locked is False, text.key
        assert target.alignment.wrap_text and target.alignment.vertical == "top"
        assert ws[f"A{target.row}"].value == text.label  # the section's heading beside it
    assert ws.row_dimensions[4].height >= 200  # room to see a page of 总体情况
    for key in ("fee.notices", "fee.billed_yuan", "fee.collected_yuan"):
        assert ws[form.cell_by_key[key].address].value == 0
        assert ws[form.cell_by_key[key].address].protection.locked is False
    errors = {v.error for v in ws.data_validations.dataValidation if v.type == "decimal"}
    assert errors == {"请填写大于或等于0的金额（单位：元，最多2位小数）。"}
    assert [v.type for v in ws.data_validations.dataValidation if v.type == "textLength"] == ["textLength"]


def test_inputs_unlocked_and_totals_locked_sum_formulas(book: openpyxl.Workbook, form: FormSpec) -> None:
    for cell in form.cells:
        target = book[form.sheet_by_id[cell.sheet].name][cell.address]
        if cell.key in form.totals:
            assert target.protection.locked is True, cell.key
            assert isinstance(target.value, str) and target.value.startswith("=SUM("), cell.key
        else:
            assert target.protection.locked is False, cell.key
            assert isinstance(target.value, int | float), cell.key


def test_total_formulas_sum_exactly_their_parts(book: openpyxl.Workbook, form: FormSpec) -> None:
    for key, rule in form.totals.items():
        cell = form.cell_by_key[key]
        formula = book[form.sheet_by_id[cell.sheet].name][cell.address].value
        match = re.fullmatch(r"=SUM\(([A-Z0-9:,]+)\)", formula)
        assert match, formula
        assert _expand(match.group(1)) == {form.cell_by_key[p].address for p in rule.right}, key
    table3 = book["表三 依申请公开"]
    assert table3["J6"].value == "=SUM(D6:I6)"
    assert table3["D29"].value == "=SUM(D8:D28)"
    assert book["表四 复议诉讼"]["E6"].value == "=SUM(A6:D6)"


def test_input_cells_are_zero_except_the_carry_over(book: openpyxl.Workbook, form: FormSpec) -> None:
    prefilled = UNITS[0].carry_over
    for cell in form.input_cells:
        value = book[form.sheet_by_id[cell.sheet].name][cell.address].value
        assert value == prefilled.get(cell.key, 0), cell.key


def test_data_validation_covers_every_input_cell(book: openpyxl.Workbook, form: FormSpec) -> None:
    for sheet in form.sheets:
        ws = book[sheet.name]
        whole: set[str] = set()
        decimal: set[str] = set()
        for validation in ws.data_validations.dataValidation:
            if validation.type == "textLength":  # the texts' length check
                assert _sqref_cells(validation.sqref) == {t.address for t in form.texts_on(sheet.id)}
                continue
            assert validation.operator == "greaterThanOrEqual"
            assert validation.formula1 == "0"
            assert validation.showErrorMessage
            if validation.type == "whole":
                whole |= _sqref_cells(validation.sqref)
            elif validation.type == "decimal":
                decimal |= _sqref_cells(validation.sqref)
        inputs = [c for c in form.input_cells if c.sheet == sheet.id]
        assert whole == {c.address for c in inputs if c.type is CellType.INT}, sheet.name
        assert decimal == {c.address for c in inputs if c.type is CellType.DECIMAL}, sheet.name
    fee = form.cell_by_key["active.fees.amount_wan"]
    fee_validations = [v for v in book["表二 主动公开"].data_validations.dataValidation if v.type == "decimal"]
    assert [_sqref_cells(v.sqref) for v in fee_validations] == [{fee.address}]


def test_check_cells_in_row_31(book: openpyxl.Workbook) -> None:
    ws = book["表三 依申请公开"]
    for letter in "DEFGHIJ":
        formula = ws[f"{letter}31"].value
        assert isinstance(formula, str) and formula.startswith("=IF(")
        assert f"SUM({letter}6,{letter}7)=SUM({letter}29,{letter}30)" in formula
        assert CHECK_OK in formula and CHECK_BROKEN in formula
        assert ws[f"{letter}31"].protection.locked is True
    assert "勾稽关系" in str(ws["A31"].value)


def test_unit_name_and_code_on_the_sheets(issued: list[IssuedWorkbook]) -> None:
    for workbook, unit in zip(issued, UNITS, strict=True):
        wb = openpyxl.load_workbook(workbook.path)
        info = wb[INSTRUCTIONS_SHEET]
        texts = [str(c.value) for row in info.iter_rows() for c in row if c.value is not None]
        assert unit.name in texts and unit.code in texts
        assert info["B3"].value == unit.name and info["B4"].value == unit.code
        assert "…" not in texts  # no placeholder left
        assert any("2022年1月20日" in t for t in texts)
        assert any(f"{YEAR}年" in t for t in texts)
        for name in TABLE_SHEETS:
            line = [str(c.value) for row in wb[name].iter_rows(min_row=2, max_row=2) for c in row if c.value]
            assert len(line) == 1 and unit.name in line[0] and unit.code in line[0] and f"{YEAR}年" in line[0]


def test_identity_is_signed_per_unit(issued: list[IssuedWorkbook], form: FormSpec) -> None:
    signatures = []
    for workbook, unit in zip(issued, UNITS, strict=True):
        ws = openpyxl.load_workbook(workbook.path)[IDENTITY_SHEET]
        rows = {str(r[0]): str(r[1]) for r in ws.iter_rows(values_only=True) if r[0]}
        assert rows["unit_code"] == unit.code
        assert (rows["year"], rows["campaign_id"]) == (str(YEAR), str(CAMPAIGN_ID))
        assert (rows["form_id"], rows["form_version"]) == (form.form_id, form.version)
        assert re.fullmatch(r"[0-9a-f]{64}", rows["signature"])
        identity = WorkbookIdentity(form_id=form.form_id, form_version=form.version, year=YEAR,
                                    campaign_id=CAMPAIGN_ID, unit_code=unit.code)
        assert verify(identity, rows["signature"], SECRET)
        assert not verify(identity, rows["signature"], "another-secret")
        signatures.append(rows["signature"])
    assert signatures[0] != signatures[1]


def test_carry_over_prefilled(issued: list[IssuedWorkbook]) -> None:
    with_carry = openpyxl.load_workbook(issued[0].path)["表三 依申请公开"]
    without = openpyxl.load_workbook(issued[1].path)["表三 依申请公开"]
    assert with_carry["D7"].value == 2 and with_carry["H7"].value == 1 and with_carry["E7"].value == 0
    assert [without[f"{c}7"].value for c in "DEFGHI"] == [0] * 6


def test_opens_with_calamine(issued: list[IssuedWorkbook], form: FormSpec) -> None:
    book = python_calamine.CalamineWorkbook.from_path(issued[0].path)
    assert set(TABLE_SHEETS) | {INSTRUCTIONS_SHEET, IDENTITY_SHEET} <= set(book.sheet_names)
    grid = book.get_sheet_by_name("表三 依申请公开").to_python(skip_empty_area=False)
    assert grid[6][3] == 2  # D7, the carry-over
    raw = read_workbook(Path(issued[0].path).read_bytes(), form, "x.xlsx")
    assert raw.issues == []
    assert raw.identity is not None and raw.identity["unit_code"] == "T001"
    assert set(raw.values) == {c.key for c in form.cells} | {t.key for t in form.texts}
    assert texts_of(raw.values, form) == {}  # nothing written yet


def test_round_trip_of_the_prose(issued: list[IssuedWorkbook], form: FormSpec, tmp_path: Path) -> None:
    """What a clerk pastes into 文字部分 comes back as written: paragraphs on their lines, Windows line ends made
    plain, trailing spaces dropped; a section left empty is not there."""
    prose = {"narrative.overview": "（一）主动公开情况\r\n本年度主动公开政府信息120条。  \r\n\r\n（二）依申请公开情况",
             "narrative.other": "本年度未收取信息处理费。"}
    filled = fill_by_names(Path(issued[1].path), tmp_path / "prose.xlsx", {**valid_figures(form), **prose})
    raw = read_workbook(filled.read_bytes(), form, filled.name)
    assert raw.issues == []
    assert texts_of(raw.values, form) == {
        "narrative.overview": "（一）主动公开情况\n本年度主动公开政府信息120条。\n\n（二）依申请公开情况",
        "narrative.other": "本年度未收取信息处理费。"}
    assert check_values(raw.values, form).issues == []


def test_round_trip_through_a_filled_workbook(issued: list[IssuedWorkbook], form: FormSpec, tmp_path: Path) -> None:
    figures = valid_figures(form, active__fees__amount_wan="309.0263", review__upheld=1, review__pending=2)
    filled = fill_by_names(Path(issued[1].path), tmp_path / "filled.xlsx", figures)
    raw = read_workbook(filled.read_bytes(), form, filled.name)
    assert raw.issues == []
    assert raw.identity is not None and raw.identity["unit_code"] == "D001"
    result = check_values(raw.values, form)
    assert result.issues == []
    assert len(form.input_cells) == 169
    assert {c.key: result.values[c.key] for c in form.input_cells} == figures
    assert result.values["active.fees.amount_wan"] == Decimal("309.0263")
    assert result.values["review.total"] == Decimal(3)
    assert result.values["apply.result.total.total"] == Decimal(2)


def test_round_trip_keeps_the_carry_over(issued: list[IssuedWorkbook], form: FormSpec, tmp_path: Path) -> None:
    # the unit fills everything but the pre-filled 上年结转 row, and balances it with 结转下年度
    figures = valid_figures(form, apply__carry_next__natural_person=2, apply__carry_next__legal_service=1)
    for key in UNITS[0].carry_over:
        del figures[key]
    filled = fill_by_names(Path(issued[0].path), tmp_path / "filled.xlsx", figures)
    result = check_values(read_workbook(filled.read_bytes(), form).values, form)
    assert result.issues == []
    assert result.values["apply.carried.natural_person"] == Decimal(2)
    assert result.values["apply.carried.total"] == Decimal(3)


# --- carry-over as units_to_issue computes it from last year's accepted figures ---------------------------------


def _issue_with_last_year(settings: Settings, units_file: Path, form: FormSpec, template: WorkbookTemplate,
                          folder: Path) -> IssuedWorkbook:
    """T001 reported last year 1 application carried to this year (commercial); issue this year's workbooks."""
    register_units(settings, units_file)
    last_year = check_values({k: float(v) for k, v in valid_figures(form).items()}, form).values  # all 200 cells
    assert last_year["apply.carry_next.commercial"] == 1 and last_year["apply.carry_next.total"] == 1
    with Session(get_engine(settings.db_url)) as session:
        campaign = Campaign(form_id=form.form_id, form_version=form.version, year=YEAR, deadline=DEADLINE,
                            secret=SECRET)
        session.add(campaign)
        session.commit()
        session.refresh(campaign)
        plan = units_to_issue(session=session, campaign=campaign, form=form, previous={"T001": last_year})
        assert campaign.id is not None
        campaign_id = campaign.id
    assert [u.code for u in plan] == ["D001", "G001", "T001", "T002"]
    t001 = next(u for u in plan if u.code == "T001")
    assert t001.carry_over["apply.carried.commercial"] == 1
    assert all(not u.carry_over for u in plan if u.code != "T001")
    issued = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=campaign_id,
                             year=YEAR, secret=SECRET, units=[t001], folder=folder)
    return issued[0]


def test_carry_over_from_last_year_keeps_total_formula(settings: Settings, units_file: Path, form: FormSpec,
                                                       template: WorkbookTemplate, tmp_path: Path) -> None:
    workbook = _issue_with_last_year(settings, units_file, form, template, tmp_path / "out")
    ws = openpyxl.load_workbook(workbook.path)["表三 依申请公开"]
    assert ws["E7"].value == 1
    assert ws["J7"].value == "=SUM(D7:I7)"  # the 上年结转 total stays a formula, not last year's number


def test_unit_may_correct_the_carry_over(settings: Settings, units_file: Path, form: FormSpec,
                                         template: WorkbookTemplate, tmp_path: Path) -> None:
    # 填报说明: the carry-over is pre-filled "如有出入请核实后修改" -- a unit that corrects it (to 0) and keeps the
    # arithmetic right must not be told it changed the total formula
    workbook = _issue_with_last_year(settings, units_file, form, template, tmp_path / "out")
    filled = fill_by_names(Path(workbook.path), tmp_path / "filled.xlsx", valid_figures(form))
    result = check_values(read_workbook(filled.read_bytes(), form).values, form)
    assert result.issues == []
    assert result.values["apply.carried.total"] == 0
