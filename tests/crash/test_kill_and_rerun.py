"""An ingest run killed with SIGKILL at any moment, then run again, has the effect of one uninterrupted run.

On SQLite and on PostgreSQL: a campaign's inbox of a few dozen returns (accepted, rejected, resubmissions of the
same units, duplicates, a wrong unit's workbook, files that are no workbook, a file stored before dropped again)
is ingested once without interruption, for the reference. Then, each time on a fresh copy of the same campaign,
a real ingest process is killed: at each point of tasks/checkpoints.py in turn (the nth time it passes there,
n drawn at random), twice in a row (the second run killed too, for instance as it takes the first one's claim
over), or after a random delay. Then ingest runs again to the end, straight away: a dead run's claim is taken
over at once, not after 30 minutes. The outcome must be the reference's (every file archived, stored once,
answered once with one .txt and one .eml, moved to processed/; no submission without its figures, no version
skipped or doubled, no assignment pointing nowhere, the ledger settled), whatever the moment of the kill.

NIANBAO_CRASH_KILLS sets how many kills on each database (default 12); NIANBAO_CRASH_SEED replays a draw (the
seed is in every failure message).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from tasks.checkpoints import POINTS
from tasks.db import get_engine
from tests.conftest import DEADLINE, POSTGRES_URL
from tests.crash.harness import (
    YEAR,
    IngestServer,
    Prepared,
    check_invariants,
    differences,
    earlier_returns,
    fill_inbox,
    inbox_files,
    observe,
    processed_files,
)
from tests.factories import register_units
from tests.mail_server import smtp_server

pytestmark = pytest.mark.usefixtures("prefect_harness")
log = logging.getLogger(__name__)
KILLS = int(os.environ.get("NIANBAO_CRASH_KILLS", "12"))  # on each database
SEED = int(os.environ.get("NIANBAO_CRASH_SEED", str(time.time_ns() % 1_000_000)))
EARLIER = {"G001#1 inbox/G001-早报.xlsx", "T001#1 inbox/T001-早报.xlsx"}  # answered before, by .eml
CONCURRENT_TRIALS = int(os.environ.get("NIANBAO_CRASH_CONCURRENT", "2"))  # on each database
PARALLEL = 2  # trials at once: each is a handful of short processes, mostly waiting on the database or Prefect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestServer]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NIANBAO_")}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    ingest = IngestServer(tmp_path_factory.mktemp("ingest-server"), env)
    yield ingest
    ingest.close()


@dataclass(frozen=True)
class Kill:
    """Where a run is killed: the nth pass of a point, or after a delay (seconds after it starts)."""

    point: str | None = None
    nth: int = 0
    after: float | None = None

    def __str__(self) -> str:
        return f"{self.point} #{self.nth}" if self.point else f"after {self.after:.2f} s"


@dataclass
class Trial:
    kills: list[Kill]
    done: int = 0  # kills that happened (a run may end before its delay, or never pass its point)
    wrong: list[str] | None = None


def test_a_killed_ingest_rerun_has_the_effect_of_one_run(settings: Settings, units_file: Path, form: FormSpec,
                                                          tmp_path: Path, server: IngestServer) -> None:
    """The module's test: kills at every point, twice in a row, at random moments; the reference outcome each time."""
    prepared = _prepare(settings, units_file, form)
    inputs = inbox_files(settings.inbox_dir(YEAR)) + processed_files(settings.home)  # and the earlier two
    home, url = prepared.copy(tmp_path / "reference")
    end = server.wait(server.start(home=home, database_url=url))
    assert end.exit == 0 and end.result is not None, end.log[-3000:]
    reference = observe(home, url)
    assert check_invariants(reference, inputs, home) == []
    assert len(reference["answers"]) == sum(inputs.values())  # one a file
    assert end.result["summary"]["files"] == sum(inputs.values()) - 2
    passed, timing = end.result["passed"], (end.result["first"]["claim.moved"], end.result["last"]["file.moved"])
    copies = itertools.count()
    rng = random.Random(SEED)

    def run(trial: Trial) -> Trial:
        folder = tmp_path / f"trial-{next(copies)}"
        home, url = prepared.copy(folder)
        try:
            for n, kill in enumerate(trial.kills):
                end = server.wait(server.start(home=home, database_url=url, kill_at=kill.point, nth=kill.nth,
                                               kill_after=kill.after))
                assert end.killed or end.exit == 0, end.log[-3000:]
                # a first run passes each point as often as the reference did: it must die there
                assert end.killed or n > 0 or kill.point is None, f"{kill} not reached"
                trial.done += end.killed
            end = server.wait(server.start(home=home, database_url=url))
            assert end.exit == 0, end.log[-3000:]
            outcome = observe(home, url)
            trial.wrong = check_invariants(outcome, inputs, home) + differences(outcome, reference)
        finally:
            prepared.drop(url)
        if not trial.wrong:
            shutil.rmtree(folder)
        return trial

    trials = _plans(rng, passed, timing, KILLS)
    with ThreadPoolExecutor(PARALLEL) as pool:
        finished = list(pool.map(run, trials))
        while sum(t.done for t in finished) < KILLS:  # a run that ended before its delay: kill another one
            finished.append(pool.submit(run, Trial([_random_delay(rng, timing)])).result())
    failed = [f"{', '.join(map(str, t.kills))}: {t.wrong}" for t in finished if t.wrong]
    kills = sum(t.done for t in finished)
    log.warning("%s: %d kills in %d trials (seed %d)", settings.db_url.split(":")[0], kills, len(finished), SEED)
    assert not failed, f"seed {SEED}:\n" + "\n".join(failed)


