"""The unit-reports flow under a real Prefect: each unit's own annual report, from its accepted return only.

The units return varied figures (every input cell its own number, within the 勾稽关系) and their own 文字部分 texts;
the Word file and the HTML page are read back and compared with what the unit typed: every figure of the three
tables at its place, every paragraph of sections 一, 五 and 六.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import docx
import pypdfium2
import pytest
from docx.oxml.ns import qn
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string
from prefect.artifacts import Artifact
from sqlmodel import Session, col, select

from cli.simulate import fill_by_names
from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from flows.unit_reports import unit_reports
from schemas.form_spec import CellType, FormSpec
from schemas.settings import Settings
from schemas.tables import Assignment, EventLog, Submission, Unit, Verdict
from tasks.db import get_engine
from tasks.unit_reports import UnitReportSource, write_unit_report
from tests.conftest import DEADLINE
from tests.factories import register_units, valid_figures

pytestmark = pytest.mark.usefixtures("prefect_harness")

YEAR = 2021
NAMES = {"D001": "示范县市场监督管理局", "G001": "示范县人民政府办公室", "T001": "城关镇", "T002": "河口乡"}
FORMATS = ["docx", "html", "pdf"]
SECTIONS = {"一": "一、总体情况", "五": "五、存在的主要问题及改进情况", "六": "六、其他需要报告的事项"}
TEXT_OF_SECTION = {"一": "narrative.overview", "五": "narrative.problems", "六": "narrative.other"}
BODY_STYLES = {"报告正文", "报告二级标题"}  # the Word styles of the unit's own paragraphs and subheadings

# A department's prose, complete: no figure to contradict the tables, nothing the format requires of a government.
D001_TEXTS = {
    "narrative.overview": "（一）主动公开情况\n示范县市场监督管理局坚持以公开为常态，及时发布市场监管政策文件。\n"
                          "（二）依申请公开情况\n严格按照法定程序和时限办理申请，做到答复规范。",
    "narrative.problems": "主动公开的深度还不够。下一步将加强政策解读，提高公开质量。",
    "narrative.other": "本单位无其他需要报告的事项。",
}


def t001_texts(stated_received: int) -> dict[str, str]:
    """A township's prose that says what 第五十条 asks of a government, and states how many applications it received."""
    return {
        "narrative.overview": f"2021年，城关镇认真贯彻落实《中华人民共和国政府信息公开条例》。\n"
                              f"全年共收到政府信息公开申请{stated_received}件，均在法定期限内答复。\n"
                              "将政务公开纳入年度考核，开展社会评议，全年未发生责任追究情况。",
        "narrative.problems": "信息公开工作人员多为兼职。改进措施：明确专人负责，参加业务培训。",
        "narrative.other": "本年度无其他需要报告的事项。",
    }


# --------------------------------------------------------------------------- what the units return


def varied_figures(form: FormSpec, seed: int) -> dict[str, Decimal]:
    """Figures for every input cell, most of them different from one another, that pass every hard rule: in each
    applicant column, new + carried = concluded + carried to next year, the concluded spread over the result rows."""
    rng = random.Random(seed)
    figures: dict[str, Decimal] = {}
    for cell in form.input_cells:
        if cell.type is CellType.INT:
            figures[cell.key] = Decimal(rng.randint(1, 500))
        else:
            figures[cell.key] = Decimal(rng.randint(1, 9_999_999)).scaleb(-cell.places)
    for rule in form.sum_rules():
        if rule.computes or len(rule.left) != 2 or rule.left[0] in form.totals:
            continue  # only the R1 rule of each applicant column (the 总计 column is all totals)
        (new, carried), (concluded, carry_next) = rule.left, rule.right
        figures[new], figures[carried] = Decimal(rng.randint(20, 90)), Decimal(rng.randint(0, 9))
        figures[carry_next] = Decimal(rng.randint(0, 9))
        rows = form.totals[concluded].right
        counts = dict.fromkeys(rows, 0)
        for row in rng.choices(rows, k=int(figures[new] + figures[carried] - figures[carry_next])):
            counts[row] += 1
        figures.update({row: Decimal(n) for row, n in counts.items()})
    for key in ("active.rules.issued", "active.rules.repealed", "active.rules.valid"):
        figures[key] = Decimal(0)  # no county unit makes 规章 (a warning otherwise)
    return figures


def with_totals(form: FormSpec, figures: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The unit's input figures and every total, each the sum of its parts."""
    values = dict(figures)
    for key, rule in form.totals.items():  # parts come before their totals
        values[key] = sum((values[part] for part in rule.right), Decimal(0))
    return values


def expected_tables(form: FormSpec, figures: Mapping[str, Decimal]) -> list[list[str]]:
    """The figures of each statutory table as the report must print them: row by row, left to right."""
    values = with_totals(form, figures)
    tables = []
    for sheet in form.table_sheets:
        cells = sorted(form.cells_on(sheet.id), key=lambda c: _row_col(c.address))
        tables.append([str(int(values[c.key])) if c.type is CellType.INT
                       else str(values[c.key].quantize(Decimal(1).scaleb(-c.places))) for c in cells])
    return tables


def _row_col(address: str) -> tuple[int, int]:
    letters, row = coordinate_from_string(address)
    return row, column_index_from_string(letters)


# --------------------------------------------------------------------------- reading the reports back


def docx_tables(source: Path | bytes) -> list[list[str]]:
    """The figure cells of each Word table, row by row: centred and unshaded (labels are left-aligned, headings
    shaded); a cell continuing a vertical merge is skipped."""
    tables = []
    for table in docx.Document(io.BytesIO(source) if isinstance(source, bytes) else str(source)).tables:
        numbers = []
        for tc in table._tbl.iter(qn("w:tc")):
            props = tc.tcPr
            merge = props.find(qn("w:vMerge")) if props is not None else None
            if merge is not None and merge.get(qn("w:val")) != "restart":
                continue
            shaded = props is not None and props.find(qn("w:shd")) is not None
            centred = any(jc.get(qn("w:val")) == "center" for jc in tc.iter(qn("w:jc")))
            if centred and not shaded:
                numbers.append("".join(t.text or "" for t in tc.iter(qn("w:t"))))
        tables.append(numbers)
    return tables


def html_tables(html: str) -> list[list[str]]:
    return [re.findall(r'<td class="number"[^>]*>([^<]*)</td>', table)
            for table in re.findall(r"<table.*?</table>", html, re.S)]


def docx_sections(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each section heading of the Word file -> its paragraphs as (style, text)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for paragraph in docx.Document(str(path)).paragraphs:
        if paragraph.style is not None and paragraph.style.name == "报告一级标题":
            current = sections.setdefault(paragraph.text, [])
        elif paragraph.text:
            current.append((paragraph.style.name if paragraph.style is not None else "", paragraph.text))
    return sections


def html_sections(html: str) -> dict[str, list[tuple[str, str]]]:
    """Each <h2> of the HTML page -> its paragraphs as (class, text)."""
    return {heading: re.findall(r'<p class="([a-z]+)">([^<]*)</p>', body)
            for heading, body in re.findall(r"<h2>([^<]*)</h2>(.*?)</section>", html, re.S)}


def prose(texts: Mapping[str, str], number: str) -> list[str]:
    """The unit's text of a section as the paragraphs the report must print: one per non-empty line."""
    return [line.strip() for line in texts[TEXT_OF_SECTION[number]].splitlines() if line.strip()]


def pdf_text(path: Path) -> str:
    book = pypdfium2.PdfDocument(path)
    try:
        return "".join(book[i].get_textpage().get_text_range() for i in range(len(book)))
    finally:
        book.close()


# --------------------------------------------------------------------------- the campaign


def _open(settings: Settings, units_file: Path) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)


def _return(settings: Settings, code: str, values: Mapping[str, object], name: str | None = None) -> Path:
    """The unit fills its issued workbook (figures and 文字部分) by defined name and drops it into the inbox."""
    issued = next((settings.outbox_dir(YEAR) / "workbooks").glob(f"{YEAR}年*-{code}-*.xlsx"))
    return fill_by_names(issued, settings.inbox_dir(YEAR) / (name or issued.name), values)


def _accepted_id(settings: Settings, code: str) -> int | None:
    with Session(get_engine(settings.db_url)) as session:
        return session.exec(select(Assignment.accepted_submission_id)
                            .join(Unit, col(Unit.id) == col(Assignment.unit_id)).where(Unit.code == code)).one()


def _submissions(settings: Settings, code: str) -> list[tuple[int, Verdict]]:
    with Session(get_engine(settings.db_url)) as session:
        rows = session.exec(select(Submission).join(Unit, col(Unit.id) == col(Submission.unit_id))
                            .where(Unit.code == code).order_by(col(Submission.id))).all()
        return [(s.id or 0, s.verdict) for s in rows]


def _folder(settings: Settings, code: str, submission_id: int | None) -> Path:
    return settings.unit_reports_dir(YEAR) / code / str(submission_id)


def _report_files(settings: Settings, code: str, submission_id: int | None) -> dict[str, str]:
    stem = f"{YEAR}年{NAMES[code]}政府信息公开工作年度报告"
    return {fmt: str(_folder(settings, code, submission_id) / f"{stem}.{fmt}") for fmt in FORMATS}


def _artifact_rows() -> list[dict[str, Any]]:
    artifact: Any = Artifact.get(f"campaign-{YEAR}-unit-reports")  # sync here: no event loop runs
    assert artifact is not None
    rows: list[dict[str, Any]] = json.loads(str(artifact.data))
    return rows


# --------------------------------------------------------------------------- tests


def test_each_accepted_unit_gets_its_own_report_with_its_figures_and_its_prose(
        settings: Settings, units_file: Path, form: FormSpec) -> None:
    _open(settings, units_file)
    t001, d001 = varied_figures(form, seed=1), varied_figures(form, seed=2)
    received = int(t001["apply.new.natural_person"])  # a part of what it received: not the table's figure
    t001_prose = t001_texts(received)
    _return(settings, "T001", {**t001, **t001_prose})
    _return(settings, "D001", {**d001, **D001_TEXTS})
    _return(settings, "T002", valid_figures(form, apply__new__natural_person=3))  # breaks R1: rejected
    assert ingest_returns(YEAR).accepted == 2

    summary = unit_reports(YEAR)

    ids = {code: _accepted_id(settings, code) for code in NAMES}
    assert ids["G001"] is None and ids["T002"] is None
    assert [(r.code, r.name, r.submission_id) for r in summary.reports] == [
        ("D001", NAMES["D001"], ids["D001"]), ("T001", NAMES["T001"], ids["T001"])]
    assert summary.missing == ["G001", "T002"]  # no accepted return: no report, and said so
    for report in summary.reports:
        assert report.files == _report_files(settings, report.code, report.submission_id)
        assert all(Path(path).is_file() for path in report.files.values())
    assert sorted(p.name for p in settings.unit_reports_dir(YEAR).iterdir()) == ["D001", "T001"]

    for code, figures, texts in (("T001", t001, t001_prose), ("D001", d001, D001_TEXTS)):
        files = _report_files(settings, code, ids[code])
        expected = expected_tables(form, figures)
        assert docx_tables(Path(files["docx"])) == expected, code
        html = Path(files["html"]).read_text(encoding="utf-8")
        assert html_tables(html) == expected, code

        title = f"{NAMES[code]}{YEAR}年政府信息公开工作年度报告"
        assert docx.Document(files["docx"]).paragraphs[0].text == title
        word, page = docx_sections(Path(files["docx"])), html_sections(html)
        for number, heading in SECTIONS.items():
            assert [t for s, t in word[heading] if s in BODY_STYLES] == prose(texts, number), (code, heading)
            assert [t for c, t in page[heading] if c in {"body", "subheading"}] == prose(texts, number)
        assert not any(s == "报告待填写" for paragraphs in word.values() for s, _ in paragraphs)
        # section 六 opens with the 信息处理费 sentence made from the unit's own fee figures
        assert word[SECTIONS["六"]][0][0] == "报告生成文字"
        assert f"{int(figures['fee.notices'])}件" in word[SECTIONS["六"]][0][1]
        text = pdf_text(Path(files["pdf"]))
        assert title in text.replace("\n", "").replace("\r", "")
        assert prose(texts, "五")[0][:12] in text

    notes = {r.code: r.notes for r in summary.reports}
    assert notes["D001"] == []
    assert len(notes["T001"]) == 1 and "文字部分所述收到的申请件数" in notes["T001"][0]
    assert f"申请{received}件" in notes["T001"][0]

    with Session(get_engine(settings.db_url)) as session:
        logged = session.exec(select(EventLog).where(EventLog.kind == "unit_report.written")
                              .order_by(col(EventLog.id))).all()
        assert [(e.unit_code, e.detail) for e in logged] == [
            ("D001", {"submission_id": ids["D001"], "files": FORMATS, "notes": 0}),
            ("T001", {"submission_id": ids["T001"], "files": FORMATS, "notes": 1})]

    rows = {row["单位代码"]: row for row in _artifact_rows()}
    assert set(rows) == set(NAMES)
    assert rows["T001"]["需注意"] == notes["T001"][0] and rows["D001"]["需注意"] == "无"
    assert rows["D001"]["文件"] == "、".join(FORMATS)
    assert "尚无审核通过的报送" in rows["G001"]["需注意"] and "尚无审核通过的报送" in rows["T002"]["需注意"]


def test_a_resubmission_gets_new_files_and_the_old_ones_stay(settings: Settings, units_file: Path,
                                                            form: FormSpec) -> None:
    _open(settings, units_file)
    first, second = varied_figures(form, seed=3), varied_figures(form, seed=4)
    _return(settings, "T001", {**first, **t001_texts(0)})
    ingest_returns(YEAR)
    before = unit_reports(YEAR, ["T001"], ["docx"])
    first_id = _accepted_id(settings, "T001")
    old = {fmt: Path(path).read_bytes() for fmt, path in before.reports[0].files.items()}
    assert set(old) == {"html", "docx"}  # the formats asked for, and the page every report has

    _return(settings, "T001", {**second, **t001_texts(0)}, name="城关镇（修改后）.xlsx")
    assert ingest_returns(YEAR).accepted == 1
    after = unit_reports(YEAR, ["T001"], ["docx"])

    second_id = _accepted_id(settings, "T001")
    assert second_id is not None and first_id is not None and second_id > first_id
    assert [r.submission_id for r in after.reports] == [second_id] and after.missing == []
    assert docx_tables(Path(after.reports[0].files["docx"])) == expected_tables(form, second)
    for fmt, data in old.items():  # the files of what was accepted first are kept as they were
        path = Path(before.reports[0].files[fmt])
        assert path.parent == _folder(settings, "T001", first_id)
        assert path.read_bytes() == data
    assert docx_tables(Path(before.reports[0].files["docx"])) == expected_tables(form, first)


def test_a_unit_whose_returns_were_all_rejected_gets_no_report(settings: Settings, units_file: Path,
                                                              form: FormSpec) -> None:
    _open(settings, units_file)
    _return(settings, "T002", valid_figures(form, apply__new__natural_person=3))
    _return(settings, "T001", valid_figures(form))
    ingest_returns(YEAR)
    assert [v for _, v in _submissions(settings, "T002")] == [Verdict.REJECTED]

    summary = unit_reports(YEAR, ["T002", "T001", "X999"], [])

    assert [r.code for r in summary.reports] == ["T001"]
    assert summary.missing == ["T002", "X999"]  # named, and nothing accepted (or no such unit)
    assert not (settings.unit_reports_dir(YEAR) / "T002").exists()
    assert set(summary.reports[0].files) == {"html"}
    with Session(get_engine(settings.db_url)) as session:
        logged = session.exec(select(EventLog.unit_code).where(EventLog.kind == "unit_report.written")).all()
    assert list(logged) == ["T001"]


@pytest.mark.parametrize("name", ["示范县第1.5中学", "../../etc/passwd", "城关镇/..\\..", 'a:b*c?d"e<f>g|h', " ..  "])
def test_a_units_name_never_cuts_or_moves_its_files(tmp_path: Path, form: FormSpec, name: str) -> None:
    source = UnitReportSource(code="T001", name=name, kind="township", submission_id=7, version=1,
                              figures=with_totals(form, valid_figures(form)), texts=D001_TEXTS, previous=None)
    folder = (tmp_path / "T001" / "7").resolve()

    files, _ = write_unit_report(form, YEAR, source, tmp_path, ("docx",))

    assert set(files) == {"html", "docx"}
    stems = {Path(path).name.removesuffix(f".{fmt}") for fmt, path in files.items()}
    assert len(stems) == 1 and all(Path(path).name.endswith(f"工作年度报告.{fmt}") for fmt, path in files.items())
    assert {Path(path).resolve().parent for path in files.values()} == {folder}
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(path).name for path in files.values())
    assert not re.search(r'[\\/:*?"<>|\s]', stems.pop())
    assert docx.Document(files["docx"]).paragraphs[0].text == f"{name}{YEAR}年政府信息公开工作年度报告"
