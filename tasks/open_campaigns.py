"""Which campaigns are open: what a scheduled run with no parameters works on."""

from __future__ import annotations

from sqlmodel import Session, col, select

from schemas.form_spec import FormSpec
from schemas.tables import Campaign, CampaignState


def open_campaign_years(*, session: Session, form: FormSpec) -> list[int]:
    """Report years of the form's campaigns still collecting (state open), oldest first."""
    years = session.exec(
        select(Campaign.year).where(Campaign.form_id == form.form_id, Campaign.state == CampaignState.OPEN)
        .order_by(col(Campaign.year))
    ).all()
    return list(years)
