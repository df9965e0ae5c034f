"""The packaged Word template of the report, built in code: the official layout (GB/T 9704-2012) as named styles.

A county office opens the built template in Word, restyles 报告正文, 报告一级标题 … (fonts, spacing), changes margins
or adds a letterhead, and points nianbao at its copy; tasks/render_docx.py fills it with docxtpl. Formatting lives in
the styles, not on runs, so restyling in Word is all it takes. Chinese fonts are set on w:eastAsia (python-docx's
font.name sets only ascii/hAnsi), with Times New Roman for Latin text and figures.

The body is one paragraph per Jinja tag (docxtpl's {%p …%} tags remove their paragraph when rendered):

    {{ title }}                                   报告标题
    {%p if subtitle %} {{ subtitle }} {%p endif %} 报告副标题
    {%p for text in preface %} {{ text }} {%p endfor %} 报告正文 (本报告根据…编制)
    {%p for section in sections %}
      {{ section.heading }}                       报告一级标题
      {%p for block in section.blocks %}
        table:  {{ block.caption }} 表格标题, {{p block.table }} (the table itself), one empty 表格后段
        figure: {{ block.image }} 图片, {{ block.caption }} 图片标题
        block.style subheading / fact / placeholder / note / body:  {{ block.text }} in 报告二级标题 /
          报告生成文字 / 报告待填写 / 报告注释 / 报告正文
    {%p for note in end_notes %} {{ note }} 报告注释
Header: {% if draft %}草稿{% endif %} (草稿标记); footer: — PAGE — (页码).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from docx import Document
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Mm

LATIN_FONT = "Times New Roman"
TEXT_PT = 16  # 三号
LINE_PT = 28  # exact line pitch of the body: 22 lines on the 225 mm type area


@dataclass(frozen=True)
class StyleSpec:
    """One paragraph style of the template: a Word name an office sees, an ASCII id the XML refers to."""

    style_id: str
    name: str
    font: str | None = None  # East Asian typeface; None: inherited
    size_pt: float | None = None
    based_on: str = "Normal"
    align: str | None = None  # w:jc value
    indent_chars: int = 0  # first-line indent in characters
    line_pt: float | None = None  # exact line spacing; None: single
    before_pt: float = 0
    after_pt: float = 0
    keep_next: bool = False
    outline: int | None = None  # heading level in Word's navigation pane
    bold: bool = False
    color: str | None = None
    underline: str | None = None
    contextual: bool = False  # no space between consecutive paragraphs of this style
    quick: bool = True  # shown in Word's style gallery


TABLE_STYLE = "报告表格"
TABLE_TEXT = "表格文字"
TABLE_TEXT_SMALL = "表格文字（小号）"
STYLES = (
    StyleSpec("ReportTitle", "报告标题", "方正小标宋简体", 22, align="center", line_pt=36, after_pt=14, keep_next=True),
    StyleSpec("ReportSubtitle", "报告副标题", "楷体_GB2312", TEXT_PT, align="center", line_pt=LINE_PT, after_pt=14,
              keep_next=True),
    StyleSpec("ReportHeading1", "报告一级标题", "黑体", TEXT_PT, line_pt=LINE_PT, keep_next=True, outline=0),
    StyleSpec("ReportHeading2", "报告二级标题", "楷体_GB2312", TEXT_PT, line_pt=LINE_PT, keep_next=True, outline=1),
    StyleSpec("ReportBody", "报告正文", "仿宋_GB2312", TEXT_PT, align="both", indent_chars=2, line_pt=LINE_PT),
    # Sentences made from the figures: official text, printed like the body; its own style so it can be marked
    StyleSpec("ReportFact", "报告生成文字", based_on="ReportBody"),
    StyleSpec("ReportPlaceholder", "报告待填写", based_on="ReportBody", color="FF0000", underline="dash"),
    StyleSpec("ReportNote", "报告注释", "仿宋_GB2312", 12, align="both", indent_chars=2, line_pt=20, before_pt=14,
              contextual=True),
    StyleSpec("ReportCaption", "图表标题", "黑体", 14, align="center", line_pt=24),
    StyleSpec("TableCaption", "表格标题", based_on="ReportCaption", before_pt=7, after_pt=4, keep_next=True),
    StyleSpec("ReportFigure", "图片", align="center", before_pt=7, keep_next=True),
    StyleSpec("FigureCaption", "图片标题", based_on="ReportCaption", after_pt=7),
    StyleSpec("AfterTable", "表格后段", size_pt=8, line_pt=14, quick=False),
    StyleSpec("TableText", TABLE_TEXT, "宋体", 10.5, quick=False),
    StyleSpec("TableTextSmall", TABLE_TEXT_SMALL, based_on="TableText", size_pt=9, quick=False),
    StyleSpec("TemplateTag", "模板指令", "宋体", 10, color="808080", quick=False),
    StyleSpec("DraftMark", "草稿标记", "黑体", TEXT_PT, align="right", color="FF0000", quick=False),
    StyleSpec("PageNumber", "页码", "宋体", 14, align="center", quick=False),
)
_BY_NAME = {spec.name: spec for spec in STYLES}

_BORDERS = "".join(f'<w:{side} w:val="single" w:sz="4" w:space="0" w:color="000000"/>'
                   for side in ("top", "left", "bottom", "right", "insideH", "insideV"))
# Single ½ pt borders, narrow cell margins so that 表四's 15 number columns fit the 156 mm text width
_TABLE_STYLE_XML = f"""<w:style {nsdecls("w")} w:type="table" w:styleId="ReportTable">
<w:name w:val="{TABLE_STYLE}"/><w:basedOn w:val="TableNormal"/><w:qFormat/>
<w:pPr><w:spacing w:after="0" w:line="240" w:lineRule="auto"/></w:pPr>
<w:tblPr><w:tblBorders>{_BORDERS}</w:tblBorders>
<w:tblCellMar><w:top w:w="28" w:type="dxa"/><w:left w:w="57" w:type="dxa"/>
<w:bottom w:w="28" w:type="dxa"/><w:right w:w="57" w:type="dxa"/></w:tblCellMar></w:tblPr></w:style>"""

_BODY: list[tuple[str, str]] = [
    ("{#p nianbao 年度报告模板：可在 Word 中修改样式（报告正文、报告一级标题……）、页边距、页眉页脚，"
     "可增加版头；花括号中的标签不要改动，其所在段落在生成时删除。 #}", "模板指令"),
    ("{{ title }}", "报告标题"),
    ("{%p if subtitle %}", "模板指令"),
    ("{{ subtitle }}", "报告副标题"),
    ("{%p endif %}", "模板指令"),
    ("{%p for text in preface %}", "模板指令"),
    ("{{ text }}", "报告正文"),
    ("{%p endfor %}", "模板指令"),
    ("{%p for section in sections %}", "模板指令"),
    ("{{ section.heading }}", "报告一级标题"),
    ("{%p for block in section.blocks %}", "模板指令"),
    ('{%p if block.kind == "table" %}', "模板指令"),
    ("{%p if block.caption %}", "模板指令"),
    ("{{ block.caption }}", "表格标题"),
    ("{%p endif %}", "模板指令"),
    ("{{p block.table }}", "模板指令"),
    ("", "表格后段"),
    ('{%p elif block.kind == "figure" %}', "模板指令"),
    ("{{ block.image }}", "图片"),
    ("{{ block.caption }}", "图片标题"),
    ('{%p elif block.style == "subheading" %}', "模板指令"),
    ("{{ block.text }}", "报告二级标题"),
    ('{%p elif block.style == "fact" %}', "模板指令"),
    ("{{ block.text }}", "报告生成文字"),
    ('{%p elif block.style == "placeholder" %}', "模板指令"),
    ("{{ block.text }}", "报告待填写"),
    ('{%p elif block.style == "note" %}', "模板指令"),
    ("{{ block.text }}", "报告注释"),
    ("{%p else %}", "模板指令"),
    ("{{ block.text }}", "报告正文"),
    ("{%p endif %}", "模板指令"),
    ("{%p endfor %}", "模板指令"),
    ("{%p endfor %}", "模板指令"),
    ("{%p for note in end_notes %}", "模板指令"),
    ("{{ note }}", "报告注释"),
    ("{%p endfor %}", "模板指令"),
]

_PAGE_NUMBER_XML = f"""<w:p {nsdecls("w")}><w:pPr><w:pStyle w:val="PageNumber"/></w:pPr>
<w:r><w:t xml:space="preserve">— </w:t></w:r><w:r><w:fldChar w:fldCharType="begin"/></w:r>
<w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r>
<w:r><w:t>1</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:t xml:space="preserve"> —</w:t></w:r></w:p>"""


def build_template() -> bytes:
    """Build the default report template (the same bytes on every call)."""
    doc = Document()
    _set_defaults(doc)
    for spec in STYLES:
        doc.styles.element.append(parse_xml(style_xml(spec)))
    doc.styles.element.append(parse_xml(_TABLE_STYLE_XML))
    _set_page(doc)
    for text, style in _BODY:
        doc.add_paragraph(text, style=style)
    doc.core_properties.author = "nianbao"
    doc.core_properties.title = ""
    out = io.BytesIO()
    doc.save(out)
    return _stable_zip(out.getvalue())


def ensure_styles(styles: Any, names: Iterable[str]) -> dict[str, str]:
    """Add any of the named template styles a template lacks; give each name's style id in that template."""
    ids = {}
    for name in names:
        if name in styles:
            ids[name] = styles[name].style_id
            continue
        xml = _TABLE_STYLE_XML if name == TABLE_STYLE else style_xml(_BY_NAME[name])
        element = parse_xml(xml)
        based_on = element.find(qn("w:basedOn"))
        if based_on is not None and styles.element.get_by_id(based_on.get(qn("w:val"))) is None:
            element.remove(based_on)  # a custom template may lack the base (e.g. 表格文字 for 表格文字（小号）)
        styles.element.append(element)
        ids[name] = element.get(qn("w:styleId"))
    return ids


