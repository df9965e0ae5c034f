"""Cell values straight from a workbook's XML, for the reader's usual case: ~0.25 ms a return where calamine takes
~0.6 ms (most of it parsing the labels, styles and strings of every sheet, which the reader never looks at).

A return nearly always is the workbook we issued, filled in Excel, WPS or by a program: plain numbers in the input
cells, formulas in the totals. This module reads exactly that: the zip's members found through its central
directory, each needed cell picked from its sheet's XML by address. At the first thing it does not read itself it
raises Unusual, and tasks/workbook_read.py reads the file with calamine instead: a zip64 archive, a member that does
not inflate to its size and CRC, an XML part with a comment or a DTD before its root element, a number in a date or
time format, an error value, inline text in a cell of ours, a cell element it cannot place. A test compares both
readers over returns of every kind (tests/tasks/test_xlsx_values.py). What must not be read at all (a zip bomb, a
password, macros) it refuses as it walks the central directory (tasks/file_guard.py: Refused).

Nothing here expands an XML entity: values are picked by regex, and only the five predefined entities are resolved.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from xml.sax.saxutils import unescape

from tasks.file_guard import (
    RATIO_GRACE,
    Refused,
    is_worksheet,
    names_hold_macros,
    outside_namespace,
    prolog_is_plain,
    refuse_member,
    refuse_totals,
    sheet_data_span,
)

MAX_MEMBER_BYTES = 64 * 1024 * 1024  # a sheet inflating to more is left to calamine (and to its limits)

_EOCD = b"PK\x05\x06"
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # a central directory entry, up to its file name
_CENTRAL_SIGNATURE = 0x02014B50
_LOCAL_SIGNATURE = 0x04034B50

# a cell of a worksheet whose content is at most a formula and a value: address, attributes, value text
_CELL = re.compile(rb'<c r="([A-Z]{1,3}[0-9]{1,7})"([^>]*?)(?:/>|>(?:<f>[^<]*</f>|<f [^>]*/>|<f [^>]*>[^<]*</f>)?'
                   rb'(?:<v>([^<]*)</v>|<v ?/>)?</c>)')
# any cell with its content (the identity sheet's cells hold inline text)
_ANY_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"([^>]*?)(?:/>|>(.*?)</c>)', re.DOTALL)
# what the cell regexes could misplace: a cell element not starting with its address in capitals, a comment or a
# CDATA section (either could hold text that looks like a cell or a string)
_MISPLACEABLE = re.compile(rb'<(?:c(?:>| (?!r="[A-Z]))|!--|!\[CDATA\[)')
_TYPE = re.compile(rb' t="([a-zA-Z]+)"')
_NUMBER = re.compile(rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_STYLE = re.compile(rb' s="([0-9]+)"')
_VALUE = re.compile(rb"<v>([^<]*)</v>")
_TEXT = re.compile(rb"<t(?: [^>]*)?>([^<]*)</t>|<t(?: [^>]*)?/>")
_SHARED = re.compile(rb"<si>(.*?)</si>|<si/>", re.DOTALL)
_SHEET = re.compile(rb"<sheet\b([^>]*)/?>")
_ATTRIBUTE = re.compile(rb'([\w:]+)="([^"]*)"')
_RELATIONSHIP = re.compile(rb"<Relationship\b([^>]*)/?>")
_XF_LIST = re.compile(rb"<cellXfs\b[^>]*>(.*?)</cellXfs>", re.DOTALL)
_XF = re.compile(rb"<xf\b([^>]*)>")
_NUMBER_FORMATS = re.compile(rb"<numFmts\b[^>]*>(.*?)</numFmts>", re.DOTALL)  # not the dxfs' own numFmt
_NUMBER_FORMAT = re.compile(rb"<numFmt\b([^>]*)/?>")
# built-in number formats that show a number as a number: General, 0, 0.00, #,##0, #,##0.00, %, fractions, 0.00E+00,
# the accounting formats without a currency, ##0.0E+0 and @ (text); every other built-in id may show a date or time
_PLAIN_BUILTIN = frozenset({0, 1, 2, 3, 4, 9, 10, 11, 12, 13, 37, 38, 39, 40, 48, 49})
# in a custom format, after quoted text, escaped characters and [..] sections: letters of dates, times and eras
_DATE_LETTERS = re.compile(r"[dmyhsegbaDMYHSEGBA]")
_ELAPSED = re.compile(r"\[(?:h+|m+|s+)\]", re.IGNORECASE)  # [h]:mm, [mm]:ss ...: a duration
_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|_.|\*.')


class Unusual(Exception):
    """Something in the file this reader does not read itself: calamine reads the file instead."""


@dataclass(frozen=True)
class Entry:
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


class Archive:
    """The members of a zip archive in memory, found through its central directory."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.entries = _central_directory(data)

    def fingerprint(self, name: str) -> tuple[int, int] | None:
        """The member's CRC-32 and size as the central directory gives them (None: no such member)."""
        entry = self.entries.get(name)
        return None if entry is None else (entry.crc, entry.size)

    def seen(self, name: str) -> Seen:
        """The member as a cache of what was made from it remembers it: its content and its stored form."""
        content = self.read(name)
        entry = self.entries[name]
        return Seen(content, [(entry.method, self._stored(name, entry))])

    def holds(self, name: str, seen: Seen) -> bool:
        """True when the member holds that content: its stored form (method and bytes) is one seen before (no
        inflating: the same form inflates alike), or else it inflates, CRC intact, to the same content (then its
        form is remembered: the same part deflated by another writer). A damaged member whose directory entry still
        gives the known CRC and size is read, and found damaged (Unusual), like any other."""
        entry = self.entries.get(name)
        if entry is None:
            return False
        stored = (entry.method, self._stored(name, entry))  # the same bytes read as stored or as deflated differ
        if stored in seen.stored:
            return True
        if self.read(name) != seen.content:
            return False
        if len(seen.stored) < SEEN_FORMS:
            seen.stored.append(stored)
        return True

    def read(self, name: str) -> bytes:
        entry = self.entries.get(name)
        stored = self._stored(name, entry)
        assert entry is not None
        try:
            content = stored if entry.method == 0 else zlib.decompressobj(-15).decompress(stored, entry.size + 1)
        except zlib.error as exc:
            raise Unusual(f"{name} does not inflate") from exc
        if len(content) != entry.size or zlib.crc32(content) != entry.crc:
            raise Unusual(f"{name} is damaged")
        if not prolog_is_plain(content):  # a DTD may declare entities: the guard before calamine refuses it
            raise Unusual(f"{name} has more than a declaration before its root element")
        return content

    def _stored(self, name: str, entry: Entry | None) -> bytes:
        if entry is None:
            raise Unusual(f"no member {name}")
        data = self.data
        if len(data) < entry.offset + 30 or struct.unpack_from("<I", data, entry.offset)[0] != _LOCAL_SIGNATURE:
            raise Unusual(f"no local header for {name}")
        name_length, extra_length = struct.unpack_from("<HH", data, entry.offset + 26)
        start = entry.offset + 30 + name_length + extra_length
        return data[start:start + entry.compressed]


