"""Send a message once per event: over SMTP when a server is configured, otherwise as an .eml file.

    MailError                 a message could not be delivered (never carries the SMTP password)
     ├── TemporaryMailError   4xx, connection refused, timeout, dropped connection: retried with backoff
     ├── PermanentMailError   5xx for this message or its recipients: recorded, on the assignment too
     └── MailSetupError       login refused, no STARTTLS, certificate or From refused: the configuration is
                              wrong, nothing can be sent; recorded as temporary and raised to stop the run

Public API for every channel (the flows, the upload page, the mailbox):
    with open_transport(config) as transport:
        send_message(session=..., transport=transport, message=msg, envelope=Envelope(key, kind, ...))
        send_messages(session=..., transport=transport, batch=[Outgoing(msg, envelope), ...])  # a batch

A batch is claimed in one transaction, committed before anything is sent. Its outcomes are recorded:
- .eml files: once for the whole batch. Writing the file of an event is idempotent (same event, same path), so a
  run that dies between writing and recording leaves the batch's claims pending, and after STALE_CLAIM the next
  run writes the same files again: nothing is delivered twice.
- SMTP: after each message, as before. A run that dies leaves at most the one message it was sending pending (sent
  again, with the same Message-ID, after STALE_CLAIM: the rule of tasks/mail_ledger.py); the batch's other
  claims were either recorded or never tried. Claims still waiting their turn are re-stamped every
  CLAIM_REFRESH, so a slow server never lets them look stale to another run.
When a run stops mid-batch (wrong mail setup, any error) the claims it never tried are given back.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from sqlmodel import Session

from schemas.tables import MailStatus
from tasks.mail_compose import recipients_of, subject_of
from tasks.mail_config import MailConfig
from tasks.mail_ledger import (
    STALE_CLAIM,
    Claim,
    ClaimRequest,
    Envelope,
    Result,
    claim_many,
    message_id,
    record_many,
    refresh_claims,
    release_claims,
)
from tasks.mail_mime import to_bytes

log = logging.getLogger(__name__)
Sleep = Callable[[float], None]
CLAIM_REFRESH = STALE_CLAIM / 3  # plus one message's conversation, still well short of STALE_CLAIM


class MailError(Exception):
    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TemporaryMailError(MailError):
    pass


class PermanentMailError(MailError):
    pass


class MailSetupError(MailError):
    pass


class Transport(Protocol):
    channel: str
    idempotent: bool  # delivering the same event's message again does no harm (the .eml file is rewritten)

    def deliver(self, message: EmailMessage, name: str, sender: str, recipients: list[str]) -> str:
        """Deliver the message; return the .eml path if it was written, else ''. Raise a MailError."""
        ...


@dataclass(frozen=True)
class MailOutcome:
    event_key: str
    status: MailStatus | None  # None: nothing was sent now (already sent, or another run is sending it)
    error: str = ""
    eml_path: str = ""


@dataclass(frozen=True)
class Outgoing:
    """A message and the event it is owed for."""

    message: EmailMessage
    envelope: Envelope


class EmlWriter:
    """The embedded default: each message as an .eml file (opens in Outlook, Foxmail, Thunderbird)."""

    channel = "eml"
    idempotent = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, message: EmailMessage, name: str, sender: str, recipients: list[str]) -> str:  # noqa: ARG002
        path = self.folder / f"{name}.eml"
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")  # unique: two writers never share it
        data = to_bytes(message)
        try:
            partial.write_bytes(data)
        except FileNotFoundError:  # the unit's first message: make its folder (not tried at every message)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
        partial.replace(path)
        return str(path)


class SmtpTransport:
    """One SMTP connection, opened on first use and reused for a batch; reopened after a failure."""

    channel = "smtp"
    idempotent = False

    def __init__(self, config: MailConfig) -> None:
        self.config = config
        self._conn: smtplib.SMTP | None = None

    def deliver(self, message: EmailMessage, name: str, sender: str,  # noqa: ARG002  (name only names .eml files)
                recipients: list[str]) -> str:
        try:
            conn = self._conn or self._connect()
            if sender.isascii() and all(r.isascii() for r in recipients):
                refused = conn.sendmail(sender, recipients, to_bytes(message))
            else:  # an internationalised address: smtplib's own SMTPUTF8 handling
                refused = conn.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise self._classify(exc) from None  # from None: the chained exception could show login details
        if refused:
            log.warning("some recipients refused: %s", _scrub(str(refused), self.config))
        return ""

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        conn: smtplib.SMTP
        if cfg.security == "ssl":
            conn = smtplib.SMTP_SSL(cfg.host or "", cfg.smtp_port, timeout=cfg.timeout, context=context)
        else:
            conn = smtplib.SMTP(cfg.host or "", cfg.smtp_port, timeout=cfg.timeout)
        try:
            conn.ehlo()
            if cfg.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
            if cfg.user:
                conn.login(cfg.user, cfg.password.get_secret_value())
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _classify(self, exc: BaseException) -> MailError:
        text = _scrub(_describe(exc), self.config)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return MailSetupError(f"SMTP login refused: {text}", exc.smtp_code)
        if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
            return MailSetupError(f"SMTP server setup: {text}")
        if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code >= 500:
            return MailSetupError(f"From address refused: {text}", exc.smtp_code)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                return PermanentMailError(text, max(codes))
            return TemporaryMailError(text, min(codes) if codes else None)
        code = getattr(exc, "smtp_code", None)
        if isinstance(code, int) and code >= 500 and not isinstance(exc, smtplib.SMTPConnectError):
            return PermanentMailError(text, code)
        return TemporaryMailError(text, code if isinstance(code, int) else None)


@contextmanager
def open_transport(config: MailConfig) -> Iterator[Transport]:
    """SMTP when a host is configured, else the .eml writer; the connection is closed on the way out."""
    if not config.uses_smtp:
        yield EmlWriter(config.eml_folder)
        return
    transport = SmtpTransport(config)
    try:
        yield transport
    finally:
        transport.close()


def send_message(*, session: Session, transport: Transport, message: EmailMessage, envelope: Envelope,
                 from_address: str = "", retries: int = 3, backoff: float = 2.0,
                 sleep: Sleep = time.sleep) -> MailOutcome:
    """Send the message owed for this event unless it was already; retry temporary failures with backoff.

    Commits the session: the claim before sending, the outcome after. Raises MailSetupError (after recording it)
    when the mail configuration is wrong, since every further message would fail the same way.
    """
    [outcome] = send_messages(session=session, transport=transport, batch=[Outgoing(message, envelope)],
                              from_address=from_address, retries=retries, backoff=backoff, sleep=sleep)
    return outcome


def send_messages(*, session: Session, transport: Transport, batch: list[Outgoing], from_address: str = "",
                  retries: int = 3, backoff: float = 2.0, sleep: Sleep = time.sleep) -> list[MailOutcome]:
    """Send the message owed for each event of the batch unless it was already (one outcome per item, in order).

    Commits the session: the batch's claims before anything is sent, the outcomes as the module docstring says.
    Raises MailSetupError (after recording it, and giving back the claims not tried) when the mail configuration
    is wrong, since every further message would fail the same way.
    """
    recipients = [recipients_of(item.message) for item in batch]
    claims = claim_many(session=session, requests=[
        ClaimRequest(item.envelope, ", ".join(to), subject_of(item.message)) for item, to in zip(batch, recipients,
                                                                                                strict=True)])
    outcomes = [MailOutcome(item.envelope.event_key, None) for item in batch]
    todo = [(n, c) for n, c in enumerate(claims) if c is not None]
    unrecorded: list[Result] = []
    tried = 0
    down: TemporaryMailError | None = None  # the server failed one message through all its retries
    stamped = time.monotonic()
    try:
        for n, held in todo:
            if not transport.idempotent and time.monotonic() - stamped > CLAIM_REFRESH.total_seconds():
                refresh_claims(session=session, claims=[c for _, c in todo[tried:]])
                stamped = time.monotonic()
            tried += 1
            result, stop = _send_one(transport, batch[n].message, held, recipients[n], from_address, retries,
                                     backoff, sleep, down)
            if result.status is MailStatus.FAILED_TEMPORARY and result.attempts > retries:
                # the rest of the batch is not tried (a dead server would cost each its backoff, or its timeout):
                # they stay owed, for the next run
                down = TemporaryMailError(result.error)
            unrecorded.append(result)
            outcomes[n] = MailOutcome(held.envelope.event_key, result.status, result.error, result.eml_path)
            if stop is not None:
                raise stop
            if not transport.idempotent:
                record_many(session=session, results=unrecorded)
                unrecorded = []
    except BaseException:
        session.rollback()
        record_many(session=session, results=unrecorded)
        release_claims(session=session, claims=[c for _, c in todo[tried:]])
        raise
    record_many(session=session, results=unrecorded)
    return outcomes


def deliver_claimed(transport: Transport, message: EmailMessage, held: Claim, recipients: list[str],
                    from_address: str, *, retries: int, backoff: float, sleep: Sleep) -> Result:
    """Deliver one message claimed by the caller (who records the result) through a transport that cannot be
    misconfigured: the .eml writer, which the ingest flow's worker processes use for the answer mails."""
    result, stop = _send_one(transport, message, held, recipients, from_address, retries, backoff, sleep)
    if stop is not None:
        raise stop
    return result


