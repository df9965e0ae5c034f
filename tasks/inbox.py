"""The inbox folder: which files are new, claim them, archive them first, move them aside once stored.

Files directly in the inbox come from an unknown sender (the signed identity says whose they are). Files in a
subfolder named after a unit code came from that unit, and must be that unit's workbook.

An ingest run first claims the waiting files by renaming them into a folder of its own (`.claimed/<run>/`, same
layout): a rename is atomic, so two runs over the same inbox (two workers on shared storage, or a scheduled run
overlapping a manual one) never take the same file. A file leaves its claim folder last, once it is stored and
answered; whatever is still in a claim folder is not done.

A claim folder holds one holder file, `.alive.<token>`, naming the process that holds it (host, the kernel boot and
pid namespace it runs in, its pid and start time); its run refreshes the file's modification time every minute. A
run takes over, whole, the claim of a run that is gone: on this machine as soon as the holder's process has ended
(a pid now running another program, or a zombie, counts as ended), from another machine once the claim has shown
no sign of life for STALE_CLAIM. It takes over by renaming the holder file to its own name, which only one run
can do; the files stay where they are, so that the store can tell the dead run's returns from duplicates by the
path they were stored from (tasks/resume.py), and storing is idempotent by content hash.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import shutil
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import cast

from tasks import checkpoints
from tasks.archive import receive_bytes
from tasks.ingest import Incoming

_IGNORED_PREFIXES = ("~$", ".", "~")  # Excel/WPS lock files and hidden files are not returns
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload")
CLAIMS = ".claimed"
ALIVE = ".alive"  # a claim's holder file: `.alive.<token>`; a bare `.alive` (an earlier version's) names no one
_NEW = ".new-"  # a claim folder being made, not yet visible as a claim
STALE_CLAIM = timedelta(minutes=30)  # no sign of life for this long: the run died
SKIPPED_AFTER = timedelta(minutes=10)  # a skipped name there this long is no copy in progress: it is told


@dataclass(frozen=True)
class Holder:
    """The process holding a claim. Its pid means something only on its machine: the same host, kernel boot and
    pid namespace (a container has its own); its start time tells it from a later process given the same pid."""

    host: str
    machine: str  # boot id and pid namespace; "" where they cannot be read (no /proc): then only STALE_CLAIM
    pid: int
    start: str  # clock ticks from boot to the process's start

    @property
    def token(self) -> str:
        text = json.dumps([self.host, self.machine, self.pid, self.start], separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def from_file_name(cls, name: str) -> Holder | None:
        """The holder named by a holder file; None for a bare `.alive` or a name this version cannot read."""
        token = name[len(ALIVE) + 1:] if name.startswith(f"{ALIVE}.") else ""
        try:
            host, machine, pid, start = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return cls(str(host), str(machine), int(pid), str(start))
        except (ValueError, TypeError):
            return None

    def is_gone(self) -> bool:
        """True when this process is known to have ended: it ran on this machine and its pid is free, a zombie,
        or another process's. False when it may still run (alive, or on another machine)."""
        here = this_process()
        if not self.machine or (self.host, self.machine) != (here.host, here.machine):
            return False
        stat = _stat(self.pid)
        if stat is None:  # no such process, or one this account may not see (/proc mounted with hidepid)
            try:
                os.kill(self.pid, 0)  # signal 0: only asks whether the process exists
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        state, start = stat
        return state in ("Z", "X") or (bool(self.start) and start != self.start)


def this_process() -> Holder:
    """This process as a claim's holder."""
    return _holder_of(os.getpid())


@cache
def _holder_of(pid: int) -> Holder:  # per pid: a forked process is a holder of its own
    stat = _stat(pid)
    return Holder(socket.gethostname(), _machine(), pid, stat[1] if stat else "")


@cache
def _machine() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, str] | None:
    """A process's state (R, S, ... Z for a zombie) and start time, fields 3 and 22 of /proc/<pid>/stat; None
    when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    return fields[0], fields[19]


@dataclass(frozen=True)
class Claim:
    """The files one run holds: those it took from the inbox (under root, unit subfolders keeping their names)
    and those of dead runs' claims it took over (left in those folders), oldest first."""

    root: Path
    paths: list[Path]
    adopted: tuple[Path, ...] = ()  # dead runs' claim folders this run took over
    at: datetime | None = None  # when the claim was made (and the dead runs' claims taken over)

    @property
    def roots(self) -> tuple[Path, ...]:
        return (self.root, *self.adopted)

    def root_of(self, path: Path) -> Path:
        """The claim folder a held file is in (its unit subfolder is under it)."""
        return next((root for root in self.adopted if path.is_relative_to(root)), self.root)


