"""The three flows under a real Prefect: open a campaign, ingest returns, compile the county report."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlmodel import Session, col, func, select

from cli.simulate import fill_by_names
from flows.compile_report import compile_report
from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from schemas.form_spec import Consolidation, FormSpec, SumEqualsRule
from schemas.settings import Settings
from schemas.tables import Assignment, Campaign, Submission, Unit, Verdict
from tasks.campaigns import get_campaign
from tasks.db import get_engine
from tasks.identity import IDENTITY_SHEET
from tasks.status import UnitStatus, campaign_status
from tests.conftest import DEADLINE
from tests.factories import register_units, valid_figures

pytestmark = pytest.mark.usefixtures("prefect_harness")

YEAR = 2021
CODES = ["D001", "G001", "T001", "T002"]  # the units of tests.factories.UNITS_CSV, by code


# --------------------------------------------------------------------------- helpers


def _session(settings: Settings) -> Session:
    return Session(get_engine(settings.db_url))


def _workbooks(settings: Settings, year: int = YEAR) -> dict[str, Path]:
    folder = settings.outbox_dir(year) / "workbooks"
    return {p.name: p for p in sorted(folder.glob("*.xlsx"))}


def _issued(settings: Settings, code: str, year: int = YEAR) -> Path:
    found = list((settings.outbox_dir(year) / "workbooks").glob(f"{year}年*-{code}-*.xlsx"))
    assert len(found) == 1, found
    return found[0]


def _return(settings: Settings, code: str, figures: Mapping[str, Decimal], *, name: str | None = None,
            folder: str | None = None, at: datetime | None = None, year: int = YEAR) -> Path:
    """The unit fills its issued workbook by defined name and drops it into the inbox (or a unit's subfolder)."""
    issued = _issued(settings, code, year)
    inbox = settings.inbox_dir(YEAR) / folder if folder else settings.inbox_dir(YEAR)
    target = fill_by_names(issued, inbox / (name or issued.name), figures)
    if at is not None:
        os.utime(target, (at.timestamp(), at.timestamp()))
    return target


def _with_totals(form: FormSpec, figures: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """A unit's input figures plus every total, each the sum of its parts."""
    values = dict(figures)
    for key, rule in form.totals.items():
        values[key] = sum((values[part] for part in rule.right), Decimal(0))
    return values


def _status(settings: Settings, today: date | None = None) -> dict[str, UnitStatus]:
    with _session(settings) as session:
        campaign = get_campaign(session=session, form=_form(), year=YEAR)
        return {row.unit: row for row in campaign_status(session=session, campaign=campaign, today=today)}


def _submissions(settings: Settings, code: str | None = None) -> list[Submission]:
    with _session(settings) as session:
        query = select(Submission).order_by(col(Submission.id))
        if code is not None:
            query = query.join(Unit, col(Unit.id) == col(Submission.unit_id)).where(Unit.code == code)
        return list(session.exec(query).all())


def _form() -> FormSpec:
    from flows.common import form_for

    return form_for()


def _answers(settings: Settings, code: str) -> list[Path]:
    return sorted((settings.outbox_dir(YEAR) / "answers" / code).glob("*.txt"))


def _inbox_files(settings: Settings) -> list[Path]:
    return [p for p in settings.inbox_dir(YEAR).rglob("*") if p.is_file()]


def _broken(form: FormSpec) -> dict[str, Decimal]:
    """A return whose 自然人 column breaks R1: one new application too many, nothing else changed."""
    return valid_figures(form, apply__new__natural_person=3)


def _r1_check_cell(form: FormSpec, rule_id: str) -> str:
    rule = next(r for r in form.sum_rules() if r.id == rule_id)
    assert isinstance(rule, SumEqualsRule) and rule.check_cell is not None
    return rule.check_cell.address


# --------------------------------------------------------------------------- open


def test_open_issues_one_workbook_per_active_unit_once(settings: Settings, units_file: Path,
                                                        tmp_path: Path) -> None:
    register_units(settings, units_file)

    first = open_collection(YEAR, DEADLINE)

    assert first.created and first.issued == 4 and first.already_issued == 0
    books = _workbooks(settings)
    assert len(books) == 4
    for code in CODES:
        wb = openpyxl.load_workbook(_issued(settings, code), read_only=True)
        identity = {row[0]: row[1] for row in wb[IDENTITY_SHEET].iter_rows(values_only=True) if row[0]}
        wb.close()
        assert identity["unit_code"] == code and str(identity["year"]) == str(YEAR)
    before = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in books.items()}

    second = open_collection(YEAR, DEADLINE)

    assert not second.created and second.issued == 0 and second.already_issued == 4
    assert second.campaign_id == first.campaign_id
    assert {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in _workbooks(settings).items()} == before
    with _session(settings) as session:
        assert session.exec(select(func.count()).select_from(Assignment)).one() == 4
        assert session.exec(select(func.count()).select_from(Campaign)).one() == 1

    later = tmp_path / "later.csv"
    later.write_text("code,name,kind,contact,email,active\n"
                     "D002,示范县自然资源局,department,钱进,d002@example.gov.cn,1\n"
                     "D003,示范县已撤并单位,department,孙立,d003@example.gov.cn,0\n", encoding="utf-8")
    register_units(settings, later)

    third = open_collection(YEAR, DEADLINE)

    assert third.issued == 1 and third.already_issued == 4
    after = _workbooks(settings)
    assert len(after) == 5
    assert _issued(settings, "D002").exists()
    assert not list((settings.outbox_dir(YEAR) / "workbooks").glob("*-D003-*"))  # inactive: no workbook
    assert {name: hashlib.sha256(after[name].read_bytes()).hexdigest() for name in before} == before
    with _session(settings) as session:
        assert session.exec(select(func.count()).select_from(Assignment)).one() == 5


# --------------------------------------------------------------------------- round trip


def test_round_trip_consolidates_every_cell(settings: Settings, units_file: Path, form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    returned: dict[str, dict[str, Decimal]] = {}
    for i, code in enumerate(CODES, start=1):
        figures = valid_figures(
            form,
            active__license__decisions=100 * i + 7, active__penalty__decisions=3 * i,
            active__coercion__decisions=i - 1, active__normative__issued=i, active__normative__valid=10 + i,
            active__fees__amount_wan=f"{i}.{i}{i}05",
            apply__new__natural_person=2 + i, apply__result__open__natural_person=1 + i,
            apply__carried__research=i, apply__result__unable__not_held__research=i,
            review__upheld=i, litigation__direct__pending=i % 2,
        )
        _return(settings, code, figures)
        returned[code] = _with_totals(form, figures)

    ingested = ingest_returns(YEAR)

    assert (ingested.files, ingested.accepted, ingested.rejected, ingested.duplicates) == (4, 4, 0, 0)
    assert all(s.status == "accepted" for s in _status(settings).values())

    report = compile_report(YEAR)

    cells = report.figures["cells"]
    assert isinstance(cells, dict)
    assert set(cells) == {c.key for c in form.cells} and len(cells) == 200 + 3  # with the 信息处理费 figures
    designated = [c for c in form.cells if c.consolidation is Consolidation.DESIGNATED]
    assert {c.key for c in designated} >= {"active.normative.issued", "active.fees.amount_wan"}
    for cell in form.cells:
        if cell.consolidation is Consolidation.DESIGNATED:
            expected = returned["G001"][cell.key]
        else:
            expected = sum((returned[code][cell.key] for code in CODES), Decimal(0))
        assert Decimal(str(cells[cell.key])) == expected, cell.key
    assert cells["active.license.decisions"] == 100 + 200 + 300 + 400 + 4 * 7
    assert cells["active.normative.issued"] == 2  # G001 is the second code: designated, not the sum 10
    assert cells["active.fees.amount_wan"] == "2.2205"
    assert cells["apply.new.total"] == sum(2 + i + 1 for i in range(1, 5))
    assert (report.units_expected, report.units_accepted, report.errors) == (4, 4, 0)
    assert json.loads(Path(report.json_path).read_text(encoding="utf-8")) == report.figures
    assert Path(report.html).exists() and Path(report.xlsx).exists()


# --------------------------------------------------------------------------- rejection and replacement


def test_broken_return_is_rejected_then_fixed_return_accepted(settings: Settings, units_file: Path,
                                                               form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    _return(settings, "T001", _broken(form), name="城关镇-第一次.xlsx")

    first = ingest_returns(YEAR)

    assert (first.files, first.accepted, first.rejected) == (1, 0, 1)
    [rejected] = _submissions(settings, "T001")
    assert rejected.verdict is Verdict.REJECTED and rejected.version == 1 and rejected.error_count > 0
    r1 = [i for i in rejected.issues if i["rule"] == "R1.natural_person"]
    assert r1 and r1[0]["code"] == "sum-mismatch"
    cell = _r1_check_cell(form, "R1.natural_person")
    assert r1[0]["cell"] == cell
    status = _status(settings, today=date(2022, 1, 10))["T001"]
    assert status.status == "rejected" and status.issue_count == rejected.error_count > 0
    assert not status.has_accepted
    [answer] = _answers(settings, "T001")
    assert "问题清单" in answer.name
    text = answer.read_text(encoding="utf-8")
    assert "勾稽关系" in text and f"单元格 {cell}" in text and "R1.natural_person" in text
    assert str(answer) in first.answers

    _return(settings, "T001", valid_figures(form), name="城关镇-修改后.xlsx")
    second = ingest_returns(YEAR)

    assert (second.files, second.accepted, second.rejected) == (1, 1, 0)
    old, new = _submissions(settings, "T001")
    assert old.id == rejected.id and old.verdict is Verdict.REJECTED
    assert new.verdict is Verdict.ACCEPTED and new.version == 2 and new.replaces_id is None
    status = _status(settings, today=date(2022, 1, 10))["T001"]
    assert status.status == "accepted" and status.issue_count == 0 and status.has_accepted
    with _session(settings) as session:
        unit_id = session.exec(select(Unit.id).where(Unit.code == "T001")).one()
        assignment = session.exec(select(Assignment).where(Assignment.unit_id == unit_id)).one()
        assert assignment.accepted_submission_id == new.id
    receipt = [a for a in _answers(settings, "T001") if "回执" in a.name]
    assert len(receipt) == 1 and "第2次" in receipt[0].name


def test_a_rejected_return_sent_again_unchanged_is_told_nothing_was_changed(settings: Settings, units_file: Path,
                                                                            form: FormSpec) -> None:
    """The unit re-saves (or re-sends) its rejected workbook without correcting it: new bytes, the same figures.
    It is a new return (kept, numbered, answered), and its answer says that nothing was changed."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    _return(settings, "T001", _broken(form), name="城关镇.xlsx")
    ingest_returns(YEAR)
    again = _return(settings, "T001", _broken(form), name="城关镇-已修改.xlsx")
    resaved = openpyxl.load_workbook(again)
    resaved.properties.lastModifiedBy = "城关镇办公室"  # what saving it again changes: the file, not a figure
    resaved.save(again)

    second = ingest_returns(YEAR)

    assert (second.files, second.rejected, second.duplicates) == (1, 1, 0)
    first, repeated = _submissions(settings, "T001")
    assert first.sha256 != repeated.sha256 and first.figures == repeated.figures
    assert (repeated.version, repeated.repeats_version, first.repeats_version) == (2, 1, None)
    answer = next(a for a in _answers(settings, "T001") if "第2次" in a.name)
    text = answer.read_text(encoding="utf-8")
    assert "与第1次报送完全相同，未作任何修改" in text and "问题清单" in text

    _return(settings, "T001", valid_figures(form), name="城关镇-修改后.xlsx")
    third = ingest_returns(YEAR)
    assert third.accepted == 1
    fixed = _submissions(settings, "T001")[-1]
    assert (fixed.version, fixed.repeats_version) == (3, None)
    receipt = next(a for a in _answers(settings, "T001") if "第3次" in a.name).read_text(encoding="utf-8")
    assert "已通过审核" in receipt and "完全相同" not in receipt


def test_a_return_named_like_a_temporary_file_is_left_alone_and_told(settings: Settings, units_file: Path,
                                                                      form: FormSpec) -> None:
    """A unit's return saved as "~城关镇.xlsx" (the name of a temporary file) is not taken, as a copy in progress
    would not be; once it has been there a while the ingest's summary names it, and it is still in the inbox."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    _return(settings, "T002", valid_figures(form))
    hidden = _return(settings, "T001", valid_figures(form), name="~城关镇.xlsx",
                     at=datetime(2022, 1, 9, 9, 0, tzinfo=UTC))

    summary = ingest_returns(YEAR)

    assert (summary.files, summary.accepted, summary.skipped) == (1, 1, ["~城关镇.xlsx"])
    assert hidden.exists() and _submissions(settings, "T001") == []


def test_newer_accepted_return_replaces_the_earlier_one(settings: Settings, units_file: Path,
                                                        form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    _return(settings, "G001", valid_figures(form, active__license__decisions=10))
    _return(settings, "D001", valid_figures(form, active__license__decisions=300, active__penalty__decisions=5),
            name="市场监管局-v1.xlsx")
    ingest_returns(YEAR)
    [first] = _submissions(settings, "D001")
    assert first.verdict is Verdict.ACCEPTED

    _return(settings, "D001", valid_figures(form, active__license__decisions=555, active__penalty__decisions=9),
            name="市场监管局-v2.xlsx")
    again = ingest_returns(YEAR)

    assert (again.accepted, again.rejected) == (1, 0)
    old, new = _submissions(settings, "D001")
    assert old.id == first.id
    assert new.verdict is Verdict.ACCEPTED and new.version == 2 and new.replaces_id == first.id
    assert _status(settings)["D001"].status == "accepted"
    receipt = next(a for a in _answers(settings, "D001") if "第2次" in a.name)
    assert "替换此前已通过的第1次报送" in receipt.read_text(encoding="utf-8")

    report = compile_report(YEAR)

    cells = report.figures["cells"]
    assert isinstance(cells, dict)
    assert cells["active.license.decisions"] == 10 + 555
    assert cells["active.penalty.decisions"] == 7 + 9
    assert report.units_accepted == 2


# --------------------------------------------------------------------------- idempotency


def test_same_file_twice_is_stored_once(settings: Settings, units_file: Path, form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    original = _return(settings, "G001", valid_figures(form))
    data = original.read_bytes()
    first = ingest_returns(YEAR)
    assert (first.files, first.accepted, first.duplicates) == (1, 1, 0)
    assert not _inbox_files(settings)

    copy = settings.inbox_dir(YEAR) / original.name
    copy.write_bytes(data)
    second = ingest_returns(YEAR)

    assert (second.files, second.accepted, second.rejected, second.duplicates) == (1, 0, 0, 1)
    with _session(settings) as session:
        assert session.exec(select(func.count()).select_from(Submission)).one() == 1
    assert not _inbox_files(settings)
    answers = _answers(settings, "G001")
    assert len(answers) == 2 and sum("重复" in a.name for a in answers) == 1
    assert _status(settings)["G001"].status == "accepted"

    empty = ingest_returns(YEAR)

    assert (empty.files, empty.accepted, empty.rejected, empty.duplicates) == (0, 0, 0, 0)
    assert empty.answers == []
    assert len(_answers(settings, "G001")) == 2
    with _session(settings) as session:
        assert session.exec(select(func.count()).select_from(Submission)).one() == 1


def test_same_bytes_twice_in_one_run_are_stored_once(settings: Settings, units_file: Path,
                                                     form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    path = _return(settings, "T002", valid_figures(form), name="河口乡.xlsx")
    shutil.copyfile(path, path.with_name("河口乡（副本）.xlsx"))

    ingested = ingest_returns(YEAR)

    assert (ingested.files, ingested.accepted, ingested.duplicates) == (2, 1, 1)
    assert len(_submissions(settings, "T002")) == 1
    assert not _inbox_files(settings)


# --------------------------------------------------------------------------- bad files


def test_bad_files_are_rejected_archived_and_moved_out(settings: Settings, units_file: Path,
                                                       form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    open_collection(YEAR - 1, date(2021, 1, 20))  # last year's campaign: its workbooks are the wrong year
    inbox = settings.inbox_dir(YEAR)
    good = _return(settings, "G001", valid_figures(form), name="good.xlsx")
    wrong_year = _return(settings, "D001", valid_figures(form), name="wrong-year.xlsx", year=YEAR - 1)
    not_a_workbook = inbox / "x.xlsx"
    not_a_workbook.write_text("这不是工作簿，只是一段文字。\n", encoding="utf-8")
    truncated = inbox / "truncated.xlsx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    originals = {p.name: p.read_bytes() for p in (good, wrong_year, not_a_workbook, truncated)}

    ingested = ingest_returns(YEAR)

    assert (ingested.files, ingested.accepted, ingested.rejected, ingested.duplicates) == (4, 1, 3, 0)
    by_name = {s.original_name: s for s in _submissions(settings)}
    assert set(by_name) == set(originals)
    assert by_name["good.xlsx"].verdict is Verdict.ACCEPTED
    expected_codes = {"x.xlsx": "not-a-workbook", "truncated.xlsx": "corrupt-workbook",
                      "wrong-year.xlsx": "wrong-campaign"}
    for name, code in expected_codes.items():
        submission = by_name[name]
        assert submission.verdict is Verdict.REJECTED, name
        assert [i["code"] for i in submission.issues] == [code], name
        assert submission.unit_id is None, name
    assert len(list((settings.outbox_dir(YEAR) / "answers" / "_unidentified").glob("*问题清单*.txt"))) == 3
    for name, data in originals.items():
        digest = hashlib.sha256(data).hexdigest()
        archived = settings.archive_dir / digest[:2] / f"{digest}.xlsx"
        assert archived.read_bytes() == data, name
        assert by_name[name].sha256 == digest and Path(by_name[name].archive_path) == archived
    assert not _inbox_files(settings)
    processed = {p.name: p.read_bytes() for p in (settings.campaign_dir(YEAR) / "processed").rglob("*.xlsx")}
    assert processed == originals
    assert _status(settings)["G001"].status == "accepted"


def test_workbook_in_another_units_folder_is_wrong_unit(settings: Settings, units_file: Path,
                                                         form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    _return(settings, "G001", valid_figures(form), folder="T001")  # 城关镇 sends the government office's workbook
    _return(settings, "D001", valid_figures(form), folder="D001")  # its own workbook from its own folder

    ingested = ingest_returns(YEAR)

    assert (ingested.files, ingested.accepted, ingested.rejected) == (2, 1, 1)
    [wrong] = _submissions(settings, "T001")
    assert wrong.verdict is Verdict.REJECTED and [i["code"] for i in wrong.issues] == ["wrong-unit"]
    assert wrong.sender == "inbox/T001"
    [own] = _submissions(settings, "D001")
    assert own.verdict is Verdict.ACCEPTED
    assert _submissions(settings, "G001") == []
    status = _status(settings, today=date(2022, 1, 10))
    assert (status["T001"].status, status["G001"].status, status["D001"].status) == ("rejected", "issued",
                                                                                      "accepted")
    [answer] = _answers(settings, "T001")
    text = answer.read_text(encoding="utf-8")
    assert "问题清单" in answer.name and "下发给“G001”" in text and "不是本单位（T001）" in text
    assert not _inbox_files(settings)


def test_another_units_accepted_file_sent_again_is_the_senders_wrong_return(settings: Settings, units_file: Path,
                                                                              form: FormSpec) -> None:
    """The same bytes from another unit are not a duplicate: they are that unit's own return, and wrong."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    original = _return(settings, "G001", valid_figures(form))
    data = original.read_bytes()
    assert ingest_returns(YEAR).accepted == 1
    forwarded = settings.inbox_dir(YEAR) / "T001" / original.name  # 城关镇 forwards the office's file as its own
    forwarded.parent.mkdir(parents=True)
    forwarded.write_bytes(data)

    ingested = ingest_returns(YEAR)

    assert (ingested.files, ingested.accepted, ingested.rejected, ingested.duplicates) == (1, 0, 1, 0)
    [wrong] = _submissions(settings, "T001")
    assert wrong.verdict is Verdict.REJECTED and [i["code"] for i in wrong.issues] == ["wrong-unit"]
    assert wrong.sha256 == hashlib.sha256(data).hexdigest()
    [own] = _submissions(settings, "G001")
    assert own.verdict is Verdict.ACCEPTED and _status(settings)["G001"].status == "accepted"
    [answer] = _answers(settings, "T001")
    assert "问题清单" in answer.name and "不是本单位（T001）" in answer.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- status


def test_status_reports_issued_accepted_rejected_missing(settings: Settings, units_file: Path,
                                                         form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    _return(settings, "G001", valid_figures(form), at=datetime(2022, 1, 10, 2, tzinfo=UTC))
    _return(settings, "T001", _broken(form), at=datetime(2022, 1, 12, 2, tzinfo=UTC))
    _return(settings, "D001", valid_figures(form), at=datetime(2022, 1, 25, 2, tzinfo=UTC))  # after the deadline
    ingest_returns(YEAR)

    before = _status(settings, today=date(2022, 1, 15))
    assert {code: s.status for code, s in before.items()} == {
        "D001": "accepted", "G001": "accepted", "T001": "rejected", "T002": "issued"}
    assert {code: s.late for code, s in before.items()} == {
        "D001": True, "G001": False, "T001": False, "T002": False}
    assert before["T001"].issue_count > 0 and before["G001"].issue_count == 0
    assert before["G001"].last_submission_at is not None and before["T002"].last_submission_at is None
    assert all(Path(s.workbook).exists() for s in before.values())

    on_deadline = _status(settings, today=DEADLINE)
    assert on_deadline["T002"].status == "issued"

    after = _status(settings, today=date(2022, 2, 1))
    assert {code: s.status for code, s in after.items()} == {
        "D001": "accepted", "G001": "accepted", "T001": "rejected", "T002": "missing"}
    assert {code: s.late for code, s in after.items()} == {
        "D001": True, "G001": False, "T001": True, "T002": True}
