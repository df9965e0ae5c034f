"""Compile the county report: consolidate accepted figures, re-check them, render HTML, workbook and JSON."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session, select

from flows.common import as_is, engine, form_for
from flows.progress import publish_progress
from flows.run_names import run_name
from schemas.settings import get_settings
from schemas.tables import EventLog, Report, Unit, UnitKind
from tasks.campaigns import accepted_values, get_campaign
from tasks.consolidate import CountyFigures, consolidate, figures_json
from tasks.report_html import ReportContext, build_sections, parse_narrative, render_report
from tasks.report_tables import table_grids
from tasks.report_workbook import UnitRow, summary_workbook
from tasks.status import STATUS_CHINESE, campaign_status

CHINA = ZoneInfo("Asia/Shanghai")


class ReportSummary(BaseModel):
    year: int
    kind: str
    html: str
    xlsx: str
    json_path: str
    units_expected: int
    units_accepted: int
    errors: int
    figures: dict[str, object]


@dataclass(frozen=True)
class ReportInputs:
    """A plain dataclass: validating 200,000 figures as a pydantic model would cost a tenth of a second."""

    campaign_id: int
    figures: dict[str, dict[str, Decimal]]
    units: list[tuple[str, str, str, str]]  # code, name, kind (Chinese), status (Chinese)
    designated: str | None
    designated_name: str


@task(name="load-accepted", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_inputs(year: int) -> ReportInputs:
    form = form_for()
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form, year=year)
        assert campaign.id is not None
        figures = accepted_values(session=session, campaign_id=campaign.id)
        status = campaign_status(session=session, campaign=campaign)
        designated = session.exec(select(Unit).where(Unit.code == campaign.designated_unit_code)).first()
        return ReportInputs(
            campaign_id=campaign.id,
            figures=figures,
            units=[(s.unit, s.name, UnitKind(s.kind).chinese, STATUS_CHINESE[s.status]) for s in status],
            designated=campaign.designated_unit_code, designated_name=designated.name if designated else "",
        )


@task(name="consolidate", cache_policy=NO_CACHE)
def consolidate_task(year: int, inputs: ReportInputs) -> CountyFigures:
    return consolidate(form_for(), year, inputs.figures, len(inputs.units), inputs.designated)


@task(name="render-report", cache_policy=NO_CACHE)
def render_outputs(year: int, inputs: ReportInputs, county: CountyFigures, text_file: str | None,
                   county_name: str, kind: str) -> ReportSummary:
    """Write the HTML report, the summary workbook and the JSON figures; return where they are."""
    form = form_for()
    folder = get_settings().reports_dir(year)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(CHINA)
    narrative = parse_narrative(Path(text_file).read_text(encoding="utf-8")) if text_file else {}
    title = f"{county_name}人民政府{year}年政府信息公开工作年度报告"
    accepted = set(inputs.figures)
    missing = [f"{name}（{code}）" for code, name, _, _ in inputs.units if code not in accepted]
    context = ReportContext(
        title=title,
        scope=(f"统计期间：{year}年1月1日至{year}年12月31日｜"
               f"汇总范围：本级政府及所属{len(inputs.units) - 1}个乡镇（街道）和部门"),
        sections=build_sections(table_grids(form, county.cells), narrative),
        units_expected=county.units_expected, units_accepted=county.units_accepted, missing=missing,
        designated=inputs.designated_name, issues=[i.public() for i in county.issues], notes=county.notes,
        generated_at=now.strftime("%Y-%m-%d %H:%M"),
    )
    stem = f"{year}年政府信息公开工作年度报告-{kind}-{now:%Y%m%d-%H%M%S}"
    html_path = folder / f"{stem}.html"
    html_path.write_text(render_report(context), encoding="utf-8")
    units = [UnitRow(code, name, kind_cn, status, inputs.figures.get(code))
             for code, name, kind_cn, status in inputs.units]
    xlsx_path = folder / f"{stem}.xlsx"
    heading = f"{title}（汇总：{county.units_accepted}/{county.units_expected}个单位）"
    xlsx_path.write_bytes(summary_workbook(form, heading, county.cells, units))
    figures = figures_json(form, county)
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    return ReportSummary(year=year, kind=kind, html=str(html_path), xlsx=str(xlsx_path), json_path=str(json_path),
                         units_expected=county.units_expected, units_accepted=county.units_accepted,
                         errors=len(county.issues), figures=figures)


@task(name="record-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def record_report(campaign_id: int, summary: ReportSummary) -> None:
    digest = hashlib.sha256(json.dumps(summary.figures, sort_keys=True).encode()).hexdigest()
    with Session(engine()) as session:
        session.add(Report(campaign_id=campaign_id, kind=summary.kind, figures_sha256=digest,
                           units_expected=summary.units_expected, units_accepted=summary.units_accepted,
                           html_path=summary.html, xlsx_path=summary.xlsx, json_path=summary.json_path,
                           error_count=summary.errors))
        session.add(EventLog(campaign_id=campaign_id, kind="report.compiled",
                             detail={"kind": summary.kind, "html": summary.html, "figures_sha256": digest}))
        session.commit()


@flow(name="compile-report", flow_run_name=run_name("汇总报告"))
def compile_report(year: int, text_file: str | None = None, kind: str = "draft",
                   county_name: str | None = None) -> ReportSummary:
    """Consolidate the latest accepted return of every unit and render the county report."""
    # as_is(): large inputs are passed as they are, not walked by Prefect in search of futures
    inputs = load_inputs(year)
    county = consolidate_task(year, as_is(inputs))
    summary = render_outputs(year, as_is(inputs), as_is(county), text_file,
                             county_name or get_settings().county_name, kind)
    record_report(inputs.campaign_id, as_is(summary))
    publish_progress(year)  # the campaign-YEAR-report artifact: key figures, checks, links to the files
    get_run_logger().info("report %s: %s", year, summary.html)
    return summary

