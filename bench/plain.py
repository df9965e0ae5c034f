"""The flows' work as plain calls: the same functions the flows call, with no flow run and no task run.

Used to measure what Prefect costs (the "Prefect overhead ratio" of the benchmark): each function here follows its
flow step by step, calling the tasks' own functions (`task.fn`) in the same order, and leaves out only what exists
for Prefect: the task and flow runs themselves, the progress artifacts (`publish_progress`) and the run's events.

They follow the flows as written when the benchmark was last changed (flows/open_collection.py,
flows/ingest_returns.py, flows/compile_report.py): a flow changed since should be followed here too.

Prefect's run logger is switched off (`disable_run_logger`): outside a run, the tasks' log lines would otherwise
raise for want of a run context.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

IN_FLIGHT = 2  # batches stored or answered while the next is examined, as the ingest flow holds them


@dataclass
class PlainIngest:
    files: int
    accepted: int
    rejected: int
    duplicates: int
    seconds: float


def open_plain(year: int, deadline: date) -> tuple[int, float]:
    """open_collection's work (campaign, template, workbooks and their records, the issue mails) without Prefect:
    (workbooks issued, seconds)."""
    from prefect.logging import disable_run_logger

    from flows.common import batch_size, batches
    from flows.mail_tasks import issue_mails_due, mail_workbooks
    from flows.open_collection import build_template_task, issue_batch, prepare_campaign
    from tasks.issue_workbooks import UnitToIssue

    start = time.perf_counter()
    with disable_run_logger():
        plan = prepare_campaign.fn(year, deadline, None)
        units = [UnitToIssue(uid, code, name, carry) for uid, code, name, carry in plan.units]
        issued = 0
        if units:
            template = build_template_task.fn(year, deadline)
            for batch in batches(units, batch_size(len(units))):
                issued += issue_batch.fn(template, plan, year, batch)
        due = issue_mails_due.fn(plan.campaign_id)
        for codes in batches(due, batch_size(len(due))):
            mail_workbooks.fn(year, plan.campaign_id, codes)
    return issued, time.perf_counter() - start


def ingest_plain(year: int) -> PlainIngest:
    """ingest_returns' work over the inbox without Prefect: the same examination workers, claim, store-and-answer
    function (`store_and_answer.fn`, batches in turn, up to IN_FLIGHT of them while the next is examined, in a thread
    pool as Prefect's task runner runs them) and release; no task runs, no progress artifacts, no events."""
    from prefect.logging import disable_run_logger

    from flows.common import batch_size, form_for, settled_heap
    from flows.ingest_returns import Batch, StoreTurn, claim_inbox, load_context, store_and_answer
    from schemas.settings import get_settings
    from tasks.examine_pool import ExaminationPool, default_workers
    from tasks.inbox import count_waiting, kept_alive, release

    counts = {"accepted": 0, "rejected": 0, "duplicates": 0}

    def count(batch: Batch) -> None:
        for item in batch.stored:
            key = "duplicates" if item.duplicate else "accepted" if item.verdict.value == "accepted" else "rejected"
            counts[key] += 1

    settings = get_settings()
    folder = settings.inbox_dir(year)
    start = time.perf_counter()
    with disable_run_logger(), settled_heap():
        context = load_context.fn(year)
        with ExaminationPool(form=form_for(), context=context, archive_dir=settings.archive_dir,
                             max_bytes=settings.max_upload_bytes,
                             workers=default_workers(count_waiting(folder))) as pool:
            claim = claim_inbox.fn(str(folder))
            paths = [str(p) for p in claim.paths]
            roots = tuple(str(root) for root in claim.roots)
            with kept_alive(claim), ThreadPoolExecutor(IN_FLIGHT + 2, thread_name_prefix="plain-store") as runner:
                working: deque[Future[Batch]] = deque()
                previous: StoreTurn | None = None
                for examined in pool.examine_batches(paths, roots, batch_size=batch_size(len(paths))):
                    turn = StoreTurn()
                    future = runner.submit(store_and_answer.fn, year, context, examined, claim, pool, previous, turn)
                    future.add_done_callback(partial(_end_turn, turn))  # as the flow does
                    working.append(future)
                    previous = turn
                    if len(working) > IN_FLIGHT:
                        count(working.popleft().result())
                while working:
                    count(working.popleft().result())
        release(claim)
    return PlainIngest(len(paths), seconds=time.perf_counter() - start, **counts)


def _end_turn(turn: Any, _: Future[Any]) -> None:
    turn.end(failed=True)  # nothing if store_and_answer ended its turn itself


def report_plain_whole(year: int, repeats: int) -> dict[str, Any]:
    """compile_report's work (HTML only, as the flow is timed) without Prefect, `repeats` times; each call compiles
    a new draft and records it, as the flow does. The median is the figure."""
    from prefect.logging import disable_run_logger

    from flows.compile_report import (
        CHINA,
        build_documents,
        consolidate_task,
        load_inputs,
        read_narrative,
        record_report,
        render_outputs,
    )
    from schemas.settings import get_settings

    def once() -> float:
        start = time.perf_counter()
        with disable_run_logger():
            now = datetime.now(CHINA)
            inputs = load_inputs.fn(year)
            county = consolidate_task.fn(year, inputs)
            narrative, source = read_narrative.fn(year, None)
            documents = build_documents.fn(year, inputs, county, narrative, source, get_settings().county_name,
                                           "draft", now)
            summary = render_outputs.fn(year, inputs, county, documents, "draft", now, ())
            record_report.fn(inputs.campaign_id, summary)
        return time.perf_counter() - start

    calls = [once() for _ in range(repeats)]
    return {"calls_s": calls, "median_s": statistics.median(calls)}


def report_steps(year: int) -> dict[str, Any]:
    """Where the report's time goes, as plain calls: the flow's tasks one by one, its loading and rendering split
    into their main parts."""
    from prefect.logging import disable_run_logger
    from sqlmodel import Session

    from flows.common import engine, form_for
    from flows.compile_report import (
        CHINA,
        build_documents,
        consolidate_task,
        load_inputs,
        read_narrative,
        render_outputs,
    )
    from flows.progress import publish_progress
    from schemas.settings import get_settings
    from tasks.accepted import load_accepted
    from tasks.campaigns import get_campaign
    from tasks.publication import write_publication
    from tasks.report_workbook import UnitRow, summary_workbook

    form = form_for()
    steps: dict[str, float] = {}

    def step(name: str, fn: Any, repeats: int = 1) -> Any:
        """Time fn (the median of repeats calls: a full collection of the heap falls on some and not others)."""
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        steps[name] = statistics.median(times)
        return result

    with disable_run_logger():
        now = datetime.now(CHINA)
        with Session(engine()) as session:
            campaign = get_campaign(session=session, form=form, year=year)
            assert campaign.id is not None
            campaign_id = campaign.id
            step("load_accepted_s", lambda: load_accepted(session=session, form=form, campaign_id=campaign_id))
        inputs = step("load_inputs_s", lambda: load_inputs.fn(year))  # accepted figures, status, completeness
        county = step("consolidate_s", lambda: consolidate_task.fn(year, inputs))
        narrative, source = read_narrative.fn(year, None)
        documents = step("build_s", lambda: build_documents.fn(year, inputs, county, narrative, source,
                                                               get_settings().county_name, "bench-steps", now))
        step("render_s", lambda: render_outputs.fn(year, inputs, county, documents, "bench-steps", now, ()))
        folder = get_settings().reports_dir(year) / "bench-steps"
        folder.mkdir(parents=True, exist_ok=True)
        # the render's main parts, each the median of 3 calls
        step("render_report_html_s", lambda: write_publication(documents.report, folder / "report", (), []), 3)
        step("render_annex_html_s", lambda: write_publication(documents.annex, folder / "annex", (), []), 3)
        units = [UnitRow(code, name, kind_cn, status) for code, name, kind_cn, status in inputs.units]
        step("render_summary_workbook_s", lambda: (folder / "summary.xlsx").write_bytes(
            summary_workbook(form, "bench", county.cells, units, inputs.figures)), 3)
    # Prefect's share of the flow: the report's artifact and its event, outside a run here (the Prefect server must
    # be up)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # artifacts made outside a run: deprecated, still made
        step("publish_progress_s", lambda: publish_progress.fn(year, collection=False))
    steps["units"] = len(inputs.figures)
    return steps

