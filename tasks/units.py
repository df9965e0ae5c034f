"""The register of reporting units: read a CSV or XLSX list, check every row, apply it all or nothing."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from schemas.tables import EventLog, Unit, UnitKind, utcnow

REQUIRED_COLUMNS = ("code", "name", "kind", "contact", "email")
OPTIONAL_COLUMNS = ("phone", "active", "leader", "leader_email")
_KIND_WORDS = {
    "township": UnitKind.TOWNSHIP, "乡镇": UnitKind.TOWNSHIP, "街道": UnitKind.TOWNSHIP,
    "乡镇（街道）": UnitKind.TOWNSHIP, "乡镇(街道)": UnitKind.TOWNSHIP,
    "department": UnitKind.DEPARTMENT, "部门": UnitKind.DEPARTMENT, "县直部门": UnitKind.DEPARTMENT,
    "government_office": UnitKind.GOVERNMENT_OFFICE, "government office": UnitKind.GOVERNMENT_OFFICE,
    "政府办": UnitKind.GOVERNMENT_OFFICE, "县政府办": UnitKind.GOVERNMENT_OFFICE,
    "县政府办公室": UnitKind.GOVERNMENT_OFFICE,
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UnitsFileError(ValueError):
    """A units file with bad rows; nothing from it was applied. `problems` lists (line number, message)."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  line {line}: {message}" for line, message in problems)
        super().__init__(f"{path}: {len(problems)} bad row(s), nothing imported\n{lines}")


class UnitRow(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=100)
    kind: UnitKind
    contact: str = Field(default="", max_length=50)
    email: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=50)
    active: bool = True
    leader: str = Field(default="", max_length=50)
    leader_email: str = Field(default="", max_length=200)


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int


def read_units_file(path: Path) -> list[UnitRow]:
    """Every row of a units CSV/XLSX, validated; raise UnitsFileError listing every bad line."""
    records = _read_records(path)
    if not records:
        raise UnitsFileError(path, [(1, "file has no header row")])
    header = [h.strip().lower() for h in records[0][1]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UnitsFileError(path, [(records[0][0], f"missing column(s): {', '.join(missing)}")])
    rows: list[UnitRow] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, cells in records[1:]:
        if not any(c.strip() for c in cells):
            continue
        data: dict[str, object] = {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header)}
        kind = str(data.get("kind", "")).strip()
        data["kind"] = _KIND_WORDS.get(kind.lower(), kind)
        if "active" in data:
            data["active"] = str(data["active"]).strip().lower() not in {"0", "false", "no", "否", "停用"}
        try:
            row = UnitRow.model_validate({k: v for k, v in data.items() if k in REQUIRED_COLUMNS + OPTIONAL_COLUMNS})
        except ValidationError as exc:
            problems.append((line, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())))
            continue
        if row.email and not _EMAIL.match(row.email):
            problems.append((line, f"email: not an e-mail address: {row.email!r}"))
        if row.leader_email and not _EMAIL.match(row.leader_email):
            problems.append((line, f"leader_email: not an e-mail address: {row.leader_email!r}"))
        if row.code in seen:
            problems.append((line, f"code {row.code} already on line {seen[row.code]}"))
        seen[row.code] = line
        rows.append(row)
    if problems:
        raise UnitsFileError(path, problems)
    return rows


def upsert_units(*, session: Session, rows: list[UnitRow]) -> ImportResult:
    """Create new units and update changed ones by code; the caller commits."""
    existing = {u.code: u for u in session.exec(select(Unit)).all()}
    created = updated = unchanged = 0
    for row in rows:
        unit = existing.get(row.code)
        if unit is None:
            session.add(Unit.model_validate(row.model_dump()))
            session.add(EventLog(unit_code=row.code, kind="unit.created", detail=row.model_dump(mode="json")))
            created += 1
            continue
        # a column the file does not have (an older file without leader columns) leaves the unit's value alone
        changes = {k: v for k, v in row.model_dump(exclude_unset=True).items() if getattr(unit, k) != v}
        if not changes:
            unchanged += 1
            continue
        session.add(EventLog(unit_code=row.code, kind="unit.updated", detail={
            key: {"from": _plain(getattr(unit, key)), "to": _plain(value)} for key, value in changes.items()}))
        unit.sqlmodel_update(changes)
        unit.updated_at = utcnow()
        session.add(unit)
        updated += 1
    return ImportResult(created, updated, unchanged)


def _plain(value: object) -> object:
    """A unit's field as JSON keeps it in the audit log (an enum by its value)."""
    return value.value if isinstance(value, StrEnum) else value


def _read_records(path: Path) -> list[tuple[int, list[str]]]:
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        import python_calamine

        sheet = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        return [(i + 1, [_text(c) for c in row]) for i, row in enumerate(sheet.to_python(skip_empty_area=False))]
    text = path.read_bytes().decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    return [(i + 1, row) for i, row in enumerate(csv.reader(io.StringIO(text)))]


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)
