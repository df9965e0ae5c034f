"""Helpers for the upload page and mailbox tests: an opened campaign, units' filled workbooks, their links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from cli.simulate import fill_by_names
from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Campaign
from tasks.campaigns import get_campaign
from tasks.db import get_engine
from tasks.upload_links import UploadLink, make_token
from tests.conftest import DEADLINE
from tests.factories import register_units, valid_figures

YEAR = 2021


@dataclass(frozen=True)
class Opened:
    """A campaign opened by the real open-collection flow for the four units of tests.factories."""

    settings: Settings
    form: FormSpec
    campaign: Campaign

    def token(self, code: str, expires: date | None = None) -> str:
        assert self.campaign.id is not None
        # the issued links expire 90 days after the deadline; the tests' deadline is in the past, so sign ahead
        expiry = expires or (datetime.now(UTC).date() + timedelta(days=30))
        return make_token(UploadLink(self.campaign.id, code, expiry), self.campaign.secret)

    def issued(self, code: str) -> Path:
        found = list((self.settings.outbox_dir(YEAR) / "workbooks").glob(f"{YEAR}年*-{code}-*.xlsx"))
        assert len(found) == 1, found
        return found[0]

    def filled(self, code: str, target: Path, **overrides: int | str) -> Path:
        """The unit's issued workbook filled with figures that pass (or, with overrides, break) the rules."""
        figures: dict[str, Decimal] = valid_figures(self.form, **overrides)
        return fill_by_names(self.issued(code), target, figures)

    def broken(self, code: str, target: Path) -> Path:
        """One new application too many for 自然人: breaks the R1 sum of that column."""
        return self.filled(code, target, apply__new__natural_person=3)


def open_campaign(settings: Settings, units_file: Path, form: FormSpec) -> Opened:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    with Session(get_engine(settings.db_url), expire_on_commit=False) as session:
        campaign = get_campaign(session=session, form=form, year=YEAR)
        session.expunge(campaign)
    return Opened(settings, form, campaign)
