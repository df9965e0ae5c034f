"""What a returned file must never make us do: inflate a zip bomb, expand XML entities, open a macro workbook or
guess at a format we do not read. Checked before anything parses the file; each refusal names its issue code.

The reader's fast path (tasks/xlsx_values.py) checks what each member declares as it walks the central directory
(`refuse_member`, `refuse_totals`), and never inflates past the sizes declared; it leaves any XML part with more
than a declaration before its root element to the other path. That path (tasks/workbook_read.py, before calamine
sees the file) runs `guard_archive`: the same checks over zipfile's reading of the directory (zip64 too), then every
member inflated in bounded steps, so that one lying about its size (a bomb, or a damaged member), or an XML part
with a document type declaration (the door to entity expansion, "billion laughs" and external entities), is
refused. Excel and WPS write neither.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib

MAX_MEMBERS = 10_000  # a workbook has a few dozen parts
MAX_TOTAL_BYTES = 100 * 1024 * 1024  # all members inflated together; a filled return is well under 1 MB
MAX_RATIO = 100  # inflated / compressed, per member (Apache POI's limit), once it inflates past RATIO_GRACE
RATIO_GRACE = 1024 * 1024  # small members of repeated bytes compress far better than that, harmlessly
_STEP = 1024 * 1024  # inflate this much at a time, never more
# a member inflating past its declared size is inflated this much further (and thrown away) to tell a damaged one,
# whose garbage soon ends, from a bomb lying about its size, which goes on
_LIE_MARGIN = 8 * 1024 * 1024

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a compound file: .xls, .et, .doc, or an encrypted .xlsx
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the stream an Office / WPS password puts the xlsx in
_DTD = (b"<!DOCTYPE", "<!DOCTYPE".encode("utf-16-le"), "<!DOCTYPE".encode("utf-16-be"))
_XML_MEMBER = (".xml", ".rels", ".vml")
_MACRO_FOLDERS = ("xl/macrosheets/", "xl/dialogsheets/")  # Excel 4.0 macro sheets and dialogs
_MACRO_MARKERS = ("vbaproject.bin", *_MACRO_FOLDERS)
_ROOT = re.compile(rb"<[A-Za-z_]")
# a start tag: its prefix, local name and attributes (quoted values may hold ">"); possessive, so that a tag that
# never closes costs one pass over the part, not a backtracking search of it
_START_TAG = re.compile(rb"""<(?:([A-Za-z_][\w.-]*+):)?([A-Za-z_][\w.-]*+)((?:[^>"']++|"[^"]*+"|'[^']*+')*+)>""")
# what may come before the root element: text, processing instructions (the XML declaration among them), comments
_PROLOG = re.compile(rb"(?:[^<]++|<\?.*?\?>|<!--.*?-->)*+", re.DOTALL)
_ATTRIBUTE = re.compile(rb"""([^\s=/>"']++)\s*+=\s*+(?:"([^"]*+)"|'([^']*+)')""")
_DECLARATION = re.compile(rb"""\sxmlns(?::([A-Za-z_][\w.-]*+))?\s*+=\s*+(?:"([^"]*+)"|'([^']*+)')""")
SHEET_NAMESPACES = (b"http://schemas.openxmlformats.org/spreadsheetml/2006/main",  # as Excel and WPS save
                    b"http://purl.oclc.org/ooxml/spreadsheetml/main")  # Excel's "Strict Open XML"
RELATIONSHIP_NAMESPACES = (b"http://schemas.openxmlformats.org/package/2006/relationships",)  # Strict's too
# the parts that say where the figures are, by their root element: their namespaces, and the elements the readers
# look for (matching names alone) in them
_VOCABULARIES: dict[bytes, tuple[tuple[bytes, ...], re.Pattern[bytes]]] = {
    b"worksheet": (SHEET_NAMESPACES, re.compile(rb"<(?:sheetData|row|c)[\s/>]")),
    b"workbook": (SHEET_NAMESPACES, re.compile(rb"<(?:sheets|sheet|definedNames|definedName)[\s/>]")),
    b"Relationships": (RELATIONSHIP_NAMESPACES, re.compile(rb"<Relationship[\s/>]")),
}
WORKBOOK_PART, WORKBOOK_RELATIONSHIPS = "xl/workbook.xml", "xl/_rels/workbook.xml.rels"
_WORKBOOK_PARTS = {WORKBOOK_PART: b"workbook", WORKBOOK_RELATIONSHIPS: b"Relationships"}


class Refused(Exception):
    """The file is refused without being read: the issue's code and a Chinese note of why."""

    def __init__(self, code: str, note: str = "") -> None:
        super().__init__(code, note)
        self.code = code
        self.note = note


def refuse_member(name: str, flags: int, compressed: int, size: int) -> None:
    """Refuse a member by what the central directory says of it, before anything inflates it: a password, macro
    code, or a bomb's compression ratio."""
    if flags & 0x1:
        raise Refused("encrypted-workbook", "压缩包设置了密码")
    lowered = name.lower()
    if lowered.endswith("vbaproject.bin") or lowered.startswith(_MACRO_FOLDERS):
        raise Refused("macro-workbook", name)
    if size > RATIO_GRACE and size > MAX_RATIO * max(compressed, 1):
        raise Refused("unsafe-archive", f"“{name}”的压缩比超过{MAX_RATIO}倍")


def refuse_totals(members: int, size: int) -> None:
    """Refuse an archive of too many members, or too large once inflated, by what its central directory says."""
    if members > MAX_MEMBERS:
        raise Refused("unsafe-archive", f"包含的文件超过{MAX_MEMBERS}个")
    if size > MAX_TOTAL_BYTES:
        raise Refused("unsafe-archive", f"解压后超过{MAX_TOTAL_BYTES // (1024 * 1024)}MB")


def guard_archive(data: bytes, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse the archive for what it declares, then for what its members really inflate to (see module doc)."""
    refuse_totals(len(infos), sum(info.file_size for info in infos))
    for info in infos:
        refuse_member(info.filename, info.flag_bits, info.compress_size, info.file_size)
    for info in infos:
        _inflate_within(data, info)


def _inflate_within(data: bytes, info: zipfile.ZipInfo) -> None:
    """Inflate one member in steps, never past its declared size; refuse a liar and a document type declaration."""
    offset = info.header_offset
    if len(data) < offset + 30 or struct.unpack_from("<I", data, offset)[0] != 0x04034B50:
        return  # no local header where the directory says: zipfile and calamine report the damage
    name_length, extra_length = struct.unpack_from("<HH", data, offset + 26)
    start = offset + 30 + name_length + extra_length
    stored = data[start:start + info.compress_size]
    xml = info.filename.lower().endswith(_XML_MEMBER)
    if info.compress_type == zipfile.ZIP_STORED:
        if len(stored) > info.file_size:
            raise Refused("unsafe-archive", f"“{info.filename}”的实际大小与声明不符")
        if xml:
            _no_dtd(stored, info.filename)
        return
    if info.compress_type != zipfile.ZIP_DEFLATED:
        raise Refused("corrupt-workbook", f"不支持的压缩方式（{info.compress_type}）")
    inflater = zlib.decompressobj(-15)
    total, tail, pending = 0, b"", stored
    try:
        while pending:
            chunk = inflater.decompress(pending, _STEP)
            pending = inflater.unconsumed_tail
            total += len(chunk)
            if total > info.file_size + _LIE_MARGIN:
                raise Refused("unsafe-archive", f"“{info.filename}”解压后远超声明的{info.file_size}字节")
            if xml:
                _no_dtd(tail + chunk, info.filename)
                tail = chunk[-16:]
            if not chunk:
                break
    except zlib.error:
        pass  # damaged: said below when it came out too long, else by the readers
    if total > info.file_size:  # a damaged stream, which no reader can trust: one byte changed may do this
        raise Refused("corrupt-workbook", f"“{info.filename}”解压后与声明的大小不符")


def _no_dtd(text: bytes, name: str) -> None:
    if any(marker in text for marker in _DTD):
        raise Refused("unsafe-xml", name)


def prolog_is_plain(content: bytes) -> bool:
    """True when the part starts with its root element, or with an XML declaration and then its root element
    (as Excel, WPS and openpyxl write it): no document type declaration, no comment, no processing instruction."""
    start = 0
    if content.startswith(b"<?"):
        end = content.find(b"?>", 2, 256)
        if end < 0:
            return False
        start = end + 2
        while content[start:start + 1] in (b"\r", b"\n", b" ", b"\t"):
            start += 1
    return _ROOT.match(content, start) is not None


def outside_namespace(xml: bytes, name: str = "") -> bool:
    """True when the part is a worksheet, or the workbook or its relationships (by the part's name: the two parts
    both readers read, and no other part with such a root, an add-in's custom XML, say), whose content is not in its
    namespace: the root's prefix (or none) bound to another namespace or to none, bound again to another below the
    root, or a prefixed root over unprefixed content. A namespace-aware reader (Excel) finds no cell in such a sheet,
    and no sheet or name in such a workbook or relationships, and calls the file damaged; calamine and the fast
    path, matching names alone, would read its figures."""
    root = _root_tag(xml)
    kind = _WORKBOOK_PARTS.get(name.replace("\\", "/"), b"worksheet")
    if root is None or root.group(2) != kind:
        return False
    namespaces, content = _VOCABULARIES[kind]
    prefix = root.group(1) or b""  # b"": the default namespace
    bound = {attribute[6:]: double or single for attribute, double, single in _ATTRIBUTE.findall(root.group(3))
             if attribute == b"xmlns" or attribute.startswith(b"xmlns:")}
    if bound.get(prefix) not in namespaces:
        return True
    at = xml.find(b"xmlns", root.end())  # below the root (Excel declares x14, mc ... there: other prefixes)
    while at >= 0:
        declared = _DECLARATION.match(xml, at - 1)
        if declared and (declared.group(1) or b"") == prefix and \
                (declared.group(2) or declared.group(3) or b"") not in namespaces:
            return True
        at = xml.find(b"xmlns", at + 5)
    return bool(prefix) and bound.get(b"") not in namespaces and content.search(xml, root.end()) is not None


def namespace_note(xml: bytes, name: str) -> str:
    """The refusal's note for a part outside_namespace found: which part, in the clerk's terms."""
    root = _root_tag(xml)
    kind = b"" if root is None else root.group(2)
    if kind == b"worksheet":
        return f"工作表{_part_name(name)}不是Excel工作表的格式（XML命名空间不对）"
    what = "工作簿部件" if kind == b"workbook" else "关系文件"
    return f"{what}{_part_name(name)}不是Excel文件的格式（XML命名空间不对）"


def is_worksheet(xml: bytes) -> bool:
    """True when the part's root element is a worksheet (under any prefix)."""
    root = _root_tag(xml)
    return root is not None and root.group(2) == b"worksheet"


def cells_span(xml: bytes) -> tuple[int, int] | None:
    """Where a part's rows and cells are, as calamine reads them: in a worksheet, the content of its one sheetData
    element; in any other part, none where it has no sheetData (calcChain.xml lists cells as <c> elements, and a
    picture may hold "<c " by chance: calamine reads no cell of either), all of it where it has (a sheet whose root
    is renamed, which the fast path leaves to calamine; an external link's cache). None for a worksheet without
    one sheetData: none (its start tag misspelt, say), two, or a start without its end. Excel calls such a file
    damaged, and the readers would not agree on it (calamine reads no cell of it, the fast path every one)."""
    if not is_worksheet(xml):  # calamine reads cells in a sheetData only, whatever the part's root
        return (0, len(xml)) if b"sheetData" in xml else (0, 0)
    return sheet_data_span(xml)


def sheet_data_span(xml: bytes) -> tuple[int, int] | None:
    """A worksheet's cells_span: the content of its one sheetData, or None."""
    start, end = xml.find(b"<sheetData>"), xml.rfind(b"</sheetData>")
    if 0 <= start < end and _nowhere(xml, b"sheetData", (0, start), (start + 11, end), (end + 12, len(xml))):
        return start + 11, end  # as Excel, WPS and openpyxl write it: the name twice, no regex needed
    tags = _sheet_data_tags(xml)
    if len(tags) == 1 and tags[0].group(1) == b"" and xml[tags[0].end() - 2] == ord("/"):  # <sheetData/>
        return tags[0].end(), tags[0].end()
    if len(tags) == 2 and tags[0].group(1) == b"" and xml[tags[0].end() - 2] != ord("/") and tags[1].group(1):
        return tags[0].end(), tags[1].start()
    return None


def _nowhere(xml: bytes, name: bytes, *spans: tuple[int, int]) -> bool:
    return all(xml.find(name, start, end) < 0 for start, end in spans)


def _sheet_data_tags(xml: bytes) -> list[re.Match[bytes]]:
    """The part's sheetData start, end and empty-element tags, in order. Two finds from either end where the name
    occurs once or twice, as in a sound sheet (a regex over a sheet's thousands of tags costs ten times as much);
    the regex where it occurs more often (a sheet with it in a cell's text, say)."""
    first, last = xml.find(b"sheetData"), xml.rfind(b"sheetData")
    if first < 0:
        return []
    if first == last or xml.find(b"sheetData", first + 9, last) < 0:
        spots = (first,) if first == last else (first, last)
        tags = (_SHEET_DATA_TAG.match(xml, xml.rfind(b"<", 0, at)) for at in spots)
        return [tag for tag, at in zip(tags, spots, strict=True) if tag is not None and tag.end() > at]
    return list(_SHEET_DATA_TAG.finditer(xml))


def _root_tag(xml: bytes) -> re.Match[bytes] | None:
    """The root element's start tag: past the XML declaration, processing instructions and comments (one regex pass,
    however many of them a hostile part holds)."""
    prolog = _PROLOG.match(xml)  # it matches the empty string at least
    at = prolog.end() if prolog else 0
    return _START_TAG.match(xml, at) if xml.startswith(b"<", at) else None


def names_hold_macros(names: str) -> str | None:
    """The first macro part among archive member names given as one text (one name a line), else None."""
    lowered = names.lower()
    for marker in _MACRO_MARKERS:
        at = lowered.find(marker)
        if at >= 0:
            line_start = lowered.rfind("\n", 0, at) + 1
            line_end = lowered.find("\n", at)
            return names[line_start:line_end if line_end >= 0 else len(names)]
    return None


def sniff_compound(data: bytes, name: str) -> tuple[str, str]:
    """The issue code and note for a compound (OLE) file: a password-protected workbook, or an old format."""
    if _ENCRYPTED_PACKAGE in data:
        return "encrypted-workbook", "设置了打开密码"
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if suffix in ("et", "ett"):
        return "other-format", "WPS表格的专有格式（.et）"
    if suffix in ("xls", "xlt"):
        return "other-format", "旧版Excel格式（.xls，Excel 97-2003工作簿）"
    return "other-format", "旧版Office或WPS格式（如.xls、.et）"


def sniff_package(names: set[str]) -> tuple[str, str] | None:
    """The issue code and note for a zip package that is a spreadsheet but not an .xlsx; None for anything else."""
    if "xl/workbook.bin" in names:
        return "other-format", "Excel二进制工作簿（.xlsb）"
    if "content.xml" in names and "mimetype" in names:
        return "other-format", "OpenDocument格式（如.ods，LibreOffice或WPS另存而成）"
    return None


# calamine holds a sheet as a dense grid of (last row x last column) cells, 32 bytes each: one value at XFD1048576
# asks for 512 GiB and aborts the process (no exception to catch). The form's sheets span ~31 x 15 cells.
MAX_SHEET_CELLS = 2_000_000
# a cell given twice is looked for where a form's cells can be (its sheets span ~31 x 15 cells), so that the set of
# places seen stays small however many cells a hostile sheet holds
TWICE_ROWS, TWICE_COLUMNS = 1000, 64
_PREFIX = rb"(?:[A-Za-z_][\w.-]*:)?"  # calamine matches local names: <x:c> is a cell too
# a row's start tag, or a cell with its content: up to the next cell's start or end (possessive), so that cells
# never closed cost one pass over the sheet, not one each
_SHEET_TAG = re.compile(rb"<" + _PREFIX + rb"row(?=[\s/>])([^>]*)>|<" + _PREFIX + rb"c(?=[\s/>])([^>]*?)(?:/>|>("
                        rb"(?:[^<]++|<(?!/?" + _PREFIX + rb"c[\s/>]))*+)</" + _PREFIX + rb"c>)")
_REF = re.compile(rb"""\br=["']([A-Za-z]{0,3})([0-9]{0,10})["']""")
_HOLDS_VALUE = re.compile(rb"<" + _PREFIX + rb"v>[^<]|<" + _PREFIX + rb"is[\s>]")
# a sheetData tag: its "/" if an end tag; possessive, and no "<" inside (XML allows none in a tag), so that the
# regex over a hostile part full of the name stays one pass
_SHEET_DATA_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*+:)?+sheetData(?=[\s/>])[^<>]*+>")


def guard_sheets(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Read every member through zipfile, which checks its CRC-32 (calamine does not: a changed byte that still
    inflates would be read as a changed figure), and refuse a worksheet whose values reach so far that calamine's
    grid of it would not fit in memory. Run after guard_archive, which bounds what the members inflate to."""
    names = [info.filename.replace("\\", "/") for info in infos]  # one name to calamine, whichever slash
    if len(set(names)) != len(names):  # which copy is the file's? zipfile reads the last, calamine may read another
        twice = sorted({name for name in names if names.count(name) > 1})
        raise Refused("corrupt-workbook", f"压缩包中有同名的部件{'、'.join(twice[:3])}")
    for info in infos:
        content = zf.read(info)  # BadZipFile on a CRC mismatch
        # every member, not only xl/worksheets/: calamine reads a sheet wherever the relationships put it, and
        # makes "xl\worksheets\sheet4.xml" of a name written with backslashes
        _sheet_within(content, info.filename)


def _sheet_within(xml: bytes, name: str) -> None:
    """Place the cells as calamine does (a row or cell without r follows the one before): refuse a sheet that
    reaches too far, or that gives one cell twice (two values for 本年发出收费通知件数: which is the unit's? Excel
    calls such a file damaged and repairs it; calamine takes the first, the fast path would take the last).
    Refuse a worksheet, workbook or relationships outside its namespace too, and a sheet without its one
    sheetData. Only the cells calamine reads count: those in the sheetData."""
    if outside_namespace(xml, name):
        raise Refused("corrupt-workbook", namespace_note(xml, name))
    span = cells_span(xml)
    if span is None:
        raise Refused("corrupt-workbook",
                      f"工作表{_part_name(name)}的结构已损坏：单元格数据区sheetData缺失、重复或不完整")
    row = column = last_row = last_column = cells = 0
    placed: set[tuple[int, int]] = set()
    for match in _SHEET_TAG.finditer(xml, *span):
        attributes = match.group(1) if match.group(1) is not None else match.group(2)
        ref = _REF.search(attributes)
        if match.group(1) is not None:  # a row
            row, column = (int(ref.group(2)) if ref and ref.group(2) else row + 1), 0
            continue
        cells += 1
        if ref and ref.group(1):
            column = 0
            for letter in ref.group(1).upper():
                column = column * 26 + letter - 64
        else:
            column += 1
        cell_row = int(ref.group(2)) if ref and ref.group(2) else row
        if cell_row <= TWICE_ROWS and column <= TWICE_COLUMNS:
            if (cell_row, column) in placed:
                raise Refused("corrupt-workbook",
                              f"工作表{_part_name(name)}中的单元格{cell_address(cell_row, column)}出现了两次")
            placed.add((cell_row, column))
        if match.group(3) is not None and _HOLDS_VALUE.search(match.group(3)):
            last_row, last_column = max(last_row, cell_row), max(last_column, column)
        if cells > MAX_SHEET_CELLS or last_row * last_column > MAX_SHEET_CELLS:
            raise Refused("unsafe-archive",
                          f"工作表{_part_name(name)}的内容远超表格范围（第{last_row}行、第{last_column}列）")


def _part_name(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def cell_address(row: int, column: int) -> str:
    """The A1 address of a 1-based row and column."""
    letters = ""
    while column > 0:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row}"
