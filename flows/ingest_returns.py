"""Ingest returned workbooks: archive, identify, read, check, store with a verdict, answer the unit."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session, col, select

from flows.common import as_is, batches, engine, form_for
from schemas.settings import get_settings
from schemas.tables import Assignment, Unit
from tasks.answers import Answer, write_answer
from tasks.campaigns import get_campaign, previous_year_values
from tasks.inbox import move_processed, new_files, receive
from tasks.ingest import CampaignKey, Examination, examine
from tasks.submissions import Stored, store_examinations


class IngestSummary(BaseModel):
    year: int
    files: int
    accepted: int
    rejected: int
    duplicates: int
    answers: list[str]


class IngestContext(BaseModel):
    campaign: tuple[int, int, str, str, str]  # id, year, form id, form version, secret
    deadline: date
    unit_kinds: dict[str, str]
    unit_names: dict[str, str]
    previous: dict[str, dict[str, str]]


@task(name="load-campaign", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_context(year: int) -> IngestContext:
    form = form_for()
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form, year=year)
        units = session.exec(select(Unit).join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                             .where(Assignment.campaign_id == campaign.id)).all()
        previous = previous_year_values(session=session, form=form, year=year)
        assert campaign.id is not None
        return IngestContext(
            campaign=(campaign.id, campaign.year, campaign.form_id, campaign.form_version, campaign.secret),
            deadline=campaign.deadline,
            unit_kinds={u.code: u.kind.value for u in units}, unit_names={u.code: u.name for u in units},
            previous={code: {k: str(v) for k, v in vals.items()} for code, vals in previous.items()},
        )


@task(name="examine-returns", cache_policy=NO_CACHE)
def examine_batch(paths: list[str], inbox: str, context: IngestContext) -> list[Examination]:
    """Archive each file's bytes, then identify, read and check it. Never raises for a bad file."""
    form = form_for()
    key = CampaignKey(*context.campaign)
    previous = {code: {k: Decimal(v) for k, v in vals.items()} for code, vals in context.previous.items()}
    examined = []
    for path in paths:
        data, incoming = receive(Path(path), Path(inbox), get_settings().archive_dir)
        examined.append(examine(data, incoming, form, key, context.unit_kinds, previous,
                                get_settings().max_upload_bytes))
    return examined


@task(name="store-returns", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def store_batch(campaign_id: int, examinations: list[Examination]) -> list[Stored]:
    with Session(engine()) as session:
        stored = store_examinations(session=session, campaign_id=campaign_id, form=form_for(),
                                    examinations=examinations)
        session.commit()
    return stored


@task(name="answer-units", cache_policy=NO_CACHE)
def answer_batch(year: int, context: IngestContext, stored: list[Stored]) -> list[str]:
    """Write each unit's receipt or issue list to the outbox; move the stored files out of the inbox."""
    settings = get_settings()
    written = []
    for item in stored:
        exam = item.examination
        answer = Answer(
            unit_code=item.unit_code, unit_name=context.unit_names.get(item.unit_code or ""),
            file_name=exam.incoming.name, year=year, accepted=item.verdict.value == "accepted",
            duplicate=item.duplicate, version=item.version,
            received_at=datetime.fromisoformat(exam.incoming.received_at_iso), replaces=item.replaces_version,
            issues=[i.public() for i in exam.issues], deadline=context.deadline,
        )
        written.append(str(write_answer(answer, settings.outbox_dir(year))))
        if exam.incoming.source_path:
            move_processed(Path(exam.incoming.source_path), settings.campaign_dir(year) / "processed")
    return written


@flow(name="ingest-returns", flow_run_name="{year}年度-接收报送")
def ingest_returns(year: int, inbox: str | None = None) -> IngestSummary:
    """Process every new file in the campaign's inbox folder."""
    settings = get_settings()
    folder = Path(inbox) if inbox else settings.inbox_dir(year)
    context = load_context(year)
    paths = [str(p) for p in new_files(folder)]
    summary = IngestSummary(year=year, files=len(paths), accepted=0, rejected=0, duplicates=0, answers=[])
    for batch in batches(paths, settings.batch_size):
        # as_is(): Prefect would otherwise walk every figure of every file looking for futures (~6 ms a file)
        examined = examine_batch(batch, str(folder), as_is(context))
        stored = store_batch(context.campaign[0], as_is(examined))
        summary.answers += answer_batch(year, as_is(context), as_is(stored))
        for item in stored:
            if item.duplicate:
                summary.duplicates += 1
            elif item.verdict.value == "accepted":
                summary.accepted += 1
            else:
                summary.rejected += 1
    get_run_logger().info("ingest %s: %d files, %d accepted, %d rejected, %d duplicates", year, summary.files,
                          summary.accepted, summary.rejected, summary.duplicates)
    return summary
