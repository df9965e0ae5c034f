"""Content-addressed archive of every file a unit sends: written before anything reads it, never overwritten."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


def archive_bytes(data: bytes, archive_dir: Path, suffix: str = ".xlsx") -> tuple[str, Path]:
    """Store data under its sha256 (once); return the hash and the archived path."""
    digest = hashlib.sha256(data).hexdigest()
    path = archive_dir / digest[:2] / f"{digest}{suffix if suffix.startswith('.') else ''}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")  # unique per writer
        partial.write_bytes(data)
        os.replace(partial, path)  # same bytes under the same name: a race between two writers is harmless
    return digest, path
