"""Judge one returned file: identify it, read it, check it. Pure: no database, no files written.

The caller archives the bytes first and stores the verdict after; see flows/ingest_returns.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import cast

from schemas.figures import figures_text
from schemas.form_spec import FormSpec, Severity
from schemas.issues import Issue
from tasks.check import CheckContext, check_values, texts_of
from tasks.identity import WorkbookIdentity, verify
from tasks.workbook_read import BlankCause, RawValue, RawWorkbook, blank_causes, read_workbook


@dataclass(frozen=True)
class CampaignKey:
    """What a file is checked against: the campaign's identity and signing secret."""

    id: int
    year: int
    form_id: str
    form_version: str
    secret: str


@dataclass(frozen=True)
class Incoming:
    """A file as it arrived: its bytes are archived under sha256 before it is examined."""

    name: str
    sha256: str
    size: int
    archive_path: str
    received_at_iso: str
    channel: str = "inbox"
    sender: str = ""
    claimed_unit: str | None = None  # unit the channel says it came from (a unit's folder, mail, upload link)
    source_path: str | None = None  # the inbox file, moved away once stored


@dataclass(frozen=True)
class IngestContext:
    """What checking a campaign's returns needs to know, read once per run."""

    campaign: CampaignKey
    deadline: date
    unit_kinds: dict[str, str]
    unit_names: dict[str, str]
    previous: dict[str, dict[str, Decimal]]


@dataclass
class Examination:
    incoming: Incoming
    unit_code: str | None
    issues: list[Issue] = field(default_factory=list)
    values: dict[str, Decimal] = field(default_factory=dict)
    # the figures as stored: a JSON object of exact decimal texts, made where the file was examined (a worker
    # process), so that storing a batch is one row a file and no per-figure work
    figures: str = "{}"
    texts: str = "{}"  # the prose of the unit's own report, a JSON object by text key

    @property
    def accepted(self) -> bool:
        return self.unit_code is not None and not any(i.is_error for i in self.issues)


def examine(data: bytes, incoming: Incoming, form: FormSpec, campaign: CampaignKey, unit_kinds: dict[str, str],
            previous: dict[str, dict[str, Decimal]], max_bytes: int = 5_000_000) -> Examination:
    """Identify the file (signed identity), then read and check every cell; every problem becomes an Issue."""
    if len(data) > max_bytes:  # never unpack what may be a zip bomb; the bytes are archived all the same
        issue = Issue(code="file-too-large", found=str(len(data)), expected=str(max_bytes))
        return Examination(incoming, _known(incoming.claimed_unit, unit_kinds), [issue])
    raw = read_workbook(data, form, Path(incoming.name).name)
    if raw.identity is None:
        return Examination(incoming, _known(incoming.claimed_unit, unit_kinds), raw.issues)
    identity_issue, unit_code = _identify(raw.identity, incoming, form, campaign, unit_kinds)
    if identity_issue is not None:
        return Examination(incoming, unit_code, [identity_issue])
    assert unit_code is not None
    # issues name the sheets as the unit sees them, should it have renamed one (the defined names follow)
    context = CheckContext(unit_kind=unit_kinds[unit_code], previous=previous.get(unit_code),
                           sheet_names=raw.sheet_names)
    texts = texts_of(raw.values, form)
    values, screened = screen_inputs(data, raw, form, has_texts=bool(texts))
    result = check_values(values, form, context)
    return Examination(incoming, unit_code, [*raw.issues, *screened, *result.issues], result.values,
                       figures_text(result.values), json.dumps(texts, ensure_ascii=False) if texts else "{}")


def _identify(identity: dict[str, str], incoming: Incoming, form: FormSpec, campaign: CampaignKey,
              unit_kinds: dict[str, str]) -> tuple[Issue | None, str | None]:
    claimed = _known(incoming.claimed_unit, unit_kinds)
    try:
        parsed = WorkbookIdentity(form_id=identity["form_id"], form_version=identity["form_version"],
                                  year=int(identity["year"]), campaign_id=int(identity["campaign_id"]),
                                  unit_code=identity["unit_code"])
        signature = identity["signature"]
    except (KeyError, ValueError):
        return Issue(code="unknown-workbook"), claimed
    if parsed.form_id != form.form_id or parsed.year != campaign.year or parsed.campaign_id != campaign.id:
        return Issue(code="wrong-campaign", found=f"{parsed.year}年度的填报", expected=f"{campaign.year}年度"), claimed
    if not verify(parsed, signature, campaign.secret):
        return Issue(code="bad-signature"), claimed
    if parsed.form_version != campaign.form_version:
        return Issue(code="wrong-form-version", found=parsed.form_version, expected=campaign.form_version), claimed
    if parsed.unit_code not in unit_kinds:
        return Issue(code="unknown-unit", found=parsed.unit_code), claimed
    if claimed is not None and claimed != parsed.unit_code:
        return Issue(code="wrong-unit", found=parsed.unit_code, expected=claimed), claimed
    return None, parsed.unit_code


def _known(code: str | None, unit_kinds: dict[str, str]) -> str | None:
    return code if code in unit_kinds else None


MAX_FIGURE = 10**9  # no unit's count or sum in 万元 comes near: a longer number is a slip on the keyboard
_MISSING = object()
_NOTHING_FILLED = {
    True: "都是空白或0，表格尚未填写。请逐项填写（没有数据请填0）后再报送。",
    False: "都是0，与下发时相同，表格看起来尚未填写。请填写本单位的数据后再报送；如本单位本年度各项确实均为0，"
           "请在“文字部分”说明情况后再报送。",
}
_ALL_ZERO_EXPLAINED = "都是0。已收到“文字部分”的说明，请再核实各项确实均为0。"


