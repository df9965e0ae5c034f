"""Year zero, stored: a published report imported for (year, unit or county), on SQLite and on PostgreSQL, and
what it is used for the year after: a unit's 上年结转 in its new workbook and the checks of its return, the
county report's comparison with last year."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlmodel import Session, col, func, select

from schemas.figures import figures_from_text
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import EventLog, PublishedFigures
from tasks.campaigns import open_campaign, previous_year_values
from tasks.check import CheckContext, check_values
from tasks.db import get_engine
from tasks.history import county_history
from tasks.intake import load_ingest_context
from tasks.issue_workbooks import record_issued, units_to_issue, write_workbooks
from tasks.published_import import Imported, PublishedImportError, import_published
from tasks.report_build import ReportInput, build_report
from tasks.report_document import Paragraph
from tasks.workbook_template import build_template
from tasks.xlsx_patch import XlsxPatcher
from tests.conftest import DEADLINE
from tests.factories import register_units, valid_figures
from tests.tasks.test_published_report import (
    COLUMNS,
    PUBLISHED,
    SEED,
    TITLE,
    report_document_bytes,
    rich_figures,
    statutory,
    with_row,
)

UNIT_TITLE = "示范县市场监督管理局2020年政府信息公开工作年度报告"


@pytest.fixture
def registered(settings: Settings, units_file: Path) -> Settings:
    """The register of tests.factories.UNITS_CSV: G001, T001, T002, D001."""
    register_units(settings, units_file)
    return settings


@pytest.fixture(scope="module")
def rich(form: FormSpec) -> dict[str, Decimal]:
    return rich_figures(form)


def accepted(form: FormSpec, **changes: int | str) -> dict[str, Decimal]:
    """A unit's figures as an accepted return has them: inputs and every total."""
    result = check_values({k: float(v) for k, v in valid_figures(form, **changes).items()}, form)
    assert result.errors == []
    return result.values


def _import(settings: Settings, form: FormSpec, data: bytes, name: str, *, year: int = 2020,
            unit_code: str | None = None, force: bool = False) -> Imported:
    with Session(get_engine(settings.db_url)) as session:
        done = import_published(session=session, form=form, year=year, unit_code=unit_code, data=data, name=name,
                                archive_dir=settings.archive_dir, force=force)
        session.commit()
    return done


def _refused(settings: Settings, form: FormSpec, data: bytes, name: str, *, year: int = 2020,
             unit_code: str | None = None, force: bool = False) -> PublishedImportError:
    with Session(get_engine(settings.db_url)) as session, pytest.raises(PublishedImportError) as refused:
        import_published(session=session, form=form, year=year, unit_code=unit_code, data=data, name=name,
                         archive_dir=settings.archive_dir, force=force)
    return refused.value


def _stored(settings: Settings) -> list[PublishedFigures]:
    with Session(get_engine(settings.db_url)) as session:
        return list(session.exec(select(PublishedFigures).order_by(col(PublishedFigures.id))).all())


def _events(settings: Settings) -> list[EventLog]:
    with Session(get_engine(settings.db_url)) as session:
        return list(session.exec(select(EventLog).where(EventLog.kind == "published.imported")).all())


