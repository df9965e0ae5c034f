"""The Word rendering, read back with python-docx: text in order, merged cells, layout, fonts, templates."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import docx
import pytest
from docx.document import Document as DocxDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml.ns import qn
from docx.oxml.table import CT_Tc
from docx.shared import Length, Mm, Pt
from docx.table import Table as DocxTable
from docx.table import _Cell
from docx.text.paragraph import Paragraph as DocxParagraph

from schemas.form_spec import FormSpec
from tasks.docx_template import build_template
from tasks.render_docx import DocxTemplateError, default_template, render_docx
from tasks.report_document import Document, Figure, Paragraph, ParagraphStyle, Section, Table, document_text
from tasks.report_tables import GridCell, TableGrid, table_grids

OUTPUT = Path(__file__).parents[1] / "output"
SPECIAL = '<a & "b"> 不能丢'
TEXT_WIDTH_TWIPS = 156 * 1440 / 25.4


def png(width: int = 40, height: int = 20) -> bytes:
    """A small grey PNG, made by hand so the tests need no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


def make_document(form: FormSpec, *, draft: bool = True) -> Document:
    grids = table_grids(form, {})
    overview = [
        Paragraph(text="（一）主动公开", style=ParagraphStyle.SUBHEADING),
        Paragraph(text=f"本年度主动公开政府信息 1234 条。{SPECIAL}"),
        Paragraph(text="全县共收到政府信息公开申请 12 件。", style=ParagraphStyle.FACT),
        Paragraph(text="【待填写】平台建设情况。", style=ParagraphStyle.PLACEHOLDER),
        Paragraph(text="注：数据来源于各单位报表。", style=ParagraphStyle.NOTE),
        Figure(png=png(), caption=f"图1 政府信息公开申请办理结果 {SPECIAL}", width_mm=120),
    ]
    return Document(
        title=f"某县人民政府 2024 年政府信息公开工作年度报告 {SPECIAL}",
        subtitle="（2024 年 1 月 1 日至 12 月 31 日）",
        preface=[f"本报告根据《中华人民共和国政府信息公开条例》编制。{SPECIAL}"],
        draft=draft,
        sections=[
            Section(heading="一、总体情况", blocks=overview),
            Section(heading=grids[0].title, blocks=[Table(grid=grids[0], caption="表1 主动公开", header_rows=2)]),
            Section(heading=grids[1].title, blocks=[Table(grid=grids[1], header_rows=3, compact=True)]),
            Section(heading=grids[2].title, blocks=[Table(grid=grids[2], header_rows=3, compact=True)]),
            Section(heading="五、存在的主要问题及改进情况"),  # empty
            Section(heading="六、其他需要报告的事项", blocks=[Paragraph(text="无。")]),
        ],
        end_notes=["说明：本报告数据统计期限为 2024 年 1 月 1 日至 12 月 31 日。", "单位：件。"],
    )


@pytest.fixture(scope="module")
def document(form: FormSpec) -> Document:
    return make_document(form)


@pytest.fixture(scope="module")
def rendered(document: Document) -> bytes:
    data = render_docx(document)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "report-example.docx").write_bytes(data)  # for a person to open
    return data


def open_docx(data: bytes) -> DocxDocument:
    return docx.Document(io.BytesIO(data))


def read_back(data: bytes) -> list[str]:
    """The body in document order as document_text's lines: paragraphs, figure captions in [], rows tab-joined."""
    lines = []
    for item in open_docx(data).iter_inner_content():
        if isinstance(item, DocxParagraph):
            if item.text:
                lines.append(f"[{item.text}]" if style_name(item) == "图片标题" else item.text)
        else:
            lines += ["\t".join(_Cell(tc, item).text for tc in tr.tc_lst if tc.vMerge != "continue")
                      for tr in item._tbl.tr_lst]
    return lines


def style_name(paragraph: DocxParagraph) -> str | None:
    return paragraph.style.name if paragraph.style is not None else None


