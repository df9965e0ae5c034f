"""One ingest path for every channel (inbox folder, upload page, mailbox): archive, examine, store, answer.

Prefect-free: the ingest flow calls these per batch; the upload page calls them for the one file it was given.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from schemas.form_spec import FormSpec
from schemas.tables import Assignment, Unit
from tasks.answers import Answer
from tasks.campaigns import get_campaign, previous_year_values
from tasks.ingest import CampaignKey, Examination, IngestContext
from tasks.submissions import Stored, store_examinations


def load_ingest_context(*, session: Session, form: FormSpec, year: int) -> IngestContext:
    campaign = get_campaign(session=session, form=form, year=year)
    assert campaign.id is not None
    units = session.exec(select(Unit).join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                         .where(Assignment.campaign_id == campaign.id)).all()
    return IngestContext(
        campaign=CampaignKey(campaign.id, campaign.year, campaign.form_id, campaign.form_version, campaign.secret),
        deadline=campaign.deadline,
        unit_kinds={u.code: u.kind.value for u in units}, unit_names={u.code: u.name for u in units},
        previous=previous_year_values(session=session, form=form, year=year),
    )


def store_received(*, session: Session, context: IngestContext, examinations: list[Examination]) -> list[Stored]:
    """Store the examined files (one savepoint each); the caller commits."""
    return store_examinations(session=session, campaign_id=context.campaign.id, examinations=examinations)


def answer_for(item: Stored, context: IngestContext) -> Answer:
    """The receipt or issue list owed to the unit for one stored file."""
    exam = item.examination
    return Answer(
        unit_code=item.unit_code, unit_name=context.unit_names.get(item.unit_code or ""),
        file_name=exam.incoming.name, year=context.campaign.year, accepted=item.verdict.value != "rejected",
        duplicate=item.duplicate, version=item.version,
        received_at=datetime.fromisoformat(exam.incoming.received_at_iso), replaces=item.replaces_version,
        issues=[i.public() for i in exam.issues], deadline=context.deadline, locked=item.locked,
        repeats=item.repeats_version,
    )
