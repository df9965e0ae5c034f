"""Golden test: the demo county's whole year, end to end, reproduces the tables of the real 息县 2021 report.

The expected figures are parsed from the seed report text (tests/data/reference/xixian_2021_report.txt), never
typed into this file: a change to the demo data, the form, the reader or the consolidation that moves any of the
200 county cells shows up here.

The rendered report's whole text (the Word file read back: every heading, sentence and table row) is compared with
tests/data/golden/: a change to the wording, the layout of a table or a generated sentence shows up as a diff to
review. After a deliberate change, rewrite the files with NIANBAO_UPDATE_GOLDEN=1 and commit them with it. The PDF's
pages are saved as PNG under tests/output/ to be looked at.
"""

from __future__ import annotations

import html
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import openpyxl
import pypdfium2
import pytest
from sqlmodel import Session, col, select

from cli import demo_county
from cli.demo import TEXTS, run_demo
from schemas.form_spec import CellSpec, FormSpec
from schemas.settings import Settings
from schemas.tables import Report, Submission, Unit, Verdict
from tasks.campaigns import get_campaign
from tasks.db import get_engine
from tasks.report_workbook import BREAKDOWN_SHEET
from tasks.status import campaign_status
from tests.conftest import REFERENCE
from tests.tasks.test_render_docx import read_back

pytestmark = pytest.mark.usefixtures("prefect_harness")

SEED = REFERENCE / "xixian_2021_report.txt"
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
OUTPUT = Path(__file__).resolve().parents[1] / "output"
HEADINGS = ["一、总体情况", "二、主动公开政府信息情况", "三、收到和处理政府信息公开申请情况",
            "四、政府信息公开行政复议、行政诉讼情况", "五、存在的主要问题及改进情况", "六、其他需要报告的事项"]
_NUMBER = re.compile(r"^\d+(\.\d+)?$")


# --------------------------------------------------------------------------- the seed report, parsed


def _section(lines: list[str], heading: str, following: str) -> list[str]:
    """The lines between a top-level heading and the next one (headings are whole lines of their own)."""
    start = lines.index(heading)
    return lines[start + 1:lines.index(following, start)]


def _numbers(line: str) -> list[str]:
    return [field.strip() for field in line.split("\t") if _NUMBER.match(field.strip())]


def _column_index(cell: CellSpec) -> int:
    index = 0
    for char in cell.column_letter:
        index = index * 26 + ord(char) - 64
    return index


def _table_cells(form: FormSpec, table: str) -> list[CellSpec]:
    """The cells of a statutory table in reading order: row by row, left to right."""
    return sorted((c for c in form.cells if c.table == table), key=lambda c: (c.row_number, _column_index(c)))


def seed_figures(form: FormSpec) -> dict[str, str]:
    """The 200 county figures as printed in the seed report's tables 二, 三 and 四, by cell key."""
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines()]
    sections = {number: _section(lines, HEADINGS[i], HEADINGS[i + 1]) for i, number in enumerate("二三四", 1)}
    expected: dict[str, str] = {}

    # Table 二: a row label followed by its figures; the cells of that row, left to right, in the form.
    rows_2: dict[str, list[str]] = {}
    for line in sections["二"]:
        label, *rest = [field.strip() for field in line.split("\t")]
        figures = [field for field in rest if field]
        if figures and all(_NUMBER.match(field) for field in figures):
            rows_2[label] = figures
    cells_2 = _table_cells(form, "二、")
    assert sorted(rows_2) == sorted({c.row for c in cells_2}), rows_2
    for label, figures in rows_2.items():
        keys = [c.key for c in cells_2 if c.row == label]
        assert len(keys) == len(figures), (label, figures)
        expected.update(zip(keys, figures, strict=True))

    # Table 三: 25 rows of 7 figures (自然人, five kinds of 法人或其他组织, 总计), in table order.
    assert all(len(_numbers(line)) in (0, 7) for line in sections["三"]), "a table 三 row with a stray number"
    rows_3 = [_numbers(line) for line in sections["三"] if _numbers(line)]
    assert len(rows_3) == 25
    cells_3 = _table_cells(form, "三、")
    assert len(cells_3) == 25 * 7
    expected.update(zip((c.key for c in cells_3), (v for row in rows_3 for v in row), strict=True))

    # Table 四: one row of 15 figures (复议 5, 直接起诉 5, 复议后起诉 5).
    rows_4 = [_numbers(line) for line in sections["四"] if _numbers(line)]
    assert [len(r) for r in rows_4] == [15]
    cells_4 = _table_cells(form, "四、")
    expected.update(zip((c.key for c in cells_4), rows_4[0], strict=True))
    return expected


def test_seed_parser_reads_the_printed_tables(form: FormSpec) -> None:
    """The parser itself: the 行政规范性文件 row, the fee, the 勾稽关系 of the printed table 三."""
    seed = seed_figures(form)
    assert len(seed) == 200 == len(form.statutory_cells)
    assert [seed[f"active.normative.{k}"] for k in ("issued", "repealed", "valid")] == ["12", "0", "19"]
    assert seed["active.fees.amount_wan"] == "309.0263"
    for column in (*demo_county.APPLICANT_COLUMNS, "total"):
        left = int(seed[f"apply.new.{column}"]) + int(seed[f"apply.carried.{column}"])
        assert left == int(seed[f"apply.result.total.{column}"]) + int(seed[f"apply.carry_next.{column}"])


# --------------------------------------------------------------------------- the demo, end to end


