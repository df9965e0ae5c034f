"""Read a returned workbook fast: its identity block and the raw value of every form cell, found by defined name.

The names are read from xl/workbook.xml directly. A return laid out as issued is then read straight from its XML
(tasks/xlsx_values.py, ~0.4 ms); any other file by python-calamine (~0.7 ms, 20x openpyxl), which does not see
defined names itself. Nothing here judges the figures (tasks/check.py does); this module only turns bytes into raw
values, and every way the bytes can fail to be our workbook into a structure Issue.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import islice
from xml.sax.saxutils import unescape

import python_calamine

from schemas.form_spec import CellSpec, FormSpec, TextSpec
from schemas.issues import Issue
from tasks.file_guard import (
    OLE_SIGNATURE,
    WORKBOOK_PART,
    WORKBOOK_RELATIONSHIPS,
    Refused,
    cell_address,
    guard_archive,
    guard_sheets,
    outside_namespace,
    sniff_compound,
    sniff_package,
)
from tasks.identity import IDENTITY_SHEET
from tasks.xlsx_values import (
    Archive,
    Seen,
    SharedStrings,
    Sheet,
    Unusual,
    Value,
    identity_rows,
    plain_styles,
    sheet_parts,
)

log = logging.getLogger(__name__)

# what calamine gives for a cell; dates and durations appear where a unit formatted a cell as one
RawValue = float | int | str | bool | date | time | datetime | timedelta | None

_DEFINED_NAME = re.compile(r'<definedName\b([^>]*?)\bname="([^"]*)"([^>]*)>([^<]*)</definedName>')
_REFERENCE = re.compile(r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Z]{1,3})\$?([0-9]+)$")


@dataclass
class RawWorkbook:
    identity: dict[str, str] | None = None
    values: dict[str, RawValue] = field(default_factory=dict)
    places: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (sheet name, address) as found
    issues: list[Issue] = field(default_factory=list)
    sheet_names: dict[str, str] = field(default_factory=dict)  # the form's sheet id -> its name as found

    @property
    def readable(self) -> bool:
        return self.identity is not None


def read_workbook(data: bytes, form: FormSpec, name: str = "", fast_path: bool = True) -> RawWorkbook:
    """Identity and raw cell values of a returned file; what cannot be read becomes an Issue, never an exception.

    fast_path=False reads with calamine whatever the file (the tests and the fuzzer hold the two paths alike).
    """
    raw = RawWorkbook()
    if not data.startswith(b"PK"):
        code, note = sniff_compound(data, name) if data.startswith(OLE_SIGNATURE) else ("not-a-workbook", "")
        raw.issues.append(Issue(code=code, found=name, note=note))
        return raw
    if fast_path:
        try:
            return _read_usual(data, form)
        except Refused as exc:
            raw.issues.append(Issue(code=exc.code, found=name, note=exc.note))
            return raw
        except Exception:  # noqa: BLE001  Unusual, or damage the fast path trips on: calamine reads it and says what
            pass
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            guard_archive(data, infos)  # calamine trusts what the archive says of itself: nothing unsafe reaches it
            guard_sheets(zf, infos)  # CRC-32 of every member; no sheet so far-reaching that calamine would abort
            names = {info.filename for info in infos}
            if "xl/workbook.xml" not in names:
                code, note = sniff_package(names) or ("not-a-workbook", "")
                raw.issues.append(Issue(code=code, found=name, note=note))
                return raw
            plan = _plan(form, zf.read("xl/workbook.xml"))
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        if IDENTITY_SHEET not in book.sheet_names:
            raw.issues.append(Issue(code="unknown-workbook"))
            return raw
        raw.identity = _identity(book.get_sheet_by_name(IDENTITY_SHEET).to_python(skip_empty_area=False))
        _read_cells(raw, form, book, plan)
    except Refused as exc:
        raw.issues.append(Issue(code=exc.code, found=name, note=exc.note))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, UnicodeDecodeError, KeyError) as exc:
        raw.identity = None
        raw.issues.append(Issue(code="corrupt-workbook", note=type(exc).__name__))
    except python_calamine.CalamineError as exc:
        raw.identity = None
        raw.issues.append(Issue(code="corrupt-workbook", note=str(exc)[:120]))
    except Exception as exc:  # calamine raises a few untyped errors on damaged parts; a bad file never crashes
        raw.identity = None
        raw.issues.append(Issue(code="corrupt-workbook", note=f"{type(exc).__name__}: {str(exc)[:120]}"))
    return raw


def _read_usual(data: bytes, form: FormSpec) -> RawWorkbook:
    """A return as we issued it, read straight from its XML (tasks/xlsx_values.py); Unusual for anything else:
    a missing sheet or name, text where a number goes, a damaged archive, ... (read_workbook's calamine path says
    what is wrong with it)."""
    archive = Archive(data)
    layout = _layout(form, archive)
    if layout.plan.unplaced or not layout.complete:
        raise Unusual("a name or sheet is missing")
    shared = SharedStrings(archive, "xl/sharedStrings.xml" if "xl/sharedStrings.xml" in archive.entries else None)
    plain = _plain_styles(archive)
    raw = RawWorkbook(identity=identity_rows(archive.read(layout.parts[IDENTITY_SHEET]), shared, plain))
    values: dict[str, Value] = {}
    for sheet_name, wanted in layout.wanted:
        Sheet(archive.read(layout.parts[sheet_name]), plain, shared).read(wanted, values)
    raw.values.update(values)
    raw.places = layout.plan.place_of
    raw.sheet_names = layout.plan.sheet_names
    return raw


@dataclass(frozen=True)
class _Layout:
    plan: _Plan
    parts: dict[str, str]  # sheet name -> archive member
    wanted: tuple[tuple[str, tuple[tuple[str, bytes], ...]], ...]  # each sheet's (key, address) pairs
    complete: bool  # the identity sheet and every sheet of the plan are named (their parts are read later)
    made_from: tuple[Seen, Seen]  # xl/workbook.xml and its relationships, as they were


_WORKBOOK, _RELATIONSHIPS = WORKBOOK_PART, WORKBOOK_RELATIONSHIPS
_layouts: dict[tuple[str, str, tuple[int, int] | None, tuple[int, int] | None], _Layout] = {}


def _layout(form: FormSpec, archive: Archive) -> _Layout:
    """Where each form cell is, made once for each xl/workbook.xml and its relationships: found again by their
    CRC-32 and size in the central directory, and used once their stored form is one seen (most returns of a
    campaign: not even inflated) or they inflate, CRC intact, to the same content. A part damaged behind an intact
    directory entry is read, and the file goes to the other path, which refuses it."""
    key = (form.form_id, form.version, archive.fingerprint(_WORKBOOK), archive.fingerprint(_RELATIONSHIPS))
    layout = _layouts.get(key)
    if layout is not None and all(archive.holds(name, seen)
                                  for name, seen in zip((_WORKBOOK, _RELATIONSHIPS), layout.made_from, strict=True)):
        return layout
    made_from = (archive.seen(_WORKBOOK), archive.seen(_RELATIONSHIPS))
    if any(outside_namespace(part.content, name)  # the guard before calamine refuses the file
           for part, name in zip(made_from, (_WORKBOOK, _RELATIONSHIPS), strict=True)):
        raise Unusual("the workbook or its relationships outside their namespace")
    workbook_xml = made_from[0].content
    parts = sheet_parts(workbook_xml, made_from[1].content)
    plan = _plan(form, workbook_xml)
    by_sheet: dict[str, list[tuple[str, bytes]]] = {}
    for cell_key, sheet, _, _ in plan.places:
        by_sheet.setdefault(sheet, []).append((cell_key, plan.place_of[cell_key][1].encode("ascii")))
    wanted = tuple((sheet, tuple(pairs)) for sheet, pairs in by_sheet.items())
    complete = all(name in parts for name in (*plan.sheets, IDENTITY_SHEET))
    if len(_layouts) >= 64:
        _layouts.clear()
    layout = _layouts[key] = _Layout(plan, parts, wanted, complete, made_from)
    return layout


_styles: dict[tuple[int, int], tuple[frozenset[int], Seen]] = {}


def _plain_styles(archive: Archive) -> frozenset[int]:
    """The workbook's styles that show a number as it is, made once for each xl/styles.xml (as _layout)."""
    key = archive.fingerprint("xl/styles.xml")
    if key is None:  # no styles: every cell has the default format
        return frozenset({0})
    known = _styles.get(key)
    if known is not None and archive.holds("xl/styles.xml", known[1]):
        return known[0]
    seen = archive.seen("xl/styles.xml")
    if len(_styles) >= 64:
        _styles.clear()
    plain = plain_styles(seen.content)
    _styles[key] = (plain, seen)
    return plain