def _send_one(transport: Transport, message: EmailMessage, held: Claim, recipients: list[str], from_address: str,
              retries: int, backoff: float, sleep: Sleep,
              down: TemporaryMailError | None = None) -> tuple[Result, MailSetupError | None]:
    """Deliver one claimed message, retrying temporary failures: the outcome to record, and the setup error that
    must stop the batch (raised by the caller once the outcome is recorded)."""
    envelope = held.envelope
    sender = from_address or _from_of(message)
    if "Message-ID" in message:
        mid = str(message["Message-ID"])
    else:
        mid = message_id(envelope.event_key, sender)
        message.set_raw("Message-ID", mid)  # as is: a plain ASCII token, nothing to encode or fold
    if not recipients:
        return Result(held, MailStatus.FAILED_PERMANENT, transport.channel, 0, "未登记电子邮箱", message_id=mid), None
    if down is not None:
        return _failed(held, transport, MailStatus.FAILED_TEMPORARY, 0, down, mid), None
    attempts = 0
    while True:
        attempts += 1
        try:
            path = transport.deliver(message, eml_name(envelope), sender, recipients)
        except TemporaryMailError as exc:
            if attempts <= retries:
                log.info("mail %s: temporary failure (%s), retry %d of %d", envelope.event_key, exc.reason,
                         attempts, retries)
                sleep(backoff * 2 ** (attempts - 1))
                continue
            return _failed(held, transport, MailStatus.FAILED_TEMPORARY, attempts, exc, mid), None
        except PermanentMailError as exc:
            return _failed(held, transport, MailStatus.FAILED_PERMANENT, attempts, exc, mid), None
        except MailSetupError as exc:
            return _failed(held, transport, MailStatus.FAILED_TEMPORARY, attempts, exc, mid), exc
        status = MailStatus.WRITTEN if path else MailStatus.SENT
        return Result(held, status, transport.channel, attempts, eml_path=path, message_id=mid), None


