"""A campaign's progress as people read it in the Prefect UI: accepted of expected, and one row per unit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from schemas.tables import Campaign, EventLog
from tasks.progress_events import REMINDER_SENT_KINDS
from tasks.status import STATUS_CHINESE, UnitStatus, iter_campaign_status

CHINA = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")
TABLE_ROWS_LIMIT = 300  # units listed one by one in the units table artifact; above it, those still to act on


class ProgressRow(BaseModel):
    unit: str
    name: str
    status: str = Field(description="issued / returned / rejected / accepted / missing")
    last_submission_at: datetime | None
    issue_count: int
    reminders: int
    held: int = 0  # returns kept after the report's approval, not consolidated


class CampaignProgress(BaseModel):
    """Accepted of expected units, and the rows the units table shows: every unit up to TABLE_ROWS_LIMIT of
    them; above that, the units still to act on (pending of them), at most TABLE_ROWS_LIMIT."""

    year: int
    deadline: date
    expected: int
    accepted: int
    rows: list[ProgressRow]
    pending: int = 0  # units still to act on: not accepted, or a return held after the report's approval
    held: int = 0  # units with a return held after the report's approval


def artifact_key(year: int, what: str) -> str:
    """A key Prefect accepts (lowercase letters, digits, dashes): campaign-2021-progress."""
    return f"campaign-{year}-{what}"


def load_progress(*, session: Session, campaign: Campaign, today: date | None = None) -> CampaignProgress:
    """Where the campaign's units stand, with how often each was chased; a province's units are read a fetch at
    a time and only the rows shown are kept (this runs at the end of every ingest, beside its last batches)."""
    codes = session.exec(
        select(EventLog.unit_code).where(EventLog.campaign_id == campaign.id,
                                         col(EventLog.kind).in_(REMINDER_SENT_KINDS))
    ).all()
    reminders = Counter(code for code in codes if code)
    statuses = iter_campaign_status(session=session, campaign=campaign, today=today)
    return summarize_progress(campaign.year, campaign.deadline, statuses, reminders)


def summarize_progress(year: int, deadline: date, statuses: Iterable[UnitStatus],
                       reminders: Mapping[str, int]) -> CampaignProgress:
    """Count the units as they come, keeping the first TABLE_ROWS_LIMIT rows and the first TABLE_ROWS_LIMIT
    still to act on: which of the two the table shows is known once every unit is counted."""
    expected = accepted = pending = held = 0
    first: list[ProgressRow] = []
    first_pending: list[ProgressRow] = []
    for s in statuses:
        row = ProgressRow.model_construct(unit=s.unit, name=s.name, status=s.status,
                                          last_submission_at=s.last_submission_at, issue_count=s.issue_count,
                                          reminders=reminders.get(s.unit, 0), held=s.held)
        expected += 1
        accepted += s.has_accepted
        held += s.held > 0
        if len(first) < TABLE_ROWS_LIMIT:
            first.append(row)
        if row.status != "accepted" or row.held:
            pending += 1
            if len(first_pending) < TABLE_ROWS_LIMIT:
                first_pending.append(row)
    return CampaignProgress(year=year, deadline=deadline, expected=expected, accepted=accepted,
                            rows=first if expected <= TABLE_ROWS_LIMIT else first_pending, pending=pending,
                            held=held)


def progress_percent(progress: CampaignProgress) -> float:
    """Accepted of expected units, in percent (0 while nothing was issued)."""
    return round(100.0 * progress.accepted / progress.expected, 1) if progress.expected else 0.0


def progress_description(progress: CampaignProgress) -> str:
    return (f"{progress.year}年度填报进度：已通过 {progress.accepted} / {progress.expected} 个单位"
            f"（截止日期 {progress.deadline:%Y-%m-%d}）")


def progress_table(progress: CampaignProgress) -> list[dict[str, object]]:
    """The rows shown, with Chinese column names, for a table artifact: every unit, or for more than
    TABLE_ROWS_LIMIT units those still to act on (not accepted, or a return held after approval), at most that many.
    A province's 10,000 rows would make a 3 MB artifact at every ingest run (every 5 minutes, each version kept),
    too big for the server's events and for the UI; the accepted ones are counted by the progress artifact."""
    held = progress.held > 0  # the column only once a report was approved and more came
    return [{"单位代码": row.unit, "单位名称": row.name, "状态": STATUS_CHINESE.get(row.status, row.status),
             "最近报送": _china_text(row.last_submission_at), "问题数": row.issue_count, "催报次数": row.reminders}
            | ({"定稿后报送（未并入）": row.held} if held else {})
            for row in progress.rows]


def progress_table_note(progress: CampaignProgress) -> str:
    """What the table leaves out, in words for its description ('' when it lists every unit)."""
    if progress.expected <= TABLE_ROWS_LIMIT:
        return ""
    listed = len(progress.rows)
    return (f"；共{progress.expected}个单位，表中列出尚待处理（未通过或定稿后报送）的{listed}个"
            f"{f'（共{progress.pending}个）' if progress.pending > listed else ''}，全部单位见 nianbao status")


def _china_text(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    if moment.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(CHINA):%Y-%m-%d %H:%M}"
