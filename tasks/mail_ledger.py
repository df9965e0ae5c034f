"""The mail ledger: every message is owed for one event, and its event key is claimed in the database first.

A message is sent at most once per event key, however often a flow runs or is retried:
1. claim: insert a `pending` row under the unique key and commit, before anything is sent. A second run (or a
   concurrent one) finds the key taken and sends nothing.
2. send, with no database transaction open (an SMTP conversation can take seconds).
3. record the outcome (sent / written / failed-temporary / failed-permanent) and commit.

A batch is claimed in one transaction (claim_many: one look-up of the keys, one multi-row insert) and its outcomes
recorded in one (record_many). tasks/mail_send.py decides when: see send_messages() for the crash window.

A key is claimed again only when its earlier outcome leaves the message owed: a temporary failure (the next run
retries), a permanent failure to an address that has since changed (the unit's e-mail was corrected), or a
`pending` claim older than STALE_CLAIM. The last one is the crash case, decided deliberately: a pending claim that
old means its sender died between claim and outcome, and we cannot know whether the server got the message. We
send it again, with the same Message-ID (derived from the key), rather than leave a unit without its workbook or
its answer: a rare duplicate, which mail clients recognise by that Message-ID, beats a message silently lost. When
the sender is known to be dead (the ingest run that takes over its claim), reopen_abandoned() does not wait.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from schemas.tables import Assignment, EventLog, MailMessage, MailStatus, Unit, core_table, utcnow

STALE_CLAIM = timedelta(minutes=15)  # far longer than one message's SMTP conversation with all its retries
LOOKUP_CHUNK = 500  # keys per IN (...) look-up: well under SQLite's and PostgreSQL's bound-parameter limits
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
        # updated_at too: a stale PENDING row keeps its status and attempts when taken over; its time changes
        update(MailMessage).where(col(MailMessage.id) == row.id, col(MailMessage.status) == row.status,
                                  col(MailMessage.attempts) == row.attempts,
                                  col(MailMessage.updated_at) == row.updated_at)
        .values(status=MailStatus.PENDING, recipient=recipient, subject=subject, updated_at=now))
    session.commit()
    if getattr(taken, "rowcount", 0) != 1:
        return None
    session.refresh(row)
    return row


@dataclass(frozen=True)
class ClaimRequest:
    envelope: Envelope
    recipient: str  # To and Cc, comma separated
    subject: str


@dataclass(frozen=True)
class Claim:
    """An event key this run holds: its message is to be sent now, its outcome recorded with record_many()."""

    id: int
    envelope: Envelope
    recipient: str
    previous: tuple[MailStatus, str] | None = None  # status and recipient of a row taken over; None: a new row


@dataclass(frozen=True)
class Result:
    """How sending the message of a claim went."""

    claim: Claim
    status: MailStatus
    channel: str
    attempts: int
    error: str = ""
    eml_path: str = ""
    message_id: str = ""


def claim_many(*, session: Session, requests: Sequence[ClaimRequest],
               now: datetime | None = None) -> list[Claim | None]:
    """Claim the keys of a batch in one transaction and commit; None where claim() would give None.

    One look-up of the batch's keys and one multi-row insert of the new ones; a key owed again is taken over
    with the same conditional update as claim(). If another run inserts one of the keys between our look-up and
    our insert (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises the two), the new keys are claimed one by one.
    """
    now = now or utcnow()
    keys = list(dict.fromkeys(r.envelope.event_key for r in requests))
    table = core_table(MailMessage)
    found: dict[str, Any] = {}
    for chunk in _chunks(keys, LOOKUP_CHUNK):
        for hit in session.execute(sa_select(table.c.event_key, table.c.id, table.c.status, table.c.attempts,
                                             table.c.recipient, table.c.updated_at)
                                   .where(table.c.event_key.in_(chunk))):
            found[hit.event_key] = hit
    claims: dict[str, Claim | None] = {}
    fresh: list[ClaimRequest] = []
    inserted: dict[str, int] = {}
    for request in requests:
        key = request.envelope.event_key
        if key in claims:
            continue
        row = found.get(key)
        if row is None:
            fresh.append(request)
            claims[key] = None  # filled in below
            continue
        claims[key] = None
        if _owed_now(row.status, row.recipient, row.updated_at, request.recipient, now):
            taken = session.execute(
                update(MailMessage).where(col(MailMessage.id) == row.id, col(MailMessage.status) == row.status,
                                          col(MailMessage.attempts) == row.attempts,
                                          col(MailMessage.updated_at) == row.updated_at)
                .values(status=MailStatus.PENDING, recipient=request.recipient, subject=request.subject,
                        updated_at=now))
            if getattr(taken, "rowcount", 0) == 1:
                claims[key] = Claim(row.id, request.envelope, request.recipient, (row.status, row.recipient))
    if fresh:
        try:
            with session.begin_nested():
                inserted = dict(session.execute(
                    insert(MailMessage).returning(col(MailMessage.event_key), col(MailMessage.id)),
                    [_new_row(r, now) for r in fresh]).all())
        except IntegrityError:
            pass  # claimed one by one below
        for request in fresh:
            key = request.envelope.event_key
            if key in inserted:
                claims[key] = Claim(inserted[key], request.envelope, request.recipient)
    session.commit()
    for request in fresh:
        key = request.envelope.event_key
        if key not in inserted:  # lost the insert race: the claim of one key tells which are ours
            won = claim(session=session, envelope=request.envelope, recipient=request.recipient,
                        subject=request.subject, now=now)
            if won is not None and won.id is not None:
                claims[key] = Claim(won.id, request.envelope, request.recipient)
    seen: set[str] = set()
    out: list[Claim | None] = []
    for request in requests:  # an event listed twice in one batch is sent once
        key = request.envelope.event_key
        out.append(None if key in seen else claims.get(key))
        seen.add(key)
    return out


def refresh_claims(*, session: Session, claims: Sequence[Claim], now: datetime | None = None) -> None:
    """Stamp claims still pending as claimed now and commit: a long SMTP batch keeps its later claims fresh,
    so no other run takes them over as stale while they wait their turn."""
    for chunk in _chunks([c.id for c in claims], LOOKUP_CHUNK):
        session.execute(update(MailMessage).where(col(MailMessage.id).in_(chunk),
                                                  col(MailMessage.status) == MailStatus.PENDING)
                        .values(updated_at=now or utcnow()))
    session.commit()


def release_claims(*, session: Session, claims: Sequence[Claim]) -> None:
    """Give back claims whose messages were never tried (the run stopped first) and commit: a new key is
    removed, a key taken over gets its earlier status back, so the next run owes them as before."""
    table = core_table(MailMessage)
    new = [c.id for c in claims if c.previous is None]
    for chunk in _chunks(new, LOOKUP_CHUNK):
        session.execute(delete(MailMessage).where(col(MailMessage.id).in_(chunk),
                                                  col(MailMessage.status) == MailStatus.PENDING))
    taken = [{"b_id": c.id, "b_status": c.previous[0], "b_recipient": c.previous[1]}
             for c in claims if c.previous is not None]
    if taken:
        session.execute(update(table).where(table.c.id == bindparam("b_id"),
                                            table.c.status == MailStatus.PENDING)
                        .values(status=bindparam("b_status"), recipient=bindparam("b_recipient")), taken)
    session.commit()


def reopen_abandoned(*, session: Session, keys: Sequence[str], before: datetime) -> None:
    """Make owed at once the pending claims of a run known to be dead, and commit: each is failed-temporary, so
    the next claim takes it over, rather than after STALE_CLAIM.

    The caller knows: it holds the files these messages answer, which only the run whose claim folder it took over
    held before (the ingest flow, tasks/resume.py). before: when it took over; a claim made since then is a live
    run's (a catch-up pass of the chase flow, say) and is left alone. The dead run may have written or sent the
    message before it died: an .eml is written again to the same file; over SMTP it goes again with the same
    Message-ID, as for a stale claim.
    """
    table = core_table(MailMessage)
    cutoff = before if before.tzinfo else before.replace(tzinfo=UTC)
    for chunk in _chunks(list(keys), LOOKUP_CHUNK):
        stale = [{"b_id": row.id, "b_at": row.updated_at} for row in session.execute(
            sa_select(table.c.id, table.c.updated_at).where(table.c.event_key.in_(chunk),
                                                            table.c.status == MailStatus.PENDING))
            if (row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)) <= cutoff]
        if stale:  # only if still pending as read: a run taking it over meanwhile has changed updated_at
            session.execute(update(table).where(table.c.id == bindparam("b_id"),
                                                table.c.status == MailStatus.PENDING,
                                                table.c.updated_at == bindparam("b_at"))
                            .values(status=MailStatus.FAILED_TEMPORARY, last_error="发送进程中断，重新发送"), stale)
    session.commit()


def record_many(*, session: Session, results: Sequence[Result]) -> None:
    """Record how sending went, on the ledger, the event log and (for a unit) its assignment; one commit."""
    if not results:
        return
    now = utcnow()
    table = core_table(MailMessage)
    session.execute(
        update(table).where(table.c.id == bindparam("b_id"))
        .values(status=bindparam("b_status"), channel=bindparam("b_channel"), last_error=bindparam("b_error"),
                eml_path=bindparam("b_path"), attempts=table.c.attempts + bindparam("b_attempts"),
                message_id=bindparam("b_message_id"), updated_at=now),
        [{"b_id": r.claim.id, "b_status": r.status, "b_channel": r.channel, "b_error": r.error,
          "b_path": r.eml_path, "b_attempts": r.attempts, "b_message_id": r.message_id} for r in results])
    delivery: dict[tuple[int, str], str | None] = {}  # per assignment, the last outcome wins (as one by one)
    for r in results:
        env = r.claim.envelope
        if env.campaign_id is not None and env.unit_code and r.status in {*SETTLED, MailStatus.FAILED_PERMANENT}:
            delivery[(env.campaign_id, env.unit_code)] = (
                f"{r.claim.recipient or '（无地址）'}：{r.error}" if r.status is MailStatus.FAILED_PERMANENT else None)
    _mark_assignments(session, delivery)
    session.execute(insert(EventLog), [
        {"at": now, "campaign_id": r.claim.envelope.campaign_id, "unit_code": r.claim.envelope.unit_code,
         "kind": f"{'reminder' if r.claim.envelope.kind in CHASE_KINDS else 'mail'}.{r.status.value}",
         "detail": {"event_key": r.claim.envelope.event_key, "kind": r.claim.envelope.kind,
                    "level": r.claim.envelope.level, "channel": r.channel, "recipient": r.claim.recipient,
                    "error": r.error}}
        for r in results])
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
    return _owed_now(row.status, row.recipient, row.updated_at, recipient, now)


def _owed_now(status: MailStatus, was_for: str, updated_at: datetime, recipient: str, now: datetime) -> bool:
    if status in SETTLED:
        return False
    if status is MailStatus.FAILED_PERMANENT:
        return was_for != recipient  # refused for good, unless the address has changed since
    if status is MailStatus.PENDING:
        claimed = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=UTC)
        return now - claimed > STALE_CLAIM
    return True  # failed-temporary: try again


def _new_row(request: ClaimRequest, now: datetime) -> dict[str, Any]:
    env = request.envelope
    return {"event_key": env.event_key, "kind": env.kind, "campaign_id": env.campaign_id,
            "unit_code": env.unit_code, "day": env.day, "level": env.level, "channel": "",
            "status": MailStatus.PENDING, "attempts": 0, "last_error": "", "recipient": request.recipient,
            "subject": request.subject, "message_id": "", "eml_path": "", "created_at": now, "updated_at": now}


def _mark_assignments(session: Session, delivery: dict[tuple[int, str], str | None]) -> None:
    """Set (or, once mail gets through again, clear) the units' delivery errors on their assignments."""
    table = core_table(Assignment)
    unit_id = select(col(Unit.id)).where(col(Unit.code) == bindparam("b_code")).scalar_subquery()
    cleared = [{"b_campaign": c, "b_code": u} for (c, u), error in delivery.items() if error is None]
    if cleared:
        session.execute(update(table).where(table.c.campaign_id == bindparam("b_campaign"),
                                            table.c.unit_id == unit_id, table.c.delivery_error.is_not(None))
                        .values(delivery_error=None), cleared)
    failed = [{"b_campaign": c, "b_code": u, "b_error": e} for (c, u), e in delivery.items() if e is not None]
    if failed:
        session.execute(update(table).where(table.c.campaign_id == bindparam("b_campaign"),
                                            table.c.unit_id == unit_id)
                        .values(delivery_error=bindparam("b_error")), failed)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
