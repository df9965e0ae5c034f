"""Inputs of the reader's fuzzer: real returns (issued, signed and filled as units fill them) and ways to damage them.

Seeds: one campaign workbook for unit T001, filled with figures() (and TEXTS, the prose) in five ways a return
arrives (patched as the demo fills it, totals with their cached values as Excel saves them, text as shared strings as
Excel and WPS keep it, saved by openpyxl, members stored uncompressed). Their bytes are made deterministic (fixed
times) so that a seeded run makes the same inputs on every machine.

Mutations take (rng, data) and return new bytes; each falls back to damaging bytes when the input is no longer an
archive it can open. They damage bytes (flips, truncations, splices), the zip structure (member data, header
fields, the end record, duplicated, dropped, renamed or repacked members) and the XML inside the sheets, the
workbook, the shared strings, the styles and the relationships (values, types, styles, addresses, defined names,
entities, comments, encodings).
"""

from __future__ import annotations

import io
import random
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from cli.simulate import fill_by_names
from schemas.form_spec import FormSpec
from tasks.check import check_values
from tasks.issue_workbooks import UnitToIssue, write_workbooks
from tasks.workbook_template import build_template
from tasks.xlsx_patch import CellValue, XlsxPatcher

YEAR = 2021
CAMPAIGN_ID = 7
SECRET = "fuzz-campaign-secret"
UNIT = "T001"
Mutation = Callable[[random.Random, bytes], bytes]


def figures(form: FormSpec) -> dict[str, Decimal]:
    """What T001 filled in: every hard rule holds, several columns and tables non-zero, money with decimals."""
    values = {c.key: Decimal(0) for c in form.input_cells}
    filled: dict[str, int | str] = {
        "apply.new.natural_person": 5, "apply.carried.natural_person": 1, "apply.result.open.natural_person": 3,
        "apply.result.partial.natural_person": 1, "apply.result.unable.not_held.natural_person": 1,
        "apply.carry_next.natural_person": 1, "apply.new.commercial": 2, "apply.result.deny.third_party.commercial": 1,
        "apply.result.other.other.commercial": 1, "apply.new.legal_service": 12,
        "apply.result.reject.duplicate.legal_service": 12, "active.normative.issued": 12,
        "active.normative.valid": 19, "active.license.decisions": 17726, "active.penalty.decisions": 2068,
        "active.coercion.decisions": 3, "active.fees.amount_wan": "309.0263", "review.upheld": 1, "review.pending": 2,
        "litigation.direct.corrected": 1, "fee.notices": 2, "fee.billed_yuan": "150.5", "fee.collected_yuan": "100",
    }
    values.update({k: Decimal(v) for k, v in filled.items()})
    return values


TEXTS = {"narrative.overview": "（一）主动公开情况\n本年度共收到政府信息公开申请5件，A&B <依法> 办理。",
         "narrative.problems": "存在的问题：无。", "narrative.other": "本年度未收取信息处理费。"}


@dataclass(frozen=True)
class Seeds:
    """The filled returns the fuzzer starts from, by kind, and what was filled into every one of them."""

    returns: dict[str, bytes]
    figures: dict[str, Decimal]


def build_seeds(form: FormSpec, folder: Path) -> Seeds:
    """Issue T001 its workbook (as a campaign does) and fill it in each of the ways returns come back."""
    template = build_template(form, YEAR, date(YEAR + 1, 1, 20))
    (issued,) = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=CAMPAIGN_ID,
                                year=YEAR, secret=SECRET, units=[UnitToIssue(1, UNIT, "城关镇", {})], folder=folder)
    filled = figures(form)
    patches: dict[str, dict[str, CellValue]] = {}
    for key, number in filled.items():
        cell = form.cell_by_key[key]
        patches.setdefault(form.sheet_by_id[cell.sheet].name, {})[cell.address] = number
    with_texts = {name: dict(cells) for name, cells in patches.items()}
    for text in form.texts:
        with_texts.setdefault(form.sheet_by_id[text.sheet].name, {})[text.address] = TEXTS[text.key]
    patcher = XlsxPatcher(Path(issued.path).read_bytes())
    figures_only, with_prose = patcher.render(patches), patcher.render(with_texts)
    by_openpyxl = fill_by_names(Path(issued.path), folder / "openpyxl.xlsx", {**filled, **TEXTS}).read_bytes()
    totals = check_values({k: float(v) for k, v in filled.items()}, form).values
    returns = {  # the fast path reads the first three itself; inline text (the prose) leaves the others to calamine
        "patched": figures_only,
        "cached-totals": _cached_totals(figures_only, form, totals),
        "shared-strings": _shared_strings(with_prose),
        "openpyxl": by_openpyxl,
        "stored": _repack(_members(with_prose), compression=zipfile.ZIP_STORED),
    }
    return Seeds({name: _repack(_members(data)) if name != "stored" else data for name, data in returns.items()},
                 filled)