def spans(table: DocxTable) -> list[list[tuple[str, int, int]]]:
    """Each row's cells that start in it as (text, rowspan, colspan), rebuilt from gridSpan and vMerge."""
    rows: list[list[tuple[str, int]]] = []
    started: dict[int, list[int]] = {}  # grid column -> [row, index in row] of the cell started there
    heights: dict[tuple[int, int], int] = {}
    for r, tr in enumerate(table._tbl.tr_lst):
        row: list[tuple[str, int]] = []
        col = 0
        for tc in tr.tc_lst:
            if tc.vMerge == "continue":
                first_row, index = started[col]
                heights[(first_row, index)] += 1
            else:
                started[col] = [r, len(row)]
                heights[(r, len(row))] = 1
                row.append((_Cell(tc, table).text, tc.grid_span))
            col += tc.grid_span
        rows.append(row)
    return [[(text, heights[(r, i)], colspan) for i, (text, colspan) in enumerate(row)] for r, row in enumerate(rows)]


def body_paragraphs(data: bytes) -> list[DocxParagraph]:
    return [p for p in open_docx(data).iter_inner_content() if isinstance(p, DocxParagraph)]


def test_text_in_document_order_is_the_documents_text(document, rendered):
    assert read_back(rendered) == [line for line in document_text(document).splitlines() if line]


def test_each_paragraph_style_has_its_word_style(rendered):
    styles = {p.text: style_name(p) for p in body_paragraphs(rendered) if p.text}
    assert styles["一、总体情况"] == "报告一级标题"
    assert styles["（一）主动公开"] == "报告二级标题"
    assert styles["全县共收到政府信息公开申请 12 件。"] == "报告生成文字"
    assert styles["【待填写】平台建设情况。"] == "报告待填写"
    assert styles["注：数据来源于各单位报表。"] == "报告注释"
    assert styles["无。"] == "报告正文"
    assert styles["单位：件。"] == "报告注释"
    assert styles["表1 主动公开"] == "表格标题"


def test_no_template_tag_is_left(rendered):
    assert not any(mark in line for line in read_back(rendered) for mark in ("{{", "{%", "{#"))


def test_an_empty_section_is_its_heading_alone(rendered):
    lines = read_back(rendered)
    at = lines.index("五、存在的主要问题及改进情况")
    assert lines[at + 1] == "六、其他需要报告的事项"


def test_special_characters_survive(rendered):
    lines = read_back(rendered)
    assert lines[0].endswith(SPECIAL)
    assert any(line.endswith(SPECIAL) for line in lines[1:])
    assert open_docx(rendered).core_properties.title.endswith(SPECIAL)


def test_merged_cells_reproduce_every_grid_cell(document, rendered):
    tables = open_docx(rendered).tables
    grids = [block.grid for section in document.sections for block in section.blocks if isinstance(block, Table)]
    assert len(tables) == len(grids) == 3
    for table, grid in zip(tables, grids, strict=True):
        assert spans(table) == [[(cell.text, cell.rowspan, cell.colspan) for cell in row] for row in grid.rows]


def test_table_three_header_and_table_four_width(rendered):
    three, four = open_docx(rendered).tables[1:]
    corner, applicants = spans(three)[0]
    assert (corner[1], corner[2]) == (3, 3) and (applicants[1], applicants[2]) == (1, 7)
    assert spans(three)[1][0][1:] == (2, 1)  # 自然人
    assert len(three._tbl.tblGrid.gridCol_lst) == 10
    assert len(four._tbl.tblGrid.gridCol_lst) == 15


def test_tables_fit_the_text_width_label_columns_wider(rendered):
    for table in open_docx(rendered).tables:
        widths = [int(col.get(qn("w:w"))) for col in table._tbl.tblGrid.gridCol_lst]
        assert sum(widths) <= TEXT_WIDTH_TWIPS + 2
        assert table._tbl.tblPr.find(qn("w:tblLayout")).get(qn("w:type")) == "fixed"
    three = open_docx(rendered).tables[1]
    widths = [int(col.get(qn("w:w"))) for col in three._tbl.tblGrid.gridCol_lst]
    assert widths[2] > 2 * widths[3]  # 1.属于国家秘密 … against a column of numbers


