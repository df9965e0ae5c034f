"""What `nianbao chase` prints: who is (or would be) chased today and why, as a rich table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from flows.chase_late_units import ChaseSummary

KIND_CHINESE = {"reminder": "催报提醒", "escalation": "逾期督办"}


def print_chase(summary: ChaseSummary) -> None:
    mode = "演练（不发送）" if summary.dry_run else "催报"
    table = Table(title=f"{summary.year}年度 {mode}：{summary.today:%Y-%m-%d}（截止日期 {summary.deadline:%Y-%m-%d}）")
    for header in ("单位代码", "单位名称", "类型", "节点", "收件人", "原因", "结果"):
        table.add_column(header)
    for line in summary.lines:
        recipients = "、".join(line.to) + (f"（抄送 {'、'.join(line.cc)}）" if line.cc else "")
        table.add_row(line.unit, line.name, KIND_CHINESE.get(line.kind, line.kind), line.level,
                      recipients or "（无邮箱）", line.reason, line.outcome)
    quiet = len(summary.quiet)
    table.caption = (f"今日催报 {len(summary.lines)} 个单位，其余 {quiet} 个单位无需催报"
                     + (f"；汇总日报：{summary.digest}" if summary.digest else ""))
    Console().print(table)
