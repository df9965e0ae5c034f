"""The review annex of the county report (汇总情况说明): what the coordinator and the approver read before the report
is published, and what is not published with it.

一 who reported on time, late, or not at all; 二 every check of the consolidated figures (勾稽关系, the cross-year
rules S3/S4, the prose against the tables N1, what a section still owes); 三 the comparison with last year; 四 each
unit's key figures side by side; 五 how the county figures were consolidated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from schemas.form_spec import FormSpec, MeasureSpec
from tasks.accepted import AcceptedFigures
from tasks.check import cross_year
from tasks.completeness import Completeness, Timeliness, UnitCompleteness
from tasks.consolidate import CountyFigures
from tasks.history import YearFigures
from tasks.report_document import Document, Paragraph, ParagraphStyle, Section, Table
from tasks.report_facts import Finding
from tasks.report_measures import Measure, format_measure, measures
from tasks.report_tables import list_grid
from tasks.workbook_template import chinese_date

# more units than this (a prefecture's, a province's) and the annex's breakdown is a row per kind of unit
UNIT_ROWS_LIMIT = 300


@dataclass(frozen=True)
class AnnexInput:
    title: str
    year: int
    completeness: Completeness
    county: CountyFigures
    per_unit: Mapping[str, Mapping[str, Decimal]]  # unit code -> figures of its accepted return
    previous: YearFigures | None
    findings: Sequence[Finding] = ()
    designated_name: str = ""
    generated_at: str = ""
    draft: bool = False
    sum_rules: int = 0
    extra_notes: list[str] = field(default_factory=list)


def build_annex(form: FormSpec, annex: AnnexInput) -> Document:
    """The 汇总情况说明 as a Document."""
    values = measures(form, annex.county.cells, annex.previous.cells if annex.previous else None)
    return Document(
        title=annex.title, subtitle=f"（供审核使用，不随年度报告公开）　生成时间：{annex.generated_at}",
        sections=[_completeness(annex), _checks(form, annex), _comparison(annex, values),
                  _breakdown(form, annex), _scope(annex)],
        end_notes=annex.extra_notes, draft=annex.draft)


def _completeness(annex: AnnexInput) -> Section:
    c = annex.completeness
    accepted = c.count(Timeliness.ON_TIME) + c.count(Timeliness.LATE)
    summary = (f"本年度应报送单位{len(c.units)}个，已通过审核{accepted}个，其中按时报送"
               f"{c.count(Timeliness.ON_TIME)}个、逾期报送{c.count(Timeliness.LATE)}个；未通过审核"
               f"{c.count(Timeliness.REJECTED)}个，"
               f"未报送{c.count(Timeliness.MISSING)}个。报送截止日期为{chinese_date(c.deadline)}。")
    blocks: list[Paragraph | Table] = [Paragraph(text=summary, style=ParagraphStyle.FACT)]
    exceptions = c.of(Timeliness.LATE, Timeliness.REJECTED, Timeliness.MISSING)
    if len(exceptions) > UNIT_ROWS_LIMIT:
        blocks += _exceptions_by_kind(c, exceptions)
    elif exceptions:
        rows = [[str(n), u.name, u.kind, u.timeliness.chinese, _when(u.first_return_at),
                 _when(u.first_accepted_at), str(u.returns)] for n, u in enumerate(exceptions, start=1)]
        header = ["序号", "单位名称", "单位类型", "报送情况", "首次报送时间", "通过审核时间", "报送次数"]
        grid = list_grid("未按时报送的单位", header, rows, numbers_from=4)
        blocks.append(Table(grid=grid, caption="表1　逾期报送、未通过审核和未报送的单位", header_rows=1, compact=True))
    else:
        blocks.append(Paragraph(text="全部单位均已按时报送并通过审核。"))
    return Section(heading="一、报送情况", blocks=blocks)


def _exceptions_by_kind(c: Completeness, exceptions: list[UnitCompleteness]) -> list[Paragraph | Table]:
    """Counts by kind of unit: hundreds of late or missing units are followed up from a list that can be sorted
    and filtered, not read in the annex."""
    shown = (Timeliness.LATE, Timeliness.REJECTED, Timeliness.MISSING)
    counts: dict[str, dict[Timeliness, int]] = {}
    for unit in c.units:
        counts.setdefault(unit.kind, dict.fromkeys(shown, 0))
    for unit in exceptions:
        counts[unit.kind][unit.timeliness] += 1
    rows = [[str(n), kind, *(str(by[t]) for t in shown), str(sum(by.values()))]
            for n, (kind, by) in enumerate(counts.items(), start=1)]
    rows.append(["", "合计", *(str(c.count(t)) for t in shown), str(len(exceptions))])
    header = ["序号", "单位类型", *(t.chinese for t in shown), "合计"]
    grid = list_grid("未按时报送的单位", header, rows, numbers_from=2)
    return [Table(grid=grid, caption="表1　逾期报送、未通过审核和未报送的单位数", header_rows=1, compact=True),
            Paragraph(text=f"这类单位共{len(exceptions)}个，超过{UNIT_ROWS_LIMIT}个，此处按单位类型列示个数；"
                           "逐个单位的报送情况可用 nianbao status 命令或 Prefect 界面中的各单位报送情况表查看。",
                      style=ParagraphStyle.NOTE)]


def _checks(form: FormSpec, annex: AnnexInput) -> Section:
    county = annex.county
    blocks: list[Paragraph | Table] = []
    if county.issues:
        blocks.append(Paragraph(text=f"汇总数据按{annex.sum_rules}条勾稽关系和合计规则复核，{len(county.issues)}条不符"
                                     "（说明某单位数据有误，应退回该单位更正，不在汇总数上修改）："))
        blocks += [Paragraph(text=i.message, style=ParagraphStyle.NOTE) for i in county.issues]
    else:
        blocks.append(Paragraph(text=f"汇总数据按{annex.sum_rules}条勾稽关系和合计规则复核，全部相符。"))
    if annex.previous is None:
        blocks.append(Paragraph(text="没有上年度数据，未作跨年度衔接检查"
                                     "（可导入上年度已公开的年度报告，见 nianbao import-report）。"))
    else:
        issues = cross_year(county.cells, annex.previous.cells, form)
        if issues:
            blocks.append(Paragraph(text=f"与上年度数据衔接（上年数据：{annex.previous.source}）"
                                         f"{len(issues)}处不一致，请核实："))
            blocks += [Paragraph(text=i.message, style=ParagraphStyle.NOTE) for i in issues]
        else:
            blocks.append(Paragraph(text=f"与上年度数据衔接（上年结转数、现行有效行政规范性文件件数；上年数据："
                                         f"{annex.previous.source}）：全部一致。"))
    blocks += [Paragraph(text=note, style=ParagraphStyle.NOTE) for note in county.notes]
    if annex.findings:
        blocks.append(Paragraph(text=f"报告文字部分需要注意的{len(annex.findings)}处："))
        blocks += [Paragraph(text=f"{n}. {f.message}", style=ParagraphStyle.NOTE)
                   for n, f in enumerate(annex.findings, start=1)]
    else:
        blocks.append(Paragraph(text="报告文字部分所述数字与表格一致，各部分均已填写。"))
    return Section(heading="二、汇总数据校验", blocks=blocks)


def _comparison(annex: AnnexInput, values: Mapping[str, Measure]) -> Section:
    compared = [m for m in values.values() if m.spec.compare]
    if annex.previous is None:
        return Section(heading="三、与上年度对比", blocks=[Paragraph(text="没有上年度数据。")])
    rows = [[m.spec.name, m.spec.unit, m.previous_text or "—", m.text, _signed(m), m.percent_text()]
            for m in compared]
    header = ["项目", "单位", f"{annex.year - 1}年", f"{annex.year}年", "增减", "增减幅度"]
    grid = list_grid("与上年度对比", header, rows, numbers_from=2)
    return Section(heading="三、与上年度对比", blocks=[
        Paragraph(text=f"上年数据：{annex.previous.source}。", style=ParagraphStyle.NOTE),
        Table(grid=grid, caption="表2　主要数据与上年度对比", header_rows=1)])


def _breakdown(form: FormSpec, annex: AnnexInput) -> Section:
    assert form.report is not None
    columns = [m for m in form.report.measures if m.breakdown]
    units = annex.completeness.units
    if len(units) > UNIT_ROWS_LIMIT:
        return _breakdown_by_kind(form, annex, columns)
    rows, totals = [], [Decimal(0)] * len(columns)
    for n, unit in enumerate(units, start=1):
        figures = annex.per_unit.get(unit.code)
        cells = ["—"] * len(columns)
        if figures is not None:
            for i, spec in enumerate(columns):
                value = sum((figures.get(k, Decimal(0)) for k in spec.cells), Decimal(0))
                totals[i] += value
                cells[i] = format_measure(form, spec, value)
        rows.append([str(n), unit.name, unit.kind, unit.timeliness.chinese, *cells])
    rows.append(["", "合计", "", "",
                 *(format_measure(form, spec, t) for spec, t in zip(columns, totals, strict=True))])
    grid = list_grid("分单位明细", ["序号", "单位名称", "单位类型", "报送情况", *(m.name for m in columns)], rows,
                     numbers_from=4)
    return Section(heading="四、分单位明细", blocks=[
        Table(grid=grid, caption="表3　各单位主要数据", header_rows=1, compact=True),
        Paragraph(text="各单位全部数据见汇总表（Excel）的“分单位明细”工作表；“—”为尚无审核通过的数据。",
                  style=ParagraphStyle.NOTE)])


def _breakdown_by_kind(form: FormSpec, annex: AnnexInput, columns: list[MeasureSpec]) -> Section:
    """A row per kind of unit (乡镇、县直部门 ...): a prefecture's or a province's thousands of units are read in the
    summary workbook's breakdown sheet, not in a document of hundreds of pages."""
    by_kind: dict[str, list[str]] = {}
    for unit in annex.completeness.units:
        by_kind.setdefault(unit.kind, []).append(unit.code)
    rows, totals = [], [Decimal(0)] * len(columns)
    for n, (kind, codes) in enumerate(by_kind.items(), start=1):
        sums = _sums(annex.per_unit, [code for code in codes if code in annex.per_unit],
                     {key for spec in columns for key in spec.cells})
        values = [sum((sums[k] for k in spec.cells), Decimal(0)) for spec in columns]
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        accepted = sum(1 for code in codes if code in annex.per_unit)
        rows.append([str(n), kind, str(len(codes)), str(accepted),
                     *(format_measure(form, spec, v) for spec, v in zip(columns, values, strict=True))])
    units = annex.completeness.units
    rows.append(["", "合计", str(len(units)), str(sum(1 for u in units if u.code in annex.per_unit)),
                 *(format_measure(form, spec, t) for spec, t in zip(columns, totals, strict=True))])
    grid = list_grid("分单位类型汇总", ["序号", "单位类型", "单位数", "已通过审核", *(m.name for m in columns)], rows,
                     numbers_from=2)
    return Section(heading="四、分单位明细", blocks=[
        Table(grid=grid, caption="表3　各类单位主要数据", header_rows=1, compact=True),
        Paragraph(text=f"报送单位共{len(units)}个，超过{UNIT_ROWS_LIMIT}个，此处按单位类型汇总（已通过审核单位的数据之和）；"
                       "各单位的全部数据见汇总表（Excel）的“分单位明细”工作表。", style=ParagraphStyle.NOTE)])


def _sums(per_unit: Mapping[str, Mapping[str, Decimal]], codes: list[str], keys: set[str]) -> dict[str, Decimal]:
    """The exact sum of each key over the units: a column at a time from the stored texts where they are at hand."""
    if isinstance(per_unit, AcceptedFigures):
        return per_unit.sums_of(sorted(keys), codes)
    return {key: sum((per_unit[code].get(key, Decimal(0)) for code in codes), Decimal(0)) for key in keys}


def _scope(annex: AnnexInput) -> Section:
    text = "表二至表四的各项数据为各单位审核通过数据之和。"
    if annex.designated_name:
        text = (f"行政规范性文件件数和行政事业性收费金额取自{annex.designated_name}报送的全县数据，"
                "其余各项为各单位审核通过数据之和；信息处理费为各单位之和。")
    return Section(heading="五、汇总口径", blocks=[Paragraph(text=text)])


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "—"


def _signed(measure: Measure) -> str:
    change = measure.change
    if change is None:
        return "—"
    text = format(change.normalize(), "f")
    return f"+{text}" if change > 0 else text
