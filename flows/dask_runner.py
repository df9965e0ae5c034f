"""A Dask task runner, for a flow whose batches are worth spreading over several machines (optional: prefect-dask).

NIANBAO_DASK_ADDRESS names a running scheduler (`dask scheduler` on one machine, `dask worker tcp://HOST:8786` on
each machine that lends its cores, each started from this repository, installed with the dask extra, with the same
NIANBAO_* settings), or 'local' for a cluster of this machine's cores, made for the run and closed after it. Prefect
ships each task with the run's context (its API URL included), so a Dask worker needs no Prefect settings of its own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect_dask.task_runners import DaskTaskRunner

LOCAL = "local"


class DaskUnavailable(RuntimeError):
    """NIANBAO_DASK_ADDRESS is set but prefect-dask is not installed."""


def dask_task_runner(address: str, workers: int | None = None) -> DaskTaskRunner:
    """A task runner on the scheduler at address, or on a local cluster of `workers` processes (default: one a
    core) for 'local'."""
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError as exc:  # an optional extra: the default runner needs none of it
        raise DaskUnavailable("NIANBAO_DASK_ADDRESS is set but prefect-dask is not installed: "
                              "pip install -e '.[dask]'") from exc
    if address != LOCAL:
        return DaskTaskRunner(address=address)
    # one single-threaded process a worker: rendering a PDF holds the GIL. The scheduler's HTTP endpoint on a free
    # port: the default 8787 may be another run's (it would warn, and take another anyway)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers or _cores(), "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": "127.0.0.1:0"})


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