# -- archives ----------------------------------------------------------------------------------------------------

_FIXED_TIME = (2022, 1, 10, 9, 0, 0)
_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def _repack(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED, level: int = 1,
            comment: bytes = b"") -> bytes:
    """An archive of these members, byte for byte the same each time (fixed times, no creation stamps)."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as zf:
        warnings.simplefilter("ignore")  # a duplicated member name is one of the damages, on purpose
        for name, content in members:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = compression
            info.external_attr = 0o600 << 16
            if name == "docProps/core.xml":
                content = _STAMP.sub(b"2022-01-10T09:00:00Z", content)
            zf.writestr(info, content, compresslevel=level if compression == zipfile.ZIP_DEFLATED else None)
        zf.comment = comment
    return out.getvalue()


_INLINE = re.compile(rb'<c r="([A-Z]+[0-9]+)"([^>]*?) t="inlineStr"><is><t>([^<]*)</t></is></c>')
_CHARREF = re.compile(rb"&#([0-9]+);")


def _shared_strings(data: bytes) -> bytes:
    """Every inline text made a shared string, as Excel and WPS save text (character references resolved)."""
    strings: list[bytes] = []
    index: dict[bytes, int] = {}

    def shared(match: re.Match[bytes]) -> bytes:
        text = _CHARREF.sub(lambda m: chr(int(m.group(1))).encode("utf-8"), match.group(3))
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return b'<c r="%s"%s t="s"><v>%d</v></c>' % (match.group(1), match.group(2), index[text])

    members = [(n, _INLINE.sub(shared, c) if n.startswith("xl/worksheets/") else c) for n, c in _members(data)]
    sst = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://schemas.openxmlformats.org/'
           b'spreadsheetml/2006/main" count="%d" uniqueCount="%d">' % (len(strings), len(strings)) +
           b"".join(b"<si><t>%s</t></si>" % s for s in strings) + b"</sst>")
    kind = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
    content_type = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
    edited = []
    for name, content in members:
        if name == "xl/_rels/workbook.xml.rels":
            content = content.replace(b"</Relationships>", b'<Relationship Id="rIdShared" Type="%s" '
                                      b'Target="sharedStrings.xml"/></Relationships>' % kind)
        elif name == "[Content_Types].xml":
            content = content.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="%s"/>'
                                      b"</Types>" % content_type)
        edited.append((name, content))
    return _repack([*edited, ("xl/sharedStrings.xml", sst)])


_TOTAL = re.compile(rb'<c r="([A-Z]+[0-9]+)"( s="[0-9]+")><f>([^<]*)</f><v></v></c>')


def _cached_totals(data: bytes, form: FormSpec, totals: dict[str, Decimal]) -> bytes:
    """Each total's formula with its value, and each in-sheet check with its text, as Excel saves them."""
    by_place = {(form.sheet_by_id[c.sheet].name, c.address.encode()): totals[c.key] for c in form.cells}
    parts = XlsxPatcher(data).sheet_paths
    sheet_of = {path: name for name, path in parts.items()}

    def cached(sheet: str) -> Callable[[re.Match[bytes]], bytes]:
        def value(match: re.Match[bytes]) -> bytes:
            total = by_place.get((sheet, match.group(1)))
            if total is None:  # an in-sheet check: its formula shows a text
                return b'<c r="%s"%s t="str"><f>%s</f><v>%s</v></c>' % (
                    match.group(1), match.group(2), match.group(3), escape("✓ 相符").encode())
            return b'<c r="%s"%s><f>%s</f><v>%s</v></c>' % (match.group(1), match.group(2), match.group(3),
                                                            format(total, "f").encode())
        return value

    return _repack([(n, _TOTAL.sub(cached(sheet_of[n]), c) if n in sheet_of else c) for n, c in _members(data)])


