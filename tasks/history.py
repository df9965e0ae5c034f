"""The county's figures of earlier years, for the comparison with last year and the trend over the years.

A year's figures come from, in this order: its approved (final) report; the published report imported for it (year
zero, tasks/published_import.py); or, for a year still being collected, the consolidation of what is accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, col, select

from schemas.figures import figures_from_text
from schemas.form_spec import FormSpec
from schemas.tables import Campaign, PublishedFigures, Report
from tasks.accepted import load_accepted
from tasks.consolidate import consolidate


@dataclass(frozen=True)
class YearFigures:
    year: int
    cells: dict[str, Decimal]
    source: str  # where they come from, as the annex says it


def county_history(*, session: Session, form: FormSpec, before: int, years: int = 5) -> list[YearFigures]:
    """The county figures of up to `years` years before `before`, oldest first (years without figures left out)."""
    history = []
    for year in range(before - years, before):
        found = _final_report(session, form, year) or _imported(session, form, year) or \
            _consolidated(session, form, year)
        if found is not None:
            history.append(found)
    return history


def _final_report(session: Session, form: FormSpec, year: int) -> YearFigures | None:
    report = session.exec(
        select(Report).join(Campaign, col(Campaign.id) == col(Report.campaign_id))
        .where(Campaign.form_id == form.form_id, Campaign.year == year, Report.kind == "final")
        .order_by(col(Report.id).desc())).first()
    if report is None or not Path(report.json_path).exists():
        return None
    cells = json.loads(Path(report.json_path).read_text(encoding="utf-8"))["cells"]
    return YearFigures(year, {k: Decimal(str(v)) for k, v in cells.items()}, f"{year}年度正式报告（已批准）")


def _imported(session: Session, form: FormSpec, year: int) -> YearFigures | None:
    published = session.exec(select(PublishedFigures).where(
        PublishedFigures.form_id == form.form_id, PublishedFigures.year == year,
        col(PublishedFigures.unit_code).is_(None))).first()
    if published is None:
        return None
    name = f"《{published.title}》" if published.title else f"（{published.original_name}）"
    return YearFigures(year, figures_from_text(published.figures), f"导入的{year}年度已公开报告{name}")


def _consolidated(session: Session, form: FormSpec, year: int) -> YearFigures | None:
    campaign = session.exec(select(Campaign).where(Campaign.form_id == form.form_id, Campaign.year == year)).first()
    if campaign is None or campaign.id is None:
        return None
    per_unit = load_accepted(session=session, form=form, campaign_id=campaign.id)
    if not per_unit:
        return None
    county = consolidate(form, year, per_unit, len(per_unit), campaign.designated_unit_code)
    return YearFigures(year, county.cells, f"{year}年度已通过审核的{len(per_unit)}个单位数据汇总（尚无正式报告）")
