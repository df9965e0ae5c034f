"""The audit log, read back: every recorded change of state of a unit (or of a year's collection), in order, in words.

The log itself is the EventLog table, written by whatever changed the state, in the same transaction, and kept
append-only by the database (tasks/db.py): this module only reads it. Each entry is described in Chinese for the
coordinator, with its full detail kept for programs (--json).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import Session, col, select

from schemas.tables import Campaign, EventLog
from tasks.progress_events import CURSOR_KIND

CHINA = ZoneInfo("Asia/Shanghai")

_MAIL_KINDS = {"issue": "下发工作簿", "receipt": "审核通过回执", "rejection": "问题清单", "held": "定稿后报送回复",
               "reminder": "催报提醒", "escalation": "逾期督办", "digest": "汇总日报", "mailbox-note": "邮箱回复"}
_MAIL_OUTCOMES = {"sent": "已发送", "written": "已写为邮件文件", "pending": "发送中",
                  "failed-temporary": "暂时发送失败（稍后重试）", "failed-permanent": "发送失败（地址被拒）"}
_VERDICTS = {"accepted": "审核通过", "rejected": "未通过审核", "held": "报告定稿后收到，已保存未并入汇总"}


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime  # UTC
    year: int | None
    unit_code: str | None
    kind: str
    text: str  # what happened, in Chinese
    detail: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "year": self.year, "unit": self.unit_code,
                "kind": self.kind, "text": self.text, "detail": self.detail}


def audit_trail(*, session: Session, unit_code: str | None = None, year: int | None = None,
                kind_prefix: str | None = None) -> list[AuditEntry]:
    """Every entry for the unit (and the entries about it that name no year, such as its register changes), or of
    the year's collection, oldest first; both given: the unit's entries of that year and its register changes."""
    years = {c.id: c.year for c in session.exec(select(Campaign)).all()}
    query = select(EventLog).where(EventLog.kind != CURSOR_KIND).order_by(col(EventLog.at), col(EventLog.id))
    if unit_code is not None:
        query = query.where(EventLog.unit_code == unit_code)
    if year is not None:
        campaigns = [cid for cid, y in years.items() if y == year]
        in_year = col(EventLog.campaign_id).in_(campaigns)
        # a unit's register changes and imported reports belong to no campaign, yet are part of its story
        query = query.where(or_(in_year, col(EventLog.campaign_id).is_(None)) if unit_code is not None else in_year)
    if kind_prefix:
        query = query.where(col(EventLog.kind).startswith(kind_prefix))
    return [AuditEntry(row.id or 0, _aware(row.at), years.get(row.campaign_id) if row.campaign_id else None,
                       row.unit_code, row.kind, describe(row.kind, row.detail), row.detail)
            for row in session.exec(query).all()]


def describe(kind: str, detail: Mapping[str, Any]) -> str:
    """One entry in words; a kind this version does not know is shown by its name and detail, never dropped."""
    family, _, outcome = kind.partition(".")
    if family == "submission":
        return _submission(outcome, detail)
    if family in {"mail", "reminder"}:
        what = _MAIL_KINDS.get(str(detail.get("kind")), str(detail.get("kind", "邮件")))
        to = f"，收件人 {detail['recipient']}" if detail.get("recipient") else ""
        error = f"（{detail['error']}）" if detail.get("error") else ""
        return f"{what}邮件{_MAIL_OUTCOMES.get(outcome, outcome)}{to}{error}"
    describer = _DESCRIBERS.get(kind)
    if describer is not None:
        return describer(detail)
    return f"{kind}：{detail}"


def _submission(outcome: str, detail: Mapping[str, Any]) -> str:
    if outcome == "admitted":
        return (f"定稿后报送（第{detail.get('version')}次）经例外批准并入汇总，批准人：{detail.get('by')}，"
                f"理由：{detail.get('reason')}")
    errors = f"，{detail['errors']}个问题" if detail.get("errors") else ""
    channel = {"inbox": "收件箱", "upload": "报送页面", "mailbox": "电子邮件"}.get(str(detail.get("channel")), "")
    via = f"经{channel}" if channel else ""
    return (f"{via}报送第{detail.get('version')}次：{_VERDICTS.get(outcome, outcome)}{errors}"
            f"（文件“{detail.get('file')}”，报送记录 {detail.get('submission_id')}）")


def _changes(detail: Mapping[str, Any]) -> str:
    parts = [f"{key}：{change.get('from')} → {change.get('to')}" for key, change in detail.items()
             if isinstance(change, dict)]
    return "单位信息变更：" + "；".join(parts)


_DESCRIBERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "unit.created": lambda d: (f"登记单位“{d.get('name')}”（{d.get('kind')}，联系人 {d.get('contact')}，"
                               f"{d.get('email')}）"),
    "unit.updated": _changes,
    "campaign.opened": lambda d: f"开启填报，截止日期 {d.get('deadline')}",
    "campaign.deadline_changed": lambda d: f"截止日期由 {d.get('from')} 改为 {d.get('to')}",
    "campaign.reopened": lambda d: f"报告定稿后重新开启汇总（{d.get('reason')}，{d.get('by')}）",
    "workbook.issued": lambda d: f"下发工作簿“{PurePath(str(d.get('path', ''))).name}”",
    "published.imported": lambda d: (f"导入{d.get('year')}年度已公开的年度报告“{d.get('file')}”，"
                                     f"读取{d.get('figures')}项数据" + ("（强制导入）" if d.get("forced") else "")
                                     + ("，替换此前导入的" if d.get("replaced") else "")),
    "portal.upload_too_large": lambda d: (f"报送页面拒收过大的文件（{d.get('declared_size')}字节，"
                                          f"上限{d.get('limit')}字节）"),
    "portal.upload_rate_limited": lambda d: (f"报送页面上传过于频繁，暂停接收（{d.get('window_seconds')}秒内最多"
                                             f"{d.get('limit')}次）"),
    "unit_report.written": lambda d: f"生成本单位年度报告（报送记录 {d.get('submission_id')}）",
    "report.compiled": lambda d: f"汇总报告已生成（{'正式' if d.get('kind') == 'final' else '草稿'}）",
    "report.approved": lambda d: f"报告批准定稿，批准人：{d.get('approved_by')}",
    "report.sent_back": lambda d: f"报告退回修改，审核人：{d.get('by')}，意见：{d.get('comment') or '无'}",
}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite gives UTC without a zone


def china_time(moment: datetime) -> str:
    return f"{moment.astimezone(CHINA):%Y-%m-%d %H:%M:%S}"
