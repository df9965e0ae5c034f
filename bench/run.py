"""Benchmark of nianbao: issue, fill, ingest and report for N synthetic units, for one or more N.

    python -m bench.run --units 1000,10000     (what `make bench` runs)
    python -m bench.run --units 200 --no-memory

Each size runs in fresh processes, one after another, each with its own temporary data folder (NIANBAO_HOME) and
Prefect home, so its figures never mix with a real campaign or with the other size:

1. the flows' run (--size-run N), in order:
   a. register N synthetic units (one 县政府办, the rest townships and departments) from a CSV;
   b. ISSUE: the open-collection flow, timed after a warm-up flow has started Prefect's temporary local server; then
      the workbooks alone (build_template once + write_workbooks: no database, no mail);
   c. FILL: each unit's return, made by patching its issued workbook (XlsxPatcher); a few filled with openpyxl
      (cli.simulate.fill_by_names) instead, so both kinds of file are in the inbox;
   d. NAIVE baseline: the clerk's script (pandas.read_excel, engine=openpyxl, figures picked by address, summed),
      over every file up to BASELINE_SAMPLE files, over a random sample of that many above;
      RAW PARSE: calamine reading every sheet of every file, in one process and in two (bench/rawparse.py);
   e. INGEST: the ingest-returns flow over every file, until its events are handed to the server (as `nianbao
      ingest` does before it exits), once making files is as fast as usual; then the reader, the checker, the
      store and the answer timed as plain calls (on up to BREAKDOWN_SAMPLE files);
   f. REPORT: the compile-report flow and the same work as plain calls, alternately, 3 times each; the report's
      steps; for up to ALL_FORMATS_MAX_UNITS units also the Word and PDF files;
2. the plain twin (--plain-twin N): the same issue and ingest as plain calls, without Prefect (bench/plain.py), in
   a fresh process and home of its own: with 1e and 1b, Prefect's overhead (flow time ÷ plain time);
3. MEMORY: peak RSS of an ingest of N/4 and of N files, each in its own fresh process (--memory-probe).

Every scratch folder is kept until the whole benchmark ends (deleting thousands of files slows down the next file
creations on this machine). The figures of every size are printed side by side with the targets and written to
bench/out/results.json. The exit status is 0 even when a target is missed; a missed target is marked MISSED.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.form_spec import FormSpec
    from tasks.ingest import Examination
    from tasks.issue_workbooks import UnitToIssue

YEAR = 2021
DEADLINE = date(2022, 1, 20)
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out" / "results.json"
BASELINE_SAMPLE = 1000  # the naive script reads every file up to this many, a random sample of this many above
BREAKDOWN_SAMPLE = 2000  # the plain per-file timings (reader, check, store, answer) on at most this many files
ALL_FORMATS_MAX_UNITS = 1000  # the report's Word and PDF files are timed up to this many units
RAW_PROCESSES = 2  # the raw parse is spread over this many processes, as the ingest's examination on 2 cores
OPENPYXL_FILLED = 20  # returns filled with openpyxl (as another program saves them); the rest are patched
PROBE_TAG = "MEMORY-PROBE "
PLAIN_TAG = "PLAIN-TWIN "
# what the Prefect server logs when it loses events: its in-memory events queue is full (10,000 messages), or an
# event is over its size limit (an artifact's event carrying a big table)
SERVER_WARNINGS = {"events_dropped": "Subscription queue is full, dropping message",
                   "events_refused_too_large": "Refusing to publish event of size"}
RSS_SAMPLE_S = 0.05  # the memory probe samples its RSS this often during the ingest
# peak RSS of the ingest of the bigger inbox ÷ the smaller at or below this counts as flat. Most of the peak (~180
# MiB after the warm-up) is imports, Prefect's client and the campaign, the same for any inbox; a design that holds a
# bounded number of batches stays near 1.1 whatever the inbox (measured: 1.09 for 250 -> 1,000 files). 1.25 leaves
# room for run-to-run noise (~10 MiB) and for small per-file bookkeeping (up to ~5 KiB a file over 9,000 more files);
# holding every file's workbook (20 KiB) alone would add ~200 MiB at 10,000 files, a ratio near 2
MEMORY_FLAT_RATIO = 1.25

_PROCESS_SCOPE = ExitStack()

# targets of issue 12 (and the reader's, of an earlier issue)
TARGET_ISSUE_PER_S = 300.0
TARGET_INGEST_PER_S = 500.0
TARGET_INGEST_RATIO = 10.0  # x the naive script's rate
TARGET_RAW_RATIO = 3.0  # ingest time <= this x the raw parse's time (calamine, RAW_PROCESSES processes)
TARGET_READER_MS = 1.0
TARGET_REPORT_S = 2.0
REPORT_REPEATS = 3  # compile-report is timed this many times (each compiles a new draft); the median is judged


# --------------------------------------------------------------------------------------------------------------
# environment


def configure_environment(root: Path) -> None:
    """Point nianbao and Prefect at folders under root; must run before prefect or the settings are used."""
    os.environ["NIANBAO_HOME"] = str(root / "var")
    os.environ.pop("NIANBAO_DATABASE_URL", None)
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_HOME"] = str(root / "prefect")
    (root / "var").mkdir(parents=True, exist_ok=True)
    from schemas.settings import get_settings

    get_settings.cache_clear()
    from cli.prefect_env import foreground_runs
    from tasks.examine_pool import prestart

    _PROCESS_SCOPE.enter_context(foreground_runs())  # flows run as the CLI runs them, for the rest of the process
    prestart()  # as `nianbao ingest` does when it starts: the examination workers' forkserver and its imports


def machine() -> dict[str, Any]:
    import openpyxl
    import pandas
    import prefect

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "prefect": prefect.__version__,
        "pandas": pandas.__version__,
        "openpyxl": openpyxl.__version__,
        "python_calamine": metadata.version("python-calamine"),
    }


def code_fingerprint() -> dict[str, Any]:
    """Which production code was measured: a hash over the project's Python sources, and their newest change."""
    import hashlib

    files = sorted(p for folder in ("schemas", "tasks", "flows", "cli") for p in (ROOT / folder).rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    newest = max(files, key=lambda p: p.stat().st_mtime)
    changed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(newest.stat().st_mtime))
    return {"sources_sha256": digest.hexdigest()[:16], "files": len(files),
            "newest": f"{newest.relative_to(ROOT)} @ {changed} UTC"}


def max_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    VmHWM (/proc/self/status) is the high-water mark of this program's own memory since it started. ru_maxrss is
    not used when VmHWM is there: a process spawned by a big one (subprocess uses vfork + exec) inherits the
    parent's high-water mark in ru_maxrss, so every probe run from the main benchmark would report the main
    process's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return ru_maxrss_mib()


