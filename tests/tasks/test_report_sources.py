"""What a report is made of, from the database: who reported on time, the figures of earlier years, and a
database of an earlier version getting the columns added since."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from schemas.figures import figures_text
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import (
    Assignment,
    Campaign,
    PublishedFigures,
    Report,
    Submission,
    Unit,
    UnitKind,
    Verdict,
)
from tasks.campaigns import previous_year_values
from tasks.check import check_values
from tasks.completeness import Timeliness, load_completeness
from tasks.db import get_engine
from tasks.history import county_history
from tests.conftest import NO_POSTGRES, POSTGRES_URL
from tests.factories import valid_figures
from tests.postgres import temporary_database

DEADLINE = date(2022, 1, 20)


def _at(day: int, hour_utc: int = 2) -> datetime:
    return datetime(2022, 1, day, hour_utc, tzinfo=UTC)


def _world(session: Session, form: FormSpec, year: int = 2021) -> tuple[Campaign, dict[str, Unit]]:
    units = {code: Unit(code=code, name=f"单位{code}", kind=UnitKind.DEPARTMENT) for code in
             ("D001", "D002", "D003", "D004", "D005")}
    session.add_all(units.values())
    campaign = Campaign(form_id=form.form_id, form_version=form.version, year=year, deadline=DEADLINE, secret="s")
    session.add(campaign)
    session.flush()
    assert campaign.id is not None
    for unit in units.values():
        assert unit.id is not None
        session.add(Assignment(campaign_id=campaign.id, unit_id=unit.id, workbook_path="x", workbook_sha256="0"))
    session.flush()
    return campaign, units


def _submit(session: Session, campaign: Campaign, unit: Unit, at: datetime, verdict: Verdict,
            figures: dict[str, Decimal] | None = None) -> Submission:
    assert campaign.id is not None and unit.id is not None
    submission = Submission(campaign_id=campaign.id, unit_id=unit.id, received_at=at, original_name="a.xlsx",
                            sha256=f"{unit.code}{at.isoformat()}", archive_path="x", size=1, verdict=verdict,
                            figures=figures_text(figures or {}))
    session.add(submission)
    session.flush()
    if verdict is Verdict.ACCEPTED:
        assignment = session.exec(select(Assignment).where(Assignment.unit_id == unit.id,
                                                           Assignment.campaign_id == campaign.id)).one()
        assignment.accepted_submission_id = submission.id
        session.add(assignment)
    return submission


def test_on_time_late_rejected_and_missing(settings: Settings, form: FormSpec) -> None:
    with Session(get_engine(settings.db_url)) as session:
        campaign, units = _world(session, form)
        _submit(session, campaign, units["D001"], _at(19), Verdict.ACCEPTED)
        _submit(session, campaign, units["D001"], _at(25), Verdict.ACCEPTED)  # a correction after the deadline
        # the deadline is a China date: 20 January 23:30 in Beijing is 15:30 UTC, still on time
        _submit(session, campaign, units["D002"], _at(20, 15), Verdict.ACCEPTED)
        _submit(session, campaign, units["D003"], _at(10), Verdict.REJECTED)
        _submit(session, campaign, units["D003"], _at(22), Verdict.ACCEPTED)  # fixed, but late
        _submit(session, campaign, units["D004"], _at(10), Verdict.REJECTED)
        session.commit()
        completeness = load_completeness(session=session, campaign=campaign)
    by_code = {u.code: u for u in completeness.units}
    assert {code: u.timeliness for code, u in by_code.items()} == {
        "D001": Timeliness.ON_TIME, "D002": Timeliness.ON_TIME, "D003": Timeliness.LATE,
        "D004": Timeliness.REJECTED, "D005": Timeliness.MISSING}
    assert [by_code[c].returns for c in ("D001", "D003", "D004", "D005")] == [2, 2, 1, 0]
    assert by_code["D003"].first_return_at is not None and by_code["D003"].first_return_at.day == 10
    assert by_code["D003"].first_accepted_at is not None and by_code["D003"].first_accepted_at.day == 22
    assert by_code["D002"].first_accepted_at is not None and by_code["D002"].first_accepted_at.hour == 23
    assert by_code["D005"].first_return_at is None and by_code["D005"].kind == "县直部门"
    assert [u.code for u in completeness.of(Timeliness.LATE, Timeliness.MISSING)] == ["D003", "D005"]


def _accepted(form: FormSpec, **changes: int | str) -> dict[str, Decimal]:
    return check_values({k: float(v) for k, v in valid_figures(form, **changes).items()}, form).values


def test_earlier_years_final_report_then_imported_then_consolidated(settings: Settings, form: FormSpec,
                                                                    tmp_path: Path) -> None:
    with Session(get_engine(settings.db_url)) as session:
        # 2018: only a campaign with one accepted return (never approved)
        c2018, units = _world(session, form, 2018)
        _submit(session, c2018, units["D001"], _at(5), Verdict.ACCEPTED, _accepted(form, active__license__decisions=18))
        # 2019: the published county report, imported
        session.add(PublishedFigures(form_id=form.form_id, year=2019, unit_code=None, title="示范县2019年报告",
                                     original_name="2019.txt", sha256="0", archive_path="x",
                                     figures=figures_text(_accepted(form, active__license__decisions=19))))
        # 2020: a campaign whose final report is on file, and an imported report too: the final report wins
        c2020 = Campaign(form_id=form.form_id, form_version=form.version, year=2020, deadline=DEADLINE, secret="s")
        session.add(c2020)
        session.flush()
        figures = tmp_path / "2020.json"
        figures.write_text(json.dumps({"cells": {"active.license.decisions": 20}}), encoding="utf-8")
        assert c2020.id is not None
        session.add(Report(campaign_id=c2020.id, kind="final", figures_sha256="0", units_expected=1, units_accepted=1,
                           html_path="x", xlsx_path="x", json_path=str(figures)))
        session.add(PublishedFigures(form_id=form.form_id, year=2020, unit_code=None, original_name="2020.txt",
                                     sha256="0", archive_path="x", figures=figures_text({})))
        session.commit()
        history = county_history(session=session, form=form, before=2021)
    assert [(h.year, h.cells["active.license.decisions"]) for h in history] == [
        (2018, Decimal(18)), (2019, Decimal(19)), (2020, Decimal(20))]
    assert [h.source for h in history] == ["2018年度已通过审核的1个单位数据汇总（尚无正式报告）",
                                           "导入的2019年度已公开报告《示范县2019年报告》", "2020年度正式报告（已批准）"]


def test_last_years_figures_of_a_unit_from_its_return_or_its_published_report(settings: Settings,
                                                                              form: FormSpec) -> None:
    with Session(get_engine(settings.db_url)) as session:
        c2020, units = _world(session, form, 2020)
        _submit(session, c2020, units["D001"], _at(5), Verdict.ACCEPTED, _accepted(form, active__license__decisions=1))
        for code, licences in (("D001", 7), ("D002", 2)):  # D001's accepted return outranks its import
            session.add(PublishedFigures(form_id=form.form_id, year=2020, unit_code=code, original_name="r.txt",
                                         sha256="0", archive_path="x",
                                         figures=figures_text(_accepted(form, active__license__decisions=licences))))
        session.commit()
        previous = previous_year_values(session=session, form=form, year=2021)
    assert {code: figures["active.license.decisions"] for code, figures in previous.items()} == {
        "D001": Decimal(1), "D002": Decimal(2)}


def test_a_database_of_an_earlier_version_gets_the_new_columns(tmp_path: Path) -> None:
    """A submission table made before the 文字部分 existed keeps its rows and gains the texts column."""
    path = tmp_path / "old.db"
    engine = get_engine(f"sqlite:///{path}")
    engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE submission DROP COLUMN texts")
        db.execute("ALTER TABLE report DROP COLUMN files")
        db.execute("INSERT INTO campaign (form_id, form_version, year, deadline, state, secret, created_at) "
                   "VALUES ('xxgk-annual', '2021', 2021, '2022-01-20', 'OPEN', 's', '2022-01-01 00:00:00')")
        db.execute("INSERT INTO submission (campaign_id, received_at, channel, sender, original_name, sha256, "
                   "archive_path, size, verdict, version, error_count, warning_count, issues, figures) VALUES "
                   "(1, '2022-01-05 00:00:00', 'inbox', '', 'a.xlsx', 'ab', 'x', 1, 'ACCEPTED', 1, 0, 0, '[]', '{}')")
        assert "texts" not in {row[1] for row in db.execute("PRAGMA table_info(submission)")}
    get_engine.cache_clear()
    engine = get_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        old = session.exec(select(Submission)).one()
        assert (old.original_name, old.texts) == ("a.xlsx", "{}")
        assert session.exec(select(Report)).all() == []


def test_a_postgresql_database_of_an_earlier_version_gets_the_held_verdict() -> None:
    """PostgreSQL keeps the verdicts in an enum type of its own, made with the two the first versions had."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    with temporary_database(POSTGRES_URL) as url:
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text("CREATE TYPE verdict AS ENUM ('ACCEPTED', 'REJECTED')"))
        admin.dispose()
        engine = get_engine(url)
        with engine.connect() as conn:
            labels = conn.execute(text("SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
                                       "WHERE t.typname = 'verdict' ORDER BY e.enumsortorder")).scalars().all()
        assert labels == ["ACCEPTED", "REJECTED", "HELD"]
        with Session(engine) as session:
            campaign = Campaign(form_id="xxgk-annual", form_version="2021", year=2021, deadline=date(2022, 1, 20),
                                secret="s")
            session.add(campaign)
            session.flush()
            assert campaign.id is not None
            session.add(Submission(campaign_id=campaign.id, original_name="a.xlsx", sha256="ab", archive_path="x",
                                   size=1, verdict=Verdict.HELD, version=1))
            session.commit()
            assert session.exec(select(Submission.verdict)).one() is Verdict.HELD
