"""Chase late units: reminders before the deadline, escalation after it, the coordinator's daily digest.

However often it runs in a day, each unit gets at most one message and the coordinator one digest: the plan skips
units already chased today, and the ledger's unique key per unit and day refuses a second send.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session

from flows.common import as_is, batches, engine, form_for
from flows.mail_tasks import mail_owed_answers
from flows.progress import publish_progress
from flows.run_names import run_name
from schemas.settings import get_settings
from tasks.campaigns import get_campaign
from tasks.chase import ChaseAction, ChasePlan, plan_chase
from tasks.chase_run import OUTCOME_CHINESE, digest_done, load_situations, send_chase, send_digest
from tasks.mail_config import mail_config
from tasks.mail_send import MailOutcome

CHINA = ZoneInfo("Asia/Shanghai")


class ChaseLine(BaseModel):
    unit: str
    name: str
    kind: str  # reminder / escalation
    level: str
    to: list[str]
    cc: list[str]
    reason: str
    outcome: str  # Chinese; 'dry run' when nothing was sent


class ChaseSummary(BaseModel):
    year: int
    today: date
    deadline: date
    dry_run: bool
    lines: list[ChaseLine]
    quiet: list[tuple[str, str]]  # unit code, why it is not chased today
    digest: str  # what became of the coordinator's digest, '' when none was owed
    answers: int = 0  # answers to returns whose mail had failed before, sent now


@task(name="plan-chase", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def plan_today(year: int, today: date) -> tuple[int, ChasePlan]:
    """Where every unit stands and what was sent already, and from that today's plan."""
    with Session(engine()) as session:
        campaign = get_campaign(session=session, form=form_for(), year=year)
        assert campaign.id is not None
        plan = plan_chase(today=today, deadline=campaign.deadline, reminder_days=get_settings().reminder_days,
                          units=load_situations(session=session, campaign_id=campaign.id),
                          digest_done_today=digest_done(session=session, campaign_id=campaign.id, day=today))
        return campaign.id, plan


@task(name="send-reminders", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def send_reminders(year: int, campaign_id: int, today: date, actions: list[ChaseAction]) -> list[MailOutcome]:
    with Session(engine()) as session:
        return send_chase(session=session, config=mail_config(get_settings(), year), campaign_id=campaign_id,
                          today=today, actions=actions)


@task(name="send-digest", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def send_digest_task(year: int, campaign_id: int, plan: ChasePlan, outcomes: list[MailOutcome]) -> MailOutcome:
    with Session(engine()) as session:
        return send_digest(session=session, config=mail_config(get_settings(), year), campaign_id=campaign_id,
                           plan=plan, outcomes=outcomes)


@flow(name="chase-late-units", flow_run_name=run_name("催报"))
def chase_late_units(year: int, today: date | None = None, dry_run: bool = False) -> ChaseSummary:
    """Remind, escalate and report to the coordinator; with dry_run, only say who would be chased and why."""
    day = today or datetime.now(CHINA).date()
    campaign_id, plan = plan_today(year, day)
    outcomes: list[MailOutcome] = []
    digest = ""
    answers: list[MailOutcome] = []
    if not dry_run:
        # a unit is never chased before it has heard back: answers whose mail failed before go out first
        answers = mail_owed_answers(year, campaign_id)
        for batch in batches(list(plan.actions), get_settings().batch_size):
            outcomes += send_reminders(year, campaign_id, day, as_is(batch))
        if plan.digest:
            sent = send_digest_task(year, campaign_id, as_is(plan), as_is(outcomes))
            digest = OUTCOME_CHINESE[sent.status]
        publish_progress(year)  # reminders sent: the campaign's table and events in the Prefect UI
    elif plan.digest:
        digest = "将发送（演练，未发送）"
    summary = _summary(year, plan, outcomes, dry_run, digest)
    summary.answers = sum(1 for o in answers if o.status is not None)
    get_run_logger().info("chase %s on %s: %d reminder(s)/escalation(s)%s%s", year, day, len(summary.lines),
                          " (dry run, nothing sent)" if dry_run else "", f"; digest: {digest}" if digest else "")
    return summary


def _summary(year: int, plan: ChasePlan, outcomes: list[MailOutcome], dry_run: bool, digest: str) -> ChaseSummary:
    results = [OUTCOME_CHINESE[o.status] for o in outcomes] if not dry_run else []
    lines = [ChaseLine(unit=a.unit.code, name=a.unit.name, kind=a.kind, level=a.level, to=list(a.to), cc=list(a.cc),
                       reason=a.reason, outcome=results[i] if i < len(results) else "演练，未发送")
             for i, a in enumerate(plan.actions)]
    return ChaseSummary(year=year, today=plan.today, deadline=plan.deadline, dry_run=dry_run, lines=lines,
                        quiet=list(plan.quiet), digest=digest)