def _archived(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.archive_dir.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- storing


def test_the_file_is_archived_and_its_figures_stored(registered: Settings, form: FormSpec,
                                                     rich: dict[str, Decimal]) -> None:
    data = report_document_bytes(form, rich, "html")

    done = _import(registered, form, data, "下载/示范县2020年报告.html")

    digest = hashlib.sha256(data).hexdigest()
    assert (done.year, done.unit_code, done.title, done.figures, done.missing, done.notes, done.replaced) == (
        2020, None, TITLE, 200, 0, [], False)
    assert Path(done.archive_path).read_bytes() == data and Path(done.archive_path).name == f"{digest}.html"
    assert Path(done.archive_path).is_relative_to(registered.archive_dir)
    [row] = _stored(registered)
    assert (row.form_id, row.year, row.unit_code, row.title, row.original_name, row.sha256) == (
        form.form_id, 2020, None, TITLE, "示范县2020年报告.html", digest)
    assert figures_from_text(row.figures) == statutory(form, rich)
    [event] = _events(registered)
    assert event.unit_code is None and event.detail["figures"] == 200
    assert (event.detail["forced"], event.detail["replaced"]) == (False, False)


@pytest.mark.parametrize("unit_code", [None, "D001"])
def test_a_second_import_replaces_the_first_and_says_so(registered: Settings, form: FormSpec,
                                                        rich: dict[str, Decimal], unit_code: str | None) -> None:
    """The county's own report (no unit code: a NULL the unique key does not guard) as much as a unit's."""
    title = UNIT_TITLE if unit_code else TITLE
    first = _import(registered, form, report_document_bytes(form, rich, "docx", title=title), "2020.docx",
                    unit_code=unit_code)
    other = "T001" if unit_code else None  # another report of the same year, which must stay as it is
    town = "城关镇2020年政府信息公开工作年度报告"
    kept = _import(registered, form, report_document_bytes(form, rich, "html", title=town), "2020.html",
                   unit_code=other) if other else None
    corrected = accepted(form, active__license__decisions=321)

    second = _import(registered, form, report_document_bytes(form, corrected, "json"), "2020-更正.json",
                     unit_code=unit_code)

    assert (first.replaced, second.replaced) == (False, True)
    rows = {row.unit_code: row for row in _stored(registered)}
    assert len(rows) == (2 if other else 1)
    assert figures_from_text(rows[unit_code].figures) == statutory(form, corrected)
    assert (rows[unit_code].original_name, rows[unit_code].title) == ("2020-更正.json", "")
    if kept is not None:
        assert figures_from_text(rows[other].figures) == statutory(form, rich) and not kept.replaced
    assert Path(first.archive_path).exists()  # the replaced file is kept in the archive
    assert [e.detail["replaced"] for e in _events(registered) if e.unit_code == unit_code] == [False, True]


def test_a_report_of_another_year_is_refused_unless_forced(registered: Settings, form: FormSpec) -> None:
    data = SEED.read_bytes()  # 息县人民政府2021年…报告
    mismatch = "报告标题为2021年度（“息县人民政府2021年政府信息公开工作年度报告”），与导入的2020年度不符"

    refused = _refused(registered, form, data, "息县2020年报告.txt")
    assert (refused.problems, refused.forceable) == ([mismatch], True)
    assert _stored(registered) == [] and _events(registered) == []
    assert [p.read_bytes() for p in _archived(registered)] == [data]  # the file is kept all the same

    done = _import(registered, form, data, "息县2020年报告.txt", force=True)

    assert done.notes == [f"（强制导入）{mismatch}"] and done.figures == 200
    [row] = _stored(registered)
    assert row.year == 2020 and row.notes == done.notes
    assert [e.detail["forced"] for e in _events(registered)] == [True]


def test_a_figures_file_of_another_year_is_named_by_its_year(registered: Settings, form: FormSpec,
                                                             rich: dict[str, Decimal]) -> None:
    data = report_document_bytes(form, rich, "json", year=2019)

    assert _refused(registered, form, data, "2019.json").problems == ["文件所载年度为2019年，与导入的2020年度不符"]


@pytest.mark.parametrize("force", [False, True])
def test_a_unit_not_in_the_register_is_refused_even_forced(registered: Settings, form: FormSpec,
                                                           rich: dict[str, Decimal], force: bool) -> None:
    data = report_document_bytes(form, rich, "html", title=UNIT_TITLE)

    refused = _refused(registered, form, data, "市监局2020.html", unit_code="D0001", force=force)

    assert refused.problems == ["单位代码D0001不在单位名单中，请核对代码或先导入单位名单"]
    assert not refused.forceable  # --force would not help: the command must not suggest it
    assert _stored(registered) == [] and _events(registered) == []


def test_a_broken_report_is_refused_and_forced_keeps_its_problems(registered: Settings, form: FormSpec) -> None:
    text = with_row(SEED.read_text(encoding="utf-8"), "四、结转下年度继续办理", ["0", "1", "0", "0", "0", "0", "1"])
    data = text.replace("2021年", "2020年").replace("息县人民政府", "示范县人民政府办公室").encode("utf-8")

    problems = _refused(registered, form, data, "息县2020年报告.txt", unit_code="G001").problems

    assert [p.split("：")[0] for p in problems] == ["勾稽关系（商业企业列）", "勾稽关系（总计列）"]
    assert _stored(registered) == []

    done = _import(registered, form, data, "息县2020年报告.txt", unit_code="G001", force=True)

    assert done.notes == [f"（强制导入）{p}" for p in problems]
    [row] = _stored(registered)
    assert row.unit_code == "G001" and figures_from_text(row.figures)["apply.carry_next.commercial"] == 1


@pytest.mark.parametrize(("title", "unit_code", "problem"), [
    (TITLE, "D001", "报告的发布机关为“示范县人民政府”，与单位D001“示范县市场监督管理局”不符，请核对是否选错了文件"),
    ("城关镇2020年政府信息公开工作年度报告", "D001",
     "报告标题表明这是“城关镇”（T001）的报告，不是“示范县市场监督管理局”（D001）的"),
    (UNIT_TITLE, None,
     "报告标题表明这是“示范县市场监督管理局”（D001）的报告，不是全县的报告；单位的报告请用 --unit 导入"),
])
def test_another_bodys_report_is_refused_unless_forced(registered: Settings, form: FormSpec, rich: dict[str, Decimal],
                                                       title: str, unit_code: str | None, problem: str) -> None:
    data = report_document_bytes(form, rich, "html", title=title)

    refused = _refused(registered, form, data, "2020.html", unit_code=unit_code)

    assert (refused.problems, refused.forceable) == ([problem], True)
    assert _stored(registered) == []
    done = _import(registered, form, data, "2020.html", unit_code=unit_code, force=True)
    assert done.notes == [f"（强制导入）{problem}"]


@pytest.mark.parametrize(("title", "unit_code"), [
    ("市场监督管理局2020年政府信息公开工作年度报告", "D001"),  # the register's name contains the title's
    ("示范县人民政府办公室2020年政府信息公开工作年度报告", None),  # the county's report, by the office that compiles it
])
def test_a_loosely_matching_body_is_accepted(registered: Settings, form: FormSpec, rich: dict[str, Decimal],
                                             title: str, unit_code: str | None) -> None:
    done = _import(registered, form, report_document_bytes(form, rich, "html", title=title), "2020.html",
                   unit_code=unit_code)
    assert done.notes == [] and done.figures == 200


@pytest.mark.parametrize("force", [False, True])
def test_a_file_with_no_figures_is_refused_even_forced(registered: Settings, form: FormSpec, force: bool) -> None:
    refused = _refused(registered, form, b"%PDF-1.7\n", "息县2020年报告.pdf", force=force)

    assert len(refused.problems) == 1 and not refused.forceable
    assert refused.problems[0].startswith("文件“息县2020年报告.pdf”是PDF，无法可靠读取其中的表格。")
    assert _stored(registered) == [] and _events(registered) == []


# --------------------------------------------------------------------------- what the import is for


def _open(settings: Settings, form: FormSpec, year: int) -> dict[str, Path]:
    """Open the year as the open-collection flow does, without Prefect: each unit's issued workbook, by code."""
    with Session(get_engine(settings.db_url)) as session:
        campaign, _ = open_campaign(session=session, form=form, year=year, deadline=DEADLINE)
        plan = units_to_issue(session=session, campaign=campaign, form=form,
                              previous=previous_year_values(session=session, form=form, year=year))
        assert campaign.id is not None
        template = build_template(form, year, DEADLINE)
        issued = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=campaign.id,
                                 year=year, secret=campaign.secret, units=plan,
                                 folder=settings.outbox_dir(year) / "workbooks")
        record_issued(session=session, campaign_id=campaign.id, issued=issued)
        session.commit()
    return {workbook.code: Path(workbook.path) for workbook in issued}


