"""A throw-away PostgreSQL database per test, on the server named by NIANBAO_TEST_POSTGRES_URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tasks.db import get_engine


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """Create a database, yield its URL, then drop it with every connection still open to it."""
    name = f"nianbao_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            get_engine(url).dispose()  # the project's pooled connections to it
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
