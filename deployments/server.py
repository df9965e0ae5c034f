"""A local Prefect server for `nianbao serve` when none is configured.

With PREFECT_API_URL unset, `prefect server start` runs as a child process on 127.0.0.1 (port 4200 by default)
with its own PREFECT_HOME under the data folder, and this process is pointed at it. A server already answering
on that port (started by hand earlier) is used as it is. With PREFECT_API_URL set, nothing is started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_PORT = 4200


class ServerError(RuntimeError):
    """The local Prefect server did not come up."""


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers at this URL (…/api)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]


def server_environment(prefect_home: Path, url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update({"PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "true"})
    # the UI asks the API at port 4200 unless told otherwise, whatever --port says
    env.setdefault("PREFECT_UI_API_URL", url)
    return env


@contextmanager
def prefect_server(prefect_home: Path, port: int = DEFAULT_PORT, wait_seconds: float = 120.0) -> Iterator[str]:
    """Yield the URL of a running Prefect API; start (and at the end stop) a local server if there is none."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    url = api_url(port)
    if is_healthy(url):
        yield url
        return
    prefect_home.mkdir(parents=True, exist_ok=True)
    with (prefect_home / "server.log").open("ab") as log:
        process = subprocess.Popen(server_command(port), env=server_environment(prefect_home, url),
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(process, url, wait_seconds, prefect_home / "server.log")
            yield url
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = 20) -> None:
    """Ask a child process to stop; kill it if it has not within the grace period."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_healthy(process: subprocess.Popen[bytes], url: str, wait_seconds: float, log: Path) -> None:
    """Return once the server at `url` answers; raise ServerError, naming the log, if it exits or never does."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"prefect server exited with code {process.returncode}; {log} ends:\n{_tail(log)}")
        if is_healthy(url):
            return
        time.sleep(0.5)
    raise ServerError(f"prefect server did not answer at {url} within {wait_seconds:.0f} s; {log} ends:\n{_tail(log)}")


def _tail(log: Path, characters: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-characters:]
    except OSError as error:
        return f"(unreadable: {error})"
