"""The project database: one engine per URL, created tables, SQLite tuned for several writers.

A database made by an earlier version of nianbao gets the columns added since (each new column has a default, so
its rows stay valid); any other change of the tables still needs a new database (there are no migrations yet).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from sqlalchemy import Enum as SAEnum
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
    _add_new_enum_values(engine)
    _make_append_only(engine, "eventlog")
    return engine


def _add_new_enum_values(engine: Engine) -> None:
    """PostgreSQL keeps an enum column's values in a type of its own: add the values this version has (such as the
    verdict HELD) to a type made by an earlier version. SQLite stores them as plain text."""
    if engine.dialect.name != "postgresql":
        return
    types = {column.type.name: column.type.enums for table in SQLModel.metadata.sorted_tables
             for column in table.columns if isinstance(column.type, SAEnum) and column.type.name}
    with engine.connect() as conn:
        present: dict[str, set[str]] = {}
        for name, label in conn.exec_driver_sql(
                "SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"):
            present.setdefault(name, set()).add(label)
    for name, labels in types.items():
        for label in labels:
            if name in present and label not in present[name]:
                # outside a transaction: a value added inside one cannot be used before it commits
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql(f"ALTER TYPE {name} ADD VALUE IF NOT EXISTS '{label}'")
                log.info("database: added value %s to type %s", label, name)


def _make_append_only(engine: Engine, table: str) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE) of the table in the database itself: the audit log is evidence, and
    a mistaken or hostile statement, from nianbao or from a database console, must not rewrite it."""
    name = f"{table}_append_only"
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            for action in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f'CREATE TRIGGER IF NOT EXISTS {name}_{action.lower()} BEFORE {action} ON "{table}" '
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
        return
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        present = conn.exec_driver_sql("SELECT count(*) FROM pg_trigger WHERE tgname IN (%s, %s)",
                                       (f"{name}_rows", f"{name}_truncate")).scalar()
    if present == 2:
        return
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION nianbao_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only'; END $$")
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS {name}_rows ON "{table}"')
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS {name}_truncate ON "{table}"')
            conn.exec_driver_sql(f'CREATE TRIGGER {name}_rows BEFORE UPDATE OR DELETE ON "{table}" '
                                 "FOR EACH ROW EXECUTE FUNCTION nianbao_append_only()")
            conn.exec_driver_sql(f'CREATE TRIGGER {name}_truncate BEFORE TRUNCATE ON "{table}" '
                                 "FOR EACH STATEMENT EXECUTE FUNCTION nianbao_append_only()")
    except DBAPIError:  # another process made them at the same moment
        with engine.connect() as conn:
            if conn.exec_driver_sql("SELECT count(*) FROM pg_trigger WHERE tgname = %s",
                                    (f"{name}_rows",)).scalar() != 1:
                raise


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
