"""Store examined returns: the submission, its figures and its verdict, all or nothing.

A batch of files is written in a handful of statements (one multi-row insert per table, COPY on PostgreSQL, the
figures of a file as one JSON text made by the examination), not file by file through the ORM: per-object ORM work
cost ~2 ms a file, more than reading and checking it.
The batch sits in a SAVEPOINT; should it fail on a unique key (another ingest run stored one of its files between
our look-up and our insert), it is rolled back and stored again one file per savepoint, so the files the other run
stored become duplicates and the rest still land. The same bytes twice from one unit in a campaign are stored once
(sha256); the same bytes from another unit are that unit's own return (rejected: a workbook not its own).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, tuple_, update
from sqlalchemy import select as sa_select  # sqlmodel's select types at most 4 columns
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from schemas.tables import (
    Assignment,
    AssignmentStatus,
    Campaign,
    EventLog,
    Submission,
    Unit,
    Verdict,
    core_table,
    utcnow,
)
from tasks.admission import LOCKED_STATES
from tasks.ingest import Examination
from tasks.pg_copy import copy_rows, copy_supported

log = logging.getLogger(__name__)
SUBMISSIONS = core_table(Submission)
ASSIGNMENTS = core_table(Assignment)
EVENTS = core_table(EventLog)


@dataclass(frozen=True)
class Stored:
    """What became of one file: its submission (new or the earlier identical one) and whether it was new."""

    submission_id: int
    unit_code: str | None
    verdict: Verdict
    version: int
    duplicate: bool
    examination: Examination
    replaces_version: int | None = None  # the accepted return this one supersedes
    locked: bool = False  # stored after the year's report was approved: it changes nothing consolidated
    repeats_version: int | None = None  # the unit's previous return, whose figures this one repeats exactly


def store_examinations(*, session: Session, campaign_id: int, examinations: list[Examination]) -> list[Stored]:
    """Store a batch of examined files; the caller commits."""
    try:
        with session.begin_nested():
            return _store_batch(session.connection(), campaign_id, examinations)
    except IntegrityError:
        log.warning("a file of this batch was stored concurrently by another run; storing file by file")
    stored = []
    for exam in examinations:
        try:
            with session.begin_nested():
                stored += _store_batch(session.connection(), campaign_id, [exam])
        except IntegrityError:
            with session.begin_nested():  # now the other run's row is visible: a duplicate
                stored += _store_batch(session.connection(), campaign_id, [exam])
    return stored


@dataclass
class _Planned:
    """A new submission to insert; id is known once inserted."""

    exam: Examination
    unit_id: int | None
    verdict: Verdict
    version: int
    errors: int
    replaces: _Planned | tuple[int, int] | None  # in-batch predecessor, or (id, version) of the stored one
    consolidated: bool = False  # becomes the unit's accepted return (the latest arrival that was accepted)
    repeats: int | None = None  # version of the unit's previous return, when the figures are the same
    newest: bool = False  # the unit's latest arrival so far
    id: int | None = None

    def replaces_id(self) -> int | None:
        return self.replaces.id if isinstance(self.replaces, _Planned) else (self.replaces or (None,))[0]

    def replaces_version(self) -> int | None:
        return self.replaces.version if isinstance(self.replaces, _Planned) else (self.replaces or (0, None))[1]


def _store_batch(conn: Connection, campaign_id: int, exams: Sequence[Examination]) -> list[Stored]:
    # One writer per campaign at a time (a row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already is one): two
    # runs storing at once would otherwise number a unit's versions twice or point it at an older return.
    state = conn.execute(select(Campaign.state).where(Campaign.id == campaign_id).with_for_update()).scalar_one()
    # after the year's report is approved, its figures stay as approved: a good return is kept as HELD and the
    # unit's assignment is left alone (tasks/admission.py admits one as a recorded exception)
    locked = state in LOCKED_STATES
    codes = {e.unit_code for e in exams if e.unit_code}
    unit_ids: dict[str, int] = dict(conn.execute(select(Unit.code, Unit.id).where(col(Unit.code).in_(codes))).all())
    ids = set(unit_ids.values())
    # the same bytes are the same return only from the same unit: unit A sending B's file is A's own (wrong) return
    known: dict[tuple[str, int | None], tuple[int, Verdict, int] | _Planned] = {
        (sha, uid): (sid, verdict, version) for sid, sha, uid, verdict, version in conn.execute(
            sa_select(SUBMISSIONS.c.id, SUBMISSIONS.c.sha256, SUBMISSIONS.c.unit_id, SUBMISSIONS.c.verdict,
                      SUBMISSIONS.c.version).where(
                SUBMISSIONS.c.campaign_id == campaign_id,
                SUBMISSIONS.c.sha256.in_({e.incoming.sha256 for e in exams})))}
    versions: dict[int, int] = {uid: int(n) for uid, n in conn.execute(
        select(Submission.unit_id, func.count()).where(Submission.campaign_id == campaign_id,
                                                       col(Submission.unit_id).in_(ids))
        .group_by(col(Submission.unit_id)))}
    previous = _latest_figures(conn, campaign_id, versions)
    accepted_now: dict[int, _Planned | tuple[int, int] | None] = {}
    accepted_at: dict[int, datetime] = {}
    newest_at: dict[int, datetime] = {}
    assignment_of: dict[int, int] = {}
    for aid, uid, last_at, accepted_id, accepted_version, accepted_received in conn.execute(
            sa_select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.unit_id, ASSIGNMENTS.c.last_submission_at,
                      ASSIGNMENTS.c.accepted_submission_id, SUBMISSIONS.c.version, SUBMISSIONS.c.received_at)
            .outerjoin(SUBMISSIONS, SUBMISSIONS.c.id == ASSIGNMENTS.c.accepted_submission_id)
            .where(ASSIGNMENTS.c.campaign_id == campaign_id, ASSIGNMENTS.c.unit_id.in_(ids))):
        assignment_of[uid] = aid
        accepted_now[uid] = (accepted_id, accepted_version) if accepted_id is not None else None
        if accepted_received is not None:
            accepted_at[uid] = _aware(accepted_received)
        if last_at is not None:
            newest_at[uid] = _aware(last_at)

    order: list[_Planned | tuple[Examination, tuple[int, Verdict, int] | _Planned]] = []
    planned: list[_Planned] = []
    for exam in exams:
        unit_id = unit_ids.get(exam.unit_code) if exam.unit_code else None
        earlier = known.get((exam.incoming.sha256, unit_id))
        if earlier is not None:
            order.append((exam, earlier))
            continue
        verdict = Verdict.ACCEPTED if exam.accepted else Verdict.REJECTED
        if locked and verdict is Verdict.ACCEPTED:
            verdict = Verdict.HELD
        item = _Planned(exam, unit_id, verdict, 1, sum(1 for i in exam.issues if i.is_error), None)
        if unit_id is not None:
            item.version = versions[unit_id] = versions.get(unit_id, 0) + 1
            last = previous.get(unit_id)
            if last is not None and exam.figures != EMPTY_FIGURES and last[1] == exam.figures:
                item.repeats = last[0]
            previous[unit_id] = (item.version, exam.figures)
        if unit_id is not None and not locked:
            # a return that arrived before the unit's latest (stored first by a concurrent run) is kept, but
            # never displaces the newer one
            received = _received(item)
            item.newest = received >= newest_at.get(unit_id, received)
            if item.newest:
                newest_at[unit_id] = received
            if verdict is Verdict.ACCEPTED and received >= accepted_at.get(unit_id, received):
                item.consolidated, item.replaces = True, accepted_now.get(unit_id)
                accepted_now[unit_id], accepted_at[unit_id] = item, received
        known[(exam.incoming.sha256, unit_id)] = item
        planned.append(item)
        order.append(item)

    if planned:
        _insert(conn, campaign_id, planned, assignment_of)
    return [_stored(entry, locked) for entry in order]


EMPTY_FIGURES = "{}"  # nothing read (an unidentified or unreadable file): nothing to compare


def _latest_figures(conn: Connection, campaign_id: int, versions: dict[int, int]) -> dict[int, tuple[int, str]]:
    """Each unit's latest return so far in the campaign (version, figures), for the units with one."""
    if not versions:
        return {}
    return {uid: (version, figures) for uid, version, figures in conn.execute(
        sa_select(SUBMISSIONS.c.unit_id, SUBMISSIONS.c.version, SUBMISSIONS.c.figures).where(
            SUBMISSIONS.c.campaign_id == campaign_id,
            tuple_(SUBMISSIONS.c.unit_id, SUBMISSIONS.c.version).in_(list(versions.items()))))}


