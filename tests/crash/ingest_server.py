"""Ingest runs as real processes, forked on request from one that has imported everything once.

`python -m tests.crash.ingest_server` reads requests on stdin, one JSON object a line, and answers on stdout:

  {"run": ID, "env": {...}, "year": 2021, "inbox": PATH, "result": PATH, "log": PATH, "kill_at": POINT, "nth": N}
      fork a process that runs the ingest-returns flow -> {"run": ID, "pid": PID}; when it ends ->
      {"run": ID, "exit": CODE, "signal": SIGNAL or null}. With kill_at, the run SIGKILLs itself the nth time it
      passes that point (tasks/checkpoints.py). The result file gets the summary, how often each point was passed
      and when (seconds after the fork).
  {"kill": ID, "after": SECONDS}
      SIGKILL that run after the delay, unless it has ended by then.

Starting Python with Prefect, SQLAlchemy and the project costs ~3 s here; a fork costs milliseconds, so a test can
kill and rerun dozens of ingests in the time of a few. Each run is a process of its own all the same: its own pid
(the holder of its claim), its own database connections and Prefect client, and it dies for real. Only this
process forks and reaps them, and it kills a run only while the run is its unreaped child: a pid it signals is
never one the system has handed to another process since.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from collections import Counter
from typing import Any


def main() -> int:
    from cli.prefect_env import foreground_runs  # noqa: F401  (imported once, here, for every run)
    from flows.common import form_for
    from flows.ingest_returns import ingest_returns  # noqa: F401
    from tasks.answer_writing import compile_answer_templates

    form_for()  # loaded once: every run forked from here has it
    compile_answer_templates()
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    children: dict[int, Any] = {}  # pid -> run id
    pids: dict[Any, int] = {}  # run id -> pid, while unreaped
    timers: list[tuple[float, Any]] = []  # (when, run id) to kill
    pending = b""
    stdin = sys.stdin.fileno()
    open_input = True
    while open_input or children:
        wait = min((when - time.monotonic() for when, _ in timers), default=0.02)
        ready, _, _ = select.select([stdin] if open_input else [], [], [], max(0.0, min(wait, 0.02)))
        if ready:
            chunk = os.read(stdin, 65536)
            if not chunk:
                open_input = False
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                if "kill" in request:
                    timers.append((time.monotonic() + float(request["after"]), request["kill"]))
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(request)  # never returns
                children[pid] = request["run"]
                pids[request["run"]] = pid
                _say(out, {"run": request["run"], "pid": pid})
        now = time.monotonic()
        for when, run in [t for t in timers if t[0] <= now]:
            timers.remove((when, run))
            if run in pids:  # still our child, unreaped: its pid is its own
                os.kill(pids[run], signal.SIGKILL)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            run = children.pop(pid)
            pids.pop(run, None)
            _say(out, {"run": run, "exit": os.waitstatus_to_exitcode(status),
                       "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})
    return 0


def _say(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _child(request: dict[str, Any]) -> None:
    """One ingest run, in the forked process; ends it with os._exit (never back into the server's loop)."""
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)  # the server's stdout is its answer channel: a run never writes there
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        code = _run(request)
    except BaseException:  # noqa: B036  (whatever happens, this process must not return into the server)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(request: dict[str, Any]) -> int:
    from cli.prefect_env import foreground_runs
    from flows.ingest_returns import ingest_returns
    from schemas.settings import get_settings
    from tasks import checkpoints

    forked = time.monotonic()
    for name, value in request["env"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()
    passed: Counter[str] = Counter()
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    kill_at, nth = request.get("kill_at"), int(request.get("nth") or 0)

    def hook(point: str) -> None:
        passed[point] += 1
        first.setdefault(point, time.monotonic() - forked)
        last[point] = time.monotonic() - forked
        if point == kill_at and passed[point] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoints.install(hook)
    with foreground_runs():
        summary = ingest_returns(int(request["year"]), request["inbox"])
    result = {"summary": summary.model_dump(exclude={"answers"}), "passed": dict(passed), "first": first,
              "last": last, "seconds": time.monotonic() - forked}
    with open(request["result"], "w", encoding="utf-8") as file:
        json.dump(result, file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