def _carried(form: FormSpec, workbook: Path) -> dict[str, object]:
    """The 上年结转 input cells of a workbook, as the unit sees them."""
    book = openpyxl.load_workbook(workbook)
    cells = [form.cell_by_key[f"apply.carried.{column}"] for column in COLUMNS]
    return {c.key: book[form.sheet_by_id[c.sheet].name][c.address].value for c in cells}


def test_a_units_imported_report_fills_its_carry_over_the_next_year(registered: Settings, form: FormSpec,
                                                                    rich: dict[str, Decimal]) -> None:
    _import(registered, form, report_document_bytes(form, rich, "html", title=UNIT_TITLE), "市监局2020.html",
            unit_code="D001")

    workbooks = _open(registered, form, 2021)

    assert _carried(form, workbooks["D001"]) == {
        f"apply.carried.{column}": int(rich[f"apply.carry_next.{column}"]) for column in COLUMNS}
    assert set(_carried(form, workbooks["T001"]).values()) == {0}  # no report of last year: the blank form

    # its return is then checked against the imported year (S4): 上年结转 is last year's 结转下年度
    with Session(get_engine(registered.db_url)) as session:
        previous = load_ingest_context(session=session, form=form, year=2021).previous["D001"]
    last = {column: int(rich[f"apply.carry_next.{column}"]) for column in COLUMNS}
    # every application carried over disclosed this year, none new, none carried on
    as_carried = valid_figures(form, **{f"apply__carried__{c}": n for c, n in last.items()},
                               **{f"apply__result__open__{c}": n for c, n in last.items()},
                               **{f"apply__new__{c}": 0 for c in COLUMNS},
                               apply__result__partial__natural_person=0, apply__carry_next__commercial=0)
    one_more = dict(as_carried, **{"apply.carried.research": as_carried["apply.carried.research"] + 1,
                                   "apply.result.open.research": as_carried["apply.result.open.research"] + 1})
    assert _s4(form, as_carried, previous) == []
    assert _s4(form, one_more, previous) == ["apply.carried.research", "apply.carried.total"]


