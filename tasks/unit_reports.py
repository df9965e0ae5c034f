"""Each unit's own annual report, made from its accepted return: its tables, and the prose of its 文字部分 sheet.

Every department must publish its own report by 31 January (条例 第四十九条); the figures the county accepted and the
text the unit wrote give it for free, in the same layout as the county's. The files of one accepted return are
written once, under the return's id (unit-reports/CODE/SUBMISSION/...), so a resubmission gets new files and the
upload page can hand the clerk the files of exactly what was accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from schemas.figures import figures_from_text
from schemas.form_spec import FormSpec
from schemas.tables import Assignment, Campaign, Submission, Unit
from tasks.campaigns import previous_year_values
from tasks.narrative import narrative_from_texts
from tasks.publication import write_publication
from tasks.report_build import ReportInput, build_report
from tasks.report_document import Document
from tasks.report_facts import Finding


@dataclass(frozen=True)
class UnitReportSource:
    """What a unit's report is made of: its latest accepted return, and its figures of last year if known."""

    code: str
    name: str
    kind: str
    submission_id: int
    version: int
    figures: dict[str, Decimal]
    texts: dict[str, str]
    previous: dict[str, Decimal] | None


def load_unit_sources(*, session: Session, form: FormSpec, campaign: Campaign,
                      codes: Iterable[str] | None = None) -> list[UnitReportSource]:
    """The accepted return of every unit of the campaign (or of the units named), by unit code."""
    columns = (col(Unit.code), col(Unit.name), col(Unit.kind), col(Submission.id), col(Submission.version),
               col(Submission.figures), col(Submission.texts))
    query = (sa_select(*columns)
             .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
             .join(Submission, col(Submission.id) == col(Assignment.accepted_submission_id))
             .where(col(Assignment.campaign_id) == campaign.id).order_by(col(Unit.code)))
    if codes is not None:
        query = query.where(col(Unit.code).in_(list(codes)))
    previous = previous_year_values(session=session, form=form, year=campaign.year)
    return [UnitReportSource(code, name, str(kind), int(sid or 0), version, figures_from_text(figures),
                             json.loads(texts), previous.get(code))
            for code, name, kind, sid, version, figures, texts in session.connection().execute(query)]


def campaign_units(*, session: Session, campaign: Campaign) -> dict[str, str]:
    """Every unit the campaign issued a workbook to: code -> name, by code."""
    rows = session.exec(select(Unit.code, Unit.name).join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                        .where(Assignment.campaign_id == campaign.id).order_by(col(Unit.code))).all()
    return dict(rows)


def without_report(expected: Iterable[str], sources: Iterable[UnitReportSource]) -> list[str]:
    """The units expected (those named, or all the campaign's) that have no accepted return, each once, in order."""
    found = {source.code for source in sources}
    return [code for code in dict.fromkeys(expected) if code not in found]


def build_unit_report(form: FormSpec, year: int, source: UnitReportSource) -> tuple[Document, list[Finding]]:
    """The unit's report as a Document, and what its prose gets wrong (N1) or still owes."""
    narrative = narrative_from_texts(source.texts, {t.key: t.section for t in form.texts})
    return build_report(form, ReportInput(
        title=f"{source.name}{year}年政府信息公开工作年度报告", year=year, cells=source.figures, narrative=narrative,
        previous=source.previous, unit_kind=source.kind))


def unit_report_stem(folder: Path, year: int, source: UnitReportSource) -> Path:
    """Where the files of this accepted return go (without a suffix)."""
    safe = re.sub(r'[\\/:*?"<>|\s]+', "_", source.name)
    return folder / source.code / str(source.submission_id) / f"{year}年{safe}政府信息公开工作年度报告"


def write_unit_report(form: FormSpec, year: int, source: UnitReportSource, folder: Path, formats: tuple[str, ...],
                      docx_template: bytes | None = None) -> tuple[dict[str, str], list[str]]:
    """Write the unit's report (HTML and the formats asked); return its files and the notes on it (Chinese)."""
    document, findings = build_unit_report(form, year, source)
    stem = unit_report_stem(folder, year, source)
    stem.parent.mkdir(parents=True, exist_ok=True)
    notes = [f.message for f in findings]
    files = write_publication(document, stem, formats, notes, docx_template)
    return files, notes
