"""Examination in worker processes: same verdicts as in-process, bytes archived first, a dead worker recovered."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from tasks.db import get_engine
from tasks.examine_pool import MIN_FILES_FOR_WORKERS, OWNER_CHECK_SECONDS, ExaminationPool
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


# a flow's process in miniature: starts the workers, writes their pids, and is killed as the OOM killer would
KILLED_WITH_WORKERS = """
import os, signal, sys
from datetime import date
from pathlib import Path
from schemas.form_spec import get_form
from tasks.examine_pool import ExaminationPool
from tasks.ingest import CampaignKey, IngestContext

context = IngestContext(CampaignKey(1, 2021, "xxgk-annual", "2021", "secret"), date(2022, 1, 20), {}, {}, {})
pool = ExaminationPool(form=get_form(), context=context, archive_dir=Path(sys.argv[1]), max_bytes=1, workers=2)
with pool:
    assert pool.ready(timeout=60)
    Path(sys.argv[2]).write_text(" ".join(str(pid) for pid in pool._executor._processes))
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_workers_end_when_the_flows_process_is_killed(tmp_path: Path) -> None:
    """Nothing else would end them: they would wait for work for ever (with their forkserver)."""
    pids_file, log = tmp_path / "workers", tmp_path / "log"
    with log.open("w") as out:  # a file, not a pipe: workers that outlive the process would hold a pipe open
        flow = subprocess.run([sys.executable, "-c", KILLED_WITH_WORKERS, str(tmp_path / "archive"), str(pids_file)],
                              cwd=Path(__file__).resolve().parents[2], stdout=out, stderr=out, timeout=120)
    assert flow.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    workers = [int(pid) for pid in pids_file.read_text().split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10 * OWNER_CHECK_SECONDS
    try:
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "the workers outlived the flow's process"
            time.sleep(0.1)
    finally:
        for pid in workers:  # (only if the test failed: they are this test's)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
