"""Open a year's collection: create the campaign and issue every active unit its workbook (idempotent)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel
from sqlmodel import Session, func, select

from flows.common import as_is, batch_size, batches, engine, form_for
from flows.mail_tasks import issue_mails_due, mail_workbooks
from flows.progress import publish_progress
from flows.run_names import run_name
from schemas.settings import get_settings
from schemas.tables import Assignment
from tasks.campaigns import open_campaign, previous_year_values
from tasks.issue_workbooks import UnitToIssue, record_issued, units_to_issue, write_workbooks
from tasks.workbook_template import WorkbookTemplate, build_template
from tasks.xlsx_patch import XlsxPatcher


class OpenSummary(BaseModel):
    year: int
    campaign_id: int
    created: bool
    issued: int
    already_issued: int
    outbox: str
    mailed: int = 0  # issue mails sent or written as .eml by this run


class IssuePlan(BaseModel):
    campaign_id: int
    created: bool
    secret: str
    already_issued: int
    units: list[tuple[int, str, str, dict[str, Decimal]]]  # unit id, code, name, carry-over figures


@task(name="prepare-campaign", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def prepare_campaign(year: int, deadline: date, designated_unit: str | None) -> IssuePlan:
    """Create or find the campaign; list the units still without a workbook, with last year's carry-over."""
    form = form_for()
    with Session(engine()) as session:
        campaign, created = open_campaign(session=session, form=form, year=year, deadline=deadline,
                                          designated_unit_code=designated_unit)
        previous = previous_year_values(session=session, form=form, year=year)
        plan = units_to_issue(session=session, campaign=campaign, form=form, previous=previous)
        issued = session.exec(select(func.count()).select_from(Assignment)
                              .where(Assignment.campaign_id == campaign.id)).one()
        session.commit()
        assert campaign.id is not None
        return IssuePlan(campaign_id=campaign.id, created=created, secret=campaign.secret,
                         already_issued=int(issued),
                         units=[(u.unit_id, u.code, u.name, u.carry_over) for u in plan])


@task(name="build-template", cache_policy=NO_CACHE)
def build_template_task(year: int, deadline: date) -> WorkbookTemplate:
    return build_template(form_for(), year, deadline)


@task(name="issue-workbooks", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def issue_batch(template: WorkbookTemplate, plan: IssuePlan, year: int, batch: list[UnitToIssue]) -> int:
    """Write a batch of workbooks to the outbox and record them, in one transaction."""
    issued = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=plan.campaign_id,
                             year=year, secret=plan.secret, units=batch,
                             folder=get_settings().outbox_dir(year) / "workbooks")
    with Session(engine()) as session:
        record_issued(session=session, campaign_id=plan.campaign_id, issued=issued)
        session.commit()
    return len(issued)


@flow(name="open-collection", flow_run_name=run_name("开启填报"))
def open_collection(year: int, deadline: date, designated_unit: str | None = None) -> OpenSummary:
    """Open the year's collection: one signed workbook per active unit, written to the campaign's outbox."""
    plan = prepare_campaign(year, deadline, designated_unit)
    units = [UnitToIssue(uid, code, name, carry) for uid, code, name, carry in plan.units]
    issued = 0
    if units:
        template = build_template_task(year, deadline)
        for batch in batches(units, batch_size(len(units))):
            issued += issue_batch(as_is(template), as_is(plan), year, as_is(batch))
    get_run_logger().info("campaign %s: %d workbooks issued now, %d before", year, issued, plan.already_issued)
    mailed = 0  # every unit with a workbook and no issue mail yet: a rerun catches up what failed before
    due = issue_mails_due(plan.campaign_id)
    for codes in batches(due, batch_size(len(due))):
        mailed += sum(1 for o in mail_workbooks(year, plan.campaign_id, codes) if o.status in {"sent", "written"})
    publish_progress(year)
    return OpenSummary(year=year, campaign_id=plan.campaign_id, created=plan.created, issued=issued,
                       already_issued=plan.already_issued, outbox=str(get_settings().outbox_dir(year)), mailed=mailed)
