"""Every deployment of nianbao, served from one process: `nianbao serve` / `make serve`.

Schedules are in China time: ingest every 5 minutes, chase at 09:00, a draft report at 18:00 (each over every
open campaign); open-collection, final-report, unit-reports, ingest-returns and ingest-parallel run on demand from
the UI's Run form (year, deadline ...). ingest-parallel starts runs of ingest-returns, several at once: that one
deployment has no limit of one run at a time.
The multi-machine setup declares the same deployments in prefect.yaml (a process work pool); the smoke test
keeps the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.types.entrypoint import EntrypointType

from deployments.server import DEFAULT_PORT, prefect_server
from flows.final_report import final_report
from flows.ingest_parallel import ingest_parallel
from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from flows.scheduled import chase_open_campaigns, draft_open_campaigns, ingest_open_campaigns
from flows.unit_reports import unit_reports

TIMEZONE = "Asia/Shanghai"
INGEST_CRON = "*/5 * * * *"
CHASE_CRON = "0 9 * * *"
DRAFT_CRON = "0 18 * * *"
# Runs at the same time in one serving process; a final report waiting for approval holds one slot.
SERVE_LIMIT = 4
TAGS = ["nianbao"]
UNIT_REPORTS = "生成各单位自己的年度报告（设置 NIANBAO_DASK_ADDRESS 时分批在 Dask 集群上生成）。"
INGEST_RETURNS = ("接收一个年度收件箱中的报送文件并审核；max_files：最多领取的文件数（最早到达的先取），"
                  "并行接收时各运行各取一份。")
INGEST_PARALLEL = "多台机器并行接收一个年度的收件箱：启动 parts 个接收运行，各取约 1/parts 的文件，等待全部结束后汇总。"


def _deployment(flow: Flow[..., Any], name: str, description: str, *, cron: str | None = None,
                strategy: ConcurrencyLimitStrategy = ConcurrencyLimitStrategy.CANCEL_NEW,
                one_at_a_time: bool = True) -> RunnerDeployment:
    """One run at a time of a deployment (unless not one_at_a_time); CANCEL_NEW skips a run that finds the previous
    one still going."""
    deployment = flow.to_deployment(
        name, schedules=[Cron(cron, timezone=TIMEZONE)] if cron else None, description=description, tags=TAGS,
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=strategy) if one_at_a_time else None,
        # loaded by module path: the serving process may be started from any folder
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return cast(RunnerDeployment, deployment)  # to_deployment is sync here (async only in an event loop)


def deployments() -> list[RunnerDeployment]:
    """The deployments, as served by `nianbao serve`."""
    return [
        _deployment(ingest_open_campaigns, "every-5-min", cron=INGEST_CRON,
                    description="每5分钟接收所有在办年度收件箱中的报送文件并审核，更新填报进度。"),
        _deployment(chase_open_campaigns, "daily-0900", cron=CHASE_CRON,
                    description="每天9:00向逾期未报、未通过审核的单位发送催报。"),
        _deployment(draft_open_campaigns, "daily-1800", cron=DRAFT_CRON,
                    description="每天18:00生成所有在办年度的汇总报告草稿。"),
        _deployment(open_collection, "on-demand", strategy=ConcurrencyLimitStrategy.ENQUEUE,
                    description="开启年度填报：填写报告年度（year）和报送截止日期（deadline），向各单位下发工作簿。"),
        _deployment(final_report, "on-demand",
                    description="生成正式汇总报告并等待审批：在运行页面点击“Resume”填写审批结果。"),
        _deployment(unit_reports, "on-demand", description=UNIT_REPORTS),
        _deployment(ingest_returns, "on-demand", one_at_a_time=False, description=INGEST_RETURNS),
        _deployment(ingest_parallel, "on-demand", description=INGEST_PARALLEL),
    ]


def run(home: Path, port: int = DEFAULT_PORT, limit: int = SERVE_LIMIT) -> int:
    """Serve every deployment until interrupted, starting a local Prefect server if none is configured."""
    home = home.resolve()
    os.environ["NIANBAO_HOME"] = str(home)  # flow runs are child processes: same data folder whatever their cwd
    with prefect_server(home / "prefect-server", port=port) as url:
        os.environ["PREFECT_API_URL"] = url
        with temporary_settings(updates={PREFECT_API_URL: url}):
            # pause_on_shutdown=False: stopping or restarting this process leaves the schedules running
            serve(*deployments(), limit=limit, pause_on_shutdown=False)
    return 0
