"""Compile the county report: consolidate the accepted figures, re-check them, and write the report ready to publish
(HTML for the portal, Word, PDF), its review annex (汇总情况说明, the same three), the summary workbook and the figures.
"""

from __future__ import annotations

import gc
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session, select

from flows.common import as_is, docx_template_bytes, engine, form_for, settled_heap
from flows.progress import publish_progress
from flows.run_names import run_name
from schemas.settings import get_settings
from schemas.tables import EventLog, Report, Unit, UnitKind
from tasks.accepted import AcceptedFigures, load_accepted
from tasks.campaigns import get_campaign
from tasks.completeness import Completeness, load_completeness
from tasks.consolidate import CountyFigures, consolidate, figures_json
from tasks.history import YearFigures, county_history
from tasks.narrative import Narrative
from tasks.narrative_sources import find_narrative_file, read_narrative_file
from tasks.publication import PUBLICATION_FORMATS, write_publication
from tasks.report_annex import AnnexInput, build_annex
from tasks.report_build import ReportInput, build_report
from tasks.report_document import Document
from tasks.report_workbook import UnitRow, summary_workbook
from tasks.status import STATUS_CHINESE, campaign_status

CHINA = ZoneInfo("Asia/Shanghai")


class ReportSummary(BaseModel):
    year: int
    kind: str
    html: str
    xlsx: str
    json_path: str
    files: dict[str, str]
    units_expected: int
    units_accepted: int
    errors: int
    notes: list[str]
    figures: dict[str, object]


@dataclass(frozen=True)
class ReportInputs:
    """A plain dataclass: validating 200,000 figures as a pydantic model would cost a tenth of a second."""

    campaign_id: int
    figures: AcceptedFigures
    units: list[tuple[str, str, str, str]]  # code, name, kind (Chinese), status (Chinese)
    designated: str | None
    designated_name: str
    completeness: Completeness
    history: list[YearFigures] = field(default_factory=list)


@dataclass(frozen=True)
class ReportDocuments:
    report: Document
    annex: Document
    notes: list[str]


@task(name="load-accepted", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_inputs(year: int) -> ReportInputs:
    form = form_for()
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form, year=year)
        assert campaign.id is not None
        figures = load_accepted(session=session, form=form, campaign_id=campaign.id)
        status = campaign_status(session=session, campaign=campaign)
        designated = session.exec(select(Unit).where(Unit.code == campaign.designated_unit_code)).first()
        return ReportInputs(
            campaign_id=campaign.id,
            figures=figures,
            units=[(s.unit, s.name, UnitKind(s.kind).chinese, STATUS_CHINESE[s.status]) for s in status],
            designated=campaign.designated_unit_code, designated_name=designated.name if designated else "",
            completeness=load_completeness(session=session, campaign=campaign),
            history=county_history(session=session, form=form, before=year),
        )


@task(name="consolidate", cache_policy=NO_CACHE)
def consolidate_task(year: int, inputs: ReportInputs) -> CountyFigures:
    return consolidate(form_for(), year, inputs.figures, len(inputs.units), inputs.designated)


@task(name="read-narrative", cache_policy=NO_CACHE)
def read_narrative(year: int, text_file: str | None) -> tuple[Narrative, str]:
    """The coordinator's prose for sections 一, 五, 六, and which file it came from ('' when there is none)."""
    path = Path(text_file) if text_file else find_narrative_file(get_settings().campaign_dir(year))
    if path is None:
        return {}, ""
    return read_narrative_file(path, form_for()), str(path)


@task(name="build-report", cache_policy=NO_CACHE)
def build_documents(year: int, inputs: ReportInputs, county: CountyFigures, narrative: Narrative,
                    narrative_source: str, county_name: str, kind: str, now: datetime) -> ReportDocuments:
    """The report and its review annex as Documents, and what to look at before publishing."""
    form = form_for()
    previous = inputs.history[-1] if inputs.history and inputs.history[-1].year == year - 1 else None
    office = inputs.designated_name or f"{county_name}人民政府办公室"
    report, findings = build_report(form, ReportInput(
        title=f"{county_name}人民政府{year}年政府信息公开工作年度报告", year=year, cells=county.cells,
        narrative=narrative, compiled_by=office, previous=previous.cells if previous else None,
        history=[(h.year, h.cells) for h in inputs.history], draft=kind != "final"))
    notes = [f.message for f in findings]
    if not narrative_source:
        notes.insert(0, f"未提供文字部分：可将总体情况、存在的主要问题及改进情况、其他需要报告的事项写入 "
                        f"{get_settings().campaign_dir(year) / 'narrative.md'}（或 .txt/.xlsx）后重新生成。")
    annex = build_annex(form, AnnexInput(
        title=f"{county_name}{year}年政府信息公开工作年度报告汇总情况说明", year=year,
        completeness=inputs.completeness, county=county, per_unit=inputs.figures, previous=previous,
        findings=findings, designated_name=inputs.designated_name, generated_at=f"{now:%Y-%m-%d %H:%M}",
        draft=kind != "final", sum_rules=len(list(form.sum_rules())),
        extra_notes=[f"文字部分来源：{narrative_source}"] if narrative_source else []))
    return ReportDocuments(report, annex, notes)


