"""What the crash tests need: ingest processes to start and kill (ingest_server.py), an inbox worth a campaign's
few dozen returns, copies of one prepared data folder and database, and the observable outcome of a run.

The outcome is everything a person or a unit could see afterwards, with database ids (which a rolled-back insert
uses up on PostgreSQL) and claim folder names (random) replaced by what they stand for: the submissions and their
figures, the assignments, the event log, the mail ledger, every answer file, every processed and archived file,
and whatever is left in the inbox. A run killed and run again must leave exactly the outcome of a run never
interrupted; check_invariants() says in plain terms what is wrong when it does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from cli.simulate import fill_by_names
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Assignment, EventLog, MailMessage, Submission, Unit
from tests.factories import valid_figures

ROOT = Path(__file__).resolve().parents[2]
YEAR = 2021
START = datetime(2022, 1, 10, 1, 0, tzinfo=UTC)


# --- ingest processes ------------------------------------------------------------------------------------------


@dataclass
class RunEnd:
    exit: int
    signal: int | None
    result: dict[str, Any] | None  # what the run reported (None when it did not finish)
    log: str

    @property
    def killed(self) -> bool:
        return self.signal == 9


class IngestServer:
    """The test's end of tests/crash/ingest_server.py: start ingest runs as forked processes, kill them, wait."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._stderr: IO[str] = (folder / "server.log").open("w")
        self._process = subprocess.Popen([sys.executable, "-m", "tests.crash.ingest_server"], cwd=ROOT, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         text=True, bufsize=1)
        self._news: dict[Any, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._runs = 0
        self._write = threading.Lock()
        first = self._process.stdout.readline() if self._process.stdout else ""
        assert first and "ready" in json.loads(first), (folder / "server.log").read_text()[-3000:]
        self._reader = threading.Thread(target=self._read, name="ingest-server-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            message = json.loads(line)
            with self._changed:
                self._news.setdefault(message["run"], {}).update(message)
                self._changed.notify_all()

    def _send(self, request: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        with self._write:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()

    def start(self, *, home: Path, database_url: str | None, inbox: Path | None = None, kill_at: str | None = None,
              nth: int = 0, kill_after: float | None = None, batch_size: int = 3,
              env: dict[str, str] | None = None) -> int:
        """Start an ingest run of the campaign in this data folder; return its number (not its pid)."""
        with self._write:
            self._runs += 1
            run = self._runs
        env_: dict[str, str | None] = {"NIANBAO_HOME": str(home), "NIANBAO_DATABASE_URL": database_url,
                                       "NIANBAO_BATCH_SIZE": str(batch_size), **(env or {})}
        self._send({"run": run, "env": env_, "year": YEAR, "inbox": str(inbox) if inbox else None,
                    "kill_at": kill_at, "nth": nth, "result": str(self.folder / f"run-{run}.json"),
                    "log": str(self.folder / f"run-{run}.log")})
        if kill_after is not None:
            self._send({"kill": run, "after": kill_after})
        return run

    def wait(self, run: int, timeout: float = 180) -> RunEnd:
        deadline = time.monotonic() + timeout
        with self._changed:
            while "exit" not in self._news.get(run, {}):
                assert self._process.poll() is None, (self.folder / "server.log").read_text()[-3000:]
                left = deadline - time.monotonic()
                assert left > 0, f"ingest run {run} did not end in {timeout} s"
                self._changed.wait(min(left, 1.0))
            news = self._news[run]
        result_file = self.folder / f"run-{run}.json"
        log = self.folder / f"run-{run}.log"
        return RunEnd(news["exit"], news["signal"], json.loads(result_file.read_text()) if result_file.exists()
                      else None, log.read_text(errors="replace") if log.exists() else "")

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # the server ends once its runs have
        try:
            self._process.wait(timeout=60)
        finally:
            self._stderr.close()


# --- the inbox -------------------------------------------------------------------------------------------------

VERSIONS = 5


def earlier_returns(settings: Settings, form: FormSpec, folder: Path) -> list[Path]:
    """Two returns stored before the inbox under test arrives (one of them is dropped into it again)."""
    made = []
    for issued in _workbooks(settings)[1:3]:
        code = issued.stem.split("-")[1]
        path = fill_by_names(issued, folder / f"{code}-早报.xlsx", valid_figures(form, active__license__decisions=90))
        _arrive(path, START - timedelta(days=1))
        made.append(path)
    return made


def fill_inbox(settings: Settings, form: FormSpec, inbox: Path, earlier: list[Path]) -> int:
    """A few dozen files in the inbox, as a campaign's returns arrive; return how many.

    Each unit sends five versions a few minutes apart, one of them breaking 勾稽关系 (so accepted ones replace
    accepted ones, around a rejected one); some files come again under another name (duplicates), one into a
    unit's folder; a unit's folder holds another unit's workbook (rejected: not its own); three files are no
    workbook or a broken one (rejected, from no known unit; two of them the same bytes); and a return stored
    before comes again, the very file (same name, same time: a duplicate, not the earlier return itself).
    """
    inbox.mkdir(parents=True, exist_ok=True)
    returns: dict[tuple[str, int], Path] = {}
    for n, issued in enumerate(_workbooks(settings)):
        code = issued.stem.split("-")[1]
        for v in range(VERSIONS):
            good = v != 2 + n % 2
            figures = valid_figures(form, active__license__decisions=100 + v) if good else valid_figures(
                form, apply__new__natural_person=9)
            path = fill_by_names(issued, inbox / f"{code}-第{v + 1}版.xlsx", figures)
            _arrive(path, START + timedelta(minutes=10 * v + n))
            returns[(code, v)] = path
    codes = sorted({code for code, _ in returns})
    for code, v in [(codes[0], 1), (codes[1], 4), (codes[2], 0), (codes[3], 3)]:
        shutil.copy2(returns[(code, v)], inbox / f"副本-{returns[(code, v)].name}")
    (inbox / codes[2]).mkdir()
    shutil.copy2(returns[(codes[2], 3)], inbox / codes[2] / "补报.xlsx")  # the same bytes, into its folder
    (inbox / codes[1]).mkdir()
    shutil.copy2(returns[(codes[0], 4)], inbox / codes[1] / "错投.xlsx")  # another unit's workbook
    for name, data in [("不是工作簿.xlsx", "这不是工作簿".encode()), ("不是工作簿-再次.xlsx", "这不是工作簿".encode()),
                       ("损坏.xlsx", returns[(codes[3], 0)].read_bytes()[:3000])]:
        (inbox / name).write_bytes(data)
        _arrive(inbox / name, START + timedelta(minutes=7))
    again = inbox / earlier[0].name
    again.write_bytes(earlier[0].read_bytes())
    _arrive(again, START - timedelta(days=1))  # the very file stored before: a duplicate of it
    return sum(1 for p in inbox.rglob("*") if p.is_file())


def _workbooks(settings: Settings) -> list[Path]:
    return sorted((settings.outbox_dir(YEAR) / "workbooks").glob("*.xlsx"))


def _arrive(path: Path, at: datetime) -> None:
    os.utime(path, (at.timestamp(), at.timestamp()))


# --- copies of a prepared campaign -----------------------------------------------------------------------------


@dataclass
class Prepared:
    """A data folder and database ready for an ingest; copied afresh for every trial."""

    home: Path
    database_url: str | None  # PostgreSQL; None: SQLite in the data folder
    server_url: str = ""  # the PostgreSQL server, to copy the database on
    _copies: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def copy(self, folder: Path) -> tuple[Path, str | None]:
        """A copy of the data folder (with its SQLite database) or of the PostgreSQL database."""
        shutil.copytree(self.home, folder, symlinks=True)  # copy2: every file keeps its modification time
        if self.database_url is None:
            return folder, None
        with self._lock:  # PostgreSQL copies from a template one at a time
            self._copies += 1
            source = make_url(self.database_url).database
            name = f"{source}_t{self._copies}"
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        return folder, make_url(self.database_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, database_url: str | None) -> None:
        if database_url is None:
            return
        self._admin(f'DROP DATABASE IF EXISTS "{make_url(database_url).database}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        """A statement on the server outside any transaction (CREATE and DROP DATABASE need that)."""
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(statement))
        finally:
            admin.dispose()


# --- the outcome -----------------------------------------------------------------------------------------------


def db_url_of(home: Path, database_url: str | None) -> str:
    return database_url or f"sqlite:///{(home / 'nianbao.db').resolve()}"


def observe(home: Path, database_url: str | None) -> dict[str, Any]:
    """Everything the ingest leaves behind, comparable between two runs of the same inbox."""
    engine = create_engine(db_url_of(home, database_url))
    try:
        with Session(engine) as session:
            units = {u.id: u.code for u in session.exec(select(Unit))}
            subs = session.exec(select(Submission)).all()
            label = {s.id: _label(s, units) for s in subs}
            outcome: dict[str, Any] = {
                "submissions": sorted(_submission(s, units, label) for s in subs),
                "assignments": sorted(_assignment(a, units, label) for a in session.exec(select(Assignment))),
                "events": sorted(Counter(_event(e, label) for e in session.exec(select(EventLog))).items()),
                "ledger": sorted(_ledger(m, label, home) for m in session.exec(select(MailMessage))),
            }
    finally:
        engine.dispose()
    campaign = home / "campaigns" / str(YEAR)
    outcome["answers"] = {str(p.relative_to(campaign)): _answer_text(p) for p in
                          sorted((campaign / "outbox" / "answers").rglob("*.txt"))}
    # a .part file is a copy cut short by the kill, never read: the .eml (or archived file) appears, whole, by a
    # rename only once it is complete, and the next run writes it again if its outcome was not recorded
    outcome["mails"] = sorted(_mail_name(p, campaign, label) for p in (campaign / "outbox" / "mail").rglob("*")
                              if p.is_file() and not p.name.startswith("下发") and not p.name.endswith(".part"))
    outcome["processed"] = sorted(processed_files(home).items())
    # (a unit's folder stays: the office made it; no claim folder does)
    outcome["left in inbox"] = sorted(str(p.relative_to(campaign)) for p in (campaign / "inbox").rglob("*")
                                      if p.is_file() or ".claimed" in p.parts)
    outcome["archive"] = sorted(str(p.relative_to(home / "archive")) for p in (home / "archive").rglob("*")
                                if p.is_file() and not p.name.endswith(".part"))
    return outcome


def _label(s: Submission, units: dict[int | None, str]) -> str:
    return f"{units.get(s.unit_id, '-')}#{s.version} {s.sender}/{s.original_name}"


def _submission(s: Submission, units: dict[int | None, str], label: dict[int | None, str]) -> tuple[Any, ...]:
    return (label[s.id], units.get(s.unit_id), s.version, s.verdict.value, s.sha256, s.size, s.channel, s.sender,
            s.original_name, _utc(s.received_at), label.get(s.replaces_id), s.error_count, s.warning_count,
            json.dumps(s.issues, sort_keys=True, ensure_ascii=False), s.figures, s.texts,
            Path(s.archive_path).name)


def _assignment(a: Assignment, units: dict[int | None, str], label: dict[int | None, str]) -> tuple[Any, ...]:
    return (units[a.unit_id], a.status.value, a.issue_count, label.get(a.last_submission_id),
            label.get(a.accepted_submission_id), _utc(a.last_submission_at), a.delivery_error)


def _event(e: EventLog, label: dict[int | None, str]) -> str:
    detail = dict(e.detail)
    if "submission_id" in detail:
        detail["submission_id"] = label.get(detail["submission_id"], "?")
        detail.pop("source", None)  # a claim folder's random name
    if "event_key" in detail:
        detail["event_key"] = _key(detail["event_key"], label)
    detail.pop("through_id", None)  # the id of the last event published to Prefect
    return json.dumps([e.kind, e.unit_code, detail], sort_keys=True, ensure_ascii=False)


def _ledger(m: MailMessage, label: dict[int | None, str], home: Path) -> tuple[Any, ...]:
    campaign = home / "campaigns" / str(YEAR)
    # (the issue mails were written in the data folder the trial's was copied from)
    eml = campaign / "outbox" / "mail" / Path(*Path(m.eml_path).parts[-2:]) if m.eml_path else None
    return (_key(m.event_key, label), m.kind, m.unit_code, m.status.value, m.channel, m.attempts, m.recipient,
            m.subject, m.last_error, _mail_name(eml, campaign, label) if eml else "", bool(eml and eml.is_file()))


def _key(key: str, label: dict[int | None, str]) -> str:
    kind, _, rest = key.partition(":")
    return f"answer:{label.get(int(rest), '?')}" if kind == "answer" else key


def _mail_name(path: Path, campaign: Path, label: dict[int | None, str]) -> str:
    name = str(path.relative_to(campaign / "outbox" / "mail"))
    return re.sub(r"answer_(\d+)", lambda m: f"answer[{label.get(int(m.group(1)), '?')}]", name)


def _answer_text(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    return "\n".join(lines[:-1])  # the last line is the day it was written


def _utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- what must hold of any outcome ------------------------------------------------------------------------------


def check_invariants(outcome: dict[str, Any], inputs: Counter[tuple[str, str]], home: Path,
                     mailed: str = "written", mailed_before: Collection[str] = ()) -> list[str]:
    """What is wrong with an outcome, said plainly; [] when nothing is.

    inputs: (path in the inbox, sha256) of every file put there, each to end in processed/ once. mailed: how each
    answer mail must end on the ledger (written as .eml, or sent over SMTP), but for the returns in mailed_before
    (answered before the runs under test, as .eml).
    """
    wrong: list[str] = []
    subs = outcome["submissions"]
    by_unit: dict[str | None, list[int]] = {}
    for s in subs:
        if s[1] is not None:
            by_unit.setdefault(s[1], []).append(s[2])
    for unit, versions in by_unit.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            wrong.append(f"{unit}: versions {sorted(versions)} (one skipped or doubled)")
    if len({(s[4], s[1]) for s in subs}) != len(subs):
        wrong.append("the same bytes from one unit stored twice")
    labels = {s[0] for s in subs}
    for a in outcome["assignments"]:
        for pointer in (a[3], a[4]):
            if pointer is not None and pointer not in labels:
                wrong.append(f"assignment of {a[0]} points at a missing submission {pointer}")
    for s in subs:
        if s[3] == "accepted" and s[14] in ("", "{}"):
            wrong.append(f"{s[0]}: accepted without its figures")
        if not (home / "archive" / s[4][:2] / s[16]).is_file():
            wrong.append(f"{s[0]}: its archived bytes are missing")
    stored_events = Counter(json.loads(e)[2].get("submission_id") for e, n in outcome["events"] for _ in range(n)
                            if json.loads(e)[0].startswith("submission."))
    for label in labels:
        if stored_events[label] != 1:
            wrong.append(f"{label}: {stored_events[label]} submission events")
    owed = [s for s in subs if s[1] is not None and s[0] not in mailed_before]  # every unit has an address
    ledger = {row[0]: row for row in outcome["ledger"]}
    for s in owed:
        row = ledger.get(f"answer:{s[0]}")
        if row is None or row[3] != mailed or row[10] != (mailed == "written"):
            eml = "" if row is None or row[10] == (mailed == "written") else (", an .eml" if row[10] else ", no .eml")
            wrong.append(f"{s[0]}: answer mail {row[3] if row else 'not on the ledger'}{eml}")
    mails = Counter(re.sub(r"^[^/]+/[^-]+-", "", m) for m in outcome["mails"])
    for mail, n in mails.items():
        if n != 1:
            wrong.append(f"{n} mails for {mail}")
    processed = Counter(dict(outcome["processed"]))
    for item in set(inputs) | set(processed):
        if processed[item] != inputs[item]:
            wrong.append(f"{item[0]}: {processed[item]} times in processed/, put in the inbox {inputs[item]} times")
    if outcome["left in inbox"]:
        wrong.append(f"left in the inbox: {outcome['left in inbox']}")
    if len(outcome["answers"]) != sum(inputs.values()):
        wrong.append(f"{len(outcome['answers'])} .txt answers to {sum(inputs.values())} files")
    for a in outcome["assignments"]:  # whichever run stored them, and in whatever order
        mine = [s for s in subs if s[1] == a[0]]
        latest = max(mine, key=lambda s: s[9], default=None)
        accepted = max((s for s in mine if s[3] == "accepted"), key=lambda s: s[9], default=None)
        if a[3] != (latest[0] if latest else None) or a[4] != (accepted[0] if accepted else None):
            wrong.append(f"assignment of {a[0]}: latest {a[3]}, accepted {a[4]} (the latest arrivals: "
                         f"{latest[0] if latest else None}, {accepted[0] if accepted else None})")
    return wrong


def processed_files(home: Path) -> Counter[tuple[str, str]]:
    """(path under processed/<day>/, sha256) of every file moved there; name.1.xlsx counts as name.xlsx (a file
    of that name was there already: the same return sent again, say)."""
    processed = home / "campaigns" / str(YEAR) / "processed"
    return Counter((re.sub(r"\.\d+(\.[^./]+)$", r"\1", str(Path(*p.relative_to(processed).parts[1:]))), _sha(p))
                   for p in processed.rglob("*") if p.is_file())


def inbox_files(inbox: Path) -> Counter[tuple[str, str]]:
    return Counter((str(p.relative_to(inbox)), _sha(p)) for p in inbox.rglob("*") if p.is_file())


def differences(outcome: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """The parts of an outcome that differ from the reference's, item by item."""
    found = []
    for part, expected in reference.items():
        got = outcome[part]
        if got == expected:
            continue
        if isinstance(expected, dict):
            extra = sorted(set(got) - set(expected))
            missing = sorted(set(expected) - set(got))
            changed = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
            found.append(f"{part}: extra {extra}, missing {missing}, changed {changed}")
        else:
            extra_items = sorted(set(map(repr, got)) - set(map(repr, expected)))
            missing_items = sorted(set(map(repr, expected)) - set(map(repr, got)))
            found.append(f"{part}: extra {extra_items[:6]}, missing {missing_items[:6]}")
    return found
