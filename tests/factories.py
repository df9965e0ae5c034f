"""Builders for test data that go through the same code paths as production."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, select

from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Assignment, Campaign, Unit
from tasks.db import get_engine
from tasks.units import read_units_file, upsert_units

UNITS_CSV = """code,name,kind,contact,email,phone
G001,示范县人民政府办公室,government_office,王敏,g001@example.gov.cn,0376-5000001
T001,城关镇,township,李强,t001@example.gov.cn,0376-5000002
T002,河口乡,乡镇,张丽,t002@example.gov.cn,
D001,示范县市场监督管理局,department,赵刚,d001@example.gov.cn,0376-5000004
"""


def register_units(settings: Settings, path: Path) -> None:
    with Session(get_engine(settings.db_url)) as session:
        upsert_units(session=session, rows=read_units_file(path))
        session.commit()


def bare_campaign(db_url: str, units_csv: Path, form_id: str = "xxgk") -> int:
    """The units of units_csv registered and a 2021 campaign assigning each of them (no workbooks made): enough to
    store returns into. Its id."""
    with Session(get_engine(db_url)) as session:
        upsert_units(session=session, rows=read_units_file(units_csv))
        campaign = Campaign(form_id=form_id, form_version="2021", year=2021, deadline=date(2022, 1, 20), secret="k")
        session.add(campaign)
        session.flush()
        assert campaign.id is not None
        for unit in session.exec(select(Unit)).all():
            assert unit.id is not None
            session.add(Assignment(campaign_id=campaign.id, unit_id=unit.id,
                                   workbook_path=f"workbooks/{unit.code}.xlsx", workbook_sha256="0" * 64))
        session.commit()
        return campaign.id


def valid_figures(form: FormSpec, **overrides: int | str) -> dict[str, Decimal]:
    """Figures for every input cell of a unit that pass every hard rule: 2 new applications disclosed, some
    licences and penalties, a fee. Keys given as overrides (dots as '__') replace those figures."""
    figures = {c.key: Decimal(0) for c in form.input_cells}
    figures.update({
        "apply.new.natural_person": Decimal(2), "apply.result.open.natural_person": Decimal(1),
        "apply.result.partial.natural_person": Decimal(1), "apply.new.commercial": Decimal(1),
        "apply.carry_next.commercial": Decimal(1), "active.license.decisions": Decimal(120),
        "active.penalty.decisions": Decimal(7), "active.fees.amount_wan": Decimal("12.3456"),
    })
    for key, value in overrides.items():
        figures[key.replace("__", ".")] = Decimal(str(value))
    return figures


def return_workbook(settings: Settings, code: str, figures: dict[str, Decimal], year: int) -> Path:
    """The unit fills the workbook issued to it (by defined name) and drops it into the campaign's inbox."""
    from cli.simulate import fill_by_names

    issued = next((settings.outbox_dir(year) / "workbooks").glob(f"{year}年*-{code}-*.xlsx"))
    return fill_by_names(issued, settings.inbox_dir(year) / issued.name, figures)
