"""The chase's database side: where each unit stands, and sending the planned reminders and the digest."""

from __future__ import annotations

import time
from datetime import date

from sqlmodel import Session, col, select

from schemas.tables import Assignment, MailStatus, Submission, Unit
from tasks.chase import ChaseAction, ChasePlan, UnitSituation
from tasks.mail_compose import DigestRow, compose_chase, compose_digest
from tasks.mail_config import MailConfig
from tasks.mail_deliver import campaign_info
from tasks.mail_ledger import Envelope, chase_key, chased_days, digest_key, settled_keys
from tasks.mail_send import MailOutcome, Sleep, open_transport, send_message

OUTCOME_CHINESE = {None: "今日已发，未重复发送", MailStatus.SENT: "已发送", MailStatus.WRITTEN: "已写入邮件文件",
                   MailStatus.FAILED_TEMPORARY: "暂时发送失败，下次运行重试",
                   MailStatus.FAILED_PERMANENT: "投递失败"}


def load_situations(*, session: Session, campaign_id: int) -> list[UnitSituation]:
    """Every unit holding a workbook of the campaign, with its latest return's errors and its last reminder."""
    rows = session.exec(select(Assignment, Unit).join(Unit, col(Unit.id) == col(Assignment.unit_id))
                        .where(Assignment.campaign_id == campaign_id).order_by(col(Unit.code))).all()
    latest_ids = [a.last_submission_id for a, _ in rows if a.last_submission_id]
    issues = {s.id: s.issues for s in session.exec(select(Submission).where(col(Submission.id).in_(latest_ids)))}
    chased = chased_days(session=session, campaign_id=campaign_id)
    return [UnitSituation(
        code=unit.code, name=unit.name, status=a.status.value, has_accepted=a.accepted_submission_id is not None,
        issues=tuple(i for i in issues.get(a.last_submission_id, []) if i.get("severity") == "error")
        if a.status.value == "rejected" else (),
        last_return=a.last_submission_at, email=unit.email, contact=unit.contact, leader=unit.leader,
        leader_email=unit.leader_email, last_chased=chased.get(unit.code),
    ) for a, unit in rows]


def digest_done(*, session: Session, campaign_id: int, day: date) -> bool:
    key = digest_key(campaign_id, day)
    return key in settled_keys(session=session, keys=[key])


def send_chase(*, session: Session, config: MailConfig, campaign_id: int, today: date,
               actions: list[ChaseAction], sleep: Sleep = time.sleep) -> list[MailOutcome]:
    """Send today's reminders and escalations: one per unit per day, each logged on the ledger."""
    campaign = campaign_info(session=session, campaign_id=campaign_id)
    outcomes = []
    with open_transport(config) as transport:
        for action in actions:
            envelope = Envelope(chase_key(campaign_id, action.unit.code, today), action.kind, campaign_id,
                                action.unit.code, today, action.level)
            outcomes.append(send_message(
                session=session, transport=transport, message=compose_chase(config, campaign, action, today),
                envelope=envelope, from_address=config.from_address, retries=config.retries,
                backoff=config.backoff_seconds, sleep=sleep))
    return outcomes


def send_digest(*, session: Session, config: MailConfig, campaign_id: int, plan: ChasePlan,
                outcomes: list[MailOutcome], sleep: Sleep = time.sleep) -> MailOutcome:
    """Send the coordinator today's digest (once a day): reminders sent, overdue units, failed deliveries."""
    campaign = campaign_info(session=session, campaign_id=campaign_id)
    sent = [DigestRow(a.unit.code, a.unit.name, a.reason, OUTCOME_CHINESE[o.status])
            for a, o in zip(plan.actions, outcomes, strict=False)]
    failed = [DigestRow(code, name, error or "") for code, name, error in session.exec(
        select(Unit.code, Unit.name, col(Assignment.delivery_error))
        .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
        .where(Assignment.campaign_id == campaign_id, col(Assignment.delivery_error).is_not(None))
        .order_by(col(Unit.code))).all()]
    message = compose_digest(config, campaign, plan, sent, failed)
    with open_transport(config) as transport:
        return send_message(session=session, transport=transport, message=message,
                            envelope=Envelope(digest_key(campaign_id, plan.today), "digest", campaign_id, None,
                                              plan.today),
                            from_address=config.from_address, retries=config.retries,
                            backoff=config.backoff_seconds, sleep=sleep)
