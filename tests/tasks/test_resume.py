"""A file found stored from the very path it is held at is its own return (a dead run stored it); others are duplicates.

The crash tests (tests/crash/) show it end to end with killed processes; this is the rule itself, fast.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from tasks.db import get_engine
from tasks.ingest import Examination, Incoming
from tasks.intake import load_ingest_context, store_received
from tasks.resume import own_returns
from tests.conftest import DEADLINE
from tests.factories import register_units

pytestmark = pytest.mark.usefixtures("prefect_harness")
YEAR = 2021


def _exam(path: Path, data: bytes, minute: int) -> Examination:
    incoming = Incoming(name=path.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                        archive_path=f"/archive/{path.name}", received_at_iso=datetime(
                            2022, 1, 10, 1, minute, tzinfo=UTC).isoformat(), source_path=str(path))
    return Examination(incoming, "T001", figures='{"apply.new.total": "2"}')


def test_only_a_file_stored_from_its_own_path_is_answered_as_stored(settings: Settings, units_file: Path,
                                                                    form: FormSpec) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    dead = settings.inbox_dir(YEAR) / ".claimed" / "20220110T010000-0badc0de"
    first, second = b"the first return", b"the second return"
    with Session(get_engine(settings.db_url)) as session:
        context = load_ingest_context(session=session, form=form, year=YEAR)
        # the dead run stored these two, and the copy of the first as a duplicate; then it died
        store_received(session=session, context=context, examinations=[
            _exam(dead / "第1版.xlsx", first, 1), _exam(dead / "副本.xlsx", first, 1),
            _exam(dead / "第2版.xlsx", second, 2)])
        session.commit()

        # the next run holds the same files (and the same first return sent again, elsewhere): all found stored
        again = store_received(session=session, context=context, examinations=[
            _exam(dead / "第1版.xlsx", first, 1), _exam(dead / "副本.xlsx", first, 1),
            _exam(dead / "第2版.xlsx", second, 2),
            _exam(settings.inbox_dir(YEAR) / ".claimed" / "20220111T010000-1badc0de" / "第1版.xlsx", first, 1)])
        answered, resumed = own_returns(session=session, campaign_id=context.campaign.id, stored=again)

    assert [s.duplicate for s in again] == [True] * 4
    assert [(s.duplicate, s.version, s.replaces_version) for s in answered] == [
        (False, 1, None), (True, 1, None), (False, 2, 1), (True, 1, None)]
    assert resumed == {answered[0].submission_id, answered[2].submission_id}
