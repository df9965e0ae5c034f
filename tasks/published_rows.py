"""Turn a published report's text, web page or Word file into rows of cell texts, for tasks/published_report.py.

A row is a list of cell texts: a table row gives its cells, a paragraph gives one cell (or several, where the text
separates them by tabs or runs of spaces, as text copied from a web table does). Nothing here knows the form: the
tables are found in the rows afterwards, by their headings and labels, never by column position.
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser

import docx
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

Row = list[str]

# A tab, a run of 2+ spaces or no-break spaces, full-width spaces, or one space between two figures ("3 0 0").
_SEPARATOR = re.compile(r"\t|[ \xa0]{2,}|\u3000+|(?<=\d) (?=\d)")
_SPACES = re.compile(r"\s+")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_GB_ALIASES = {"gb2312", "gbk", "gb_2312-80", "x-gbk", "cp936", "gb18030", "euc-cn"}


@dataclass(frozen=True)
class Rows:
    """The rows of one document, or why there are none."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


def split_line(text: str) -> Row:
    """Split one line of text into its cells."""
    return [cell.strip() for cell in _SEPARATOR.split(text)]


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str] | None:
    """Decode text bytes: a BOM, else the declared charset, else UTF-8, else GB18030; None if it is not text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]  # Notepad's "Unicode"
    elif data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    else:
        codec = _codec(declared) if declared else None
        candidates = [codec] if codec else []
        candidates += ["utf-8", "gb18030"]
    for encoding in dict.fromkeys(candidates):
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if not _CONTROL.search(text):
            return text, encoding
    return None


def _codec(charset: str) -> str | None:
    name = charset.strip().lower()
    if name in _GB_ALIASES:
        return "gb18030"  # GB2312 and GBK pages often hold GB18030-only characters: read them with the superset
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def text_rows(data: bytes) -> Rows:
    """Rows of plain text copied from the portal's page: one row a line."""
    decoded = decode_text(data)
    if decoded is None:
        return Rows(problem="文件内容不是文本（既不是UTF-8也不是GB18030编码，或含有二进制内容），无法按.txt读取。")
    text, _ = decoded
    return Rows([row for line in text.splitlines() if any(row := split_line(line))])


# --------------------------------------------------------------------------- HTML


_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source", "param", "embed"}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "svg", "select", "button", "iframe"}
_BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "section", "article", "header",
          "footer", "center", "blockquote", "pre", "br", "hr", "dl", "dt", "dd", "form", "main", "nav", "aside",
          "figure", "figcaption", "caption", "body", "html", "tr", "td", "th", "tbody", "thead", "tfoot"}
_CELL_BOUNDARY = {"tr", "table"}
_PARAGRAPH_BOUNDARY = {"td", "th", "tr", "table", "div", "li", "body", "html", "blockquote", "section", "article"}


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Node | str] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    """A forgiving element tree: closes what HTML lets authors leave open (<p>, <td>, <tr>)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("root")
        self.stack = [self.root]
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"td", "th"}:
            self._close({"td", "th"}, _CELL_BOUNDARY)
        elif tag == "tr":
            self._close({"tr"}, {"table"})
        elif (tag in _BLOCK or tag == "table") and tag != "br":
            self._close({"p"}, _PARAGRAPH_BOUNDARY)
        self.tables += tag == "table"
        node = _Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(_Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        boundary = set() if tag == "table" else {"table"}
        self._close({tag}, boundary)

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)

    def _close(self, names: set[str], boundary: set[str]) -> None:
        """Close the innermost open element named in names, unless an element of boundary is open inside it."""
        for depth in range(len(self.stack) - 1, 0, -1):
            tag = self.stack[depth].tag
            if tag in names:
                del self.stack[depth:]
                return
            if tag in boundary:
                return


class _Walker:
    """Rows from the element tree: paragraphs outside tables, a row per <tr> of a table holding no other table."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.buffer: list[str] = []

    def flush(self) -> None:
        text = re.sub(r"[ \t\r\n\f]+", " ", "".join(self.buffer))
        self.buffer.clear()
        if (row := split_line(text)) and any(row):
            self.rows.append(row)

    def walk(self, node: _Node) -> None:
        for child in node.children:
            if isinstance(child, str):
                self.buffer.append(child)
            elif child.tag in _SKIP:
                continue
            elif child.tag == "table" and not _holds_table(child):
                self.flush()
                self.rows.extend(_table_rows(child))
            elif child.tag in _BLOCK or child.tag == "table":
                # a layout table (portal pages wrap the article in one) is read as running text
                self.flush()
                self.walk(child)
                self.flush()
            else:
                self.walk(child)


