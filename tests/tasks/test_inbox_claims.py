"""Claiming the inbox: two runs never take the same file, none is lost, a dead run's files are taken over."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tasks.inbox as inbox_module
from tasks.inbox import CLAIMS, STALE_CLAIM, claim_new_files, kept_alive, move_processed, release


def _drop(inbox: Path, n: int) -> set[str]:
    (inbox / "T001").mkdir(parents=True)
    names = set()
    for i in range(n):
        path = inbox / (f"T001/回执{i}.xlsx" if i % 5 == 0 else f"报表{i}.xlsx")
        path.write_bytes(f"file {i}".encode())
        names.add(str(path.relative_to(inbox)))
    return names


def test_two_runs_at_once_share_the_inbox_without_overlap(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    dropped = _drop(inbox, 400)
    claims = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        claims.append(claim_new_files(inbox))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    taken = [{str(p.relative_to(c.root)) for p in c.paths} for c in claims]
    assert taken[0] & taken[1] == set()
    assert taken[0] | taken[1] == dropped  # every file claimed by exactly one run, unit folders kept
    for claim in claims:
        assert all(p.is_file() for p in claim.paths)


def test_a_claim_left_by_a_dead_run_is_taken_over_once_stale(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    dropped = _drop(inbox, 6)
    started = datetime(2022, 1, 10, 8, 0, tzinfo=UTC)
    dead = claim_new_files(inbox, now=started)  # ... and the run dies before storing anything

    assert claim_new_files(inbox, now=started + STALE_CLAIM / 2).paths == []  # still its owner's
    late = claim_new_files(inbox, now=started + STALE_CLAIM + timedelta(minutes=1))

    assert {str(p.relative_to(late.root)) for p in late.paths} == dropped
    for path in late.paths:
        move_processed(path, late.root, tmp_path / "processed")
    release(late)
    assert not dead.root.exists() and not (inbox / CLAIMS).exists()
    assert sorted(p.name for p in (tmp_path / "processed").rglob("*.xlsx")) == sorted(Path(n).name for n in dropped)
    assert all(p.parent.name == "T001" for p in (tmp_path / "processed").rglob("回执*.xlsx"))


def test_a_file_of_the_same_name_in_a_dead_claim_and_in_the_inbox_both_survive(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "报表.xlsx").write_bytes(b"first")
    started = datetime(2022, 1, 10, 8, 0, tzinfo=UTC)
    claim_new_files(inbox, now=started)  # its run dies
    (inbox / "报表.xlsx").write_bytes(b"second")  # the unit sends again under the same name

    late = claim_new_files(inbox, now=started + STALE_CLAIM + timedelta(minutes=1))

    assert sorted(p.read_bytes() for p in late.paths) == [b"first", b"second"]
    assert len(set(late.paths)) == 2


def test_a_claim_kept_alive_is_not_taken_however_long_its_run_works(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, 3)
    long_ago = datetime.now(UTC) - 10 * STALE_CLAIM
    slow = claim_new_files(inbox, now=long_ago)  # started long ago, still working (a slow mail server, say)
    with kept_alive(slow, every_seconds=0.01):
        time.sleep(0.2)
        assert claim_new_files(inbox).paths == []
    assert len(claim_new_files(inbox, now=datetime.now(UTC) + STALE_CLAIM * 2).paths) == 3  # silent since: taken


@pytest.mark.parametrize("rename", ["renameat2", "reserve-then-replace"])
def test_files_of_one_name_moved_at_once_by_many_movers_all_survive(tmp_path: Path, rename: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs and their worker processes move returns at the same time; a unit's file name recurs. Both ways of
    moving without replacing: the one-call rename of Linux, and the way taken where it is not supported."""
    if rename == "renameat2":
        assert inbox_module._RENAMEAT2 is not None, "this Linux has renameat2 (glibc 2.28+)"
    else:
        monkeypatch.setattr(inbox_module, "_RENAMEAT2", None)
    movers, files = 8, 40
    sources = []
    for m in range(movers):
        root = tmp_path / f"claim{m}"
        root.mkdir()
        for f in range(files):
            (root / f"报表{f}.xlsx").write_bytes(f"{m}-{f}".encode())
        sources.append(root)
    start = threading.Barrier(movers)

    def move_all(root: Path) -> None:
        start.wait()
        for f in range(files):
            move_processed(root / f"报表{f}.xlsx", root, tmp_path / "processed")

    threads = [threading.Thread(target=move_all, args=(root,)) for root in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    moved = sorted(p.read_bytes().decode() for p in (tmp_path / "processed").rglob("*.xlsx"))
    assert moved == sorted(f"{m}-{f}" for m in range(movers) for f in range(files))
    assert all(not any(root.iterdir()) for root in sources)