def _defined_names(workbook_xml: str) -> dict[str, str]:
    names = {}
    for before, name, after, ref in _DEFINED_NAME.findall(workbook_xml):
        if "localSheetId" in before or "localSheetId" in after:
            continue  # sheet-local names are not ours
        if "&" in ref:
            ref = unescape(ref, {"&quot;": '"', "&apos;": "'"})
        names[unescape(name) if "&" in name else name] = ref
    return names


def _identity(rows: Sequence[Sequence[RawValue]]) -> dict[str, str]:
    identity = {}
    for row in rows:
        if len(row) >= 2 and isinstance(row[0], str) and row[0]:
            value = row[1]
            identity[row[0]] = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return identity


@dataclass(frozen=True)
class _Plan:
    """Where each form cell is in a workbook carrying these defined names."""

    places: tuple[tuple[str, str, int, int], ...]  # key, sheet name, 0-based row and column
    place_of: dict[str, tuple[str, str]]  # key -> (sheet name, address); not to be changed, it is shared
    unplaced: tuple[tuple[CellSpec | TextSpec, str | None], ...]  # deleted names (None), names pointing nowhere
    sheets: frozenset[str]  # the sheets the places are on
    sheet_names: dict[str, str]  # the form's sheet id -> the name its cells were found on


def _read_cells(raw: RawWorkbook, form: FormSpec, book: python_calamine.CalamineWorkbook, plan: _Plan) -> None:
    sheet_names = set(book.sheet_names)  # a fresh list from Rust on every access: take it once
    grids = {name: book.get_sheet_by_name(name).to_python(skip_empty_area=False)
             for name in plan.sheets if name in sheet_names}
    missing_sheets: set[str] = set()
    unplaced: dict[str, list[tuple[CellSpec | TextSpec, str | None]]] = {}
    for cell, ref in plan.unplaced:
        expected_sheet = form.sheet_by_id[cell.sheet].name
        if expected_sheet not in sheet_names:
            missing_sheets.add(expected_sheet)  # the sheet is gone, and its names with it: one issue says so
            continue
        unplaced.setdefault(expected_sheet, []).append((cell, ref))
    for sheet_name, cells in unplaced.items():
        raw.issues += _missing_names(sheet_name, cells)
    missing_sheets |= plan.sheets - grids.keys()
    values = raw.values
    for key, sheet_name, row, col in plan.places:
        grid = grids.get(sheet_name)
        if grid is not None:
            values[key] = grid[row][col] if row < len(grid) and col < len(grid[row]) else None
    raw.places = plan.place_of if not missing_sheets else {
        key: place for key, place in plan.place_of.items() if place[0] not in missing_sheets}
    raw.sheet_names = plan.sheet_names
    for sheet_name in sorted(missing_sheets):
        raw.issues.append(Issue(code="missing-sheet", sheet=sheet_name))


