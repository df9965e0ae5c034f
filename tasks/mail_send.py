"""Send a message once per event: over SMTP when a server is configured, otherwise as an .eml file.

    MailError                 a message could not be delivered (never carries the SMTP password)
     ├── TemporaryMailError   4xx, connection refused, timeout, dropped connection: retried with backoff
     ├── PermanentMailError   5xx for this message or its recipients: recorded, on the assignment too
     └── MailSetupError       login refused, no STARTTLS, certificate or From refused: the configuration is
                              wrong, nothing can be sent; recorded as temporary and raised to stop the run

Public API for every channel (the flows, the upload page, the mailbox):
    with open_transport(config) as transport:
        send_message(session=..., transport=transport, message=msg, envelope=Envelope(key, kind, ...))
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
from email.policy import SMTP
from pathlib import Path
from typing import Protocol

from sqlmodel import Session

from schemas.tables import MailMessage, MailStatus
from tasks.mail_compose import recipients_of
from tasks.mail_config import MailConfig
from tasks.mail_ledger import Envelope, claim, message_id, record

log = logging.getLogger(__name__)
Sleep = Callable[[float], None]


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

    def deliver(self, message: EmailMessage, name: str) -> str:
        """Deliver the message; return the .eml path if it was written, else ''. Raise a MailError."""
        ...


@dataclass(frozen=True)
class MailOutcome:
    event_key: str
    status: MailStatus | None  # None: nothing was sent now (already sent, or another run is sending it)
    error: str = ""
    eml_path: str = ""


class EmlWriter:
    """The embedded default: each message as an .eml file (opens in Outlook, Foxmail, Thunderbird)."""

    channel = "eml"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, message: EmailMessage, name: str) -> str:
        path = self.folder / f"{name}.eml"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")  # unique: two writers never share it
        partial.write_bytes(message.as_bytes(policy=SMTP))
        partial.replace(path)
        return str(path)


class SmtpTransport:
    """One SMTP connection, opened on first use and reused for a batch; reopened after a failure."""

    channel = "smtp"

    def __init__(self, config: MailConfig) -> None:
        self.config = config
        self._conn: smtplib.SMTP | None = None

    def deliver(self, message: EmailMessage, name: str) -> str:  # noqa: ARG002  (name only names .eml files)
        try:
            conn = self._conn or self._connect()
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
    recipients = recipients_of(message)
    row = claim(session=session, envelope=envelope, recipient=", ".join(recipients),
                subject=str(message["Subject"] or ""))
    if row is None:
        return MailOutcome(envelope.event_key, None)
    if "Message-ID" not in message:
        message["Message-ID"] = message_id(envelope.event_key, from_address or _from_of(message))
    row.message_id = str(message["Message-ID"])
    if not recipients:
        error = "未登记电子邮箱"
        record(session=session, row=row, status=MailStatus.FAILED_PERMANENT, channel=transport.channel, attempts=0,
               error=error)
        return MailOutcome(envelope.event_key, MailStatus.FAILED_PERMANENT, error)
    attempts = 0
    while True:
        attempts += 1
        try:
            path = transport.deliver(message, eml_name(envelope))
        except TemporaryMailError as exc:
            if attempts <= retries:
                log.info("mail %s: temporary failure (%s), retry %d of %d", envelope.event_key, exc.reason,
                         attempts, retries)
                sleep(backoff * 2 ** (attempts - 1))
                continue
            return _failed(session, row, transport, MailStatus.FAILED_TEMPORARY, attempts, exc)
        except PermanentMailError as exc:
            return _failed(session, row, transport, MailStatus.FAILED_PERMANENT, attempts, exc)
        except MailSetupError as exc:
            _failed(session, row, transport, MailStatus.FAILED_TEMPORARY, attempts, exc)
            raise
        status = MailStatus.WRITTEN if path else MailStatus.SENT
        record(session=session, row=row, status=status, channel=transport.channel, attempts=attempts, eml_path=path)
        return MailOutcome(envelope.event_key, status, eml_path=path)


def eml_name(envelope: Envelope) -> str:
    """Where the .eml of an event goes under the mail folder: one folder per unit, one file per event."""
    label = {"issue": "下发", "receipt": "回执", "rejection": "问题清单", "reminder": "催报", "escalation": "督办",
             "digest": "日报"}.get(envelope.kind, envelope.kind)
    safe = re.sub(r"[^0-9A-Za-z_-]+", "_", envelope.event_key)
    return f"{envelope.unit_code or '_coordinator'}/{label}-{safe}"


def _failed(session: Session, row: MailMessage, transport: Transport, status: MailStatus, attempts: int,
            exc: MailError) -> MailOutcome:
    log.warning("mail %s to %s: %s after %d attempt(s): %s", row.event_key, row.recipient, status.value, attempts,
                exc.reason)
    record(session=session, row=row, status=status, channel=transport.channel, attempts=attempts, error=exc.reason)
    return MailOutcome(row.event_key, status, exc.reason)


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
