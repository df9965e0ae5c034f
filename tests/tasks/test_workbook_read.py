"""Returned files, good and bad, through read_workbook and examine: each bad file is a specific Issue, never a crash."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from cli.simulate import fill_by_names
from schemas.form_spec import FormSpec
from schemas.issues import Category
from tasks.identity import IDENTITY_SHEET, WorkbookIdentity, sign
from tasks.ingest import CampaignKey, Examination, Incoming, examine
from tasks.issue_workbooks import UnitToIssue, write_workbooks
from tasks.workbook_read import read_workbook
from tasks.workbook_template import build_template
from tasks.xlsx_patch import XlsxPatcher
from tests.factories import valid_figures

YEAR = 2021
SECRET = "campaign-secret"
CAMPAIGN_ID = 7
UNIT_KINDS = {"T001": "township", "D001": "department", "G001": "government_office"}
T2, T3, T4 = "表二 主动公开", "表三 依申请公开", "表四 复议诉讼"


@pytest.fixture(scope="module")
def workbooks(form: FormSpec, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Issued workbooks of this campaign (T001, D001) and one of last year's campaign (T001)."""
    folder = tmp_path_factory.mktemp("issued")
    units = [UnitToIssue(1, "T001", "城关镇", {}), UnitToIssue(2, "D001", "示范县市场监督管理局", {})]
    template = build_template(form, YEAR, date(2022, 1, 20))
    this_year = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=CAMPAIGN_ID,
                                year=YEAR, secret=SECRET, units=units, folder=folder / "2021")
    old_template = build_template(form, YEAR - 1, date(2021, 1, 20))
    last_year = write_workbooks(template=old_template, patcher=XlsxPatcher(old_template.data), campaign_id=3,
                                year=YEAR - 1, secret="last-year-secret", units=units[:1], folder=folder / "2020")
    return {"T001": Path(this_year[0].path), "D001": Path(this_year[1].path), "T001-2020": Path(last_year[0].path)}


@pytest.fixture
def campaign(form: FormSpec) -> CampaignKey:
    return CampaignKey(id=CAMPAIGN_ID, year=YEAR, form_id=form.form_id, form_version=form.version, secret=SECRET)


def incoming(data: bytes, name: str = "return.xlsx", claimed_unit: str | None = None) -> Incoming:
    return Incoming(name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data), archive_path="archive/x",
                    received_at_iso="2022-01-10T10:00:00+08:00", claimed_unit=claimed_unit)


def run(data: bytes, form: FormSpec, campaign: CampaignKey, name: str = "return.xlsx", claimed_unit: str | None = None,
        previous: dict[str, dict[str, Decimal]] | None = None) -> Examination:
    return examine(data, incoming(data, name, claimed_unit), form, campaign, UNIT_KINDS, previous or {})


def filled(source: Path, target: Path, form: FormSpec, **changes: object) -> bytes:
    """The workbook at source filled with valid figures, some replaced by raw values (dots as '__')."""
    values: dict[str, object] = dict(valid_figures(form))
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return fill_by_names(source, target, values).read_bytes()


def edited(source: bytes, target: Path, edit: Callable[[openpyxl.Workbook], None]) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(source))
    edit(wb)
    wb.save(target)
    return target.read_bytes()


def codes(exam: Examination) -> list[str]:
    return [i.code for i in exam.issues]


# --- files that are not our workbook ------------------------------------------------------------------------------


def _docx_like() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def _garbled_workbook_xml() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", b"\xff\xfe\x00garbage\x80")
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "name", "code"), [
    (b"\xe5\xb9\xb4\xe6\x8a\xa5 plain text, not a workbook\n", "report.txt", "not-a-workbook"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "scan.png", "not-a-workbook"),
    (b"", "empty.xlsx", "not-a-workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504, "old.xls", "other-format"),  # tests/hostile: the kinds
    (_docx_like(), "report.docx", "not-a-workbook"),
    (_garbled_workbook_xml(), "garbled.xlsx", "corrupt-workbook"),
    (b"PK\x03\x04 not really a zip", "fake.xlsx", "corrupt-workbook"),
], ids=["text", "png", "empty", "xls", "docx", "garbled-workbook-xml", "fake-zip"])
def test_not_our_file(form: FormSpec, campaign: CampaignKey, data: bytes, name: str, code: str) -> None:
    exam = run(data, form, campaign, name)
    assert codes(exam) == [code]
    assert not exam.accepted and exam.unit_code is None and exam.values == {}
    issue = exam.issues[0]
    assert issue.category is Category.STRUCTURE and issue.is_error
    if code == "not-a-workbook":
        assert name in issue.message


