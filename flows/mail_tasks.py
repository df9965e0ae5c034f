"""Prefect tasks that mail the units, a task per batch, each message sent once per event (see tasks/mail_ledger.py);
and mail_answers, which the ingest flow's store-and-answer task calls when an SMTP server is configured.

The tasks read the settings themselves, so the SMTP password is never a task parameter Prefect would record.
Task retries are safe: a message already sent is not sent again. A wrong mail setup (login refused, bad
certificate) is logged as an error and does not fail the task: the flow's real work (workbooks issued, returns
stored) is done, and the messages stay owed, for a rerun of the open flow or the next chase run to send.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlmodel import Session

from flows.common import engine
from schemas.settings import get_settings
from schemas.tables import MailStatus
from tasks.ingest import IngestContext
from tasks.mail_config import mail_config
from tasks.mail_deliver import deliver_answers, deliver_owed_answers, issue_mail_due, send_issue_mails
from tasks.mail_send import MailOutcome, MailSetupError
from tasks.submissions import Stored


@task(name="plan-issue-mails", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def issue_mails_due(campaign_id: int) -> list[str]:
    """The units holding a workbook whose issue mail has not gone out (a rerun catches up what failed)."""
    with Session(engine()) as session:
        return issue_mail_due(session=session, campaign_id=campaign_id)


@task(name="mail-workbooks", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def mail_workbooks(year: int, campaign_id: int, unit_codes: list[str]) -> list[MailOutcome]:
    """Send (or write as .eml) a batch of units their workbook and personal upload link."""
    with Session(engine()) as session, setup_errors_logged():
        outcomes = send_issue_mails(session=session, config=mail_config(get_settings(), year),
                                    campaign_id=campaign_id, unit_codes=unit_codes)
        _log(outcomes, "workbook mail")
        return outcomes
    return []


def mail_answers(year: int, context: IngestContext, stored: list[Stored]) -> list[MailOutcome]:
    """Mail each unit the receipt or issue list of its stored returns (after the store task committed them).

    Called inside the ingest flow's store-and-answer task (one task run a batch); a second call sends
    nothing twice.
    """
    with Session(engine()) as session, setup_errors_logged():
        outcomes = deliver_answers(session=session, config=mail_config(get_settings(), year), context=context,
                                   stored=stored)
        _log(outcomes, "answer mail")
        return outcomes
    return []


@task(name="mail-owed-answers", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def mail_owed_answers(year: int, campaign_id: int) -> list[MailOutcome]:
    """Mail the answer of every return of the campaign not answered by mail yet (catch-up)."""
    with Session(engine()) as session, setup_errors_logged():
        outcomes = deliver_owed_answers(session=session, config=mail_config(get_settings(), year),
                                        campaign_id=campaign_id)
        _log(outcomes, "answer mail")
        return outcomes
    return []


@contextmanager
def setup_errors_logged() -> Iterator[None]:
    """A wrong mail setup is logged, not raised: what the flow stored stays done, its messages stay owed."""
    try:
        yield
    except MailSetupError as exc:
        get_run_logger().error("mail not sent, fix the mail settings (NIANBAO_SMTP_*): %s", exc.reason)


def _log(outcomes: list[MailOutcome], what: str) -> None:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = outcome.status.value if outcome.status else "already-done"
        counts[key] = counts.get(key, 0) + 1
    logger = get_run_logger()
    logger.info("%s: %s", what, ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to send")
    for outcome in outcomes:
        if outcome.status in {MailStatus.FAILED_TEMPORARY, MailStatus.FAILED_PERMANENT}:
            logger.warning("%s %s: %s", outcome.event_key, outcome.status.value if outcome.status else "",
                           outcome.error)