# -- mutations ---------------------------------------------------------------------------------------------------

_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, ord("<"), ord(">"), ord('"'), ord("&"), ord("0"), ord("9"))
_INTERESTING_INTS = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
_NUMBERS = (b"", b"0", b"-1", b"-0", b"3", b"2.5", b"1e308", b"1e309", b"-1e308", b"5e-324", b"1E+28", b"NaN",
            b"inf", b"Infinity", b"0x10", b" 5", b"5 ", b"1_000", b"1,000", b"+3", b".5", b"5.", b"1e", b"--1",
            "５".encode(), "١٢".encode(), b"99999999999999999999999", b"4.9999999999999999", b"120.0000000001",
            b"#VALUE!", b"TRUE", b"&amp;", b"&#x35;", b"_x0035_", b"<b/>", b"1" * 400)
_TYPES = (b"n", b"s", b"str", b"b", b"e", b"inlineStr", b"d", b"x", b"")
_SNIPPETS = (
    b"<!-- <c r=\"D6\"><v>999</v></c> -->", b"<![CDATA[<c r=\"D6\"><v>999</v></c>]]>", b"<?pi data?>",
    b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>', b"&e;", b"&b;", b"&#0;", b"&#xD800;", b"&unknown;",
    b"<c r=\"D6\"><v>999</v></c>", b"<c><v>1</v></c>", b"<x:c r=\"D6\"><x:v>7</x:v></x:c>", b"<rPh><t>x</t></rPh>",
    b"<row r=\"6\"><c r=\"D6\" t=\"n\"><v>42</v></c></row>", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"]]>", b"</",
    b"<" * 50, b"<a>" * 2000, b'<c r="D6" s="99999999999999999999"><v>1</v></c>',
)
_XML_MEMBERS = ("xl/worksheets/", "xl/workbook.xml", "xl/sharedStrings.xml", "xl/styles.xml", "xl/_rels/",
                "[Content_Types].xml", "_rels/.rels")
_CELL = re.compile(rb"<c [^>]*?(?:/>|>.*?</c>)", re.DOTALL)
_VALUE = re.compile(rb"<v>([^<]*)</v>")
_ATTR = re.compile(rb' (t|s|r)="([^"]*)"')
_ELEMENT = re.compile(rb"<(c|row|sheet|definedName|si|xf|numFmt|Relationship|Override|f|v|is|t)\b[^>]*?"
                      rb"(?:/>|>.*?</\1>)", re.DOTALL)
_DEFINED = re.compile(rb"(<definedName [^>]*>)([^<]*)(</definedName>)")
_SHEET_NAME = re.compile(rb'(<sheet [^>]*name=")([^"]*)(")')
_TARGET = re.compile(rb'(Target=")([^"]*)(")')
_FORMAT = re.compile(rb'(formatCode=")([^"]*)(")|(numFmtId=")([0-9]*)(")')


def _pick(rng: random.Random, pattern: re.Pattern[bytes], xml: bytes) -> re.Match[bytes] | None:
    found = list(pattern.finditer(xml))
    return rng.choice(found) if found else None


def _splice(xml: bytes, match: re.Match[bytes], group: int, new: bytes) -> bytes:
    return xml[:match.start(group)] + new + xml[match.end(group):]


def _xml_value(rng: random.Random, xml: bytes) -> bytes:
    match = _pick(rng, _VALUE, xml)
    return _splice(xml, match, 1, rng.choice(_NUMBERS)) if match else xml


def _xml_attribute(rng: random.Random, xml: bytes) -> bytes:
    match = _pick(rng, _ATTR, xml)
    if match is None:
        return xml
    kind = match.group(1)
    if kind == b"t":
        new = rng.choice(_TYPES)
    elif kind == b"s":
        new = rng.choice((b"0", b"1", b"7", b"11", b"12", b"999", b"-1", b"", b"x"))
    else:
        column, row = rng.choice((b"D", b"d", b"J", b"AAA", b"", b"XFE")), rng.choice((b"6", b"0", b"31", b"9999999"))
        new = column + row
    return _splice(xml, match, 2, new)


