"""The final report: compile it, then wait in the Prefect UI for the coordinator to approve it or send it back.

The run pauses with a form (批准定稿 / 退回修改, the approver's name, a comment) whose description shows the
report's key figures, check results and the units still missing. Approval marks the report final and the campaign
approved; send-back leaves it a draft with the comment kept. No decision within the timeout fails the run and
leaves the report a draft.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from flows.common import engine, form_for
from flows.compile_report import compile_report
from flows.progress import publish_progress
from flows.run_names import run_name
from schemas.tables import Report
from tasks.approval import Decision, approve_report, send_back_report
from tasks.campaigns import get_campaign
from tasks.report_digest import ReportDigest, digest_markdown, load_report_digest

DEFAULT_APPROVAL_DAYS = 14
POLL_SECONDS = 5  # how often the paused run looks for the decision


class ReportDecision(RunInput):
    decision: Decision = Field(title="审批结果", description="批准定稿：报告成为正式报告；退回修改：报告仍为草稿")
    approver: str = Field(title="审批人", min_length=1, max_length=100, description="审批人姓名")
    comment: str = Field(default="", title="意见", description="退回修改时请写明需要修改的内容")


class ApprovalOutcome(BaseModel):
    year: int
    report_id: int
    decision: Decision
    approver: str
    comment: str
    html: str


@task(name="load-report-digest", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_digest(year: int, html_path: str) -> ReportDigest:
    """The digest of the report this run compiled (found by its HTML file)."""
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form_for(), year=year)
        report = session.exec(select(Report).where(Report.campaign_id == campaign.id,
                                                   Report.html_path == html_path)).one()
        digest = load_report_digest(session=session, form=form_for(), campaign=campaign, report=report)
        assert digest is not None
        return digest


@task(name="apply-decision", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def apply_decision(year: int, report_id: int, decision: ReportDecision) -> ApprovalOutcome:
    """Record the coordinator's decision on the report, in one transaction."""
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form_for(), year=year)
        report = session.get(Report, report_id)
        assert report is not None
        apply = approve_report if decision.decision is Decision.APPROVE else send_back_report
        apply(session=session, campaign=campaign, report=report, approver=decision.approver.strip(),
              comment=decision.comment.strip(), at=datetime.now(UTC))
        session.commit()
        return ApprovalOutcome(year=year, report_id=report_id, decision=decision.decision,
                               approver=decision.approver.strip(), comment=decision.comment.strip(),
                               html=report.html_path)


@flow(name="final-report", flow_run_name=run_name("正式报告审批"))
def final_report(year: int, text_file: str | None = None, approval_days: int = DEFAULT_APPROVAL_DAYS,
                 county_name: str | None = None) -> ApprovalOutcome:
    """Compile the county report and wait for the coordinator's decision in the UI (approval_days at most)."""
    summary = compile_report(year, text_file, "draft", county_name)
    digest = load_digest(year, summary.html)
    form = ReportDecision.with_initial_data(
        description=(f"# 请审批{year}年度政府信息公开工作年度报告\n\n"
                     f"请核对以下数据后选择“批准定稿”或“退回修改”，并填写审批人；"
                     f"{approval_days}天内未审批，本次运行失败，报告仍为草稿。\n\n{digest_markdown(digest)}"))
    decision = pause_flow_run(wait_for_input=form, timeout=approval_days * 24 * 3600,
                              poll_interval=POLL_SECONDS, key=f"approve-report-{digest.report_id}")
    outcome = apply_decision(year, digest.report_id, decision)
    publish_progress(year)
    get_run_logger().info("report %s of %s: %s by %s", outcome.report_id, year, outcome.decision.name,
                          outcome.approver)
    return outcome
