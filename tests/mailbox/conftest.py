"""A real dovecot on loopback, and the settings that point the mailbox at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.form_spec import FormSpec
from schemas.settings import Settings, get_settings
from tests.channels import Opened, open_campaign
from tests.mailbox.dovecot import DOVECOT, PASSWORD, USER, ImapServer, start_dovecot


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install -y dovecot-imapd; .ci/run installs it)")
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def mailbox_env(imap_server: ImapServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of this test's data folder with the mailbox at the test server (IMAPS, its own CA)."""
    monkeypatch.setenv("NIANBAO_IMAP_HOST", "127.0.0.1")
    monkeypatch.setenv("NIANBAO_IMAP_PORT", str(imap_server.imaps_port))
    monkeypatch.setenv("NIANBAO_IMAP_SECURITY", "ssl")
    monkeypatch.setenv("NIANBAO_IMAP_USER", USER)
    monkeypatch.setenv("NIANBAO_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("NIANBAO_IMAP_CA_FILE", str(imap_server.ca_file))
    monkeypatch.setenv("NIANBAO_MAIL_FROM", "xxgk@county.example")
    get_settings.cache_clear()
    _empty(imap_server)  # the server lives for the session; every test starts with an empty mailbox
    settings = get_settings()
    assert settings.home == home
    return settings


@pytest.fixture
def opened(mailbox_env: Settings, units_file: Path, form: FormSpec) -> Opened:
    return open_campaign(mailbox_env, units_file, form)


def _empty(server: ImapServer) -> None:
    conn = server.client()
    try:
        for folder in ("INBOX", "Processed"):
            _, count = conn.select(folder)
            if count and count[0] not in (b"0", None):
                conn.store("1:*", "+FLAGS", "(\\Deleted)")
                conn.expunge()
            conn.close()
    finally:
        conn.logout()
