"""Storing returns on PostgreSQL: COPY (what the ingest does) against a multi-row INSERT, in the same run.

    .venv/bin/python -m bench.store_pg [--files 2000] [--rounds 3] [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Each round stores the same synthetic returns (every cell's figure as text, as a return stores them) into a new
database, in batches of 250 as the ingest flow does, once each way, alternating; the medians are compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Connection
from sqlmodel import Session

import tasks.submissions
from schemas.form_spec import get_form
from tasks.db import get_engine
from tasks.ingest import Examination, Incoming
from tasks.submissions import store_examinations
from tests.factories import bare_campaign
from tests.postgres import temporary_database

BATCH = 250


def _examinations(files: int) -> list[Examination]:
    figures = json.dumps({c.key: str(n) for n, c in enumerate(get_form().cells)}, separators=(",", ":"))
    start = datetime(2022, 1, 10, tzinfo=UTC)
    exams = []
    for n in range(files):
        name = f"D{n:05d}.xlsx"
        incoming = Incoming(name, hashlib.sha256(name.encode()).hexdigest(), 30_000, f"archive/{name}",
                            (start + timedelta(seconds=n)).isoformat())
        exams.append(Examination(incoming, f"D{n:05d}", [], figures=figures))
    return exams


def _store(url: str, exams: list[Examination], units_csv: Path) -> float:
    """Seconds to store every examination, batch by batch, each batch committed."""
    engine = get_engine(url)
    campaign_id = bare_campaign(url, units_csv, form_id="bench")
    started = time.perf_counter()
    with Session(engine) as session:
        for first in range(0, len(exams), BATCH):
            store_examinations(session=session, campaign_id=campaign_id, examinations=exams[first:first + BATCH])
            session.commit()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def _never(_conn: Connection) -> bool:
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_pg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    exams = _examinations(args.files)
    copy_supported: Callable[[Connection], bool] = getattr(tasks.submissions, "copy_supported")  # noqa: B009
    seconds: dict[str, list[float]] = {"insert": [], "copy": []}
    with tempfile.TemporaryDirectory() as folder:
        units_csv = Path(folder) / "units.csv"
        units_csv.write_text("code,name,kind,contact,email,phone\n" + "".join(
            f"D{n:05d},单位{n},department,联系人,d{n}@example.gov.cn,\n" for n in range(args.files)), encoding="utf-8")
        for _ in range(args.rounds):
            for mode in seconds:
                # the store's choice of COPY, as it looks it up at each batch
                setattr(tasks.submissions, "copy_supported", copy_supported if mode == "copy" else _never)  # noqa: B010
                with temporary_database(args.url) as url:
                    seconds[mode].append(_store(url, exams, units_csv))
    setattr(tasks.submissions, "copy_supported", copy_supported)  # noqa: B010
    ms = {mode: [1000 * s / args.files for s in values] for mode, values in seconds.items()}
    for mode, values in ms.items():
        print(f"{mode:7s} ms/file: {', '.join(f'{v:.3f}' for v in values)}  median {statistics.median(values):.3f}")
    print(f"INSERT / COPY: {statistics.median(ms['insert']) / statistics.median(ms['copy']):.2f}x "
          f"({args.files} returns in batches of {BATCH}, {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
