"""The IMAP mailbox the units reply to: connect (SSL, or STARTTLS), list new messages by UID, fetch, mark done.

Only the IMAP conversation lives here; what a message means is tasks/mailbox_intake.py. Messages are fetched with
BODY.PEEK (not marked read) and flagged \\Seen only once processed, so a person watching the mailbox in a mail client
sees what is still waiting. Which messages are new is decided by the ledger (highest UID taken under the folder's
UIDVALIDITY), not by flags: a person opening a message in a mail client must not hide it from the poller.
"""

from __future__ import annotations

import base64
import imaplib
import ipaddress
import re
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from pydantic import SecretStr

from schemas.settings import Settings

DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "plain": 143}


class MailboxError(RuntimeError):
    """The mailbox cannot be used as configured (refused login, no such folder, insecure setting)."""


@dataclass(frozen=True)
class MailboxConfig:
    host: str
    user: str
    password: SecretStr = field(repr=False)
    port: int | None = None
    security: str = "ssl"  # ssl | starttls | plain
    folder: str = "INBOX"
    processed_folder: str | None = None
    ca_file: Path | None = None
    timeout: float = 30.0

    @property
    def name(self) -> str:
        """How the ledger names this mailbox: the same folder of the same account is the same mailbox."""
        return f"{self.user}@{self.host}/{self.folder}"


def mailbox_config(settings: Settings) -> MailboxConfig | None:
    """The mailbox from the settings; None when no IMAP host is configured."""
    if not settings.imap_host:
        return None
    return MailboxConfig(host=settings.imap_host, user=settings.imap_user, password=settings.imap_password,
                         port=settings.imap_port, security=settings.imap_security, folder=settings.imap_folder,
                         processed_folder=settings.imap_processed_folder, ca_file=settings.imap_ca_file)


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes
    arrived: datetime  # the server's INTERNALDATE: when the message reached the mailbox


class Mailbox:
    """One logged-in IMAP session on the configured folder. Use as a context manager."""

    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self.conn = _connect(config)
        try:
            self.conn.login(config.user, config.password.get_secret_value())
            typ, _ = self.conn.select(_quote(config.folder))
            if typ != "OK":
                raise MailboxError(f"IMAP folder {config.folder!r} cannot be opened on {config.host}")
            _, values = self.conn.response("UIDVALIDITY")
            self.uidvalidity = int(values[0]) if values and values[0] else 0
            self.capabilities = {c.upper() for c in self.conn.capabilities}
        except imaplib.IMAP4.error as exc:
            self.conn.shutdown()
            raise MailboxError(f"IMAP login to {config.host} as {config.user!r} failed: {exc}") from None

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.conn.close()
            self.conn.logout()
        except (imaplib.IMAP4.error, OSError):
            self.conn.shutdown()

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs of the messages above last_uid, ascending."""
        typ, data = self.conn.uid("SEARCH", f"UID {last_uid + 1}:*")
        if typ != "OK":
            raise MailboxError(f"IMAP search failed: {data!r}")
        found = [int(n) for n in (data[0] or b"").split()]
        return sorted(uid for uid in found if uid > last_uid)  # 'n:*' always includes the last message

    def fetch(self, uid: int) -> Fetched | None:
        """The message's raw bytes, without marking it read; None if it is gone (expunged meanwhile)."""
        typ, data = self.conn.uid("FETCH", str(uid), "(INTERNALDATE BODY.PEEK[])")
        if typ != "OK":
            raise MailboxError(f"IMAP fetch of UID {uid} failed: {data!r}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                header, raw = item
                stamp = imaplib.Internaldate2tuple(header)
                arrived = datetime.fromtimestamp(time.mktime(stamp), UTC) if stamp else datetime.now(UTC)
                return Fetched(uid, bytes(raw), arrived)
        return None

    def mark_done(self, uid: int) -> None:
        """Flag the message read and, if a processed folder is configured, move it there."""
        self.conn.uid("STORE", str(uid), "+FLAGS", "(\\Seen)")
        target = self.config.processed_folder
        if not target:
            return
        if "MOVE" in self.capabilities:
            typ, data = self.conn.uid("MOVE", str(uid), _quote(target))
        else:  # COPY, then flag deleted; expunged by the server's own rules, never by a blind EXPUNGE here
            typ, data = self.conn.uid("COPY", str(uid), _quote(target))
            if typ == "OK":
                self.conn.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        if typ != "OK":
            raise MailboxError(f"IMAP cannot move UID {uid} to {target!r}: {data!r}")


def _connect(config: MailboxConfig) -> imaplib.IMAP4:
    port = config.port or DEFAULT_PORTS[config.security]
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    try:
        if config.security == "ssl":
            return imaplib.IMAP4_SSL(config.host, port, ssl_context=context, timeout=config.timeout)
        if config.security == "plain" and not _loopback(config.host):
            raise MailboxError("imap_security=plain sends the password in clear: only to a server on this machine")
        conn = imaplib.IMAP4(config.host, port, timeout=config.timeout)
        if config.security == "starttls":
            conn.starttls(ssl_context=context)
        return conn
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"IMAP server {config.host}:{port} ({config.security}) unreachable: {exc}") from exc


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quote(folder: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3), e.g. 年报."""
    encoded = re.sub(r"&", "&-", folder)
    encoded = re.sub(r"[^\x20-\x7e]+", lambda m: "&" + _b64_utf16(m.group(0)) + "-", encoded)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b64_utf16(text: str) -> str:
    return base64.b64encode(text.encode("utf-16-be")).decode("ascii").rstrip("=").replace("/", ",")
