"""Scale-out for real: a Prefect server on PostgreSQL, the process work pool and deployments of prefect.yaml, two
workers standing in for two machines, and one campaign's inbox of a few hundred returns ingested in four parts.

Everything is a real process: `prefect server start` on a PostgreSQL database of its own, `prefect work-pool create`,
`prefect deploy --all` from this repository, and two `prefect worker start` processes, each with its own Prefect home
and working folder (each run goes to the repository through prefect.yaml's pull step, NIANBAO_CODE_DIR). The data
folder and the project database (PostgreSQL) are shared, as on several machines. The campaign is opened with the real
open-collection flow; ingest-parallel runs as a deployment, and its four ingest-returns runs as deployment runs on
whichever worker takes them. Every file must be stored once, answered once and moved to processed/, both workers
must have run parts, and the parts' counts must add up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from cli.simulate import fill_by_names
from deployments.server import server_command, server_environment, stop_process, wait_healthy
from flows.open_collection import open_collection
from flows.part_summary import read_parts
from schemas.form_spec import FormSpec, get_form
from schemas.settings import Settings, get_settings
from schemas.tables import Assignment, MailMessage, MailStatus, Submission, Unit, Verdict
from tasks.db import get_engine
from tasks.xlsx_patch import XlsxPatcher
from tests.conftest import DEADLINE, NO_POSTGRES, POSTGRES_URL
from tests.factories import register_units, valid_figures
from tests.ports import free_port

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
YEAR = 2021
UNITS = 200  # one return each, accepted
REJECTED = 20  # of them also sent a wrong return earlier (勾稽关系 broken)
COPIES = 20  # files sent again under another name: stored once, answered each time
PARTS = 4
WORKERS = ("machine-a", "machine-b")


@dataclass(frozen=True)
class Stack:
    api: str
    home: Path  # the shared data folder
    database_url: str  # the project database (PostgreSQL)
    logs: Path


def _environment(prefect_home: Path, api: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "NIANBAO_"))}
    env.update({"PREFECT_HOME": str(prefect_home), "PREFECT_API_URL": api, "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "INFO", **extra})
    return env


def _cli(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run([*PREFECT, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{log.read_text(errors='replace')[-3000:]}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The server, the pool, the deployments and two workers, once for the module."""
    from tests.postgres import temporary_database

    root = tmp_path_factory.mktemp("scale-out")
    logs = root / "logs"
    logs.mkdir()
    with temporary_database(POSTGRES_URL) as prefect_db, temporary_database(POSTGRES_URL) as project_db:
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        server_env = server_environment(root / "server", api)
        server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = make_url(prefect_db).set(
            drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        # no scheduled runs: prefect.yaml's every-5-minutes ingest, fired in the middle of the test, would take a
        # part's share of the inbox first (as it should in real use) and leave that part nothing
        server_env["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = "false"
        (root / "server").mkdir()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            with (logs / "server.log").open("ab") as out:
                processes.append(subprocess.Popen(server_command(port), env=server_env, stdout=out,
                                                  stderr=subprocess.STDOUT))
            wait_healthy(processes[0], api, 90, logs / "server.log")
            cli = _environment(root / "cli", api)
            _cli(["work-pool", "create", "nianbao", "--type", "process"], cli, logs / "cli.log")
            _cli(["--no-prompt", "deploy", "--all"], cli, logs / "cli.log")  # prefect.yaml, as the README says
            home = root / "shared"
            home.mkdir()
            for name in WORKERS:  # each "machine": its own Prefect home and working folder
                machine = root / name
                machine.mkdir()
                env = _environment(machine / "prefect", api, NIANBAO_HOME=str(home),
                                   NIANBAO_DATABASE_URL=project_db, NIANBAO_CODE_DIR=str(ROOT),
                                   PREFECT_WORKER_QUERY_SECONDS="1")
                # three runs at a time a worker: the one running the parent holds two parts at most, the other
                # three, so each takes at least one of the four parts
                with (logs / f"{name}.log").open("ab") as out:
                    processes.append(subprocess.Popen(
                        [*PREFECT, "worker", "start", "--pool", "nianbao", "--name", name, "--limit", "3"],
                        cwd=machine, env=env, stdout=out, stderr=subprocess.STDOUT))
            yield Stack(api, home, project_db, logs)
        finally:
            for process in reversed(processes):
                stop_process(process)


# --------------------------------------------------------------------------- the units' returns


def _places(form: FormSpec) -> dict[str, tuple[str, str]]:
    return {c.key: (form.sheet_by_id[c.sheet].name, c.address) for c in form.input_cells}


def _patched(patcher: XlsxPatcher, places: dict[str, tuple[str, str]], figures: dict[str, Decimal]) -> bytes:
    """The unit's return: its issued workbook with the figures typed in (the cells the template left for them)."""
    patches: dict[str, dict[str, Decimal]] = {}
    for key, value in figures.items():
        sheet, address = places[key]
        patches.setdefault(sheet, {})[address] = value
    return patcher.render(patches)


def _units_csv(folder: Path) -> Path:
    lines = ["code,name,kind,contact,email,phone",
             "G0001,示范县人民政府办公室,government_office,王敏,g0001@example.gov.cn,"]
    lines += [f"T{n:04d},示范县第{n}乡镇,township,联系人,t{n:04d}@example.gov.cn," for n in range(1, UNITS)]
    path = folder / "units.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fill_inbox(settings: Settings, form: FormSpec) -> dict[str, Path]:
    """Every unit's return in the inbox, some after a wrong one, some twice: the accepted file by unit code."""
    inbox, places = settings.inbox_dir(YEAR), _places(form)
    inbox.mkdir(parents=True, exist_ok=True)
    start = datetime.now(UTC) - timedelta(hours=1)
    accepted: dict[str, Path] = {}
    for n, issued in enumerate(sorted((settings.outbox_dir(YEAR) / "workbooks").glob("*.xlsx"))):
        code = issued.stem.split("-")[1]
        good = valid_figures(form, active__license__decisions=100 + n)
        target = inbox / issued.name
        if n % 50 == 0:  # a few typed in by another program (openpyxl), as a clerk's would be
            fill_by_names(issued, target, good)
        else:
            target.write_bytes(_patched(XlsxPatcher(issued.read_bytes()), places, good))
        arrival = (start + timedelta(seconds=10 + n)).timestamp()
        os.utime(target, (arrival, arrival))
        accepted[code] = target
        if n < REJECTED:  # a wrong return first, a minute earlier
            wrong = inbox / f"{code}-第一稿.xlsx"
            wrong.write_bytes(_patched(XlsxPatcher(issued.read_bytes()), places,
                                       valid_figures(form, apply__new__natural_person=9)))
            os.utime(wrong, (arrival - 60, arrival - 60))
        if REJECTED <= n < REJECTED + COPIES:
            shutil.copy2(target, inbox / f"副本-{target.name}")
    return accepted


# --------------------------------------------------------------------------- what the runs did


def _artifact_rows(key: str) -> list[dict[str, object]]:
    with get_client(sync_client=True) as client:
        [latest] = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=[key])))
    assert isinstance(latest.data, str)
    rows: list[dict[str, object]] = json.loads(latest.data)
    return rows


