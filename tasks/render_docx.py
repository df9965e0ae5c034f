"""The report Document as a Word file: docxtpl fills a .docx template (the packaged one or an office's own copy).

The template carries the layout (styles, margins, header and footer; see tasks/docx_template.py) and the Jinja tags;
this module gives it the Document as a context of plain values. Text goes in autoescaped. Tables are written as
WordprocessingML directly and inserted with {{p block.table }}: python-docx needs over a second just to fill a
thousand rows' cells, and docxtpl's Subdoc needs docxcompose. Figures are docxtpl InlineImages.

Errors: DocxTemplateError (a ValueError) when the template is not a .docx or its Jinja tags are broken.
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml import parse_xml
from docx.oxml.ns import qn
from docx.shared import Emu, Mm
from docxtpl import DocxTemplate, InlineImage
from jinja2 import Environment, StrictUndefined, TemplateError
from markupsafe import Markup, escape

from tasks.docx_template import TABLE_STYLE, TABLE_TEXT, TABLE_TEXT_SMALL, build_template, ensure_styles
from tasks.report_document import Block, Document, Figure, Paragraph, Table
from tasks.report_tables import GridCell

HEADER_FILL = "D9D9D9"  # light grey behind header cells
_TAG_MARKS = (("{{", "}}"), ("{%", "%}"), ("{#", "#}"))
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 cannot carry


class DocxTemplateError(ValueError):
    """The Word template cannot be used: not a .docx file, or a Jinja tag in it is broken."""

    def __init__(self, reason: str, near: str = "") -> None:
        self.reason, self.near = reason, near
        super().__init__(f"Word 模板无法使用：{reason}" + (f"（出错处附近：{near}）" if near else ""))


@functools.cache
def default_template() -> bytes:
    """Give the packaged template (built once per process)."""
    return build_template()


def render_docx(document: Document, template: bytes | None = None) -> bytes:
    """Render the document into the template (None: the packaged one); give the .docx file's bytes."""
    tpl = _load(default_template() if template is None else template)
    docx = tpl.get_docx()
    ids = ensure_styles(docx.styles, (TABLE_STYLE, TABLE_TEXT, TABLE_TEXT_SMALL))
    section = docx.sections[-1]
    width = Emu(section.page_width - section.left_margin - section.right_margin)
    layout = _Layout(tpl=tpl, width_twips=width.twips, table=ids[TABLE_STYLE], text=ids[TABLE_TEXT],
                     text_small=ids[TABLE_TEXT_SMALL])
    try:
        tpl.render(_context(document, layout), jinja_env=Environment(undefined=StrictUndefined), autoescape=True)
    except TemplateError as exc:
        near = " / ".join(line.strip() for line in getattr(exc, "docx_context", []) if line.strip())
        raise DocxTemplateError(f"{type(exc).__name__}: {exc.message or exc}", near) from exc
    docx.core_properties.title = _clean(document.title)
    out = io.BytesIO()
    tpl.save(out)
    return out.getvalue()


class _StrictTemplate(DocxTemplate):  # type: ignore[misc]  # docxtpl is untyped
    """A DocxTemplate that refuses rendered XML a broken tag has cut apart (docxtpl would recover it silently,
    dropping the body)."""

    def fix_tables(self, xml: str) -> Any:
        try:
            parse_xml(xml)
        except SyntaxError as exc:  # lxml's XMLSyntaxError
            raise DocxTemplateError(f"标签使生成的文档结构错误（{exc}）") from exc
        return super().fix_tables(xml)


def _load(template: bytes) -> Any:
    tpl = _StrictTemplate(io.BytesIO(template))
    try:
        tpl.get_docx()
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError) as exc:
        raise DocxTemplateError(f"不是有效的 Word（.docx）文件（{exc}）") from exc
    _check_tags(tpl.get_docx())
    return tpl


def _check_tags(docx: Any) -> None:
    """Refuse a paragraph whose tag is not closed in it: docxtpl would let it swallow the paragraphs after it."""
    parts = [docx.element.body]
    parts += [rel.target_part.element for rel in docx.part.rels.values() if rel.reltype in (RT.HEADER, RT.FOOTER)]
    for part in parts:
        for paragraph in part.iter(qn("w:p")):
            text = "".join(t.text or "" for t in paragraph.iter(qn("w:t")))
            for opening, closing in _TAG_MARKS:
                if text.count(opening) != text.count(closing):
                    raise DocxTemplateError(f"段落中的标签不完整（{opening} 与 {closing} 不成对）", text)


@dataclass(frozen=True)
class _Layout:
    tpl: Any
    width_twips: int  # the template's text width
    table: str  # style ids in this template
    text: str
    text_small: str


def _context(document: Document, layout: _Layout) -> dict[str, object]:
    return {
        "title": _clean(document.title),
        "subtitle": _clean(document.subtitle),
        "draft": document.draft,
        "preface": [_clean(text) for text in document.preface],
        "sections": [{"heading": _clean(section.heading), "blocks": [_block(block, layout) for block in section.blocks]}
                     for section in document.sections],
        "end_notes": [_clean(note) for note in document.end_notes],
    }


