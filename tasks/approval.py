"""The coordinator's decision on a compiled report: approve it as final, or send it back with a comment."""

from __future__ import annotations

import shutil
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlmodel import Session

from schemas.tables import Campaign, CampaignState, EventLog, Report


class Decision(StrEnum):
    # the values are what the coordinator picks in the Prefect UI's form
    APPROVE = "批准定稿"
    SEND_BACK = "退回修改"


class ApprovalError(ValueError):
    """A decision that cannot be applied to this report."""


def approve_report(*, session: Session, campaign: Campaign, report: Report, approver: str, comment: str,
                   at: datetime) -> None:
    """Mark the report final and the campaign approved; record who and when. Its files get final names."""
    _check(campaign, report, approver)
    report.html_path, report.xlsx_path, report.json_path = (
        _final_copy(report.html_path), _final_copy(report.xlsx_path), _final_copy(report.json_path))
    report.files = {kind: _final_copy(path) for kind, path in report.files.items()}
    report.kind, report.approved_by, report.approved_at = "final", approver, at
    campaign.state = CampaignState.APPROVED
    session.add(report)
    session.add(campaign)
    session.add(EventLog(campaign_id=campaign.id, kind="report.approved", at=at,
                         detail={"report_id": report.id, "approved_by": approver, "comment": comment,
                                 "html": report.html_path}))


def send_back_report(*, session: Session, campaign: Campaign, report: Report, approver: str, comment: str,
                     at: datetime) -> None:
    """Leave the report a draft and keep the coordinator's comment on it and in the audit log."""
    _check(campaign, report, approver)
    report.review_comment = comment
    session.add(report)
    session.add(EventLog(campaign_id=campaign.id, kind="report.sent_back", at=at,
                         detail={"report_id": report.id, "by": approver, "comment": comment}))


def _check(campaign: Campaign, report: Report, approver: str) -> None:
    if report.campaign_id != campaign.id:
        raise ApprovalError(f"report {report.id} is not a report of the {campaign.year} campaign")
    if report.kind != "draft":
        raise ApprovalError(f"report {report.id} is already {report.kind}")
    if campaign.state is CampaignState.APPROVED:  # a second paused run, or an older draft: one final report a year
        raise ApprovalError(f"the {campaign.year} report was approved already")
    if not approver.strip():
        raise ApprovalError("the approver's name is empty")


def _final_copy(path: str) -> str:
    """A copy of a draft file under a final name (…-final-…); the draft file stays as it was compiled."""
    source = Path(path)
    target = source.with_name(source.name.replace("-draft-", "-final-", 1))
    if target != source:
        shutil.copy2(source, target)
    return str(target)
