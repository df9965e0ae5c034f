"""Settings: one place that reads the environment (NIANBAO_*). Flows read them and pass plain values down."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NIANBAO_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("var"), description="Data folder: database, campaigns, archive, reports")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the project database; default: SQLite file in the data folder"
    )
    county_name: str = Field(default="示范县", description="County name as it heads the report, e.g. 息县")
    batch_size: int = Field(default=200, ge=1, description="Workbooks per Prefect task when issuing or ingesting")
    max_upload_bytes: int = Field(default=5_000_000, ge=1, description="Largest returned file that is parsed")
    docx_template: Path | None = Field(default=None, description="The office's own Word template for the reports "
                                       "(from `nianbao docx-template`); default: the packaged one")
    dask_address: str | None = Field(
        default=None, description="Where the unit reports' batches run: a Dask scheduler (tcp://host:8786), or "
        "'local' for a cluster of this machine's cores started for the run; unset: in the flow's own process. "
        "Needs the dask extra (pip install -e '.[dask]')")
    dask_workers: int | None = Field(default=None, ge=1, description="Worker processes of the 'local' Dask cluster; "
                                     "default: one a core")

    # mail: with no SMTP host, every message is written as an .eml file to the campaign's outbox/mail folder
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: write .eml files instead")
    smtp_port: int | None = Field(default=None, description="Default: 465 for ssl, 587 for starttls, 25 for none")
    smtp_security: Literal["none", "starttls", "ssl"] = Field(default="starttls", description="none|starttls|ssl")
    smtp_user: str = Field(default="", description="SMTP login; empty: no AUTH")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password (never logged)")
    smtp_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for the SMTP server")
    smtp_ca_file: Path | None = Field(default=None, description="CA bundle for a server with an internal CA")
    mail_from: str = Field(default="xxgk@localhost", description="From address of every message")
    mail_from_name: str = Field(default="县人民政府办公室（政务公开办）", description="Display name of the sender")
    coordinator_email: str = Field(default="", description="Who gets the daily digest; default: the From address")
    office_contact: str = Field(default="县人民政府办公室政务公开股", description="Contact line in every message")
    portal_base_url: str = Field(default="http://127.0.0.1:8765", description="Base URL of the upload page")
    portal_upload_limit: int = Field(default=10, ge=1, description="Uploads one unit's link may make in the window")
    portal_upload_window: int = Field(default=600, ge=1, description="Seconds of the upload limit's window")
    reminder_days: Annotated[list[int], NoDecode] = Field(
        default=[7, 3, 1], description="Days before the deadline on which late units are reminded, e.g. 7,3,1")
    mail_retries: int = Field(default=3, ge=0, description="Retries of a temporary SMTP failure, with backoff")

    # mailbox in: with no IMAP host, the mailbox is not polled (returns come by the inbox folder and the upload page)
    imap_host: str | None = Field(default=None, description="IMAP server whose folder holds the units' replies")
    imap_port: int | None = Field(default=None, description="Default: 993 for ssl, 143 for starttls and plain")
    imap_security: Literal["ssl", "starttls", "plain"] = Field(
        default="ssl", description="ssl|starttls|plain (plain only to a server on this machine)")
    imap_user: str = Field(default="", description="IMAP login")
    imap_password: SecretStr = Field(default=SecretStr(""), description="IMAP password (never logged)")
    imap_folder: str = Field(default="INBOX", description="Folder polled for replies")
    imap_processed_folder: str | None = Field(default=None, description="Move processed messages here; unset: keep")
    imap_ca_file: Path | None = Field(default=None, description="CA bundle for an IMAP server with an internal CA")

    @field_validator("reminder_days", mode="before")
    @classmethod
    def _days_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace("，", ",").split(",") if part.strip()]
        return value

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'nianbao.db').resolve()}"

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    def campaign_dir(self, year: int) -> Path:
        return self.home / "campaigns" / str(year)

    def inbox_dir(self, year: int) -> Path:
        return self.campaign_dir(year) / "inbox"

    def outbox_dir(self, year: int) -> Path:
        return self.campaign_dir(year) / "outbox"

    def reports_dir(self, year: int) -> Path:
        return self.campaign_dir(year) / "reports"

    def unit_reports_dir(self, year: int) -> Path:
        return self.outbox_dir(year) / "unit-reports"

    def mail_dir(self, year: int) -> Path:
        return self.outbox_dir(year) / "mail"


@lru_cache
def get_settings() -> Settings:
    """The settings of this process (tests build their own Settings instead)."""
    return Settings()
