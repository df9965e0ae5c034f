"""Examination in worker processes: same verdicts as in-process, bytes archived first, a dead worker recovered."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from sqlmodel import Session

from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from tasks.db import get_engine
from tasks.examine_pool import MIN_FILES_FOR_WORKERS, ExaminationPool
from tasks.ingest import Examination, IngestContext
from tasks.intake import load_ingest_context
from tests.conftest import DEADLINE
from tests.factories import register_units, return_workbook, valid_figures

pytestmark = pytest.mark.usefixtures("prefect_harness")
YEAR = 2021


def _inbox(settings: Settings, units_file: Path, form: FormSpec) -> tuple[IngestContext, list[str]]:
    """An opened campaign and an inbox holding: a good return, a broken 勾稽关系, a file that is no workbook."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    return_workbook(settings, "T001", valid_figures(form), YEAR)
    return_workbook(settings, "T002", valid_figures(form, apply__new__natural_person=5), YEAR)
    (settings.inbox_dir(YEAR) / "说明.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    with Session(get_engine(settings.db_url)) as session:
        context = load_ingest_context(session=session, form=form, year=YEAR)
    return context, sorted(str(p) for p in settings.inbox_dir(YEAR).iterdir())


def _verdicts(examined: list[Examination]) -> list[tuple[str, str | None, list[str], str]]:
    return [(Path(e.incoming.name).name, e.unit_code, sorted(i.code for i in e.issues), e.figures)
            for e in examined]


def test_workers_judge_every_file_as_this_process_does(settings: Settings, units_file: Path, form: FormSpec) -> None:
    context, paths = _inbox(settings, units_file, form)
    inbox = str(settings.inbox_dir(YEAR))
    with ExaminationPool(form=form, context=context, archive_dir=settings.archive_dir, max_bytes=5_000_000,
                         workers=0) as here:
        expected = here.examine(paths, inbox)
    with ExaminationPool(form=form, context=context, archive_dir=settings.archive_dir, max_bytes=5_000_000,
                         workers=2) as pool:
        assert pool.ready(timeout=60)  # so that the workers, not this process, examine the files
        examined = pool.examine(paths, inbox)
    assert _verdicts(examined) == _verdicts(expected)
    assert len(expected[1].values) == len(form.cells) and '"apply.new.total"' in expected[1].figures
    verdicts = {name: (unit, codes) for name, unit, codes, _ in _verdicts(examined)}
    assert verdicts["说明.xlsx"] == (None, ["corrupt-workbook"])
    assert [e.accepted for e in examined].count(True) == 1
    assert any("sum-mismatch" in codes or "total-mismatch" in codes for _, codes in verdicts.values())
    for exam in examined:  # every file's bytes are in the archive, whoever examined it
        assert Path(exam.incoming.archive_path).read_bytes() == Path(inbox, exam.incoming.name).read_bytes()


def test_a_dead_worker_costs_only_time(settings: Settings, units_file: Path, form: FormSpec) -> None:
    context, paths = _inbox(settings, units_file, form)
    inbox = str(settings.inbox_dir(YEAR))
    with ExaminationPool(form=form, context=context, archive_dir=settings.archive_dir, max_bytes=5_000_000,
                         workers=1) as pool:
        assert pool.ready(timeout=60)
        expected = _verdicts(pool.examine(paths, inbox))
        executor = pool._executor
        assert executor is not None
        for pid in list(executor._processes):  # the worker is killed, as the kernel's OOM killer would
            os.kill(pid, signal.SIGKILL)
        assert _verdicts(pool.examine(paths, inbox)) == expected


def test_a_large_inbox_goes_through_the_workers(settings: Settings, units_file: Path, form: FormSpec) -> None:
    """Enough files to start the worker processes: each is stored once, copies are recognised as duplicates."""
    _, paths = _inbox(settings, units_file, form)
    good = next(p for p in map(Path, paths) if "T001" in p.name)
    for n in range(MIN_FILES_FOR_WORKERS):
        shutil.copy(good, good.with_name(f"副本{n:03d}-{good.name}"))
    summary = ingest_returns(YEAR)
    assert summary.files == MIN_FILES_FOR_WORKERS + 3
    assert (summary.accepted, summary.rejected, summary.duplicates) == (1, 2, MIN_FILES_FOR_WORKERS)
    assert list(settings.inbox_dir(YEAR).iterdir()) == []
