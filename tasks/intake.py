"""One ingest path for every channel (inbox folder, upload page, mailbox): archive, examine, store, answer.

Prefect-free: the ingest flow calls these per batch; the upload page calls them for the one file it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, col, select

from schemas.form_spec import FormSpec
from schemas.tables import Assignment, Unit
from tasks.answers import Answer
from tasks.archive import archive_bytes
from tasks.campaigns import get_campaign, previous_year_values
from tasks.ingest import CampaignKey, Examination, Incoming, examine
from tasks.submissions import Stored, store_examinations


@dataclass(frozen=True)
class IngestContext:
    """What checking a campaign's returns needs to know, read once per run."""

    campaign: CampaignKey
    deadline: date
    unit_kinds: dict[str, str]
    unit_names: dict[str, str]
    previous: dict[str, dict[str, Decimal]]


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


def receive_bytes(data: bytes, *, name: str, archive_dir: Path, channel: str, sender: str = "",
                  claimed_unit: str | None = None, received_at: datetime | None = None) -> Incoming:
    """Archive bytes that arrived by upload or mail, before anything reads them; describe them for examine()."""
    digest, archived = archive_bytes(data, archive_dir, Path(name).suffix.lower() or ".bin")
    return Incoming(name=Path(name).name or "未命名文件", sha256=digest, size=len(data), archive_path=str(archived),
                    received_at_iso=(received_at or datetime.now(UTC)).isoformat(), channel=channel,
                    sender=sender, claimed_unit=claimed_unit)


def examine_received(received: list[tuple[bytes, Incoming]], *, form: FormSpec, context: IngestContext,
                     max_bytes: int) -> list[Examination]:
    """Identify, read and check each archived file. Never raises for a bad file."""
    return [examine(data, incoming, form, context.campaign, context.unit_kinds, context.previous, max_bytes)
            for data, incoming in received]


def store_received(*, session: Session, form: FormSpec, context: IngestContext,
                   examinations: list[Examination]) -> list[Stored]:
    """Store the examined files (one savepoint each); the caller commits."""
    return store_examinations(session=session, campaign_id=context.campaign.id, form=form,
                              examinations=examinations)


def answer_for(item: Stored, context: IngestContext) -> Answer:
    """The receipt or issue list owed to the unit for one stored file."""
    exam = item.examination
    return Answer(
        unit_code=item.unit_code, unit_name=context.unit_names.get(item.unit_code or ""),
        file_name=exam.incoming.name, year=context.campaign.year, accepted=item.verdict.value == "accepted",
        duplicate=item.duplicate, version=item.version,
        received_at=datetime.fromisoformat(exam.incoming.received_at_iso), replaces=item.replaces_version,
        issues=[i.public() for i in exam.issues], deadline=context.deadline,
    )
