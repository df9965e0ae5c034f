"""The prose of a report (sections 一, 五 and 六): read from the coordinator's text file or from a narrative sheet.

Three sources give the same result, paragraphs by section number:
- a plain text file (.txt): a marker line starts each section — `[总体情况]`, `一、总体情况` or `# 总体情况` — and
  every other non-empty line is a paragraph (text copied from a published report reads as it is: its table
  sections are skipped);
- a Markdown file (.md): headings start sections, blank lines separate paragraphs, list items are paragraphs of
  their own, emphasis is dropped;
- the texts of a narrative sheet (a unit's workbook, or the coordinator's sheet): one text per section, each line
  a paragraph.
A short line like （一）加强组织领导 or 一、完善制度 becomes a subheading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tasks.report_document import Paragraph, ParagraphStyle

Narrative = dict[str, list[Paragraph]]  # section number (一, 五, 六) -> its paragraphs

_NUMERAL = "[一二三四五六七八九十]+"
_SUBHEADING = re.compile(rf"^(（{_NUMERAL}）|\({_NUMERAL}\)|{_NUMERAL}、|[0-9]+[.、．]).{{0,40}}$")
_SECTION_NUMBER = re.compile(rf"^(?:{_NUMERAL}、)")
_MARKER_DECORATION = re.compile(r"^[#\s\[【]+|[\]】\s]+$")
_LIST_ITEM = re.compile(r"^(?:[-*+]|[0-9]+\.)\s+")
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)")


def parse_narrative(text: str, headings: Mapping[str, str], prose: set[str], *, markdown: bool = False) -> Narrative:
    """Paragraphs of each prose section in the text. headings maps every section number to its heading
    (一 -> 一、总体情况, 二 -> 二、主动公开政府信息情况, ...); the text of a section not in prose (a table section of a
    pasted report) is skipped."""
    names = {_name(heading): number for number, heading in headings.items()}
    blocks = _markdown_blocks(text) if markdown else [line.strip() for line in text.splitlines()]
    narrative: Narrative = {}
    current: str | None = None
    for block in blocks:
        if not block:
            continue
        number = names.get(_name(_MARKER_DECORATION.sub("", block)))
        if number is not None:
            current = number
            narrative.setdefault(number, [])
        elif current is not None:
            heading = block.startswith("#") if markdown else False
            narrative[current].append(_paragraph(block.lstrip("#").strip(), force_heading=heading))
    return {number: paragraphs for number, paragraphs in narrative.items() if number in prose}


def narrative_from_texts(texts: Mapping[str, str], section_of: Mapping[str, str]) -> Narrative:
    """Paragraphs of each section from a narrative sheet's texts (text key -> text; section_of: key -> number)."""
    narrative: Narrative = {}
    for key, number in section_of.items():
        lines = [line.strip() for line in texts.get(key, "").splitlines()]
        paragraphs = [_paragraph(line) for line in lines if line]
        if paragraphs:
            narrative[number] = paragraphs
    return narrative


def _name(heading: str) -> str:
    """A heading without its number and spaces: 一、总体情况 -> 总体情况."""
    return re.sub(r"\s+", "", _SECTION_NUMBER.sub("", heading.strip()))


def _paragraph(text: str, force_heading: bool = False) -> Paragraph:
    is_heading = force_heading or (bool(_SUBHEADING.match(text)) and not text.endswith(("。", "；", "：")))
    return Paragraph(text=text, style=ParagraphStyle.SUBHEADING if is_heading else ParagraphStyle.BODY)


def _markdown_blocks(text: str) -> list[str]:
    """Markdown as blocks: a heading line ('#' kept, to mark it), a list item, or a paragraph of joined lines."""
    blocks: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        if lines:
            blocks.append(_plain("".join(lines)))
            lines.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("#") or _LIST_ITEM.match(line):
            flush()
            blocks.append(_plain(_LIST_ITEM.sub("", line, count=1)))
        else:
            lines.append(line)
    flush()
    return blocks


def _plain(text: str) -> str:
    return _EMPHASIS.sub("", text)