def _s4(form: FormSpec, figures: dict[str, Decimal], previous: dict[str, Decimal]) -> list[str | None]:
    """The cells of a return that rule S4 (carry-over) points out, the return being otherwise right."""
    result = check_values({k: float(v) for k, v in figures.items()}, form, CheckContext(previous=previous))
    assert result.errors == []
    return [i.field for i in result.issues if i.rule == "S4" and i.code == "carry-over-mismatch"]


def _compared(form: FormSpec, cells: dict[str, Decimal], previous: dict[str, Decimal] | None) -> list[str]:
    """The sentences comparing each statutory section of a 2021 report with last year's figures."""
    document, _ = build_report(form, ReportInput(title="示范县人民政府2021年政府信息公开工作年度报告", year=2021,
                                                 cells=cells, narrative={}, previous=previous, charts=False))
    return [b.text for s in document.sections[1:4] for b in s.blocks
            if isinstance(b, Paragraph) and b.text.startswith("与上年相比")]


def test_the_countys_imported_report_is_last_year_in_the_county_report(registered: Settings, form: FormSpec,
                                                                       rich: dict[str, Decimal]) -> None:
    this_year = accepted(form)
    assert _compared(form, this_year, None) == []  # without last year, nothing to compare
    with Session(get_engine(registered.db_url)) as session:
        assert county_history(session=session, form=form, before=2021) == []

    _import(registered, form, report_document_bytes(form, rich, "docx"), "示范县2020年报告.docx")

    with Session(get_engine(registered.db_url)) as session:
        history = county_history(session=session, form=form, before=2021)
        assert session.exec(select(func.count()).select_from(PublishedFigures)).one() == 1
    [last] = history
    assert (last.year, last.source) == (2020, f"导入的2020年度已公开报告《{TITLE}》")
    assert last.cells == statutory(form, rich)
    compared = _compared(form, this_year, last.cells)
    assert len(compared) == 3
    fewer = rich["apply.new.total"] - this_year["apply.new.total"]
    assert f"新收政府信息公开申请减少{fewer}件" in compared[1]


def test_a_2019_layout_report_compares_what_it_has(registered: Settings, form: FormSpec) -> None:
    """Its table 二 counts other things and is not imported: only tables 三 and 四 are compared."""
    done = _import(registered, form, (PUBLISHED / "report_2020_layout2019.txt").read_bytes(), "息县2020年报告.txt")
    assert (done.figures, done.missing) == (190, 10)

    with Session(get_engine(registered.db_url)) as session:
        [last] = county_history(session=session, form=form, before=2021)
    compared = _compared(form, accepted(form), last.cells)

    assert len(compared) == 2  # 三 and 四; 二 has no figures of last year
    assert "新收政府信息公开申请" in compared[0] and "行政复议" in compared[1]
