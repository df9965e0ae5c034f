"""Benchmark of nianbao: issue, fill, ingest and report for N synthetic units, all in one run.

    python -m bench.run --units 1000           (what `make bench` runs)
    python -m bench.run --memory-probe 250     (sub-mode the main mode runs twice, in fresh processes)

The main mode works on a fresh temporary data folder (NIANBAO_HOME) and a fresh Prefect home, so its figures never
mix with a real campaign. Steps, in order:

1. register N synthetic units (one 县政府办, the rest townships and departments) from a CSV;
2. OPEN: the open-collection flow, timed after a warm-up flow has started Prefect's temporary local server; then
   the same work as plain calls (build_template once + write_workbooks), so Prefect's share is visible;
3. FILL: each unit's return, made by patching its issued workbook (XlsxPatcher); a few filled with openpyxl
   (cli.simulate.fill_by_names) instead, so both kinds of file are in the inbox;
4. BASELINE: the naive clerk's script (pandas.read_excel, engine=openpyxl, figures picked by address, summed);
5. INGEST: the ingest-returns flow over every file, until its events are handed to the server (as `nianbao ingest`
   does before it exits), once making files is as fast as usual; then the reader, the checker, the store and the
   answer timed as plain calls, once the server has stored those events;
6. REPORT: the compile-report flow, and the plain consolidation;
7. MEMORY: peak RSS of an ingest of N/4 and of N files, each in its own fresh process (--memory-probe).

Results are printed as a table and written to bench/out/results.json. The exit status is 0 even when a target is
missed; a missed target is marked MISSED.
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
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
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
BASELINE_BUDGET_S = 40.0  # the naive script is timed on all files unless that takes longer than this ...
BASELINE_MIN_SAMPLE = 200  # ... and then on a random sample of at least this many files
OPENPYXL_FILLED = 20  # returns filled with openpyxl (as another program saves them); the rest are patched
PROBE_TAG = "MEMORY-PROBE "
MEMORY_FLAT_RATIO = 1.25  # peak(N) / peak(N/4) at or below this counts as flat

_PROCESS_SCOPE = ExitStack()

# targets of the issue
TARGET_ISSUE_PER_S = 100.0
TARGET_INGEST_RATIO = 10.0
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
    """The clerk's script: read every sheet with pandas+openpyxl, pick the figures by address, sum them."""
    import pandas as pd

    from schemas.form_spec import Consolidation

    positions = [(c.key, form.sheet_by_id[c.sheet].name, c.row_number - 1, _column_index(c.column_letter))
                 for c in form.input_cells]
    order = list(paths)
    random.Random(seed).shuffle(order)
    sums = dict.fromkeys((p[0] for p in positions), 0.0)
    done: list[Path] = []
    start = time.perf_counter()
    for path in order:
        sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl", header=None)
        for key, sheet, row, col in positions:
            value: Any = sheets[sheet].iat[row, col]
            sums[key] += 0.0 if pd.isna(value) else float(value)  # NaN for an empty cell
        done.append(path)
        if time.perf_counter() - start > BASELINE_BUDGET_S and len(done) >= BASELINE_MIN_SAMPLE:
            break
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


def report_plain(form: FormSpec, year: int) -> dict[str, Any]:
    """The report's steps as plain calls: load the accepted figures, consolidate, build the report and annex, render
    them as HTML with the summary workbook and JSON (the Word and PDF files are timed apart, by `publication`)."""
    from datetime import datetime

    from sqlmodel import Session

    from flows.common import engine
    from flows.compile_report import CHINA, build_documents, load_inputs, render_outputs
    from schemas.settings import get_settings
    from tasks.campaigns import accepted_values, get_campaign
    from tasks.consolidate import consolidate

    def load() -> tuple[dict[str, dict[str, Decimal]], str | None, int]:
        with Session(engine()) as session:
            campaign = get_campaign(session=session, form=form, year=year)
            assert campaign.id is not None
            return accepted_values(session=session, campaign_id=campaign.id), campaign.designated_unit_code, 0

    now = datetime.now(CHINA)
    (per_unit, designated, _), load_s = timed(load)
    county, consolidate_s = timed(lambda: consolidate(form, year, per_unit, len(per_unit), designated))
    inputs, inputs_s = timed(lambda: load_inputs.fn(year))
    documents, build_s = timed(lambda: build_documents.fn(year, inputs, county, {}, "", get_settings().county_name,
                                                          "bench-plain", now))
    _, render_s = timed(lambda: render_outputs.fn(year, inputs, county, documents, "bench-plain", now, ()))
    return {"load_accepted_s": load_s, "consolidate_s": consolidate_s, "load_inputs_with_status_s": inputs_s,
            "build_s": build_s, "render_s": render_s, "units": len(per_unit), "issues": len(county.issues),
            "consolidation_total_s": load_s + consolidate_s,
            "pipeline_s": inputs_s + consolidate_s + build_s + render_s}  # the flow's tasks, minus record-report


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
# the memory probe (a fresh process per size)


