"""Terminal tables for people (rich)."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tasks.status import STATUS_CHINESE, UnitStatus

CHINA = ZoneInfo("Asia/Shanghai")
_STYLE = {"accepted": "green", "rejected": "red", "missing": "bold red", "issued": "", "returned": "yellow"}


def print_status(year: int, rows: list[UnitStatus]) -> None:
    table = Table(title=f"{year}年度 报送情况")
    mail_failed = any(row.delivery_error for row in rows)
    held = any(row.held for row in rows)
    headers = ("单位代码", "单位名称", "状态", "最近报送", "问题数", "逾期")
    for header in headers + (("定稿后报送（未并入）",) if held else ()) + (("邮件投递失败",) if mail_failed else ()):
        table.add_column(header)
    for row in rows:
        last = row.last_submission_at
        when = last.replace(tzinfo=last.tzinfo or UTC).astimezone(CHINA) if last else None
        earlier = "（前次已通过）" if row.status == "rejected" and row.has_accepted else ""
        status = STATUS_CHINESE[row.status] + earlier
        cells = [row.unit, row.name, f"[{_STYLE[row.status]}]{status}[/]" if _STYLE[row.status] else status,
                 when.strftime("%Y-%m-%d %H:%M") if when else "—", str(row.issue_count), "是" if row.late else ""]
        if held:
            cells.append(f"[yellow]{row.held}份[/]" if row.held else "")
        if mail_failed:
            cells.append(f"[red]{escape(row.delivery_error)}[/]" if row.delivery_error else "")
        table.add_row(*cells)
    counts = {s: sum(1 for r in rows if r.status == s) for s in STATUS_CHINESE}
    table.caption = "，".join(f"{STATUS_CHINESE[s]} {n}" for s, n in counts.items() if n)
    Console().print(table)
