"""The project database: one engine per URL, created tables, SQLite tuned for several writers.

A database made by an earlier version of nianbao gets the columns added since (each new column has a default, so
its rows stay valid); any other change of the tables still needs a new database (there are no migrations yet).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateColumn
from sqlmodel import SQLModel, create_engine

import schemas.tables  # noqa: F401  (registers every table on SQLModel.metadata)

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside a writer; busy_timeout waits instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN: read-then-write transactions of two processes otherwise deadlock.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    """The engine for this URL, with its tables created."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    _add_new_columns(engine)
    return engine


def _add_new_columns(engine: Engine) -> None:
    """Add to existing tables the columns this version has and the database lacks (ALTER TABLE ... ADD COLUMN)."""
    inspector = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable and column.server_default is None:
                raise RuntimeError(f"the database lacks {table.name}.{column.name}, which has no default: "
                                   "make a new database for this version of nianbao")
            ddl = CreateColumn(column).compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')
                log.info("database: added column %s.%s", table.name, column.name)
            except DBAPIError:  # another process added it a moment ago
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise
