"""Content-addressed archive of every file a unit sends: written before anything reads it, never overwritten."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tasks.ingest import Incoming


def archive_bytes(data: bytes, archive_dir: Path, suffix: str = ".xlsx") -> tuple[str, Path]:
    """Store data under its sha256 (once); return the hash and the archived path."""
    digest = hashlib.sha256(data).hexdigest()
    path = archive_dir / digest[:2] / f"{digest}{suffix if suffix.startswith('.') else ''}"
    if not path.exists():
        partial = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")  # unique per writer
        try:
            partial.write_bytes(data)
        except FileNotFoundError:  # the first file of its folder (one of 256)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
        os.replace(partial, path)  # same bytes under the same name: a race between two writers is harmless
    return digest, path


def receive_bytes(data: bytes, *, name: str, archive_dir: Path, channel: str, sender: str = "",
                  claimed_unit: str | None = None, received_at: datetime | None = None) -> Incoming:
    """Archive bytes that arrived by upload, mail or the inbox, before anything reads them; describe them for
    examine() under a safe form of the name they came with."""
    safe = safe_name(name)
    digest, archived = archive_bytes(data, archive_dir, archive_suffix(safe))
    return Incoming(name=safe, sha256=digest, size=len(data), archive_path=str(archived),
                    received_at_iso=(received_at or datetime.now(UTC)).isoformat(), channel=channel,
                    sender=sender, claimed_unit=claimed_unit)


UNNAMED = "未命名文件"
MAX_NAME_BYTES = 120  # an answer's file name adds ~45 bytes to it; most file systems allow 255
# control characters, bidirectional overrides and invisible marks (a name must read as it is), and what Windows
# forbids in a name (the outbox and archive may be a Windows share)
_UNSAFE = re.compile('[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff<>:"|?*]')
_DEVICE = re.compile(r"^(?:con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(?:\.|$)", re.IGNORECASE)  # Windows devices
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def safe_name(name: str) -> str:
    """The name a unit's file is known by: its last path component (either slash), without control characters or
    direction overrides, not a Windows device name, at most MAX_NAME_BYTES of UTF-8 with its suffix kept. Whatever
    a sender puts in it, an answer or archive path made from it stays in its folder."""
    base = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1])
    base = _UNSAFE.sub("_", base).strip(" .")
    if _DEVICE.match(base):
        base = f"_{base}"
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, suffix = base.rpartition(".")
        suffix = f".{suffix}" if dot and stem and len(suffix.encode("utf-8")) <= 16 else ""
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
        base = (stem if suffix else base).encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .") + suffix
    return base or UNNAMED


def archive_suffix(name: str) -> str:
    """The archived copy's suffix: the name's own when it is a plain one (.xlsx, .xls, .eml), else .bin."""
    suffix = Path(name).suffix.lower()
    return suffix if _SUFFIX.fullmatch(suffix) else ".bin"