def test_demo_reproduces_the_seed_report(settings: Settings, form: FormSpec) -> None:
    assert run_demo(2021) == 0

    engine = get_engine(settings.db_url)
    with Session(engine) as session:
        report = session.exec(select(Report).order_by(col(Report.id).desc())).first()
        assert report is not None
        campaign = get_campaign(session=session, form=form, year=2021)
        status = {s.unit: s for s in campaign_status(session=session, campaign=campaign)}
        broken = session.exec(select(Submission).join(Unit, col(Unit.id) == col(Submission.unit_id))
                              .where(Unit.code == demo_county.BROKEN_UNIT)
                              .order_by(col(Submission.version))).all()

    # every one of the 200 cells equals the seed report's table
    figures = json.loads(Path(report.json_path).read_text(encoding="utf-8"))
    assert (figures["year"], figures["units_expected"], figures["units_accepted"]) == (2021, 24, 24)
    expected = seed_figures(form)
    assert set(figures["cells"]) == {c.key for c in form.cells}
    assert set(expected) == {c.key for c in form.statutory_cells}
    mismatches = {key: (figures["cells"][key], want) for key, want in expected.items()
                  if Decimal(str(figures["cells"][key])) != Decimal(want)}
    assert mismatches == {}
    assert figures["cells"]["active.fees.amount_wan"] == expected["active.fees.amount_wan"]  # 4 dp, as printed
    assert report.error_count == 0 and report.units_accepted == 24

    # the HTML report: six sections in order, the coordinator's narrative in them
    page = Path(report.html_path).read_text(encoding="utf-8")
    positions = [page.find(f"<h2>{heading}</h2>") for heading in HEADINGS]
    assert -1 not in positions and positions == sorted(positions), positions
    text = html.unescape(page)
    narrative = [line.strip() for line in TEXTS.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.strip().startswith("[")]
    assert len(narrative) > 10
    assert [line for line in narrative if line not in text] == []
    assert "【待填写】" not in text
    assert f"{demo_county.COUNTY_NAME}人民政府2021年政府信息公开工作年度报告" in text

    # the summary workbook: one row per unit and a 合计 row on the breakdown sheet
    wb = openpyxl.load_workbook(report.xlsx_path)
    rows = list(wb[BREAKDOWN_SHEET].iter_rows(values_only=True))
    keys = list(rows[1])
    body = [row for row in rows[2:] if row and row[0] is not None]
    assert [row[0] for row in body[:-1]] == sorted(u["code"] for u in demo_county.UNITS)
    assert body[-1][0] == "合计" and len(body) == 25
    licence = keys.index("active.license.decisions")
    assert Decimal(str(body[-1][licence])) == Decimal(expected["active.license.decisions"])

    # status: all accepted, only the late unit late, the broken unit accepted on its second return
    assert len(status) == 24 and {s.status for s in status.values()} == {"accepted"}
    assert {code for code, s in status.items() if s.late} == {demo_county.LATE_UNIT}
    assert [(s.version, s.verdict) for s in broken] == [(1, Verdict.REJECTED), (2, Verdict.ACCEPTED)]

    # year zero: the imported 2020 reports gave D004's workbook its 上年结转 and the county report its comparison
    issued = next((settings.outbox_dir(2021) / "workbooks").glob(f"*-{demo_county.CARRIED_UNIT}-*.xlsx"))
    assert named_value(issued, "apply.carried.commercial") == 2
    assert "与上年相比" in text

    # the report as published: its whole text is the golden text, its pages are looked at
    assert set(report.files) >= {"html", "docx", "pdf", "annex-html", "annex-docx", "annex-pdf", "xlsx", "json"}
    assert_golden("xixian-2021-report.txt", read_back(Path(report.files["docx"]).read_bytes()))
    save_pages(Path(report.files["pdf"]), "demo-report")

    # every unit's own report, from its accepted return; D004's whole text is golden too
    unit_folders = sorted(p.name for p in settings.unit_reports_dir(2021).iterdir())
    assert unit_folders == sorted(u["code"] for u in demo_county.UNITS)
    own = next(settings.unit_reports_dir(2021).glob(f"{demo_county.CARRIED_UNIT}/*/*.docx"))
    assert_golden(f"{demo_county.CARRIED_UNIT}-2021-report.txt", read_back(own.read_bytes()))
    save_pages(own.with_suffix(".pdf"), f"demo-{demo_county.CARRIED_UNIT}-report")


def named_value(path: Path, name: str) -> object:
    """The value of a workbook's cell by its defined name."""
    book = openpyxl.load_workbook(path)
    sheet, address = next(iter(book.defined_names[name].destinations))
    return book[sheet][address.replace("$", "")].value


def assert_golden(name: str, lines: list[str]) -> None:
    """The lines equal tests/data/golden/NAME; NIANBAO_UPDATE_GOLDEN=1 rewrites the file first."""
    path = GOLDEN / name
    text = "\n".join(lines) + "\n"
    if os.environ.get("NIANBAO_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with NIANBAO_UPDATE_GOLDEN=1 and review it"
    assert text.splitlines() == path.read_text(encoding="utf-8").splitlines()


def save_pages(pdf: Path, stem: str) -> None:
    """Every page of the PDF as tests/output/STEM-pageN.png, for a person to look at."""
    OUTPUT.mkdir(exist_ok=True)
    book = pypdfium2.PdfDocument(pdf)
    assert len(book) >= 1
    for number in range(len(book)):
        book[number].render(scale=1.5).to_pil().save(OUTPUT / f"{stem}-page{number + 1}.png")
    book.close()
