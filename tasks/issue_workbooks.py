"""Issue each unit its own workbook: identity, signature and last year's carry-over patched into the template."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, col, select

from schemas.form_spec import CarryOverRule, FormSpec
from schemas.tables import Assignment, AssignmentStatus, Campaign, EventLog, Unit, core_table, utcnow
from tasks.identity import WorkbookIdentity, identity_rows
from tasks.workbook_template import WorkbookTemplate
from tasks.xlsx_patch import CellValue, XlsxPatcher

ASSIGNMENTS = core_table(Assignment)
EVENTS = core_table(EventLog)


@dataclass(frozen=True)
class UnitToIssue:
    unit_id: int
    code: str
    name: str
    carry_over: dict[str, Decimal]  # this year's cell key -> last year's figure


@dataclass(frozen=True)
class IssuedWorkbook:
    unit_id: int
    code: str
    path: str
    sha256: str


def units_to_issue(*, session: Session, campaign: Campaign, form: FormSpec,
                   previous: dict[str, dict[str, Decimal]]) -> list[UnitToIssue]:
    """Active units of the campaign that have no workbook yet, with their carry-over from last year."""
    issued = set(session.exec(select(Assignment.unit_id).where(Assignment.campaign_id == campaign.id)).all())
    units = session.exec(select(Unit).where(col(Unit.active).is_(True)).order_by(col(Unit.code))).all()
    # totals stay formulas: only input cells are pre-filled, so a unit can still correct its carry-over
    pairs = [p for r in form.rules if isinstance(r, CarryOverRule) for p in r.pairs if p.this_year not in form.totals]
    plan = []
    for unit in units:
        if unit.id is None or unit.id in issued:
            continue
        last = previous.get(unit.code, {})
        carry = {p.this_year: last[p.last_year] for p in pairs if p.last_year in last}
        plan.append(UnitToIssue(unit.id, unit.code, unit.name, carry))
    return plan


def write_workbooks(*, template: WorkbookTemplate, patcher: XlsxPatcher, campaign_id: int, year: int, secret: str,
                    units: list[UnitToIssue], folder: Path) -> list[IssuedWorkbook]:
    """Write one signed workbook per unit into folder; return where each went and its hash."""
    folder.mkdir(parents=True, exist_ok=True)
    form = template.form
    issued = []
    for unit in units:
        identity = WorkbookIdentity(form_id=form.form_id, form_version=form.version, year=year,
                                    campaign_id=campaign_id, unit_code=unit.code)
        data = patcher.render(_patches(template, identity, secret, unit))
        path = folder / workbook_file_name(year, unit.code, unit.name)
        _write_atomically(path, data)
        issued.append(IssuedWorkbook(unit.unit_id, unit.code, str(path), hashlib.sha256(data).hexdigest()))
    return issued


def record_issued(*, session: Session, campaign_id: int, issued: list[IssuedWorkbook]) -> None:
    """An assignment and its audit row a workbook, as two multi-row INSERTs (two ORM objects a workbook cost a
    province's 10,000 units ~6 s to build and flush)."""
    if not issued:
        return
    now = utcnow()
    session.connection().execute(insert(ASSIGNMENTS), [
        {"campaign_id": campaign_id, "unit_id": w.unit_id, "status": AssignmentStatus.ISSUED, "workbook_path": w.path,
         "workbook_sha256": w.sha256, "issued_at": now, "issue_count": 0} for w in issued])
    session.connection().execute(insert(EVENTS), [
        {"at": now, "campaign_id": campaign_id, "unit_code": w.code, "kind": "workbook.issued",
         "detail": {"path": w.path, "sha256": w.sha256}} for w in issued])


def workbook_file_name(year: int, code: str, name: str) -> str:
    safe = re.sub(r'[\\/:*?"<>|\s]+', "_", name)
    return f"{year}年政府信息公开工作年度报告-{code}-{safe}.xlsx"


def _patches(template: WorkbookTemplate, identity: WorkbookIdentity, secret: str,
             unit: UnitToIssue) -> dict[str, dict[str, CellValue]]:
    form, slots = template.form, template.slots
    patches: dict[str, dict[str, CellValue]] = {}

    def put(where: tuple[str, str], value: CellValue) -> None:
        patches.setdefault(where[0], {})[where[1]] = value

    line = f"填报单位：{unit.name}　　单位代码：{unit.code}　　报告年度：{identity.year}年"
    for where in slots.unit_lines:
        put(where, line)
    put(slots.info["unit_name"], unit.name)
    put(slots.info["unit_code"], unit.code)
    for field, text in identity_rows(identity, secret):
        put(slots.identity[field], text)
    for key, figure in unit.carry_over.items():
        cell = form.cell_by_key[key]
        put((form.sheet_by_id[cell.sheet].name, cell.address), figure)
    return patches


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)
