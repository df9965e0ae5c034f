"""Write the answers of a stored batch: each unit's .txt answer and its answer mail as .eml.

All of it is file work once the verdicts are stored, so it runs where the files were examined (the ingest flow's
worker processes, tasks/examine_pool.py). The database stays with the flow: it claims each answer mail on the
ledger before the batch is handed over and records what became of it afterwards (tasks/mail_ledger.py); then it
moves the files out of their claim folder. Every file written here has a name fixed by what it answers, so a run
that dies halfway and the run that takes its files over write the same files, never a second answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tasks import checkpoints
from tasks.answers import Answer, compile_template, render_answer, write_answer
from tasks.mail_compose import CampaignInfo, UnitContact, compile_templates, compose_answer
from tasks.mail_config import MailConfig
from tasks.mail_ledger import Claim, Result
from tasks.mail_send import EmlWriter, deliver_claimed


@dataclass(frozen=True)
class AnswerMail:
    """An answer mail claimed on the ledger, to be composed and written as .eml."""

    claim: Claim
    unit: UnitContact | None
    to: list[tuple[str, str]]  # (display name, address)


@dataclass(frozen=True)
class AnswerJob:
    answer: Answer
    mail: AnswerMail | None = None


@dataclass(frozen=True)
class AnswerPlace:
    """Where a campaign's answers go, and what its answer mails say and sign."""

    outbox: str
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
    """Write every job's answer and mail; a job already done is rewritten to the same files."""
    written = Written([], [])
    writer = EmlWriter(place.config.eml_folder)
    for job in jobs:
        text = render_answer(job.answer)  # once, for the .txt and the mail's text
        written.answers.append(str(write_answer(job.answer, Path(place.outbox), text)))
        checkpoints.reached("answer.written")
        if job.mail is not None:
            message = compose_answer(place.config, place.campaign, job.mail.unit, job.answer, job.mail.to, text)
            written.mails.append(deliver_claimed(writer, message, job.mail.claim, [a for _, a in job.mail.to],
                                                 place.config.from_address, retries=0, backoff=0, sleep=time.sleep))
            checkpoints.reached("mail.written")
    return written
