"""Claiming the inbox: two runs never take the same file, none is lost, a dead run's files are taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tasks.inbox as inbox_module
from tasks.inbox import CLAIMS, STALE_CLAIM, Holder, claim_new_files, kept_alive, move_processed, release, this_process

ROOT = Path(__file__).resolve().parents[2]


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

    assert late.adopted == (dead.root,)  # taken over whole: the files stay where the dead run left them
    assert {str(p.relative_to(dead.root)) for p in late.paths} == dropped
    for path in late.paths:
        move_processed(path, late.root_of(path), tmp_path / "processed")
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


CLAIM_AND_EXIT = "import sys; from pathlib import Path; from tasks.inbox import claim_new_files; " \
                 "claim_new_files(Path(sys.argv[1])); Path(sys.argv[2]).touch()"


def _process_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_the_claim_of_a_run_whose_process_has_ended_is_taken_over_at_once(tmp_path: Path) -> None:
    """A run killed right after claiming: the next run, a moment later on the same machine, need not wait
    STALE_CLAIM for its files. Taken over while the dead process is still a zombie (not yet reaped by its parent),
    and by one run only, however many look at once."""
    inbox = tmp_path / "inbox"
    dropped = _drop(inbox, 7)
    done = tmp_path / "claimed"
    dead = subprocess.Popen([sys.executable, "-c", CLAIM_AND_EXIT, str(inbox), str(done)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (done.exists() and _process_state(dead.pid) == "Z"):  # claimed, exited, not reaped
            assert time.monotonic() < deadline and dead.returncode is None
            time.sleep(0.01)
        [dead_root] = list((inbox / CLAIMS).iterdir())  # made a moment ago: by time alone, far from stale

        claims = []
        start = threading.Barrier(4)

        def run() -> None:
            start.wait()
            claims.append(claim_new_files(inbox))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        dead.wait()
    [taker] = [c for c in claims if c.paths]
    assert taker.adopted == (dead_root,) and all(c.adopted == () for c in claims if c is not taker)
    assert {str(p.relative_to(dead_root)) for p in taker.paths} == dropped
    assert [p.name for p in dead_root.iterdir() if p.name.startswith(".alive")] == [
        f".alive.{this_process().token}"]  # its holder file renamed to the taker's


def _claim_held_by(inbox: Path, holder: Holder) -> Path:
    """A claim as a run of that holder leaves it: made now, its holder file named after it."""
    mine = claim_new_files(inbox)
    [holder_file] = [p for p in mine.root.iterdir() if p.name.startswith(".alive")]
    holder_file.rename(mine.root / f".alive.{holder.token}")
    return mine.root


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_pid_now_running_another_program_does_not_keep_a_claim(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, 3)
    me = this_process()
    root = _claim_held_by(inbox, Holder(me.host, me.machine, me.pid, start=str(int(me.start) - 1)))

    assert claim_new_files(inbox).adopted == (root,)


def test_a_claim_held_on_another_machine_waits_for_stale_claim(tmp_path: Path) -> None:
    """Its pid means nothing here (it may be alive there): only a claim silent for STALE_CLAIM is taken over.
    The same host name with another boot or pid namespace is another machine too (a container, a reboot)."""
    me = this_process()
    for n, holder in enumerate([Holder("other-host", me.machine, 999_999, "1"),
                                Holder(me.host, "another-boot/pid:[1]", 999_999, "1"),
                                Holder(me.host, "", 999_999, "1")]):
        inbox = tmp_path / f"inbox{n}"
        _drop(inbox, 3)
        root = _claim_held_by(inbox, holder)

        now = claim_new_files(inbox)
        assert now.paths == [], holder
        release(now)
        later = claim_new_files(inbox, now=datetime.now(UTC) + STALE_CLAIM + timedelta(minutes=1))
        assert later.adopted == (root,) and len(later.paths) == 3, holder


def test_a_released_claim_that_keeps_a_file_is_taken_over_once_its_run_has_ended(tmp_path: Path) -> None:
    """A file that could not be moved out stays claimed, with its holder file: the next run tries it again."""
    inbox = tmp_path / "inbox"
    _drop(inbox, 2)
    claim = claim_new_files(inbox)
    release(claim)

    assert sorted(p.name for p in claim.root.rglob("*") if p.is_file() and not p.name.startswith(".")) == sorted(
        p.name for p in claim.paths)
    assert claim_new_files(inbox).paths == []  # its run (this process) is alive


def test_claim_folders_left_half_made_or_half_removed_are_cleared_by_the_next_run(tmp_path: Path) -> None:
    """A run killed between making its claim folder and naming itself in it, or while removing it, leaves an
    empty folder behind: the next run's release clears it, and keeps a folder that still holds a file."""
    inbox = tmp_path / "inbox"
    _drop(inbox, 2)
    claims = inbox / CLAIMS
    (claims / ".new-20220110T080000-0badc0de").mkdir(parents=True)  # made, its holder file not yet in it
    (claims / "20220110T080000-1badc0de" / "T001").mkdir(parents=True)  # its holder file and files removed
    recent = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-2badc0de"  # an earlier version's, not yet stale by its name
    kept = claims / recent / "T001"
    kept.mkdir(parents=True)
    (kept / "报表.xlsx").write_bytes(b"a file an earlier version's run holds")

    run = claim_new_files(inbox)
    for path in run.paths:
        move_processed(path, run.root_of(path), tmp_path / "processed")
    release(run)

    assert sorted(p.relative_to(claims).as_posix() for p in claims.rglob("*")) == [
        recent, f"{recent}/T001", f"{recent}/T001/报表.xlsx"]