def ru_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def say(text: str) -> None:
    print(text, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


# --------------------------------------------------------------------------------------------------------------
# units and figures


def register_units(n: int, folder: Path) -> int:
    """Write a CSV of n synthetic units and register it through the project's own importer."""
    from sqlmodel import Session

    from flows.common import engine
    from tasks.units import read_units_file, upsert_units

    path = folder / "bench-units.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["code", "name", "kind", "contact", "email", "phone"])
        writer.writerow(["G0001", "示范县人民政府办公室", "government_office", "王敏", "g0001@example.gov.cn", ""])
        for i in range(1, n):
            if i % 3 == 0:
                code, name, kind = f"T{i:04d}", f"示范县第{i}乡镇", "township"
            else:
                code, name, kind = f"D{i:04d}", f"示范县第{i}局", "department"
            writer.writerow([code, name, kind, "联系人", f"{code.lower()}@example.gov.cn", ""])
    rows = read_units_file(path)
    with Session(engine()) as session:
        result = upsert_units(session=session, rows=rows)
        session.commit()
    return result.created


@dataclass(frozen=True)
class FormShape:
    """The form's input cells grouped the way valid figures are generated."""

    columns: list[tuple[str, str, str, list[str]]]  # new, carried, carry-next, the result rows of one column
    zero: set[str]  # cells a county unit must leave at 0 (规章)
    decimal_places: dict[str, int]
    others: list[str]  # every other input cell: any whole number
    places: dict[str, tuple[str, str]]  # key -> (sheet name, address)


def form_shape(form: FormSpec) -> FormShape:
    from schemas.form_spec import AllZeroRule, CellType

    columns = []
    for rule in form.sum_rules():
        if rule.computes or len(rule.left) != 2 or len(rule.right) != 2:
            continue
        new, carried = rule.left
        total, carry_next = rule.right
        if new in form.totals or total not in form.totals:
            continue  # the 总计 column: all totals
        columns.append((new, carried, carry_next, list(form.totals[total].right)))
    covered = {k for new, carried, nxt, rows in columns for k in (new, carried, nxt, *rows)}
    zero = {k for r in form.rules if isinstance(r, AllZeroRule) for k in r.cells()}
    decimals = {c.key: c.places for c in form.input_cells if c.type is CellType.DECIMAL}
    others = [c.key for c in form.input_cells if c.key not in covered | zero | set(decimals)]
    places = {c.key: (form.sheet_by_id[c.sheet].name, c.address) for c in form.input_cells}
    return FormShape(columns, zero, decimals, others, places)


def unit_figures(shape: FormShape, rng: random.Random) -> dict[str, int | Decimal]:
    """Varied figures for every input cell that pass every hard rule (勾稽关系 column by column)."""
    values: dict[str, int | Decimal] = {}
    for new, carried, carry_next, rows in shape.columns:
        n_new = rng.choice((0, 0, 0, 1, 2, 3, 5, 8, 13, 21, 40))
        n_carried = rng.randint(0, 3)
        n_next = rng.randint(0, (n_new + n_carried) // 3)
        values[new], values[carried], values[carry_next] = n_new, n_carried, n_next
        counts = dict.fromkeys(rows, 0)
        weights = [8, 4, *([1] * (len(rows) - 2))]
        for row in rng.choices(rows, weights=weights, k=n_new + n_carried - n_next):
            counts[row] += 1
        values.update(counts)
    for key in shape.zero:
        values[key] = 0
    for key, places in shape.decimal_places.items():
        values[key] = Decimal(rng.randint(0, 9_999_999)).scaleb(-places)
    for key in shape.others:
        values[key] = rng.randint(0, 60)
    return values


def patches_for(shape: FormShape, figures: Mapping[str, int | Decimal]) -> dict[str, dict[str, int | Decimal]]:
    patches: dict[str, dict[str, int | Decimal]] = {}
    for key, value in figures.items():
        sheet, address = shape.places[key]
        patches.setdefault(sheet, {})[address] = value
    return patches


def expected_county(form: FormSpec, per_unit: Mapping[str, Mapping[str, int | Decimal]],
                    designated: str) -> dict[str, Decimal]:
    """The county figure of every input cell, computed here from the figures the bench itself generated."""
    from schemas.form_spec import Consolidation

    out = {}
    for cell in form.input_cells:
        if cell.consolidation is Consolidation.DESIGNATED:
            out[cell.key] = Decimal(per_unit[designated][cell.key]) if designated in per_unit else Decimal(0)
        else:
            out[cell.key] = sum((Decimal(f[cell.key]) for f in per_unit.values()), Decimal(0))
    return out


# --------------------------------------------------------------------------------------------------------------
# issuing and filling


def issued_workbooks() -> list[tuple[str, str, Path]]:
    """(unit code, unit kind, issued workbook path) of every assignment of the campaign."""
    from sqlmodel import Session, col, select

    from flows.common import engine
    from schemas.tables import Assignment, Unit

    with Session(engine()) as session:
        rows = session.exec(select(Unit.code, Unit.kind, Assignment.workbook_path)
                            .join(Assignment, col(Assignment.unit_id) == col(Unit.id))).all()
    return sorted((code, str(kind), Path(path)) for code, kind, path in rows)  # UnitKind is a StrEnum


def issue_plain(form: FormSpec, units: list[UnitToIssue], campaign_id: int, secret: str,
                folder: Path) -> dict[str, float]:
    """build_template once + write_workbooks for every unit: the issuing work without Prefect or the database."""
    from tasks.issue_workbooks import write_workbooks
    from tasks.workbook_template import build_template
    from tasks.xlsx_patch import XlsxPatcher

    template, build_s = timed(lambda: build_template(form, YEAR, DEADLINE))
    issued, write_s = timed(lambda: write_workbooks(template=template, patcher=XlsxPatcher(template.data),
                                                    campaign_id=campaign_id, year=YEAR, secret=secret,
                                                    units=units, folder=folder))
    total = build_s + write_s
    return {"workbooks": len(issued), "build_template_s": build_s, "write_s": write_s, "total_s": total,
            "per_s": len(issued) / total, "write_ms_per_workbook": 1000 * write_s / max(len(issued), 1)}


@dataclass
class Filled:
    per_unit: dict[str, dict[str, int | Decimal]]
    patched: int
    patched_s: float
    openpyxl: int
    openpyxl_s: float
    paths: list[Path]


def fill_returns(shape: FormShape, workbooks: Iterable[tuple[str, str, Path]], inbox: Path, seed: int,
                 openpyxl_count: int) -> Filled:
    """Each unit's return in the inbox: most by patching the issued file, openpyxl_count by openpyxl."""
    from cli.simulate import fill_by_names
    from tasks.xlsx_patch import XlsxPatcher

    inbox.mkdir(parents=True, exist_ok=True)
    listed = list(workbooks)
    step = max(len(listed) // max(openpyxl_count, 1), 1)
    by_openpyxl = {code for code, _, _ in listed[::step][:openpyxl_count]} if openpyxl_count else set()
    filled = Filled({}, 0, 0.0, 0, 0.0, [])
    for code, _kind, issued in listed:
        figures = unit_figures(shape, random.Random(f"{seed}-{code}"))
        filled.per_unit[code] = figures
        target = inbox / issued.name
        start = time.perf_counter()
        if code in by_openpyxl:
            fill_by_names(issued, target, figures)
            filled.openpyxl += 1
            filled.openpyxl_s += time.perf_counter() - start
        else:
            target.write_bytes(XlsxPatcher(issued.read_bytes()).render(patches_for(shape, figures)))
            filled.patched += 1
            filled.patched_s += time.perf_counter() - start
        filled.paths.append(target)
    return filled


# --------------------------------------------------------------------------------------------------------------
# the naive baseline


def naive_baseline(paths: list[Path], form: FormSpec, expected: Mapping[str, Mapping[str, int | Decimal]],
                   seed: int) -> dict[str, Any]:
    """The clerk's script: read every sheet with pandas+openpyxl, pick the figures by address, sum them. Over every
    file in random order, or a random sample of BASELINE_SAMPLE files when there are more: a rate either way."""
    import pandas as pd

    from schemas.form_spec import Consolidation

    positions = [(c.key, form.sheet_by_id[c.sheet].name, c.row_number - 1, _column_index(c.column_letter))
                 for c in form.input_cells]
    order = list(paths)
    random.Random(seed).shuffle(order)
    done = order[:BASELINE_SAMPLE]
    sums = dict.fromkeys((p[0] for p in positions), 0.0)
    start = time.perf_counter()
    for path in done:
        sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl", header=None)
        for key, sheet, row, col in positions:
            value: Any = sheets[sheet].iat[row, col]
            sums[key] += 0.0 if pd.isna(value) else float(value)  # NaN for an empty cell
    elapsed = time.perf_counter() - start
    codes = {_code_of(p) for p in done}
    sum_keys = [c.key for c in form.input_cells if c.consolidation is Consolidation.SUM]
    wrong = [k for k in sum_keys
             if abs(sums[k] - float(sum((Decimal(expected[c][k]) for c in codes), Decimal(0)))) > 1e-6]
    return {"files": len(done), "of": len(paths), "sampled": len(done) < len(paths), "seconds": elapsed,
            "files_per_s": len(done) / elapsed, "ms_per_file": 1000 * elapsed / len(done),
            "sums_match_generated": not wrong, "sum_mismatches": wrong[:5]}


def _column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + ord(char) - 64
    return index - 1


def _code_of(path: Path) -> str:
    return path.name.split("-")[1]  # 2021年政府信息公开工作年度报告-CODE-名称.xlsx


# --------------------------------------------------------------------------------------------------------------
# ingest breakdown, as plain calls


def ingest_breakdown(form: FormSpec, files: list[tuple[str, bytes]], kinds: Mapping[str, str],
                     campaign: tuple[int, int, str, str, str], batch_size: int,
                     answers_folder: Path) -> dict[str, Any]:
    """Reader, checker, whole examination, store (rolled back) and answer, each timed per file as plain calls."""
    from tasks.check import CheckContext, check_values
    from tasks.ingest import CampaignKey, Incoming, examine
    from tasks.workbook_read import read_workbook

    name0, data0 = files[0]
    check_values(read_workbook(data0, form, name0).values, form)  # first calls: imports, caches
    read_ms, check_ms, examine_ms = [], [], []
    unread = 0
    for name, data in files:
        t0 = time.perf_counter()
        raw = read_workbook(data, form, name)
        t1 = time.perf_counter()
        code = (raw.identity or {}).get("unit_code", "")
        check_values(raw.values, form, CheckContext(unit_kind=kinds.get(code)))
        t2 = time.perf_counter()
        read_ms.append(1000 * (t1 - t0))
        check_ms.append(1000 * (t2 - t1))
        unread += not raw.readable
    key = CampaignKey(*campaign)
    examinations: list[Examination] = []
    for n, (name, data) in enumerate(files):
        incoming = Incoming(name=name, sha256=f"{n:064x}", size=len(data), archive_path="-",
                            received_at_iso="2022-01-10T08:00:00+00:00")
        t0 = time.perf_counter()
        examinations.append(examine(data, incoming, form, key, dict(kinds), {}))
        examine_ms.append(1000 * (time.perf_counter() - t0))
    store = _store_rolled_back(campaign[0], examinations, batch_size)
    answer_ms = _answer_ms(examinations, answers_folder)
    return {
        "files": len(files), "unreadable": unread,
        "accepted_plain": sum(e.accepted for e in examinations),
        "reader_ms": _stats(read_ms), "check_ms": _stats(check_ms), "examine_ms": _stats(examine_ms),
        "store_ms_per_file": store, "answer_ms_per_file": answer_ms,
    }


def _store_rolled_back(campaign_id: int, examinations: list[Examination],
                       batch_size: int) -> float:
    """store_examinations over every examination in batches, as the flow does, then rolled back (ms per file).

    The files carry hashes of their own, so they are stored as new returns (each unit's second).
    """
    from sqlmodel import Session

    from flows.common import engine
    from tasks.submissions import store_examinations

    elapsed = 0.0
    with Session(engine()) as session:
        for start in range(0, len(examinations), batch_size):
            batch = examinations[start:start + batch_size]
            t0 = time.perf_counter()
            store_examinations(session=session, campaign_id=campaign_id, examinations=batch)
            session.flush()
            elapsed += time.perf_counter() - t0
        session.rollback()
    return 1000 * elapsed / len(examinations)


def _answer_ms(examinations: list[Examination], folder: Path) -> float:
    """write_answer per file, into a folder of its own (kept until the run ends, like plain-outbox)."""
    from datetime import datetime

    from tasks.answers import Answer, write_answer

    start = time.perf_counter()
    for exam in examinations:
        write_answer(Answer(unit_code=exam.unit_code, unit_name=exam.unit_code, file_name=exam.incoming.name,
                            year=YEAR, accepted=exam.accepted, duplicate=False, version=1,
                            received_at=datetime.fromisoformat(exam.incoming.received_at_iso), replaces=None,
                            issues=[i.public() for i in exam.issues], deadline=DEADLINE), folder)
    return 1000 * (time.perf_counter() - start) / len(examinations)


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"mean": statistics.fmean(values), "median": statistics.median(values),
            "p95": ordered[int(0.95 * (len(ordered) - 1))], "max": ordered[-1]}


# --------------------------------------------------------------------------------------------------------------
# report


def publication_plain(form: FormSpec, year: int, units: int = 10) -> dict[str, Any]:
    """What each publication format costs, as plain calls: the county report (charts included in its build) in
    HTML, Word and PDF, and units' own reports (build and write) in HTML alone, with Word, with PDF."""
    from datetime import datetime

    from sqlmodel import Session

    from flows.common import engine
    from flows.compile_report import CHINA, build_documents, consolidate_task, load_inputs
    from schemas.settings import get_settings
    from tasks.campaigns import get_campaign
    from tasks.publication import write_publication
    from tasks.unit_reports import load_unit_sources, write_unit_report

    inputs = load_inputs.fn(year)
    county = consolidate_task.fn(year, inputs)
    documents, build_s = timed(lambda: build_documents.fn(year, inputs, county, {}, "", get_settings().county_name,
                                                          "bench", datetime.now(CHINA)))
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form, year=year)
        codes = sorted(inputs.figures)[:units]
        sources = load_unit_sources(session=session, form=form, campaign=campaign, codes=codes)
    report_ms: dict[str, float] = {}
    unit_ms: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        html_s = timed(lambda: write_publication(documents.report, folder / "r", (), []))[1]
        report_ms["html"] = html_s * 1000
        for fmt in ("docx", "pdf"):  # each alone: the time of that format on top of the HTML page
            started = time.perf_counter()
            write_publication(documents.report, folder / f"r-{fmt}", (fmt,), [])
            report_ms[fmt] = (time.perf_counter() - started - html_s) * 1000
        for label, formats in (("html", ()), ("docx", ("docx",)), ("pdf", ("docx", "pdf"))):
            started = time.perf_counter()
            for source in sources:
                write_unit_report(form, year, source, folder / label, formats)
            unit_ms[label] = (time.perf_counter() - started) * 1000 / max(len(sources), 1)
    return {"build_s": build_s, "report_ms": report_ms, "unit_ms": unit_ms, "units": len(sources)}


def compare_county(form: FormSpec, figures: Mapping[str, object], expected: Mapping[str, Decimal]) -> list[str]:
    """Input cells whose county figure differs from the one computed from the generated figures."""
    cells = figures.get("cells")
    if not isinstance(cells, dict):
        return ["<no cells>"]
    return [c.key for c in form.input_cells if Decimal(str(cells.get(c.key))) != expected[c.key]]


# --------------------------------------------------------------------------------------------------------------
# fresh processes: the memory probe, the plain twin, the home they start from


def setup_home(n: int, seed: int) -> int:
    """In the home NIANBAO_HOME names (set by the parent): n units registered, the campaign opened, its workbooks
    written and recorded (plain calls, no mail) and n returns filled into the inbox. Run as a child process, so
    that none of this counts in the peak memory of the process that ingests."""
    from sqlmodel import Session

    from flows.common import engine, form_for
    from schemas.settings import get_settings
    from tasks.campaigns import open_campaign
    from tasks.issue_workbooks import record_issued, units_to_issue, write_workbooks
    from tasks.progress_events import pending_rows, record_emitted
    from tasks.workbook_template import build_template
    from tasks.xlsx_patch import XlsxPatcher

    settings = get_settings()
    form = form_for()
    register_units(n, Path(os.environ["NIANBAO_HOME"]).parent)
    with Session(engine()) as session:
        campaign, _ = open_campaign(session=session, form=form, year=YEAR, deadline=DEADLINE)
        units = units_to_issue(session=session, campaign=campaign, form=form, previous={})
        assert campaign.id is not None
        template = build_template(form, YEAR, DEADLINE)
        issued = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=campaign.id,
                                 year=YEAR, secret=campaign.secret, units=units,
                                 folder=settings.outbox_dir(YEAR) / "workbooks")
        record_issued(session=session, campaign_id=campaign.id, issued=issued)
        session.flush()
        # the issue's events count as handed to Prefect, as `nianbao open` leaves them: the ingest then emits its
        # own events only, as after a real open (otherwise twice as many, and a full server queue at 10,000 units)
        issue_events = pending_rows(session=session, campaign=campaign)
        record_emitted(session=session, campaign_id=campaign.id, rows=issue_events, emitted=len(issue_events))
        session.commit()
    fill_returns(form_shape(form), issued_workbooks(), settings.inbox_dir(YEAR), seed, 0)
    return 0