def _insert(conn: Connection, campaign_id: int, planned: list[_Planned], assignment_of: dict[int, int]) -> None:
    rows = [_submission_row(campaign_id, p) for p in planned]
    bulk = copy_supported(conn)  # PostgreSQL: COPY, the ids drawn from the sequence first
    if bulk:
        new_ids = copy_rows(conn, SUBMISSIONS, rows, new_ids=True)
    else:
        new_ids = [new_id for (new_id,) in conn.execute(
            SUBMISSIONS.insert().returning(SUBMISSIONS.c.id, sort_by_parameter_order=True), rows)]
    for item, new_id in zip(planned, new_ids, strict=True):
        item.id = new_id
    chained = [{"sid": p.id, "rid": p.replaces_id()} for p in planned if isinstance(p.replaces, _Planned)]
    if chained:  # an accepted resubmission replacing one accepted earlier in this very batch
        conn.execute(update(SUBMISSIONS).where(SUBMISSIONS.c.id == bindparam("sid"))
                     .values(replaces_id=bindparam("rid")), chained)
    events = [_event_row(campaign_id, p) for p in planned]
    if bulk:
        copy_rows(conn, EVENTS, events)
    else:
        conn.execute(EVENTS.insert(), events)
    latest: dict[int, _Planned] = {p.unit_id: p for p in planned if p.unit_id in assignment_of and p.newest}
    if latest:
        conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("aid")).values(
            last_submission_at=bindparam("at"), last_submission_id=bindparam("sid"),
            issue_count=bindparam("errors"), status=bindparam("st")), [
            {"aid": assignment_of[uid], "at": _received(p), "sid": p.id, "errors": p.errors,
             "st": AssignmentStatus.ACCEPTED if p.verdict is Verdict.ACCEPTED else AssignmentStatus.REJECTED}
            for uid, p in latest.items()])
    accepted: dict[int, _Planned] = {p.unit_id: p for p in planned if p.unit_id in assignment_of and p.consolidated}
    if accepted:
        conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("aid"))
                     .values(accepted_submission_id=bindparam("sid")),
                     [{"aid": assignment_of[uid], "sid": p.id} for uid, p in accepted.items()])


