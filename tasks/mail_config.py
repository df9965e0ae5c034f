"""What sending mail needs to know, as one value built from the settings and passed down (tasks read no env)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from schemas.settings import Settings

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


@dataclass(frozen=True)
class MailConfig:
    """SMTP server and sender; with no host, messages are written as .eml files to eml_folder."""

    eml_folder: Path
    host: str | None = None
    port: int | None = None
    security: str = "starttls"  # none | starttls | ssl
    user: str = ""
    password: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    timeout: float = 30.0
    ca_file: Path | None = None
    from_address: str = "xxgk@localhost"
    from_name: str = "县人民政府办公室（政务公开办）"
    coordinator: str = ""
    contact: str = "县人民政府办公室政务公开股"
    portal_base_url: str = "http://127.0.0.1:8765"
    reminder_days: tuple[int, ...] = (7, 3, 1)
    retries: int = 3
    backoff_seconds: float = 2.0  # first wait after a temporary failure; doubled on each retry

    @property
    def uses_smtp(self) -> bool:
        return bool(self.host)

    @property
    def smtp_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def coordinator_address(self) -> str:
        """Who gets the digest: the coordinator, or else the office's own From address."""
        return self.coordinator or self.from_address


def mail_config(settings: Settings, year: int) -> MailConfig:
    """The mail configuration of a campaign year (its .eml folder) from the settings."""
    return MailConfig(
        eml_folder=settings.mail_dir(year), host=settings.smtp_host or None, port=settings.smtp_port,
        security=settings.smtp_security, user=settings.smtp_user, password=settings.smtp_password,
        timeout=settings.smtp_timeout, ca_file=settings.smtp_ca_file, from_address=settings.mail_from,
        from_name=settings.mail_from_name, coordinator=settings.coordinator_email, contact=settings.office_contact,
        portal_base_url=settings.portal_base_url, reminder_days=tuple(settings.reminder_days),
        retries=settings.mail_retries,
    )
