"""Examine returned files in worker processes, so that reading and checking use every core while storing goes on.

Reading and checking a return is pure CPU work (1.5 ms a file); the ingest flow stores one batch while the workers
examine the next. Workers are forked from a clean forkserver process (never from the flow's own process with its
threads) and receive the campaign's facts once, at start. A worker that dies on a file (a crash in the native
reader, say) costs nothing but time: its files are examined again one at a time in a fresh pool, and the file that
kills a worker again is rejected as a corrupt workbook. Its bytes were archived before the worker read them.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from multiprocessing import forkserver
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from schemas.form_spec import FormSpec
from schemas.issues import Issue
from tasks.answer_writing import AnswerJob, AnswerPlace, Written, write_answers
from tasks.inbox import Holder, receive, this_process
from tasks.ingest import Examination, IngestContext, examine_received

log = logging.getLogger(__name__)
WORKER_MODULES = [__name__, "tasks.worker_preload"]  # imported once by the forkserver, inherited by every worker
T = TypeVar("T")
MIN_FILES_FOR_WORKERS = 100  # below this, starting the workers (~0.3-0.5 s) costs more than it saves
OWNER_CHECK_SECONDS = 1.0  # a worker looks this often whether the flow's process is still there
# where the files are: the inbox, or the claim folders of a run (its own and those of dead runs it took over); a
# subfolder of one of them names the unit that sent the file
Roots = str | tuple[str, ...]


class ExaminationPool:
    """Receive (archive) and examine inbox files in worker processes; workers=0 examines in this process."""

    def __init__(self, *, form: FormSpec, context: IngestContext, archive_dir: Path, max_bytes: int,
                 workers: int) -> None:
        self._job = _Job(form, context, str(archive_dir), max_bytes)
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._started = threading.Event()
        self._starter: threading.Thread | None = None

    def __enter__(self) -> ExaminationPool:
        if self._workers > 0:  # the workers start (~0.3-0.5 s) while this process examines the first files
            self._starter = threading.Thread(target=self._start_workers, name="examination-workers-start",
                                             daemon=True)
            self._starter.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._starter is not None:
            self._starter.join()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def ready(self, timeout: float | None = None) -> bool:
        """Wait until the workers have started; False if there are none (workers=0, or they could not start)."""
        if self._starter is None:
            return False
        self._started.wait(timeout)
        return self._executor is not None

    def _start_workers(self) -> None:
        try:
            executor = self._start()
            wait([executor.submit(_ready) for _ in range(self._workers)])  # every worker up, its form loaded
            self._executor = executor
        except Exception:  # no processes to be had here: everything is examined in this process instead
            log.exception("the examination workers could not start; examining in the flow's process")
        finally:
            self._started.set()

    def examine(self, paths: Sequence[str], inbox: Roots) -> list[Examination]:
        """Archive and examine the files, in order; never raises for a bad file."""
        return [e for batch in self.examine_batches(paths, inbox, batch_size=max(len(paths), 1)) for e in batch]

    def examine_batches(self, paths: Sequence[str], inbox: Roots, *, batch_size: int) -> Iterator[list[Examination]]:
        """The files' examinations in order, batch_size at a time; the workers go on with the next files while
        the caller stores a batch. Never raises for a bad file.

        The files go to the workers in small chunks, at most two batches ahead of the caller: every worker stays
        busy, and memory holds a bounded number of examinations however many files there are. Until the workers
        are up, chunks are examined here.
        """
        chunks = _slices(list(paths), max(1, batch_size // (2 * max(self._workers, 1))))
        window = max(1, -(-2 * batch_size // len(chunks[0]))) if chunks else 1  # chunks in flight: two batches
        in_flight: deque[tuple[list[str], ProcessPoolExecutor, Future[list[Examination]] | None]] = deque()
        ready: list[Examination] = []
        taken = 0
        while True:
            if self._started.is_set() and self._executor is not None:
                while taken < len(chunks) and len(in_flight) < window:
                    in_flight.append(self._submit(chunks[taken], inbox))
                    taken += 1
            if len(ready) >= batch_size:
                yield ready[:batch_size]
                ready = ready[batch_size:]
            elif in_flight:
                chunk, executor, future = in_flight.popleft()
                ready += self._result(chunk, executor, future, inbox)
            elif taken < len(chunks):  # no workers (yet): examine the next chunk here
                ready += _examine_paths(self._job, chunks[taken], inbox)
                taken += 1
            elif ready:
                yield ready
                ready = []
            else:
                return

    def _submit(self, chunk: list[str],
                inbox: Roots) -> tuple[list[str], ProcessPoolExecutor, Future[list[Examination]] | None]:
        """The chunk, its pool and its future; no future when the pool is broken (it is examined after the crash)."""
        executor = self._executor
        assert executor is not None
        try:
            return chunk, executor, executor.submit(_examine_in_worker, chunk, inbox)
        except BrokenProcessPool:
            return chunk, executor, None

    def _result(self, chunk: list[str], executor: ProcessPoolExecutor, future: Future[list[Examination]] | None,
                inbox: Roots) -> list[Examination]:
        if future is None:
            return self._after_crash(executor, chunk, inbox)
        try:
            return future.result()
        except (BrokenProcessPool, CancelledError):
            return self._after_crash(executor, chunk, inbox)

    def write_answers(self, jobs: list[AnswerJob], place: AnswerPlace) -> Written:
        """Write the answers of a stored batch (tasks/answer_writing.py), split among the workers.

        The workers may still be examining the next files: these jobs wait their turn behind them, which keeps
        every worker busy while the flow's process deals with the database.
        """
        executor = self._executor if self._started.is_set() else None
        if executor is None or len(jobs) < 2:
            return write_answers(jobs, place)
        parts = _slices(jobs, -(-len(jobs) // self._workers))
        try:
            futures = [executor.submit(write_answers, part, place) for part in parts]
        except BrokenProcessPool:
            return write_answers(jobs, place)
        written = Written([], [])
        for part, future in zip(parts, futures, strict=True):
            try:
                done = future.result()
            except (BrokenProcessPool, CancelledError):
                log.error("an examination worker died while writing answers; writing them here")
                done = write_answers(part, place)  # writing an answer twice writes the same files
            written.answers += done.answers
            written.mails += done.mails
        return written

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(WORKER_MODULES)
        return ProcessPoolExecutor(self._workers, mp_context=context, initializer=_init_worker,
                                   initargs=(self._job,))

    def _after_crash(self, broken: ProcessPoolExecutor, chunk: list[str], inbox: Roots) -> list[Examination]:
        """A worker died: replace the pool (once, whichever chunk of it saw it first), then examine the chunk
        file by file in a pool of its own, and reject the file that kills a worker again."""
        log.error("an examination worker died; examining %d files one at a time", len(chunk))
        if self._executor is broken:  # the other chunks in flight in the same pool see the same death
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
                    _, incoming = receive(Path(path), _root_paths(inbox), Path(self._job.archive_dir))
                    issue = Issue(code="corrupt-workbook", note="读取时程序异常退出")
                    examined.append(Examination(incoming, incoming.claimed_unit, [issue]))
        finally:
            single.shutdown(wait=True)
        return examined


def prestart() -> None:
    """Start now the process the workers are forked from, with its imports (~0.5 s on another core).

    A process that will ingest calls this as it starts (`nianbao ingest`; the benchmark), so that this start
    overlaps with Prefect's own rather than holding up the first big inbox; the workers then fork in milliseconds.
    Without it, the first pool starts the forkserver itself.
    """
    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_MODULES)
    forkserver.ensure_running()


def default_workers(files: int) -> int:
    """Worker processes for an inbox of this many files: one a core, none for a handful of files."""
    if files < MIN_FILES_FOR_WORKERS:
        return 0
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class _Job:
    """What a worker needs, sent once when it starts (pickled), not with every file. The form itself travels
    (~90 KB, 1 ms to unpickle): loading it from its YAML again would cost each worker ~0.1 s."""

    def __init__(self, form: FormSpec, context: IngestContext, archive_dir: str, max_bytes: int) -> None:
        self.form = form
        self.context = context
        self.archive_dir = archive_dir
        self.max_bytes = max_bytes
        self.owner = this_process()  # the flow's process: the workers end when it does


_worker_job: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job
    # what is loaded now lives as long as the worker: keep it out of the collector's full passes, which would
    # otherwise walk every imported module's objects again and again while the files' objects come and go
    gc.freeze()
    threading.Thread(target=_end_with, args=(job.owner,), name="end-with-owner", daemon=True).start()


def _end_with(owner: Holder) -> None:
    """End this worker once the flow's process has ended. Killed (SIGKILL, the OOM killer), it cannot stop its
    workers, and nothing else would: they (and their forkserver) would wait for work for ever, one of them perhaps
    still writing answers the next run writes too."""
    while not owner.is_gone():
        time.sleep(OWNER_CHECK_SECONDS)
    os._exit(1)


def _ready() -> None:
    """Nothing: submitted once a worker, so that every worker starts straight away."""


def _examine_in_worker(paths: list[str], inbox: Roots) -> list[Examination]:
    assert _worker_job is not None, "worker not initialised"
    # the figures travel back as their stored JSON text (Examination.figures); the Decimals would cost the flow's
    # process one Decimal a figure to unpickle, 200,000 for 1,000 files, and nothing there reads them
    return [replace(e, values={}) for e in _examine_paths(_worker_job, paths, inbox)]


def _examine_paths(job: _Job, paths: Sequence[str], inbox: Roots) -> list[Examination]:
    roots = _root_paths(inbox)
    received = [receive(Path(path), roots, Path(job.archive_dir)) for path in paths]
    return examine_received(received, form=job.form, context=job.context,
                            max_bytes=job.max_bytes)


def _root_paths(inbox: Roots) -> list[Path]:
    return [Path(inbox)] if isinstance(inbox, str) else [Path(root) for root in inbox]


def _slices(items: list[T], size: int) -> list[list[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