def eml_name(envelope: Envelope) -> str:
    """Where the .eml of an event goes under the mail folder: one folder per unit, one file per event."""
    label = {"issue": "下发", "receipt": "回执", "rejection": "问题清单", "reminder": "催报", "escalation": "督办",
             "digest": "日报"}.get(envelope.kind, envelope.kind)
    safe = re.sub(r"[^0-9A-Za-z_-]+", "_", envelope.event_key)
    return f"{envelope.unit_code or '_coordinator'}/{label}-{safe}"


def _failed(held: Claim, transport: Transport, status: MailStatus, attempts: int, exc: MailError,
            mid: str) -> Result:
    log.warning("mail %s to %s: %s after %d attempt(s): %s", held.envelope.event_key, held.recipient, status.value,
                attempts, exc.reason)
    return Result(held, status, transport.channel, attempts, exc.reason, message_id=mid)


def _from_of(message: EmailMessage) -> str:
    addresses = getattr(message["From"], "addresses", ())
    return addresses[0].addr_spec if addresses else ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(
            exc.smtp_error)
        return f"{exc.smtp_code} {detail}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{addr}: {code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
                         for addr, (code, msg) in exc.recipients.items())
    return f"{type(exc).__name__}: {exc}"


def _scrub(text: str, config: MailConfig) -> str:
    """Never let the password into a log line or an error (some servers echo what they were sent)."""
    secret = config.password.get_secret_value()
    return text.replace(secret, "********") if secret else text
