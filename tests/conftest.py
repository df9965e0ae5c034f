"""Shared fixtures: a data folder per test, the packaged form, a units register, one Prefect harness per session."""

from __future__ import annotations

import logging
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


# PostgreSQL server URL for the suite's second run of every database test; .ci/run sets it to the machine's server
POSTGRES_URL = os.environ.get("NIANBAO_TEST_POSTGRES_URL", "")
NO_POSTGRES = "PostgreSQL run: set NIANBAO_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The project database of one test: SQLite in its data folder (None), or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    from tests.postgres import temporary_database

    with temporary_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Iterator[Path]:
    """A fresh data folder and a fresh project database for this test (on each backend); settings re-read."""
    folder = tmp_path / "var"
    folder.mkdir()
    monkeypatch.setenv("NIANBAO_HOME", str(folder))
    if database_url is None:
        monkeypatch.delenv("NIANBAO_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("NIANBAO_DATABASE_URL", database_url)
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


@pytest.fixture(autouse=True)
def _restore_cli_logger() -> Iterator[None]:
    """main() sets its own handler on the 'nianbao' logger; every test finds the logger as it was."""
    logger = logging.getLogger("nianbao")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


DEADLINE = date(2022, 1, 20)
