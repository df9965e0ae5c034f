"""A real SMTP server on loopback (aiosmtpd) for the mail tests, with the misbehaviours real servers have."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.ports import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Behaviour:
    """What the server does: refuse some recipients for good, answer DATA with 4xx a number of times."""

    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply, e.g. "550 5.1.1 no such user"
    busy_times: int = 0  # answer the next n DATA commands with 451
    data_attempts: int = 0
    received: list[Received] = field(default_factory=list)


class Handler:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: Any) -> str:
        if address in self.behaviour.refuse:
            return self.behaviour.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.behaviour.data_attempts += 1
        if self.behaviour.busy_times > 0:
            self.behaviour.busy_times -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        self.behaviour.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Message accepted"


@contextmanager
def smtp_server(behaviour: Behaviour | None = None, *, tls: tuple[Path, Path] | None = None,
                login: tuple[str, str] | None = None) -> Iterator[tuple[int, Behaviour]]:
    """Serve SMTP on 127.0.0.1 (STARTTLS with tls=(cert, key), AUTH with login=(user, password))."""
    behaviour = behaviour or Behaviour()
    kwargs: dict[str, Any] = {}
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        kwargs.update(tls_context=context, require_starttls=True)
    if login:
        def authenticate(*args: Any) -> AuthResult:  # (server, session, envelope, mechanism, data)
            data = args[-1]
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=bool(tls))
    port = free_port()
    controller = Controller(Handler(behaviour), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, behaviour
    finally:
        controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate also serving as the client's CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
