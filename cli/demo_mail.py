"""The demo's mail: always .eml files (never real mail to the invented addresses), answers, chase days, a summary."""

from __future__ import annotations

import logging
import os
from datetime import date

from sqlmodel import Session

from schemas.settings import Settings, get_settings
from tasks.db import get_engine
from tasks.mail_config import mail_config
from tasks.mail_deliver import deliver_owed_answers

log = logging.getLogger("nianbao")
LEADERS = {"D012": ("郑局长", "leader.d012@xixian.example.gov.cn")}  # the late unit's leader, for the escalation


def force_eml() -> Settings:
    """The demo county's addresses are invented: whatever SMTP server is configured, write .eml files instead."""
    if get_settings().smtp_host:
        log.info("演示不发送真实邮件：忽略 NIANBAO_SMTP_HOST，邮件写为 .eml 文件")
    os.environ["NIANBAO_SMTP_HOST"] = ""
    get_settings.cache_clear()
    return get_settings()


def with_leaders(units: list[dict[str, str]]) -> list[dict[str, str]]:
    return [u | dict(zip(("leader", "leader_email"), LEADERS.get(u["code"], ("", "")), strict=True)) for u in units]


def answer_returns(year: int, campaign_id: int) -> int:
    """Mail the receipt or issue list of every return not answered by mail yet (a no-op once ingest mails them)."""
    settings = get_settings()
    with Session(get_engine(settings.db_url)) as session:
        outcomes = deliver_owed_answers(session=session, config=mail_config(settings, year), campaign_id=campaign_id)
    return sum(1 for o in outcomes if o.status is not None)


def chase(year: int, day: date) -> None:
    from flows.chase_late_units import chase_late_units

    summary = chase_late_units(year, day)
    chased = "，".join(f"{line.unit}（{line.level}，{line.reason}）" for line in summary.lines) or "无"
    log.info("   催报 %s：%s%s", day, chased, f"；汇总日报{summary.digest}" if summary.digest else "")


def mail_summary(year: int) -> str:
    """Where the demo's .eml files are, with one example of each kind."""
    folder = get_settings().mail_dir(year)
    files = sorted(folder.rglob("*.eml"))
    lines = [f"  邮件（未配置 SMTP，写为 .eml 文件，可用 Outlook/Foxmail 打开）：{folder.resolve()}",
             f"    共 {len(files)} 封"]
    kinds = (("下发", "下发工作簿"), ("回执", "审核通过回执"), ("问题清单", "未通过审核通知"), ("催报", "催报提醒"),
             ("督办", "逾期督办"), ("日报", "汇总日报"))
    for label, what in kinds:
        found = [p for p in files if p.name.startswith(f"{label}-")]
        if found:
            example = next((p for p in found if "D012" in str(p)), found[0])
            lines.append(f"    {what} {len(found)} 封，例：{example.relative_to(folder)}")
    return "\n".join(lines)