@task(name="render-report", cache_policy=NO_CACHE)
def render_outputs(year: int, inputs: ReportInputs, county: CountyFigures, documents: ReportDocuments, kind: str,
                   now: datetime, formats: tuple[str, ...]) -> ReportSummary:
    """Write the report and the annex in every format, the summary workbook and the JSON figures."""
    form = form_for()
    folder = get_settings().reports_dir(year)
    folder.mkdir(parents=True, exist_ok=True)
    stem = _free_stem(folder, f"{year}年政府信息公开工作年度报告-{kind}-{now:%Y%m%d-%H%M%S}")
    notes = list(documents.notes)
    template = docx_template_bytes()
    files = write_publication(documents.report, folder / stem, formats, notes, template)
    annex = write_publication(documents.annex, folder / stem.replace("年度报告-", "年度报告汇总情况说明-", 1),
                              formats, notes, template)
    files |= {f"annex-{fmt}": path for fmt, path in annex.items()}
    units = [UnitRow(code, name, kind_cn, status) for code, name, kind_cn, status in inputs.units]
    xlsx_path = folder / f"{stem}.xlsx"
    heading = f"{documents.report.title}（汇总：{county.units_accepted}/{county.units_expected}个单位）"
    xlsx_path.write_bytes(summary_workbook(form, heading, county.cells, units, inputs.figures))
    figures = figures_json(form, county)
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    files |= {"xlsx": str(xlsx_path), "json": str(json_path)}
    return ReportSummary(year=year, kind=kind, html=files["html"], xlsx=str(xlsx_path), json_path=str(json_path),
                         files=files, units_expected=county.units_expected, units_accepted=county.units_accepted,
                         errors=len(county.issues), notes=notes, figures=figures)


def _free_stem(folder: Path, stem: str) -> str:
    """The stem, or stem-2, stem-3 ...: two reports compiled in the same second must not share (and overwrite)
    each other's files, since each Report row points at its own."""
    taken = {p.name.split(".", 1)[0] for p in folder.iterdir()}
    annex = stem.replace("年度报告-", "年度报告汇总情况说明-", 1)
    candidate, n = stem, 1
    while candidate in taken or annex + candidate[len(stem):] in taken:
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


@task(name="record-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def record_report(campaign_id: int, summary: ReportSummary) -> None:
    digest = hashlib.sha256(json.dumps(summary.figures, sort_keys=True).encode()).hexdigest()
    with Session(engine()) as session:
        session.add(Report(campaign_id=campaign_id, kind=summary.kind, figures_sha256=digest,
                           units_expected=summary.units_expected, units_accepted=summary.units_accepted,
                           html_path=summary.html, xlsx_path=summary.xlsx, json_path=summary.json_path,
                           error_count=summary.errors, files=summary.files, notes=summary.notes))
        session.add(EventLog(campaign_id=campaign_id, kind="report.compiled",
                             detail={"kind": summary.kind, "html": summary.html, "figures_sha256": digest,
                                     "files": sorted(summary.files), "notes": len(summary.notes)}))
        session.commit()


@flow(name="compile-report", flow_run_name=run_name("汇总报告"))
def compile_report(year: int, text_file: str | None = None, kind: str = "draft", county_name: str | None = None,
                   formats: list[str] | None = None) -> ReportSummary:
    """Consolidate the latest accepted return of every unit and write the county report and its annex.

    formats: which of the publication formats to write besides HTML (default all: docx, pdf).
    """
    # as_is(): large inputs are passed as they are, not walked by Prefect in search of futures
    wanted = tuple(PUBLICATION_FORMATS if formats is None else [f for f in PUBLICATION_FORMATS if f in formats])
    now = datetime.now(CHINA)
    # a province's accepted figures are 10,000 rows: the collector's full passes would walk them, and the heap
    # they join, again and again (~0.4 s of a 10,000-unit report)
    with settled_heap():
        inputs = load_inputs(year)
        gc.freeze()  # the figures, once loaded, too (unfrozen with the rest at the end)
        county = consolidate_task(year, as_is(inputs))
        narrative, source = read_narrative(year, text_file)
        documents = build_documents(year, as_is(inputs), as_is(county), as_is(narrative), source,
                                    county_name or get_settings().county_name, kind, now)
        summary = render_outputs(year, as_is(inputs), as_is(county), as_is(documents), kind, now, wanted)
        record_report(inputs.campaign_id, as_is(summary))
        # the campaign-YEAR-report artifact (key figures, checks, links to the files) and the report's event
        publish_progress(year, collection=False)
    get_run_logger().info("report %s: %s (%d notes)", year, summary.html, len(summary.notes))
    return summary
