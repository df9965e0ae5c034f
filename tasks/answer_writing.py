"""Write the answers of a stored batch: each unit's .txt answer, its answer mail as .eml, the file moved away.

All of it is file work once the verdicts are stored, so it runs where the files were examined (the ingest flow's
worker processes, tasks/examine_pool.py). The database stays with the flow: it claims each answer mail on the
ledger before the batch is handed over and records what became of it afterwards (tasks/mail_ledger.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.answers import Answer, compile_template, render_answer, write_answer
from tasks.inbox import move_processed
from tasks.mail_compose import CampaignInfo, UnitContact, compile_templates, compose_answer
from tasks.mail_config import MailConfig
from tasks.mail_ledger import Claim, Result
from tasks.mail_send import EmlWriter, deliver_claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerMail:
    """An answer mail claimed on the ledger, to be composed and written as .eml."""

    claim: Claim
    unit: UnitContact | None
    to: list[tuple[str, str]]  # (display name, address)


@dataclass(frozen=True)
class AnswerJob:
    answer: Answer
    source_path: str | None = None  # the inbox file, moved to processed/ once answered
    mail: AnswerMail | None = None


@dataclass(frozen=True)
class AnswerPlace:
    """Where a campaign's answers go, and what its answer mails say and sign."""

    outbox: str
    claim_root: str  # the run's claim folder: files are moved from under it
    processed: str
    config: MailConfig
    campaign: CampaignInfo


@dataclass
class Written:
    answers: list[str]  # the .txt answers, in the jobs' order
    mails: list[Result]  # one per job with a mail


def compile_answer_templates() -> None:
    """Compile the templates of the answers and their mails: the workers' forkserver does it once, for every
    worker it forks (tasks/worker_preload.py), rather than each worker at its first answer."""
    compile_template()
    compile_templates("answer")


def write_answers(jobs: list[AnswerJob], place: AnswerPlace) -> Written:
    """Write every job's answer and mail, move its file; a job already done is rewritten to the same files."""
    written = Written([], [])
    writer = EmlWriter(place.config.eml_folder)
    for job in jobs:
        text = render_answer(job.answer)  # once, for the .txt and the mail's text
        written.answers.append(str(write_answer(job.answer, Path(place.outbox), text)))
        if job.source_path:
            try:
                move_processed(Path(job.source_path), Path(place.claim_root), Path(place.processed))
            except OSError as exc:  # stored and answered: it stays in the claim folder, for a person to look at
                log.error("could not move %s to processed/: %s", job.source_path, exc)
        if job.mail is not None:
            message = compose_answer(place.config, place.campaign, job.mail.unit, job.answer, job.mail.to, text)
            written.mails.append(deliver_claimed(writer, message, job.mail.claim, [a for _, a in job.mail.to],
                                                 place.config.from_address, retries=0, backoff=0, sleep=time.sleep))
    return written
