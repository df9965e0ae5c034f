"""Mail the units what they are owed: each unit's workbook when it is issued, and the answer to each return.

The flows call these per batch with one open transport (one SMTP connection for a batch, not one per message).
Every batch goes through send_messages(), so each message is sent once per event however often a flow runs; its
keys are claimed in one transaction (see tasks/mail_send.py for when outcomes are recorded).
"""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path

from sqlmodel import Session, col, select

from schemas.tables import Assignment, Campaign, MailMessage, Submission, Unit, Verdict
from tasks.answer_writing import AnswerMail
from tasks.answers import Answer
from tasks.ingest import IngestContext
from tasks.intake import answer_for
from tasks.mail_compose import CampaignInfo, UnitContact, answer_subject, compose_answer, compose_issue
from tasks.mail_config import MailConfig
from tasks.mail_ledger import SETTLED, ClaimRequest, Envelope, answer_key, claim_many, issue_key, settled_keys
from tasks.mail_send import MailOutcome, Outgoing, Sleep, open_transport, send_messages
from tasks.submissions import Stored


def campaign_info(*, session: Session, campaign_id: int) -> CampaignInfo:
    campaign = session.get_one(Campaign, campaign_id)
    return CampaignInfo(campaign_id, campaign.year, campaign.deadline, campaign.secret)


def campaign_info_of(context: IngestContext) -> CampaignInfo:
    return CampaignInfo(context.campaign.id, context.campaign.year, context.deadline, context.campaign.secret)


def unit_contacts(*, session: Session, codes: list[str]) -> dict[str, UnitContact]:
    units = session.exec(select(Unit).where(col(Unit.code).in_(codes))).all()
    return {u.code: UnitContact(u.code, u.name, u.contact, u.email, u.leader, u.leader_email) for u in units}


def issue_mail_due(*, session: Session, campaign_id: int) -> list[str]:
    """Codes of the units holding a workbook of this campaign whose issue mail has not gone out yet."""
    codes = list(session.exec(select(Unit.code).join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                              .where(Assignment.campaign_id == campaign_id).order_by(col(Unit.code))).all())
    done = settled_keys(session=session, keys=[issue_key(campaign_id, code) for code in codes])
    return [code for code in codes if issue_key(campaign_id, code) not in done]


def send_issue_mails(*, session: Session, config: MailConfig, campaign_id: int, unit_codes: list[str],
                     sleep: Sleep = time.sleep) -> list[MailOutcome]:
    """Send (or write) each unit its workbook with its personal upload link, once per unit."""
    campaign = campaign_info(session=session, campaign_id=campaign_id)
    contacts = unit_contacts(session=session, codes=unit_codes)
    workbooks = dict(session.exec(select(Unit.code, Assignment.workbook_path)
                                  .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                                  .where(Assignment.campaign_id == campaign_id, col(Unit.code).in_(unit_codes))).all())
    envelopes = [Envelope(issue_key(campaign_id, code), "issue", campaign_id, code) for code in unit_codes]
    done = settled_keys(session=session, keys=[e.event_key for e in envelopes])
    batch = [Outgoing(compose_issue(config, campaign, contacts[e.unit_code], Path(workbooks[e.unit_code])), e)
             for e in envelopes if e.unit_code and e.event_key not in done]
    return _send_all(session, config, envelopes, batch, sleep)


def deliver_answers(*, session: Session, config: MailConfig, context: IngestContext, stored: list[Stored],
                    sleep: Sleep = time.sleep) -> list[MailOutcome]:
    """Mail each unit the receipt or issue list of its stored return (the same words as the .txt answer).

    A duplicate file is not answered again; a file from no known unit is answered only to the address it came
    from, when it came by mail.
    """
    campaign = campaign_info_of(context)
    fresh = [item for item in stored if not item.duplicate]
    contacts = unit_contacts(session=session, codes=[i.unit_code for i in fresh if i.unit_code])
    owed = [(item.submission_id, answer_for(item, context), item.examination.incoming.channel,
             item.examination.incoming.sender) for item in fresh]
    return _answer_all(session, config, campaign, contacts, owed, sleep)


