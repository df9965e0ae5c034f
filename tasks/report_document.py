"""A report as a document: headings, paragraphs, tables and figures, whatever format it is written in.

The county report, its review annex (汇总情况说明) and every unit's own report are each built once as a Document;
HTML, Word and PDF are renderings of that one Document (tasks/render_html.py, tasks/render_docx.py,
tasks/render_pdf.py), so the three never disagree. Its plain text (document_text) is what the golden test compares
and what a Word file read back must give.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.report_tables import TableGrid


class ParagraphStyle(StrEnum):
    BODY = "body"  # prose the coordinator or the unit wrote
    SUBHEADING = "subheading"  # （一）… or 一、… inside a section
    FACT = "fact"  # a sentence made from the figures: it always agrees with the tables
    PLACEHOLDER = "placeholder"  # 【待填写】…: a part still to be written, never in a report ready to publish
    NOTE = "note"  # small print: sources, scope, how a figure was made


class _Block(BaseModel):
    model_config = ConfigDict(frozen=True)


class Paragraph(_Block):
    kind: Literal["paragraph"] = "paragraph"
    text: str
    style: ParagraphStyle = ParagraphStyle.BODY


class Table(_Block):
    kind: Literal["table"] = "table"
    grid: TableGrid
    caption: str = Field(default="", description="Shown above the table, e.g. 表1 与上年度对比")
    header_rows: int = Field(default=0, ge=0, description="Leading rows repeated on every page of a long table")
    compact: bool = Field(default=False, description="Small type: wide tables (表三, 表四) and long lists")


class Figure(_Block):
    kind: Literal["figure"] = "figure"
    png: bytes = Field(description="The chart as a PNG image")
    caption: str = Field(description="Shown under the figure, e.g. 图1 政府信息公开申请办理结果")
    width_mm: float = Field(default=150, gt=0, le=170, description="Printed width; A4 text is 156 mm wide")


Block = Annotated[Paragraph | Table | Figure, Field(discriminator="kind")]


class Section(BaseModel):
    heading: str = Field(description="e.g. 一、总体情况")
    blocks: list[Block] = Field(default_factory=list)


class Document(BaseModel):
    title: str
    subtitle: str = Field(default="", description="One line under the title: period and scope")
    preface: list[str] = Field(default_factory=list, description="Paragraphs before section 一 (本报告根据…编制)")
    sections: list[Section]
    end_notes: list[str] = Field(default_factory=list, description="Small print after the last section")
    draft: bool = Field(default=False, description="Marked 草稿 on every page")


def document_text(document: Document) -> str:
    """The document as plain text: the title, each heading and paragraph on a line, each table row's cells
    separated by tabs, each figure by its caption. Stable for a golden file (no styling, no images)."""
    lines = [document.title]
    if document.subtitle:
        lines.append(document.subtitle)
    lines += document.preface
    for section in document.sections:
        lines += ["", section.heading]
        for block in section.blocks:
            lines += block_lines(block)
    if document.end_notes:
        lines.append("")
        lines += document.end_notes
    return "\n".join(lines) + "\n"


def block_lines(block: Block) -> list[str]:
    """The plain-text lines of one block (see document_text)."""
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Figure):
        return [f"[{block.caption}]"]
    lines = [block.caption] if block.caption else []
    lines += ["\t".join(cell.text for cell in row) for row in block.grid.rows]
    return lines
