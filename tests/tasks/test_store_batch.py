"""Storing a batch of examined returns, on SQLite (multi-row INSERT) and PostgreSQL (COPY): the rows as the ORM
reads them back, and a batch that meets another run's row on a unique key stored again file by file."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

import tasks.submissions
from schemas.issues import Issue
from schemas.settings import Settings
from schemas.tables import Assignment, AssignmentStatus, EventLog, Submission, Unit, Verdict
from tasks.db import get_engine
from tasks.ingest import Examination, Incoming
from tasks.submissions import SUBMISSIONS, store_examinations
from tests.factories import UNITS_CSV, bare_campaign

START = datetime(2022, 1, 10, 8, 0, tzinfo=UTC)


def _campaign(settings: Settings, tmp_path: Any) -> int:
    units_csv = tmp_path / "units.csv"
    units_csv.write_text(UNITS_CSV, encoding="utf-8")
    return bare_campaign(settings.db_url, units_csv)


def _exam(code: str, n: int, *issues: Issue) -> Examination:
    name = f"{code}-{n}.xlsx"
    incoming = Incoming(name=name, sha256=hashlib.sha256(name.encode()).hexdigest(), size=1000 + n,
                        archive_path=f"archive/{name}", received_at_iso=(START + timedelta(minutes=n)).isoformat(),
                        sender="张三 <t001@example.gov.cn>", source_path=f"inbox/{name}")
    return Examination(incoming, code, list(issues), figures=f'{{"apply.new.total":"{n}"}}',
                       texts='{"section.one":"概述"}')


def test_a_batch_is_stored_as_the_orm_reads_it_back(settings: Settings, tmp_path: Any) -> None:
    campaign_id = _campaign(settings, tmp_path)
    wrong = Issue(code="sum-mismatch", rule="R1", sheet="表三", cell="C5", found="3", expected="2")
    batch = [_exam("T001", 1, wrong), _exam("T001", 2), _exam("T002", 3), _exam("D001", 4)]
    engine = get_engine(settings.db_url)
    with Session(engine) as session:
        stored = store_examinations(session=session, campaign_id=campaign_id, examinations=batch)
        session.commit()
    assert [(s.unit_code, s.verdict, s.version, s.duplicate) for s in stored] == [
        ("T001", Verdict.REJECTED, 1, False), ("T001", Verdict.ACCEPTED, 2, False),
        ("T002", Verdict.ACCEPTED, 1, False), ("D001", Verdict.ACCEPTED, 1, False)]

    with Session(engine) as session:
        rows = session.exec(select(Submission).order_by(col(Submission.id))).all()
        assert [r.id for r in rows] == [s.submission_id for s in stored]
        first = rows[0]
        assert (first.original_name, first.size, first.sender, first.channel) == (
            "T001-1.xlsx", 1001, "张三 <t001@example.gov.cn>", "inbox")
        assert first.received_at.replace(tzinfo=first.received_at.tzinfo or UTC) == START + timedelta(minutes=1)
        assert first.issues == [wrong.public()] and (first.error_count, first.warning_count) == (1, 0)
        assert [r.figures for r in rows] == [f'{{"apply.new.total":"{n}"}}' for n in (1, 2, 3, 4)]
        assert rows[1].texts == '{"section.one":"概述"}' and rows[1].replaces_id is None
        events = session.exec(select(EventLog).order_by(col(EventLog.id))).all()
        submitted = [e for e in events if e.kind.startswith("submission.")]
        assert [(e.kind, e.unit_code, e.detail["submission_id"], e.detail["source"]) for e in submitted] == [
            (f"submission.{s.verdict.value}", s.unit_code, s.submission_id, f"inbox/{s.unit_code}-{n}.xlsx")
            for n, s in enumerate(stored, start=1)]
        assignments = {u.code: a for a, u in session.exec(
            select(Assignment, Unit).join(Unit, col(Unit.id) == col(Assignment.unit_id))).all()}
        t001 = assignments["T001"]
        assert (t001.status, t001.accepted_submission_id, t001.last_submission_id) == (
            AssignmentStatus.ACCEPTED, rows[1].id, rows[1].id)
        assert assignments["G001"].status is AssignmentStatus.ISSUED

    # a later batch: the next ids follow, the resubmission points at the return it replaces
    with Session(engine) as session:
        [again] = store_examinations(session=session, campaign_id=campaign_id, examinations=[_exam("T002", 5)])
        session.commit()
        assert again.submission_id > max(s.submission_id for s in stored)
        assert (again.version, again.replaces_version) == (2, 1)
        assert session.get(Submission, again.submission_id).replaces_id == stored[2].submission_id  # type: ignore


def test_a_batch_meeting_another_runs_row_is_stored_again_file_by_file(
        settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    campaign_id = _campaign(settings, tmp_path)
    batch = [_exam("T001", 1), _exam("T002", 2), _exam("D001", 3)]
    real_insert: Callable[..., None] = tasks.submissions._insert
    calls: list[int] = []

    def insert_after_another_run(conn: Connection, campaign_id: int, planned: list[Any], *args: Any) -> None:
        calls.append(len(planned))
        if len(calls) == 1:  # another run stores the batch's second file between our look-up and our insert
            unit_id = planned[1].unit_id
            conn.execute(SUBMISSIONS.insert(), {
                "campaign_id": campaign_id, "unit_id": unit_id, "received_at": START, "channel": "inbox",
                "sender": "", "original_name": "other-run.xlsx", "sha256": batch[1].incoming.sha256,
                "archive_path": "archive/x", "size": 1, "verdict": Verdict.ACCEPTED, "version": 1, "issues": [],
                "figures": "{}", "texts": "{}"})
        real_insert(conn, campaign_id, planned, *args)

    monkeypatch.setattr(tasks.submissions, "_insert", insert_after_another_run)
    with caplog.at_level(logging.WARNING, logger="tasks.submissions"), Session(get_engine(settings.db_url)) as session:
        stored = store_examinations(session=session, campaign_id=campaign_id, examinations=batch)
        session.commit()

    assert "stored concurrently by another run" in caplog.text  # the unique key's error, whatever the insert
    assert calls == [3, 1, 1, 1]  # the batch, then file by file (the injected row went with the batch's savepoint)
    assert [(s.unit_code, s.verdict, s.duplicate) for s in stored] == [
        ("T001", Verdict.ACCEPTED, False), ("T002", Verdict.ACCEPTED, False), ("D001", Verdict.ACCEPTED, False)]
    with Session(get_engine(settings.db_url)) as session:
        names = session.exec(select(Submission.original_name).order_by(col(Submission.id))).all()
    assert names == ["T001-1.xlsx", "T002-2.xlsx", "D001-3.xlsx"]


def test_a_return_repeating_the_units_previous_figures_names_that_return(settings: Settings, tmp_path: Any) -> None:
    """Different bytes (re-saved, or the old file sent again) with every figure as in the unit's previous return:
    the stored row and the result name that return, within a batch and across batches; anything else names none."""
    campaign_id = _campaign(settings, tmp_path)
    wrong = Issue(code="sum-mismatch", rule="R1", sheet="表三", cell="C5", found="3", expected="2")
    same = '{"apply.new.total":"7"}'
    engine = get_engine(settings.db_url)
    first = [replace(_exam("T001", 1, wrong), figures=same), replace(_exam("T001", 2, wrong), figures=same),
             _exam("T002", 3), replace(_exam("D001", 4), figures="{}")]
    with Session(engine) as session:
        stored = store_examinations(session=session, campaign_id=campaign_id, examinations=first)
        session.commit()
    assert [(s.unit_code, s.version, s.repeats_version) for s in stored] == [
        ("T001", 1, None), ("T001", 2, 1), ("T002", 1, None), ("D001", 1, None)]

    later = [replace(_exam("T001", 5), figures=same),  # accepted this time: the rules did not change, say
             replace(_exam("T002", 6), figures='{"apply.new.total":"4"}'),  # changed
             replace(_exam("D001", 7), figures="{}"),  # nothing read twice: nothing to compare
             _exam("T001", 3)]  # T002's earlier bytes from T001: its own return, its figures not T001's last
    with Session(engine) as session:
        again = store_examinations(session=session, campaign_id=campaign_id, examinations=later)
        session.commit()
    assert [(s.unit_code, s.version, s.duplicate, s.repeats_version) for s in again] == [
        ("T001", 3, False, 2), ("T002", 2, False, None), ("D001", 2, False, None), ("T001", 4, False, None)]
    with Session(engine) as session:
        rows = session.exec(select(Submission).order_by(col(Submission.id))).all()
    assert [r.repeats_version for r in rows] == [None, 1, None, None, 2, None, None, None]

    # the very same file again is a duplicate: it names the earlier return as itself, never as a repeat
    with Session(engine) as session:
        [dup] = store_examinations(session=session, campaign_id=campaign_id,
                                   examinations=[replace(_exam("T001", 5), figures=same)])
        session.commit()
    assert (dup.duplicate, dup.version, dup.repeats_version) == (True, 3, None)
