"""Ingest returned workbooks: archive, identify, read, check, store with a verdict, answer the unit."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from threading import Event

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from flows.common import as_is, batch_size, engine, form_for, settled_heap
from flows.mail_tasks import mail_answers
from flows.mailbox_tasks import MailboxSummary, poll_mailbox
from flows.part_summary import PartCounts, record_part
from flows.progress import emit_events_at_end, publish_progress
from flows.run_names import run_name
from schemas.settings import get_settings
from tasks import checkpoints
from tasks.answer_writing import AnswerJob, AnswerPlace
from tasks.examine_pool import ExaminationPool, default_workers
from tasks.inbox import Claim, claim_new_files, count_waiting, kept_alive, move_processed, release, skipped_files
from tasks.ingest import Examination, IngestContext
from tasks.intake import answer_for, load_ingest_context, store_received
from tasks.mail_config import mail_config
from tasks.mail_deliver import campaign_info_of, claim_answer_mails
from tasks.mail_ledger import answer_key, record_many, release_claims, reopen_abandoned
from tasks.mailbox import mailbox_config
from tasks.resume import own_returns
from tasks.submissions import Stored


class IngestSummary(BaseModel):
    year: int
    files: int
    accepted: int
    rejected: int
    duplicates: int
    answers: list[str]
    held: int = 0  # passed every check after the year's report was approved: kept, not consolidated
    resumed: int = 0  # of those accepted or rejected, returns a dead run had stored (answered now)
    skipped: list[str] = []  # files left in the inbox for their names (~, ., .tmp ...) for a while: told, not lost


@task(name="load-campaign", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_context(year: int) -> IngestContext:
    with Session(engine()) as session:
        return load_ingest_context(session=session, form=form_for(), year=year)


STORE_ATTEMPTS = 3  # a locked or dropped database is tried again: a failed attempt was rolled back


@dataclass
class Batch:
    stored: list[Stored]
    answers: list[str]  # the .txt answers written
    resumed: set[int]  # submissions a dead run had stored, among them


class StoreTurn:
    """A batch's turn to store: over once it is stored, or once it cannot be (then no later batch stores)."""

    def __init__(self) -> None:
        self._over = Event()
        self.failed = False

    def end(self, *, failed: bool) -> None:
        if not self._over.is_set():
            self.failed = failed
            self._over.set()

    def wait(self) -> bool:
        """Wait for the turn to end; True if that batch was stored."""
        self._over.wait()
        return not self.failed


@task(name="store-and-answer", cache_policy=NO_CACHE)
def store_and_answer(year: int, context: IngestContext, examined: list[Examination], claim: Claim,
                     pool: ExaminationPool, after: StoreTurn | None, turn: StoreTurn) -> Batch:
    """Store a batch of examined returns, then answer each unit: its receipt or issue list written to the outbox
    and mailed (or written as .eml), and last its file moved out of the claim folder.

    Batches are stored in turn (after: the previous batch's turn), so versions are numbered in the order the
    files were taken; their answers overlap with the next batch's storing. When a batch cannot be stored, the
    later ones are not either: their files stay claimed, for the next run. Storing is tried again on a database
    error here, not by a task retry: a retry after the commit would find its own returns stored and answer them
    as duplicates.

    A run killed anywhere in here leaves every file of the batch not yet moved in its claim folder, and the next
    run takes the folder over: it finds the returns stored already by this one (tasks/resume.py) and answers them
    as this one would have, into the same files, each mail still owed written or sent once.
    """
    if after is not None and not after.wait():
        turn.end(failed=True)
        raise RuntimeError("an earlier batch could not be stored; this one is left for the next run")
    try:
        stored, resumed = _store(context, examined)
    except BaseException:
        turn.end(failed=True)
        raise
    turn.end(failed=False)
    return Batch(stored, _answer(year, context, stored, resumed, claim, pool), resumed)


