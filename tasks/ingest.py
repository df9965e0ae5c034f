"""Judge one returned file: identify it, read it, check it. Pure: no database, no files written.

The caller archives the bytes first and stores the verdict after; see flows/ingest_returns.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from schemas.figures import figures_text
from schemas.form_spec import FormSpec
from schemas.issues import Issue
from tasks.check import CheckContext, check_values, texts_of
from tasks.identity import WorkbookIdentity, verify
from tasks.workbook_read import read_workbook


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
    result = check_values(raw.values, form, context)
    texts = texts_of(raw.values, form)
    return Examination(incoming, unit_code, [*raw.issues, *result.issues], result.values,
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


def examine_received(received: list[tuple[bytes, Incoming]], *, form: FormSpec, context: IngestContext,
                     max_bytes: int) -> list[Examination]:
    """Identify, read and check each archived file. Never raises for a bad file."""
    return [examine(data, incoming, form, context.campaign, context.unit_kinds, context.previous, max_bytes)
            for data, incoming in received]
