"""Ingest runs at the same time, as real processes, on SQLite and on PostgreSQL: no return stored twice, none lost.

Each unit sends ten versions of its return (one of them breaks 勾稽关系), every file also in copies. The runs are
released at the same instant, either four over one inbox (they must split it, each file stored and answered once)
or two over two inboxes holding the same files (they must store every distinct file once between them, and agree
on each unit's latest accepted return). tests/crash/ kills runs, some of them among others at work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from sqlmodel import Session, col, func, select

from cli.simulate import fill_by_names
from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Assignment, MailMessage, MailStatus, Submission, Unit, Verdict
from tasks.db import get_engine
from tests.conftest import DEADLINE
from tests.factories import register_units, valid_figures

pytestmark = pytest.mark.usefixtures("prefect_harness")
YEAR = 2021
VERSIONS = 10
COPIES = 4
ROOT = Path(__file__).resolve().parents[2]


def _returns(settings: Settings, form: FormSpec, folder: Path) -> dict[str, list[tuple[Path, datetime, bool]]]:
    """Ten returns a unit, arriving a minute apart, into folder: (path, arrival, should be accepted)."""
    start = datetime(2022, 1, 10, 1, 0, tzinfo=UTC)
    made: dict[str, list[tuple[Path, datetime, bool]]] = {}
    workbooks = sorted((settings.outbox_dir(YEAR) / "workbooks").glob("*.xlsx"))
    for n, issued in enumerate(workbooks):
        code = issued.stem.split("-")[1]
        for v in range(VERSIONS):
            good = v != 7  # the eighth return breaks 勾稽关系
            figures = valid_figures(form, active__license__decisions=100 + v) if good else valid_figures(
                form, apply__new__natural_person=9)
            path = fill_by_names(issued, folder / f"{code}-第{v + 1}版.xlsx", figures)
            arrival = start + timedelta(minutes=10 * v + n)
            os.utime(path, (arrival.timestamp(), arrival.timestamp()))
            made.setdefault(code, []).append((path, arrival, good))
    return made


def _copies(folder: Path) -> None:
    """Every file again under other names (same bytes, same arrival): stored once, answered each time."""
    for path in sorted(folder.glob("*.xlsx")):
        for c in range(COPIES - 1):
            shutil.copy2(path, path.with_name(f"副本{c}-{path.name}"))


def _run_together(inboxes: list[Path], gate: Path, settings: Settings) -> list[dict[str, float]]:
    # small batches: many short store transactions, so that the runs interleave
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "NIANBAO_BATCH_SIZE": "10",
           "NIANBAO_HOME": str(settings.home)}
    runs = [subprocess.Popen([sys.executable, "-m", "tests.concurrency.run_ingest", str(YEAR), str(inbox), str(gate)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for inbox in inboxes]
    deadline = time.monotonic() + 120
    while len(list(gate.parent.glob(f"{gate.name}.ready-*"))) < len(runs):  # all started and imported everything
        assert time.monotonic() < deadline, "ingest processes did not start"
        assert all(r.poll() is None for r in runs), [r.communicate() for r in runs]
        time.sleep(0.05)
    gate.touch()
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert max(r["started"] for r in results) < min(r["ended"] for r in results), "not all at work at once"
    return results


def _check_store(settings: Settings, made: dict[str, list[tuple[Path, datetime, bool]]]) -> None:
    with Session(get_engine(settings.db_url)) as session:
        submissions = session.exec(select(Submission)).all()
        assert len(submissions) == sum(len(v) for v in made.values())  # each distinct file once
        assert len({s.sha256 for s in submissions}) == len(submissions)
        for code, returns in made.items():
            unit = session.exec(select(Unit).where(Unit.code == code)).one()
            mine = [s for s in submissions if s.unit_id == unit.id]
            assert sorted(s.version for s in mine) == list(range(1, VERSIONS + 1))  # numbered once each
            assert Counter(s.verdict for s in mine) == {Verdict.ACCEPTED: VERSIONS - 1, Verdict.REJECTED: 1}
            newest_good = max((r for r in returns if r[2]), key=lambda r: r[1])
            assignment = session.exec(select(Assignment).where(Assignment.unit_id == unit.id)).one()
            accepted = session.get_one(Submission, assignment.accepted_submission_id)
            assert accepted.original_name.endswith(newest_good[0].name)  # the latest arrival, whoever stored it
        events = session.exec(select(func.count()).select_from(Submission).where(
            col(Submission.replaces_id).is_not(None))).one()
        assert events >= len(made)  # resubmissions replaced earlier accepted returns


def _check_answered_once(settings: Settings, files: int) -> None:
    """One .txt answer a file (a copy's says it is one), one answer mail a return, each written once."""
    answers = list((settings.outbox_dir(YEAR) / "answers").rglob("*.txt"))
    assert len(answers) == files
    with Session(get_engine(settings.db_url)) as session:
        submissions = session.exec(select(Submission.id)).all()
        ledger = session.exec(select(MailMessage).where(col(MailMessage.event_key).startswith("answer:"))).all()
    assert sorted(m.event_key for m in ledger) == sorted(f"answer:{sid}" for sid in submissions)
    assert all(m.status is MailStatus.WRITTEN and m.attempts == 1 for m in ledger)
    mails = [p for p in (settings.outbox_dir(YEAR) / "mail").rglob("*.eml") if "answer_" in p.name]
    assert sorted(p.name.rpartition("answer_")[2] for p in mails) == sorted(f"{sid}.eml" for sid in submissions)


def _processed(settings: Settings) -> list[Path]:
    return list((settings.campaign_dir(YEAR) / "processed").rglob("*.xlsx"))


def test_four_runs_over_one_inbox_split_it(settings: Settings, units_file: Path, form: FormSpec,
                                           tmp_path: Path) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    inbox = settings.inbox_dir(YEAR)
    made = _returns(settings, form, inbox)
    _copies(inbox)
    files = len(list(inbox.glob("*.xlsx")))

    results = _run_together([inbox] * 4, tmp_path / "go", settings)

    assert sum(r["files"] for r in results) == files  # every file taken by exactly one run
    assert sum(r["accepted"] + r["rejected"] for r in results) == sum(len(v) for v in made.values())
    assert len(_processed(settings)) == files and list(inbox.glob("**/*.xlsx")) == []
    assert not (inbox / ".claimed").exists()
    _check_store(settings, made)
    _check_answered_once(settings, files)


def test_two_runs_over_the_same_files_store_each_once(settings: Settings, units_file: Path, form: FormSpec,
                                                      tmp_path: Path) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    first, second = tmp_path / "inbox-a", tmp_path / "inbox-b"
    made = _returns(settings, form, first)
    _copies(first)
    shutil.copytree(first, second)  # copy2: the same arrival times
    files = len(list(first.glob("*.xlsx")))

    results = _run_together([first, second], tmp_path / "go", settings)

    assert [r["files"] for r in results] == [files, files]
    new = [r["accepted"] + r["rejected"] for r in results]
    assert sum(new) == sum(len(v) for v in made.values())  # never twice, never lost
    assert len(_processed(settings)) == 2 * files
    _check_store(settings, made)