SEEN_FORMS = 4  # the stored forms of a part remembered: as issued, as Excel, WPS or openpyxl deflate it


@dataclass
class Seen:
    """A member as it was when something was made from it and kept (a layout, a workbook's plain styles): its
    content, and the stored forms it has been found in (compression method and bytes)."""

    content: bytes
    stored: list[tuple[int, bytes]]  # (compression method, stored bytes)


def _central_directory(data: bytes) -> dict[str, Entry]:
    end = data.rfind(_EOCD, max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        raise Unusual("no end of central directory")
    disk, cd_disk, here, count, size, offset = struct.unpack_from("<HHHHII", data, end + 4)
    if disk or cd_disk or here != count or count == 0xFFFF or offset == 0xFFFFFFFF:
        raise Unusual("multi-disk or zip64 archive")
    if offset + size != end:  # zipfile takes a gap for bytes put before the archive, and reads it elsewhere
        raise Unusual("the central directory does not end where its end record starts")
    refuse_totals(count, 0)
    entries: dict[str, Entry] = {}
    seen: set[str] = set()
    total = 0
    position = offset
    for _ in range(count):
        if position + _CENTRAL.size > end:
            raise Unusual("central directory cut short")
        (signature, _made_by, _needed, flags, method, _time, _date, crc, compressed, size, name_length,
         extra_length, comment_length, _disk, _internal, _external, local) = _CENTRAL.unpack_from(data, position)
        if signature != _CENTRAL_SIGNATURE:
            raise Unusual("bad central directory entry")
        if 0xFFFFFFFF in (compressed, size, local):
            raise Unusual("a zip64 member")  # its real sizes are elsewhere: zipfile reads them for the guard
        name = data[position + 46:position + 46 + name_length].decode("utf-8" if flags & 0x800 else "cp437")
        if flags & 0x1 or size > RATIO_GRACE:  # a password, or large enough to be a bomb: look closer
            refuse_member(name, flags, compressed, size)
        total += size
        if method not in (0, 8) or size > MAX_MEMBER_BYTES:
            raise Unusual("an unusually compressed or large member")
        if name.replace("\\", "/") in seen:  # calamine reads "\\" as "/": one name, whichever slash
            raise Unusual(f"a member named twice: {name}")  # the other path refuses it: which copy is the file's?
        seen.add(name.replace("\\", "/"))
        entries[name] = Entry(method, crc, compressed, size, local)
        position += 46 + name_length + extra_length + comment_length
    refuse_totals(count, total)
    macros = names_hold_macros("\n".join(entries))
    if macros is not None:
        raise Refused("macro-workbook", macros)
    return entries


def sheet_parts(workbook_xml: bytes, relationships_xml: bytes) -> dict[str, str]:
    """Each sheet's name and the archive member holding it, from xl/workbook.xml and its relationships."""
    targets = {}
    for attributes in _RELATIONSHIP.findall(relationships_xml):
        found = dict(_ATTRIBUTE.findall(attributes))
        if b"Id" in found and b"Target" in found:
            target = _text(found[b"Target"])
            targets[found[b"Id"]] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    parts = {}
    for attributes in _SHEET.findall(workbook_xml):
        found = dict(_ATTRIBUTE.findall(attributes))
        rid = found.get(b"r:id")
        if b"name" not in found or rid not in targets:
            raise Unusual("a sheet without a name or part")
        parts[_text(found[b"name"])] = targets[rid]
    return parts


def plain_styles(styles_xml: bytes) -> frozenset[int]:
    """The cell styles (indexes into cellXfs) whose number format shows a number as a number, not as a date or
    a time: only cells of these styles are read here (calamine turns the others into dates)."""
    if b"='" in styles_xml or _MISPLACEABLE.search(styles_xml):
        raise Unusual("single-quoted attributes or comments in the styles")  # _ATTRIBUTE reads "..." only
    custom: dict[int, str] = {}
    formats = _NUMBER_FORMATS.search(styles_xml)
    for attributes in _NUMBER_FORMAT.findall(formats.group(1)) if formats else []:
        found = dict(_ATTRIBUTE.findall(attributes))
        if b"numFmtId" in found and b"formatCode" in found:
            number_format = int(found[b"numFmtId"])
            if number_format in custom:
                raise Unusual("a number format defined twice")
            custom[number_format] = _text(found[b"formatCode"])
    xf_list = _XF_LIST.search(styles_xml)
    plain = set()
    for index, attributes in enumerate(_XF.findall(xf_list.group(1)) if xf_list else []):
        number_format = int(dict(_ATTRIBUTE.findall(attributes)).get(b"numFmtId", b"0"))
        code = custom.get(number_format)
        if number_format in _PLAIN_BUILTIN if code is None else _plain_format(code):
            plain.add(index)
    return frozenset(plain)


def _plain_format(code: str) -> bool:
    """A custom number format that shows a number as a number: no date, time or duration in it."""
    return not _ELAPSED.search(code) and not _DATE_LETTERS.search(_LITERALS.sub("", code))


Value = float | str | bool | None


class Sheet:
    """The cells of one worksheet, by address (ASCII bytes, e.g. b"D6"); values are converted as asked for."""

    def __init__(self, xml: bytes, plain: frozenset[int], shared: SharedStrings) -> None:
        self.xml = xml
        # address -> (address, attributes, value text): b"" for a cell without a value
        found = _CELL.findall(xml, *_cells_span(xml))
        self.cells: dict[bytes, tuple[bytes, bytes, bytes]] = {cell[0]: cell for cell in found}
        if len(self.cells) != len(found):  # a cell given twice: the guard before calamine refuses the file
            raise Unusual("a cell written twice")
        self.plain = plain
        self.shared = shared

    def read(self, wanted: tuple[tuple[str, bytes], ...], into: dict[str, Value]) -> None:
        """into[key] = the value at address, for each (key, address); plain numbers and empty cells (nearly all
        of them) straight away, everything else through value()."""
        cells, plain, cache = self.cells, self.plain, _attribute_cache
        for key, address in wanted:
            found = cells.get(address)
            if found is not None:
                _, attributes, text = found
                kind, style = cache.get(attributes) or _attributes(attributes)
                if kind is None or kind == b"n":
                    if not text:
                        into[key] = None
                        continue
                    if style in plain and (text.isdigit() or _NUMBER.fullmatch(text)):
                        into[key] = float(text)
                        continue
            into[key] = self.value(address)

    def value(self, address: bytes) -> Value:
        found = self.cells.get(address)
        if found is None:
            if b'r="' + address + b'"' in self.xml or b"r='" + address + b"'" in self.xml:
                raise Unusual(f"cell {address!r} holds more than a value")  # inline text, say
            return None  # no such cell: empty
        _, attributes, text = found
        return _converted(attributes, text, self.plain, self.shared)


def _converted(attributes: bytes, text: bytes, plain: frozenset[int], shared: SharedStrings) -> Value:
    """A cell's value from its attributes and its <v> text, as calamine gives it; Unusual where calamine would
    give a date, a time or an error."""
    kind, style = _attributes(attributes)
    if kind is None or kind == b"n":
        if not text:
            return None  # empty, or a formula saved without its value
        if style not in plain:
            raise Unusual("a number in a date or time format")
        return _float(text)
    if kind == b"s":
        return shared.get(text)
    if kind == b"str":
        return _text(text)
    if kind == b"b" and text in (b"0", b"1"):
        return text == b"1"
    raise Unusual("an error value, a date or a type of cell not read here")


_attribute_cache: dict[bytes, tuple[bytes | None, int]] = {}


def _attributes(attributes: bytes) -> tuple[bytes | None, int]:
    """A cell's type (t) and style (s, 0 when not given): the same few attribute texts recur in every sheet."""
    found = _attribute_cache.get(attributes)
    if found is None:
        kind, style = _TYPE.search(attributes), _STYLE.search(attributes)
        found = (kind.group(1) if kind else None, int(style.group(1)) if style else 0)
        if len(_attribute_cache) >= 4096:
            _attribute_cache.clear()
        _attribute_cache[attributes] = found
    return found


class SharedStrings:
    """xl/sharedStrings.xml, parsed only when a cell of ours holds one of its strings."""

    def __init__(self, archive: Archive, part: str | None) -> None:
        self.archive = archive
        self.part = part
        self._strings: list[str] | None = None

    def get(self, index_text: bytes) -> str:
        if self._strings is None:
            self._strings = self._load()
        if not index_text.isdigit() or int(index_text) >= len(self._strings):
            raise Unusual("a shared string that is not there")
        return self._strings[int(index_text)]

    def _load(self) -> list[str]:
        if self.part is None:
            raise Unusual("no shared strings")
        strings = []
        xml = self.archive.read(self.part)
        if b"<!--" in xml or b"<![CDATA[" in xml:
            raise Unusual("comments or CDATA in the shared strings")
        for match in _SHARED.finditer(xml):
            item = match.group(1) or b""
            if b"<rPh" in item:
                raise Unusual("phonetic runs")  # their <t> text is not part of the string
            strings.append(_text(b"".join(t for t in _TEXT.findall(item))))
        return strings


def _cells_span(xml: bytes) -> tuple[int, int]:
    """Where a sheet's cells are (its sheetData's content, as calamine reads them), once the sheet is one this
    reader reads itself: Unusual otherwise, and where the guard before calamine refuses the file."""
    if _MISPLACEABLE.search(xml):
        raise Unusual("a cell element without its address first, a comment or CDATA")  # Excel writes none
    if _instruction_after_declaration(xml):  # calamine reads past it
        raise Unusual("a processing instruction, which may split a text")
    if outside_namespace(xml):  # the guard refuses the file
        raise Unusual("a worksheet outside SpreadsheetML's namespace")
    if not is_worksheet(xml):  # Excel calls the file damaged; calamine reads it all the same
        raise Unusual("a sheet whose root element is not a worksheet")
    span = sheet_data_span(xml)
    if span is None:  # the guard refuses the file
        raise Unusual("a worksheet without its one sheetData")
    return span


def _instruction_after_declaration(xml: bytes) -> bool:
    """A processing instruction past the XML declaration (the prolog is plain: Archive.read). Found by its "?", a
    byte no sheet holds elsewhere as Excel writes it: a search for "<?" among a sheet's thousands of "<" costs ten
    times as much."""
    at = xml.find(b"?>") + 2 if xml.startswith(b"<?") else 0
    while (at := xml.find(b"?", at)) > 0:
        if xml[at - 1] == 0x3C:  # "<"
            return True
        at += 1
    return False


def identity_rows(xml: bytes, shared: SharedStrings, plain: frozenset[int]) -> dict[str, str]:
    """The identity sheet's key/value rows (column A and B), as workbook_read._identity makes them."""
    rows: dict[bytes, dict[bytes, Value]] = {}
    for column, row, attributes, content in _ANY_CELL.findall(xml, *_cells_span(xml)):
        if column not in (b"A", b"B"):
            continue
        if column in rows.get(row, {}):  # the guard refuses the file (calamine would take the first)
            raise Unusual("an identity cell written twice")
        value: Value
        if _attributes(attributes)[0] == b"inlineStr":  # as the identity is issued
            if b"<rPh" in content:
                raise Unusual("phonetic runs")
            value = _text(b"".join(_TEXT.findall(content)))
        else:  # as a program that saved the workbook again may have left it
            value_text = _VALUE.search(content)
            try:
                value = _converted(attributes, value_text.group(1) if value_text else b"", plain, shared)
            except Unusual as exc:
                raise Unusual(f"an identity cell: {exc}") from exc
        rows.setdefault(row, {})[column] = value
    identity = {}
    for cells in rows.values():
        key, value = cells.get(b"A"), cells.get(b"B")
        if isinstance(key, str) and key:
            if b"B" not in cells or value is None:
                raise Unusual("an identity key without a value")  # calamine's grid gives '' there
            identity[key] = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if not identity:  # no cell found at all (elements with a namespace prefix, say): calamine reads it
        raise Unusual("no identity rows")
    return identity


def _float(text: bytes) -> float:
    """A cell's number as calamine reads it: Python's float() also takes spaces and underscores, calamine not."""
    if not _NUMBER.fullmatch(text):
        raise Unusual(f"no number as calamine reads one: {text[:20]!r}")
    return float(text)


def _text(raw: bytes) -> str:
    """XML text with its entities resolved; OOXML's own _xHHHH_ escapes and character references are left to
    calamine."""
    if b"&#" in raw or b"_x" in raw:
        raise Unusual("escaped characters")
    text = raw.decode("utf-8")
    return unescape(text, {"&quot;": '"', "&apos;": "'"}) if "&" in text else text
