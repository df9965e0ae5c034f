"""The county report in the official six-section format, rendered to HTML from a view model."""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel

from tasks.report_tables import TableGrid

TEMPLATES = Path(__file__).parent / "templates"

# Section 一, 五, 六 are the coordinator's prose; 二, 三, 四 are the tables. Markers in the coordinator's text file:
NARRATIVE_MARKERS = {"一": "[总体情况]", "五": "[存在的主要问题及改进情况]", "六": "[其他需要报告的事项]"}
HEADINGS = {
    "一": "一、总体情况",
    "二": "二、主动公开政府信息情况",
    "三": "三、收到和处理政府信息公开申请情况",
    "四": "四、政府信息公开行政复议、行政诉讼情况",
    "五": "五、存在的主要问题及改进情况",
    "六": "六、其他需要报告的事项",
}
HINTS = {
    "一": "本年度贯彻落实《政府信息公开条例》的总体情况，含主动公开、依申请公开、政府信息管理、平台建设、"
          "监督保障（含工作考核、社会评议和责任追究结果情况）。",
    "五": "存在的主要问题及改进措施，以及上年度报告所列问题的整改情况。",
    "六": "收取信息处理费情况（未收取的写明“未收取信息处理费”），落实上级政务公开工作要点情况等。",
}
_NUMERAL = "[一二三四五六七八九十]+"
_SUBHEADING = re.compile(rf"^(（{_NUMERAL}）|\({_NUMERAL}\)|{_NUMERAL}、).{{0,40}}$")


class Paragraph(BaseModel):
    text: str
    heading: bool = False


class Section(BaseModel):
    heading: str
    table: bool = False
    intro: str = ""
    tables: list[TableGrid] = []
    paragraphs: list[Paragraph] = []
    hint: str = ""


class ReportContext(BaseModel):
    title: str
    scope: str
    sections: list[Section]
    units_expected: int
    units_accepted: int
    missing: list[str]
    designated: str
    issues: list[dict[str, str | None]]
    notes: list[str]
    generated_at: str


def parse_narrative(text: str) -> dict[str, list[Paragraph]]:
    """Split the coordinator's text file into sections 一, 五, 六 by their bracketed markers."""
    by_marker = {marker: number for number, marker in NARRATIVE_MARKERS.items()}
    sections: dict[str, list[Paragraph]] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in by_marker:
            current = by_marker[stripped]
            sections[current] = []
        elif stripped and current is not None:
            is_heading = bool(_SUBHEADING.match(stripped)) and not stripped.endswith("。")
            sections[current].append(Paragraph(text=stripped, heading=is_heading))
    return sections


def build_sections(grids: list[TableGrid], narrative: dict[str, list[Paragraph]]) -> list[Section]:
    """The six sections in order: prose where the coordinator wrote it, a marked placeholder where not."""
    tables = dict(zip(["二", "三", "四"], grids, strict=True))
    sections = []
    for number, heading in HEADINGS.items():
        if number in tables:
            sections.append(Section(heading=heading, table=True, tables=[tables[number]]))
        else:
            sections.append(Section(heading=heading, paragraphs=narrative.get(number, []), hint=HINTS[number]))
    return sections


def render_report(context: ReportContext) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context.model_dump())
