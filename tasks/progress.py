"""A campaign's progress as people read it in the Prefect UI: accepted of expected, and one row per unit."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from schemas.tables import Campaign, EventLog
from tasks.progress_events import REMINDER_SENT_KINDS
from tasks.status import STATUS_CHINESE, campaign_status

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
    year: int
    deadline: date
    expected: int
    accepted: int
    rows: list[ProgressRow]


def artifact_key(year: int, what: str) -> str:
    """A key Prefect accepts (lowercase letters, digits, dashes): campaign-2021-progress."""
    return f"campaign-{year}-{what}"


def load_progress(*, session: Session, campaign: Campaign, today: date | None = None) -> CampaignProgress:
    """Where every unit of the campaign stands, with how often it was chased."""
    status = campaign_status(session=session, campaign=campaign, today=today)
    codes = session.exec(
        select(EventLog.unit_code).where(EventLog.campaign_id == campaign.id,
                                         col(EventLog.kind).in_(REMINDER_SENT_KINDS))
    ).all()
    reminders = Counter(code for code in codes if code)
    rows = [ProgressRow(unit=s.unit, name=s.name, status=s.status, last_submission_at=s.last_submission_at,
                        issue_count=s.issue_count, reminders=reminders[s.unit], held=s.held) for s in status]
    return CampaignProgress(year=campaign.year, deadline=campaign.deadline, expected=len(rows),
                            accepted=sum(1 for s in status if s.has_accepted), rows=rows)


def progress_percent(progress: CampaignProgress) -> float:
    """Accepted of expected units, in percent (0 while nothing was issued)."""
    return round(100.0 * progress.accepted / progress.expected, 1) if progress.expected else 0.0


def progress_description(progress: CampaignProgress) -> str:
    return (f"{progress.year}年度填报进度：已通过 {progress.accepted} / {progress.expected} 个单位"
            f"（截止日期 {progress.deadline:%Y-%m-%d}）")


def progress_table(progress: CampaignProgress) -> list[dict[str, object]]:
    """One row per unit, with Chinese column names, for a table artifact; for more than TABLE_ROWS_LIMIT units,
    the units still to act on (not accepted, or a return held after approval), at most that many."""
    held = any(row.held for row in progress.rows)  # the column only once a report was approved and more came
    return [{"单位代码": row.unit, "单位名称": row.name, "状态": STATUS_CHINESE.get(row.status, row.status),
             "最近报送": _china_text(row.last_submission_at), "问题数": row.issue_count, "催报次数": row.reminders}
            | ({"定稿后报送（未并入）": row.held} if held else {})
            for row in _shown(progress)]


def progress_table_note(progress: CampaignProgress) -> str:
    """What the table leaves out, in words for its description ('' when it lists every unit)."""
    if len(progress.rows) <= TABLE_ROWS_LIMIT:
        return ""
    pending = len(_pending(progress))
    listed = min(pending, TABLE_ROWS_LIMIT)
    return (f"；共{len(progress.rows)}个单位，表中列出尚待处理（未通过或定稿后报送）的{listed}个"
            f"{f'（共{pending}个）' if pending > listed else ''}，全部单位见 nianbao status")


def _pending(progress: CampaignProgress) -> list[ProgressRow]:
    return [row for row in progress.rows if row.status != "accepted" or row.held]


def _shown(progress: CampaignProgress) -> list[ProgressRow]:
    # a province's 10,000 rows would make a 3 MB artifact at every ingest run (every 5 minutes, each version kept),
    # too big for the server's events and for the UI; the accepted ones are counted by the progress artifact
    if len(progress.rows) <= TABLE_ROWS_LIMIT:
        return progress.rows
    return _pending(progress)[:TABLE_ROWS_LIMIT]


def _china_text(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    if moment.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(CHINA):%Y-%m-%d %H:%M}"
