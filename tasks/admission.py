"""After approval: returns held back from the approved figures, and the recorded exception that admits one.

Once the year's report is approved (tasks/approval.py), a return that passes every check is stored as HELD: kept,
answered, shown to the coordinator, but not consolidated, so the approved figures stay what was approved. Only the
coordinator can change that, by admitting one held return with their name and a reason. The admission makes it the
unit's consolidated return, and re-opens the year: the approved report no longer matches the figures, so a new report
must be compiled and approved (the earlier approval stays on record). Both steps are written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from schemas.tables import (
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignState,
    EventLog,
    Submission,
    Unit,
    Verdict,
    utcnow,
)

LOCKED_STATES = frozenset({CampaignState.APPROVED, CampaignState.PUBLISHED})


class AdmissionError(ValueError):
    """A held return that cannot be admitted; the message says why (Chinese, for the coordinator)."""


@dataclass(frozen=True)
class HeldReturn:
    submission_id: int
    unit_code: str
    unit_name: str
    version: int
    received_at: datetime
    file_name: str


@dataclass(frozen=True)
class Admitted:
    submission_id: int
    unit_code: str
    version: int
    replaced_version: int | None
    reopened: bool


def held_returns(*, session: Session, campaign: Campaign) -> list[HeldReturn]:
    """Every held return of the campaign not admitted since, oldest first."""
    admitted = select(Assignment.accepted_submission_id).where(Assignment.campaign_id == campaign.id)
    rows = session.exec(
        select(Submission, Unit).join(Unit, col(Unit.id) == col(Submission.unit_id))
        .where(Submission.campaign_id == campaign.id, Submission.verdict == Verdict.HELD,
               col(Submission.id).not_in(admitted.where(col(Assignment.accepted_submission_id).is_not(None))))
        .order_by(col(Submission.received_at), col(Submission.id))).all()
    return [HeldReturn(sub.id or 0, unit.code, unit.name, sub.version, sub.received_at, sub.original_name)
            for sub, unit in rows]


def admit_held(*, session: Session, campaign: Campaign, submission_id: int, by: str, reason: str) -> Admitted:
    """Make a held return the unit's consolidated one, as an exception recorded with who and why; re-open the year.
    The caller commits."""
    if not by.strip() or not reason.strip():
        raise AdmissionError("例外并入须写明批准人和理由")
    sub = session.get(Submission, submission_id)
    if sub is None or sub.campaign_id != campaign.id or sub.unit_id is None:
        raise AdmissionError(f"{campaign.year}年度没有编号为{submission_id}的报送")
    assignment = session.exec(select(Assignment).where(Assignment.campaign_id == campaign.id,
                                                       Assignment.unit_id == sub.unit_id)).one()
    unit = session.get(Unit, sub.unit_id)
    assert unit is not None
    if sub.verdict is not Verdict.HELD:
        raise AdmissionError(f"报送{submission_id}（{unit.code}第{sub.version}次）不是定稿后保存未并入的报送"
                             f"（审核结果：{sub.verdict.value}），无需也不能例外并入")
    if assignment.accepted_submission_id == sub.id:
        raise AdmissionError(f"报送{submission_id}（{unit.code}第{sub.version}次）已经例外并入")
    replaced = session.get(Submission, assignment.accepted_submission_id) if assignment.accepted_submission_id else None
    now = utcnow()
    assignment.accepted_submission_id = sub.id
    assignment.status = AssignmentStatus.ACCEPTED
    assignment.last_submission_at, assignment.last_submission_id = sub.received_at, sub.id
    assignment.issue_count = sub.error_count
    session.add(assignment)
    session.add(EventLog(at=now, campaign_id=campaign.id, unit_code=unit.code, kind="submission.admitted",
                         detail={"submission_id": sub.id, "version": sub.version, "by": by.strip(),
                                 "reason": reason.strip(),
                                 "replaces_version": replaced.version if replaced else None}))
    reopened = campaign.state in LOCKED_STATES
    if reopened:
        campaign.state = CampaignState.OPEN
        session.add(campaign)
        why = f"例外并入{unit.code}第{sub.version}次报送：{reason.strip()}"
        session.add(EventLog(at=now, campaign_id=campaign.id, kind="campaign.reopened",
                             detail={"by": by.strip(), "reason": why, "submission_id": sub.id}))
    return Admitted(sub.id or 0, unit.code, sub.version, replaced.version if replaced else None, reopened)