def style_xml(spec: StyleSpec) -> str:
    """Give the w:style element of one paragraph style."""
    ppr = "<w:keepNext/>" if spec.keep_next else ""
    line = f' w:line="{round(spec.line_pt * 20)}" w:lineRule="exact"' if spec.line_pt else ""
    if spec.line_pt or spec.before_pt or spec.after_pt or spec.based_on == "Normal":
        line = line or ' w:line="240" w:lineRule="auto"'
        ppr += f'<w:spacing w:before="{round(spec.before_pt * 20)}" w:after="{round(spec.after_pt * 20)}"{line}/>'
    if spec.indent_chars and spec.size_pt:
        twips = round(spec.indent_chars * spec.size_pt * 20)
        ppr += f'<w:ind w:firstLineChars="{spec.indent_chars * 100}" w:firstLine="{twips}"/>'
    ppr += "<w:contextualSpacing/>" if spec.contextual else ""
    ppr += f'<w:jc w:val="{spec.align}"/>' if spec.align else ""
    ppr += f'<w:outlineLvl w:val="{spec.outline}"/>' if spec.outline is not None else ""
    return (f'<w:style {nsdecls("w")} w:type="paragraph" w:customStyle="1" w:styleId="{spec.style_id}">'
            f'<w:name w:val="{spec.name}"/><w:basedOn w:val="{spec.based_on}"/>'
            f'{"<w:qFormat/>" if spec.quick else ""}<w:pPr>{ppr}</w:pPr><w:rPr>{_rpr(spec)}</w:rPr></w:style>')