def memory_probe(n: int, seed: int, keep: bool) -> int:
    """Set up a home with n units and n filled returns (plain calls), ingest them with the flow; print peak RSS."""
    root = Path(tempfile.mkdtemp(prefix=f"nianbao-bench-probe{n}-"))
    if not keep:
        atexit.register(shutil.rmtree, root, True)
    configure_environment(root)
    from sqlmodel import Session

    from flows.common import engine, form_for
    from schemas.settings import get_settings
    from tasks.campaigns import open_campaign
    from tasks.issue_workbooks import record_issued, units_to_issue, write_workbooks
    from tasks.workbook_template import build_template
    from tasks.xlsx_patch import XlsxPatcher

    settings = get_settings()
    form = form_for()
    register_units(n, root)
    with Session(engine()) as session:
        campaign, _ = open_campaign(session=session, form=form, year=YEAR, deadline=DEADLINE)
        units = units_to_issue(session=session, campaign=campaign, form=form, previous={})
        assert campaign.id is not None
        template = build_template(form, YEAR, DEADLINE)
        issued = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=campaign.id,
                                 year=YEAR, secret=campaign.secret, units=units,
                                 folder=settings.outbox_dir(YEAR) / "workbooks")
        record_issued(session=session, campaign_id=campaign.id, issued=issued)
        session.commit()
    fill_returns(form_shape(form), issued_workbooks(), settings.inbox_dir(YEAR), seed, 0)
    rss_setup = max_rss_mib()
    warm_s = _warm_up()[0]
    rss_warm = max_rss_mib()
    from flows.ingest_returns import ingest_returns

    summary, ingest_s = timed(lambda: ingest_returns(YEAR))
    rss_peak = max_rss_mib()
    print(PROBE_TAG + json.dumps({
        "files": n, "accepted": summary.accepted, "ingest_s": ingest_s, "warm_up_s": warm_s,
        "rss_after_setup_mib": rss_setup, "rss_after_warm_up_mib": rss_warm, "rss_peak_mib": rss_peak,
        "ru_maxrss_mib": ru_maxrss_mib(),
    }), flush=True)
    return 0