def test_a_run_killed_among_others_at_work_loses_nothing(settings: Settings, units_file: Path, form: FormSpec,
                                                          tmp_path: Path, server: IngestServer) -> None:
    """Four runs at once over one inbox, one of them killed (at a point, or after a delay): the other three go on,
    and the next run takes over what the dead one held. They store in the order they get to, so versions need not
    follow arrival here: the invariants must hold, and each unit's latest and accepted returns are the latest
    arrivals."""
    prepared = _prepare(settings, units_file, form)
    inputs = inbox_files(settings.inbox_dir(YEAR)) + processed_files(settings.home)
    rng = random.Random(SEED)
    points = [p for p in POINTS if p not in ("claim.adopted", "ingest.done")]  # (passed with no file too)
    kills = 0
    for n in range(CONCURRENT_TRIALS):
        home, url = prepared.copy(tmp_path / f"trial-{n}")
        # the first pass of a point (the run may get few files), or a moment while four runs start and work
        kill = Kill(rng.choice(points), 1) if n % 2 == 0 else Kill(after=rng.uniform(0.3, 1.2))
        try:
            runs = [server.start(home=home, database_url=url, kill_at=kill.point if r == 0 else None,
                                 nth=kill.nth if r == 0 else 0, kill_after=kill.after if r == 0 else None)
                    for r in range(4)]
            ends = [server.wait(run) for run in runs]
            assert all(e.exit == 0 for e in ends[1:]) and (ends[0].killed or ends[0].exit == 0), [
                e.log[-2000:] for e in ends]
            kills += ends[0].killed
            final = server.wait(server.start(home=home, database_url=url))
            assert final.exit == 0, final.log[-3000:]
            wrong = check_invariants(observe(home, url), inputs, home)
        finally:
            prepared.drop(url)
        assert wrong == [], f"seed {SEED}, {kill}: {wrong}"
    log.warning("%s: %d of %d runs killed among others", settings.db_url.split(":")[0], kills, CONCURRENT_TRIALS)


