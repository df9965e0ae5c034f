"""Every message a unit or the coordinator gets, in Chinese: workbook issue, receipt, rejection, reminder,
escalation and the coordinator's digest. Each is a MIME message with a plain-text and an HTML part.

A Chinese subject or display name is RFC 2047 encoded, an attachment's Chinese file name RFC 2231 encoded, and the
parts are base64 (no 8-bit data for old relays), so Outlook, Foxmail and webmail show them right. The headers are
built in that wire form once, here (tasks/mail_mime.py), rather than re-folded by the email package at every send.
Templates are compiled once per process and rendered from plain values, never ORM objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tasks.answers import CHINA, Answer, render_answer
from tasks.chase import ChaseAction, ChasePlan
from tasks.mail_config import MailConfig
from tasks.mail_mime import (
    OutgoingMessage,
    address_header,
    attachment_part,
    multipart,
    new_message,
    set_multipart,
    text_header,
    text_part,
)
from tasks.upload_links import UploadLink, link_expiry, make_token, upload_url

TEMPLATES = Path(__file__).parent / "templates" / "mail"
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")

# auto_reload off: a template is read and compiled once per process, not stat()ed again at every message
_text = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True,
                    autoescape=False, auto_reload=False)
_html = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=True,
                    auto_reload=False)


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    year: int
    deadline: date
    secret: str  # signs the upload links


@dataclass(frozen=True)
class UnitContact:
    code: str
    name: str
    contact: str = ""
    email: str = ""
    leader: str = ""
    leader_email: str = ""


@dataclass(frozen=True)
class DigestRow:
    code: str
    name: str
    text: str  # why chased / where it stands / the delivery error
    outcome: str = ""  # of today's message, e.g. 已发送


def personal_link(config: MailConfig, campaign: CampaignInfo, unit_code: str) -> str:
    """The unit's own signed upload link on the upload page."""
    token = make_token(UploadLink(campaign.id, unit_code, link_expiry(campaign.deadline)), campaign.secret)
    return upload_url(config.portal_base_url, token)


def compose_issue(config: MailConfig, campaign: CampaignInfo, unit: UnitContact, workbook: Path) -> EmailMessage:
    """The workbook issue: the workbook attached, the personal upload link, the deadline and a contact."""
    values = _common(config, campaign, unit) | {
        "file_name": workbook.name, "link_expires": cn_date(link_expiry(campaign.deadline)),
    }
    subject = f"【请于{cn_date(campaign.deadline)}前报送】{campaign.year}年政府信息公开工作年度报告填报（{unit.name}）"
    attachment = attachment_part(workbook.read_bytes(), XLSX[0], XLSX[1], workbook.name)
    return _message(config, subject, "issue", values, to=[(unit.name, unit.email)], attachment=attachment)


def compose_answer(config: MailConfig, campaign: CampaignInfo, unit: UnitContact | None, answer: Answer,
                   to: list[tuple[str, str]], answer_text: str | None = None) -> EmailMessage:
    """The receipt or the issue list of one return; its text is the .txt answer's (answer_text, when rendered
    already), word for word."""
    errors = [i for i in answer.issues if i.get("severity") == "error"]
    text = render_answer(answer) if answer_text is None else answer_text
    # an accepted return needs no upload link (and a rejected one of an unknown unit has none to give)
    values = _common(config, campaign, None if answer.accepted else unit) | {
        "answer_text": text.rstrip("\n") + "\n", "accepted": answer.accepted,
        "unit_name": answer.unit_name, "file_name": answer.file_name, "version": answer.version,
        "replaces": answer.replaces, "repeats_note": answer.repeats_note,
        "received_at": answer.received_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M"),
        "errors": errors, "warnings": [i for i in answer.issues if i.get("severity") != "error"],
        "deadline": cn_date(answer.deadline) if answer.deadline else "",
    }
    return _message(config, answer_subject(campaign, answer), "answer", values, to=to)


def answer_subject(campaign: CampaignInfo, answer: Answer) -> str:
    errors = sum(1 for i in answer.issues if i.get("severity") == "error")
    verdict = (f"报告已定稿，第{answer.version}次报送已保存未并入汇总" if answer.held
               else f"已通过审核（第{answer.version}次报送）" if answer.accepted
               else f"未通过审核，{errors}个问题待修改")
    return f"{campaign.year}年政府信息公开工作年度报告：{verdict}（{answer.unit_name or answer.file_name}）"


