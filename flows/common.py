"""What every flow needs: the project database engine, the form of a campaign, batching."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar, cast

from prefect.utilities.annotations import quote
from sqlalchemy.engine import Engine

from schemas.form_spec import FormSpec, get_form
from schemas.settings import get_settings
from tasks.db import get_engine

T = TypeVar("T")


def engine() -> Engine:
    return get_engine(get_settings().db_url)


def form_for(form_id: str = "xxgk-annual", version: str = "2021") -> FormSpec:
    return get_form(form_id, version)


def docx_template_bytes() -> bytes | None:
    """The office's own Word template (NIANBAO_DOCX_TEMPLATE), or None for the packaged one."""
    path = get_settings().docx_template
    return path.read_bytes() if path is not None else None


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most size items: one Prefect task per slice, never one per item."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def batch_size(items: int) -> int:
    """Items a batch (a task run each): the setting, or up to twice it for many items so that they take about four
    batches. A task run costs the Prefect server ~0.05 s whatever its size: a province's 10,000 units in 25 task
    runs, not 50."""
    base = get_settings().batch_size
    return max(base, min(-(-items // 4), 2 * base))


def as_is(value: T) -> T:
    """Pass a large task argument without Prefect walking it for futures (quote(), typed as the value)."""
    return cast(T, quote(value))


@contextmanager
def settled_heap() -> Iterator[None]:
    """Keep what is already loaded out of the cyclic collector's full passes for a while (a big ingest).

    Prefect, SQLAlchemy and pydantic leave a large heap of long-lived objects; each full collection walks all of it,
    and the many small objects of a thousand files trigger several. Frozen objects go back to the collector
    afterwards, garbage among them included, so a long-running process (serve) loses nothing to the freeze. (No
    collection first: it would cost a full pass, ~0.2 s, the very thing this avoids.)
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