def _rpr(spec: StyleSpec) -> str:
    rpr = ""
    if spec.font:
        rpr += f'<w:rFonts w:ascii="{LATIN_FONT}" w:hAnsi="{LATIN_FONT}" w:eastAsia="{spec.font}" w:cs="{LATIN_FONT}"/>'
    rpr += "<w:b/><w:bCs/>" if spec.bold else ""
    rpr += f'<w:color w:val="{spec.color}"/>' if spec.color else ""
    if spec.size_pt:
        rpr += f'<w:sz w:val="{round(spec.size_pt * 2)}"/><w:szCs w:val="{round(spec.size_pt * 2)}"/>'
    rpr += f'<w:u w:val="{spec.underline}" w:color="{spec.color or "auto"}"/>' if spec.underline else ""
    return rpr


def _set_defaults(doc: Any) -> None:
    """仿宋_GB2312 三号 for everything not styled otherwise; no theme fonts (they would win over w:eastAsia)."""
    defaults = doc.styles.element.find(qn("w:docDefaults"))
    defaults.getparent().replace(defaults, parse_xml(
        f'<w:docDefaults {nsdecls("w")}><w:rPrDefault><w:rPr>'
        f'<w:rFonts w:ascii="{LATIN_FONT}" w:hAnsi="{LATIN_FONT}" w:eastAsia="仿宋_GB2312" w:cs="{LATIN_FONT}"/>'
        f'<w:kern w:val="2"/><w:sz w:val="{TEXT_PT * 2}"/><w:szCs w:val="{TEXT_PT * 2}"/>'
        '<w:lang w:val="en-US" w:eastAsia="zh-CN" w:bidi="ar-SA"/></w:rPr></w:rPrDefault>'
        '<w:pPrDefault><w:pPr><w:spacing w:after="0" w:line="240" w:lineRule="auto"/></w:pPr></w:pPrDefault>'
        "</w:docDefaults>"))
    normal = doc.styles["Normal"].element
    normal.append(parse_xml(f'<w:rPr {nsdecls("w")}><w:rFonts w:ascii="{LATIN_FONT}" w:hAnsi="{LATIN_FONT}" '
                            f'w:eastAsia="仿宋_GB2312" w:cs="{LATIN_FONT}"/><w:sz w:val="{TEXT_PT * 2}"/>'
                            f'<w:szCs w:val="{TEXT_PT * 2}"/></w:rPr>'))
    lang = doc.settings.element.find(qn("w:themeFontLang"))
    if lang is not None:
        lang.set(qn("w:eastAsia"), "zh-CN")


def _set_page(doc: Any) -> None:
    """A4 portrait, the GB/T 9704 margins; 草稿 in the header when the report is a draft, — n — in the footer."""
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(37), Mm(35)
    section.left_margin, section.right_margin = Mm(28), Mm(26)
    section.header_distance, section.footer_distance = Mm(15), Mm(25)
    header = section.header.paragraphs[0]
    header.style = doc.styles["草稿标记"]
    header.add_run("{% if draft %}草稿{% endif %}")
    footer = section.footer._element
    for paragraph in list(footer):
        footer.remove(paragraph)
    footer.append(parse_xml(_PAGE_NUMBER_XML))


def _stable_zip(data: bytes) -> bytes:
    """Rewrite the package with fixed member dates: python-docx stamps each member with the time of saving."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0)), zin.read(item.filename),
                          compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