def compose_chase(config: MailConfig, campaign: CampaignInfo, action: ChaseAction, today: date) -> EmailMessage:
    """A reminder before the deadline, or an escalation to the unit's leader after it (dated the chase's day)."""
    unit = action.unit
    contact = UnitContact(unit.code, unit.name, unit.contact, unit.email, unit.leader, unit.leader_email)
    values = _common(config, campaign, contact, today) | {
        "rejected": unit.status == "rejected", "issues": list(unit.issues),
        "days_left": action.days_left, "days_over": -action.days_left, "leader": unit.leader,
    }
    state = "报送未通过审核待修改" if unit.status == "rejected" else "尚未报送"
    if action.kind == "escalation":
        subject = (f"【逾期督办】{unit.name}{campaign.year}年政府信息公开工作年度报告{state}，"
                   f"已逾期{-action.days_left}天")
        recipients = [(unit.leader or unit.name, a) for a in action.to]
    else:
        left = "今天截止" if action.days_left == 0 else f"距截止还有{action.days_left}天"
        subject = f"【催报提醒】{campaign.year}年政府信息公开工作年度报告{state}（{left}）"
        recipients = [(unit.name, a) for a in action.to]
    return _message(config, subject, action.kind, values, to=recipients, cc=[(unit.name, a) for a in action.cc])


def compose_digest(config: MailConfig, campaign: CampaignInfo, plan: ChasePlan, sent: list[DigestRow],
                   failed: list[DigestRow]) -> EmailMessage:
    """The coordinator's daily digest: today's reminders, the overdue units, mail that could not be delivered."""
    overdue = [{"code": u.code, "name": u.name, "contact": u.contact, "leader": u.leader,
                "state": f"未通过审核，{len(u.issues)}个问题未修改" if u.status == "rejected" else "未报送"}
               for u in plan.overdue]
    values = _common(config, campaign, None, plan.today) | {
        "expected": plan.expected, "accepted": plan.accepted, "rejected": list(plan.rejected),
        "missing": [u for u in (*plan.overdue, *(a.unit for a in plan.actions)) if u.status == "issued"],
        "days_over": (plan.today - plan.deadline).days, "overdue": overdue,
        "sent": [{"code": r.code, "name": r.name, "reason": r.text, "outcome": r.outcome} for r in sent],
        "failed": [{"code": r.code, "name": r.name, "error": r.text} for r in failed],
    }
    values["missing"] = list({u.code: u for u in values["missing"]}.values())
    subject = (f"{campaign.year}年政府信息公开工作年度报告报送情况日报（{cn_date(plan.today)}）："
               f"已通过{plan.accepted}/{plan.expected}")
    return _message(config, subject, "digest", values, to=[("", config.coordinator_address)])


def cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _common(config: MailConfig, campaign: CampaignInfo, unit: UnitContact | None,
            today: date | None = None) -> dict[str, Any]:
    return {
        "year": campaign.year, "deadline": cn_date(campaign.deadline), "contact": config.contact,
        "sender": config.from_name, "today": cn_date(today or datetime.now(CHINA).date()),
        "unit_name": unit.name if unit else "", "contact_person": unit.contact if unit else "",
        "upload_url": personal_link(config, campaign, unit.code) if unit else "",
    }


def _message(config: MailConfig, subject: str, template: str, values: dict[str, Any], *,
             to: list[tuple[str, str]], cc: list[tuple[str, str]] | None = None,
             attachment: MIMEPart | None = None) -> EmailMessage:
    headers = [("Subject", text_header("Subject", subject)), ("Date", format_datetime(datetime.now(CHINA)))]
    fallback: list[tuple[str, list[tuple[str, str]]]] = []  # an address the fast path does not take
    recipients: list[str] = []
    for name, pairs in (("From", [(config.from_name, config.from_address)]), ("To", to), ("Cc", cc or [])):
        addressed = [(display, addr) for display, addr in pairs if addr]
        if name != "From":
            recipients += [addr for _, addr in addressed]
        if addressed:
            wire = address_header(name, addressed)
            if wire is None:
                fallback.append((name, addressed))
            else:
                headers.append((name, wire))
    message = new_message(headers, recipients, subject)
    for name, addressed in fallback:
        message[name] = [Address(display, addr_spec=addr) for display, addr in addressed]
    values = values | {"subject": subject}
    text = re.sub(r"\n{3,}", "\n\n", _text.get_template(f"{template}.txt.j2").render(values))
    bodies = [text_part("plain", text), text_part("html", _html.get_template(f"{template}.html.j2").render(values))]
    if attachment is None:
        set_multipart(message, "alternative", bodies)
    else:
        set_multipart(message, "mixed", [multipart("alternative", bodies), attachment])
    return message


def compile_templates(*names: str) -> None:
    """Compile these messages' templates now (Jinja compiles a template at its first use, ~10 ms each)."""
    for name in names:
        _text.get_template(f"{name}.txt.j2")
        _html.get_template(f"{name}.html.j2")


def recipients_of(message: EmailMessage) -> list[str]:
    """Every address the message is for (To and Cc)."""
    if isinstance(message, OutgoingMessage):
        return list(message.recipients)
    found: list[str] = []
    for header in ("To", "Cc"):
        for address in getattr(message[header], "addresses", ()):
            found.append(address.addr_spec)
    return found


def subject_of(message: EmailMessage) -> str:
    """The message's subject as the reader sees it."""
    if isinstance(message, OutgoingMessage):
        return message.subject
    return str(message["Subject"] or "")