def _block(block: Block, layout: _Layout) -> dict[str, object]:
    """Every key on every block, so that a template's branches never meet an undefined one."""
    values: dict[str, object] = {"kind": block.kind, "style": "", "text": "", "caption": "", "table": "", "image": ""}
    if isinstance(block, Paragraph):
        values |= {"style": block.style.value, "text": _clean(block.text)}
    elif isinstance(block, Table):
        values |= {"caption": _clean(block.caption), "table": Markup(table_xml(block, layout))}
    elif isinstance(block, Figure):
        width = min(Mm(block.width_mm), Mm(layout.width_twips * 25.4 / 1440))
        values |= {"caption": _clean(block.caption),
                   "image": InlineImage(layout.tpl, io.BytesIO(block.png), width=width)}
    return values


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class PlacedCell:
    """A GridCell at its position in the full grid (0-based row and column)."""

    cell: GridCell
    row: int
    col: int
    rowspan: int
    colspan: int


def place_cells(rows: list[list[GridCell]]) -> list[PlacedCell]:
    """Put the HTML-style rows' cells on the full grid: each cell takes the next column no earlier span covers."""
    taken: set[tuple[int, int]] = set()
    placed = []
    for r, row in enumerate(rows):
        c = 0
        for cell in row:
            while (r, c) in taken:
                c += 1
            rowspan = max(1, min(cell.rowspan, len(rows) - r))
            colspan = 1
            while colspan < cell.colspan and (r, c + colspan) not in taken:  # a malformed span stops at another
                colspan += 1
            placed.append(PlacedCell(cell, r, c, rowspan, colspan))
            taken |= {(r + i, c + j) for i in range(rowspan) for j in range(colspan)}
            c += colspan
    return placed


def column_widths(placed: list[PlacedCell], total: int) -> list[int]:
    """Share the width by the text each column must hold: labels wider, numbers and wrapping headers narrow."""
    columns = max((p.col + p.colspan for p in placed), default=1)
    wants = [3] * columns
    for p in placed:
        if p.colspan == 1:
            wants[p.col] = max(wants[p.col], _wanted_chars(p))
    widths = [total * want // sum(wants) for want in wants]
    widths[-1] += total - sum(widths)
    return widths


def _wanted_chars(p: PlacedCell) -> int:
    if p.cell.number:  # Latin digits are half the width of a Chinese character
        return (len(p.cell.text) + 1) // 2 + 1
    if p.cell.header or p.rowspan >= 3:  # headers and tall labels wrap onto several lines
        return min(len(p.cell.text), 4)
    return min(len(p.cell.text), 12)


def table_xml(table: Table, layout: _Layout) -> str:
    """Write one table as a w:tbl: merged cells as gridSpan/vMerge, header rows repeated on every page."""
    placed = place_cells(table.grid.rows)
    widths = column_widths(placed, layout.width_twips)
    cover = {(p.row + i, p.col): p for p in placed for i in range(p.rowspan)}
    text_style = layout.text_small if table.compact else layout.text
    rows = []
    for r in range(len(table.grid.rows)):
        head = "<w:tblHeader/>" if r < table.header_rows else ""
        cells, c = [], 0
        while c < len(widths):
            p = cover.get((r, c)) or PlacedCell(GridCell(text=""), r, c, 1, 1)  # a hole: an empty cell keeps it square
            cells.append(_cell_xml(p, sum(widths[c:c + p.colspan]), p.row != r, text_style))
            c += p.colspan
        rows.append(f"<w:tr><w:trPr><w:cantSplit/>{head}</w:trPr>{''.join(cells)}</w:tr>")
    grid = "".join(f'<w:gridCol w:w="{w}"/>' for w in widths)
    return (f'<w:tbl><w:tblPr><w:tblStyle w:val="{layout.table}"/><w:tblW w:w="{sum(widths)}" w:type="dxa"/>'
            '<w:tblLayout w:type="fixed"/><w:tblLook w:val="04A0" w:firstRow="1" w:lastRow="0" w:firstColumn="1" '
            f'w:lastColumn="0" w:noHBand="0" w:noVBand="1"/></w:tblPr><w:tblGrid>{grid}</w:tblGrid>'
            f"{''.join(rows)}</w:tbl>")


def _cell_xml(p: PlacedCell, width: int, continued: bool, text_style: str) -> str:
    span = f'<w:gridSpan w:val="{p.colspan}"/>' if p.colspan > 1 else ""
    merge = ('<w:vMerge/>' if continued else '<w:vMerge w:val="restart"/>') if p.rowspan > 1 else ""
    fill = f'<w:shd w:val="clear" w:color="auto" w:fill="{HEADER_FILL}"/>' if p.cell.header else ""
    centre = '<w:jc w:val="center"/>' if p.cell.header or p.cell.number else ""
    run = "" if continued or not p.cell.text else f'<w:r><w:t xml:space="preserve">{_xml_text(p.cell.text)}</w:t></w:r>'
    return (f'<w:tc><w:tcPr><w:tcW w:w="{width}" w:type="dxa"/>{span}{merge}{fill}<w:vAlign w:val="center"/></w:tcPr>'
            f'<w:p><w:pPr><w:pStyle w:val="{text_style}"/>{centre}</w:pPr>{run}</w:p></w:tc>')


def _xml_text(text: str) -> str:
    return str(escape(_clean(text)))
