"""The units register's optional leader columns (who gets the escalation), and older files without them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from schemas.settings import Settings
from schemas.tables import Unit
from tasks.db import get_engine
from tasks.units import UnitsFileError, read_units_file, upsert_units
from tests.factories import UNITS_CSV

WITH_LEADERS = UNITS_CSV.replace("phone\n", "phone,leader,leader_email\n").replace(
    "0376-5000004\n", "0376-5000004,钱局长,boss.d001@example.gov.cn\n")


def _import(settings: Settings, tmp_path: Path, text: str) -> dict[str, Unit]:
    path = tmp_path / "units.csv"
    path.write_text(text, encoding="utf-8")
    with Session(get_engine(settings.db_url)) as session:
        upsert_units(session=session, rows=read_units_file(path))
        session.commit()
        return {u.code: u for u in session.exec(select(Unit)).all()}


def test_leader_columns_are_read_and_an_older_file_without_them_keeps_them(settings, tmp_path):
    units = _import(settings, tmp_path, WITH_LEADERS)
    assert (units["D001"].leader, units["D001"].leader_email) == ("钱局长", "boss.d001@example.gov.cn")
    assert units["T001"].leader == "" and units["T001"].leader_email == ""
    again = _import(settings, tmp_path, UNITS_CSV.replace("李强", "李明"))  # the old columns only
    assert again["D001"].leader_email == "boss.d001@example.gov.cn" and again["T001"].contact == "李明"


def test_a_bad_leader_address_is_refused_with_its_line(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text(WITH_LEADERS.replace("boss.d001@example.gov.cn", "not-an-address"), encoding="utf-8")
    with pytest.raises(UnitsFileError) as raised:
        read_units_file(path)
    assert raised.value.problems == [(5, "leader_email: not an e-mail address: 'not-an-address'")]