GROUP_MISSING_NAMES = 3  # this many cells of a sheet gone (a row or column deleted): one issue, not a list


def _missing_names(sheet_name: str, cells: list[tuple[CellSpec | TextSpec, str | None]]) -> list[Issue]:
    """The issues for a sheet's cells whose names are deleted or point nowhere: one a cell, or, for a deleted row or
    column (many at once), one for the sheet naming the first few, so that the unit reads the cause once."""
    if len(cells) >= GROUP_MISSING_NAMES:
        shown = "、".join(f"“{cell.label}”（原{cell.address}）" for cell, _ in cells[:3])
        return [Issue(code="missing-names", sheet=sheet_name, found=str(len(cells)), note=shown)]
    return [Issue(code="missing-name", sheet=sheet_name, cell=cell.address, field=cell.key, label=cell.label,
                  note="名称已被删除" if ref is None else f"名称指向无效位置（{ref}）") for cell, ref in cells]


_plans: dict[tuple[str, str, bytes], _Plan] = {}


def _plan(form: FormSpec, workbook_xml: bytes) -> _Plan:
    """The plan for the defined names of this xl/workbook.xml, made once: the returns of a campaign nearly all
    carry the very workbook.xml of the workbooks it issued (Excel, WPS or LibreOffice rewrite it, once each)."""
    key = (form.form_id, form.version, workbook_xml)
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) >= 64:  # workbooks with names of their own (edited by hand) don't pile up
            _plans.clear()
        plan = _plans[key] = _make_plan(form, _defined_names(workbook_xml.decode("utf-8")))
    return plan


def _make_plan(form: FormSpec, by_name: dict[str, str]) -> _Plan:
    places: list[tuple[str, str, int, int]] = []
    place_of: dict[str, tuple[str, str]] = {}
    unplaced: list[tuple[CellSpec | TextSpec, str | None]] = []
    sheet_names: dict[str, str] = {}
    specs: list[CellSpec | TextSpec] = [*form.cells, *form.texts]  # a text is found by its name like a figure
    for cell in specs:
        ref = by_name.get(cell.key)
        where = _parse_reference(ref) if ref else None
        if where is None:
            unplaced.append((cell, ref))
            continue
        sheet, address, row, col = where
        places.append((cell.key, sheet, row, col))
        place_of[cell.key] = (sheet, address)
        sheet_names[cell.sheet] = sheet
    return _Plan(tuple(places), place_of, tuple(unplaced), frozenset(place_of[k][0] for k in place_of), sheet_names)