def _store(context: IngestContext, examined: list[Examination]) -> tuple[list[Stored], set[int]]:
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            with Session(engine()) as session:
                stored = store_received(session=session, context=context, examinations=examined)
                # in the same transaction: a database error after the commit would have the retry below find
                # this batch's own returns stored
                answered = own_returns(session=session, campaign_id=context.campaign.id, stored=stored)
                session.commit()
            checkpoints.reached("store.committed")
            return answered
        except OperationalError as exc:
            if attempt == STORE_ATTEMPTS:
                raise
            # (on PostgreSQL a connection lost during COMMIT may hide a commit that happened: its returns are
            # then found stored from their own paths, and answered as stored, tasks/resume.py)
            get_run_logger().warning("storing a batch failed (%s); trying again", exc.orig)
            time.sleep(2 * attempt)
    raise AssertionError("unreachable")


def _answer(year: int, context: IngestContext, stored: list[Stored], resumed: set[int], claim: Claim,
            pool: ExaminationPool) -> list[str]:
    """The worker processes write the answers (a rewrite writes the same files; no mail goes out twice); then
    the files move to processed/."""
    settings = get_settings()
    config = mail_config(settings, year)
    answers = [answer_for(item, context) for item in stored]
    place = AnswerPlace(str(settings.outbox_dir(year)), config, campaign_info_of(context))
    with Session(engine()) as session:
        if resumed:  # the dead run may have claimed their mails and died before recording them: owed now
            reopen_abandoned(session=session, keys=[answer_key(sid) for sid in sorted(resumed)],
                             before=claim.at or datetime.now(UTC))
        # with no SMTP server the answer mails are files too: the worker processes write them with the answers,
        # claimed on the ledger before and recorded after; over SMTP this process sends them, after the files
        mails = claim_answer_mails(session=session, context=context, stored=stored, answers=answers) \
            if not config.uses_smtp else [None] * len(stored)
        checkpoints.reached("mail.claimed")
        jobs = [AnswerJob(answer, mail) for answer, mail in zip(answers, mails, strict=True)]
        try:
            written = pool.write_answers(jobs, place)
        except BaseException:
            release_claims(session=session, claims=[m.claim for m in mails if m is not None])
            raise
        record_many(session=session, results=written.mails)
        checkpoints.reached("mail.recorded")
    if config.uses_smtp:
        mail_answers(year, context, stored)
    _move_out(stored, claim, settings.campaign_dir(year) / "processed")
    return written.answers


def _move_out(stored: list[Stored], claim: Claim, processed: Path) -> None:
    """Move each answered file to processed/, its last step: until then a run that dies leaves it claimed, and
    the next one answers it again into the same files. (Moved before its mail was recorded, a file would take its
    owed mail with it; a rename a file costs this process next to nothing.)"""
    for item in stored:
        source = item.examination.incoming.source_path
        if not source:
            continue
        try:
            move_processed(Path(source), claim.root_of(Path(source)), processed)
        except OSError as exc:  # stored and answered: it stays claimed, and the next run tries again
            get_run_logger().error("could not move %s to processed/: %s", source, exc)
        checkpoints.reached("file.moved")


@task(name="claim-inbox", cache_policy=NO_CACHE)
def claim_inbox(inbox: str, max_files: int | None = None) -> Claim:
    """Take the waiting files (at most max_files, oldest first) into a folder of this run: a concurrent run never
    takes the same file."""
    return claim_new_files(Path(inbox), limit=max_files)


@flow(name="ingest-returns", flow_run_name=run_name("接收报送"), on_completion=[emit_events_at_end],
      on_failure=[emit_events_at_end])
def ingest_returns(year: int, inbox: str | None = None, max_files: int | None = None) -> IngestSummary:
    """Process every new return: the unit's replies in the mailbox, then every file in the inbox folder (or the
    max_files oldest: one part of a parallel ingest, flows/ingest_parallel.py)."""
    with settled_heap():  # a thousand files' small objects would set off full collections of a large heap
        summary = _ingest(year, inbox, max_files)
    if max_files is not None:  # a part: its parent, maybe on another machine, adds up what the parts recorded
        record_part(PartCounts.of(summary), year)
    return summary


