"""The latest county report in brief: key figures, check results, units still missing, its files.

Shown twice in the Prefect UI: in the campaign's report artifact and in the approval form of the final report.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from schemas.form_spec import FormSpec
from schemas.tables import Assignment, Campaign, Report, Unit
from tasks.check import recheck

CHINA = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")

# The figures a coordinator looks at first; labels come from the form. A revised form without one of these
# keys simply shows fewer lines.
KEY_FIGURES = (
    "apply.new.total", "apply.carried.total", "apply.result.total.total", "apply.carry_next.total",
    "active.license.decisions", "active.penalty.decisions", "active.fees.amount_wan",
    "review.total", "litigation.direct.total", "litigation.after_review.total",
)
KIND_CHINESE = {"draft": "草稿", "final": "正式（已批准）"}
FILE_NAMES = {"html": "报告（网页）", "docx": "报告（Word）", "pdf": "报告（PDF）",
              "annex-html": "汇总情况说明（网页）", "annex-docx": "汇总情况说明（Word）",
              "annex-pdf": "汇总情况说明（PDF）", "xlsx": "汇总表（Excel）", "json": "汇总数据（JSON）"}


class ReportDigest(BaseModel):
    year: int
    report_id: int
    kind: str = Field(description="draft / final")
    created_at: datetime = Field(description="When it was compiled, China time")
    units_expected: int
    units_accepted: int
    key_figures: list[tuple[str, str]] = Field(description="(Chinese label, value) in form order")
    rules_checked: int
    failed_checks: list[str] = Field(description="Chinese message of every sum rule the county figures break")
    missing: list[str] = Field(description="Units without an accepted return: 名称（代码）")
    notes: list[str] = Field(default_factory=list, description="What to look at before publishing (Chinese)")
    files: list[tuple[str, str]] = Field(description="(Chinese name, path) of the report's files")
    approved_by: str | None = None
    approved_at: datetime | None = None
    review_comment: str = ""


def latest_report(*, session: Session, campaign_id: int) -> Report | None:
    """The campaign's most recently compiled report, draft or final."""
    return session.exec(
        select(Report).where(Report.campaign_id == campaign_id).order_by(col(Report.id).desc())
    ).first()


def _without_accepted(session: Session, campaign_id: int) -> list[tuple[str, str]]:
    """(code, name) of the units without an accepted return, by code: one query, not the campaign's whole status."""
    return [(code, name) for code, name in session.exec(
        select(Unit.code, Unit.name).join(Assignment, col(Assignment.unit_id) == col(Unit.id))
        .where(Assignment.campaign_id == campaign_id, col(Assignment.accepted_submission_id).is_(None))
        .order_by(col(Unit.code)))]


def load_report_digest(*, session: Session, form: FormSpec, campaign: Campaign,
                       report: Report | None = None) -> ReportDigest | None:
    """The digest of the given report (default: the latest one), or None before the first report."""
    assert campaign.id is not None
    report = report or latest_report(session=session, campaign_id=campaign.id)
    if report is None or report.id is None:
        return None
    missing = [f"{name}（{code}）" for code, name in _without_accepted(session, campaign.id)]
    path = Path(report.json_path)
    if not path.exists():  # moved or deleted by hand: say so rather than fail the flow that publishes progress
        digest = build_digest(form, campaign.year, report, {}, missing)
        digest.failed_checks = [f"汇总数据文件不存在，无法列示数据：{path}"]
        return digest
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return build_digest(form, campaign.year, report, {k: str(v) for k, v in cells.items()}, missing)


def build_digest(form: FormSpec, year: int, report: Report, cells: dict[str, str],
                 missing: list[str]) -> ReportDigest:
    """The digest from the report row, its county figures (exact text) and the units still missing."""
    assert report.id is not None
    values = {key: Decimal(text) for key, text in cells.items()}
    figures = [(form.cell_by_key[key].label, cells[key]) for key in KEY_FIGURES
               if key in form.cell_by_key and key in cells]
    return ReportDigest(
        year=year, report_id=report.id, kind=report.kind, created_at=_china(report.created_at),
        units_expected=report.units_expected, units_accepted=report.units_accepted, key_figures=figures,
        rules_checked=len(list(form.sum_rules())), failed_checks=[i.message for i in recheck(values, form)],
        missing=missing,
        files=_files(report), notes=list(report.notes),
        approved_by=report.approved_by,
        approved_at=_china(report.approved_at) if report.approved_at else None,
        review_comment=report.review_comment,
    )


def _files(report: Report) -> list[tuple[str, str]]:
    """(Chinese name, path) of every file of the report, the report first; reports compiled before it had files
    of every format list their three."""
    files = report.files or {"html": report.html_path, "xlsx": report.xlsx_path, "json": report.json_path}
    return [(FILE_NAMES.get(kind, kind), files[kind]) for kind in sorted(files, key=_file_order)]


def _file_order(kind: str) -> int:
    order = list(FILE_NAMES)
    return order.index(kind) if kind in order else len(order)


def digest_markdown(digest: ReportDigest, *, with_files: bool = True) -> str:
    """The digest as Markdown in Chinese, for an artifact or the approval form's description."""
    lines = [f"## {digest.year}年度汇总报告（{KIND_CHINESE.get(digest.kind, digest.kind)}）", "",
             f"生成时间：{digest.created_at:%Y-%m-%d %H:%M}　　"
             f"已通过审核：**{digest.units_accepted} / {digest.units_expected}** 个单位", ""]
    if digest.approved_by:
        approved = f"{digest.approved_at:%Y-%m-%d %H:%M}" if digest.approved_at else ""
        lines += [f"批准人：{digest.approved_by}　　批准时间：{approved}", ""]
    if digest.review_comment:
        lines += [f"退回意见：{digest.review_comment}", ""]
    lines += ["### 主要数据", "", "| 项目 | 数值 |", "|---|---:|"]
    lines += [f"| {label} | {value} |" for label, value in digest.key_figures]
    lines += ["", "### 汇总校验", ""]
    if digest.failed_checks:
        lines.append(f"{digest.rules_checked} 条勾稽规则中 **{len(digest.failed_checks)}** 条未通过：")
        lines += [f"- {message}" for message in digest.failed_checks]
    else:
        lines.append(f"{digest.rules_checked} 条勾稽规则全部通过。")
    if digest.notes:
        lines += ["", f"### 发布前请注意（{len(digest.notes)}处）", ""]
        lines += [f"- {note}" for note in digest.notes]
    lines += ["", "### 尚未通过审核的单位", ""]
    lines += [f"- {unit}" for unit in digest.missing] if digest.missing else ["无：全部单位均已通过审核。"]
    if with_files:
        lines += ["", "### 文件", ""]
        lines += [f"- {name}：[{Path(path).name}]({Path(path).resolve().as_uri()})" for name, path in digest.files]
    return "\n".join(lines) + "\n"


def _china(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA)
