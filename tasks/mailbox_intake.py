"""What a message from the mailbox becomes: archived whole, recorded once in the ledger, each workbook attachment
taken in through tasks/intake.py (channel "mail", the From address as sender), and the sender answered.

Order matters for "nothing is lost" and "processed once":
1. the raw message is archived (content-addressed) before anything parses it;
2. a ledger row keyed by (mailbox, UIDVALIDITY, UID) is committed: the claim. A second poll, or a second run at
   the same time, hits the unique key and leaves the message alone;
3. the attachments' submissions and the ledger row's 'processed' state are committed in one transaction;
4. each workbook's answer (receipt or issue list) is written to the outbox and handed to the answer mailer, which
   mails it to the unit and to the sender; a mail with no workbook, or with other attachments, gets a polite note
   through the reply sender.
A run that dies between 2 and 3 leaves a 'received' row; a later poll takes it again from the archive once the claim
is stale (the intake recognises files it already stored by their sha256).

Mail that a machine wrote (auto-replies, bounces, out-of-office) is recorded and kept but never answered: answering
it would start a mail loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from schemas.form_spec import FormSpec
from schemas.tables import MailboxMessage, Unit
from tasks.answers import CHINA, SENDER, write_answer
from tasks.archive import archive_bytes, receive_bytes, safe_name
from tasks.ingest import IngestContext, examine_received
from tasks.intake import answer_for, store_received
from tasks.submissions import Stored

log = logging.getLogger(__name__)

# attempts at returning the workbook: taken in, so the unit is told exactly what is wrong (e.g. saved as .xls)
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".et", ".ods")
STALE_CLAIM = timedelta(minutes=15)

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), undefined=StrictUndefined,
                   keep_trailing_newline=True, autoescape=False)


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    sender: str  # the From address, lower case
    sender_name: str
    subject: str
    workbooks: list[Attachment]
    others: list[str]  # names of the attachments that are not workbooks
    automatic: bool  # written by a machine: never answered


@dataclass(frozen=True)
class MailReply:
    """A note owed to a message's sender when it brought no workbook, or other files besides (Chinese text)."""

    ledger_id: int  # the MailboxMessage row: one note per message, however often it is polled
    to: str
    subject: str
    text: str
    in_reply_to: str
    unit_code: str | None


ReplySender = Callable[[MailReply], None]
AnswerMailer = Callable[[list[Stored]], None]  # mails the receipts / issue lists of stored returns


@dataclass(frozen=True)
class MailOutcome:
    uid: int
    state: str  # processed / duplicate / auto-reply
    sender: str
    submission_ids: list[int] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    held: int = 0
    duplicates: int = 0
    others: list[str] = field(default_factory=list)
    replied: bool = False


