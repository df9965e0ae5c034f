"""Where every unit of a campaign stands: issued, returned, rejected, accepted or missing (past the deadline)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlmodel import Session, col, select

from schemas.tables import Assignment, AssignmentStatus, Campaign, Unit

CHINA = ZoneInfo("Asia/Shanghai")
STATUS_CHINESE = {"issued": "已下发", "returned": "已报送待审", "rejected": "未通过", "accepted": "已通过",
                  "missing": "逾期未报"}


class UnitStatus(BaseModel):
    unit: str
    name: str
    kind: str
    status: str  # issued / returned / rejected / accepted / missing
    last_submission_at: datetime | None
    issue_count: int
    late: bool  # accepted after the deadline, or still not accepted past it
    has_accepted: bool  # an earlier accepted return still counts even if the latest was rejected
    workbook: str
    delivery_error: str | None = None  # mail to the unit refused for good (bad address): deliver by other means
    held: int = 0  # returns that arrived after the report was approved: kept, not consolidated (tasks/admission.py)


def campaign_status(*, session: Session, campaign: Campaign, today: date | None = None) -> list[UnitStatus]:
    """One row per unit the campaign issued a workbook to, by unit code."""
    today = today or datetime.now(CHINA).date()
    rows = session.exec(
        select(Assignment, Unit).join(Unit, col(Unit.id) == col(Assignment.unit_id))
        .where(Assignment.campaign_id == campaign.id).order_by(col(Unit.code))
    ).all()
    held = _held_counts(session, campaign)
    result = []
    for assignment, unit in rows:
        status = assignment.status.value
        past_deadline = today > campaign.deadline
        if assignment.status is AssignmentStatus.ISSUED and past_deadline:
            status = "missing"
        last = assignment.last_submission_at
        returned_late = last is not None and _china_date(last) > campaign.deadline
        late = (assignment.status is AssignmentStatus.ACCEPTED and returned_late) or (
            assignment.status is not AssignmentStatus.ACCEPTED and past_deadline)
        result.append(UnitStatus(
            unit=unit.code, name=unit.name, kind=unit.kind.value, status=status, last_submission_at=last,
            issue_count=assignment.issue_count, late=late,
            has_accepted=assignment.accepted_submission_id is not None, workbook=assignment.workbook_path,
            delivery_error=assignment.delivery_error, held=held.get(unit.code, 0),
        ))
    return result


def _held_counts(session: Session, campaign: Campaign) -> dict[str, int]:
    from tasks.admission import held_returns  # status is read everywhere; admission only matters after approval

    counts: dict[str, int] = {}
    for item in held_returns(session=session, campaign=campaign):
        counts[item.unit_code] = counts.get(item.unit_code, 0) + 1
    return counts


def _china_date(moment: datetime) -> date:
    if moment.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(CHINA).date()
