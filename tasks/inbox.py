"""The inbox folder: which files are new, archive them first, move them aside once stored.

Files directly in the inbox come from an unknown sender (the signed identity says whose they are). Files in a
subfolder named after a unit code came from that unit, and must be that unit's workbook.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from tasks.archive import archive_bytes
from tasks.ingest import Incoming

_IGNORED_PREFIXES = ("~$", ".", "~")  # Excel/WPS lock files and hidden files are not returns
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload")


def new_files(inbox: Path) -> list[Path]:
    """Files waiting in the inbox (top level and one level of unit folders), oldest first."""
    if not inbox.is_dir():
        return []
    found = [p for p in inbox.iterdir() if p.is_file()]
    for folder in inbox.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            found += [p for p in folder.iterdir() if p.is_file()]
    waiting = [p for p in found if not p.name.startswith(_IGNORED_PREFIXES) and not p.name.endswith(_IGNORED_SUFFIXES)]
    return sorted(waiting, key=lambda p: (p.stat().st_mtime, p.name))


def receive(path: Path, inbox: Path, archive_dir: Path) -> tuple[bytes, Incoming]:
    """Archive a waiting file's bytes and describe it; its arrival time is the file's modification time."""
    data = path.read_bytes()
    digest, archived = archive_bytes(data, archive_dir, path.suffix.lower() or ".bin")
    claimed = path.parent.name if path.parent != inbox else None
    arrived = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    incoming = Incoming(name=path.name, sha256=digest, size=len(data), archive_path=str(archived),
                        received_at_iso=arrived.isoformat(), channel="inbox",
                        sender=f"inbox/{claimed}" if claimed else "inbox", claimed_unit=claimed,
                        source_path=str(path))
    return data, incoming


def move_processed(path: Path, processed_dir: Path) -> Path:
    """Move a stored file out of the inbox (its bytes are already archived); never overwrite."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    target_dir = processed_dir / day / (path.parent.name if path.parent.name != "inbox" else "")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    n = 1
    while target.exists():
        target = target_dir / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), target)
    return target