def _aged(inbox: Path, n: int) -> list[str]:
    """n files in the inbox, arriving a minute apart in an order other than their names'; oldest first."""
    inbox.mkdir(parents=True)
    start = datetime(2022, 1, 10, 8, 0, tzinfo=UTC).timestamp()
    order = [f"报表{(7 * i) % n:03d}.xlsx" for i in range(n)]  # 7 and n coprime: every name once
    for minute, name in enumerate(order):
        (inbox / name).write_bytes(name.encode())
        os.utime(inbox / name, (start + 60 * minute, start + 60 * minute))
    return order


def test_a_bounded_claim_takes_the_oldest_files_and_leaves_the_rest(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    order = _aged(inbox, 10)

    first = claim_new_files(inbox, limit=3)
    rest = claim_new_files(inbox)

    assert [p.name for p in first.paths] == order[:3]
    assert [p.name for p in rest.paths] == order[3:]


def test_runs_at_once_with_shares_that_add_up_to_the_inbox_take_a_share_each(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    order = _aged(inbox, 400)
    claims = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()  # all four go down the same list at once, past the files the others took
        claims.append(claim_new_files(inbox, limit=100))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    taken = [[p.name for p in claim.paths] for claim in claims]
    assert [len(names) for names in taken] == [100] * 4
    assert sorted(name for names in taken for name in names) == sorted(order)  # each file once
    assert all(names == sorted(names, key=order.index) for names in taken)  # each share oldest first


def test_a_bounded_claim_takes_a_dead_runs_claim_over_whole_besides_its_share(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    dropped = _drop(inbox, 6)
    started = datetime(2022, 1, 10, 8, 0, tzinfo=UTC)
    dead = claim_new_files(inbox, now=started)  # its run dies
    for i in range(4):
        (inbox / f"新报表{i}.xlsx").write_bytes(f"new {i}".encode())

    late = claim_new_files(inbox, now=started + STALE_CLAIM + timedelta(minutes=1), limit=2)

    assert late.adopted == (dead.root,)
    assert {str(p.relative_to(dead.root)) for p in late.paths if p.is_relative_to(dead.root)} == dropped
    assert len([p for p in late.paths if p.is_relative_to(late.root)]) == 2
    assert len(list(inbox.glob("新报表*.xlsx"))) == 2  # the rest wait for the next run


def test_files_left_alone_for_their_names_are_told_once_they_have_been_there_a_while(tmp_path: Path) -> None:
    """Lock files, hidden and temporary names are never claimed (a copy may still be writing them); those older
    than a copy takes are listed, so that a return named "~城关镇.xlsx" is not waited for unseen."""
    inbox = tmp_path / "inbox"
    (inbox / "T001").mkdir(parents=True)
    now = datetime(2022, 1, 10, 12, 0, tzinfo=UTC)
    old, young = now - inbox_module.SKIPPED_AFTER - timedelta(seconds=1), now - timedelta(minutes=1)
    for name, moment in [("城郊乡.xlsx", old), ("~$城郊乡.xlsx", old), (".~lock.城郊乡.xlsx#", old),
                         ("T001/~城关镇.xlsx", old), ("城关镇.xlsx.part", young), (".正在复制.xlsx", young)]:
        path = inbox / name
        path.write_bytes(b"PK")
        os.utime(path, (moment.timestamp(), moment.timestamp()))
    assert inbox_module.skipped_files(inbox, now=now) == [".~lock.城郊乡.xlsx#", "T001/~城关镇.xlsx", "~$城郊乡.xlsx"]
    claim = claim_new_files(inbox, now=now)
    assert [p.name for p in claim.paths] == ["城郊乡.xlsx"]  # the others stay where they are
    release(claim)
    assert inbox_module.skipped_files(inbox, now=now + timedelta(hours=1)) == [
        ".~lock.城郊乡.xlsx#", ".正在复制.xlsx", "T001/~城关镇.xlsx", "~$城郊乡.xlsx", "城关镇.xlsx.part"]
