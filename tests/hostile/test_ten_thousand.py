"""10,000 returns dropped into the inbox at once go through the real ingest flow in one run: each is archived,
stored once and answered, and each unit ends with its latest return as the accepted one."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from flows.ingest_returns import ingest_returns
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Assignment, Submission, Unit, Verdict
from tasks.db import get_engine
from tasks.xlsx_patch import XlsxPatcher
from tests.channels import YEAR, open_campaign
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.usefixtures("prefect_harness")

FILES = 10_000
CODES = ["D001", "G001", "T001", "T002"]


@pytest.fixture
def database_url() -> Iterator[str | None]:
    """One backend, not both (25 s each): PostgreSQL, the database of an office that gets thousands of returns,
    where the suite has it, else SQLite. Storing is tested on both elsewhere (tests/tasks/test_store_batch.py)."""
    if not POSTGRES_URL:
        yield None
        return
    from tests.postgres import temporary_database

    with temporary_database(POSTGRES_URL) as url:
        yield url


def test_ten_thousand_returns_in_one_run(settings: Settings, units_file: Path, form: FormSpec) -> None:
    opened = open_campaign(settings, units_file, form)
    inbox = settings.inbox_dir(YEAR)
    inbox.mkdir(parents=True, exist_ok=True)
    licence = form.cell_by_key["active.license.decisions"]
    sheet = form.sheet_by_id[licence.sheet].name
    patchers = {code: XlsxPatcher(opened.issued(code).read_bytes()) for code in CODES}
    digests = set()
    moment = 1_640_000_000.0
    for i in range(FILES):  # the issued zeros and a 行政许可 figure of its own: every file passes, each different
        code = CODES[i % len(CODES)]
        data = patchers[code].render({sheet: {licence.address: i + 1}})
        path = inbox / f"{code}-{i:05d}.xlsx"
        path.write_bytes(data)
        os.utime(path, (moment + i, moment + i))
        digests.add(hashlib.sha256(data).hexdigest())
    assert len(digests) == FILES

    started = time.perf_counter()
    summary = ingest_returns(YEAR)
    seconds = time.perf_counter() - started

    assert (summary.files, summary.accepted, summary.rejected, summary.duplicates) == (FILES, FILES, 0, 0), seconds
    with Session(get_engine(settings.db_url)) as session:
        stored = session.exec(select(func.count(), func.count(func.distinct(Submission.sha256)))
                              .select_from(Submission)).one()
        assert tuple(stored) == (FILES, FILES)
        assert session.exec(select(func.count()).select_from(Submission)
                            .where(Submission.verdict != Verdict.ACCEPTED)).one() == 0
        latest = dict(session.exec(select(Unit.code, Submission.version)
                                   .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                                   .join(Submission, col(Submission.id) == col(Assignment.accepted_submission_id)))
                      .all())
    assert latest == {code: FILES // len(CODES) for code in CODES}
    archived = list(settings.archive_dir.rglob("*.xlsx"))
    assert {p.stem for p in archived} == digests
    answers = list((settings.outbox_dir(YEAR) / "answers").rglob("*.txt"))
    assert len(answers) == FILES
    assert not [p for p in inbox.rglob("*") if p.is_file()]
