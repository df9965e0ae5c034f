"""Who reported, and when: the completeness annex of the county report (按时报送 / 逾期报送 / 未通过审核 / 未报送).

A unit reported on time if a return of it was accepted by the deadline (China time), even if it corrected its figures
later; it reported late if its first accepted return came after the deadline. A unit without an accepted return
either never returned a workbook (未报送) or only returned ones that were rejected (未通过审核).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import case, func
from sqlalchemy import select as sa_select  # sqlmodel's select types at most 4 columns
from sqlmodel import Session, col

from schemas.tables import Assignment, Campaign, Submission, Unit, UnitKind, Verdict

CHINA = ZoneInfo("Asia/Shanghai")


class Timeliness(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    REJECTED = "rejected"  # returned, never accepted
    MISSING = "missing"  # never returned

    @property
    def chinese(self) -> str:
        return {"on_time": "按时报送", "late": "逾期报送", "rejected": "未通过审核", "missing": "未报送"}[self.value]


class UnitCompleteness(BaseModel):
    code: str
    name: str
    kind: str = Field(description="Chinese kind, e.g. 县直部门")
    timeliness: Timeliness
    returns: int = Field(description="Files received from the unit, accepted or not")
    first_return_at: datetime | None = Field(description="China time")
    first_accepted_at: datetime | None = Field(description="China time")


class Completeness(BaseModel):
    deadline: date
    units: list[UnitCompleteness]

    def count(self, timeliness: Timeliness) -> int:
        return sum(1 for u in self.units if u.timeliness is timeliness)

    def of(self, *kinds: Timeliness) -> list[UnitCompleteness]:
        return [u for u in self.units if u.timeliness in kinds]


def load_completeness(*, session: Session, campaign: Campaign) -> Completeness:
    """Every unit the campaign issued a workbook to, with when it returned and whether that was in time."""
    accepted_at = case((col(Submission.verdict) == Verdict.ACCEPTED, col(Submission.received_at)))
    # the campaign's returns summed up per unit first, in one pass: joined per unit instead, SQLite looks each
    # unit's returns up by the campaign's index and reads all of them every time (62 s for 10,000 units)
    per_unit = (sa_select(col(Submission.unit_id).label("unit_id"), func.count(col(Submission.id)).label("n"),
                          func.min(col(Submission.received_at)).label("first_at"),
                          func.min(accepted_at).label("first_accepted"))
                .where(col(Submission.campaign_id) == campaign.id)
                .group_by(col(Submission.unit_id)).subquery())
    rows = session.connection().execute(
        sa_select(col(Unit.code), col(Unit.name), col(Unit.kind), func.coalesce(per_unit.c.n, 0),
                  per_unit.c.first_at, per_unit.c.first_accepted)
        .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
        .outerjoin(per_unit, per_unit.c.unit_id == col(Unit.id))
        .where(col(Assignment.campaign_id) == campaign.id)
        .order_by(col(Unit.code))
    ).all()
    units = []
    for code, name, kind, returns, first_at, first_accepted in rows:
        first_return = _china(first_at) if first_at is not None else None
        accepted = _china(first_accepted) if first_accepted is not None else None
        # built without validation: every value is already of its type (a province's 10,000 rows)
        units.append(UnitCompleteness.model_construct(
            code=code, name=name, kind=UnitKind(kind).chinese, returns=int(returns), first_return_at=first_return,
            first_accepted_at=accepted, timeliness=_timeliness(campaign.deadline, returns, accepted)))
    return Completeness(deadline=campaign.deadline, units=units)


def _timeliness(deadline: date, returns: int, first_accepted: datetime | None) -> Timeliness:
    if first_accepted is not None:
        return Timeliness.ON_TIME if first_accepted.date() <= deadline else Timeliness.LATE
    return Timeliness.REJECTED if returns else Timeliness.MISSING


def _china(moment: datetime | str) -> datetime:
    if isinstance(moment, str):  # SQLite hands an aggregate of a datetime column back as its text
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # stored as UTC; SQLite drops the zone
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA)
