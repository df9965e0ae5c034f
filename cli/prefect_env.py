"""Prefect settings for running offline on one machine; applied before prefect is first imported."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # the temporary local server needs 6-14 s to start here; Prefect's default 20 s is too close
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def configure_prefect(home: Path) -> None:
    """Default Prefect to a local, analytics-free setup under the data folder; explicit settings win."""
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
        os.environ["PREFECT_HOME"] = str((home / "prefect").resolve())


@contextmanager
def foreground_runs() -> Iterator[None]:
    """Settings for flows the CLI runs in the foreground, while the person who started them waits.

    Flow-run heartbeats exist so that a server can tell a crashed run of a deployment from a live one; a run in
    this terminal ends or fails in front of its user. Prefect joins the heartbeat thread at the end of every flow,
    which sleeps in whole seconds: up to 1 s added to each command. Served deployments keep their heartbeats.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
