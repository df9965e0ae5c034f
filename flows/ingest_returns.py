"""Ingest returned workbooks: archive, identify, read, check, store with a verdict, answer the unit."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from pydantic import BaseModel
from sqlmodel import Session

from flows.common import as_is, batches, engine, form_for
from flows.mail_tasks import mail_answers
from flows.mailbox_tasks import poll_mailbox
from flows.progress import publish_progress
from flows.run_names import run_name
from schemas.settings import get_settings
from tasks.answers import write_answer
from tasks.examine_pool import ExaminationPool, default_workers
from tasks.inbox import Claim, claim_new_files, kept_alive, move_processed, release
from tasks.ingest import Examination
from tasks.intake import IngestContext, answer_for, load_ingest_context, store_received
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
def examine_batch(paths: list[str], inbox: str, pool: ExaminationPool, in_process: bool) -> list[Examination]:
    """Archive each file's bytes, then identify, read and check it. Never raises for a bad file."""
    return pool.examine(paths, inbox, in_process=in_process)


@task(name="store-returns", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def store_batch(context: IngestContext, examinations: list[Examination]) -> list[Stored]:
    with Session(engine()) as session:
        stored = store_received(session=session, form=form_for(), context=context, examinations=examinations)
        session.commit()
    return stored


@task(name="answer-units", cache_policy=NO_CACHE)
def answer_batch(year: int, context: IngestContext, stored: list[Stored], claim_root: str) -> list[str]:
    """Write each unit's receipt or issue list to the outbox; move the stored files out of the claim folder."""
    settings = get_settings()
    written = []
    for item in stored:
        written.append(str(write_answer(answer_for(item, context), settings.outbox_dir(year))))
        source = item.examination.incoming.source_path
        if source:
            move_processed(Path(source), Path(claim_root), settings.campaign_dir(year) / "processed")
    return written


@task(name="claim-inbox", cache_policy=NO_CACHE)
def claim_inbox(inbox: str) -> Claim:
    """Take the waiting files into a folder of this run: a concurrent run never takes the same file."""
    return claim_new_files(Path(inbox))


@flow(name="ingest-returns", flow_run_name=run_name("接收报送"))
def ingest_returns(year: int, inbox: str | None = None) -> IngestSummary:
    """Process every new return: the unit's replies in the mailbox, then every file in the inbox folder."""
    settings = get_settings()
    folder = Path(inbox) if inbox else settings.inbox_dir(year)
    context = load_context(year)
    mailbox = poll_mailbox(year)  # does nothing when no IMAP mailbox is configured
    claim = claim_inbox(str(folder))
    paths = [str(p) for p in claim.paths]
    summary = IngestSummary(year=year, files=len(paths), accepted=0, rejected=0, duplicates=0, answers=[])
    pool = ExaminationPool(form=form_for(), context=context, archive_dir=settings.archive_dir,
                           max_bytes=settings.max_upload_bytes, workers=default_workers(len(paths)))
    with kept_alive(claim), pool:
        # the next batch is examined (by the worker processes) while this one is stored and answered; the first
        # is examined here, while the workers start. as_is(): Prefect would otherwise walk every figure of every
        # file looking for futures (~6 ms a file)
        waiting: deque[PrefectFuture[list[Examination]]] = deque()
        for n, batch in enumerate(batches(paths, settings.batch_size)):
            waiting.append(examine_batch.submit(batch, str(claim.root), as_is(pool), in_process=n == 0))
            if len(waiting) == 2:
                _store_and_answer(year, context, claim, waiting.popleft().result(), summary)
        while waiting:
            _store_and_answer(year, context, claim, waiting.popleft().result(), summary)
    release(claim)
    summary.accepted += mailbox.accepted
    summary.rejected += mailbox.rejected
    summary.duplicates += mailbox.duplicates
    # the campaign's artifacts and events in the Prefect UI, also after returns that came by the upload page
    publish_progress(year)
    get_run_logger().info("ingest %s: %d files, %d accepted, %d rejected, %d duplicates", year, summary.files,
                          summary.accepted, summary.rejected, summary.duplicates)
    return summary


def _store_and_answer(year: int, context: IngestContext, claim: Claim, examined: list[Examination],
                      summary: IngestSummary) -> None:
    stored = store_batch(as_is(context), as_is(examined))
    summary.answers += answer_batch(year, as_is(context), as_is(stored), str(claim.root))
    mail_answers(year, as_is(context), as_is(stored))  # the same answers by mail (or as .eml files), once each
    for item in stored:
        if item.duplicate:
            summary.duplicates += 1
        elif item.verdict.value == "accepted":
            summary.accepted += 1
        else:
            summary.rejected += 1