def memory_probe(n: int, seed: int, home: Path | None) -> int:
    """Peak RSS of one ingest of n files by the flow, in this fresh process; the home is set up by a child process
    (setup_home) so that the issuing and filling leave no mark on this process's high-water mark."""
    root = home or _scratch(f"probe{n}")
    configure_environment(root)
    setup = subprocess.run([sys.executable, "-m", "bench.run", "--setup-home", str(n), "--seed", str(seed)],
                           cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=1800, check=False)
    if setup.returncode:
        print(PROBE_TAG + json.dumps({"files": n, "error": f"setup exit {setup.returncode}",
                                      "stderr_tail": setup.stderr[-2000:]}), flush=True)
        return 1
    rss_setup = max_rss_mib()
    warm_s = _warm_up()[0]
    rss_warm = max_rss_mib()
    from flows.ingest_returns import ingest_returns

    with RssSampler() as sampler:
        summary, ingest_s = timed(lambda: ingest_returns(YEAR))
    rss_peak = max_rss_mib()
    print(PROBE_TAG + json.dumps({
        "files": n, "accepted": summary.accepted, "ingest_s": ingest_s, "warm_up_s": warm_s,
        "rss_before_warm_up_mib": rss_setup, "rss_after_warm_up_mib": rss_warm, "rss_peak_mib": rss_peak,
        "ru_maxrss_mib": ru_maxrss_mib(), "rss_by_tenth_of_the_run_mib": sampler.by_tenth(),
        "home": str(root),
    }), flush=True)
    return 0