def test_header_rows_repeat_and_header_cells_are_grey_and_centred(document, rendered):
    tables = open_docx(rendered).tables
    blocks = [block for section in document.sections for block in section.blocks if isinstance(block, Table)]
    for table, block in zip(tables, blocks, strict=True):
        repeated = [tr.trPr is not None and tr.trPr.find(qn("w:tblHeader")) is not None for tr in table._tbl.tr_lst]
        assert repeated == [r < block.header_rows for r in range(len(block.grid.rows))]
    first = tables[0]._tbl.tr_lst[0].tc_lst[0]
    assert fill(first) == "D9D9D9"
    assert _Cell(first, tables[0]).paragraphs[0].alignment == WD_ALIGN_PARAGRAPH.CENTER
    label, number = tables[0]._tbl.tr_lst[2].tc_lst[:2]
    assert fill(label) is None and _Cell(label, tables[0]).paragraphs[0].alignment is None
    assert _Cell(number, tables[0]).paragraphs[0].alignment == WD_ALIGN_PARAGRAPH.CENTER


def fill(tc: CT_Tc) -> str | None:
    shading = tc.find(f"{qn('w:tcPr')}/{qn('w:shd')}")
    return None if shading is None else shading.get(qn("w:fill"))


def test_compact_tables_use_the_small_table_text(rendered):
    one, three, _ = open_docx(rendered).tables
    assert one.cell(0, 0).paragraphs[0].style.name == "表格文字"
    assert three.cell(0, 0).paragraphs[0].style.name == "表格文字（小号）"
    assert three.cell(0, 0).paragraphs[0].style.font.size == Pt(9)


def test_every_style_the_body_refers_to_exists(rendered):
    assert_styles_exist(rendered)


def assert_styles_exist(data: bytes) -> None:
    doc = open_docx(data)
    defined = {style.get(qn("w:styleId")) for style in doc.styles.element.findall(qn("w:style"))}
    used = {el.get(qn("w:val")) for tag in ("w:pStyle", "w:tblStyle") for el in doc.element.body.iter(qn(tag))}
    assert used and used <= defined


def test_one_inline_picture_per_figure_at_its_width(rendered):
    shapes = open_docx(rendered).inline_shapes
    assert len(shapes) == 1
    assert mm(shapes[0].width) == pytest.approx(120, abs=0.1)


def test_page_is_a4_with_the_official_margins(rendered):
    section = open_docx(rendered).sections[0]
    sizes = (section.page_width, section.page_height)
    margins = (section.top_margin, section.bottom_margin, section.left_margin, section.right_margin)
    assert [mm(length) for length in sizes] == [pytest.approx(v, abs=0.1) for v in (210, 297)]
    assert [mm(length) for length in margins] == [pytest.approx(v, abs=0.1) for v in (37, 35, 28, 26)]


def mm(length: Length | None) -> float:
    assert length is not None
    return float(length.mm)


@pytest.mark.parametrize(("name", "font", "size"), [
    ("报告标题", "方正小标宋简体", 22), ("报告一级标题", "黑体", 16), ("报告二级标题", "楷体_GB2312", 16),
    ("报告正文", "仿宋_GB2312", 16), ("表格文字", "宋体", 10.5), ("页码", "宋体", 14),
])
def test_styles_carry_east_asian_fonts_and_sizes(rendered, name, font, size):
    style = open_docx(rendered).styles[name]
    fonts = style.element.rPr.rFonts
    assert fonts.get(qn("w:eastAsia")) == font
    assert fonts.get(qn("w:ascii")) == "Times New Roman"
    assert style.font.size == Pt(size)


def test_body_is_indented_two_characters_at_exact_28_pt(rendered):
    style = open_docx(rendered).styles["报告正文"]
    assert style.paragraph_format.line_spacing_rule == WD_LINE_SPACING.EXACTLY
    assert style.paragraph_format.line_spacing == Pt(28)
    assert style.element.pPr.find(qn("w:ind")).get(qn("w:firstLineChars")) == "200"


def test_footer_numbers_pages_between_dashes(rendered):
    footer = open_docx(rendered).sections[0].footer
    assert footer.paragraphs[0].text == "— 1 —"
    assert "PAGE" in footer._element.xml


