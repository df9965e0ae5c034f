"""Prefect events from the project's audit log, so users can build automations on what happened.

Every channel (inbox folder, upload page, mailbox, chase) already writes an EventLog row for what it did; the flows
turn the rows written since the last time into events. Each event's id is derived from its row, so emitting a row
twice (two flows at once, a retry) is harmless: the Prefect server stores an event id once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from schemas.tables import Campaign, EventLog, core_table

UTC = ZoneInfo("UTC")
EVENTS = core_table(EventLog)
CURSOR_KIND = "prefect.events_emitted"
EVENT_NAMES = {
    "workbook.issued": "nianbao.workbook.issued",
    "submission.accepted": "nianbao.submission.accepted",
    "submission.rejected": "nianbao.submission.rejected",
    "report.compiled": "nianbao.report.compiled",
    "report.approved": "nianbao.report.approved",
    "report.sent_back": "nianbao.report.sent_back",
}
# the chase logs reminder.<mail status>: sent over SMTP or written as .eml (no SMTP configured) both reached
# the unit's outbox; a permanent failure is worth an automation of its own
REMINDER_SENT_KINDS = ("reminder.sent", "reminder.written")
REMINDER_FAILED_KINDS = ("reminder.failed-permanent",)
PUBLISHED_KINDS = (*EVENT_NAMES, *REMINDER_SENT_KINDS, *REMINDER_FAILED_KINDS)
_NAMESPACE = uuid.UUID("5d1c3f0e-6a43-4a55-9d1e-2f7c0b9a1e21")


class AuditRow(NamedTuple):
    """The columns of an EventLog row an event is made of."""

    id: int
    at: datetime
    unit_code: str | None
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A Prefect event as the server takes it in (the fields of prefect.events.Event)."""

    id: uuid.UUID
    event: str
    occurred: datetime
    resource: dict[str, str]
    related: list[dict[str, str]]
    payload: dict[str, Any]  # JSON values: an audit row's detail is a JSON column


def unit_resource_id(code: str) -> str:
    return f"nianbao.unit.{code}"


def campaign_resource_id(year: int) -> str:
    return f"nianbao.campaign.{year}"


def event_name(kind: str) -> str | None:
    """The Prefect event name of an EventLog kind, or None for kinds not published."""
    if kind in REMINDER_SENT_KINDS:
        return "nianbao.reminder.sent"
    if kind in REMINDER_FAILED_KINDS:
        return "nianbao.reminder.failed"
    return EVENT_NAMES.get(kind)


def event_specs(campaign: Campaign, rows: list[AuditRow]) -> list[EventSpec]:
    """The events of these audit rows: the unit (if any) as the resource, the campaign as related resource."""
    campaign_id = campaign_resource_id(campaign.year)
    specs = []
    for row in rows:
        name = event_name(row.kind)
        if name is None:
            continue
        campaign_res = {"prefect.resource.id": campaign_id, "prefect.resource.name": f"{campaign.year}年度"}
        if row.unit_code:
            resource = {"prefect.resource.id": unit_resource_id(row.unit_code),
                        "prefect.resource.name": row.unit_code}
            related = [{**campaign_res, "prefect.resource.role": "campaign"}]
        else:
            resource, related = campaign_res, []
        specs.append(EventSpec(
            id=uuid.uuid5(_NAMESPACE, f"{campaign.year}:{campaign.created_at.isoformat()}:{row.id}"),
            event=name, occurred=_aware(row.at), resource=resource, related=related,
            payload={"kind": row.kind, "unit": row.unit_code, "year": campaign.year, **row.detail},
        ))
    return specs


def pending_rows(*, session: Session, campaign: Campaign, limit: int | None = None) -> list[AuditRow]:
    """The campaign's audit rows of a published kind written after the last emitted one (the first limit of
    them, oldest first)."""
    cursor = session.exec(
        select(EventLog).where(EventLog.campaign_id == campaign.id, EventLog.kind == CURSOR_KIND)
        .order_by(col(EventLog.id).desc())
    ).first()
    through = int(cursor.detail.get("through_id", 0)) if cursor else 0
    # Core rows of the published kinds only: an ingest of 1,000 files writes as many mail rows, never published
    rows = session.connection().execute(
        sa_select(EVENTS.c.id, EVENTS.c.at, EVENTS.c.unit_code, EVENTS.c.kind, EVENTS.c.detail)
        .where(EVENTS.c.campaign_id == campaign.id, EVENTS.c.id > through, EVENTS.c.kind.in_(PUBLISHED_KINDS))
        .order_by(EVENTS.c.id).limit(limit))
    return [AuditRow(*row) for row in rows]


def record_emitted(*, session: Session, campaign_id: int, rows: list[AuditRow], emitted: int) -> None:
    """Move the campaign's cursor past these rows (nothing to record when there were none)."""
    if rows:
        session.add(EventLog(campaign_id=campaign_id, kind=CURSOR_KIND,
                             detail={"through_id": max(row.id for row in rows), "events": emitted}))


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
