"""Progress in the Prefect UI, kept current by the flows: artifacts and events on a real Prefect (test harness)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.events.schemas.events import ReceivedEvent
from prefect.events.worker import EventsWorker
from sqlmodel import Session

import flows.progress as progress
from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from flows.progress import publish_progress
from flows.scheduled import chase_open_campaigns, draft_open_campaigns, ingest_open_campaigns
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from tasks.campaigns import get_campaign
from tasks.db import get_engine
from tasks.progress_events import EventSpec, pending_rows
from tests.conftest import DEADLINE
from tests.factories import register_units, return_workbook, valid_figures

pytestmark = pytest.mark.usefixtures("prefect_harness")

YEAR = 2021


def _artifact(key: str) -> Any:
    artifact = Artifact.get(key)
    assert artifact is not None, key
    return artifact


def _table(key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(_artifact(key).data)  # a table artifact's data is its JSON text
    return rows


def _events(since: datetime, names: list[str], expected: int) -> list[tuple[str, str]]:
    """(event name, resource id) of our events since the test began, once the server has stored them."""
    return sorted((e.event, e.resource.id) for e in _stored_events(since, names, expected))


def _stored_events(since: datetime, names: list[str], expected: int) -> list[ReceivedEvent]:
    """Our events since the test began, once the server has stored them (at least expected of them)."""
    EventsWorker.drain_all()
    until = datetime.now(UTC) + timedelta(minutes=5)
    query = EventFilter(occurred=EventOccurredFilter(since=since, until=until), event=EventNameFilter(name=names),
                        resource=EventResourceFilter(id_prefix=["nianbao."]))
    found: list[ReceivedEvent] = []
    for _ in range(60):  # the server persists events in batches, every few seconds
        with get_client(sync_client=True) as client:
            found = client.read_events(filter=query, limit=50).events
        if len(found) >= expected:
            break
        time.sleep(0.5)
    return found


def test_flows_keep_progress_table_report_and_events_current(settings: Settings, units_file: Path,
                                                             form: FormSpec) -> None:
    since = datetime.now(UTC)  # the events of the tests before occurred before it
    register_units(settings, units_file)

    open_collection(YEAR, DEADLINE)

    progress = _artifact(f"campaign-{YEAR}-progress")
    assert progress.type == "progress" and progress.data == 0.0
    assert progress.description == f"{YEAR}年度填报进度：已通过 0 / 4 个单位（截止日期 2022-01-20）"

    return_workbook(settings, "D001", valid_figures(form), YEAR)
    return_workbook(settings, "T001", valid_figures(form), YEAR)
    return_workbook(settings, "T002", valid_figures(form, apply__new__natural_person=3), YEAR)  # breaks R1
    ingest_open_campaigns()

    assert _artifact(f"campaign-{YEAR}-progress").data == 50.0
    table = {row["单位代码"]: row for row in _table(f"campaign-{YEAR}-units")}
    # the 2022 deadline is long past: G001 is overdue; T002's extra application breaks its column and total
    assert [(code, row["状态"], row["问题数"]) for code, row in sorted(table.items())] == [
        ("D001", "已通过", 0), ("G001", "逾期未报", 0), ("T001", "已通过", 0), ("T002", "未通过", 2)]
    assert table["D001"]["最近报送"] != "—" and table["G001"]["最近报送"] == "—"

    chase_open_campaigns()  # every unit not accepted is chased (written as .eml files: no SMTP configured)
    table = {row["单位代码"]: row for row in _table(f"campaign-{YEAR}-units")}
    assert {code: row["催报次数"] for code, row in table.items()} == {"D001": 0, "G001": 1, "T001": 0, "T002": 1}

    units_table = _artifact(f"campaign-{YEAR}-units").id
    draft_open_campaigns()
    # a compiled report changes no unit's standing: the units table (a province's 10,000 rows) is not sent again
    assert _artifact(f"campaign-{YEAR}-units").id == units_table
    report = _artifact(f"campaign-{YEAR}-report")
    assert report.type == "markdown" and "2021年度汇总报告（草稿）" in report.data
    assert "已通过审核：**2 / 4** 个单位" in report.data
    assert "- 示范县人民政府办公室（G001）" in report.data and "- 河口乡（T002）" in report.data
    assert ".html](file://" in report.data

    names = ["nianbao.workbook.issued", "nianbao.submission.accepted", "nianbao.submission.rejected",
             "nianbao.reminder.sent", "nianbao.report.compiled"]
    events = _events(since, names, 4 + 3 + 2 + 1)
    assert events == sorted(
        [("nianbao.workbook.issued", f"nianbao.unit.{code}") for code in ("D001", "G001", "T001", "T002")]
        + [("nianbao.submission.accepted", "nianbao.unit.D001"), ("nianbao.submission.accepted", "nianbao.unit.T001"),
           ("nianbao.submission.rejected", "nianbao.unit.T002"), ("nianbao.reminder.sent", "nianbao.unit.G001"),
           ("nianbao.reminder.sent", "nianbao.unit.T002"), ("nianbao.report.compiled", "nianbao.campaign.2021")])


def test_ingest_emits_the_events_of_what_it_stored_once_it_has_ended(settings: Settings, units_file: Path,
                                                                     form: FormSpec) -> None:
    """The ingest flow leaves its events to a hook after its final state; none is lost, none emitted twice."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    since = datetime.now(UTC)
    return_workbook(settings, "D001", valid_figures(form), YEAR)
    return_workbook(settings, "T002", valid_figures(form, apply__new__natural_person=3), YEAR)
    state = ingest_returns(YEAR, return_state=True)
    summary = state.result()
    assert (summary.accepted, summary.rejected) == (1, 1)
    names = ["nianbao.submission.accepted", "nianbao.submission.rejected"]
    events = _stored_events(since, names, 2)
    assert sorted((e.event, e.resource.id) for e in events) == [
        ("nianbao.submission.accepted", "nianbao.unit.D001"), ("nianbao.submission.rejected", "nianbao.unit.T002")]
    run = f"prefect.flow-run.{state.state_details.flow_run_id}"
    for event in events:  # each names its campaign and the run that stored it
        assert {(r.id, r.role) for r in event.related} == {(f"nianbao.campaign.{YEAR}", "campaign"), (run, "flow-run")}
        assert event.payload["unit"] == event.resource.id.removeprefix("nianbao.unit.")
    with Session(get_engine(settings.db_url)) as session:
        campaign = get_campaign(session=session, form=form, year=YEAR)
        assert pending_rows(session=session, campaign=campaign) == []  # the cursor moved past them


