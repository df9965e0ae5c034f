"""Bulk inserts by COPY on PostgreSQL: a batch of rows streamed in one command instead of a multi-row INSERT.

COPY returns no ids, so a table's ids are drawn from its sequence first (one query) and written with the rows. The
values go through each column's own bind processing (enum names, JSON, UTC times) as an INSERT's would. A unique
violation comes back as SQLAlchemy's IntegrityError, as an INSERT's does: callers that fall back on it
(tasks/submissions.py) see no difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError


def copy_supported(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def copy_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, new_ids: bool = False) -> list[int]:
    """Insert rows (all with the same keys) with one COPY; with new_ids, each row gets an id from the table's
    sequence, returned in the order of rows."""
    if not rows:
        return []
    ids: list[int] = []
    if new_ids:
        ids = list(conn.execute(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                                     "FROM generate_series(1, :n)"), {"table": table.name, "n": len(rows)}).scalars())
    names = (["id"] if new_ids else []) + list(rows[0])
    convert = [_processor(conn, table, name) for name in names]
    quote = conn.dialect.identifier_preparer.quote
    command = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor, cursor.copy(command) as copy:
            for n, row in enumerate(rows):
                values = ([ids[n]] if new_ids else []) + list(row.values())
                copy.write_row([value if fn is None or value is None else fn(value)
                                for fn, value in zip(convert, values, strict=True)])
    except psycopg.IntegrityError as exc:
        raise IntegrityError(command, None, exc) from exc
    return ids


def _processor(conn: Connection, table: Table, name: str) -> Callable[[Any], Any] | None:
    column_type = table.c[name].type
    processor: Callable[[Any], Any] | None = column_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor
