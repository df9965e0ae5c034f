"""Year zero: store the tables of a report published before nianbao was used, read from the published file.

The county's own report of last year gives this year's report its comparison and its cross-year checks; a unit's
report of last year gives the unit's new workbook its 上年结转 and the checks of its return (S3, S4). The file is
archived first and kept; a report that cannot be read, or whose tables break the 勾稽关系, is refused with every
reason and nothing is stored, unless the coordinator imports it anyway (force) — the reasons are then kept with it.
A unit code not in the register is refused even then: it names no report to keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from schemas.figures import figures_text
from schemas.form_spec import FormSpec
from schemas.tables import EventLog, PublishedFigures, Unit, UnitKind, utcnow
from tasks.archive import archive_bytes
from tasks.published_report import ParsedReport, parse_published_report


class PublishedImportError(ValueError):
    """A published report that is not imported: problems lists why (in Chinese), nothing was stored.

    forceable: whether importing it anyway (force) would store it; not for an unknown unit or a file with no figures.
    """

    def __init__(self, name: str, problems: list[str], *, forceable: bool = True) -> None:
        self.problems = problems
        self.forceable = forceable
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
    unit = session.exec(select(Unit).where(Unit.code == unit_code)).first() if unit_code is not None else None
    if unit_code is not None and unit is None:
        # not a doubt about the file that force may overrule: figures under a mistyped code would never be used,
        # and the unit meant would get no carry-over while the import looked done
        raise PublishedImportError(name, [f"单位代码{unit_code}不在单位名单中，请核对代码或先导入单位名单"],
                                   forceable=False)
    parsed = parse_published_report(data, name, form)
    problems = [*parsed.problems, *_mismatches(parsed, year), *_another_body(session, parsed, unit)]
    if not parsed.figures:
        raise PublishedImportError(name, problems or ["未读到任何表格数据"], forceable=False)
    if problems and not force:
        raise PublishedImportError(name, problems)
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


def _another_body(session: Session, parsed: ParsedReport, unit: Unit | None) -> list[str]:
    """Whose report the title says it is, where that is clearly not the unit (or the county) it is imported for.

    Names are compared loosely (a register may say 县住建局 where the title says 息县住房和城乡建设局), so only a
    title naming another registered unit, or none of the unit's name, is a problem; force overrules it.
    """
    body = _bare(parsed.body)
    if not body:
        return []
    names = {_bare(u.name): u for u in session.exec(select(Unit)).all()}
    if unit is not None:
        own = _bare(unit.name)
        other = names.get(body)
        if other is not None and other.code != unit.code:
            return [f"报告标题表明这是“{other.name}”（{other.code}）的报告，不是“{unit.name}”（{unit.code}）的"]
        if own not in body and body not in own:
            return [f"报告的发布机关为“{parsed.body}”，与单位{unit.code}“{unit.name}”不符，请核对是否选错了文件"]
        return []
    other = names.get(body)
    if other is not None and other.kind != UnitKind.GOVERNMENT_OFFICE:
        return [f"报告标题表明这是“{other.name}”（{other.code}）的报告，不是全县的报告；单位的报告请用 --unit 导入"]
    return []


def _bare(name: str) -> str:
    return re.sub(r"[\s（）()]", "", name)


def _mismatches(parsed: ParsedReport, year: int) -> list[str]:
    """What makes the file another report than the one named: another year."""
    if parsed.year is not None and parsed.year != year:
        # nianbao's .json has a year but no title: quoting an empty title would read as a fault of the file
        found = f"报告标题为{parsed.year}年度（“{parsed.title}”）" if parsed.title else f"文件所载年度为{parsed.year}年"
        return [f"{found}，与导入的{year}年度不符"]
    return []