class RssSampler:
    """This process's RSS every RSS_SAMPLE_S while the ingest runs: when in the run the memory is taken."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        status = Path("/proc/self/status")
        while not self._stop.wait(RSS_SAMPLE_S):
            try:
                rss = next(int(line.split()[1]) / 1024 for line in status.read_text().splitlines()
                           if line.startswith("VmRSS:"))
            except (OSError, StopIteration, ValueError):
                return
            self.samples.append((time.perf_counter() - self._start, rss))

    def by_tenth(self) -> list[float]:
        """The highest RSS seen in each tenth of the run (MiB)."""
        if not self.samples:
            return []
        end = self.samples[-1][0] or 1.0
        tenths: list[float] = [0.0] * 10
        for at, rss in self.samples:
            index = min(int(10 * at / end), 9)
            tenths[index] = max(tenths[index], rss)
        return [round(value, 1) for value in tenths]


def plain_twin(n: int, seed: int, home: Path | None) -> int:
    """The issue and the ingest of n units as plain calls, without Prefect (bench/plain.py), in a fresh process with
    a home of its own: the same units, the same figures and the same kinds of returned files as the flows' run."""
    root = home or _scratch(f"plain{n}")
    configure_environment(root)
    import flows.ingest_returns  # noqa: F401  (imports outside the timings, as in the flows' run)
    import flows.open_collection  # noqa: F401
    from bench.plain import ingest_plain, open_plain
    from flows.common import form_for
    from schemas.settings import get_settings

    settings = get_settings()
    form = form_for()
    register_units(n, root)
    issued, open_s = open_plain(YEAR, DEADLINE)
    filled = fill_returns(form_shape(form), issued_workbooks(), settings.inbox_dir(YEAR), seed,
                          min(OPENPYXL_FILLED, n))
    file_system = wait_for_normal_file_creation(root)
    ingest = ingest_plain(YEAR)
    print(PLAIN_TAG + json.dumps({
        "units": n, "home": str(root),
        "open": {"issued": issued, "seconds": open_s, "per_s": issued / open_s},
        "filled": {"patched": filled.patched, "openpyxl": filled.openpyxl},
        "ingest": {"files": ingest.files, "accepted": ingest.accepted, "rejected": ingest.rejected,
                   "duplicates": ingest.duplicates, "seconds": ingest.seconds,
                   "per_s": ingest.files / ingest.seconds, "file_system": file_system},
    }), flush=True)
    return 0


