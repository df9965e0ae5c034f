"""One ingest run in its own process, started on a signal: `python -m tests.concurrency.run_ingest YEAR INBOX GATE`.

It announces itself ready (GATE.ready-<pid>), waits until GATE exists, runs the ingest-returns flow and prints the
summary as JSON. Two of these released by the same gate are two real ingest runs at the same time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    year, inbox, gate = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    from cli.prefect_env import foreground_runs
    from flows.ingest_returns import ingest_returns

    Path(f"{gate}.ready-{id(gate)}-{time.time_ns()}").touch()
    while not gate.exists():
        time.sleep(0.005)
    started = time.time()
    with foreground_runs():
        summary = ingest_returns(year, inbox)
    result = {**summary.model_dump(exclude={"answers"}), "started": started, "ended": time.time()}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