def test_over_smtp_a_killed_run_rerun_sends_each_answer_once(settings: Settings, units_file: Path,
                                                              form: FormSpec, tmp_path: Path,
                                                              server: IngestServer) -> None:
    """With an SMTP server, killed at points outside an SMTP conversation, then run again: every answer reaches
    the server once. (Killed inside one, a message may have gone out before its outcome was recorded: the next
    run sends it again, with the same Message-ID, as tasks/mail_ledger.py decides. So the inbox goes in one batch
    here: with several, one batch's conversation overlaps another's steps.)"""
    prepared = _prepare(settings, units_file, form)
    inputs = inbox_files(settings.inbox_dir(YEAR)) + processed_files(settings.home)
    rng = random.Random(SEED)
    # before the mails are sent, after, and after the files are moved; and one more drawn from the rest
    points = ["store.committed", "mail.recorded", "file.moved"]
    points.append(rng.choice([p for p in POINTS if p not in (*points, "mail.written", "claim.adopted")]))
    batch = 100  # every file in one batch

    per_file = ("claim.moved", "archive.written", "answer.written", "file.moved")  # the others, once a batch
    kills = [Kill(point, rng.randint(1, 3) if point in per_file else 1) for point in points]

    def run(n: int, kill: Kill) -> str:
        home, url = prepared.copy(tmp_path / f"trial-{n}")
        with smtp_server() as (port, smtp):
            env = {"NIANBAO_SMTP_HOST": "127.0.0.1", "NIANBAO_SMTP_PORT": str(port),
                   "NIANBAO_SMTP_SECURITY": "none", "NIANBAO_SMTP_TIMEOUT": "5",
                   "NIANBAO_MAIL_FROM": "xxgk@example.gov.cn", "NIANBAO_MAIL_RETRIES": "0"}
            try:
                end = server.wait(server.start(home=home, database_url=url, kill_at=kill.point, nth=kill.nth,
                                               env=env, batch_size=batch))
                assert end.killed, end.log[-3000:]
                final = server.wait(server.start(home=home, database_url=url, env=env, batch_size=batch))
                assert final.exit == 0, final.log[-3000:]
                outcome = observe(home, url)
            finally:
                prepared.drop(url)
            received = Counter(str(got.message["Message-ID"]) for got in smtp.received)
        wrong = check_invariants(outcome, inputs, home, mailed="sent", mailed_before=EARLIER)
        owed = [s for s in outcome["submissions"] if s[1] is not None and s[0] not in EARLIER]
        if len(received) != len(owed) or set(received.values()) != {1}:
            wrong.append(f"{len(received)} mails received for {len(owed)} returns, "
                         f"{[k for k, v in received.items() if v > 1]} more than once")
        return f"{kill}: {wrong}" if wrong else ""

    with ThreadPoolExecutor(PARALLEL) as pool:
        failed = [f for f in pool.map(run, range(len(kills)), kills) if f]
    assert not failed, f"seed {SEED}:\n" + "\n".join(failed)


def _prepare(settings: Settings, units_file: Path, form: FormSpec) -> Prepared:
    """The campaign opened, two returns stored by an earlier ingest, the inbox filled: the state each trial copies."""
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    earlier, kept = settings.home / "earlier", settings.home.parent / "earlier-kept"
    earlier_returns(settings, form, earlier)
    shutil.copytree(earlier, kept)  # the ingest moves them away
    ingest_returns(YEAR, str(earlier))
    fill_inbox(settings, form, settings.inbox_dir(YEAR), sorted(kept.iterdir()))
    get_engine(settings.db_url).dispose()  # a database copied from as a template has no one connected
    return Prepared(settings.home, settings.database_url, POSTGRES_URL)


def _plans(rng: random.Random, passed: dict[str, int], timing: tuple[float, float], kills: int) -> list[Trial]:
    """Every point once (a random pass of it), then runs killed twice, then random moments, `kills` in all."""
    points = [p for p in POINTS if passed.get(p)]
    assert set(POINTS) - set(points) == {"claim.adopted"}, passed  # every other point is passed by a whole run
    plans = [Trial([Kill(p, rng.randint(1, passed[p]))]) for p in points]
    planned = len(plans)
    while planned < kills:
        if planned % 3 == 0 and planned + 2 <= kills:
            first = rng.choice(points)
            second = rng.choice([Kill("claim.adopted", 1), Kill(rng.choice(points), 1), _random_delay(rng, timing)])
            plans.append(Trial([Kill(first, rng.randint(1, passed[first])), second]))
            planned += 2
        else:
            plans.append(Trial([_random_delay(rng, timing)]))
            planned += 1
    return plans


def _random_delay(rng: random.Random, timing: tuple[float, float]) -> Kill:
    """A moment while the reference run was at work (from claiming to its last move), or a little around it."""
    start, end = timing
    return Kill(after=rng.uniform(max(0.0, start - 0.2), end + 0.1))
