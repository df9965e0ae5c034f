"""The final report waits in Prefect for the coordinator's decision; resumed with input as the UI does it."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect.input.run_input import keyset_from_paused_state
from sqlmodel import Session, select

from flows.final_report import ApprovalOutcome, final_report
from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Campaign, CampaignState, EventLog, Report
from tasks.db import get_engine
from tests.conftest import DEADLINE
from tests.factories import register_units, return_workbook, valid_figures

pytestmark = pytest.mark.usefixtures("prefect_harness")

YEAR = 2021


class FinalReportRun:
    """final_report in a thread of its own, as a served deployment would run it, found by a unique tag."""

    def __init__(self) -> None:
        self.tag = f"approval-test-{uuid.uuid4().hex[:8]}"
        self.outcome: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with tags(self.tag):
            self.outcome = final_report(YEAR, return_state=True)

    def paused(self, timeout: float = 90) -> tuple[UUID, Any]:
        """The run's id and Paused state, once it waits for input."""
        query = FlowRunFilter(tags=FlowRunFilterTags(all_=[self.tag]),
                              state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(flow_run_filter=query,
                                             flow_filter=FlowFilter(name=FlowFilterName(any_=["final-report"])))
                if runs and runs[0].state is not None:
                    keyset = keyset_from_paused_state(runs[0].state)
                    try:  # the form is saved just after the pause; wait for it as the UI would
                        client.read_flow_run_input(runs[0].id, keyset["schema"])
                        return runs[0].id, runs[0].state
                    except Exception:  # noqa: BLE001 (not there yet)
                        pass
            time.sleep(0.3)
        raise AssertionError("final-report never paused for input")

    def finished(self) -> ApprovalOutcome:
        self.thread.join(timeout=90)
        assert not self.thread.is_alive()
        result: ApprovalOutcome = self.outcome.result()
        return result


def _campaign_with_returns(settings: Settings, units_file: Path, form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    for code in ("D001", "T001", "T002"):
        return_workbook(settings, code, valid_figures(form), YEAR)
    ingest_returns(YEAR)


def _description(flow_run_id: UUID, state: Any) -> str:
    with get_client(sync_client=True) as client:
        text: str = client.read_flow_run_input(flow_run_id, keyset_from_paused_state(state)["description"])
    return text


def test_approval_in_the_ui_makes_the_report_final(settings: Settings, units_file: Path, form: FormSpec) -> None:
    _campaign_with_returns(settings, units_file, form)
    run = FinalReportRun()
    run.thread.start()
    flow_run_id, state = run.paused()

    # the form's description: key figures, checks and the unit still missing; the pause lasts days, not an hour
    description = _description(flow_run_id, state)
    assert "请审批2021年度政府信息公开工作年度报告" in description
    assert f"| {form.cell_by_key['apply.new.total'].label} | 9 |" in description
    assert "条勾稽规则全部通过" in description and "- 示范县人民政府办公室（G001）" in description
    timeout_at = state.state_details.pause_timeout
    assert timeout_at - datetime.now(UTC) > timedelta(days=13, hours=23)

    resume_flow_run(flow_run_id, run_input={"decision": "批准定稿", "approver": "王敏", "comment": "同意发布"})
    outcome = run.finished()

    assert (outcome.decision.value, outcome.approver) == ("批准定稿", "王敏")
    with Session(get_engine(settings.db_url)) as session:
        report = session.exec(select(Report)).one()
        campaign = session.exec(select(Campaign)).one()
        assert (report.kind, report.approved_by, campaign.state) == ("final", "王敏", CampaignState.APPROVED)
        assert report.approved_at is not None and "-final-" in Path(report.html_path).name
        approved = session.exec(select(EventLog).where(EventLog.kind == "report.approved")).one()
        assert approved.detail["approved_by"] == "王敏" and approved.detail["comment"] == "同意发布"


def test_send_back_in_the_ui_keeps_a_draft_with_the_comment(settings: Settings, units_file: Path,
                                                            form: FormSpec) -> None:
    _campaign_with_returns(settings, units_file, form)
    run = FinalReportRun()
    run.thread.start()
    flow_run_id, _ = run.paused()

    resume_flow_run(flow_run_id, run_input={"decision": "退回修改", "approver": "王敏",
                                            "comment": "县政府办尚未报送，暂缓"})
    outcome = run.finished()

    assert outcome.decision.value == "退回修改"
    with Session(get_engine(settings.db_url)) as session:
        report = session.exec(select(Report)).one()
        campaign = session.exec(select(Campaign)).one()
        assert (report.kind, report.approved_by, report.review_comment) == ("draft", None, "县政府办尚未报送，暂缓")
        assert campaign.state is CampaignState.OPEN
        sent_back = session.exec(select(EventLog).where(EventLog.kind == "report.sent_back")).one()
        assert sent_back.detail["comment"] == "县政府办尚未报送，暂缓"