def count_waiting(inbox: Path) -> int:
    """How many files wait in the inbox (a claim may take fewer: another run may take some first)."""
    return len(_waiting(inbox))


def claim_new_files(inbox: Path, now: datetime | None = None, limit: int | None = None) -> Claim:
    """Take every waiting file (or the limit's oldest) into a new claim folder of this run, and take over the
    claims of dead runs whole.

    limit: several runs sharing one inbox each take a part. Each goes down the same oldest-first list, past the
    files another run took first, until it holds its part: parts that add up to the inbox take every file between
    them, each file once.
    """
    moment = now or datetime.now(UTC)
    me = this_process()
    root = _new_claim(inbox, moment, me)
    adopted = []
    sources = [(arrival, inbox, path) for arrival, path in _waiting(inbox)]
    for folder, holder in _abandoned(inbox, moment):
        if holder is None:  # an earlier version's claim that names no holder: its files are moved in, as before
            sources += [(arrival, folder, path) for arrival, path in _waiting(folder)]
        elif _adopt(holder, me, moment):
            adopted.append(folder)
            checkpoints.reached("claim.adopted")
    held = [entry for folder in adopted for entry in _waiting(folder)]
    taken = 0
    for arrival, source_root, path in sorted(sources, key=lambda source: source[0]):
        if limit is not None and taken >= limit:
            break
        # under its name, or name.1 ... beside a file of that name; the move keeps the modification time, the
        # arrival time. None: another run claimed it first
        claimed = _move_to_free_name(path, root / path.relative_to(source_root))
        if claimed is not None:
            held.append((arrival, claimed))
            taken += 1
            checkpoints.reached("claim.moved")
    return Claim(root, [path for _, path in sorted(held, key=lambda entry: entry[0])], tuple(adopted), moment)


def _new_claim(inbox: Path, moment: datetime, me: Holder) -> Path:
    """A claim folder of this run, made with its holder file inside before it appears under its name: a visible
    claim always names its holder (a run killed meanwhile leaves a `.new-` folder, holding no file)."""
    for attempt in range(3):
        name = f"{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        making = inbox / CLAIMS / f"{_NEW}{name}"
        making.mkdir(parents=True)
        try:
            _touch(making / f"{ALIVE}.{me.token}", moment)
        except FileNotFoundError:  # removed as empty by another run's release() in that very moment
            if attempt == 2:
                raise
            continue
        os.rename(making, inbox / CLAIMS / name)
        return inbox / CLAIMS / name
    raise AssertionError("unreachable")


def _adopt(holder_file: Path, me: Holder, moment: datetime) -> bool:
    """Take a dead run's claim over by renaming its holder file to ours; False if another run took it first."""
    mine = holder_file.with_name(f"{ALIVE}.{me.token}")
    if holder_file == mine:  # this very process's own claim, silent too long (its time given by a test)
        _touch(mine, moment, create=False)
        return True
    try:
        # marked alive first: a run on another machine looking at it meanwhile sees no stale claim
        _touch(holder_file, moment, create=False)
        if not _rename_noreplace(holder_file, mine):
            os.rename(holder_file, mine)  # no renameat2: the holder file is ours to replace only if it is there
        return True
    except FileNotFoundError:
        return False