def parse_mail(raw: bytes) -> ParsedMail:
    """Headers and attachments of a raw message (RFC 2047/2231 names decoded by the email package)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    name, address = parseaddr(str(message.get("reply-to") or message.get("from") or ""))
    workbooks: list[Attachment] = []
    others: list[str] = []
    for part in message.walk():  # walks into forwarded messages (message/rfc822) too
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if not filename:
            continue
        if part.get("content-id") and part.get_content_disposition() == "inline" \
                and part.get_content_maintype() == "image":
            continue  # a logo in the signature, not an attachment the unit chose
        name = safe_name(filename)  # a sender's name may hold a path, line breaks or direction overrides
        if Path(name).suffix.lower() in WORKBOOK_SUFFIXES:
            payload = part.get_payload(decode=True)
            workbooks.append(Attachment(name, payload if isinstance(payload, bytes) else b""))
        else:
            others.append(name)
    return ParsedMail(
        message_id=str(message.get("message-id") or "").strip()[:300], sender=address.strip().lower(),
        sender_name=name, subject=str(message.get("subject") or "").strip(), workbooks=workbooks, others=others,
        automatic=_automatic(message, address),
    )


def _automatic(message: EmailMessage, address: str) -> bool:
    auto = str(message.get("auto-submitted") or "no").strip().lower()
    precedence = str(message.get("precedence") or "").strip().lower()
    local = address.split("@")[0].lower()
    return (auto != "no" or precedence in ("bulk", "junk", "list") or bool(message.get("x-autoreply"))
            or bool(message.get("x-autorespond")) or local in ("mailer-daemon", "postmaster", "noreply", "no-reply")
            or message.get_content_type() == "multipart/report" or not address)


@dataclass
class MailIntake:
    """Takes the messages of one poll of one campaign year; see the module's docstring for the order of steps."""

    engine: Engine
    form: FormSpec
    context: IngestContext
    archive_dir: Path
    outbox: Path
    max_bytes: int
    reply: ReplySender
    mail_answers: AnswerMailer
    never_reply_to: frozenset[str] = frozenset()  # our own addresses

    def last_uid(self, mailbox: str, uidvalidity: int) -> int:
        with Session(self.engine) as session:
            found = session.exec(select(func.max(MailboxMessage.uid)).where(
                MailboxMessage.mailbox == mailbox, MailboxMessage.uidvalidity == uidvalidity)).one()
        return int(found or 0)

    def take(self, raw: bytes, *, mailbox: str, uidvalidity: int, uid: int, arrived: datetime) -> MailOutcome | None:
        """Archive, claim and process one message; None if it was already taken (by an earlier poll or another run)."""
        digest, archived = archive_bytes(raw, self.archive_dir, ".eml")
        mail = parse_mail(raw)
        with Session(self.engine) as session:
            row = MailboxMessage(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid,
                                 campaign_id=self.context.campaign.id, message_id=mail.message_id,
                                 sender=mail.sender, subject=mail.subject[:500], received_at=arrived,
                                 raw_sha256=digest, archive_path=str(archived), other_attachments=mail.others)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return None
            assert row.id is not None
            row_id = row.id
            # the same bytes under another UID: a copy of the message, or a folder rebuilt with a new UIDVALIDITY
            earlier = session.exec(select(MailboxMessage.id).where(MailboxMessage.raw_sha256 == digest,
                                                                   MailboxMessage.id != row_id)).first()
        if earlier is not None:
            self._finish(row_id, "duplicate", [])
            return MailOutcome(uid, "duplicate", mail.sender)
        return self._process(row_id, uid, mail, arrived)

    def retry_stale(self, mailbox: str, now: datetime | None = None) -> list[MailOutcome]:
        """Messages a run claimed and never finished (it died): take them again from the archive."""
        moment = now or datetime.now(UTC)
        outcomes = []
        with Session(self.engine) as session:
            stale = session.exec(select(MailboxMessage).where(
                MailboxMessage.mailbox == mailbox, MailboxMessage.state == "received",
                col(MailboxMessage.claimed_at) < moment - STALE_CLAIM)).all()
        for row in stale:
            assert row.id is not None
            with Session(self.engine) as session:  # re-claim only if no other run did meanwhile
                taken = session.connection().execute(
                    update(MailboxMessage).where(col(MailboxMessage.id) == row.id,
                                                 col(MailboxMessage.claimed_at) == row.claimed_at)
                    .values(claimed_at=moment)).rowcount
                session.commit()
            if taken == 1:
                log.warning("mailbox: taking message UID %s again (its run did not finish)", row.uid)
                mail = parse_mail(Path(row.archive_path).read_bytes())
                outcomes.append(self._process(row.id, row.uid, mail, row.received_at.replace(tzinfo=UTC)))
        return outcomes

    def _process(self, row_id: int, uid: int, mail: ParsedMail, arrived: datetime) -> MailOutcome:
        if mail.automatic:
            log.info("mailbox: UID %s from %r is automatic mail; kept, not answered", uid, mail.sender)
            self._finish(row_id, "auto-reply", [])
            return MailOutcome(uid, "auto-reply", mail.sender, others=mail.others)
        received = [(a.data, receive_bytes(a.data, name=a.name, archive_dir=self.archive_dir, channel="mail",
                                           sender=mail.sender, received_at=arrived)) for a in mail.workbooks]
        examined = examine_received(received, form=self.form, context=self.context, max_bytes=self.max_bytes)
        with Session(self.engine) as session:
            stored = store_received(session=session, context=self.context, examinations=examined)
            row = session.get_one(MailboxMessage, row_id)
            row.state, row.processed_at = "processed", datetime.now(UTC)
            row.submission_ids = [s.submission_id for s in stored]
            session.add(row)
            session.commit()  # the submissions and the ledger's 'processed' land together
            unit_name, unit_code = self._unit_of(session, mail.sender)
        for item in stored:
            write_answer(answer_for(item, self.context), self.outbox)
        replied = False
        if mail.sender not in self.never_reply_to:
            if stored:
                self.mail_answers(stored)
            if mail.others or not stored:
                self.reply(self._note(row_id, mail, unit_name, unit_code))
            replied = True
        return MailOutcome(
            uid, "processed", mail.sender, [s.submission_id for s in stored],
            accepted=sum(1 for s in stored if not s.duplicate and s.verdict.value == "accepted"),
            rejected=sum(1 for s in stored if not s.duplicate and s.verdict.value == "rejected"),
            held=sum(1 for s in stored if not s.duplicate and s.verdict.value == "held"),
            duplicates=sum(1 for s in stored if s.duplicate), others=mail.others, replied=replied,
        )

    def _finish(self, row_id: int, state: str, submission_ids: list[int]) -> None:
        with Session(self.engine) as session:
            row = session.get_one(MailboxMessage, row_id)
            row.state, row.processed_at, row.submission_ids = state, datetime.now(UTC), submission_ids
            session.add(row)
            session.commit()

    def _unit_of(self, session: Session, address: str) -> tuple[str | None, str | None]:
        """The unit whose registered contact address sent the mail, for a greeting by name."""
        for unit in session.exec(select(Unit).where(func.lower(Unit.email) == address)).all():
            return unit.name, unit.code
        return None, None

    def _note(self, row_id: int, mail: ParsedMail, unit_name: str | None, unit_code: str | None) -> MailReply:
        text = _env.get_template("mailbox_reply.txt.j2").render(
            greeting=unit_name, subject=mail.subject, workbooks=len(mail.workbooks), others=mail.others,
            year=self.context.campaign.year, sender=SENDER, today=datetime.now(CHINA).strftime("%Y年%m月%d日"),
        )
        subject = f"回复：{mail.subject}" if mail.subject else f"回复：{self.context.campaign.year}年度年报报送"
        return MailReply(ledger_id=row_id, to=mail.sender, subject=subject, text=text, in_reply_to=mail.message_id,
                         unit_code=unit_code)
