"""Build an annual report as a Document: the county's, or one unit's own, in the official six sections.

Sections 二, 三, 四 are the statutory tables, each opened by sentences made from the same figures (and how they
changed from last year); sections 一, 五, 六 are the prose, with what the prose owes filled in: section 六 states the
信息处理费 from the figures, a government's section 一 is reminded of 第五十条's 考核、评议、责任追究, an unwritten
section is a clearly marked placeholder. Every figure the prose states is checked against the tables (N1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from schemas.form_spec import ChartSpec, FormSpec, ReportSectionSpec, ReportSpec
from tasks.narrative import Narrative
from tasks.report_document import Block, Document, Figure, Paragraph, ParagraphStyle, Section, Table
from tasks.report_facts import (
    Finding,
    check_narrative,
    comparison,
    fact,
    fill_placeholders,
    missing_prompt,
    section_measures,
)
from tasks.report_measures import Measure, measures
from tasks.report_tables import TableGrid, table_grids

log = logging.getLogger(__name__)
_NOTHING = {"无", "无。", "暂无", "暂无。"}  # a section 六 of just this says no more than its fee sentence


@dataclass(frozen=True)
class ReportInput:
    """What one report is made of."""

    title: str
    year: int
    cells: Mapping[str, Decimal]
    narrative: Narrative
    compiled_by: str = ""  # the preface's "由…汇总编制"; empty for a unit's own report
    subtitle: str = ""
    previous: Mapping[str, Decimal] | None = None  # last year's figures of the same body
    history: Sequence[tuple[int, Mapping[str, Decimal]]] = ()  # earlier years, oldest first, for the trend
    unit_kind: str | None = None  # None: the county's report (a government's: every prompt applies)
    charts: bool = True
    draft: bool = False
    end_notes: list[str] = field(default_factory=list)


def build_report(form: FormSpec, report: ReportInput) -> tuple[Document, list[Finding]]:
    """The report as a Document, and what the coordinator should look at before publishing it."""
    spec = _spec(form)
    values = measures(form, report.cells, report.previous)
    facts = {f.placeholder: fact(f.id, values) for f in spec.facts}
    grids = dict(zip((s.id for s in form.table_sheets), table_grids(form, report.cells), strict=True))
    findings: list[Finding] = []
    figures = _FigureNumbers()
    sections = []
    for section in spec.sections:
        if section.sheet is not None:
            blocks: list[Block] = _table_section(form, section, values, grids[section.sheet])
        else:
            blocks = _prose_section(spec, section, report, values, facts, findings)
        if report.charts:
            blocks += _charts(spec, section, values, report, figures, findings)
        sections.append(Section(heading=section.heading, blocks=blocks))
    prose = [b for s in sections for b in s.blocks if isinstance(b, Paragraph)]
    findings += check_narrative(prose, values, spec.narrative_checks)
    preface = spec.preface.format(basis=form.basis, year=report.year,
                                  compiled_by=f"，由{report.compiled_by}在各乡镇（街道）、各部门年度报告基础上汇总"
                                  if report.compiled_by else "") if spec.preface else ""
    document = Document(title=report.title, subtitle=report.subtitle, preface=[preface] if preface else [],
                        sections=sections, end_notes=report.end_notes, draft=report.draft)
    return document, findings


def _spec(form: FormSpec) -> ReportSpec:
    if form.report is None:
        raise ValueError(f"the form {form.form_id} {form.version} defines no report")
    return form.report


def _table_section(form: FormSpec, section: ReportSectionSpec, values: Mapping[str, Measure],
                   grid: TableGrid) -> list[Block]:
    assert section.sheet is not None
    blocks: list[Block] = []
    if section.facts:
        blocks.append(Paragraph(text=fact(section.facts, values), style=ParagraphStyle.FACT))
    compared = comparison(section_measures(form, values, section.sheet))
    if compared:
        blocks.append(Paragraph(text=compared, style=ParagraphStyle.FACT))
    wide = max((sum(c.colspan for c in row) for row in grid.rows), default=0) > 6
    heading_rows = next((i for i, row in enumerate(grid.rows) if not all(c.header for c in row)), 0)
    # a table that runs over a page (表三) repeats its heading rows there
    blocks.append(Table(grid=grid, compact=wide, header_rows=heading_rows if len(grid.rows) > 20 else 0))
    return blocks


def _prose_section(spec: ReportSpec, section: ReportSectionSpec, report: ReportInput,
                   values: Mapping[str, Measure], facts: Mapping[str, str], findings: list[Finding]) -> list[Block]:
    paragraphs, unknown = fill_placeholders(report.narrative.get(section.number, []), facts)
    findings += unknown
    blocks: list[Block] = []
    if section.facts:
        said = section.facts_unless is not None and any(section.facts_unless in p.text for p in paragraphs)
        placed = any(fact(section.facts, values) in p.text for p in paragraphs)
        if not said and not placed:
            blocks.append(Paragraph(text=fact(section.facts, values), style=ParagraphStyle.FACT))
            paragraphs = [p for p in paragraphs if p.text not in _NOTHING]
    blocks += paragraphs
    if not paragraphs and not blocks:  # section 六 with no prose still says its fee sentence, and is complete
        blocks.append(_placeholder(f"【待填写】{section.hint}"))
        findings.append(Finding("placeholder", f"“{section.heading}”尚未填写。"))
    for prompt in spec.prompts:
        applies = report.unit_kind is None or report.unit_kind in prompt.unit_kinds
        if prompt.section == section.number and applies and missing_prompt(prompt, paragraphs):
            blocks.append(_placeholder(f"【待补充】{prompt.text}"))
            findings.append(Finding("prompt", f"“{section.heading}”：{prompt.text}"))
    return blocks


def _placeholder(text: str) -> Paragraph:
    return Paragraph(text=text, style=ParagraphStyle.PLACEHOLDER)


class _FigureNumbers:
    """图1, 图2, ... across the whole report."""

    def __init__(self) -> None:
        self.count = 0

    def next(self, caption: str) -> str:
        self.count += 1
        return f"图{self.count}　{caption}"


def _charts(spec: ReportSpec, section: ReportSectionSpec, values: Mapping[str, Measure], report: ReportInput,
            numbers: _FigureNumbers, findings: list[Finding]) -> list[Block]:
    wanted = [c for c in spec.charts if c.section == section.number]
    if not wanted:
        return []
    try:
        from tasks import report_charts  # matplotlib: imported only when a report draws
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        findings.append(Finding("charts", f"未能生成图表：{exc}"))
        return []
    blocks: list[Block] = []
    for chart in wanted:
        try:
            png = _chart_png(chart, spec, values, report)
        except report_charts.ChartFontMissing as exc:
            log.warning("charts left out: %s", exc)
            findings.append(Finding("charts", "本机缺少中文字体，报告未插入图表"
                                              "（安装 fonts-wqy-microhei 后重新生成）。"))
            return blocks
        if png is not None:
            blocks.append(Figure(png=png, caption=numbers.next(chart.caption)))
    return blocks


def _chart_png(chart: ChartSpec, spec: ReportSpec, values: Mapping[str, Measure],
               report: ReportInput) -> bytes | None:
    """One chart's image; None when it would show nothing (no applications, or a single year)."""
    from tasks import report_charts

    if chart.kind == "bars":
        group = [values[m.id] for m in spec.group(chart.group or "")]
        if not any(m.value for m in group):
            return None
        data = [(m.spec.name, int(m.value)) for m in group]
        draw = report_charts.outcome_chart if chart.group == "outcome" else report_charts.applicant_chart
        return draw(data, "")  # the caption under the figure names it
    years = [year for year, _ in report.history] + [report.year]
    if len(years) < 2:
        return None
    series = []
    for measure_id in chart.measures:
        measure = spec.measure_by_id[measure_id]
        row = [int(sum((cells.get(k, Decimal(0)) for k in measure.cells), Decimal(0)))
               if all(k in cells for k in measure.cells) else None for _, cells in report.history]
        series.append((measure.name, [*row, int(values[measure_id].value)]))
    return report_charts.trend_chart(years, series, "")
