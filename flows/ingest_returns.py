"""Ingest returned workbooks: archive, identify, read, check, store with a verdict, answer the unit."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session

from flows.common import as_is, batches, engine, form_for
from schemas.settings import get_settings
from tasks.answers import write_answer
from tasks.inbox import move_processed, new_files, receive
from tasks.ingest import Examination
from tasks.intake import IngestContext, answer_for, examine_received, load_ingest_context, store_received
from tasks.submissions import Stored


class IngestSummary(BaseModel):
    year: int
    files: int
    accepted: int
    rejected: int
    duplicates: int
    answers: list[str]


@task(name="load-campaign", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_context(year: int) -> IngestContext:
    with Session(engine()) as session:
        return load_ingest_context(session=session, form=form_for(), year=year)


@task(name="examine-returns", cache_policy=NO_CACHE)
def examine_batch(paths: list[str], inbox: str, context: IngestContext) -> list[Examination]:
    """Archive each file's bytes, then identify, read and check it. Never raises for a bad file."""
    settings = get_settings()
    received = [receive(Path(path), Path(inbox), settings.archive_dir) for path in paths]
    return examine_received(received, form=form_for(), context=context, max_bytes=settings.max_upload_bytes)


@task(name="store-returns", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def store_batch(context: IngestContext, examinations: list[Examination]) -> list[Stored]:
    with Session(engine()) as session:
        stored = store_received(session=session, form=form_for(), context=context, examinations=examinations)
        session.commit()
    return stored


@task(name="answer-units", cache_policy=NO_CACHE)
def answer_batch(year: int, context: IngestContext, stored: list[Stored]) -> list[str]:
    """Write each unit's receipt or issue list to the outbox; move the stored files out of the inbox."""
    settings = get_settings()
    written = []
    for item in stored:
        written.append(str(write_answer(answer_for(item, context), settings.outbox_dir(year))))
        source = item.examination.incoming.source_path
        if source:
            move_processed(Path(source), settings.campaign_dir(year) / "processed")
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
        stored = store_batch(as_is(context), as_is(examined))
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