def _xml_duplicate_cell(rng: random.Random, xml: bytes) -> bytes:
    """A cell written twice, the second time with another value: which one counts?"""
    match = _pick(rng, _CELL, xml)
    if match is None:
        return xml
    twin = _VALUE.sub(lambda _: b"<v>%d</v>" % rng.randint(0, 99), match.group(0))
    return xml[:match.end()] + twin + xml[match.end():] if rng.random() < 0.5 else \
        xml[:match.start()] + twin + xml[match.start():]


def _xml_drop_element(rng: random.Random, xml: bytes) -> bytes:
    match = _pick(rng, _ELEMENT, xml)
    return xml[:match.start()] + xml[match.end():] if match else xml


def _xml_insert(rng: random.Random, xml: bytes) -> bytes:
    boundaries = [m.start() for m in re.finditer(rb"<", xml)] or [0]
    position = rng.choice(boundaries)
    return xml[:position] + rng.choice(_SNIPPETS) + xml[position:]


def _xml_prolog(rng: random.Random, xml: bytes) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return b"\xef\xbb\xbf" + xml
    if choice == 1:
        return b'<?xml version="1.0" encoding="UTF-16"?>' + xml.split(b"?>", 1)[-1]
    if choice == 2:
        return xml.decode("utf-8", "replace").encode("utf-16")
    if choice == 3:
        return _SNIPPETS[3] + xml if not xml.startswith(b"<?xml") else xml.replace(b"?>", b"?>" + _SNIPPETS[3], 1)
    return xml.replace(b"<", b"<x:", 1) if rng.random() < 0.5 else xml.replace(b'xmlns="', b'xmlns:y="', 1)


def _xml_names(rng: random.Random, xml: bytes) -> bytes:
    """Defined names retargeted or swapped, a sheet renamed, a relationship pointed elsewhere, a format changed."""
    names = list(_DEFINED.finditer(xml))
    if names and rng.random() < 0.6:
        one, other = rng.choice(names), rng.choice(names)
        if rng.random() < 0.5:  # two names swap cells: figures move to other keys
            first, second = sorted((one, other), key=lambda m: m.start())
            if first.start() == second.start():
                return xml
            return (xml[:first.start(2)] + second.group(2) + xml[first.end(2):second.start(2)] + first.group(2) +
                    xml[second.end(2):])
        reference = one.group(2)
        new = rng.choice((re.sub(rb"\$([0-9]+)$", lambda m: b"$%d" % (int(m.group(1)) + 1), reference),
                          reference.replace(b"!", b"x!"), b"#REF!", b"", reference + b":$Z$99", reference.lower()))
        return _splice(xml, one, 2, new)
    for pattern in (_SHEET_NAME, _TARGET):
        match = _pick(rng, pattern, xml)
        if match is not None and rng.random() < 0.5:
            return _splice(xml, match, 2, rng.choice((b"", b"x", match.group(2) + b"x", b"worksheets/sheet3.xml",
                                                      b"/xl/worksheets/sheet2.xml", b"../../etc/passwd")))
    match = _pick(rng, _FORMAT, xml)
    if match is not None:
        group = 2 if match.group(2) is not None else 5
        return _splice(xml, match, group, rng.choice((b"yyyy-mm-dd", b"[h]:mm", b"0.00", b"@", b"14", b"22", b"46",
                                                      b"164", b"0")))
    return xml


def _xml_bytes(rng: random.Random, xml: bytes) -> bytes:
    return _flip(rng, xml) if rng.random() < 0.5 else _chunk(rng, xml)


_XML_EDITS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _xml_value, _xml_value, _xml_attribute, _xml_duplicate_cell, _xml_drop_element, _xml_insert, _xml_prolog,
    _xml_names, _xml_names, _xml_bytes)


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(buffer))
        buffer[position] = rng.choice(_INTERESTING_BYTES) if rng.random() < 0.3 else \
            buffer[position] ^ (1 << rng.randrange(8))
    return bytes(buffer)


