"""What must hold for any file given to the examination, however damaged: the fuzzer's oracle.

1. examine() returns: it never raises (crash) and takes well under a time limit (slow);
2. it says something: a file not accepted carries at least one Issue (silent);
3. nothing wrongly accepted: an accepted file's figures are the ones filled, or else exactly what the file itself
   holds in the named cells as an independent, strict reader (independent_reading) sees them: a damage that moved
   or changed figures must not be accepted with other figures than the file shows (wrongly-accepted), nor when a
   part they depend on is damaged (accepted-unreadable); where that reader finds no number or no well-formed XML
   (accepted-lenient), or the cell is written twice (accepted-ambiguous), the readers are lenient (LENIENCY);
4. the reader's two paths agree: where the fast path (tasks/xlsx_values.py) reads a file and calamine reads it
   too, both give the same identity and values (paths-differ).
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import traceback
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from defusedxml.ElementTree import fromstring

import tasks.workbook_read as workbook_read
from schemas.form_spec import FormSpec
from tasks.ingest import CampaignKey, Examination, Incoming, examine
from tasks.workbook_read import RawWorkbook, read_workbook
from tasks.xlsx_values import Unusual, sheet_parts

from .fuzz_inputs import CAMPAIGN_ID, SECRET, UNIT, YEAR

UNIT_KINDS = {UNIT: "township", "D001": "department"}
# Findings of the readers' leniency with XML a strict parser refuses (a malformed tag; a broken namespace, in a sheet
# or the relationships, a cell written twice and a misspelt sheetData were found this way, and are refused since):
# the figures read are what the text holds, but which of two readings is the file's is moot. They are reported to
# the reader's owner and kept as cases (tests/fuzz), not counted as broken promises.
LENIENCY = frozenset({"accepted-lenient", "accepted-ambiguous", "paths-differ"})


@dataclass(frozen=True)
class Finding:
    """A broken promise: its kind, a one-line signature (to group repeats) and the details."""

    kind: str
    signature: str
    detail: str


@dataclass
class Verdict:
    accepted: bool = False
    fast_path: bool = False  # the fast path read the file itself
    fast_trip: str = ""  # what the fast path stumbled on, if not Unusual (read_workbook falls back: by design)
    seconds: float = 0.0
    codes: tuple[str, ...] = ()
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Oracle:
    form: FormSpec
    figures: Mapping[str, Decimal]  # what was filled into every seed
    time_limit: float = 10.0

    @property
    def campaign(self) -> CampaignKey:
        return CampaignKey(id=CAMPAIGN_ID, year=YEAR, form_id=self.form.form_id, form_version=self.form.version,
                           secret=SECRET)

    def judge(self, data: bytes) -> Verdict:
        """Examine the file as ingest does and check every promise; never raises."""
        verdict = Verdict()
        incoming = Incoming(name="fuzz.xlsx", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                            archive_path="archive/fuzz", received_at_iso="2022-01-10T10:00:00+08:00")
        started = time.perf_counter()
        try:
            exam = examine(data, incoming, self.form, self.campaign, UNIT_KINDS, {})
        except Exception as exc:  # noqa: BLE001  the promise under test: a bad file is an Issue, never this
            verdict.seconds = time.perf_counter() - started
            verdict.findings.append(_crash("crash", exc))
            return verdict
        verdict.seconds = time.perf_counter() - started
        verdict.accepted, verdict.codes = exam.accepted, tuple(i.code for i in exam.issues)
        if verdict.seconds > self.time_limit:
            verdict.findings.append(Finding("slow", "examine", f"{verdict.seconds:.1f} s"))
        if not exam.accepted and not exam.issues:
            verdict.findings.append(Finding("silent", "no issue", "not accepted, and no issue says why"))
        if exam.accepted:
            verdict.findings.extend(self._accepted_figures(data, exam))
        verdict.fast_path, verdict.fast_trip, differs = _paths_agree(data, self.form)
        verdict.findings.extend(differs)
        return verdict

    def _accepted_figures(self, data: bytes, exam: Examination) -> list[Finding]:
        inputs = [c.key for c in self.form.input_cells]
        found = {k: exam.values.get(k) for k in inputs}
        changed = [k for k in inputs if found[k] != self.figures[k]]
        if not changed:
            return []
        members = _members_named_twice(data)
        if members:  # which copy is the file's? zipfile reads the last, another reader may read the first
            return [Finding("accepted-ambiguous", f"members {','.join(members[:2])}",
                            f"accepted with {[(k, str(found[k])) for k in changed]}, members named twice: {members}")]
        twice = written_twice(data, self.form, changed)
        if twice:  # which of two values is the cell's? Excel itself repairs such a file before it shows it
            return [Finding("accepted-ambiguous", f"cells {','.join(twice[:3])}",
                            f"accepted with {[(k, str(found[k])) for k in twice]}, the cell written twice")]
        held = independent_reading(data, inputs)
        if isinstance(held, str):  # a damaged archive is a broken promise; XML a strict parser refuses, leniency
            kind = "accepted-unreadable" if held.startswith(_ZIP_ERRORS) else "accepted-lenient"
            return [Finding(kind, held.split(":")[0],
                            f"accepted with figures other than those filled {[(k, str(found[k])) for k in changed]}"
                            f", in a file a strict reader refuses: {held}")]
        wrong = {k: (str(found[k]), str(held.get(k))) for k in inputs if found[k] != held.get(k)}
        if not wrong:
            return []  # the damage changed figures, and the file says so: what it holds was accepted
        keys = ",".join(sorted(wrong)[:3])
        detail = "accepted (ours, the file's as a strict reader reads it): " + repr(dict(sorted(wrong.items())))
        if all(held.get(k) is None for k in wrong):  # a strict reader sees no number there (a broken namespace...)
            return [Finding("accepted-lenient", f"figures {keys}", detail)]
        return [Finding("wrongly-accepted", f"figures {keys}", detail)]


# what zipfile and zlib raise on a damaged member the figures depend on; anything else is XML a strict parser refuses
_ZIP_ERRORS = ("BadZipFile", "error", "EOFError", "KeyError", "NotImplementedError", "LargeZipFile")


def _members_named_twice(data: bytes) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [info.filename for info in zf.infolist()]
    except Exception:  # noqa: BLE001  not an archive zipfile opens
        return []
    return sorted({name for name in names if names.count(name) > 1})


def written_twice(data: bytes, form: FormSpec, keys: list[str]) -> list[str]:
    """The keys whose cell (where the form puts it) is written more than once in its sheet's XML."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            parts = sheet_parts(zf.read("xl/workbook.xml"), zf.read("xl/_rels/workbook.xml.rels"))
            sheets = {name: zf.read(part) for name, part in parts.items() if part in zf.namelist()}
    except Exception:  # noqa: BLE001  not readable this way: no answer
        return []
    twice = []
    for key in keys:
        cell = form.cell_by_key[key]
        xml = sheets.get(form.sheet_by_id[cell.sheet].name, b"")
        if len(re.findall(rb"""<(?:\w+:)?c\b[^>]*\br=["']%s["']""" % cell.address.encode(), xml)) > 1:
            twice.append(key)
    return twice