def deliver_owed_answers(*, session: Session, config: MailConfig, campaign_id: int,
                         sleep: Sleep = time.sleep) -> list[MailOutcome]:
    """Mail the answer of every return of the campaign that has none on the ledger yet (a catch-up pass)."""
    campaign = campaign_info(session=session, campaign_id=campaign_id)
    # sent or written; a temporary failure, a stale claim or a refusal for good is owed still: the claim decides
    # (a refused one goes out again once the unit's address has been corrected)
    answered = set(session.exec(select(MailMessage.event_key).where(
        MailMessage.campaign_id == campaign_id, col(MailMessage.kind).in_(["receipt", "rejection"]),
        col(MailMessage.status).in_(list(SETTLED)))).all())
    rows = session.exec(select(Submission, Unit).join(Unit, col(Unit.id) == col(Submission.unit_id), isouter=True)
                        .where(Submission.campaign_id == campaign_id).order_by(col(Submission.id))).all()
    versions = {s.id: s.version for s, _ in rows}
    owed = []
    for sub, unit in rows:
        assert sub.id is not None
        if answer_key(sub.id) in answered:
            continue
        received = sub.received_at if sub.received_at.tzinfo else sub.received_at.replace(tzinfo=UTC)
        answer = Answer(unit_code=unit.code if unit else None, unit_name=unit.name if unit else None,
                        file_name=sub.original_name, year=campaign.year, accepted=sub.verdict is not Verdict.REJECTED,
                        duplicate=False, version=sub.version, received_at=received,
                        replaces=versions.get(sub.replaces_id) if sub.replaces_id else None, issues=sub.issues,
                        deadline=campaign.deadline, locked=sub.verdict is Verdict.HELD,
                        repeats=sub.repeats_version)
        owed.append((sub.id, answer, sub.channel, sub.sender))
    contacts = unit_contacts(session=session, codes=[a.unit_code for _, a, _, _ in owed if a.unit_code])
    return _answer_all(session, config, campaign, contacts, owed, sleep)


def claim_answer_mails(*, session: Session, context: IngestContext, stored: list[Stored],
                       answers: list[Answer]) -> list[AnswerMail | None]:
    """Claim the answer mail of each stored return on the ledger (committed), for write_answers() to write as
    .eml where the answers are written; None where no mail is owed (a duplicate, no address, sent already)."""
    campaign = campaign_info_of(context)
    contacts = unit_contacts(session=session, codes=[i.unit_code for i in stored if i.unit_code and not i.duplicate])
    addressed: list[tuple[int, Envelope, UnitContact | None, list[tuple[str, str]]]] = []
    requests = []
    for n, (item, answer) in enumerate(zip(stored, answers, strict=True)):
        if item.duplicate:
            continue
        incoming = item.examination.incoming
        mailed = _addressed(item.submission_id, answer, incoming.channel, incoming.sender, contacts,
                            context.campaign.id)
        if mailed is not None:
            envelope, unit, to = mailed
            addressed.append((n, envelope, unit, to))
            requests.append(ClaimRequest(envelope, ", ".join(a for _, a in to), answer_subject(campaign, answer)))
    mails: list[AnswerMail | None] = [None] * len(stored)
    for (n, _, unit, to), held in zip(addressed, claim_many(session=session, requests=requests), strict=True):
        if held is not None:
            mails[n] = AnswerMail(held, unit, to)
    return mails


def _answer_all(session: Session, config: MailConfig, campaign: CampaignInfo, contacts: dict[str, UnitContact],
                owed: list[tuple[int, Answer, str, str]], sleep: Sleep) -> list[MailOutcome]:
    envelopes, batch = [], []
    done = settled_keys(session=session, keys=[answer_key(submission_id) for submission_id, _, _, _ in owed])
    for submission_id, answer, channel, sender in owed:
        mailed = _addressed(submission_id, answer, channel, sender, contacts, campaign.id)
        if mailed is None:
            continue
        envelope, unit, to = mailed
        envelopes.append(envelope)
        if envelope.event_key not in done:  # answered already: not composed again for nothing
            batch.append(Outgoing(compose_answer(config, campaign, unit, answer, to), envelope))
    return _send_all(session, config, envelopes, batch, sleep)


def _addressed(submission_id: int, answer: Answer, channel: str, sender: str, contacts: dict[str, UnitContact],
               campaign_id: int) -> tuple[Envelope, UnitContact | None, list[tuple[str, str]]] | None:
    """The answer mail's ledger envelope, unit and recipients; None when there is no one to mail it to."""
    unit = contacts.get(answer.unit_code or "")
    to = [(unit.name, unit.email)] if unit and unit.email else []
    if channel == "mail" and "@" in sender and all(sender != addr for _, addr in to):
        to.append(("", sender))  # whoever mailed the file is answered too
    if unit is None and not to:
        return None  # no unit and no address: the .txt answer in the outbox is all there can be
    kind = "receipt" if answer.accepted else "rejection"
    return Envelope(answer_key(submission_id), kind, campaign_id, answer.unit_code), unit, to


def _send_all(session: Session, config: MailConfig, envelopes: list[Envelope], batch: list[Outgoing],
              sleep: Sleep) -> list[MailOutcome]:
    """Send the batch; one outcome per envelope, in order (status None for those sent already)."""
    sent: dict[str, MailOutcome | None] = {}
    if batch:
        with open_transport(config) as transport:
            outcomes = send_messages(session=session, transport=transport, batch=batch,
                                     from_address=config.from_address, retries=config.retries,
                                     backoff=config.backoff_seconds, sleep=sleep)
        for outcome in outcomes:
            sent.setdefault(outcome.event_key, outcome)  # an event listed twice is sent for its first listing
    return [sent.pop(e.event_key, None) or MailOutcome(e.event_key, None) for e in envelopes]
