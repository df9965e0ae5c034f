"""Files a run finds stored already from the very path it holds them at: its own returns, not duplicates.

A run killed after storing a batch and before moving its files out leaves them in its claim folder; the run that
takes the folder over (tasks/inbox.py) examines and stores them again, and the store finds each one's bytes stored:
a duplicate, as far as the store can tell. Answered as one, the unit would get "identical to your return N" instead
of the receipt or issue list of return N, and no answer mail at all. So each such file is answered as the dead run
would have answered it. It is told apart from a true duplicate (the same bytes sent again, stored from another
file) by the path it was stored from: the store's event records it (tasks/submissions.py), a claim taken over
keeps its files at their paths, and claim folders have names of their own, so no other file was ever there. (The
same holds for a run that stores a batch again after a commit whose answer the connection lost.)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from schemas.tables import EventLog, Submission
from tasks.inbox import CLAIMS
from tasks.submissions import Stored

STORED_EVENTS = ("submission.accepted", "submission.rejected", "submission.held")


def own_returns(*, session: Session, campaign_id: int, stored: list[Stored]) -> tuple[list[Stored], set[int]]:
    """The batch's results with each file found stored from its own path answered as stored, not as a duplicate;
    and the ids of those returns."""
    found = [(n, item) for n, item in enumerate(stored)
             if item.duplicate and _claimed_path(item.examination.incoming.source_path) is not None]
    if not found:
        return stored, set()
    ids = {item.submission_id for _, item in found}
    sources: dict[int, tuple[str, ...] | None] = {}
    for detail in session.exec(select(EventLog.detail).where(
            EventLog.campaign_id == campaign_id, col(EventLog.kind).in_(STORED_EVENTS),
            col(EventLog.detail)["submission_id"].as_integer().in_(ids))):
        sources[int(detail["submission_id"])] = _claimed_path(detail.get("source"))
    replaced = aliased(Submission)
    # (replaces_version, repeats_version) of each: the versions its answer names
    rows = session.execute(
        sa_select(col(Submission.id), col(replaced.version), col(Submission.repeats_version))
        .outerjoin(replaced, col(replaced.id) == col(Submission.replaces_id))
        .where(col(Submission.id).in_(ids)))
    versions: dict[int, tuple[int | None, int | None]] = {sid: (replaces, repeats) for sid, replaces, repeats in rows}
    out = list(stored)
    resumed: set[int] = set()
    for n, item in found:
        sid = item.submission_id
        if sources.get(sid) == _claimed_path(item.examination.incoming.source_path):
            replaces, repeats = versions.get(sid, (None, None))
            out[n] = replace(item, duplicate=False, replaces_version=replaces, repeats_version=repeats)
            resumed.add(sid)
    return out, resumed


def _claimed_path(path: str | None) -> tuple[str, ...] | None:
    """The file's path from its claim folder's name down (`<claim>/<unit>/<file>`), the same however the inbox was
    spelled (relative, absolute, another mount point); None when it is not in a claim folder."""
    if not path:
        return None
    parts = Path(path).parts
    if CLAIMS not in parts:
        return None
    return parts[len(parts) - parts[::-1].index(CLAIMS):]
