"""The scheduled runs: each works on every campaign still open, so a run needs no parameters.

A schedule cannot know the year; the database does. Each flow here lists the open campaigns and runs the
per-year flow (a subflow, so its own run shows in the UI) for each. The ingest and the chase refresh the campaign's
progress artifacts (the ingest on every run, files or none); the draft report writes the report's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from sqlmodel import Session

from flows.chase_late_units import ChaseSummary, chase_late_units
from flows.common import engine, form_for
from flows.compile_report import ReportSummary, compile_report
from flows.ingest_returns import IngestSummary, ingest_returns
from flows.run_names import run_name
from tasks.open_campaigns import open_campaign_years

T = TypeVar("T")


@task(name="list-open-campaigns", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def list_open_campaigns() -> list[int]:
    with Session(engine()) as session:
        return open_campaign_years(session=session, form=form_for())


@flow(name="ingest-open-campaigns", flow_run_name=run_name("定时接收报送"))
def ingest_open_campaigns() -> list[IngestSummary]:
    """Ingest the inbox of every open campaign (each refreshes its own progress)."""
    return _each_open_campaign("ingest", lambda year: ingest_returns(year, return_state=True))


@flow(name="chase-open-campaigns", flow_run_name=run_name("定时催报"))
def chase_open_campaigns() -> list[ChaseSummary]:
    """Chase the late units of every open campaign."""
    return _each_open_campaign("chase", lambda year: chase_late_units(year=year, return_state=True))


@flow(name="draft-open-campaigns", flow_run_name=run_name("定时汇总草稿"))
def draft_open_campaigns() -> list[ReportSummary]:
    """Compile a draft county report of every open campaign (each writes its campaign-YEAR-report artifact)."""
    return _each_open_campaign("draft report", lambda year: compile_report(year, kind="draft", return_state=True))


def _each_open_campaign(what: str, run: Callable[[int], State[T]]) -> list[T]:
    """Run the per-year flow for every open campaign; one year failing does not stop the others (the run then
    fails at the end, so the failure shows in the UI)."""
    results, failed = [], []
    for year in list_open_campaigns():
        state = run(year)
        if state.is_completed():
            results.append(state.result())
        else:
            get_run_logger().error("%s %s: %s", what, year, state.message)
            failed.append(year)
    if failed:
        raise RuntimeError(f"{what} failed for {', '.join(map(str, failed))}; the other campaigns were done")
    return results
