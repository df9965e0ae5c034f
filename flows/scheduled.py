"""The scheduled runs: each works on every campaign still open, so a run needs no parameters.

A schedule cannot know the year; the database does. Each flow here lists the open campaigns and runs the
per-year flow (a subflow, so its own run shows in the UI) for each, then refreshes that campaign's progress.
"""

from __future__ import annotations

import importlib
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlmodel import Session

from flows.common import engine, form_for
from flows.compile_report import ReportSummary, compile_report
from flows.ingest_returns import IngestSummary, ingest_returns
from flows.progress import publish_progress
from flows.run_names import run_name
from tasks.open_campaigns import open_campaign_years

CHASE_MODULE = "flows.chase_late_units"  # the chase flow "chase-late-units", chase_late_units(year=...)


@task(name="list-open-campaigns", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def list_open_campaigns() -> list[int]:
    with Session(engine()) as session:
        return open_campaign_years(session=session, form=form_for())


@flow(name="ingest-open-campaigns", flow_run_name=run_name("定时接收报送"))
def ingest_open_campaigns() -> list[IngestSummary]:
    """Ingest the inbox of every open campaign."""
    summaries = []
    for year in list_open_campaigns():
        summaries.append(ingest_returns(year))  # it refreshes the campaign's progress itself
    return summaries


@flow(name="chase-open-campaigns", flow_run_name=run_name("定时催报"))
def chase_open_campaigns() -> list[Any]:
    """Chase the late units of every open campaign (once the chase flow is installed)."""
    try:
        chase = importlib.import_module(CHASE_MODULE).chase_late_units
    except ModuleNotFoundError:
        get_run_logger().warning("chase: %s is not installed yet, nothing chased", CHASE_MODULE)
        return []
    results = []
    for year in list_open_campaigns():
        results.append(chase(year=year))
        publish_progress(year)
    return results


@flow(name="draft-open-campaigns", flow_run_name=run_name("定时汇总草稿"))
def draft_open_campaigns() -> list[ReportSummary]:
    """Compile a draft county report of every open campaign (it refreshes the campaign's progress itself)."""
    return [compile_report(year, kind="draft") for year in list_open_campaigns()]