@lru_cache(maxsize=8192)  # the same few hundred references recur in every workbook of a form
def _parse_reference(ref: str) -> tuple[str, str, int, int] | None:
    """Sheet name, address and 0-based row and column of a name's reference like 'Sheet'!$D$6."""
    match = _REFERENCE.match(ref.strip())
    if not match:
        return None
    sheet = (match.group(1) or "").replace("''", "'") or match.group(2)
    column, row = match.group(3), int(match.group(4))
    col = 0
    for char in column:
        col = col * 26 + ord(char) - 64
    return sheet, f"{column}{row}", row - 1, col - 1


MAX_MERGES = 5_000
_MERGE = re.compile(rb'<mergeCell ref="([A-Z]{1,3}[0-9]{1,7}):([A-Z]{1,3}[0-9]{1,7})"')
_FORMULA = re.compile(rb"<f\b[^>]*?(?:/>|>([^<]*)</f>)")


@dataclass(frozen=True)
class BlankCause:
    kind: str  # "merged" or "formula"
    where: str  # the merged range (e.g. D6:F6) or the formula as the unit typed it (e.g. =3+5)
    inputs: int = 1  # input cells under the merge


def blank_causes(data: bytes, raw: RawWorkbook, blank: Iterable[str], inputs: Iterable[str]) -> dict[str, BlankCause]:
    """Why input cells read blank, where the file shows it: under a merge the unit made, or a formula saved without
    its value. Reads those sheets' XML once more, so only a return with blank input cells comes here (not the usual
    one). A merge counts when it covers two input cells or more, or one input cell not at its top left (the issued
    workbook merges some input cells with the empty cells to their right)."""
    wanted: dict[str, list[tuple[str, tuple[int, int]]]] = {}
    for key in blank:
        if key in raw.places:
            sheet, address = raw.places[key]
            wanted.setdefault(sheet, []).append((key, _row_col(address)))
    at: dict[tuple[str, tuple[int, int]], str] = {}
    for key in inputs:
        if key in raw.places:
            sheet, address = raw.places[key]
            at[(sheet, _row_col(address))] = key
    causes: dict[str, BlankCause] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            parts = sheet_parts(zf.read("xl/workbook.xml"), zf.read("xl/_rels/workbook.xml.rels"))
            for sheet, cells in wanted.items():
                xml = zf.read(parts[sheet])
                # a real sheet has tens of merges; a made-up one may have millions: the first few thousand will do
                merges = [(_row_col(first.decode()), _row_col(last.decode()))
                          for first, last in islice(_MERGE.findall(xml), MAX_MERGES)]
                for key, place in cells:
                    cause = _merge_over(sheet, place, merges, at) or _formula_in(xml, raw.places[key][1])
                    if cause is not None:
                        causes[key] = cause
    except Exception:  # noqa: BLE001  a file calamine reads but this look does not: its blanks stay plain blanks
        log.info("could not look into the blank cells of a return", exc_info=True)
    return causes


def _merge_over(sheet: str, place: tuple[int, int], merges: list[tuple[tuple[int, int], tuple[int, int]]],
                at: dict[tuple[str, tuple[int, int]], str]) -> BlankCause | None:
    row, col = place
    for (top, left), (bottom, right) in merges:
        if top <= row <= bottom and left <= col <= right:  # (a merge may span the whole sheet: count the inputs)
            covered = sum(1 for (s, (r, c)) in at if s == sheet and top <= r <= bottom and left <= c <= right)
            if covered >= 2 or (row, col) != (top, left):
                return BlankCause("merged", f"{cell_address(top, left)}:{cell_address(bottom, right)}", covered)
    return None


def _formula_in(xml: bytes, address: str) -> BlankCause | None:
    cell = re.search(rb'<c r="' + address.encode("ascii") + rb'"[^>]*?(?:/>|>(.*?)</c>)', xml, re.DOTALL)
    formula = _FORMULA.search(cell.group(1)) if cell is not None and cell.group(1) else None
    if formula is None:
        return None
    text = unescape((formula.group(1) or b"").decode("utf-8", "replace"), {"&quot;": '"', "&apos;": "'"})
    return BlankCause("formula", f"={text}" if text else "共享公式")


def _row_col(address: str) -> tuple[int, int]:
    letters = address.rstrip("0123456789")
    col = 0
    for char in letters:
        col = col * 26 + ord(char) - 64
    return int(address[len(letters):]), col

