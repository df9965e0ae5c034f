"""Campaigns (one report year of one form) and the figures a campaign inherits from the year before."""

from __future__ import annotations

import secrets
from datetime import date
from decimal import Decimal

from sqlmodel import Session, col, select

from schemas.figures import figures_from_text
from schemas.form_spec import Consolidation, FormSpec
from schemas.tables import Assignment, Campaign, EventLog, PublishedFigures, Submission, Unit, UnitKind


class CampaignError(ValueError):
    """A campaign that cannot be opened or found as asked."""


def get_campaign(*, session: Session, form: FormSpec, year: int) -> Campaign:
    campaign = session.exec(
        select(Campaign).where(Campaign.form_id == form.form_id, Campaign.year == year)
    ).first()
    if campaign is None:
        raise CampaignError(f"no campaign for {year}: run `nianbao open --year {year} --deadline YYYY-MM-DD` first")
    return campaign


def open_campaign(*, session: Session, form: FormSpec, year: int, deadline: date,
                  designated_unit_code: str | None = None) -> tuple[Campaign, bool]:
    """The year's campaign, created if new (returns created=True); an existing one keeps its secret."""
    existing = session.exec(select(Campaign).where(Campaign.form_id == form.form_id, Campaign.year == year)).first()
    if existing is not None:
        if existing.deadline != deadline:
            session.add(EventLog(campaign_id=existing.id, kind="campaign.deadline_changed",
                                 detail={"from": existing.deadline.isoformat(), "to": deadline.isoformat()}))
            existing.deadline = deadline
            session.add(existing)
        return existing, False
    designated = designated_unit_code or _default_designated(session, form)
    campaign = Campaign(form_id=form.form_id, form_version=form.version, year=year, deadline=deadline,
                        secret=secrets.token_hex(32), designated_unit_code=designated)
    session.add(campaign)
    session.flush()
    session.add(EventLog(campaign_id=campaign.id, kind="campaign.opened",
                         detail={"year": year, "deadline": deadline.isoformat(), "designated_unit": designated}))
    return campaign, True


def _default_designated(session: Session, form: FormSpec) -> str | None:
    if not any(c.consolidation is Consolidation.DESIGNATED for c in form.cells):
        return None
    offices = session.exec(
        select(Unit).where(Unit.kind == UnitKind.GOVERNMENT_OFFICE, col(Unit.active).is_(True))
    ).all()
    if len(offices) != 1:
        raise CampaignError(
            f"{len(offices)} active government offices: name the unit whose county-wide figures are reported "
            "(行政规范性文件, 收费金额) with --designated-unit CODE"
        )
    return offices[0].code


def accepted_values(*, session: Session, campaign_id: int) -> dict[str, dict[str, Decimal]]:
    """Unit code -> figures of that unit's latest accepted submission in the campaign."""
    rows = session.connection().execute(  # Core rows: no ORM object for what is read once
        select(Unit.code, Submission.figures)
        .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
        .join(Submission, col(Submission.id) == col(Assignment.accepted_submission_id))
        .where(Assignment.campaign_id == campaign_id)
    )
    return {code: figures_from_text(text) for code, text in rows}


def previous_year_values(*, session: Session, form: FormSpec, year: int) -> dict[str, dict[str, Decimal]]:
    """Last year's figures of each unit, by unit code: its accepted return of last year's campaign, or else the
    tables of its published report of last year, imported (year zero, see tasks/published_import.py)."""
    imported = session.exec(select(PublishedFigures.unit_code, PublishedFigures.figures).where(
        PublishedFigures.form_id == form.form_id, PublishedFigures.year == year - 1,
        col(PublishedFigures.unit_code).is_not(None))).all()
    values = {code: figures_from_text(text) for code, text in imported if code is not None}
    previous = session.exec(
        select(Campaign).where(Campaign.form_id == form.form_id, Campaign.year == year - 1)
    ).first()
    if previous is not None and previous.id is not None:
        values.update(accepted_values(session=session, campaign_id=previous.id))
    return values
