"""Content-addressed archive of every file a unit sends: written before anything reads it, never overwritten."""

from __future__ import annotations

import hashlib
import os
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
    """Archive bytes that arrived by upload or mail, before anything reads them; describe them for examine()."""
    digest, archived = archive_bytes(data, archive_dir, Path(name).suffix.lower() or ".bin")
    return Incoming(name=Path(name).name or "未命名文件", sha256=digest, size=len(data), archive_path=str(archived),
                    received_at_iso=(received_at or datetime.now(UTC)).isoformat(), channel=channel,
                    sender=sender, claimed_unit=claimed_unit)
