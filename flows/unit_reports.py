"""Write every unit's own annual report from its accepted return (or the reports of the units named).

The files go to the campaign's outbox (outbox/unit-reports/CODE/SUBMISSION/); a table artifact lists each unit's files
and what its prose gets wrong, so the coordinator can tell a unit before it publishes, and the units still without an
accepted return, who have no report yet.

The batches run one after the other in the flow's process, or, with NIANBAO_DASK_ADDRESS set, on a Dask cluster
(flows/dask_runner.py): a province's thousands of PDFs spread over the cores of several machines.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session

from flows.common import as_is, batches, docx_template_bytes, engine, form_for
from flows.dask_runner import dask_task_runner
from flows.run_names import run_name
from schemas.settings import get_settings
from schemas.tables import EventLog
from tasks.campaigns import get_campaign
from tasks.progress import artifact_key
from tasks.publication import PUBLICATION_FORMATS
from tasks.unit_reports import (
    UnitReportSource,
    campaign_units,
    load_unit_sources,
    without_report,
    write_unit_report,
)

BATCH = 25  # unit reports per task: a PDF takes about half a second
DASK_BATCH = 2  # on a cluster, small batches spread over every worker (a task costs ~20 ms, a unit ~1 s)


class UnitReport(BaseModel):
    code: str
    name: str
    submission_id: int
    files: dict[str, str]
    notes: list[str]


class UnitReportsSummary(BaseModel):
    year: int
    reports: list[UnitReport]
    missing: list[str]  # units named (default: every unit of the campaign) that have no accepted return


@dataclass(frozen=True)
class UnitSources:
    sources: list[UnitReportSource]
    missing: list[str]
    names: dict[str, str]  # every unit of the campaign: code -> name


@task(name="load-unit-returns", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_sources(year: int, units: list[str] | None) -> UnitSources:
    """The accepted returns to make reports of, and the units (named, or all the campaign's) that have none."""
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form_for(), year=year)
        sources = load_unit_sources(session=session, form=form_for(), campaign=campaign, codes=units)
        names = campaign_units(session=session, campaign=campaign)
    return UnitSources(sources, without_report(names if units is None else units, sources), names)


@task(name="write-unit-reports", cache_policy=NO_CACHE)
def write_batch(year: int, sources: list[UnitReportSource], formats: tuple[str, ...]) -> list[UnitReport]:
    """Write the reports of a batch of units and record each in the audit log."""
    folder, template = get_settings().unit_reports_dir(year), docx_template_bytes()
    reports = []
    for source in sources:
        files, notes = write_unit_report(form_for(), year, source, folder, formats, template)
        reports.append(UnitReport(code=source.code, name=source.name, submission_id=source.submission_id,
                                  files=files, notes=notes))
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form_for(), year=year)
        for report in reports:
            session.add(EventLog(campaign_id=campaign.id, unit_code=report.code, kind="unit_report.written",
                                 detail={"submission_id": report.submission_id, "files": sorted(report.files),
                                         "notes": len(report.notes)}))
        session.commit()
    return reports


def write_all(year: int, sources: list[UnitReportSource], formats: tuple[str, ...]) -> list[UnitReport]:
    """Every batch written: here, one after the other, or at once on the Dask cluster of NIANBAO_DASK_ADDRESS."""
    settings = get_settings()
    if not settings.dask_address:
        return [report for batch in batches(sources, BATCH) for report in write_batch(year, as_is(batch), formats)]
    with dask_task_runner(settings.dask_address, settings.dask_workers) as runner:
        futures = [runner.submit(write_batch, {"year": year, "sources": batch, "formats": formats})
                   for batch in batches(sources, DASK_BATCH)]
        return [report for future in futures for report in future.result()]


@flow(name="unit-reports", flow_run_name=run_name("单位年度报告"))
def unit_reports(year: int, units: list[str] | None = None, formats: list[str] | None = None) -> UnitReportsSummary:
    """Write the annual report of every unit with an accepted return (or of the units named)."""
    wanted = tuple(PUBLICATION_FORMATS if formats is None else [f for f in PUBLICATION_FORMATS if f in formats])
    loaded = load_sources(year, units)
    reports = write_all(year, loaded.sources, wanted)
    rows = [{"单位代码": r.code, "单位名称": r.name, "文件": "、".join(sorted(r.files)),
             "需注意": "；".join(r.notes) or "无"} for r in reports]
    rows += [{"单位代码": code, "单位名称": loaded.names.get(code, ""), "文件": "",
              "需注意": "尚无审核通过的报送，未生成年度报告" if code in loaded.names
              else "不是本年度的填报单位，未生成年度报告"} for code in loaded.missing]
    create_table_artifact(rows, key=artifact_key(year, "unit-reports"),
                          description=f"{year}年度各单位年度报告（{len(reports)}份；"
                                      f"{len(loaded.missing)}个单位尚无审核通过的报送）")
    get_run_logger().info("unit reports %s: %d written, %d without an accepted return", year, len(reports),
                          len(loaded.missing))
    return UnitReportsSummary(year=year, reports=reports, missing=loaded.missing)
