"""Ingest one campaign's inbox with several runs at once, on the work pool's workers: one inbox, several machines.

`ingest-parallel` counts the waiting files and starts `parts` runs of the ingest-returns deployment, each taking at
most its share of the inbox, oldest first. A claim is still one atomic rename a file (tasks/inbox.py), so no two
runs take the same file, and the shares add up to the whole inbox. It waits for all of them and adds up what each
recorded (flows/part_summary.py). A run that fails is reported, and this run fails at the end so that it shows in the
UI; the files that run had claimed wait in its claim folder for the next ingest run, which takes the claim over (at
once on the same machine, after 30 minutes from another).

The parts are runs of a deployment, not subflows: each runs in a process of its own on whichever worker takes it.
"""

from __future__ import annotations

import time
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from pydantic import BaseModel

from flows.part_summary import PartCounts, read_parts
from flows.run_names import run_name
from schemas.settings import get_settings
from tasks.inbox import count_waiting
from tasks.progress import artifact_key

INGEST_DEPLOYMENT = "ingest-returns/on-demand"
POLL_SECONDS = 2.0  # one request for all the parts' states


class PartRun(BaseModel):
    id: UUID
    name: str  # the parts' names differ only by the minute they started: the id tells them apart
    state: str
    counts: PartCounts | None  # None: the run recorded nothing (it failed, or is still going)
    message: str = ""

    @property
    def done(self) -> bool:
        return self.state == "Completed" and self.counts is not None


class ParallelIngestSummary(BaseModel):
    year: int
    files: int
    accepted: int
    rejected: int
    duplicates: int
    held: int
    resumed: int
    runs: list[PartRun]
    failed: list[str]  # names of the runs that did not complete: their files wait for the next run


def plan_parts(waiting: int, parts: int) -> tuple[int, int]:
    """How many runs to start, and the most files each takes. No run for nothing, but one at least: it also reads
    the mailbox and takes over the claims of runs that died."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, not {parts}")
    runs = max(1, min(parts, waiting))
    return runs, max(1, -(-waiting // runs))


def add_up(year: int, runs: list[PartRun]) -> ParallelIngestSummary:
    """The parts' counts summed; the runs that did not complete listed by name."""
    counted = [run.counts for run in runs if run.done and run.counts is not None]
    totals = {field: sum(getattr(c, field) for c in counted) for field in PartCounts.model_fields}
    return ParallelIngestSummary(year=year, **totals, runs=runs, failed=[run.name for run in runs if not run.done])


def wait_for_runs(client: SyncPrefectClient, ids: list[UUID], timeout: float) -> list[FlowRun]:
    """The runs, once each has ended or the time is up (then some are still going), in the order of ids."""
    deadline = time.monotonic() + timeout
    while True:
        found = {run.id: run for run in client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))}
        ended = all(run.state is not None and run.state.is_final() for run in found.values())
        if (ended and len(found) == len(ids)) or time.monotonic() >= deadline:
            return [found[i] for i in ids if i in found]
        time.sleep(POLL_SECONDS)


def part_runs(client: SyncPrefectClient, runs: list[FlowRun]) -> list[PartRun]:
    counts = read_parts(client, [run.id for run in runs])
    return [PartRun(id=run.id, name=run.name, state=run.state.name if run.state else "Unknown",
                    counts=counts.get(run.id), message=(run.state.message or "") if run.state else "")
            for run in runs]


def summary_rows(summary: ParallelIngestSummary) -> list[dict[str, object]]:
    """The artifact's table: one row a part, then the total (Chinese, for the coordinator)."""
    rows: list[dict[str, object]] = []
    for run in summary.runs:
        counts = run.counts or PartCounts(files=0, accepted=0, rejected=0, duplicates=0)
        rows.append({"运行": run.name, "编号": str(run.id)[:8],
                     "状态": "完成" if run.done else f"未完成（{run.state}）", "文件": counts.files,
                     "通过": counts.accepted, "未通过": counts.rejected, "重复": counts.duplicates,
                     "说明": "" if run.done else f"其领取的文件由下一次接收运行接手。{run.message}"})
    completed = len(summary.runs) - len(summary.failed)
    rows.append({"运行": "合计", "编号": "", "状态": f"{completed} / {len(summary.runs)} 完成",
                 "文件": summary.files, "通过": summary.accepted, "未通过": summary.rejected,
                 "重复": summary.duplicates, "说明": ""})
    return rows


@flow(name="ingest-parallel", flow_run_name=run_name("并行接收报送"))
def ingest_parallel(year: int, parts: int = 2, deployment: str = INGEST_DEPLOYMENT,
                    wait_hours: float = 3.0) -> ParallelIngestSummary:
    """Ingest the campaign's inbox with `parts` runs of the ingest deployment at once, each taking its share."""
    logger = get_run_logger()
    runs, share = plan_parts(count_waiting(get_settings().inbox_dir(year)), parts)
    # timeout=0: started, not awaited one by one; linked to this run as its subflows in the UI
    started = [cast(FlowRun, run_deployment(deployment, parameters={"year": year, "max_files": share}, timeout=0))
               for _ in range(runs)]
    logger.info("ingest %s: %d runs of %s started, each taking up to %d files", year, runs, deployment, share)
    with get_client(sync_client=True) as client:
        summary = add_up(year, part_runs(client, wait_for_runs(client, [run.id for run in started],
                                                               wait_hours * 3600)))
    create_table_artifact(summary_rows(summary), key=artifact_key(year, "ingest-parallel"),
                          description=f"{year}年度并行接收：{len(summary.runs)}个运行，文件{summary.files}个，"
                                      f"通过{summary.accepted}，未通过{summary.rejected}，重复{summary.duplicates}")
    logger.info("ingest %s in %d parts: %d files, %d accepted, %d rejected, %d duplicates", year, len(summary.runs),
                summary.files, summary.accepted, summary.rejected, summary.duplicates)
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} of {len(summary.runs)} ingest runs did not complete "
                           f"({', '.join(summary.failed)}); their claimed files wait for the next ingest run")
    return summary
