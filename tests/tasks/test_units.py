"""The units register: CSV and XLSX lists read and checked, applied all or nothing, re-imports update in place."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from sqlmodel import Session, func, select

from schemas.settings import Settings
from schemas.tables import Unit, UnitKind
from tasks.db import get_engine
from tasks.units import UnitsFileError, read_units_file, upsert_units
from tests.factories import UNITS_CSV, register_units

HEADER = "code,name,kind,contact,email,phone\n"


def _csv(tmp_path: Path, body: str, header: str = HEADER, name: str = "units.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def _xlsx(tmp_path: Path, rows: list[list[object]], name: str = "units.xlsx") -> Path:
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    path = tmp_path / name
    wb.save(path)
    return path


def _units(settings: Settings) -> dict[str, Unit]:
    with Session(get_engine(settings.db_url)) as session:
        return {u.code: u for u in session.exec(select(Unit)).all()}


def _count(settings: Settings) -> int:
    with Session(get_engine(settings.db_url)) as session:
        return int(session.exec(select(func.count()).select_from(Unit)).one())


def test_read_csv(units_file: Path) -> None:
    rows = read_units_file(units_file)
    assert [(r.code, r.name, r.kind) for r in rows] == [
        ("G001", "示范县人民政府办公室", UnitKind.GOVERNMENT_OFFICE),
        ("T001", "城关镇", UnitKind.TOWNSHIP),
        ("T002", "河口乡", UnitKind.TOWNSHIP),  # written 乡镇 in the file
        ("D001", "示范县市场监督管理局", UnitKind.DEPARTMENT),
    ]
    assert rows[0].email == "g001@example.gov.cn" and rows[0].contact == "王敏" and rows[0].phone == "0376-5000001"
    assert rows[2].phone == ""
    assert all(r.active for r in rows)


def test_read_csv_with_bom_and_spaces(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER + " T001 , 城关镇 , 乡镇 ,李强, t001@example.gov.cn ,\n\n").encode("utf-8"))
    (row,) = read_units_file(path)
    assert (row.code, row.name, row.kind, row.email) == ("T001", "城关镇", UnitKind.TOWNSHIP, "t001@example.gov.cn")


@pytest.mark.parametrize(("word", "kind"), [
    ("乡镇", UnitKind.TOWNSHIP),
    ("街道", UnitKind.TOWNSHIP),
    ("乡镇（街道）", UnitKind.TOWNSHIP),
    ("Township", UnitKind.TOWNSHIP),
    ("县直部门", UnitKind.DEPARTMENT),
    ("部门", UnitKind.DEPARTMENT),
    ("department", UnitKind.DEPARTMENT),
    ("县政府办公室", UnitKind.GOVERNMENT_OFFICE),
    ("县政府办", UnitKind.GOVERNMENT_OFFICE),
    ("government_office", UnitKind.GOVERNMENT_OFFICE),
])
def test_kind_words(tmp_path: Path, word: str, kind: UnitKind) -> None:
    (row,) = read_units_file(_csv(tmp_path, f"U1,某单位,{word},某人,a@example.gov.cn,\n"))
    assert row.kind is kind


def test_read_xlsx(tmp_path: Path) -> None:
    path = _xlsx(tmp_path, [
        ["code", "name", "kind", "contact", "email", "phone", "active"],
        ["G001", "示范县人民政府办公室", "县政府办公室", "王敏", "g001@example.gov.cn", "0376-5000001", "是"],
        ["T001", "城关镇", "乡镇", "李强", "t001@example.gov.cn", None, None],
        [None, None, None, None, None, None, None],
        ["D001", "示范县市场监督管理局", "县直部门", "赵刚", "d001@example.gov.cn", 5000004, "停用"],
    ])
    rows = read_units_file(path)
    assert [(r.code, r.kind, r.active) for r in rows] == [
        ("G001", UnitKind.GOVERNMENT_OFFICE, True),
        ("T001", UnitKind.TOWNSHIP, True),
        ("D001", UnitKind.DEPARTMENT, False),
    ]
    assert rows[2].phone == "5000004"  # a number typed in Excel, not "5000004.0"
    assert rows[0].name == "示范县人民政府办公室"


def test_import_creates_units(settings: Settings, units_file: Path) -> None:
    register_units(settings, units_file)
    units = _units(settings)
    assert sorted(units) == ["D001", "G001", "T001", "T002"]
    assert units["T002"].kind is UnitKind.TOWNSHIP and units["T002"].name == "河口乡"
    assert units["G001"].kind is UnitKind.GOVERNMENT_OFFICE


def test_reimport_updates_and_never_duplicates(settings: Settings, units_file: Path, tmp_path: Path) -> None:
    register_units(settings, units_file)
    first = _units(settings)
    changed = _csv(tmp_path, UNITS_CSV.split("\n", 1)[1].replace("城关镇,township,李强", "城关街道,街道,李新")
                   + "T003,新集镇,乡镇,周平,t003@example.gov.cn,\n", name="units2.csv")
    with Session(get_engine(settings.db_url)) as session:
        result = upsert_units(session=session, rows=read_units_file(changed))
        session.commit()
    assert (result.created, result.updated, result.unchanged) == (1, 1, 3)
    units = _units(settings)
    assert _count(settings) == 5
    assert sorted(units) == ["D001", "G001", "T001", "T002", "T003"]
    assert (units["T001"].name, units["T001"].contact) == ("城关街道", "李新")
    assert units["T001"].id == first["T001"].id  # updated in place
    assert units["T001"].updated_at >= first["T001"].updated_at
    assert units["D001"].updated_at == first["D001"].updated_at


def test_same_file_twice_changes_nothing(settings: Settings, units_file: Path) -> None:
    register_units(settings, units_file)
    with Session(get_engine(settings.db_url)) as session:
        result = upsert_units(session=session, rows=read_units_file(units_file))
        session.commit()
    assert (result.created, result.updated, result.unchanged) == (0, 0, 4)
    assert _count(settings) == 4


def test_reimport_can_deactivate(settings: Settings, units_file: Path, tmp_path: Path) -> None:
    register_units(settings, units_file)
    path = _csv(tmp_path, "T001,城关镇,township,李强,t001@example.gov.cn,0376-5000002,否\n",
                header="code,name,kind,contact,email,phone,active\n")
    register_units(settings, path)
    units = _units(settings)
    assert units["T001"].active is False and units["T002"].active is True
    assert _count(settings) == 4


def test_bad_rows_are_all_listed_and_nothing_applied(settings: Settings, units_file: Path, tmp_path: Path) -> None:
    register_units(settings, units_file)
    before = _count(settings)
    bad = _csv(tmp_path, (
        "N001,新单位,乡镇,某人,n001@example.gov.cn,\n"  # line 2: fine, but must not be applied
        "N002,某单位,村委会,某人,n002@example.gov.cn,\n"  # line 3: bad kind
        "N003,,乡镇,某人,n003@example.gov.cn,\n"  # line 4: missing name
        "N004,某单位,部门,某人,not-an-email,\n"  # line 5: bad email
        "N001,重复单位,部门,某人,n005@example.gov.cn,\n"  # line 6: duplicate code
        "T001,城关镇改名,乡镇,李强,t001@example.gov.cn,\n"  # line 7: fine update, must not be applied
    ), name="bad.csv")
    with pytest.raises(UnitsFileError) as caught:
        register_units(settings, bad)
    assert [line for line, _ in caught.value.problems] == [3, 4, 5, 6]
    messages = dict(caught.value.problems)
    assert "kind" in messages[3]
    assert "name" in messages[4]
    assert "email" in messages[5]
    assert "N001" in messages[6] and "line 2" in messages[6]
    assert "nothing imported" in str(caught.value)
    assert all(f"line {n}" in str(caught.value) for n in (3, 4, 5, 6))
    assert caught.value.path == bad
    assert _count(settings) == before
    units = _units(settings)
    assert "N001" not in units and units["T001"].name == "城关镇"


def test_bad_rows_in_xlsx_give_sheet_line_numbers(tmp_path: Path) -> None:
    path = _xlsx(tmp_path, [
        ["code", "name", "kind", "contact", "email"],
        ["T001", "城关镇", "乡镇", "李强", "t001@example.gov.cn"],
        ["T 2", "河口乡", "乡镇", "张丽", "t002@example.gov.cn"],  # line 3: bad code
    ])
    with pytest.raises(UnitsFileError) as caught:
        read_units_file(path)
    assert [line for line, _ in caught.value.problems] == [3]
    assert "code" in caught.value.problems[0][1]


@pytest.mark.parametrize(("header", "missing"), [
    ("code,name,kind,contact,phone\n", "email"),
    ("code,name,contact,email\n", "kind"),
    ("编码,名称,类型,联系人,邮箱\n", "code"),
])
def test_missing_column(tmp_path: Path, header: str, missing: str) -> None:
    path = _csv(tmp_path, "T001,城关镇,乡镇,李强,t001@example.gov.cn\n", header=header)
    with pytest.raises(UnitsFileError, match="missing column") as caught:
        read_units_file(path)
    assert caught.value.problems[0][0] == 1
    assert missing in caught.value.problems[0][1]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(UnitsFileError):
        read_units_file(path)