def run_probe(n: int, seed: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in {"NIANBAO_HOME", "PREFECT_HOME"}}
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--memory-probe", str(n), "--seed", str(seed)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(PROBE_TAG):
            result: dict[str, Any] = json.loads(line[len(PROBE_TAG):])
            return result
    return {"files": n, "error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}


# --------------------------------------------------------------------------------------------------------------
# the main run


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
    as much, and an ingest, which makes ~3,000 files and ~1,000 folders, ~1 s more. The probes' files are kept
    until the run ends, so that the check itself deletes nothing.
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


def wait_for_quiet_server(limit_s: float = 30.0) -> float:
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


def _warm_up() -> tuple[float, float]:
    """Start Prefect's temporary local server with a trivial flow (first call), then time an empty flow call."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm_up() -> int:
        return 1

    _, first = timed(warm_up)
    _, second = timed(warm_up)
    return first, second


def main_run(n: int, seed: int, keep: bool, probes: bool) -> int:
    root = Path(tempfile.mkdtemp(prefix="nianbao-bench-"))
    if not keep:
        atexit.register(shutil.rmtree, root, True)  # registered first, so it runs after Prefect's own exit hooks
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
    say(f"[1/7] registered {created} units in {register_s:.2f} s")

    warm_first, warm_again = _warm_up()
    results["prefect"] = {"server_start_and_first_flow_s": warm_first, "empty_flow_call_s": warm_again}
    say(f"      warm-up: Prefect's temporary server started by a trivial flow in {warm_first:.1f} s (not counted "
        f"in any timing); an empty flow call then takes {warm_again:.2f} s")

    from flows.open_collection import open_collection

    opened, open_s = timed(lambda: open_collection(YEAR, DEADLINE))
    from flows.common import engine

    with Session(engine()) as session:
        campaign = session.exec(select(Campaign).where(Campaign.year == YEAR)).one()
    assert campaign.id is not None
    workbooks = issued_workbooks()
    units = [UnitToIssue(0, code, code, {}) for code, _, _ in workbooks]
    # kept until the run ends: on a file system without a journal (this machine's), ext4 steps over inodes deleted
    # in the last minutes each time it makes a file, which made the ingest below ~1 s slower when these 1,000
    # workbooks were deleted here
    plain = issue_plain(form, units, campaign.id, campaign.secret, root / "plain-outbox")
    results["open"] = {"flow_s": open_s, "issued": opened.issued, "flow_per_s": opened.issued / open_s,
                       "plain": plain}
    say(f"[2/7] open-collection flow: {opened.issued} workbooks in {open_s:.2f} s = {opened.issued / open_s:.0f}/s; "
        f"plain calls: {plain['per_s']:.0f}/s (template {plain['build_template_s'] * 1000:.0f} ms + "
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
    say(f"[3/7] filled {filled.patched} returns by patching ({results['fill']['patched_per_s']:.0f}/s) and "
        f"{filled.openpyxl} with openpyxl ({results['fill']['openpyxl_ms_per_file']:.0f} ms each) into {inbox}")
    designated = campaign.designated_unit_code or ""
    expected = expected_county(form, filled.per_unit, designated)

    baseline = naive_baseline(filled.paths, form, filled.per_unit, seed)
    results["baseline"] = baseline
    sample = f"random sample of {baseline['files']} of {baseline['of']} files" if baseline["sampled"] else "all files"
    say(f"[4/7] naive pandas+openpyxl script: {baseline['files_per_s']:.1f} files/s "
        f"({baseline['ms_per_file']:.1f} ms/file, {sample}); sums match: {baseline['sums_match_generated']}")

    files = [(p.name, p.read_bytes()) for p in filled.paths]
    kinds = {code: kind for code, kind, _ in workbooks}
    key = (campaign.id, campaign.year, campaign.form_id, campaign.form_version, campaign.secret)
    from prefect.events.worker import EventsWorker

    from flows.ingest_returns import ingest_returns

    def ingest_as_the_cli_does() -> Any:
        summary = ingest_returns(YEAR)
        EventsWorker.drain_all()  # the CLI's process hands over its queued events before it exits
        return summary

    file_system = wait_for_normal_file_creation(root)
    ingested, ingest_s = timed(ingest_as_the_cli_does)
    quiet_s = wait_for_quiet_server()  # the server stores the events; then the plain calls are timed
    breakdown = ingest_breakdown(form, files, kinds, key, settings.batch_size, root / "plain-answers")
    ingest_rate = ingested.files / ingest_s
    results["ingest"] = {"flow_s": ingest_s, "server_busy_after_s": quiet_s, "file_system": file_system,
                         "files": ingested.files,
                         "accepted": ingested.accepted,
                         "rejected": ingested.rejected, "duplicates": ingested.duplicates,
                         "flow_files_per_s": ingest_rate, "ratio_vs_baseline": ingest_rate / baseline["files_per_s"],
                         "plain": breakdown}
    plain_ms = breakdown["examine_ms"]["mean"] + breakdown["store_ms_per_file"] + breakdown["answer_ms_per_file"]
    results["ingest"]["plain_ms_per_file"] = plain_ms  # examine + store + answer (archive and move not included)
    results["ingest"]["plain_files_per_s"] = 1000 / plain_ms
    say(f"[5/7] ingest-returns flow: {ingested.files} files in {ingest_s:.2f} s = {ingest_rate:.0f} files/s "
        f"({ingested.accepted} accepted, {ingested.rejected} rejected), "
        f"{results['ingest']['ratio_vs_baseline']:.1f}x the naive script; the server then stored its events "
        f"for {quiet_s:.1f} s (waited for, not timed)")
    say(f"      file creation before it: {file_system['create_us'][-1]:.0f} µs a folder and file"
        + (f" (after waiting {file_system['waited_s']:.0f} s for it)" if len(file_system["create_us"]) > 1 else "")
        + ("" if file_system["normal"] else " -- STILL SLOW: the ingest figure is low"))
    say(f"      plain calls per file: reader {breakdown['reader_ms']['mean']:.2f} ms, check "
        f"{breakdown['check_ms']['mean']:.2f} ms, whole examination {breakdown['examine_ms']['mean']:.2f} ms, "
        f"store {breakdown['store_ms_per_file']:.2f} ms, answer {breakdown['answer_ms_per_file']:.2f} ms")

    from flows.compile_report import compile_report

    # the consolidation target is timed on the HTML report; the Word and PDF files are timed apart (publication)
    report, first_report_s = timed(lambda: compile_report(YEAR, formats=[]))
    report_calls = [first_report_s] + [timed(lambda: compile_report(YEAR, formats=[]))[1]
                                       for _ in range(REPORT_REPEATS - 1)]
    report_s = statistics.median(report_calls)  # the flow's time varies run to run; the first call also imports
    mismatched = compare_county(form, report.figures, expected)
    plain_report = report_plain(form, YEAR)
    full_report, full_report_s = timed(lambda: compile_report(YEAR))
    publication = publication_plain(form, YEAR)
    results["report"] = {"flow_s": report_s, "flow_calls_s": report_calls,
                         "units_accepted": report.units_accepted, "errors": report.errors,
                         "county_figures_match_generated": not mismatched, "mismatched_cells": mismatched[:5],
                         "plain": plain_report, "all_formats_flow_s": full_report_s,
                         "all_formats_files": sorted(full_report.files), "publication": publication}
    calls = ", ".join(f"{c:.2f}" for c in report_calls)
    say(f"[6/7] compile-report flow: median {report_s:.2f} s of {len(report_calls)} calls ({calls} s) for "
        f"{report.units_accepted} units; plain: load "
        f"{plain_report['load_accepted_s'] * 1000:.0f} ms + consolidate {plain_report['consolidate_s'] * 1000:.0f} ms"
        f", render {plain_report['render_s'] * 1000:.0f} ms; county figures match: {not mismatched}")
    say(f"      with Word and PDF: {full_report_s:.2f} s; plain: report html {publication['report_ms']['html']:.0f} ms,"
        f" docx {publication['report_ms']['docx']:.0f} ms, pdf {publication['report_ms']['pdf']:.0f} ms; "
        f"a unit's own report {publication['unit_ms']['html']:.0f} / {publication['unit_ms']['docx']:.0f} / "
        f"{publication['unit_ms']['pdf']:.0f} ms (html / +docx / +pdf, mean of {publication['units']})")

    memory: dict[str, Any] = {"skipped": not probes}
    if probes:
        small = max(n // 4, 1)
        say(f"[7/7] memory probes: ingest of {small} and of {n} files, each in a fresh process ...")
        memory["small"] = run_probe(small, seed)
        memory["large"] = run_probe(n, seed)
        if "rss_peak_mib" in memory["small"] and "rss_peak_mib" in memory["large"]:
            memory["ratio"] = memory["large"]["rss_peak_mib"] / memory["small"]["rss_peak_mib"]
            growth_small = memory["small"]["rss_peak_mib"] - memory["small"]["rss_after_warm_up_mib"]
            growth_large = memory["large"]["rss_peak_mib"] - memory["large"]["rss_after_warm_up_mib"]
            memory["ingest_growth_mib"] = {"small": growth_small, "large": growth_large}
    results["memory"] = memory

    results["load_average_at_end"] = os.getloadavg()
    results["code_at_end"] = code_fingerprint()
    results["targets"] = targets(results)
    print_table(results)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    say(f"\nresults written to {OUT}")
    return 0


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    memory = results["memory"]
    ratio = memory.get("ratio")
    rows = [
        {"target": f"issuing >= {TARGET_ISSUE_PER_S:.0f} workbooks/s (open-collection flow)",
         "measured": f"{results['open']['flow_per_s']:.0f}/s",
         "met": results["open"]["flow_per_s"] >= TARGET_ISSUE_PER_S},
        {"target": f"ingest >= {TARGET_INGEST_RATIO:.0f}x the naive pandas script (ingest-returns flow)",
         "measured": f"{results['ingest']['ratio_vs_baseline']:.1f}x",
         "met": results["ingest"]["ratio_vs_baseline"] >= TARGET_INGEST_RATIO},
        {"target": f"reader < {TARGET_READER_MS:.0f} ms/file (mean)",
         "measured": f"{results['ingest']['plain']['reader_ms']['mean']:.2f} ms",
         "met": results["ingest"]["plain"]["reader_ms"]["mean"] < TARGET_READER_MS},
        {"target": f"report < {TARGET_REPORT_S:.0f} s for {results['units']} units (compile-report flow, median)",
         "measured": f"{results['report']['flow_s']:.2f} s", "met": results["report"]["flow_s"] < TARGET_REPORT_S},
        {"target": f"memory flat: peak RSS ingest N / N/4 <= {MEMORY_FLAT_RATIO}",
         "measured": f"{ratio:.2f}" if ratio is not None else "not measured",
         "met": None if memory.get("skipped") else ratio is not None and ratio <= MEMORY_FLAT_RATIO},
    ]
    return rows


def print_table(results: Mapping[str, Any]) -> None:
    m = results["machine"]
    op, fill, base, ing, rep, mem = (results[k] for k in ("open", "fill", "baseline", "ingest", "report", "memory"))
    pl = ing["plain"]
    rows = [
        ("machine", f"{m['nproc']} CPUs, Python {m['python']}, prefect {m['prefect']}, pandas {m['pandas']}"),
        ("units", str(results["units"])),
        ("code measured", f"sources {results['code']['sources_sha256']}, newest {results['code']['newest']}"
                          + ("" if results["code"] == results["code_at_end"] else " (CHANGED DURING THE RUN)")),
        ("load average start / end", f"{results['load_average_at_start'][0]:.2f} / "
                                     f"{results['load_average_at_end'][0]:.2f}"),
        ("Prefect server start (warm-up, excluded)", f"{results['prefect']['server_start_and_first_flow_s']:.1f} s"),
        ("empty flow call", f"{results['prefect']['empty_flow_call_s']:.2f} s"),
        ("OPEN flow", f"{op['flow_per_s']:.0f} workbooks/s ({op['flow_s']:.2f} s)"),
        ("OPEN plain calls", f"{op['plain']['per_s']:.0f} workbooks/s ({op['plain']['total_s']:.2f} s)"),
        ("FILL by patching", f"{fill['patched_per_s']:.0f} files/s ({fill['patched']} files)"),
        ("FILL by openpyxl", f"{fill['openpyxl_ms_per_file']:.0f} ms/file ({fill['openpyxl']} files)"),
        ("BASELINE pandas+openpyxl", f"{base['files_per_s']:.1f} files/s ({base['ms_per_file']:.1f} ms/file, "
                                     f"{base['files']}/{base['of']} files)"),
        ("INGEST flow", f"{ing['flow_files_per_s']:.0f} files/s ({ing['flow_s']:.2f} s, {ing['accepted']} accepted)"),
        ("file creation before the ingest", f"{ing['file_system']['create_us'][-1]:.0f} µs a folder and file"
                                            f" (waited {ing['file_system']['waited_s']:.0f} s)"),
        ("INGEST / BASELINE", f"{ing['ratio_vs_baseline']:.1f}x"),
        ("reader (read_workbook)", f"{pl['reader_ms']['mean']:.2f} ms/file (median {pl['reader_ms']['median']:.2f})"),
        ("check (check_values)", f"{pl['check_ms']['mean']:.2f} ms/file (median {pl['check_ms']['median']:.2f})"),
        ("examine (identify+read+check)", f"{pl['examine_ms']['mean']:.2f} ms/file"),
        ("store (store_examinations)", f"{pl['store_ms_per_file']:.2f} ms/file"),
        ("answer (write_answer)", f"{pl['answer_ms_per_file']:.2f} ms/file"),
        ("INGEST plain estimate (examine+store+answer)", f"{ing['plain_files_per_s']:.0f} files/s "
                                                        f"({ing['plain_ms_per_file']:.2f} ms/file)"),
        ("REPORT flow (median of calls)", f"{rep['flow_s']:.2f} s (calls: "
                                          f"{', '.join(f'{c:.2f}' for c in rep['flow_calls_s'])} s)"),
        ("REPORT plain consolidation", f"{rep['plain']['consolidation_total_s'] * 1000:.0f} ms (load "
                                       f"{rep['plain']['load_accepted_s'] * 1000:.0f} + consolidate "
                                       f"{rep['plain']['consolidate_s'] * 1000:.0f})"),
        ("REPORT plain render", f"{rep['plain']['render_s'] * 1000:.0f} ms"),
        ("REPORT flow with Word and PDF", f"{rep['all_formats_flow_s']:.2f} s"),
        ("county report docx / pdf (plain, beyond html)", f"{rep['publication']['report_ms']['docx']:.0f} / "
                                                         f"{rep['publication']['report_ms']['pdf']:.0f} ms"),
        ("unit report html / +docx / +docx+pdf", " / ".join(f"{rep['publication']['unit_ms'][k]:.0f}"
                                                             for k in ("html", "docx", "pdf")) + " ms a unit"),
        ("REPORT plain pipeline (load+status, consolidate, render)", f"{rep['plain']['pipeline_s']:.2f} s"),
    ]
    if "ratio" in mem:
        rows += [
            (f"MEMORY peak RSS, ingest of {mem['small']['files']}", f"{mem['small']['rss_peak_mib']:.0f} MiB"),
            (f"MEMORY peak RSS, ingest of {mem['large']['files']}", f"{mem['large']['rss_peak_mib']:.0f} MiB"),
            ("MEMORY ratio", f"{mem['ratio']:.2f}"),
            ("MEMORY growth during the ingest flow", f"{mem['ingest_growth_mib']['small']:.0f} MiB vs "
                                                     f"{mem['ingest_growth_mib']['large']:.0f} MiB"),
        ]
    elif not mem.get("skipped"):
        errors = [mem.get(size, {}).get("error") for size in ("small", "large")]
        rows.append(("MEMORY", f"probe failed: {errors}"))
    width = max(len(k) for k, _ in rows)
    print("\nRESULTS")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print("\nTARGETS")
    for row in results["targets"]:
        status = "skipped" if row["met"] is None else "met   " if row["met"] else "MISSED"
        print(f"  {status}  {row['target']}: {row['measured']}")
    checks = [("all returns accepted", ing["accepted"] == results["units"]),
              ("baseline sums equal the generated figures", base["sums_match_generated"]),
              ("county figures equal the generated figures", rep["county_figures_match_generated"])]
    print("\nCONSISTENCY")
    for label, ok in checks:
        print(f"  {'ok    ' if ok else 'FAILED'}  {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=1000, help="number of synthetic units (default 1000)")
    parser.add_argument("--seed", type=int, default=2021, help="seed of the synthetic figures")
    parser.add_argument("--memory-probe", type=int, metavar="N", help="sub-mode: peak RSS of one ingest of N files")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folders")
    args = parser.parse_args(argv)
    if args.memory_probe is not None:
        return memory_probe(args.memory_probe, args.seed, args.keep)
    if args.units < 2:
        parser.error("--units must be at least 2")
    return main_run(args.units, args.seed, args.keep, not args.no_memory)


if __name__ == "__main__":
    sys.exit(main())
