"""The answer to each return, in Chinese: a receipt, or the list of what is wrong and where."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tasks.archive import safe_name

TEMPLATES = Path(__file__).parent / "templates"
CHINA = ZoneInfo("Asia/Shanghai")
SENDER = "县人民政府办公室（政务公开办）"

# plain text answers (the HTML report has its own autoescaping environment); auto_reload off: a template is read
# and compiled once per process, not stat()ed again at every answer
_env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True,
                   autoescape=False, auto_reload=False)


@dataclass(frozen=True)
class Answer:
    unit_code: str | None
    unit_name: str | None
    file_name: str
    year: int
    accepted: bool
    duplicate: bool
    version: int
    received_at: datetime
    replaces: int | None  # version of the accepted return this one supersedes
    issues: list[dict[str, Any]]
    deadline: date | None = None
    # the year's report was approved before this return was stored: it is kept, but changes nothing consolidated
    # (held, when it passed every check; a rejected one is told that a fixed return will not count either)
    locked: bool = False
    repeats: int | None = None  # version of the unit's previous return, when this one has every figure the same

    @property
    def held(self) -> bool:
        return self.locked and self.accepted and not self.duplicate

    @property
    def repeats_note(self) -> str:
        """One sentence for a return that repeats the unit's previous one figure for figure (empty otherwise): a
        unit that re-sent its old file instead of the corrected one learns why the same problems come back."""
        if self.repeats is None or self.duplicate:
            return ""
        if self.accepted:
            return f"本次报送的各项数据与第{self.repeats}次报送完全相同。"
        return (f"本次报送的各项数据与第{self.repeats}次报送完全相同，未作任何修改；请确认修改已保存在所报送的工作簿中"
                "（而不是另存的副本）。")


def compile_template() -> None:
    """Compile the answer's template now (Jinja compiles a template at its first use)."""
    _env.get_template("answer.txt.j2")


def render_answer(answer: Answer) -> str:
    """The receipt or issue list as plain text."""
    text = _env.get_template("answer.txt.j2").render(
        unit_name=answer.unit_name, file_name=answer.file_name, year=answer.year, accepted=answer.accepted,
        duplicate=answer.duplicate, locked=answer.locked, held=answer.held, version=answer.version,
        replaces=answer.replaces, repeats_note=answer.repeats_note,
        received_at=answer.received_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M"),
        deadline=f"{answer.deadline.year}年{answer.deadline.month}月{answer.deadline.day}日" if answer.deadline else "",
        errors=[i for i in answer.issues if i.get("severity") == "error"],
        warnings=[i for i in answer.issues if i.get("severity") != "error"],
        sender=SENDER, today=datetime.now(CHINA).strftime("%Y年%m月%d日"),
    )
    return re.sub(r"\n{3,}", "\n\n", text)


def write_answer(answer: Answer, outbox: Path, text: str | None = None) -> Path:
    """Write the answer (its text, when rendered already) next to the unit's other answers; return its path."""
    folder = outbox / "answers" / (answer.unit_code or "_unidentified")
    kind = "重复" if answer.duplicate else ("定稿后报送" if answer.held else "回执" if answer.accepted else "问题清单")
    stamp = answer.received_at.astimezone(CHINA).strftime("%Y%m%d-%H%M%S")
    # the name was made safe when the file came in; again here for an answer made from a stored row
    path = folder / f"{stamp}-第{answer.version}次-{kind}-{Path(safe_name(answer.file_name)).stem}.txt"
    folder.mkdir(parents=True, exist_ok=True)  # mostly new: a unit's first answer is the usual one
    path.write_text(render_answer(answer) if text is None else text, encoding="utf-8")
    return path