def _ingest(year: int, inbox: str | None, max_files: int | None = None) -> IngestSummary:
    settings = get_settings()
    folder = Path(inbox) if inbox else settings.inbox_dir(year)
    context = load_context(year)
    # the units' replies by mail, when an IMAP mailbox is configured (no task run for nothing otherwise)
    mailbox = poll_mailbox(year) if mailbox_config(settings) else MailboxSummary(year=year, configured=False)
    # the worker processes start while the inbox is claimed (as many as the waiting files are worth)
    waiting = count_waiting(folder) if max_files is None else min(count_waiting(folder), max_files)
    with ExaminationPool(form=form_for(), context=context, archive_dir=settings.archive_dir,
                         max_bytes=settings.max_upload_bytes, workers=default_workers(waiting)) as pool:
        claim = claim_inbox(str(folder), max_files)
        paths = [str(p) for p in claim.paths]
        roots = tuple(str(root) for root in claim.roots)
        summary = IngestSummary(year=year, files=len(paths), accepted=0, rejected=0, duplicates=0, answers=[])
        with kept_alive(claim):
            # the workers examine the next files while a batch is stored, and then write its answers. One task run
            # a batch. as_is(): Prefect would otherwise walk every examination looking for futures
            working: deque[PrefectFuture[Batch]] = deque()
            previous: StoreTurn | None = None
            # at most five batches held at once (three being stored or answered, two being examined)
            for examined in pool.examine_batches(paths, roots, batch_size=batch_size(len(paths))):
                turn = StoreTurn()
                future = store_and_answer.submit(year, as_is(context), as_is(examined), as_is(claim),
                                                 as_is(pool), as_is(previous), as_is(turn))
                # a task Prefect could not even start still ends its turn: the next batch never waits forever
                future.add_done_callback(partial(_end_turn, turn))
                working.append(future)
                previous = turn
                if len(working) > 2:  # a bounded number of batches held in memory, however big the inbox
                    _count(working.popleft().result(), summary)
            # the campaign's artifacts in the Prefect UI (also after returns that came by the upload page), made
            # once the last batch is stored, while its answers are written: they count what is stored. The events
            # follow the run's final state (emit_events_at_end). A batch that could not be stored raises below.
            published = publish_progress.submit(year, events=False) if previous is None or previous.wait() else None
            while working:
                _count(working.popleft().result(), summary)
    checkpoints.reached("ingest.done")
    release(claim)
    summary.skipped = skipped_files(folder)
    if summary.skipped:
        get_run_logger().warning("%d files of the inbox are left alone for their names (temporary or hidden: ~, ., "
                                 ".tmp ...): %s", len(summary.skipped), ", ".join(summary.skipped[:20]))
    summary.accepted += mailbox.accepted
    summary.rejected += mailbox.rejected
    summary.held += mailbox.held
    summary.duplicates += mailbox.duplicates
    if published is not None:
        published.result()
    get_run_logger().info("ingest %s: %d files, %d accepted, %d rejected, %d duplicates (%d stored by a run that "
                          "died, answered now)", year, summary.files, summary.accepted, summary.rejected,
                          summary.duplicates, summary.resumed)
    return summary


def _end_turn(turn: StoreTurn, _: PrefectFuture[Batch]) -> None:
    turn.end(failed=True)  # nothing if the task ended its turn itself


def _count(batch: Batch, summary: IngestSummary) -> None:
    summary.answers += batch.answers
    summary.resumed += len(batch.resumed)
    for item in batch.stored:
        if item.duplicate:
            summary.duplicates += 1
        elif item.verdict.value == "accepted":
            summary.accepted += 1
        elif item.verdict.value == "held":
            summary.held += 1
        else:
            summary.rejected += 1