def test_a_draft_is_marked_in_the_header(form, rendered):
    assert open_docx(rendered).sections[0].header.paragraphs[0].text == "草稿"
    final = render_docx(make_document(form, draft=False))
    assert open_docx(final).sections[0].header.paragraphs[0].text == ""


def test_a_long_table_renders():
    rows = [[GridCell(text=f"列{c}", header=True) for c in range(8)]]
    rows += [[GridCell(text=f"单位{r}")] + [GridCell(text=str(c), number=True) for c in range(7)] for r in range(1000)]
    table = Table(grid=TableGrid(title="名单", rows=rows), header_rows=1, compact=True)
    data = render_docx(Document(title="名单", sections=[Section(heading="一、名单", blocks=[table])]))
    assert len(open_docx(data).tables[0].rows) == 1001


def test_the_default_template_is_built_the_same_every_time():
    assert build_template() == build_template() == default_template()


def test_a_copy_of_the_template_with_a_style_changed_is_honoured(document):
    template = open_docx(default_template())
    template.styles["报告正文"].font.size = Pt(15)
    template.sections[0].left_margin = Mm(30)
    out = io.BytesIO()
    template.save(out)
    data = render_docx(document, out.getvalue())
    assert open_docx(data).styles["报告正文"].font.size == Pt(15)
    assert mm(open_docx(data).sections[0].left_margin) == pytest.approx(30, abs=0.1)
    widths = [int(col.get(qn("w:w"))) for col in open_docx(data).tables[0]._tbl.tblGrid.gridCol_lst]
    assert sum(widths) <= 154 * 1440 / 25.4 + 2  # the tables follow the narrower text
    assert read_back(data) == read_back(render_docx(document))


def minimal_template(*tags: str) -> bytes:
    """A plain python-docx document with the given paragraphs: none of the packaged styles."""
    template = docx.Document()
    for tag in tags:
        template.add_paragraph(tag)
    out = io.BytesIO()
    template.save(out)
    return out.getvalue()


MINIMAL = ("{{ title }}", "{%p for section in sections %}", "{{ section.heading }}",
           "{%p for block in section.blocks %}", '{%p if block.kind == "table" %}', "{{p block.table }}",
           '{%p elif block.kind == "figure" %}', "{{ block.caption }}", "{%p else %}", "{{ block.text }}",
           "{%p endif %}", "{%p endfor %}", "{%p endfor %}")


def test_a_minimal_template_with_the_same_tags_is_honoured(document):
    data = render_docx(document, minimal_template(*MINIMAL))
    expected = [document.title] + [line for s in document.sections for line in _section_lines(s)]
    assert read_back(data) == expected
    assert_styles_exist(data)  # the table styles it lacked were added


def _section_lines(section: Section) -> list[str]:
    lines = [section.heading]
    for block in section.blocks:
        if isinstance(block, Table):
            lines += ["\t".join(cell.text for cell in row) for row in block.grid.rows]
        else:
            lines.append(block.caption if isinstance(block, Figure) else block.text)
    return lines


@pytest.mark.parametrize("tags", [
    ("{{ title }", "{%p for section in sections %}", "{{ section.heading }}", "{%p endfor %}"),
    ("{{ title }}", "{%p for section in sections %}", "{{ section.heading }}"),
    ("{{ title }}", "{%p endiff %}"),
])
def test_a_broken_tag_is_a_clear_error(document, tags):
    with pytest.raises(DocxTemplateError, match="Word 模板无法使用") as caught:
        render_docx(document, minimal_template(*tags))
    assert caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_tags_that_cut_the_xml_apart_are_a_clear_error():
    template = minimal_template("{{ title }}", "{%p if draft %}", "a {% endif %} b")  # {%p …%} then an inline end
    with pytest.raises(DocxTemplateError, match="文档结构错误"):
        render_docx(Document(title="t", sections=[], draft=False), template)


def test_an_unknown_variable_is_a_clear_error(document):
    with pytest.raises(DocxTemplateError, match="letterhead"):
        render_docx(document, minimal_template("{{ letterhead }}", "{{ title }}"))


def test_a_file_that_is_not_a_docx_is_a_clear_error(document):
    with pytest.raises(DocxTemplateError, match="不是有效的 Word"):
        render_docx(document, b"not a zip file")
