"""Examine returned files in worker processes, so that reading and checking use every core while storing goes on.

Reading and checking a return is pure CPU work (1.5 ms a file); the ingest flow stores one batch while the workers
examine the next. Workers are forked from a clean forkserver process (never from the flow's own process with its
threads) and receive the campaign's facts once, at start. A worker that dies on a file (a crash in the native
reader, say) costs nothing but time: its files are examined again one at a time in a fresh pool, and the file that
kills a worker again is rejected as a corrupt workbook. Its bytes were archived before the worker read them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType

from schemas.form_spec import FormSpec, get_form
from schemas.issues import Issue
from tasks.inbox import receive
from tasks.ingest import Examination
from tasks.intake import IngestContext, examine_received

log = logging.getLogger(__name__)
MIN_FILES_FOR_WORKERS = 100  # below this, starting the workers (~0.3-0.5 s) costs more than it saves


class ExaminationPool:
    """Receive (archive) and examine inbox files in worker processes; workers=0 examines in this process."""

    def __init__(self, *, form: FormSpec, context: IngestContext, archive_dir: Path, max_bytes: int,
                 workers: int) -> None:
        self._job = _Job(form.form_id, form.version, context, str(archive_dir), max_bytes)
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> ExaminationPool:
        if self._workers > 0:
            self._executor = self._start()
            for _ in range(self._workers):  # start the workers now, not at the first batch
                self._executor.submit(_ready)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def examine(self, paths: Sequence[str], inbox: str, *, in_process: bool = False) -> list[Examination]:
        """Archive and examine the files, in order; never raises for a bad file.

        in_process: examine them in this process (the first batch, while the workers are still starting).
        """
        if self._executor is None or in_process or not paths:
            return _examine_paths(self._job, paths, inbox)
        chunks = _chunks(list(paths), self._workers * 2)  # two chunks a worker evens out slow files
        with self._lock:
            executor = self._executor
        try:
            futures: list[Future[list[Examination]]] = [
                executor.submit(_examine_in_worker, chunk, inbox) for chunk in chunks]
        except BrokenProcessPool:  # broken while another batch was being examined
            return [e for chunk in chunks for e in self._after_crash(executor, chunk, inbox)]
        examined: list[Examination] = []
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                examined += future.result()
            except (BrokenProcessPool, CancelledError):
                examined += self._after_crash(executor, chunk, inbox)
        return examined

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(self._workers, mp_context=context, initializer=_init_worker,
                                   initargs=(self._job,))

    def _after_crash(self, broken: ProcessPoolExecutor, chunk: list[str], inbox: str) -> list[Examination]:
        """A worker died: replace the pool (once, whichever batch saw it first), then examine the chunk file by
        file in a pool of its own, and reject the file that kills a worker again."""
        log.error("an examination worker died; examining %d files one at a time", len(chunk))
        with self._lock:  # two batches are examined at once: both may see the same dead pool
            if self._executor is broken:
                broken.shutdown(wait=False)
                self._executor = self._start()
        single = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"),
                                     initializer=_init_worker, initargs=(self._job,))
        examined = []
        try:
            for path in chunk:
                try:
                    examined += single.submit(_examine_in_worker, [path], inbox).result()
                except BrokenProcessPool:
                    log.error("file %s crashed the workbook reader; rejected as corrupt", path)
                    single.shutdown(wait=False)
                    single = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"),
                                                 initializer=_init_worker, initargs=(self._job,))
                    _, incoming = receive(Path(path), Path(inbox), Path(self._job.archive_dir))
                    issue = Issue(code="corrupt-workbook", note="读取时程序异常退出")
                    examined.append(Examination(incoming, incoming.claimed_unit, [issue]))
        finally:
            single.shutdown(wait=True)
        return examined


def default_workers(files: int) -> int:
    """Worker processes for an inbox of this many files: one a core, none for a handful of files."""
    if files < MIN_FILES_FOR_WORKERS:
        return 0
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class _Job:
    """What a worker needs, sent once when it starts (pickled), not with every file."""

    def __init__(self, form_id: str, form_version: str, context: IngestContext, archive_dir: str,
                 max_bytes: int) -> None:
        self.form_id = form_id
        self.form_version = form_version
        self.context = context
        self.archive_dir = archive_dir
        self.max_bytes = max_bytes


_worker_job: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job
    get_form(job.form_id, job.form_version)  # loaded once per worker, before the first file


def _ready() -> None:
    """Nothing: submitted once a worker, so that every worker starts (and loads the form) straight away."""


def _examine_in_worker(paths: list[str], inbox: str) -> list[Examination]:
    assert _worker_job is not None, "worker not initialised"
    return _examine_paths(_worker_job, paths, inbox)


def _examine_paths(job: _Job, paths: Sequence[str], inbox: str) -> list[Examination]:
    received = [receive(Path(path), Path(inbox), Path(job.archive_dir)) for path in paths]
    return examine_received(received, form=get_form(job.form_id, job.form_version), context=job.context,
                            max_bytes=job.max_bytes)


def _chunks(items: list[str], n: int) -> list[list[str]]:
    size = max(1, -(-len(items) // n))
    return [items[i:i + size] for i in range(0, len(items), size)]
