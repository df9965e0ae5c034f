"""Settings: one place that reads the environment (NIANBAO_*). Flows read them and pass plain values down."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NIANBAO_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("var"), description="Data folder: database, campaigns, archive, reports")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the project database; default: SQLite file in the data folder"
    )
    county_name: str = Field(default="示范县", description="County name as it heads the report, e.g. 息县")
    batch_size: int = Field(default=200, ge=1, description="Workbooks per Prefect task when issuing or ingesting")
    max_upload_bytes: int = Field(default=5_000_000, ge=1, description="Largest returned file that is parsed")

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


@lru_cache
def get_settings() -> Settings:
    """The settings of this process (tests build their own Settings instead)."""
    return Settings()