def _parts(parent: FlowRun) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["on-demand"])))


def _workers_of(runs: list[FlowRun], logs: Path) -> dict[UUID, str]:
    """Which worker ran each flow run: the workers' own events (the Event Feed shows them too)."""
    wanted = {f"prefect.flow-run.{run.id}": run.id for run in runs}
    found: dict[UUID, str] = {}
    deadline = time.monotonic() + 30
    while set(found) != set(wanted.values()):
        assert time.monotonic() < deadline, f"worker events missing: {found}\n" + \
            "\n".join((logs / f"{w}.log").read_text(errors="replace")[-2000:] for w in WORKERS)
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=EventFilter(event=EventNameFilter(
                name=["prefect.worker.executed-flow-run"])), limit=50)
        for event in page.events:
            for related in event.related:
                if related.id in wanted:
                    found[wanted[related.id]] = str(event.resource.name)
        time.sleep(0.5)
    return found


def _check_store(settings: Settings, accepted: dict[str, Path], files: int) -> None:
    with Session(get_engine(settings.db_url)) as session:
        submissions = session.exec(select(Submission)).all()
        assert len(submissions) == UNITS + REJECTED  # each distinct file stored once; a copy is not stored again
        assert len({s.sha256 for s in submissions}) == len(submissions)
        assert Counter(s.verdict for s in submissions) == {Verdict.ACCEPTED: UNITS, Verdict.REJECTED: REJECTED}
        latest = dict(session.exec(select(Unit.code, Submission.original_name)
                                   .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                                   .join(Submission, col(Submission.id) == col(Assignment.accepted_submission_id)))
                      .all())
        assert {code: name.rsplit("/", 1)[-1] for code, name in latest.items()} == \
            {code: path.name for code, path in accepted.items()}
        ids = [s.id for s in submissions]
        ledger = session.exec(select(MailMessage).where(col(MailMessage.event_key).startswith("answer:"))).all()
    assert sorted(m.event_key for m in ledger) == sorted(f"answer:{sid}" for sid in ids)  # one answer mail each
    assert all(m.status is MailStatus.WRITTEN and m.attempts == 1 for m in ledger)
    assert len(list((settings.outbox_dir(YEAR) / "answers").rglob("*.txt"))) == files  # one answer a file