def _crash(kind: str, exc: BaseException) -> Finding:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(frames)
                  if "/tasks/" in f.filename or "/schemas/" in f.filename), "?")
    return Finding(kind, f"{type(exc).__name__} at {where}", "".join(traceback.format_exception(exc)))


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_PACKAGE = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_RELATION = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_REFERENCE = re.compile(r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Z]{1,3})\$?([0-9]+)$")
_STRICT_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def independent_reading(data: bytes, keys: list[str]) -> dict[str, Decimal | None] | str:
    """The named cells' numbers as a strict reader sees them: only the parts they depend on (the workbook, its
    relationships, their sheets), each through zipfile (which checks its CRC-32) and a namespace-aware XML parser
    that refuses what is not well-formed; a text saying why not. A damaged part nothing reads is no concern here."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            workbook = fromstring(zf.read("xl/workbook.xml"))
            relations = fromstring(zf.read("xl/_rels/workbook.xml.rels"))
            targets = {r.get("Id"): r.get("Target", "") for r in relations.iter(f"{_PACKAGE}Relationship")}
            parts = {s.get("name"): targets.get(s.get(_RELATION)) for s in workbook.iter(f"{_MAIN}sheet")}
            names = {n.get("name"): (n.text or "") for n in workbook.iter(f"{_MAIN}definedName")
                     if n.get("localSheetId") is None}
            sheets: dict[str, Any] = {}
            held: dict[str, Decimal | None] = {}
            for key in keys:
                match = _REFERENCE.match(names.get(key, "").strip())
                target = parts.get((match.group(1) or "").replace("''", "'") or match.group(2)) if match else None
                if match is None or not target:
                    held[key] = None
                    continue
                member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                if member not in sheets:
                    sheets[member] = fromstring(zf.read(member))
                address = f"{match.group(3)}{match.group(4)}"
                cells = [c for c in sheets[member].iter(f"{_MAIN}c") if c.get("r") == address]
                held[key] = _number(cells[-1]) if cells else None
            return held
    except Exception as exc:  # noqa: BLE001  the strict reader refusing the file is an answer too
        return f"{type(exc).__name__}: {str(exc)[:200]}"


def _number(cell: Any) -> Decimal | None:
    """The cell's number, or None for anything else (a text, a boolean, an error, no value)."""
    value = cell.find(f"{_MAIN}v")
    text = (value.text or "") if value is not None else ""
    if cell.get("t", "n") != "n" or not _STRICT_NUMBER.fullmatch(text):
        return None
    number = Decimal(repr(float(text)))
    return number if number.is_finite() else None


def _paths_agree(data: bytes, form: FormSpec) -> tuple[bool, str, list[Finding]]:
    """Whether the fast path read the file (and if it tripped, on what), and a finding where calamine reads the
    same file otherwise."""
    try:
        fast = workbook_read._read_usual(data, form)
    except Unusual:
        return False, "", []
    except Exception as exc:  # noqa: BLE001  read_workbook catches these too and reads with calamine: not a crash
        return False, type(exc).__name__, []
    slow = calamine_read(data, form)
    if slow.identity is None:
        return True, "", []  # calamine cannot read what the fast path did: the fast path is the more lenient one
    if fast.identity != slow.identity or _plain(fast.values) != _plain(slow.values):
        differ = sorted(k for k in {*fast.values, *slow.values}
                        if _plain(fast.values).get(k) != _plain(slow.values).get(k))
        detail = {k: (fast.values.get(k), slow.values.get(k)) for k in differ[:10]}
        return True, "", [Finding("paths-differ", f"values {','.join(differ[:3])}" if differ else "identity",
                                  f"(fast path, calamine): {detail!r}; identity {fast.identity} / {slow.identity}")]
    return True, "", []


def calamine_read(data: bytes, form: FormSpec) -> RawWorkbook:
    """The file as read_workbook reads it when the fast path declines."""
    return read_workbook(data, form, fast_path=False)


def _plain(values: Mapping[str, object]) -> dict[str, object]:
    return {k: None if v == "" else v for k, v in values.items()}  # calamine's grid has '' for an empty cell
