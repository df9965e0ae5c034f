"""Year zero: store the tables of a report published before nianbao was used, read from the published file.

The county's own report of last year gives this year's report its comparison and its cross-year checks; a unit's
report of last year gives the unit's new workbook its 上年结转 and the checks of its return (S3, S4). The file is
archived first and kept; a report that cannot be read, or whose tables break the 勾稽关系, is refused with every
reason and nothing is stored, unless the coordinator imports it anyway (force) — the reasons are then kept with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from schemas.figures import figures_text
from schemas.form_spec import FormSpec
from schemas.tables import EventLog, PublishedFigures, Unit, utcnow
from tasks.archive import archive_bytes
from tasks.published_report import ParsedReport, parse_published_report


class PublishedImportError(ValueError):
    """A published report that is not imported: problems lists why (in Chinese), nothing was stored."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{name}: not imported ({len(problems)} problems): " + "；".join(problems))


@dataclass(frozen=True)
class Imported:
    year: int
    unit_code: str | None
    title: str
    figures: int  # how many of the statutory figures were read
    missing: int
    notes: list[str]  # what the coordinator should know (a dash read as 0, a forced import's problems, ...)
    archive_path: str
    replaced: bool  # an earlier import of the same report was replaced


def import_published(*, session: Session, form: FormSpec, year: int, unit_code: str | None, data: bytes,
                     name: str, archive_dir: Path, force: bool = False) -> Imported:
    """Read the published report and store its figures for (year, unit); the caller commits."""
    digest, archived = archive_bytes(data, archive_dir, Path(name).suffix.lower() or ".bin")
    parsed = parse_published_report(data, name, form)
    problems = list(parsed.problems) + _mismatches(session, parsed, year, unit_code)
    if problems and not force:
        raise PublishedImportError(name, problems)
    if not parsed.figures:
        raise PublishedImportError(name, problems or ["未读到任何表格数据"])
    existing = session.exec(select(PublishedFigures).where(
        PublishedFigures.form_id == form.form_id, PublishedFigures.year == year,
        PublishedFigures.unit_code == unit_code)).first()
    notes = [*parsed.notes, *(f"（强制导入）{p}" for p in problems)]
    row = existing or PublishedFigures(form_id=form.form_id, year=year, unit_code=unit_code, original_name=name,
                                       sha256="", archive_path="", figures="{}")
    row.title, row.original_name, row.archive_path = parsed.title, Path(name).name, str(archived)
    row.sha256, row.figures, row.notes, row.imported_at = digest, figures_text(parsed.figures), notes, utcnow()
    session.add(row)
    session.add(EventLog(kind="published.imported", unit_code=unit_code, detail={
        "year": year, "file": Path(name).name, "sha256": digest, "figures": len(parsed.figures),
        "missing": len(parsed.missing), "forced": bool(problems), "replaced": existing is not None}))
    return Imported(year, unit_code, parsed.title, len(parsed.figures), len(parsed.missing), notes, str(archived),
                    existing is not None)


def _mismatches(session: Session, parsed: ParsedReport, year: int, unit_code: str | None) -> list[str]:
    """What makes the file another report than the one named: another year, or a unit not registered."""
    problems = []
    if parsed.year is not None and parsed.year != year:
        problems.append(f"报告标题为{parsed.year}年度（“{parsed.title}”），与导入的{year}年度不符")
    if unit_code is not None and session.exec(select(Unit).where(Unit.code == unit_code)).first() is None:
        problems.append(f"单位代码{unit_code}不在单位名单中，请先导入单位名单")
    return problems
