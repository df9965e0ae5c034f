"""Every deployment of nianbao, served from one process: `nianbao serve` / `make serve`.

Schedules are in China time: ingest every 5 minutes, chase at 09:00, a draft report at 18:00 (each over every
open campaign); open-collection and final-report run on demand from the UI's Run form (year, deadline).
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
from flows.open_collection import open_collection
from flows.scheduled import chase_open_campaigns, draft_open_campaigns, ingest_open_campaigns

TIMEZONE = "Asia/Shanghai"
INGEST_CRON = "*/5 * * * *"
CHASE_CRON = "0 9 * * *"
DRAFT_CRON = "0 18 * * *"
# Runs at the same time in one serving process; a final report waiting for approval holds one slot.
SERVE_LIMIT = 4
TAGS = ["nianbao"]


def _deployment(flow: Flow[..., Any], name: str, description: str, *, cron: str | None = None,
                strategy: ConcurrencyLimitStrategy = ConcurrencyLimitStrategy.CANCEL_NEW) -> RunnerDeployment:
    """One run at a time of each deployment; CANCEL_NEW skips a run that finds the previous one still going."""
    deployment = flow.to_deployment(
        name, schedules=[Cron(cron, timezone=TIMEZONE)] if cron else None, description=description, tags=TAGS,
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=strategy),
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
