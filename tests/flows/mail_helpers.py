"""Shared by the mail flow tests: point the settings at a loopback SMTP server, return a unit's workbook."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select

from cli.simulate import fill_by_names
from schemas.settings import Settings, get_settings
from schemas.tables import MailMessage
from tasks.db import get_engine

YEAR = 2021


def use_smtp(monkeypatch: pytest.MonkeyPatch, port: int, **extra: str) -> Settings:
    """Settings that send over the test server (no TLS, no login), the coordinator at coord@example.gov.cn."""
    env = {"NIANBAO_SMTP_HOST": "127.0.0.1", "NIANBAO_SMTP_PORT": str(port), "NIANBAO_SMTP_SECURITY": "none",
           "NIANBAO_SMTP_TIMEOUT": "5", "NIANBAO_MAIL_FROM": "xxgk@example.gov.cn",
           "NIANBAO_COORDINATOR_EMAIL": "coord@example.gov.cn", "NIANBAO_MAIL_RETRIES": "0"} | extra
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


def return_workbook(settings: Settings, code: str, figures: Mapping[str, Decimal], name: str | None = None) -> Path:
    """The unit fills its issued workbook by defined name and drops it into the inbox."""
    [issued] = (settings.outbox_dir(YEAR) / "workbooks").glob(f"{YEAR}年*-{code}-*.xlsx")
    return fill_by_names(issued, settings.inbox_dir(YEAR) / (name or issued.name), figures)


def ledger(settings: Settings) -> list[MailMessage]:
    with Session(get_engine(settings.db_url)) as session:
        return list(session.exec(select(MailMessage).order_by(MailMessage.id)).all())  # type: ignore[arg-type]
