"""Store examined returns: the submission, its figures and its verdict, all or nothing.

A batch of files is written in a handful of statements (one multi-row insert per table, one executemany of every
figure), not file by file through the ORM: per-object ORM work cost ~2 ms a file, more than reading and checking it.
The batch sits in a SAVEPOINT; should it fail on a unique key (another ingest run stored one of its files between
our look-up and our insert), it is rolled back and stored again one file per savepoint, so the files the other run
stored become duplicates and the rest still land. The same bytes twice in a campaign are stored once (sha256).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from schemas.form_spec import CellType, FormSpec
from schemas.tables import Assignment, AssignmentStatus, EventLog, Submission, SubmissionValue, Unit, Verdict, utcnow
from tasks.ingest import Examination

log = logging.getLogger(__name__)
# SQLModel sets __table__ at class creation
SUBMISSIONS: Table = Submission.__table__  # type: ignore[attr-defined]
VALUES: Table = SubmissionValue.__table__  # type: ignore[attr-defined]
ASSIGNMENTS: Table = Assignment.__table__  # type: ignore[attr-defined]
EVENTS: Table = EventLog.__table__  # type: ignore[attr-defined]


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


def store_examinations(*, session: Session, campaign_id: int, form: FormSpec,
                       examinations: list[Examination]) -> list[Stored]:
    """Store a batch of examined files; the caller commits."""
    try:
        with session.begin_nested():
            return _store_batch(session.connection(), campaign_id, form, examinations)
    except IntegrityError:
        log.warning("a file of this batch was stored concurrently by another run; storing file by file")
    stored = []
    for exam in examinations:
        try:
            with session.begin_nested():
                stored += _store_batch(session.connection(), campaign_id, form, [exam])
        except IntegrityError:
            with session.begin_nested():  # now the other run's row is visible: a duplicate
                stored += _store_batch(session.connection(), campaign_id, form, [exam])
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
    id: int | None = None

    def replaces_id(self) -> int | None:
        return self.replaces.id if isinstance(self.replaces, _Planned) else (self.replaces or (None,))[0]

    def replaces_version(self) -> int | None:
        return self.replaces.version if isinstance(self.replaces, _Planned) else (self.replaces or (0, None))[1]


def _store_batch(conn: Connection, campaign_id: int, form: FormSpec, exams: Sequence[Examination]) -> list[Stored]:
    codes = {e.unit_code for e in exams if e.unit_code}
    unit_ids: dict[str, int] = dict(conn.execute(select(Unit.code, Unit.id).where(col(Unit.code).in_(codes))).all())
    ids = set(unit_ids.values())
    known: dict[str, tuple[int, Verdict, int] | _Planned] = {
        sha: (sid, verdict, version) for sid, sha, verdict, version in conn.execute(
            select(Submission.id, Submission.sha256, Submission.verdict, Submission.version).where(
                Submission.campaign_id == campaign_id,
                col(Submission.sha256).in_({e.incoming.sha256 for e in exams})))}
    versions: dict[int, int] = {uid: int(n) for uid, n in conn.execute(
        select(Submission.unit_id, func.count()).where(Submission.campaign_id == campaign_id,
                                                       col(Submission.unit_id).in_(ids))
        .group_by(col(Submission.unit_id)))}
    accepted_now: dict[int, _Planned | tuple[int, int] | None] = {}
    assignment_of: dict[int, int] = {}
    for aid, uid, accepted_id, accepted_version in conn.execute(
            select(Assignment.id, Assignment.unit_id, Assignment.accepted_submission_id, Submission.version)
            .outerjoin(Submission, col(Submission.id) == col(Assignment.accepted_submission_id))
            .where(Assignment.campaign_id == campaign_id, col(Assignment.unit_id).in_(ids))):
        assignment_of[uid] = aid
        accepted_now[uid] = (accepted_id, accepted_version) if accepted_id is not None else None

    order: list[_Planned | tuple[Examination, tuple[int, Verdict, int] | _Planned]] = []
    planned: list[_Planned] = []
    for exam in exams:
        earlier = known.get(exam.incoming.sha256)
        if earlier is not None:
            order.append((exam, earlier))
            continue
        unit_id = unit_ids.get(exam.unit_code) if exam.unit_code else None
        verdict = Verdict.ACCEPTED if exam.accepted else Verdict.REJECTED
        version = 1
        replaces = None
        if unit_id is not None:
            version = versions[unit_id] = versions.get(unit_id, 0) + 1
            if verdict is Verdict.ACCEPTED:
                replaces = accepted_now.get(unit_id)
        item = _Planned(exam, unit_id, verdict, version, sum(1 for i in exam.issues if i.is_error), replaces)
        if unit_id is not None and verdict is Verdict.ACCEPTED:
            accepted_now[unit_id] = item
        known[exam.incoming.sha256] = item
        planned.append(item)
        order.append(item)

    if planned:
        _insert(conn, campaign_id, form, planned, assignment_of)
    return [_stored(entry) for entry in order]


def _insert(conn: Connection, campaign_id: int, form: FormSpec, planned: list[_Planned],
            assignment_of: dict[int, int]) -> None:
    rows = [_submission_row(campaign_id, p) for p in planned]
    inserted = conn.execute(SUBMISSIONS.insert().returning(SUBMISSIONS.c.id, sort_by_parameter_order=True), rows)
    for item, (new_id,) in zip(planned, inserted, strict=True):
        item.id = new_id
    chained = [{"sid": p.id, "rid": p.replaces_id()} for p in planned if isinstance(p.replaces, _Planned)]
    if chained:  # an accepted resubmission replacing one accepted earlier in this very batch
        conn.execute(update(SUBMISSIONS).where(SUBMISSIONS.c.id == bindparam("sid"))
                     .values(replaces_id=bindparam("rid")), chained)
    _insert_values(conn, [(p.id, key, storage_text(form, key, value))
                          for p in planned for key, value in p.exam.values.items()])
    conn.execute(EVENTS.insert(), [_event_row(campaign_id, p) for p in planned])
    latest: dict[int, _Planned] = {p.unit_id: p for p in planned if p.unit_id in assignment_of}
    if latest:
        conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("aid")).values(
            last_submission_at=bindparam("at"), last_submission_id=bindparam("sid"),
            issue_count=bindparam("errors"), status=bindparam("st")), [
            {"aid": assignment_of[uid], "at": _received(p), "sid": p.id, "errors": p.errors,
             "st": AssignmentStatus.ACCEPTED if p.verdict is Verdict.ACCEPTED else AssignmentStatus.REJECTED}
            for uid, p in latest.items()])
    accepted: dict[int, _Planned] = {p.unit_id: p for p in planned
                                     if p.unit_id in assignment_of and p.verdict is Verdict.ACCEPTED}
    if accepted:
        conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("aid"))
                     .values(accepted_submission_id=bindparam("sid")),
                     [{"aid": assignment_of[uid], "sid": p.id} for uid, p in accepted.items()])


def _insert_values(conn: Connection, rows: list[tuple[int | None, str, str]]) -> None:
    """Every figure of the batch in one executemany at the driver: SQLAlchemy's per-row work would double it."""
    if not rows:
        return
    marks = {"qmark": "?, ?, ?", "numeric": ":1, :2, :3", "format": "%s, %s, %s",
             "pyformat": "%s, %s, %s"}[conn.dialect.paramstyle]
    conn.exec_driver_sql(f"INSERT INTO {VALUES.name} (submission_id, key, value) VALUES ({marks})", rows)