def test_four_parts_on_two_workers_ingest_one_inbox_each_file_once(
        stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIANBAO_HOME", str(stack.home))
    monkeypatch.setenv("NIANBAO_DATABASE_URL", stack.database_url)
    get_settings.cache_clear()
    settings, form = get_settings(), get_form()
    with temporary_settings(updates={PREFECT_API_URL: stack.api}):
        try:
            register_units(settings, _units_csv(tmp_path))
            open_collection(YEAR, DEADLINE)
            accepted = _fill_inbox(settings, form)
            inbox = settings.inbox_dir(YEAR)
            files = len(list(inbox.glob("*.xlsx")))
            assert files == UNITS + REJECTED + COPIES

            started = time.monotonic()
            parent = run_deployment("ingest-parallel/on-demand", parameters={"year": YEAR, "parts": PARTS},
                                    timeout=240, poll_interval=1)
            took = time.monotonic() - started
            assert isinstance(parent, FlowRun) and parent.state is not None
            assert parent.state.is_completed(), (parent.state, (stack.logs / "machine-a.log").read_text()[-3000:])

            parts = _parts(parent)
            assert len(parts) == PARTS and all(p.state is not None and p.state.is_completed() for p in parts)
            with get_client(sync_client=True) as client:
                counts = read_parts(client, [p.id for p in parts])
            # four runs went down the same oldest-first list at once: each took its share, no file twice
            assert sorted(c.files for c in counts.values()) == [files // PARTS] * PARTS
            total = {field: sum(getattr(c, field) for c in counts.values()) for field in ("files", "accepted",
                                                                                          "rejected", "duplicates")}
            assert total == {"files": files, "accepted": UNITS, "rejected": REJECTED, "duplicates": COPIES}
            rows = _artifact_rows(f"campaign-{YEAR}-ingest-parallel")
            assert rows[-1] == {"运行": "合计", "编号": "", "状态": f"{PARTS} / {PARTS} 完成", "文件": files,
                                "通过": UNITS, "未通过": REJECTED, "重复": COPIES, "说明": ""}
            assert sorted(str(row["编号"]) for row in rows[:-1]) == sorted(str(p.id)[:8] for p in parts)

            ran_on = _workers_of([parent, *parts], stack.logs)
            assert {ran_on[p.id] for p in parts} == set(WORKERS), ran_on  # both "machines" ran parts
        finally:
            # this process's Prefect events went to the module's server: handed over while it runs. Left queued,
            # the session's test harness would wait for them at its end, against a server long gone, for ever
            EventsWorker.drain_all()

    processed = list((settings.campaign_dir(YEAR) / "processed").rglob("*.xlsx"))
    assert len(processed) == files and list(inbox.rglob("*.xlsx")) == []
    assert not (inbox / ".claimed").exists()
    _check_store(settings, accepted, files)
    sys.stderr.write(f"ingest-parallel: {files} files in {PARTS} parts on {len(WORKERS)} workers, {took:.1f} s\n")
