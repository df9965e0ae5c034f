"""The inbox folder: which files are new, claim them, archive them first, move them aside once stored.

Files directly in the inbox come from an unknown sender (the signed identity says whose they are). Files in a
subfolder named after a unit code came from that unit, and must be that unit's workbook.

An ingest run first claims the waiting files by renaming them into a folder of its own (`.claimed/<run>/`, same
layout): a rename is atomic, so two runs over the same inbox (two workers on shared storage, or a scheduled run
overlapping a manual one) never take the same file. A working run marks its claim alive every minute; a run that
dies leaves its claim behind, and once it has shown no sign of life for STALE_CLAIM the next run takes those files
over (storing is idempotent by content hash, so a file half-done is simply done again).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from tasks.archive import receive_bytes
from tasks.ingest import Incoming

_IGNORED_PREFIXES = ("~$", ".", "~")  # Excel/WPS lock files and hidden files are not returns
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload")
CLAIMS = ".claimed"
ALIVE = ".alive"  # in a claim folder: its run refreshes the modification time while it works
STALE_CLAIM = timedelta(minutes=30)  # no sign of life for this long: the run died


@dataclass(frozen=True)
class Claim:
    """The files one run took from the inbox; unit subfolders keep their names under root."""

    root: Path
    paths: list[Path]


def count_waiting(inbox: Path) -> int:
    """How many files wait in the inbox (a claim may take fewer: another run may take some first)."""
    return len(_waiting(inbox))


def claim_new_files(inbox: Path, now: datetime | None = None) -> Claim:
    """Take every waiting file (and those of claims gone stale) into a new claim folder of this run, oldest first."""
    moment = now or datetime.now(UTC)
    root = inbox / CLAIMS / f"{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    sources = [(arrival, inbox, path) for arrival, path in _waiting(inbox)]
    for stale in _stale_claims(inbox, moment):
        sources += [(arrival, stale, path) for arrival, path in _waiting(stale)]
    root.mkdir(parents=True)
    _touch(root / ALIVE, moment)
    taken = []
    for _, source_root, path in sorted(sources, key=lambda source: source[0]):
        # under its name, or name.1 ... beside a stale claim's file of that name; the move keeps the modification
        # time, the arrival time. None: another run claimed it first
        claimed = _move_to_free_name(path, root / path.relative_to(source_root))
        if claimed is not None:
            taken.append(claimed)
    return Claim(root, taken)


def _waiting(folder: Path) -> list[tuple[tuple[float, str], Path]]:
    """(arrival, path) of the files waiting in a folder and one level of unit folders under it; the arrival is
    the modification time (then the name), read once."""
    found: list[tuple[tuple[float, str], Path]] = []

    def add(entry: os.DirEntry[str]) -> None:
        if entry.name.startswith(_IGNORED_PREFIXES) or entry.name.endswith(_IGNORED_SUFFIXES):
            return
        try:
            found.append(((entry.stat().st_mtime, entry.name), Path(entry.path)))
        except FileNotFoundError:
            pass  # claimed by another run meanwhile

    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if entry.is_file():
            add(entry)
        elif entry.is_dir() and not entry.name.startswith("."):
            try:
                with os.scandir(entry.path) as unit_folder:
                    for inner in unit_folder:
                        if inner.is_file():
                            add(inner)
            except FileNotFoundError:
                continue
    return found


@contextmanager
def kept_alive(claim: Claim, every_seconds: float = 60.0) -> Iterator[None]:
    """Mark the claim alive while its run works (a slow mail server may hold a run for long), from a thread."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_seconds):
            _touch(claim.root / ALIVE, datetime.now(UTC))

    thread = threading.Thread(target=beat, name="claim-alive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def release(claim: Claim) -> None:
    """Remove the claim's folders once every file has moved on (a folder still holding a file is kept)."""
    (claim.root / ALIVE).unlink(missing_ok=True)
    for folder in sorted((p for p in claim.root.rglob("*") if p.is_dir()), reverse=True):
        _remove_if_empty(folder)
    _remove_if_empty(claim.root)
    for stale in _stale_claims(claim.root.parent.parent, datetime.now(UTC)):
        if not any(p.is_file() and p.name != ALIVE for p in stale.rglob("*")):
            shutil.rmtree(stale, ignore_errors=True)
    _remove_if_empty(claim.root.parent)


def _stale_claims(inbox: Path, now: datetime) -> list[Path]:
    """Claims whose run has not marked them alive for STALE_CLAIM: that run died."""
    folder = inbox / CLAIMS
    if not folder.is_dir():
        return []
    stale = []
    for claim in folder.iterdir():
        try:
            alive = datetime.fromtimestamp((claim / ALIVE).stat().st_mtime, UTC)
        except FileNotFoundError:
            try:
                alive = datetime.strptime(claim.name.split("-", 1)[0], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            except ValueError:
                continue
        if now - alive > STALE_CLAIM:
            stale.append(claim)
    return stale


def _touch(path: Path, moment: datetime) -> None:
    path.touch()
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty, or already gone


def receive(path: Path, root: Path, archive_dir: Path) -> tuple[bytes, Incoming]:
    """Archive a waiting file's bytes and describe it; its arrival time is the file's modification time.

    root: the inbox, or the claim folder the file was moved to; a subfolder of root names the sending unit.
    """
    data = path.read_bytes()
    claimed = path.parent.name if path.parent != root else None
    incoming = receive_bytes(data, name=path.name, archive_dir=archive_dir, channel="inbox",
                             sender=f"inbox/{claimed}" if claimed else "inbox", claimed_unit=claimed,
                             received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC))
    return data, replace(incoming, source_path=str(path))


def move_processed(path: Path, root: Path, processed_dir: Path) -> Path | None:
    """Move a stored file out of the inbox or claim folder root (its bytes are archived); never overwrite, even
    when several processes move files of the same name at once (two runs, their worker processes).

    None when the file is gone already (a run that took over a claim it thought dead moved it).
    """
    day = datetime.now(UTC).strftime("%Y%m%d")
    return _move_to_free_name(path, processed_dir / day / (path.parent.name if path.parent != root else "") /
                              path.name)


def _move_to_free_name(path: Path, target: Path) -> Path | None:
    """Move the file to target, or to name.1, name.2 ... beside it when that is taken; never replace a file. The
    target's folder is made when missing (a unit's or a day's first file). None: the file is gone already."""
    n = 0
    made_folder = False
    while True:
        candidate = target if n == 0 else target.with_name(f"{target.stem}.{n}{target.suffix}")
        try:
            _move_unless_taken(path, candidate)
            return candidate
        except FileExistsError:
            n += 1
        except FileNotFoundError:
            if not path.exists():
                return None
            if made_folder:
                raise
            target.parent.mkdir(parents=True, exist_ok=True)
            made_folder = True


def _move_unless_taken(source: Path, target: Path) -> None:
    """Move source to target unless target exists (FileExistsError): a plain rename would replace a file another
    mover just put there. One renameat2(RENAME_NOREPLACE) call on Linux; where the file system or the platform
    has no such rename, the name is reserved first by creating it exclusively, then the file replaces the
    reservation. (No hard links: shared inboxes often hold files of another account, which Linux won't link.)"""
    if _rename_noreplace(source, target):
        return
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            target.unlink(missing_ok=True)
            raise
        with source.open("rb") as src, target.open("wb") as dst:  # another file system: copy into the name
            shutil.copyfileobj(src, dst)
        source.unlink()


def _load_renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28 and newer
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return cast(Callable[..., int], function)


_RENAMEAT2 = _load_renameat2()
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# the file system cannot rename without replacing, or the target is on another one: reserve the name instead
_RENAME_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EOPNOTSUPP})


def _rename_noreplace(source: Path, target: Path) -> bool:
    """Rename source to target in one call that fails if target exists; False where that call is not to be had."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _RENAME_UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))  # EEXIST: FileExistsError, and so on