def test_flow_runs_are_named_by_year_what_and_when(settings: Settings, units_file: Path) -> None:
    register_units(settings, units_file)
    before = datetime.now(UTC)
    open_collection(YEAR, DEADLINE)
    ingest_open_campaigns()
    with get_client(sync_client=True) as client:
        # the newest first: the session's Prefect server holds every earlier test's runs (hundreds: tests/crash/)
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(
            any_=["open-collection", "ingest-open-campaigns", "ingest-returns"])), limit=200,
            sort=FlowRunSort.EXPECTED_START_TIME_DESC)
    names = {run.name for run in runs if run.created and run.created >= before}
    china = (before + timedelta(hours=8)).strftime("%Y-%m-%d")
    assert any(n.startswith(f"{YEAR}年度-开启填报-{china} ") for n in names), names
    assert any(n.startswith(f"定时接收报送-{china} ") for n in names), names


def test_events_the_server_refuses_stay_pending_for_the_next_publication(settings: Settings, units_file: Path,
                                                                        form: FormSpec,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A request the server refuses (here: events it cannot validate) fails no flow and moves no cursor; the next
    publication sends the events."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    since = datetime.now(UTC)
    return_workbook(settings, "D001", valid_figures(form), YEAR)
    wire = progress._wire

    def unlabelled(spec: EventSpec, run_related: list[dict[str, str]]) -> dict[str, Any]:
        event = wire(spec, run_related)
        return {**event, "resource": {"prefect.resource.name": "no id"}}  # a resource must have an id

    monkeypatch.setattr(progress, "_wire", unlabelled)
    assert ingest_returns(YEAR).accepted == 1  # the run itself succeeds; its hook could not emit
    assert publish_progress(YEAR).events == 0  # nor does a publication fail: its events wait for the next one
    with Session(get_engine(settings.db_url)) as session:
        campaign = get_campaign(session=session, form=form, year=YEAR)
        assert [row.kind for row in pending_rows(session=session, campaign=campaign)] == ["submission.accepted"]

    monkeypatch.setattr(progress, "_wire", wire)
    assert publish_progress(YEAR).events == 1
    assert _events(since, ["nianbao.submission.accepted"], 1) == [("nianbao.submission.accepted", "nianbao.unit.D001")]
    with Session(get_engine(settings.db_url)) as session:
        assert pending_rows(session=session, campaign=get_campaign(session=session, form=form, year=YEAR)) == []


def test_events_go_a_request_at_a_time_and_a_refused_one_leaves_only_the_rest(settings: Settings, units_file: Path,
                                                                               form: FormSpec,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The events go EVENTS_PER_REQUEST to a request, the cursor moving after each: a request the server refuses
    part way leaves the events before it emitted and only it and the later ones pending."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    since = datetime.now(UTC)
    for code in ("D001", "T001", "T002"):
        return_workbook(settings, code, valid_figures(form), YEAR)
    wire = progress._wire

    def refusing_t001(spec: EventSpec, run_related: list[dict[str, str]]) -> dict[str, Any]:
        event = wire(spec, run_related)
        return {**event, "resource": {"prefect.resource.name": "no id"}} if spec.payload["unit"] == "T001" else event

    monkeypatch.setattr(progress, "EVENTS_PER_REQUEST", 1)
    monkeypatch.setattr(progress, "_wire", refusing_t001)
    assert ingest_returns(YEAR).accepted == 3
    with Session(get_engine(settings.db_url)) as session:
        pending = pending_rows(session=session, campaign=get_campaign(session=session, form=form, year=YEAR))
    stored_order = ["D001", "T001", "T002"]  # the oldest file first; return_workbook wrote them in this order
    assert [row.unit_code for row in pending] == stored_order[stored_order.index("T001"):]
    name = ["nianbao.submission.accepted"]
    assert _events(since, name, 1) == [(name[0], "nianbao.unit.D001")]

    monkeypatch.setattr(progress, "_wire", wire)
    assert publish_progress(YEAR).events == 2
    assert _events(since, name, 3) == [(name[0], f"nianbao.unit.{code}") for code in stored_order]
