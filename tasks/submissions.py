"""Store examined returns: the submission, its figures and its verdict, all or nothing per file.

A batch of files shares one database transaction (one commit per batch, not per file: commits dominate the cost),
and each file sits in its own SAVEPOINT, so a file that fails to store leaves no trace and the others still land.
The same bytes twice in one campaign are recognised by their sha256 and stored once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from schemas.form_spec import CellType, FormSpec
from schemas.tables import Assignment, AssignmentStatus, EventLog, Submission, SubmissionValue, Unit, Verdict
from tasks.ingest import Examination

log = logging.getLogger(__name__)
VALUES_TABLE: Table = SubmissionValue.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation


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
    """Store each examined file in its own savepoint; the caller commits the batch."""
    # what every file needs to know is read once for the batch, not queried file by file
    unit_ids = dict(session.exec(select(Unit.code, Unit.id)).all())
    shas = [exam.incoming.sha256 for exam in examinations]
    known = {s.sha256: s for s in session.exec(select(Submission).where(
        Submission.campaign_id == campaign_id, col(Submission.sha256).in_(shas))).all()}
    assignments = {a.unit_id: a for a in session.exec(
        select(Assignment).where(Assignment.campaign_id == campaign_id)).all()}
    versions: dict[int | None, int] = {uid: int(n) for uid, n in session.exec(
        select(Submission.unit_id, func.count()).where(Submission.campaign_id == campaign_id)
        .group_by(col(Submission.unit_id))).all()}
    stored = []
    for exam in examinations:
        earlier = known.get(exam.incoming.sha256)
        if earlier is not None and earlier.id is not None:
            stored.append(Stored(earlier.id, exam.unit_code, earlier.verdict, earlier.version, True, exam))
            continue
        unit_id = unit_ids.get(exam.unit_code) if exam.unit_code else None
        try:
            with session.begin_nested():
                item = _store_one(session, campaign_id, form, exam, unit_id, assignments.get(unit_id or -1),
                                  versions.get(unit_id, 0) + 1 if unit_id is not None else 1)
            stored.append(item)
            known[exam.incoming.sha256] = session.get_one(Submission, item.submission_id)
            if unit_id is not None:
                versions[unit_id] = versions.get(unit_id, 0) + 1
        except IntegrityError:
            # another ingest run stored the same bytes between our look-up and our insert
            log.warning("file %s stored concurrently by another run", exam.incoming.name)
            again = session.exec(select(Submission).where(Submission.campaign_id == campaign_id,
                                                          Submission.sha256 == exam.incoming.sha256)).one()
            assert again.id is not None
            stored.append(Stored(again.id, exam.unit_code, again.verdict, again.version, True, exam))
    return stored


def _store_one(session: Session, campaign_id: int, form: FormSpec, exam: Examination, unit_id: int | None,
               assignment: Assignment | None, version: int) -> Stored:
    verdict = Verdict.ACCEPTED if exam.accepted else Verdict.REJECTED
    replaced = None
    if assignment is not None and assignment.accepted_submission_id and verdict is Verdict.ACCEPTED:
        replaced = session.get(Submission, assignment.accepted_submission_id)
    errors = sum(1 for i in exam.issues if i.is_error)
    incoming = exam.incoming
    received_at = datetime.fromisoformat(incoming.received_at_iso)
    submission = Submission(
        campaign_id=campaign_id, unit_id=unit_id, received_at=received_at, channel=incoming.channel,
        sender=incoming.sender, original_name=incoming.name, sha256=incoming.sha256,
        archive_path=incoming.archive_path, size=incoming.size, verdict=verdict, version=version,
        replaces_id=replaced.id if replaced else None,
        error_count=errors, warning_count=len(exam.issues) - errors, issues=[i.public() for i in exam.issues],
    )
    session.add(submission)
    session.flush()
    assert submission.id is not None
    if exam.values:
        # Core executemany: the ORM's bulk path costs ~10 us a row, and a return has 200 rows
        session.connection().execute(VALUES_TABLE.insert(), [
            {"submission_id": submission.id, "key": key, "value": storage_text(form, key, value)}
            for key, value in exam.values.items()
        ])
    if assignment is not None:
        assignment.last_submission_at = received_at
        assignment.last_submission_id = submission.id
        assignment.issue_count = errors
        assignment.status = AssignmentStatus.ACCEPTED if verdict is Verdict.ACCEPTED else AssignmentStatus.REJECTED
        if verdict is Verdict.ACCEPTED:
            assignment.accepted_submission_id = submission.id
        session.add(assignment)
    session.add(EventLog(campaign_id=campaign_id, unit_code=exam.unit_code, kind=f"submission.{verdict.value}",
                         detail={"submission_id": submission.id, "file": incoming.name, "errors": errors,
                                 "version": version, "channel": incoming.channel}))
    return Stored(submission.id, exam.unit_code, verdict, version, False, exam,
                  replaced.version if replaced else None)


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
