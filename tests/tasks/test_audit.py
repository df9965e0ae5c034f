"""The audit log: append-only in the database itself (SQLite and PostgreSQL), register changes recorded, read back
per unit and per year in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlmodel import Session, func, select

from schemas.settings import Settings
from schemas.tables import Campaign, EventLog
from tasks.audit import audit_trail, describe
from tasks.db import get_engine
from tasks.units import read_units_file, upsert_units
from tests.factories import UNITS_CSV


def _count(settings: Settings) -> int:
    with Session(get_engine(settings.db_url)) as session:
        return session.exec(select(func.count()).select_from(EventLog)).one()


def test_the_log_refuses_updates_and_deletes(settings: Settings) -> None:
    engine = get_engine(settings.db_url)
    with Session(engine) as session:
        session.add(EventLog(unit_code="T001", kind="submission.accepted", detail={"version": 1}))
        session.commit()
    statements: list[Executable] = [update(EventLog).values(kind="submission.rejected"), delete(EventLog),
                  text("UPDATE eventlog SET unit_code = 'T002'"), text("DELETE FROM eventlog")]
    if engine.dialect.name == "postgresql":
        statements.append(text("TRUNCATE eventlog"))
    for statement in statements:
        with Session(engine) as session, pytest.raises(DBAPIError, match="append-only"):
            session.execute(statement)
            session.commit()
    with Session(engine) as session:
        [row] = session.exec(select(EventLog)).all()
        assert (row.unit_code, row.kind, row.detail) == ("T001", "submission.accepted", {"version": 1})
        session.add(EventLog(unit_code="T001", kind="submission.rejected", detail={}))  # appending still works
        session.commit()
    assert _count(settings) == 2


def test_the_guard_survives_a_second_engine_and_is_made_once(settings: Settings) -> None:
    """Every process makes its engine: the triggers are there once, whoever made them first."""
    get_engine.cache_clear()
    engine = get_engine(settings.db_url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars().all()
        else:
            names = conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").scalars().all()
    assert sorted(n for n in names if n.startswith("eventlog")) == (
        ["eventlog_append_only_delete", "eventlog_append_only_update"] if engine.dialect.name == "sqlite"
        else ["eventlog_append_only_rows", "eventlog_append_only_truncate"])


def test_register_changes_are_recorded_with_what_changed(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text(UNITS_CSV, encoding="utf-8")
    engine = get_engine(settings.db_url)
    with Session(engine) as session:
        upsert_units(session=session, rows=read_units_file(path))
        session.commit()
    changed = UNITS_CSV.replace("赵刚,d001@example.gov.cn", "钱芳,qian@example.gov.cn")
    path.write_text(changed, encoding="utf-8")
    with Session(engine) as session:
        upsert_units(session=session, rows=read_units_file(path))
        session.commit()
        upsert_units(session=session, rows=read_units_file(path))  # nothing changed: nothing recorded
        session.commit()

        entries = audit_trail(session=session, unit_code="D001")
        others = audit_trail(session=session, unit_code="T001")
    assert [e.kind for e in entries] == ["unit.created", "unit.updated"]
    assert entries[0].text == "登记单位“示范县市场监督管理局”（department，联系人 赵刚，d001@example.gov.cn）"
    assert entries[1].detail == {"contact": {"from": "赵刚", "to": "钱芳"},
                                 "email": {"from": "d001@example.gov.cn", "to": "qian@example.gov.cn"}}
    assert entries[1].text == "单位信息变更：contact：赵刚 → 钱芳；email：d001@example.gov.cn → qian@example.gov.cn"
    assert [e.kind for e in others] == ["unit.created"]


def test_a_years_trail_and_a_units_trail_of_that_year(settings: Settings) -> None:
    engine = get_engine(settings.db_url)
    start = datetime(2022, 1, 5, 1, 0, tzinfo=UTC)
    with Session(engine) as session:
        old = Campaign(form_id="xxgk-annual", form_version="2021", year=2020, deadline=start.date(), secret="a")
        new = Campaign(form_id="xxgk-annual", form_version="2021", year=2021, deadline=start.date(), secret="b")
        session.add_all([old, new])
        session.flush()
        rows: list[tuple[int | None, str | None, str, dict[str, Any]]] = [
                (None, "T001", "unit.created", {"name": "城关镇"}),
                (old.id, "T001", "submission.accepted", {"version": 1, "file": "a.xlsx", "submission_id": 1,
                                                         "channel": "inbox"}),
                (new.id, None, "campaign.opened", {"deadline": "2022-01-20"}),
                (new.id, "T001", "submission.rejected", {"version": 1, "errors": 2, "file": "b.xlsx",
                                                         "submission_id": 2, "channel": "upload"}),
                (new.id, "T002", "reminder.written", {"kind": "reminder", "recipient": "t002@example.gov.cn"}),
                (new.id, "T001", "prefect.events_emitted", {"through_id": 3}),
                (new.id, "T001", "something.new", {"x": 1})]
        for n, (campaign_id, unit, kind, detail) in enumerate(rows):
            session.add(EventLog(at=start + timedelta(minutes=n), campaign_id=campaign_id, unit_code=unit, kind=kind,
                                 detail=detail))
        session.commit()

        year = audit_trail(session=session, year=2021)
        unit_in_year = audit_trail(session=session, unit_code="T001", year=2021)
        only_submissions = audit_trail(session=session, unit_code="T001", kind_prefix="submission")

    assert [(e.unit_code, e.kind) for e in year] == [
        (None, "campaign.opened"), ("T001", "submission.rejected"), ("T002", "reminder.written"),
        ("T001", "something.new")]  # the events cursor is bookkeeping, not a change of state
    assert [e.kind for e in unit_in_year] == ["unit.created", "submission.rejected", "something.new"]
    assert unit_in_year[1].text == "经报送页面报送第1次：未通过审核，2个问题（文件“b.xlsx”，报送记录 2）"
    assert unit_in_year[2].text == "something.new：{'x': 1}"  # an unknown kind is shown, never dropped
    assert [e.year for e in only_submissions] == [2020, 2021]
    assert year[2].text == "催报提醒邮件已写为邮件文件，收件人 t002@example.gov.cn"
    assert [e.at for e in year] == sorted(e.at for e in year) and year[0].at.tzinfo is not None


def test_every_kind_the_code_writes_has_words() -> None:
    """A kind described by its bare name would read as a fault to the coordinator."""
    root = Path(__file__).resolve().parents[2]
    written = set()
    for path in [*root.glob("tasks/*.py"), *root.glob("flows/*.py"), *root.glob("portal/*.py")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if 'kind="' in line and "EventLog(" in line:
                written.add(line.split('kind="', 1)[1].split('"', 1)[0])
            if '"kind": "' in line:  # a row of a multi-row INSERT
                written.add(line.split('"kind": "', 1)[1].split('"', 1)[0])
    assert {"workbook.issued", "campaign.opened", "report.approved"} <= written
    bare = sorted(kind for kind in written if describe(kind, {}).startswith(f"{kind}："))
    assert bare == []