def screen_inputs(data: bytes, raw: RawWorkbook, form: FormSpec, *,
                  has_texts: bool) -> tuple[dict[str, RawValue], list[Issue]]:
    """The raw values left to check and the issues found before checking: one issue, not one a cell, for a return
    left as issued (or emptied), for a sheet left empty, for a merge over input cells; a formula saved without its
    value and a number too large to be true said as such. Cells with such an issue are left out of the check, and
    so are the rules over them. One pass over the input cells: the usual return finds nothing here."""
    values = raw.values
    keys = _input_keys(form)
    try:  # the usual return at C speed: every input cell a number, not all zero, none too large
        # typed as numbers, which the usual return holds; any other value makes min() or max() raise TypeError
        found = cast(list[float], list(map(values.get, keys)))
        if None not in found and -MAX_FIGURE < min(found) and max(found) < MAX_FIGURE and any(found):
            return values, []
    except TypeError:
        pass  # a text or a date among the numbers
    blank: list[str] = []
    large: list[str] = []
    filled = False
    for key in keys:
        value = values.get(key, _MISSING)
        if type(value) is float or type(value) is int:
            if value:
                filled = True
                if not -MAX_FIGURE < value < MAX_FIGURE:
                    large.append(key)
        elif value is None or (type(value) is str and not value.strip()):
            blank.append(key)
        elif value is not _MISSING:
            filled = True
    if filled and not blank and not large:
        return values, []
    issues: list[Issue] = []
    dropped: set[str] = set()
    if blank:
        causes = blank_causes(data, raw, blank, keys)
        issues += _cause_issues(causes, raw, form)
        dropped |= causes.keys()
        blank = [key for key in blank if key not in causes]
    if not filled and not dropped:
        count = sum(1 for key in keys if key in raw.places)
        explained = has_texts and not blank
        issues.append(Issue(code="empty-return", severity=Severity.WARNING if explained else Severity.ERROR,
                            note=f"{count}个数字单元格" + (_ALL_ZERO_EXPLAINED if explained
                                                          else _NOTHING_FILLED[bool(blank)])))
        dropped |= set(blank)
    elif blank:
        issues += _empty_sheets(blank, raw, form, dropped)
    for key in large:
        cell = form.cell_by_key[key]
        issues.append(Issue(code="value-too-large", rule="R5", sheet=_sheet_of(raw, form, key), cell=cell.address,
                            field=key, label=cell.label, found=_plain(values[key]), expected=str(MAX_FIGURE - 1)))
        dropped.add(key)
    return ({k: v for k, v in values.items() if k not in dropped} if dropped else values), issues


_keys: dict[int, tuple[FormSpec, tuple[str, ...]]] = {}


def _input_keys(form: FormSpec) -> tuple[str, ...]:
    """The form's input cell keys, made once a form (the form is held, so its id is not reused)."""
    known = _keys.get(id(form))
    if known is None:
        known = _keys[id(form)] = (form, tuple(key for key, _ in form.input_whole))
    return known[1]


def _cause_issues(causes: dict[str, BlankCause], raw: RawWorkbook, form: FormSpec) -> list[Issue]:
    issues = []
    merges: dict[tuple[str, str], str] = {}  # (sheet, range) -> first blank key under it
    for key, cause in causes.items():
        cell = form.cell_by_key[key]
        sheet = _sheet_of(raw, form, key)
        if cause.kind == "formula":
            issues.append(Issue(code="formula-without-value", rule="R5", sheet=sheet, cell=cell.address, field=key,
                                label=cell.label, found=cause.where[:60]))
        elif (sheet, cause.where) not in merges:
            merges[(sheet, cause.where)] = key
            issues.append(Issue(code="merged-input", sheet=sheet, cell=cause.where, field=key, label=cell.label,
                                note=str(cause.inputs)))
    return issues


def _empty_sheets(blank: list[str], raw: RawWorkbook, form: FormSpec, dropped: set[str]) -> list[Issue]:
    """One issue a sheet whose input cells (two or more) are all blank; its cells join `dropped`."""
    by_sheet: dict[str, list[str]] = {}
    for key in blank:
        by_sheet.setdefault(form.cell_by_key[key].sheet, []).append(key)
    issues = []
    for sheet_id, keys in by_sheet.items():
        placed = [c.key for c in form.input_cells if c.sheet == sheet_id and c.key in raw.places]
        if len(keys) >= 2 and len(keys) == len(placed):
            issues.append(Issue(code="empty-sheet", sheet=_sheet_of(raw, form, keys[0]), note=str(len(keys))))
            dropped.update(keys)
    return issues


def _sheet_of(raw: RawWorkbook, form: FormSpec, key: str) -> str:
    place = raw.places.get(key)
    return place[0] if place else form.sheet_by_id[form.cell_by_key[key].sheet].name


def _plain(value: RawValue) -> str:
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    return format(number, "f")


def examine_received(received: list[tuple[bytes, Incoming]], *, form: FormSpec, context: IngestContext,
                     max_bytes: int) -> list[Examination]:
    """Identify, read and check each archived file. Never raises for a bad file."""
    return [examine(data, incoming, form, context.campaign, context.unit_kinds, context.previous, max_bytes)
            for data, incoming in received]