def _holds_table(node: _Node) -> bool:
    return any(isinstance(c, _Node) and (c.tag == "table" or _holds_table(c)) for c in node.children)


def _elements(node: _Node, tags: set[str]) -> list[_Node]:
    """The descendants named in tags, outermost first, in document order (not looking inside the ones found)."""
    found: list[_Node] = []
    for child in node.children:
        if isinstance(child, _Node):
            found.extend([child] if child.tag in tags else _elements(child, tags))
    return found


def _table_rows(table: _Node) -> list[Row]:
    rows: list[Row] = [[_cell_text(c)] for c in _elements(table, {"caption"})]
    for tr in _elements(table, {"tr"}):
        row: Row = []
        for cell in _elements(tr, {"td", "th"}):
            span = cell.attrs.get("colspan", "1").strip()
            row += [_cell_text(cell)] + [""] * (int(span) - 1 if span.isdigit() and 0 < int(span) < 100 else 0)
        if any(row):
            rows.append(row)
    return rows


def _cell_text(node: _Node) -> str:
    parts: list[str] = []

    def collect(current: _Node) -> None:
        for child in current.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag not in _SKIP:
                parts.append(" " if child.tag in _BLOCK else "")
                collect(child)
                parts.append(" " if child.tag in _BLOCK else "")

    collect(node)
    return _SPACES.sub(" ", "".join(parts).replace("\xa0", " ")).strip()


def html_rows(data: bytes) -> Rows:
    """Rows of the portal's page: its tables (rowspan and colspan kept in the first row they cover) and paragraphs."""
    declared = _CHARSET.search(data[:4096])
    decoded = decode_text(data, declared.group(1).decode("ascii") if declared else None)
    if decoded is None:
        return Rows(problem="网页文件无法解码（既不是声明的字符集，也不是UTF-8或GB18030编码）。")
    builder = _TreeBuilder()
    builder.feed(decoded[0])
    builder.close()
    if not builder.tables:
        return Rows(problem="网页中没有表格（<table>）：请确认保存的是年度报告正文页面（而不是栏目列表或附件下载页），"
                            "或改为导入Word版（.docx）。")
    walker = _Walker()
    walker.walk(builder.root)
    walker.flush()
    return Rows(walker.rows)


# --------------------------------------------------------------------------- Word


def docx_rows(data: bytes) -> Rows:
    """Rows of a Word document: body paragraphs and table rows in document order, each merged cell once."""
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001  a damaged package fails in zipfile, lxml or python-docx alike
        return Rows(problem=f"Word文档无法打开（{type(exc).__name__}），文件可能已损坏或未完整下载。"
                            "请用Word打开后重新另存为.docx再导入。")
    rows: list[Row] = []
    for element in document.element.body.iterchildren():
        if element.tag == qn("w:p"):
            if any(row := split_line(Paragraph(element, document).text)):
                rows.append(row)
        elif element.tag == qn("w:tbl"):
            rows.extend(_word_table_rows(Table(element, document)))
    return Rows(rows)


def _word_table_rows(table: Table) -> list[Row]:
    # python-docx repeats a merged cell at each grid position it covers; keep its text at the first only, so that
    # a figure spanning three columns is read once. The set holds the lxml elements, keeping their identity stable.
    seen: set[object] = set()
    rows: list[Row] = []
    for word_row in table.rows:
        row: Row = []
        for cell in word_row.cells:
            if cell._tc in seen:
                row.append("")
                continue
            seen.add(cell._tc)
            text = " ".join(p.text for p in cell.paragraphs)
            row.append(_SPACES.sub(" ", unicodedata.normalize("NFC", text).replace("\xa0", " ")).strip())
        if any(row):
            rows.append(row)
    return rows