def test_truncated_workbook_is_corrupt(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey) -> None:
    data = workbooks["T001"].read_bytes()
    exam = run(data[: len(data) // 2], form, campaign)
    assert codes(exam) == ["corrupt-workbook"]
    assert not exam.accepted
    assert exam.issues[0].note  # says what failed
    raw = read_workbook(data[: len(data) // 2], form)
    assert not raw.readable and raw.values == {}


def test_plain_workbook_is_unknown(form: FormSpec, campaign: CampaignKey, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "自然人"
    wb.active["B1"] = 3
    wb.save(tmp_path / "own.xlsx")
    exam = run((tmp_path / "own.xlsx").read_bytes(), form, campaign)
    assert codes(exam) == ["unknown-workbook"]
    assert not exam.accepted


def test_structure_error_keeps_the_claimed_unit(form: FormSpec, campaign: CampaignKey) -> None:
    exam = run(b"not a workbook", form, campaign, claimed_unit="T001")
    assert exam.unit_code == "T001" and not exam.accepted
    assert run(b"not a workbook", form, campaign, claimed_unit="Z999").unit_code is None


# --- our workbook, but not this campaign's or this unit's ---------------------------------------------------------


def test_last_years_workbook_is_wrong_campaign(workbooks: dict[str, Path], form: FormSpec, tmp_path: Path,
                                               campaign: CampaignKey) -> None:
    data = filled(workbooks["T001-2020"], tmp_path / "old.xlsx", form)
    exam = run(data, form, campaign)
    assert codes(exam) == ["wrong-campaign"]
    assert "2020" in exam.issues[0].message and "2021" in exam.issues[0].message
    assert not exam.accepted and exam.values == {}


def test_other_campaign_same_year_is_wrong_campaign(workbooks: dict[str, Path], form: FormSpec,
                                                    campaign: CampaignKey, tmp_path: Path) -> None:
    data = filled(workbooks["T001"], tmp_path / "f.xlsx", form)
    other = CampaignKey(id=CAMPAIGN_ID + 1, year=YEAR, form_id=form.form_id, form_version=form.version, secret=SECRET)
    assert codes(run(data, form, other)) == ["wrong-campaign"]
    assert run(data, form, campaign).accepted  # the control: the same file for its own campaign


def test_another_units_workbook_is_wrong_unit(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                              tmp_path: Path) -> None:
    data = filled(workbooks["D001"], tmp_path / "d.xlsx", form)
    exam = run(data, form, campaign, claimed_unit="T001")
    assert codes(exam) == ["wrong-unit"]
    assert exam.issues[0].found == "D001" and exam.issues[0].expected == "T001"
    assert exam.unit_code == "T001" and not exam.accepted
    assert run(data, form, campaign, claimed_unit="D001").accepted


def _set_identity(**fields: str) -> Callable[[openpyxl.Workbook], None]:
    def edit(wb: openpyxl.Workbook) -> None:
        ws = wb[IDENTITY_SHEET]
        for row in ws.iter_rows():
            if row[0].value in fields:
                row[1].value = fields[str(row[0].value)]
    return edit


def _resigned(form: FormSpec, **changes: str | int) -> Callable[[openpyxl.Workbook], None]:
    """Identity changed and signed again with the campaign secret (an identity the system itself could issue)."""
    data: dict[str, str | int] = {"form_id": form.form_id, "form_version": form.version, "year": YEAR,
                                  "campaign_id": CAMPAIGN_ID, "unit_code": "T001", **changes}
    identity = WorkbookIdentity.model_validate(data)
    return _set_identity(**{k: str(v) for k, v in data.items()}, signature=sign(identity, SECRET))


def test_forged_unit_code_is_bad_signature(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                           tmp_path: Path) -> None:
    data = edited(filled(workbooks["T001"], tmp_path / "f.xlsx", form), tmp_path / "forged.xlsx",
                  _set_identity(unit_code="D001"))
    exam = run(data, form, campaign)
    assert codes(exam) == ["bad-signature"]
    assert not exam.accepted and exam.values == {}


def test_forged_signature_is_bad_signature(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                           tmp_path: Path) -> None:
    data = edited(filled(workbooks["T001"], tmp_path / "f.xlsx", form), tmp_path / "forged.xlsx",
                  _set_identity(signature="0" * 64))
    assert codes(run(data, form, campaign)) == ["bad-signature"]


def test_identity_without_signature_is_unknown(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                               tmp_path: Path) -> None:
    def drop_signature(wb: openpyxl.Workbook) -> None:
        ws = wb[IDENTITY_SHEET]
        for row in ws.iter_rows():
            if row[0].value == "signature":
                row[0].value = None
                row[1].value = None

    data = edited(workbooks["T001"].read_bytes(), tmp_path / "x.xlsx", drop_signature)
    assert codes(run(data, form, campaign)) == ["unknown-workbook"]


def test_other_form_version_is_reported(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                        tmp_path: Path) -> None:
    data = edited(workbooks["T001"].read_bytes(), tmp_path / "v.xlsx", _resigned(form, form_version="2019"))
    exam = run(data, form, campaign)
    assert codes(exam) == ["wrong-form-version"]
    assert exam.issues[0].found == "2019"


def test_unit_not_in_register_is_unknown_unit(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                              tmp_path: Path) -> None:
    data = edited(workbooks["T001"].read_bytes(), tmp_path / "u.xlsx", _resigned(form, unit_code="X999"))
    exam = run(data, form, campaign)
    assert codes(exam) == ["unknown-unit"]
    assert exam.unit_code is None


# --- our workbook with wrong figures or a damaged structure -------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "code", "where"), [
    ("apply.new.natural_person", "三", "type-error", (T3, "D6")),
    ("apply.new.natural_person", "2件", "type-error", (T3, "D6")),
    ("review.upheld", -1, "negative-value", (T4, "A6")),
    ("active.license.decisions", 1.5, "not-whole-number", (T2, "B9")),
    ("active.penalty.decisions", None, "empty-value", (T2, "B12")),
])
def test_bad_value_in_a_cell(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey, tmp_path: Path,
                             key: str, value: object, code: str, where: tuple[str, str]) -> None:
    data = filled(workbooks["T001"], tmp_path / "f.xlsx", form, **{key.replace(".", "__"): value})
    exam = run(data, form, campaign)
    assert [(i.code, i.sheet, i.cell) for i in exam.issues] == [(code, *where)]
    assert exam.issues[0].category is Category.DATA and exam.issues[0].rule == "R5"
    assert exam.unit_code == "T001" and not exam.accepted


def test_several_bad_values_all_reported(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                         tmp_path: Path) -> None:
    data = filled(workbooks["T001"], tmp_path / "f.xlsx", form, apply__new__natural_person="三", review__upheld=-1,
                  active__license__decisions=1.5, apply__carry_next__commercial=0)
    exam = run(data, form, campaign)
    assert {(i.code, i.cell) for i in exam.issues} >= {
        ("type-error", "D6"), ("negative-value", "A6"), ("not-whole-number", "B9"), ("sum-mismatch", "E31")}


def test_missing_sheet(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey, tmp_path: Path) -> None:
    def drop(wb: openpyxl.Workbook) -> None:
        del wb[T4]

    data = edited(filled(workbooks["T001"], tmp_path / "f.xlsx", form), tmp_path / "m.xlsx", drop)
    exam = run(data, form, campaign)
    assert [(i.code, i.sheet) for i in exam.issues] == [("missing-sheet", T4)]
    assert exam.issues[0].category is Category.STRUCTURE
    assert T4 in exam.issues[0].message
    assert not exam.accepted and exam.unit_code == "T001"


def test_deleted_defined_name(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                              tmp_path: Path) -> None:
    def drop(wb: openpyxl.Workbook) -> None:
        del wb.defined_names["apply.new.natural_person"]

    data = edited(filled(workbooks["T001"], tmp_path / "f.xlsx", form), tmp_path / "n.xlsx", drop)
    exam = run(data, form, campaign)
    assert [(i.code, i.sheet, i.cell, i.field) for i in exam.issues] == [
        ("missing-name", T3, "D6", "apply.new.natural_person")]
    assert "apply.new.natural_person" in exam.issues[0].message
    assert not exam.accepted


def test_a_deleted_row_is_one_issue_for_its_sheet(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                                  tmp_path: Path) -> None:
    """A row of 表三 deleted (its cells' names now say #REF!): one issue for the sheet with the count and the first
    cells, not a line a cell; two names broken on another sheet are still named one by one."""
    row = [c for c in form.input_cells if form.sheet_by_id[c.sheet].name == T3 and c.address.endswith("6")
           and c.address[:-1].isalpha()]
    assert len(row) >= 3
    other = [c for c in form.input_cells if form.sheet_by_id[c.sheet].name == T4][:2]

    def delete_row(wb: openpyxl.Workbook) -> None:
        for cell in [*row, *other]:
            wb.defined_names[cell.key].attr_text = "#REF!"

    data = edited(filled(workbooks["T001"], tmp_path / "f.xlsx", form), tmp_path / "r.xlsx", delete_row)
    exam = run(data, form, campaign)
    names = [i for i in exam.issues if i.code in ("missing-name", "missing-names")]
    assert [(i.code, i.sheet, i.found) for i in names] == [
        ("missing-names", T3, str(len(row))), *[("missing-name", T4, "") for _ in other]]
    grouped = names[0]
    assert f"有{len(row)}个需填写的单元格找不到" in grouped.message and "删除了行" in grouped.message
    assert f"找不到，如“{row[0].label}”（原{row[0].address}）、“{row[1].label}”" in grouped.message
    assert [i.field for i in names[1:]] == [c.key for c in other]
    assert not exam.accepted


def test_defined_name_pointing_nowhere(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                       tmp_path: Path) -> None:
    def break_name(wb: openpyxl.Workbook) -> None:
        wb.defined_names["review.upheld"].attr_text = "#REF!"

    data = edited(filled(workbooks["T001"], tmp_path / "f.xlsx", form), tmp_path / "r.xlsx", break_name)
    exam = run(data, form, campaign)
    assert [(i.code, i.field) for i in exam.issues] == [("missing-name", "review.upheld")]
    assert "#REF!" in exam.issues[0].note


# --- the good file ------------------------------------------------------------------------------------------------


def test_valid_workbook_is_accepted(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                    tmp_path: Path) -> None:
    data = filled(workbooks["T001"], tmp_path / "f.xlsx", form)
    exam = run(data, form, campaign, claimed_unit="T001")
    assert exam.accepted is True
    assert exam.issues == [] and exam.unit_code == "T001"
    assert set(exam.values) == {c.key for c in form.cells}
    assert exam.values["apply.new.total"] == 3 and exam.values["active.fees.amount_wan"] == Decimal("12.3456")


def test_warnings_do_not_block_acceptance(workbooks: dict[str, Path], form: FormSpec, campaign: CampaignKey,
                                          tmp_path: Path) -> None:
    # the unit's kind (township, S2) and last year's figures (S4) reach the checker
    data = filled(workbooks["T001"], tmp_path / "f.xlsx", form, active__rules__issued=1)
    exam = run(data, form, campaign, previous={"T001": {"apply.carry_next.natural_person": Decimal(4)}})
    assert sorted((i.code, i.cell) for i in exam.issues) == [("carry-over-mismatch", "D7"), ("expected-zero", "B5")]
    assert exam.accepted is True


def test_read_workbook_gives_identity_values_and_places(workbooks: dict[str, Path], form: FormSpec) -> None:
    raw = read_workbook(workbooks["D001"].read_bytes(), form, "d.xlsx")
    assert raw.readable and raw.issues == []
    assert raw.identity is not None
    assert {k: raw.identity[k] for k in ("form_id", "form_version", "year", "campaign_id", "unit_code")} == {
        "form_id": form.form_id, "form_version": form.version, "year": "2021", "campaign_id": "7", "unit_code": "D001"}
    assert raw.places["apply.new.natural_person"] == (T3, "D6")
    assert raw.places["active.fees.amount_wan"] == (T2, "B16")
    assert raw.values["apply.new.natural_person"] == 0
    assert raw.values["apply.new.total"] in ("", None)  # a formula without a cached value
