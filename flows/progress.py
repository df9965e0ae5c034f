"""Keep a campaign's progress current in the Prefect UI: artifacts for people, events for automations.

Artifacts (keys: campaign-YEAR-progress, -units, -report): accepted of expected units, one row per unit, and the
latest report's digest. Events: every audit row since the last publication (workbook issued, submission accepted
or rejected, reminder sent, report compiled), with the unit and the campaign as resources.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import httpx
from prefect import Flow, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext, SyncClientContext
from prefect.events.worker import should_emit_events
from prefect.exceptions import PrefectException
from pydantic import BaseModel
from sqlmodel import Session

from flows.common import engine, form_for, settled_heap
from schemas.tables import Campaign
from tasks.campaigns import get_campaign
from tasks.progress import (
    artifact_key,
    load_progress,
    progress_description,
    progress_percent,
    progress_table,
    progress_table_note,
)
from tasks.progress_events import EventSpec, event_specs, pending_rows, record_emitted
from tasks.report_digest import digest_markdown, load_report_digest

log = logging.getLogger(__name__)
EVENTS_PER_REQUEST = 1000  # a request of ~0.6 MB; the server validates and queues a request's events at once


class Published(BaseModel):
    year: int
    accepted: int | None  # None: the collection's artifacts were left as they were (collection=False)
    expected: int | None
    events: int
    report_id: int | None


@task(name="publish-progress", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def publish_progress(year: int, today: date | None = None, events: bool = True,
                     collection: bool = True) -> Published:
    """Write the campaign's progress, unit table and report digest artifacts; emit the events not yet emitted.

    events=False leaves the events to the flow's end (emit_events_at_end): the ingest flow's thousand events.
    collection=False writes the report digest only (and the events): compiling a report changes no unit's standing,
    and a province's unit table is 10,000 rows, read and sent again for nothing (~0.2 s of its report).
    """
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form_for(), year=year)
        assert campaign.id is not None
        progress = load_progress(session=session, campaign=campaign, today=today) if collection else None
        digest = load_report_digest(session=session, form=form_for(), campaign=campaign)
        if progress is not None:
            create_progress_artifact(progress_percent(progress), key=artifact_key(year, "progress"),
                                     description=progress_description(progress))
            create_table_artifact(progress_table(progress), key=artifact_key(year, "units"),
                                  description=f"{year}年度各单位填报情况（状态、最近报送、问题数、催报次数）"
                                              f"{progress_table_note(progress)}")
        if digest is not None:
            create_markdown_artifact(digest_markdown(digest), key=artifact_key(year, "report"),
                                     description=f"{year}年度最新汇总报告：主要数据、校验结果、文件")
        emitted = emit_new_events(session=session, campaign=campaign) if events else 0
    return Published(year=year, accepted=progress.accepted if progress else None,
                     expected=progress.expected if progress else None, events=emitted,
                     report_id=digest.report_id if digest else None)


def emit_new_events(*, session: Session, campaign: Campaign) -> int:
    """Emit the events of the campaign's audit rows not emitted yet, EVENTS_PER_REQUEST at a time, committing the
    cursor after each request the server took: a province's 10,000 returns are never all in memory at once, and
    a failure part way leaves only what was not sent for the next time. publish_progress calls it, and the ingest
    flow's hook once the run has ended (emit_events_at_end)."""
    assert campaign.id is not None
    emitted = 0
    while rows := pending_rows(session=session, campaign=campaign, limit=EVENTS_PER_REQUEST):
        specs = event_specs(campaign, rows)
        try:
            _emit(specs)
        except (httpx.HTTPError, PrefectException) as exc:
            # the server refused them or could not be reached: the flow's own work is done and stays done; the
            # cursor stays, and the next publication sends these events (same ids, stored once)
            log.warning("the Prefect server did not take %d events of %s (%s); they are sent with the next ones",
                        len(specs), campaign.year, exc)
            return emitted
        # the cursor moves only after the server took the events
        record_emitted(session=session, campaign_id=campaign.id, rows=rows, emitted=len(specs))
        session.commit()
        emitted += len(specs)
    return emitted


def emit_events_at_end(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:  # noqa: ARG001
    """A flow hook (on completion and on failure): emit the run's events once its final state is recorded.

    The Prefect server takes ~0.3 ms to take in an event and ~1.5 ms more to store it: a thousand of them sent
    while the flow still runs would take a core from it for seconds. Sent after, they are stored while the
    caller goes on. A run that fails still emits what it stored; one that crashes leaves them to the next run.
    """
    year = int(flow_run.parameters["year"])
    # settled_heap: the run's heap is large by now, and a full collection set off by the events' objects would
    # take longer than making them (~0.1 s of a thousand events' 0.13 s)
    with settled_heap(), Session(engine()) as session:
        emit_new_events(session=session, campaign=get_campaign(session=session, form=form_for(), year=year))


def _emit(specs: list[EventSpec]) -> None:
    """Hand the events to the Prefect server in one request (POST /events), each related to the run that emits
    it.

    Why not emit_event(): its events worker sends them one by one over a websocket, copying the context and
    looking up the run's resources for each; a thousand events cost ~0.2 s of this process's time where these
    requests cost ~0.03 s, and the server takes in a batch at once. And a refused request raises, so that the
    caller leaves its cursor where it was.
    """
    if not specs or not should_emit_events():
        return
    with SyncClientContext.get_or_create() as context:
        run_related = _run_related(context.client)
        body = [_wire(spec, run_related) for spec in specs]
        context.client.request("POST", "/events", json=body).raise_for_status()


def _run_related(client: SyncPrefectClient) -> list[dict[str, str]]:
    """The flow run this is called in (and its deployment, for a scheduled or served run) as related resources:
    an event then leads to the run that wrote it. Not the flow and tags that emit_event() adds too: each related
    resource costs the server time for every event (a thousand events: ~0.05 s a resource, the run waiting)."""
    run_context = FlowRunContext.get()
    if run_context is None or run_context.flow_run is None:
        return []
    flow_run = run_context.flow_run
    related = [{"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run",
                "prefect.resource.name": flow_run.name}]
    if flow_run.deployment_id:
        try:
            deployment = client.read_deployment(flow_run.deployment_id)
        except (httpx.HTTPError, PrefectException):  # deleted since: the events still go out, without it
            return related
        related.append({"prefect.resource.id": f"prefect.deployment.{deployment.id}",
                        "prefect.resource.role": "deployment", "prefect.resource.name": deployment.name})
    return related


def _wire(spec: EventSpec, run_related: list[dict[str, str]]) -> dict[str, Any]:
    return {"id": str(spec.id), "event": spec.event, "occurred": spec.occurred.isoformat(),
            "resource": spec.resource, "related": [*spec.related, *run_related], "payload": spec.payload}