def _submission_row(campaign_id: int, p: _Planned) -> dict[str, Any]:
    incoming = p.exam.incoming
    return {
        "campaign_id": campaign_id, "unit_id": p.unit_id, "received_at": _received(p), "channel": incoming.channel,
        "sender": incoming.sender, "original_name": incoming.name, "sha256": incoming.sha256,
        "archive_path": incoming.archive_path, "size": incoming.size, "verdict": p.verdict, "version": p.version,
        "replaces_id": None if isinstance(p.replaces, _Planned) else p.replaces_id(),
        "error_count": p.errors, "warning_count": len(p.exam.issues) - p.errors,
        "issues": [i.public() for i in p.exam.issues],
    }


def _event_row(campaign_id: int, p: _Planned) -> dict[str, Any]:
    return {"at": utcnow(), "campaign_id": campaign_id, "unit_code": p.exam.unit_code,
            "kind": f"submission.{p.verdict.value}",
            "detail": {"submission_id": p.id, "file": p.exam.incoming.name, "errors": p.errors,
                       "version": p.version, "channel": p.exam.incoming.channel}}


def _received(p: _Planned) -> datetime:
    return datetime.fromisoformat(p.exam.incoming.received_at_iso)


def _stored(entry: _Planned | tuple[Examination, tuple[int, Verdict, int] | _Planned]) -> Stored:
    if isinstance(entry, _Planned):
        assert entry.id is not None
        return Stored(entry.id, entry.exam.unit_code, entry.verdict, entry.version, False, entry.exam,
                      entry.replaces_version())
    exam, earlier = entry
    if isinstance(earlier, _Planned):
        assert earlier.id is not None
        return Stored(earlier.id, exam.unit_code, earlier.verdict, earlier.version, True, exam)
    sid, verdict, version = earlier
    return Stored(sid, exam.unit_code, verdict, version, True, exam)


def storage_text(form: FormSpec, key: str, value: object) -> str:
    """The exact text a figure is stored as: whole numbers plain, decimals without a float's noise."""
    cell = form.cell_by_key[key]
    text = format(value, "f")
    if cell.type is CellType.INT:
        return str(int(text))
    return text


def submission_counts(*, session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.exec(select(Submission.verdict, func.count()).where(Submission.campaign_id == campaign_id)
                        .group_by(col(Submission.verdict))).all()
    return {str(verdict): int(n) for verdict, n in rows}
