"""The raw-parse limit: python-calamine opening each returned file and reading every sheet's values, nothing else.

No identity, no checks, no database, no answers: the least any ingest has to do with a workbook. Timed in one
process, and spread over two worker processes as the ingest spreads its examination (the fair limit on two cores).
The workers are started, and have imported calamine, before the clock starts; the files are in the page cache (the
benchmark has just written them).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

CHUNKS_PER_WORKER = 20  # files go to the workers in chunks: small enough to balance, big enough to cost nothing


def read_all(paths: list[str]) -> int:
    """Open each file with calamine and read every sheet's values (to Python lists); the number of rows read."""
    from python_calamine import CalamineWorkbook

    rows = 0
    for path in paths:
        workbook = CalamineWorkbook.from_path(path)
        for name in workbook.sheet_names:
            rows += len(workbook.get_sheet_by_name(name).to_python(skip_empty_area=False))
    return rows


def _started() -> int:
    import python_calamine  # noqa: F401  (imported before the clock starts)

    time.sleep(0.2)  # long enough that each warm-up job lands on a worker of its own
    return os.getpid()


def raw_parse(paths: list[Path], processes: int = 2) -> dict[str, Any]:
    """Calamine over every file: in this process, then over `processes` worker processes."""
    names = [str(p) for p in paths]
    read_all(names[:1])  # import and first call outside the timing
    start = time.perf_counter()
    rows = read_all(names)
    one_s = time.perf_counter() - start

    size = max(1, -(-len(names) // (processes * CHUNKS_PER_WORKER)))
    chunks = [names[i:i + size] for i in range(0, len(names), size)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        pids = {f.result() for f in [pool.submit(_started) for _ in range(processes)]}
        start = time.perf_counter()
        futures = [pool.submit(read_all, chunk) for chunk in chunks]
        wait(futures)
        many_s = time.perf_counter() - start
        rows_many = sum(f.result() for f in futures)
    n = len(names)
    return {"files": n, "rows_read": rows, "one_process_s": one_s, "one_process_per_s": n / one_s,
            "one_process_ms_per_file": 1000 * one_s / n, "processes": processes, "workers_started": len(pids),
            "processes_s": many_s, "processes_per_s": n / many_s, "same_rows": rows_many == rows}
