"""What `nianbao report` and the demo tell the coordinator about a compiled report: its files and what to check."""

from __future__ import annotations

from typing import Protocol

from tasks.report_digest import FILE_NAMES


class CompiledReport(Protocol):
    files: dict[str, str]
    units_accepted: int
    units_expected: int
    errors: int
    notes: list[str]


def report_lines(summary: CompiledReport) -> str:
    """The report's files, one a line with its Chinese name, then the counts and the notes."""
    lines = [f"{FILE_NAMES.get(kind, kind)}：{path}" for kind, path in summary.files.items()]
    lines.append(f"已通过 {summary.units_accepted} / {summary.units_expected} 个单位；汇总校验问题 {summary.errors} 个")
    if summary.notes:
        lines.append(f"发布前请注意（{len(summary.notes)}处）：")
        lines += [f"  {n}. {note}" for n, note in enumerate(summary.notes, start=1)]
    return "\n".join(lines)
