"""Shared fixtures: a data folder per test, the packaged form, a units register, one Prefect harness per session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

# Prefect reads these at import: offline, no analytics, its own home, time to start its local server.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="nianbao-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from schemas.form_spec import FormSpec, get_form  # noqa: E402
from schemas.settings import Settings, get_settings  # noqa: E402
from tests.factories import UNITS_CSV  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "reference"


@pytest.fixture(scope="session")
def form() -> FormSpec:
    return get_form()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data folder (and so a fresh SQLite database) for this test; settings re-read from it."""
    folder = tmp_path / "var"
    folder.mkdir()
    monkeypatch.setenv("NIANBAO_HOME", str(folder))
    monkeypatch.delenv("NIANBAO_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


@pytest.fixture
def settings(home: Path) -> Settings:
    settings = get_settings()
    assert settings.home == home
    return settings


@pytest.fixture
def units_file(tmp_path: Path) -> Path:
    path = tmp_path / "units.csv"
    path.write_text(UNITS_CSV, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One real Prefect (test harness server) for the whole session: it takes seconds to start."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


DEADLINE = date(2022, 1, 20)
