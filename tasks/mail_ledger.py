"""The mail ledger: every message is owed for one event, and its event key is claimed in the database first.

A message is sent at most once per event key, however often a flow runs or is retried:
1. claim: insert a `pending` row under the unique key and commit, before anything is sent. A second run (or a
   concurrent one) finds the key taken and sends nothing.
2. send, with no database transaction open (an SMTP conversation can take seconds).
3. record the outcome (sent / written / failed-temporary / failed-permanent) and commit.

A key is claimed again only when its earlier outcome leaves the message owed: a temporary failure (the next run
retries), a permanent failure to an address that has since changed (the unit's e-mail was corrected), or a
`pending` claim older than STALE_CLAIM. The last one is the crash case, decided deliberately: a pending claim that
old means its sender died between claim and outcome, and we cannot know whether the server got the message. We
send it again, with the same Message-ID (derived from the key), rather than leave a unit without its workbook or
its answer: a rare duplicate, which mail clients recognise by that Message-ID, beats a message silently lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from schemas.tables import Assignment, EventLog, MailMessage, MailStatus, Unit, utcnow

STALE_CLAIM = timedelta(minutes=15)  # far longer than one message's SMTP conversation with all its retries
SETTLED = {MailStatus.SENT, MailStatus.WRITTEN}
CHASE_KINDS = {"reminder", "escalation"}


@dataclass(frozen=True)
class Envelope:
    """What the ledger records about a message besides the message itself."""

    event_key: str
    kind: str  # issue / receipt / rejection / reminder / escalation / digest (or another channel's own kind)
    campaign_id: int | None = None
    unit_code: str | None = None
    day: date | None = None
    level: str = ""


def issue_key(campaign_id: int, unit_code: str) -> str:
    return f"issue:{campaign_id}:{unit_code}"


def answer_key(submission_id: int) -> str:
    return f"answer:{submission_id}"


def chase_key(campaign_id: int, unit_code: str, day: date) -> str:
    """One key per unit per day for every chase message (reminder or escalation): never two on one day."""
    return f"reminder:{campaign_id}:{unit_code}:{day.isoformat()}"


def digest_key(campaign_id: int, day: date) -> str:
    return f"digest:{campaign_id}:{day.isoformat()}"


def message_id(event_key: str, from_address: str) -> str:
    """A Message-ID that is the same every time the message for this event is built."""
    domain = from_address.rpartition("@")[2] or "localhost"
    return f"<nianbao.{hashlib.sha256(event_key.encode()).hexdigest()[:32]}@{domain}>"


def claim(*, session: Session, envelope: Envelope, recipient: str, subject: str,
          now: datetime | None = None) -> MailMessage | None:
    """Claim the event's key and commit; None when its message is sent, settled or being sent by another run."""
    now = now or utcnow()
    row = session.exec(select(MailMessage).where(MailMessage.event_key == envelope.event_key)).first()
    if row is None:
        row = MailMessage(event_key=envelope.event_key, kind=envelope.kind, campaign_id=envelope.campaign_id,
                          unit_code=envelope.unit_code, day=envelope.day, level=envelope.level,
                          recipient=recipient, subject=subject, created_at=now, updated_at=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another run claimed it between our look-up and our insert
            session.rollback()
            return None
        session.commit()
        return row
    if not _owed(row, recipient, now):
        return None
    # take over with a conditional update: of two runs taking over at once, only one changes the row
    taken = session.execute(
        update(MailMessage).where(col(MailMessage.id) == row.id, col(MailMessage.status) == row.status,
                                  col(MailMessage.attempts) == row.attempts)
        .values(status=MailStatus.PENDING, recipient=recipient, subject=subject, updated_at=now))
    session.commit()
    if getattr(taken, "rowcount", 0) != 1:
        return None
    session.refresh(row)
    return row


def record(*, session: Session, row: MailMessage, status: MailStatus, channel: str, attempts: int,
           error: str = "", eml_path: str = "") -> None:
    """Record how sending went, on the ledger, the event log and (for a unit) its assignment; commit."""
    row.status, row.channel, row.last_error, row.eml_path = status, channel, error, eml_path
    row.attempts += attempts
    row.updated_at = utcnow()
    session.add(row)
    if row.campaign_id is not None and row.unit_code and status in {*SETTLED, MailStatus.FAILED_PERMANENT}:
        _mark_assignment(session, row.campaign_id, row.unit_code,
                         f"{row.recipient or '（无地址）'}：{error}" if status is MailStatus.FAILED_PERMANENT else None)
    family = "reminder" if row.kind in CHASE_KINDS else "mail"
    session.add(EventLog(campaign_id=row.campaign_id, unit_code=row.unit_code, kind=f"{family}.{status.value}",
                         detail={"event_key": row.event_key, "kind": row.kind, "level": row.level,
                                 "channel": channel, "recipient": row.recipient, "error": error}))
    session.commit()


def chased_days(*, session: Session, campaign_id: int) -> dict[str, date]:
    """The latest day each unit got a chase message (sent, written, or being sent), by unit code."""
    rows = session.exec(select(col(MailMessage.unit_code), col(MailMessage.day)).where(
        MailMessage.campaign_id == campaign_id, col(MailMessage.kind).in_(CHASE_KINDS),
        col(MailMessage.status).in_([*SETTLED, MailStatus.PENDING]))).all()
    latest: dict[str, date] = {}
    for code, day in rows:
        if code and day and (code not in latest or day > latest[code]):
            latest[code] = day
    return latest


def settled_keys(*, session: Session, keys: list[str]) -> set[str]:
    """The keys among these whose messages were sent or written (claim() decides about the others)."""
    if not keys:
        return set()
    return set(session.exec(select(MailMessage.event_key).where(
        col(MailMessage.event_key).in_(keys), col(MailMessage.status).in_(SETTLED))).all())


def _owed(row: MailMessage, recipient: str, now: datetime) -> bool:
    if row.status in SETTLED:
        return False
    if row.status is MailStatus.FAILED_PERMANENT:
        return row.recipient != recipient  # refused for good, unless the address has changed since
    if row.status is MailStatus.PENDING:
        claimed = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
        return now - claimed > STALE_CLAIM
    return True  # failed-temporary: try again


def _mark_assignment(session: Session, campaign_id: int, unit_code: str, error: str | None) -> None:
    """Set (or, once mail gets through again, clear) the unit's delivery error on its assignment."""
    unit_id = session.exec(select(Unit.id).where(Unit.code == unit_code)).first()
    if unit_id is None:
        return
    assignment = session.exec(select(Assignment).where(Assignment.campaign_id == campaign_id,
                                                       Assignment.unit_id == unit_id)).first()
    if assignment is not None and assignment.delivery_error != error:
        assignment.delivery_error = error
        session.add(assignment)