def _holder_files(claim: Path) -> list[Path]:
    try:
        return [p for p in claim.iterdir() if p.name == ALIVE or p.name.startswith(f"{ALIVE}.")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _waiting(folder: Path) -> list[tuple[tuple[float, str], Path]]:
    """(arrival, path) of the files waiting in a folder and one level of unit folders under it; the arrival is
    the modification time (then the name), read once."""
    found: list[tuple[tuple[float, str], Path]] = []
    for entry in _files(folder):
        if _ignored(entry.name):
            continue
        try:
            found.append(((entry.stat().st_mtime, entry.name), Path(entry.path)))
        except FileNotFoundError:
            pass  # claimed by another run meanwhile
    return found


def skipped_files(folder: Path, now: datetime | None = None, older_than: timedelta = SKIPPED_AFTER) -> list[str]:
    """The files of the inbox (and its unit folders) left alone for their names, that have been there longer than
    a copy takes: a lock file Excel left behind, or a return whose name starts with "~" or "." and that would
    otherwise wait unseen while its unit is chased. Paths relative to the folder, sorted."""
    moment = (now or datetime.now(UTC)).timestamp()
    names = []
    for entry in _files(folder):
        if not _ignored(entry.name):
            continue
        try:
            if moment - entry.stat().st_mtime >= older_than.total_seconds():
                names.append(Path(entry.path).relative_to(folder).as_posix())
        except FileNotFoundError:
            continue
    return sorted(names)


def _ignored(name: str) -> bool:
    return name.startswith(_IGNORED_PREFIXES) or name.endswith(_IGNORED_SUFFIXES)


def _files(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The files in a folder and one level of unit folders under it (never its hidden folders: the claims)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_file():
            yield entry
        elif entry.is_dir() and not entry.name.startswith("."):
            try:
                with os.scandir(entry.path) as unit_folder:
                    yield from (inner for inner in unit_folder if inner.is_file())
            except FileNotFoundError:
                continue


@contextmanager
def kept_alive(claim: Claim, every_seconds: float = 60.0) -> Iterator[None]:
    """Mark the claim alive while its run works (a slow mail server may hold a run for long), from a thread."""
    stop = threading.Event()
    mine = f"{ALIVE}.{this_process().token}"

    def beat() -> None:
        while not stop.wait(every_seconds):
            for root in claim.roots:
                try:
                    _touch(root / mine, datetime.now(UTC), create=False)
                except FileNotFoundError:  # taken over by a run that thought this one dead: it redoes the files
                    pass

    thread = threading.Thread(target=beat, name="claim-alive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def release(claim: Claim) -> None:
    """Remove the claim's folders once every file has moved on, and dead runs' claims left empty.

    A folder still holding a file (one that could not be moved) keeps its holder file: once this process has
    ended, the next run takes it over and tries again."""
    for root in claim.roots:
        _clear(root)
    for stale, _ in _abandoned(claim.root.parent.parent, datetime.now(UTC), unfinished=True):
        _clear(stale)
    _remove_if_empty(claim.root.parent)


def _clear(claim: Path) -> None:
    """Remove a claim folder that holds no file: its empty unit folders, then its holder file, then itself (a
    process killed meanwhile leaves a folder with no file, which the next release removes)."""
    if any(p.is_file() and not p.name.startswith(ALIVE) for p in claim.rglob("*")):
        return
    for folder in sorted((p for p in claim.rglob("*") if p.is_dir()), reverse=True):
        _remove_if_empty(folder)
    for holder in _holder_files(claim):
        holder.unlink(missing_ok=True)
    _remove_if_empty(claim)


def _abandoned(inbox: Path, now: datetime, unfinished: bool = False) -> list[tuple[Path, Path | None]]:
    """Claims whose run is gone, with their holder file (None: an earlier version's claim naming no holder).

    unfinished: also, for clearing away (if they hold no file), folders without a holder file: claims whose making
    or removal was cut short (a claim folder gets its holder file before it is visible, and loses it last), and
    earlier versions' claims. (A `.new-` folder may be between its making and its holder file this very moment:
    removed, its maker makes another.)"""
    folder = inbox / CLAIMS
    if not folder.is_dir():
        return []
    gone: list[tuple[Path, Path | None]] = []
    for claim in folder.iterdir():
        if claim.name.startswith(_NEW) and not unfinished:
            continue
        holders = _holder_files(claim)
        if not holders and unfinished:
            gone.append((claim, None))
            continue
        if not holders:  # made by an earlier version, or never finished: the time in its name
            try:
                made = datetime.strptime(claim.name.removeprefix(_NEW).split("-", 1)[0],
                                         "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            except ValueError:
                continue
            if now - made > STALE_CLAIM:
                gone.append((claim, None))
            continue
        holder_file = holders[0]
        holder = Holder.from_file_name(holder_file.name)
        try:
            alive = datetime.fromtimestamp(holder_file.stat().st_mtime, UTC)
        except FileNotFoundError:
            continue  # being taken over right now
        if (holder is not None and holder.is_gone()) or now - alive > STALE_CLAIM:
            gone.append((claim, holder_file))
    return gone


def _touch(path: Path, moment: datetime, create: bool = True) -> None:
    if create:
        path.touch()
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty, or already gone


def receive(path: Path, root: Path | Collection[Path], archive_dir: Path) -> tuple[bytes, Incoming]:
    """Archive a waiting file's bytes and describe it; its arrival time is the file's modification time.

    root: the inbox, or the claim folders the file may be in; a subfolder of its root names the sending unit.
    """
    data = path.read_bytes()
    claimed = path.parent.name if path.parent not in ({root} if isinstance(root, Path) else set(root)) else None
    incoming = receive_bytes(data, name=path.name, archive_dir=archive_dir, channel="inbox",
                             sender=f"inbox/{claimed}" if claimed else "inbox", claimed_unit=claimed,
                             received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC))
    checkpoints.reached("archive.written")
    return data, replace(incoming, source_path=str(path))


def move_processed(path: Path, root: Path, processed_dir: Path) -> Path | None:
    """Move a stored and answered file out of the inbox or claim folder root (its bytes are archived); never
    overwrite, even when several processes move files of the same name at once (two runs).

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
