"""Flow run names a person can tell apart in the UI: the year, what the run does, and when it started."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from prefect.runtime import flow_run

CHINA = ZoneInfo("Asia/Shanghai")


def run_name(what: str) -> Callable[[], str]:
    """A flow_run_name callable: '2021年度-接收报送-2022-01-15 09:05' (China time); no year for all-year runs."""

    def name() -> str:
        year = flow_run.parameters.get("year")
        prefix = f"{year}年度-" if year is not None else ""
        return f"{prefix}{what}-{datetime.now(CHINA):%Y-%m-%d %H:%M}"

    return name
