"""Take the units' replies from the IMAP mailbox: a Prefect task the ingest flow runs before it reads the inbox.

    from flows.mailbox_tasks import poll_mailbox
    mailbox = poll_mailbox(year)          # in ingest_returns(), after load_context(year)

Each message is archived, recorded once in the mailbox ledger and its workbooks taken in through tasks/intake.py;
see tasks/mailbox_intake.py. Answers go out through the mail channel (tasks/mail_deliver.py, tasks/mail_send.py):
once per event, over SMTP or as .eml files. The task reads the settings itself, so no password is a task parameter.
"""

from __future__ import annotations

import imaplib
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session

from flows.common import engine, form_for
from flows.mail_tasks import setup_errors_logged
from schemas.settings import Settings, get_settings
from tasks.ingest import IngestContext
from tasks.intake import load_ingest_context
from tasks.mail_config import MailConfig, mail_config
from tasks.mail_deliver import deliver_answers
from tasks.mail_ledger import Envelope
from tasks.mail_send import open_transport, send_message
from tasks.mailbox import Mailbox, MailboxConfig, MailboxError, mailbox_config
from tasks.mailbox_intake import MailIntake, MailOutcome, MailReply
from tasks.submissions import Stored


class MailboxSummary(BaseModel):
    year: int
    configured: bool
    messages: int = 0  # taken this time (others were taken by an earlier poll or another run)
    accepted: int = 0
    rejected: int = 0
    held: int = 0
    duplicates: int = 0
    notes: int = 0  # messages without a workbook, or with other files besides, answered with a note
    automatic: int = 0  # auto-replies and bounces: kept, not answered
    error: str = ""  # why the mailbox could not be polled this time (the next run tries again)


@task(name="poll-mailbox", cache_policy=NO_CACHE)
def poll_mailbox(year: int) -> MailboxSummary:
    """Take every new message of the configured IMAP folder; nothing to do when no mailbox is configured.

    A mailbox that cannot be reached is logged as an error and does not fail the ingest run: the inbox folder is
    still processed, and the next scheduled run polls again (what was taken before the failure is in the ledger).
    """
    settings = get_settings()
    config = mailbox_config(settings)
    logger = get_run_logger()
    if config is None:
        logger.info("mailbox: no IMAP host configured (NIANBAO_IMAP_HOST), not polled")
        return MailboxSummary(year=year, configured=False)
    try:
        summary = take_mailbox(settings, config, year)
    except (MailboxError, imaplib.IMAP4.error, OSError) as exc:
        logger.error("mailbox %s not polled: %s", config.name, exc)
        return MailboxSummary(year=year, configured=True, error=str(exc))
    logger.info("mailbox %s: %d messages, %d accepted, %d rejected, %d duplicates, %d notes, %d automatic",
                config.name, summary.messages, summary.accepted, summary.rejected, summary.duplicates, summary.notes,
                summary.automatic)
    return summary


def take_mailbox(settings: Settings, config: MailboxConfig, year: int) -> MailboxSummary:
    """One poll: stale claims first (from the archive), then every message above the ledger's last UID."""
    with Session(engine()) as session:
        context = load_ingest_context(session=session, form=form_for(), year=year)
    mail = mail_config(settings, year)
    intake = MailIntake(
        engine=engine(), form=form_for(), context=context, archive_dir=settings.archive_dir,
        outbox=settings.outbox_dir(year), max_bytes=settings.max_upload_bytes,
        reply=lambda note: send_note(mail, context, note),
        mail_answers=lambda stored: mail_answers(mail, context, stored),
        never_reply_to=frozenset(a.lower() for a in (settings.mail_from, settings.imap_user) if "@" in a),
    )
    outcomes: list[MailOutcome] = intake.retry_stale(config.name)
    with Mailbox(config) as box:
        for uid in box.uids_after(intake.last_uid(config.name, box.uidvalidity)):
            fetched = box.fetch(uid)
            if fetched is None:
                continue
            outcome = intake.take(fetched.raw, mailbox=config.name, uidvalidity=box.uidvalidity, uid=uid,
                                  arrived=fetched.arrived)
            if outcome is not None:
                outcomes.append(outcome)
            box.mark_done(uid)
    return MailboxSummary(
        year=year, configured=True, messages=len(outcomes), accepted=sum(o.accepted for o in outcomes),
        rejected=sum(o.rejected for o in outcomes), held=sum(o.held for o in outcomes),
        duplicates=sum(o.duplicates for o in outcomes),
        notes=sum(1 for o in outcomes if o.replied and (o.others or not o.submission_ids)),
        automatic=sum(1 for o in outcomes if o.state == "auto-reply"),
    )


def mail_answers(config: MailConfig, context: IngestContext, stored: list[Stored]) -> None:
    """The receipt or issue list of each workbook, to the unit and to whoever mailed it (once per submission)."""
    with Session(engine()) as session, setup_errors_logged():
        deliver_answers(session=session, config=config, context=context, stored=stored)


def send_note(config: MailConfig, context: IngestContext, note: MailReply) -> None:
    """The polite note to a sender whose mail brought no workbook (or other files): once per mailbox message."""
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(config.from_name, addr_spec=config.from_address)
    message["To"] = note.to
    message["Subject"] = note.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    if note.in_reply_to:  # threads under the unit's own mail in its mail client
        message["In-Reply-To"] = note.in_reply_to
        message["References"] = note.in_reply_to
    message.set_content(note.text, cte="base64")
    envelope = Envelope(f"mailbox-note:{note.ledger_id}", "mailbox-note", context.campaign.id, note.unit_code)
    with Session(engine()) as session, setup_errors_logged(), open_transport(config) as transport:
        send_message(session=session, transport=transport, message=message, envelope=envelope,
                     from_address=config.from_address, retries=config.retries, backoff=config.backoff_seconds)