def _chunk(rng: random.Random, data: bytes) -> bytes:
    if len(data) < 2:
        return data + bytes([rng.randrange(256)])
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.choice((1, 2, 4, 16, 64, 512, 4096)))
    choice = rng.randrange(3)
    if choice == 0:
        return data[:start] + data[end:]  # deleted
    if choice == 1:
        return data[:end] + data[start:end] + data[end:]  # duplicated
    return data[:start] + rng.randbytes(end - start) + data[start:]  # inserted


def byte_flips(rng: random.Random, data: bytes) -> bytes:
    return _flip(rng, data)


def byte_chunks(rng: random.Random, data: bytes) -> bytes:
    return _chunk(rng, data)


def truncation(rng: random.Random, data: bytes) -> bytes:
    if len(data) < 2:
        return data
    cut = rng.randrange(len(data)) if rng.random() < 0.5 else len(data) - rng.randint(1, min(len(data) - 1, 300))
    return data[:cut]


def splice_seeds(rng: random.Random, data: bytes, others: tuple[bytes, ...] = ()) -> bytes:
    other = rng.choice(others) if others else data
    cut = rng.randrange(min(len(data), len(other)) or 1)
    return data[:cut] + other[cut:]


def member_data(rng: random.Random, data: bytes) -> bytes:
    """A byte of one member's stored data changed: the member no longer inflates to what its CRC says."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if i.compress_size]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError, struct.error):
        return _flip(rng, data)
    if not infos:
        return _flip(rng, data)
    info = rng.choice(infos)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    position = start + rng.randrange(info.compress_size)
    if not 0 <= position < len(data):
        return _flip(rng, data)
    return data[:position] + bytes([data[position] ^ (1 << rng.randrange(8))]) + data[position + 1:]


# (offset in the header, width) of the fields worth damaging: local header, central directory entry, end record
_LOCAL_FIELDS = ((6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2))
_CENTRAL_FIELDS = ((8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (38, 4), (42, 4))
_END_FIELDS = ((4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2))


def header_field(rng: random.Random, data: bytes) -> bytes:
    """One field of a local header, a central directory entry or the end record set to an awkward value."""
    kind = rng.choice(((b"PK\x03\x04", _LOCAL_FIELDS), (b"PK\x01\x02", _CENTRAL_FIELDS), (b"PK\x05\x06", _END_FIELDS)))
    positions = [m.start() for m in re.finditer(re.escape(kind[0]), data)]
    if not positions:
        return _flip(rng, data)
    base = rng.choice(positions)
    offset, width = rng.choice(kind[1])
    if base + offset + width > len(data):
        return _flip(rng, data)
    old = int.from_bytes(data[base + offset:base + offset + width], "little")
    new = rng.choice((*_INTERESTING_INTS, old + 1, old - 1 if old else 1, old * 2, rng.getrandbits(8 * width)))
    new &= (1 << (8 * width)) - 1
    return data[:base + offset] + new.to_bytes(width, "little") + data[base + offset + width:]


def repacked(rng: random.Random, data: bytes) -> bytes:
    """The same members in a new archive: another order, compression or level, a comment, a member dropped, renamed,
    added, or duplicated with other content (two members of one name: which one is read?)."""
    try:
        members = _members(data)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError, zlib.error,
            struct.error, RuntimeError):
        return _chunk(rng, data)
    choice = rng.randrange(8)
    if choice == 0:
        rng.shuffle(members)
    elif choice == 1 and members:
        members.pop(rng.randrange(len(members)))
    elif choice == 2 and members:
        index = rng.randrange(len(members))
        name, content = members[index]
        members[index] = (rng.choice((name.upper(), "/" + name, name + "x", name.replace("/", "\\"), "")), content)
    elif choice == 3 and members:
        name, content = rng.choice(members)
        twin = _VALUE.sub(lambda _: b"<v>%d</v>" % rng.randint(0, 99), content)
        members.insert(rng.randrange(len(members) + 1), (name, twin))
    elif choice == 4:
        members.append((rng.choice(("xl/media/image1.png", "xl/worksheets/sheet99.xml", "junk")),
                        b" " * rng.choice((0, 1, 1024, 3 * 1024 * 1024))))
    elif choice == 5:
        return _repack(members, compression=rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)),
                       level=rng.randint(0, 9))
    elif choice == 6:
        return _repack(members, comment=rng.randbytes(rng.choice((1, 100, 65535))))
    else:
        packed = _repack(members)
        return rng.randbytes(rng.choice((1, 16, 4096))) + packed if rng.random() < 0.5 else \
            packed + rng.randbytes(rng.choice((1, 22, 4096)))
    return _repack(members)


def xml_member(rng: random.Random, data: bytes) -> bytes:
    """One XML member edited (a value, a type, a style, an address, a name, an entity, a comment, an encoding) and
    the archive packed again, so that the damage is inside well-formed zip structure."""
    try:
        members = _members(data)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError, zlib.error,
            struct.error, RuntimeError):
        return _chunk(rng, data)
    xml = [i for i, (name, _) in enumerate(members) if name.startswith(_XML_MEMBERS)]
    if not xml:
        return _chunk(rng, data)
    index = rng.choice(xml)
    name, content = members[index]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        content = rng.choice(_XML_EDITS)(rng, content)
    members[index] = (name, content)
    return _repack(members)


def inflation(rng: random.Random, data: bytes) -> bytes:
    """A member that inflates far beyond its stored size (honestly declared, or lying about its size)."""
    try:
        members = _members(data)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError, zlib.error,
            struct.error, RuntimeError):
        return _chunk(rng, data)
    sheets = [i for i, (name, _) in enumerate(members) if name.startswith("xl/worksheets/")] or [0]
    index = rng.choice(sheets)
    name, content = members[index]
    filler = b" " * rng.choice((1, 4, 16, 40)) * 1024 * 1024
    members[index] = (name, content.replace(b"<sheetData>", b"<sheetData>" + filler, 1) if rng.random() < 0.5
                      else content + filler)
    packed = _repack(members)
    if rng.random() < 0.5:  # the central directory understates the size: a bomb lying about itself
        for match in re.finditer(rb"PK\x01\x02", packed):
            if packed[match.start() + 46:match.start() + 46 + len(name)] == name.encode():
                position = match.start() + 24
                packed = packed[:position] + struct.pack("<I", len(content)) + packed[position + 4:]
    return packed


MUTATIONS: dict[str, Mutation] = {
    "byte-flips": byte_flips,
    "byte-chunks": byte_chunks,
    "truncation": truncation,
    "splice": splice_seeds,
    "member-data": member_data,
    "header-field": header_field,
    "repacked": repacked,
    "xml-member": xml_member,
    "inflation": inflation,
}
# how often each is drawn: damage inside a well-formed archive reaches the most code
WEIGHTS = {"byte-flips": 2, "byte-chunks": 1, "truncation": 1, "splice": 1, "member-data": 1, "header-field": 2,
           "repacked": 2, "xml-member": 8, "inflation": 0.2}


@dataclass(frozen=True)
class Input:
    """One fuzz input: the seed it came from, the mutations applied in order, and its bytes."""

    seed: str
    mutations: tuple[str, ...]
    data: bytes


def make_input(seeds: Seeds, run_seed: int, index: int, first: str | None = None) -> Input:
    """The index-th input of a seeded run: the same bytes on every machine for the same seeds."""
    rng = random.Random(f"{run_seed}:{index}")
    seed = rng.choice(sorted(seeds.returns))
    names = [first or rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]]
    names += rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=rng.choice((0, 0, 0, 1, 2)))
    data = seeds.returns[seed]
    others = tuple(seeds.returns.values())
    for name in names:
        data = mutated(name, rng, data, others)
    return Input(seed, tuple(names), data)


def mutated(name: str, rng: random.Random, data: bytes, others: tuple[bytes, ...]) -> bytes:
    """The named mutation of data; flipped bytes should the mutation itself stumble on what it was given (a fuzzer
    that dies of its own mutation would be blamed on the reader)."""
    try:
        return splice_seeds(rng, data, others) if name == "splice" else MUTATIONS[name](rng, data)
    except Exception:  # noqa: BLE001  the input was damaged past what this mutation parses
        return _flip(rng, data)