def _submission_row(campaign_id: int, p: _Planned) -> dict[str, Any]:
    incoming = p.exam.incoming
    return {
        "campaign_id": campaign_id, "unit_id": p.unit_id, "received_at": _received(p), "channel": incoming.channel,
        "sender": incoming.sender, "original_name": incoming.name, "sha256": incoming.sha256,
        "archive_path": incoming.archive_path, "size": incoming.size, "verdict": p.verdict, "version": p.version,
        "replaces_id": None if isinstance(p.replaces, _Planned) else p.replaces_id(), "repeats_version": p.repeats,
        "error_count": p.errors, "warning_count": len(p.exam.issues) - p.errors,
        "issues": [i.public() for i in p.exam.issues], "figures": p.exam.figures,
        "texts": p.exam.texts,
    }


def _event_row(campaign_id: int, p: _Planned) -> dict[str, Any]:
    return {"at": utcnow(), "campaign_id": campaign_id, "unit_code": p.exam.unit_code,
            "kind": f"submission.{p.verdict.value}",
            "detail": {"submission_id": p.id, "file": p.exam.incoming.name, "errors": p.errors,
                       "version": p.version, "channel": p.exam.incoming.channel,
                       # where the file was stored from: a run taking over a dead run's claim tells by it which
                       # of the files it finds stored that run stored, and answers them (tasks/resume.py)
                       "source": p.exam.incoming.source_path}}


def _received(p: _Planned) -> datetime:
    return _aware(datetime.fromisoformat(p.exam.incoming.received_at_iso))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite gives UTC without a zone


def _stored(entry: _Planned | tuple[Examination, tuple[int, Verdict, int] | _Planned], locked: bool) -> Stored:
    if isinstance(entry, _Planned):
        assert entry.id is not None
        return Stored(entry.id, entry.exam.unit_code, entry.verdict, entry.version, False, entry.exam,
                      entry.replaces_version(), locked, entry.repeats)
    exam, earlier = entry
    if isinstance(earlier, _Planned):
        assert earlier.id is not None
        return Stored(earlier.id, exam.unit_code, earlier.verdict, earlier.version, True, exam, locked=locked)
    sid, verdict, version = earlier
    return Stored(sid, exam.unit_code, verdict, version, True, exam, locked=locked)


def submission_counts(*, session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.exec(select(Submission.verdict, func.count()).where(Submission.campaign_id == campaign_id)
                        .group_by(col(Submission.verdict))).all()
    return {str(verdict): int(n) for verdict, n in rows}