def run_child(args: list[str], tag: str, timeout: float = 1800) -> dict[str, Any]:
    """Run `python -m bench.run ARGS` in a fresh process; the JSON it printed after tag, or what went wrong, with
    the warnings of its Prefect server counted."""
    env = {k: v for k, v in os.environ.items() if k not in {"NIANBAO_HOME", "PREFECT_HOME"}}
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    warnings = {name: proc.stderr.count(pattern) for name, pattern in SERVER_WARNINGS.items()}
    for line in proc.stdout.splitlines():
        if line.startswith(tag):
            result: dict[str, Any] = json.loads(line[len(tag):])
            return result | {"prefect_server_warnings": warnings}
    return {"error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-2000:], "prefect_server_warnings": warnings}


def run_relayed(args: list[str]) -> tuple[int, dict[str, int]]:
    """Run `python -m bench.run ARGS` in a fresh process, its output shown as it comes; the warnings of its Prefect
    server counted, and each kind shown once (a full events queue logs one line a dropped event)."""
    counts = dict.fromkeys(SERVER_WARNINGS, 0)
    with subprocess.Popen([sys.executable, "-m", "bench.run", *args], cwd=ROOT, stderr=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            kind = next((name for name, pattern in SERVER_WARNINGS.items() if pattern in line), None)
            if kind is not None:
                counts[kind] += 1
            if kind is None or counts[kind] == 1:
                sys.stderr.write(line if kind is None else f"{line.rstrip()}  (shown once; counted)\n")
    return proc.returncode, counts


def _scratch(label: str) -> Path:
    """A temporary home removed when this process ends (a run on its own, not started by the driver)."""
    root = Path(tempfile.mkdtemp(prefix=f"nianbao-bench-{label}-"))
    atexit.register(shutil.rmtree, root, True)  # registered first, so it runs after Prefect's own exit hooks
    return root


# --------------------------------------------------------------------------------------------------------------
# the file system and the Prefect server


FS_SLOW_US = 120.0  # a new folder with one file in it: 60-100 µs here normally, 400-1,000 after mass deletions
FS_WAIT_LIMIT_S = 420.0  # ext4 skips inodes deleted in the last 60 s, or 300 s more while their block is dirty


def file_creation_us(folder: Path, n: int = 200) -> float:
    """µs to make a folder with one 4 KiB file in it, as the ingest does for each unit's answers."""
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for i in range(n):
        (folder / f"d{i}").mkdir()
        (folder / f"d{i}" / "f").write_bytes(b"x" * 4096)
    return (time.perf_counter() - start) / n * 1e6


def wait_for_normal_file_creation(root: Path) -> dict[str, Any]:
    """Wait (up to FS_WAIT_LIMIT_S) until making files is as fast as usual again, and say what was measured.

    On this machine's ext4 (no journal) every new inode skips past the inodes deleted in the last minutes: right
    after thousands of deletions (an earlier benchmark's cleanup, a test run) making a file costs up to 15 times
    as much, and an ingest, which makes ~3 files and a folder a return, ~1 s more a thousand files. Every scratch
    file of the whole benchmark is kept until it ends, so that the benchmark itself deletes nothing.
    """
    start = time.perf_counter()
    probes: list[float] = []
    while True:
        probes.append(file_creation_us(root / "fs-probe" / str(len(probes))))
        waited = time.perf_counter() - start
        if probes[-1] < FS_SLOW_US or waited > FS_WAIT_LIMIT_S:
            return {"create_us": probes, "waited_s": waited, "normal": probes[-1] < FS_SLOW_US}
        say(f"      file creation is slow now ({probes[-1]:.0f} µs a folder and file: files were deleted in the "
            f"last minutes); waiting before the ingest is timed ...")
        time.sleep(30)


def wait_for_quiet_server(limit_s: float = 90.0) -> float:
    """Wait until the Prefect server (this process's child) has stored the events a flow emitted at its end, so
    that the next step is not timed against it; return how long that took."""
    start = time.perf_counter()
    children = [pid for pid in _child_pids() if pid != os.getpid()]
    tick = os.sysconf("SC_CLK_TCK")
    while children and time.perf_counter() - start < limit_s:
        before = sum(_cpu_ticks(pid) for pid in children)
        time.sleep(0.5)
        if (sum(_cpu_ticks(pid) for pid in children) - before) / tick < 0.05:  # under 10% of a core
            break
    return time.perf_counter() - start


def cpu_seconds_by_process() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process, the Prefect server it started and the examination
    workers (the forkserver and every worker it forked, the ended ones included), for a difference before/after."""
    tick = os.sysconf("SC_CLK_TCK")
    parents = {pid: int(fields.get(1, "0")) for pid in _all_pids() if (fields := _stat_fields(pid))}
    me = os.getpid()
    own = os.times()
    totals = {"flow process": own.user + own.system, "Prefect server": 0.0, "examination workers": 0.0,
              "other children": 0.0}
    for pid in parents:
        top, hops = pid, 0
        while top in parents and parents[top] != me and hops < 20:  # up to the child of this process it is under
            top, hops = parents[top], hops + 1
        if pid == me or parents.get(top) != me:
            continue  # this process, or not one of its descendants
        fields = _stat_fields(pid)
        ticks = sum(int(fields.get(i, "0")) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
        command = _command(top)
        label = ("Prefect server" if "uvicorn" in command or "prefect" in command and "server" in command
                 else "examination workers" if "forkserver" in command else "other children")
        totals[label] += ticks / tick
    return totals


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _child_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and int(_stat_fields(int(entry.name)).get(1, "0")) == os.getpid()]


def _cpu_ticks(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields.get(11, "0")) + int(fields.get(12, "0"))  # utime + stime


def _stat_fields(pid: int) -> dict[int, str]:
    """/proc/PID/stat after the command name (field 1 is the parent's pid); empty once the process is gone."""
    try:
        return dict(enumerate(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()))
    except (OSError, IndexError):
        return {}


class Handover:
    """The time the ingest's end hook spends handing the run's events to the Prefect server, and how many."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.events = 0


@contextmanager
def handover_timed() -> Iterator[Handover]:
    """Time flows.progress.emit_new_events (what emit_events_at_end calls once the run has ended) while in the
    block: the ingest's figure is the whole call, hand-over included; this says how much of it that is."""
    import flows.progress

    measured = Handover()
    real = flows.progress.emit_new_events

    def emit_new_events(**kwargs: Any) -> int:
        start = time.perf_counter()
        try:
            emitted = real(**kwargs)
        finally:
            measured.seconds += time.perf_counter() - start
        measured.events += emitted
        return emitted

    flows.progress.emit_new_events = emit_new_events
    try:
        yield measured
    finally:
        flows.progress.emit_new_events = real


def _warm_up() -> tuple[float, float]:
    """Start Prefect's temporary local server with a trivial flow (first call), then time an empty flow call."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm_up() -> int:
        return 1

    _, first = timed(warm_up)
    _, second = timed(warm_up)
    return first, second


# --------------------------------------------------------------------------------------------------------------
# one size: the flows, the baselines and the plain steps, in one process


def size_run(n: int, seed: int, home: Path | None, out: Path) -> int:
    root = home or _scratch(f"{n}")
    configure_environment(root)
    from sqlmodel import Session, select

    from flows.common import form_for
    from schemas.settings import get_settings
    from schemas.tables import Campaign
    from tasks.issue_workbooks import UnitToIssue

    settings = get_settings()
    form = form_for()
    shape = form_shape(form)
    results: dict[str, Any] = {"units": n, "seed": seed, "home": str(root), "batch_size": settings.batch_size,
                               "machine": machine(), "code": code_fingerprint(),
                               "load_average_at_start": os.getloadavg()}
    say(f"nianbao benchmark: {n} units, data folder {root} (batch size {settings.batch_size})")

    created, register_s = timed(lambda: register_units(n, root))
    results["register"] = {"units": created, "seconds": register_s}
    say(f"[1/8] registered {created} units in {register_s:.2f} s")

    warm_first, warm_again = _warm_up()
    results["prefect"] = {"server_start_and_first_flow_s": warm_first, "empty_flow_call_s": warm_again}
    say(f"      warm-up: Prefect's temporary server started by a trivial flow in {warm_first:.1f} s (not counted "
        f"in any timing); an empty flow call then takes {warm_again:.2f} s")

    from flows.open_collection import open_collection

    opened, open_s = timed(lambda: open_collection(YEAR, DEADLINE))
    open_quiet_s = wait_for_quiet_server()  # the server stores the workbook.issued events before the next step
    from flows.common import engine

    with Session(engine()) as session:
        campaign = session.exec(select(Campaign).where(Campaign.year == YEAR)).one()
    assert campaign.id is not None
    workbooks = issued_workbooks()
    units = [UnitToIssue(0, code, code, {}) for code, _, _ in workbooks]
    # kept until the benchmark ends: on a file system without a journal (this machine's), ext4 steps over inodes
    # deleted in the last minutes each time it makes a file, which made an ingest ~1 s slower
    plain = issue_plain(form, units, campaign.id, campaign.secret, root / "plain-outbox")
    results["open"] = {"flow_s": open_s, "issued": opened.issued, "flow_per_s": opened.issued / open_s,
                       "server_busy_after_s": open_quiet_s, "plain": plain}
    say(f"[2/8] open-collection flow: {opened.issued} workbooks in {open_s:.2f} s = {opened.issued / open_s:.0f}/s; "
        f"workbooks alone: {plain['per_s']:.0f}/s (template {plain['build_template_s'] * 1000:.0f} ms + "
        f"{plain['write_ms_per_workbook']:.2f} ms/workbook)")

    inbox = settings.inbox_dir(YEAR)
    filled = fill_returns(shape, workbooks, inbox, seed, min(OPENPYXL_FILLED, n))
    results["fill"] = {
        "patched": filled.patched, "patched_s": filled.patched_s,
        "patched_per_s": filled.patched / filled.patched_s if filled.patched else 0.0,
        "openpyxl": filled.openpyxl,
        "openpyxl_ms_per_file": 1000 * filled.openpyxl_s / filled.openpyxl if filled.openpyxl else 0.0,
        "mean_file_kib": statistics.fmean(p.stat().st_size for p in filled.paths) / 1024,
    }
    say(f"[3/8] filled {filled.patched} returns by patching ({results['fill']['patched_per_s']:.0f}/s) and "
        f"{filled.openpyxl} with openpyxl ({results['fill']['openpyxl_ms_per_file']:.0f} ms each) into {inbox}")
    designated = campaign.designated_unit_code or ""
    expected = expected_county(form, filled.per_unit, designated)

    baseline = naive_baseline(filled.paths, form, filled.per_unit, seed)
    results["baseline"] = baseline
    sample = f"random sample of {baseline['files']} of {baseline['of']} files" if baseline["sampled"] else "all files"
    say(f"[4/8] naive pandas+openpyxl script: {baseline['files_per_s']:.1f} files/s "
        f"({baseline['ms_per_file']:.1f} ms/file, {sample}); sums match: {baseline['sums_match_generated']}")
    from bench.rawparse import raw_parse

    raw = raw_parse(filled.paths, RAW_PROCESSES)
    results["raw_parse"] = raw
    say(f"      raw parse (calamine, every sheet's values): {raw['one_process_per_s']:.0f} files/s in one process "
        f"({raw['one_process_s']:.2f} s), {raw['processes_per_s']:.0f} files/s in {raw['processes']} processes "
        f"({raw['processes_s']:.2f} s)")

    sampled = sorted(random.Random(seed).sample(filled.paths, min(BREAKDOWN_SAMPLE, n)))
    files = [(p.name, p.read_bytes()) for p in sampled]
    kinds = {code: kind for code, kind, _ in workbooks}
    key = (campaign.id, campaign.year, campaign.form_id, campaign.form_version, campaign.secret)
    from prefect.events.worker import EventsWorker

    from flows.ingest_returns import ingest_returns

    def ingest_as_the_cli_does() -> Any:
        summary = ingest_returns(YEAR)
        EventsWorker.drain_all()  # the CLI's process hands over its queued events before it exits
        return summary

    file_system = wait_for_normal_file_creation(root)
    cpu_before = cpu_seconds_by_process()
    with handover_timed() as handover:
        ingested, ingest_s = timed(ingest_as_the_cli_does)
    cpu_after = cpu_seconds_by_process()
    quiet_s = wait_for_quiet_server()  # the server stores the events; then the plain calls are timed
    cpu_after_quiet = cpu_seconds_by_process()
    ingest_cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
    server_after_s = cpu_after_quiet["Prefect server"] - cpu_after["Prefect server"]
    breakdown = ingest_breakdown(form, files, kinds, key, settings.batch_size, root / "plain-answers")
    ingest_rate = ingested.files / ingest_s
    results["ingest"] = {"flow_s": ingest_s, "server_busy_after_s": quiet_s, "file_system": file_system,
                         "files": ingested.files,
                         "accepted": ingested.accepted,
                         "rejected": ingested.rejected, "duplicates": ingested.duplicates,
                         "flow_files_per_s": ingest_rate, "ratio_vs_baseline": ingest_rate / baseline["files_per_s"],
                         "time_vs_raw_parse": ingest_s / raw["processes_s"],
                         "time_vs_raw_parse_one_process": ingest_s / raw["one_process_s"],
                         "events_handover_s": handover.seconds, "events_handed_over": handover.events,
                         "time_before_handover_vs_raw_parse": (ingest_s - handover.seconds) / raw["processes_s"],
                         "cpu_s_during_flow": ingest_cpu, "server_cpu_s_after_flow": server_after_s,
                         "plain": breakdown}
    say(f"[5/8] ingest-returns flow: {ingested.files} files in {ingest_s:.2f} s = {ingest_rate:.0f} files/s "
        f"({ingested.accepted} accepted, {ingested.rejected} rejected), "
        f"{results['ingest']['ratio_vs_baseline']:.1f}x the naive script, "
        f"{results['ingest']['time_vs_raw_parse']:.1f}x the raw parse's time ({raw['processes']} processes); "
        f"the server then stored its events for {quiet_s:.1f} s (waited for, not timed)")
    say(f"      of which handing its {handover.events:,} events to the Prefect server at the end: "
        f"{handover.seconds:.2f} s; the ingest before it "
        f"{results['ingest']['time_before_handover_vs_raw_parse']:.1f}x the raw parse's time")
    say("      CPU seconds during the flow: " + ", ".join(f"{k} {v:.1f}" for k, v in ingest_cpu.items())
        + f"; the server's afterwards {server_after_s:.1f}")
    say(f"      file creation before it: {file_system['create_us'][-1]:.0f} µs a folder and file"
        + (f" (after waiting {file_system['waited_s']:.0f} s for it)" if len(file_system["create_us"]) > 1 else "")
        + ("" if file_system["normal"] else " -- STILL SLOW: the ingest figure is low"))
    say(f"      plain calls per file ({breakdown['files']} files): reader {breakdown['reader_ms']['mean']:.2f} ms, "
        f"check {breakdown['check_ms']['mean']:.2f} ms, whole examination {breakdown['examine_ms']['mean']:.2f} ms, "
        f"store {breakdown['store_ms_per_file']:.2f} ms, answer {breakdown['answer_ms_per_file']:.2f} ms")

    from bench.plain import report_plain_whole, report_steps
    from flows.compile_report import compile_report

    # the report target is timed on the HTML report; the Word and PDF files are timed apart (publication). The
    # flow and the same work as plain calls alternate, so that drift in the machine's speed falls on both alike
    report_calls: list[float] = []
    plain_calls: list[float] = []
    report = None
    for _ in range(REPORT_REPEATS):
        report, seconds = timed(lambda: compile_report(YEAR, formats=[]))
        report_calls.append(seconds)
        plain_calls += report_plain_whole(YEAR, 1)["calls_s"]
    assert report is not None
    report_s = statistics.median(report_calls)  # the flow's time varies run to run; the first call also imports
    plain_report_s = statistics.median(plain_calls)
    mismatched = compare_county(form, report.figures, expected)
    steps = report_steps(YEAR)
    results["report"] = {"flow_s": report_s, "flow_calls_s": report_calls,
                         "units_accepted": report.units_accepted, "errors": report.errors,
                         "county_figures_match_generated": not mismatched, "mismatched_cells": mismatched[:5],
                         "plain_s": plain_report_s, "plain_calls_s": plain_calls,
                         "prefect_ratio": report_s / plain_report_s, "steps": steps}
    calls = ", ".join(f"{c:.2f}" for c in report_calls)
    say(f"[6/8] compile-report flow: median {report_s:.2f} s of {len(report_calls)} calls ({calls} s) for "
        f"{report.units_accepted} units; the same as plain calls {plain_report_s:.2f} s (median); steps: load "
        f"{steps['load_inputs_s'] * 1000:.0f} ms (accepted figures {steps['load_accepted_s'] * 1000:.0f}), "
        f"consolidate {steps['consolidate_s'] * 1000:.0f} ms, build {steps['build_s'] * 1000:.0f} ms, render "
        f"{steps['render_s'] * 1000:.0f} ms (summary workbook {steps['render_summary_workbook_s'] * 1000:.0f}); "
        f"county figures match: {not mismatched}")
    if n <= ALL_FORMATS_MAX_UNITS:
        full_report, full_report_s = timed(lambda: compile_report(YEAR))
        publication = publication_plain(form, YEAR)
        results["report"] |= {"all_formats_flow_s": full_report_s, "all_formats_files": sorted(full_report.files),
                              "publication": publication}
        say(f"      with Word and PDF: {full_report_s:.2f} s; plain: report html "
            f"{publication['report_ms']['html']:.0f} ms, docx {publication['report_ms']['docx']:.0f} ms, pdf "
            f"{publication['report_ms']['pdf']:.0f} ms; a unit's own report {publication['unit_ms']['html']:.0f} / "
            f"{publication['unit_ms']['docx']:.0f} / {publication['unit_ms']['pdf']:.0f} ms (html / +docx / +pdf, "
            f"mean of {publication['units']})")

    results["load_average_at_end"] = os.getloadavg()
    results["code_at_end"] = code_fingerprint()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------------------------------
# the whole benchmark: each size in fresh processes, one after another; the figures side by side


def drive(sizes: list[int], seed: int, memory: bool, keep: bool) -> int:
    started = time.perf_counter()
    command = " ".join(["python -m bench.run", "--units", ",".join(map(str, sizes))]
                       + (["--no-memory"] if not memory else []) + ([f"--seed {seed}"] if seed != 2021 else []))
    homes: list[Path] = []
    per_size: dict[str, dict[str, Any]] = {}

    def home(label: str) -> Path:
        # every scratch folder is kept until the whole benchmark ends: deleting thousands of files makes the next
        # files slow to create on this machine's file system (wait_for_normal_file_creation)
        path = Path(tempfile.mkdtemp(prefix=f"nianbao-bench-{label}-"))
        homes.append(path)
        return path

    say(f"nianbao benchmark {command}: sizes {', '.join(f'{n:,}' for n in sizes)}, each in fresh processes")
    try:
        for n in sizes:
            size_started = time.perf_counter()
            out = OUT.parent / f"results-{n}.json"
            out.unlink(missing_ok=True)
            say(f"\n=== {n:,} units ===")
            code, warnings = run_relayed(["--size-run", str(n), "--seed", str(seed), "--home", str(home(f"{n}"))])
            if code or not out.exists():
                say(f"the run of {n} units failed (exit {code})")
                per_size[str(n)] = {"units": n, "error": f"exit {code}"}
                continue
            results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
            results["prefect_server_warnings"] = warnings
            main_s = time.perf_counter() - size_started
            say("[7/8] the same issue and ingest as plain calls, without Prefect, in a fresh process ...")
            twin = run_child(["--plain-twin", str(n), "--seed", str(seed), "--home", str(home(f"plain{n}"))],
                             PLAIN_TAG)
            results["plain_twin"] = twin
            if "error" not in twin:
                results["open"]["prefect_ratio"] = results["open"]["flow_s"] / twin["open"]["seconds"]
                results["ingest"]["prefect_ratio"] = results["ingest"]["flow_s"] / twin["ingest"]["seconds"]
                say(f"      plain: issue {twin['open']['per_s']:.0f}/s ({twin['open']['seconds']:.2f} s; flow ÷ plain "
                    f"{results['open']['prefect_ratio']:.2f}), ingest {twin['ingest']['per_s']:.0f} files/s "
                    f"({twin['ingest']['seconds']:.2f} s; flow ÷ plain {results['ingest']['prefect_ratio']:.2f}, "
                    f"{twin['ingest']['accepted']} accepted)")
            else:
                say(f"      plain twin failed: {twin}")
            memory_results: dict[str, Any] = {"skipped": not memory}
            if memory:
                small = max(n // 4, 1)
                say(f"[8/8] memory probes: ingest of {small} and of {n} files, each in a fresh process ...")
                for label, files in (("small", small), ("large", n)):
                    memory_results[label] = run_child(["--memory-probe", str(files), "--seed", str(seed), "--home",
                                                       str(home(f"probe{files}"))], PROBE_TAG)
                memory_results |= _memory_ratio(memory_results.get("small", {}), memory_results.get("large", {}))
                if "ratio" in memory_results:
                    say(f"      peak RSS {memory_results['small']['rss_peak_mib']:.0f} MiB ({small} files), "
                        f"{memory_results['large']['rss_peak_mib']:.0f} MiB ({n} files): ratio "
                        f"{memory_results['ratio']:.2f}")
                else:
                    say(f"      memory probe failed: {memory_results}")
            results["memory"] = memory_results
            results["wall_s"] = {"flows_and_baselines": main_s, "total": time.perf_counter() - size_started}
            per_size[str(n)] = results
    finally:
        if not keep:
            say("\nremoving the scratch folders ...")
            for path in homes:
                shutil.rmtree(path, ignore_errors=True)
    done = {k: v for k, v in per_size.items() if "error" not in v}
    combined: dict[str, Any] = {"command": command, "sizes": per_size, "elapsed_s": time.perf_counter() - started,
                                "machine": next(iter(done.values()))["machine"] if done else machine()}
    combined["memory_across_sizes"] = _memory_across(done)
    combined["targets"] = targets(combined)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(combined, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    print_table(combined)
    say(f"\nresults written to {OUT}; the whole benchmark took {combined['elapsed_s'] / 60:.1f} min")
    return 0 if len(done) == len(per_size) else 1


def _memory_ratio(small: Mapping[str, Any], large: Mapping[str, Any]) -> dict[str, Any]:
    if "rss_peak_mib" not in small or "rss_peak_mib" not in large:
        return {}
    return {"ratio": large["rss_peak_mib"] / small["rss_peak_mib"],
            "ingest_growth_mib": {"small": small["rss_peak_mib"] - small["rss_after_warm_up_mib"],
                                  "large": large["rss_peak_mib"] - large["rss_after_warm_up_mib"]}}


def _memory_across(done: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Peak RSS of the ingest of the largest size against the smallest (each the probe of N files)."""
    probes = {int(n): r["memory"]["large"] for n, r in done.items()
              if "rss_peak_mib" in r.get("memory", {}).get("large", {})}
    if len(probes) < 2:
        return {}
    low, high = min(probes), max(probes)
    return {"small": probes[low], "large": probes[high]} | _memory_ratio(probes[low], probes[high])


# --------------------------------------------------------------------------------------------------------------
# targets and the tables


def targets(combined: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 12's targets for every size measured, then the earlier issues' that still hold."""
    done = {int(n): r for n, r in combined["sizes"].items() if "error" not in r}
    rows: list[dict[str, Any]] = []
    for n, r in sorted(done.items()):
        op, ing = r["open"], r["ingest"]
        rows += [
            {"target": f"issue >= {TARGET_ISSUE_PER_S:.0f} workbooks/s, {n:,} units (open-collection flow)",
             "measured": f"{op['flow_per_s']:.0f}/s", "met": op["flow_per_s"] >= TARGET_ISSUE_PER_S},
            {"target": f"ingest >= {TARGET_INGEST_PER_S:.0f} workbooks/s on {r['machine']['nproc']} cores, "
                       f"{n:,} units (ingest-returns flow)",
             "measured": f"{ing['flow_files_per_s']:.0f}/s", "met": ing["flow_files_per_s"] >= TARGET_INGEST_PER_S},
            {"target": f"ingest >= {TARGET_INGEST_RATIO:.0f}x the naive pandas+openpyxl script, {n:,} units",
             "measured": f"{ing['ratio_vs_baseline']:.1f}x", "met": ing["ratio_vs_baseline"] >= TARGET_INGEST_RATIO},
            {"target": f"ingest time <= {TARGET_RAW_RATIO:.0f}x the raw parse's (calamine, "
                       f"{r['raw_parse']['processes']} processes), {n:,} units",
             "measured": f"{ing['time_vs_raw_parse']:.1f}x", "met": ing["time_vs_raw_parse"] <= TARGET_RAW_RATIO},
            {"target": f"report <= {TARGET_REPORT_S:.0f} s for {n:,} units (compile-report flow, median of "
                       f"{REPORT_REPEATS})",
             "measured": f"{r['report']['flow_s']:.2f} s", "met": r["report"]["flow_s"] <= TARGET_REPORT_S},
        ]
    across = combined["memory_across_sizes"]
    if across:
        rows.append({"target": f"memory flat: peak RSS of the ingest, {across['large']['files']:,} files / "
                               f"{across['small']['files']:,} files <= {MEMORY_FLAT_RATIO}",
                     "measured": f"{across['ratio']:.2f} ({across['small']['rss_peak_mib']:.0f} -> "
                                 f"{across['large']['rss_peak_mib']:.0f} MiB)",
                     "met": across["ratio"] <= MEMORY_FLAT_RATIO})
    for n, r in sorted(done.items()):
        memory = r["memory"]
        if memory.get("skipped"):
            continue
        ratio = memory.get("ratio")
        rows.append({"target": f"memory flat within {n:,} units: peak RSS of the ingest, N / N/4 <= "
                               f"{MEMORY_FLAT_RATIO}",
                     "measured": f"{ratio:.2f}" if ratio is not None else "probe failed",
                     "met": ratio is not None and ratio <= MEMORY_FLAT_RATIO})
    if done:
        n, r = max(done.items())
        reader = r["ingest"]["plain"]["reader_ms"]["mean"]
        rows.append({"target": f"reader < {TARGET_READER_MS:.0f} ms/file (mean, {n:,} units; earlier issue)",
                     "measured": f"{reader:.2f} ms", "met": reader < TARGET_READER_MS})
    return rows


def size_rows(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, figure) of one size, in the order of the table."""
    op, fill, base, raw, ing, rep = (r[k] for k in ("open", "fill", "baseline", "raw_parse", "ingest", "report"))
    twin, mem, pl, steps = r.get("plain_twin", {}), r.get("memory", {}), ing["plain"], rep["steps"]
    plain_ok = "error" not in twin and "open" in twin

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    sample = f"sample of {base['files']:,} of {base['of']:,}" if base["sampled"] else f"all {base['files']:,}"
    rows = [
        ("load average at start / end", f"{r['load_average_at_start'][0]:.2f} / {r['load_average_at_end'][0]:.2f}"),
        ("code measured", f"{r['code']['sources_sha256']}" + ("" if r["code"] == r["code_at_end"] else " CHANGED")),
        ("Prefect server start (excluded) / empty flow call",
         f"{r['prefect']['server_start_and_first_flow_s']:.1f} s / {r['prefect']['empty_flow_call_s']:.2f} s"),
        ("ISSUE, open-collection flow", f"{op['flow_per_s']:.0f}/s ({op['flow_s']:.2f} s)"),
        ("ISSUE, same work as plain calls", f"{twin['open']['per_s']:.0f}/s ({twin['open']['seconds']:.2f} s)"
         if plain_ok else "failed"),
        ("ISSUE, Prefect overhead (flow ÷ plain)", f"{op['prefect_ratio']:.2f}" if "prefect_ratio" in op else "-"),
        ("ISSUE, workbooks alone (template + patch)", f"{op['plain']['per_s']:.0f}/s (template "
         f"{op['plain']['build_template_s'] * 1000:.0f} ms + {op['plain']['write_ms_per_workbook']:.2f} ms each)"),
        ("FILL, patched / openpyxl", f"{fill['patched_per_s']:.0f}/s / {fill['openpyxl_ms_per_file']:.0f} ms each"),
        ("NAIVE pandas+openpyxl (files)", f"{base['files_per_s']:.1f}/s ({sample})"),
        ("RAW PARSE calamine, 1 process", f"{raw['one_process_per_s']:.0f}/s ({raw['one_process_s']:.2f} s)"),
        (f"RAW PARSE calamine, {raw['processes']} processes", f"{raw['processes_per_s']:.0f}/s "
                                                               f"({raw['processes_s']:.2f} s)"),
        ("INGEST, ingest-returns flow", f"{ing['flow_files_per_s']:.0f}/s ({ing['flow_s']:.2f} s, "
                                        f"{ing['accepted']:,} accepted)"),
        ("INGEST, same work as plain calls", f"{twin['ingest']['per_s']:.0f}/s ({twin['ingest']['seconds']:.2f} s)"
         if plain_ok else "failed"),
        ("INGEST, Prefect overhead (flow ÷ plain)", f"{ing['prefect_ratio']:.2f}" if "prefect_ratio" in ing else "-"),
        ("INGEST ÷ NAIVE (rate)", f"{ing['ratio_vs_baseline']:.1f}x"),
        (f"INGEST time ÷ RAW PARSE time, {raw['processes']} processes / 1",
         f"{ing['time_vs_raw_parse']:.1f}x / {ing['time_vs_raw_parse_one_process']:.1f}x"),
        ("INGEST, events handed to the server at the end", f"{ing['events_handover_s']:.2f} s "
                                                           f"({ing['events_handed_over']:,} events)"
         if "events_handover_s" in ing else "-"),
        ("INGEST before that hand-over ÷ RAW PARSE", f"{ing['time_before_handover_vs_raw_parse']:.1f}x"
         if "time_before_handover_vs_raw_parse" in ing else "-"),
        ("INGEST CPU-s: workers / flow process / server", " / ".join(
            f"{ing['cpu_s_during_flow'][k]:.1f}" for k in ("examination workers", "flow process", "Prefect server"))
            + f" (+{ing['server_cpu_s_after_flow']:.1f} after)"),
        ("file creation before the ingest", f"{ing['file_system']['create_us'][-1]:.0f} µs (waited "
                                            f"{ing['file_system']['waited_s']:.0f} s)"),
        ("reader / check / examine (ms a file)",
         f"{pl['reader_ms']['mean']:.2f} / {pl['check_ms']['mean']:.2f} / {pl['examine_ms']['mean']:.2f} "
         f"({pl['files']:,} files)"),
        ("store / answer (ms a file)", f"{pl['store_ms_per_file']:.2f} / {pl['answer_ms_per_file']:.2f}"),
        ("REPORT, compile-report flow (median)", f"{rep['flow_s']:.2f} s ("
                                                 f"{', '.join(f'{c:.2f}' for c in rep['flow_calls_s'])})"),
        ("REPORT, same work as plain calls (median)", f"{rep['plain_s']:.2f} s ("
                                                      f"{', '.join(f'{c:.2f}' for c in rep['plain_calls_s'])})"),
        ("REPORT, Prefect overhead (flow ÷ plain)", f"{rep['prefect_ratio']:.2f}"),
        ("REPORT load (accepted figures) / consolidate", f"{ms(steps['load_inputs_s'])} "
                                                         f"({ms(steps['load_accepted_s'])}) / "
                                                         f"{ms(steps['consolidate_s'])}"),
        ("REPORT build / render (annex html; summary workbook)",
         f"{ms(steps['build_s'])} / {ms(steps['render_s'])} ({ms(steps['render_annex_html_s'])}; "
         f"{ms(steps['render_summary_workbook_s'])})"),
        ("REPORT its artifact and event (Prefect's share)", ms(steps["publish_progress_s"])),
    ]
    if "all_formats_flow_s" in rep:
        pub = rep["publication"]
        rows += [("REPORT flow with Word and PDF", f"{rep['all_formats_flow_s']:.2f} s"),
                 ("unit report html / +docx / +pdf", " / ".join(f"{pub['unit_ms'][k]:.0f}"
                                                                for k in ("html", "docx", "pdf")) + " ms")]
    else:
        rows += [("REPORT flow with Word and PDF", f"not run above {ALL_FORMATS_MAX_UNITS:,} units"),
                 ("unit report html / +docx / +pdf", "-")]
    if "ratio" in mem:
        rows += [("MEMORY peak RSS, ingest of N/4 / N", f"{mem['small']['rss_peak_mib']:.0f} / "
                                                       f"{mem['large']['rss_peak_mib']:.0f} MiB"),
                 ("MEMORY ratio N / N/4; growth in the flow", f"{mem['ratio']:.2f}; "
                                                              f"{mem['ingest_growth_mib']['small']:.0f} / "
                                                              f"{mem['ingest_growth_mib']['large']:.0f} MiB")]
    else:
        rows += [("MEMORY peak RSS, ingest of N/4 / N", "skipped" if mem.get("skipped") else "probe failed"),
                 ("MEMORY ratio N / N/4; growth in the flow", "-")]
    probes = [mem.get(k, {}).get("prefect_server_warnings", {}) for k in ("small", "large")]
    flows_w = r.get("prefect_server_warnings", {})
    rows.append(("Prefect server: events dropped / refused (flows' run; probes)",
                 f"{flows_w.get('events_dropped', 0)} / {flows_w.get('events_refused_too_large', 0)}; "
                 f"{sum(p.get('events_dropped', 0) for p in probes)} / "
                 f"{sum(p.get('events_refused_too_large', 0) for p in probes)}"))
    rows.append(("wall time of this size", f"{r['wall_s']['total']:.0f} s"))
    return rows


def print_table(combined: Mapping[str, Any]) -> None:
    done = {n: r for n, r in combined["sizes"].items() if "error" not in r}
    m = combined["machine"]
    print(f"\nRESULTS ({m['nproc']} CPUs, Python {m['python']}, prefect {m['prefect']}, pandas {m['pandas']}, "
          f"python-calamine {m['python_calamine']})")
    if done:
        columns = {n: dict(size_rows(r)) for n, r in done.items()}
        labels = [label for label, _ in size_rows(next(iter(done.values())))]
        width = max(len(label) for label in labels)
        print(f"  {'units':<{width}}  " + "  ".join(f"{int(n):<44,}" for n in columns))
        for label in labels:
            print(f"  {label:<{width}}  " + "  ".join(f"{columns[n].get(label, '-'):<44}" for n in columns))
    across = combined["memory_across_sizes"]
    if across:
        print(f"  {'MEMORY across sizes':<{width}}  peak RSS {across['small']['rss_peak_mib']:.0f} MiB "
              f"({across['small']['files']:,} files) -> {across['large']['rss_peak_mib']:.0f} MiB "
              f"({across['large']['files']:,} files), ratio {across['ratio']:.2f}")
    print("\nTARGETS")
    for row in combined["targets"]:
        status = "skipped" if row["met"] is None else "met   " if row["met"] else "MISSED"
        print(f"  {status}  {row['target']}: {row['measured']}")
    print("\nCONSISTENCY")
    for n, r in combined["sizes"].items():
        if "error" in r:
            print(f"  FAILED  {n} units: {r['error']}")
            continue
        twin = r.get("plain_twin", {})
        checks = [("all returns accepted by the flow", r["ingest"]["accepted"] == r["units"]),
                  ("all returns accepted by the plain calls", twin.get("ingest", {}).get("accepted") == r["units"]),
                  ("the naive script's sums equal the generated figures", r["baseline"]["sums_match_generated"]),
                  ("the county figures equal the generated figures", r["report"]["county_figures_match_generated"]),
                  ("calamine read as many rows in both modes", r["raw_parse"]["same_rows"]),
                  ("the Prefect server dropped no event in the flows' run",
                   r.get("prefect_server_warnings", {}).get("events_dropped", 0) == 0)]
        for label, ok in checks:
            print(f"  {'ok    ' if ok else 'FAILED'}  {int(n):,} units: {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", default="1000",
                        help="numbers of synthetic units, comma-separated (default 1000; `make bench`: 1000,10000)")
    parser.add_argument("--seed", type=int, default=2021, help="seed of the synthetic figures")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folders")
    # sub-modes, each in a fresh process started by the main mode
    parser.add_argument("--size-run", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--plain-twin", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--memory-probe", type=int, metavar="N", help="sub-mode: peak RSS of one ingest of N files")
    parser.add_argument("--setup-home", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size_run is not None:
        return size_run(args.size_run, args.seed, args.home, OUT.parent / f"results-{args.size_run}.json")
    if args.plain_twin is not None:
        return plain_twin(args.plain_twin, args.seed, args.home)
    if args.memory_probe is not None:
        return memory_probe(args.memory_probe, args.seed, args.home)
    if args.setup_home is not None:
        return setup_home(args.setup_home, args.seed)
    try:
        sizes = [int(part) for part in args.units.split(",") if part.strip()]
    except ValueError:
        parser.error("--units takes numbers separated by commas, e.g. 1000,10000")
    if not sizes or min(sizes) < 2:
        parser.error("--units must be at least 2")
    return drive(sizes, args.seed, not args.no_memory, args.keep)


if __name__ == "__main__":
    sys.exit(main())
