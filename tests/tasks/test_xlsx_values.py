"""The reader's fast path (tasks/xlsx_values.py) against calamine's: for every kind of return, either both read the
same identity and values, or the fast path declines and calamine reads the file."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

import tasks.workbook_read as workbook_read
from cli.simulate import fill_by_names
from schemas.form_spec import FormSpec
from tasks.issue_workbooks import UnitToIssue, write_workbooks
from tasks.workbook_read import RawWorkbook, read_workbook
from tasks.workbook_template import build_template
from tasks.xlsx_patch import XlsxPatcher
from tasks.xlsx_values import Archive, Unusual, _instruction_after_declaration
from tests.factories import valid_figures

T2, T3 = "表二 主动公开", "表三 依申请公开"


@pytest.fixture(scope="module")
def issued(form: FormSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("issued")
    template = build_template(form, 2021, date(2022, 1, 20))
    written = write_workbooks(template=template, patcher=XlsxPatcher(template.data), campaign_id=7, year=2021,
                              secret="s", units=[UnitToIssue(1, "T001", "城关镇", {})], folder=folder)
    return Path(written[0].path)


def by_openpyxl(issued: Path, tmp_path: Path, form: FormSpec, **changes: object) -> bytes:
    """Saved by openpyxl (shared strings, its own styles), valid figures with some raw values changed."""
    values: dict[str, object] = dict(valid_figures(form))
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return fill_by_names(issued, tmp_path / "filled.xlsx", values).read_bytes()


def by_patching(issued: Path, form: FormSpec, **changes: object) -> bytes:
    """Patched into the issued file's XML, as the benchmark and the demo fill returns."""
    figures: dict[str, object] = {**valid_figures(form), **{k.replace("__", "."): v for k, v in changes.items()}}
    patches: dict[str, dict[str, object]] = {}
    for cell in form.input_cells:
        if cell.key in figures:
            patches.setdefault(form.sheet_by_id[cell.sheet].name, {})[cell.address] = figures[cell.key]
    return XlsxPatcher(issued.read_bytes()).render(patches)  # type: ignore[arg-type]


def rewritten(data: bytes, member: str, edit: Callable[[str], str]) -> bytes:
    """The archive with one member's XML edited as text."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, edit(content.decode("utf-8")).encode("utf-8") if info.filename == member else content)
    return out.getvalue()


def with_shared_strings(data: bytes, items: list[str]) -> bytes:
    """The archive with a shared strings part of these <si> items (as Excel and WPS keep text), registered in the
    workbook's relationships and the content types."""
    shared = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://schemas.openxmlformats.org/'
              f'spreadsheetml/2006/main" count="{len(items)}" uniqueCount="{len(items)}">{"".join(items)}</sst>')
    kind = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
    data = rewritten(data, "xl/_rels/workbook.xml.rels", lambda xml: xml.replace(
        "</Relationships>", f'<Relationship Id="rIdShared" Type="{kind}" Target="sharedStrings.xml"/></Relationships>'))
    data = rewritten(data, "[Content_Types].xml", lambda xml: xml.replace("</Types>", (
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.sharedStrings+xml"/></Types>')))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("xl/sharedStrings.xml", shared)
    return out.getvalue()


def shared_text(issued: Path, form: FormSpec) -> bytes:
    """Text typed into number cells, kept as shared strings: plain, with entities, in rich-text runs."""
    data = with_shared_strings(by_patching(issued, form), [
        "<si><t>三件</t></si>", '<si><t xml:space="preserve">A&amp;B &lt;"x"&gt; </t></si>',
        '<si><r><rPr><b/></rPr><t>二</t></r><r><t>件</t></r></si>'])
    data = in_cell(data, T3, "D6", '<c r="D6" s="6" t="s"><v>0</v></c>')
    data = in_cell(data, T3, "E6", '<c r="E6" s="6" t="s"><v>1</v></c>')
    return in_cell(data, T3, "F6", '<c r="F6" s="6" t="s"><v>2</v></c>')


def sheet_member(data: bytes, sheet: str) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        workbook = zf.read("xl/workbook.xml").decode()
        rels = zf.read("xl/_rels/workbook.xml.rels").decode()
    rid = re.search(rf'<sheet [^>]*name="{sheet}"[^>]*r:id="(\w+)"', workbook) or \
        re.search(rf'<sheet [^>]*r:id="(\w+)"[^>]*name="{sheet}"', workbook)
    assert rid is not None
    target = re.search(rf'<Relationship [^>]*Id="{rid.group(1)}"[^>]*/>', rels)
    assert target is not None
    path = re.search(r'Target="([^"]+)"', target.group(0))
    assert path is not None
    return path.group(1).lstrip("/") if path.group(1).startswith("/") else f"xl/{path.group(1)}"


def in_cell(data: bytes, sheet: str, address: str, element: str) -> bytes:
    """The return with one cell element of a sheet replaced (element: the whole <c .../> text)."""
    member = sheet_member(data, sheet)
    pattern = re.compile(rf'<c r="{address}"[^>]*?(/>|>.*?</c>)', re.DOTALL)

    def edit(xml: str) -> str:
        assert pattern.search(xml), f"{address} not in {member}"
        return pattern.sub(lambda _: element, xml, count=1)

    return rewritten(data, member, edit)


def calamine_read(data: bytes, form: FormSpec) -> RawWorkbook:
    """The file as read_workbook reads it when the fast path declines."""
    return read_workbook(data, form, fast_path=False)


def fast_read(data: bytes, form: FormSpec) -> RawWorkbook | None:
    try:
        return workbook_read._read_usual(data, form)
    except Unusual:
        return None


def _same(fast: RawWorkbook, slow: RawWorkbook) -> None:
    def plain(values: Mapping[str, object]) -> dict[str, object]:
        return {k: None if v == "" else v for k, v in values.items()}  # calamine's grid has '' for an empty cell

    assert fast.identity == slow.identity
    assert plain(fast.values) == plain(slow.values)
    assert (fast.places, fast.sheet_names, fast.issues) == (slow.places, slow.sheet_names, slow.issues)


CASES: dict[str, Callable[[Path, Path, FormSpec], bytes]] = {
    "patched": lambda i, t, f: by_patching(i, f),
    "openpyxl": lambda i, t, f: by_openpyxl(i, t, f),
    "text in number cells (shared strings)": lambda i, t, f: shared_text(i, f),
    "negative and fraction": lambda i, t, f: by_openpyxl(i, t, f, review__upheld=-1, active__license__decisions=1.5),
    "a boolean": lambda i, t, f: by_openpyxl(i, t, f, review__upheld=True),
    "an empty cell": lambda i, t, f: by_openpyxl(i, t, f, active__penalty__decisions=None),
    "patched decimals": lambda i, t, f: by_patching(i, f, active__fees__amount_wan=Decimal("309.0263")),
    "a total with its value": lambda i, t, f: in_cell(by_patching(i, f), T3, "J6", '<c r="J6" s="8"><f>SUM(D6:I6)'
                                                      '</f><v>24</v></c>'),
    "a number in exponent form": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6",
                                                         '<c r="D6" s="6" t="n"><v>2E1</v></c>'),
    "a formula's text value": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6",
                                                      '<c r="D6" s="6" t="str"><f>"a"&amp;"b"</f><v>a&amp;b</v></c>'),
}
DECLINED: dict[str, Callable[[Path, Path, FormSpec], bytes]] = {
    "text in a number cell (inline, as openpyxl writes it)": lambda i, t, f: by_openpyxl(
        i, t, f, apply__new__natural_person='A&B <"x">'),
    "a date": lambda i, t, f: by_openpyxl(i, t, f, apply__new__natural_person=datetime(2022, 1, 5)),
    "inline text": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6",
                                           '<c r="D6" s="6" t="inlineStr"><is><t>三</t></is></c>'),
    "an error value": lambda i, t, f: in_cell(by_patching(i, f), T3, "J6",
                                              '<c r="J6" s="8" t="e"><f>SUM(D6:I6)</f><v>#VALUE!</v></c>'),
    "attributes in another order": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6",
                                                           '<c s="6" r="D6"><v>5</v></c>'),
    "a cell without its address": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6", '<c s="6"><v>5</v></c>'),
    "a date format on an input cell": lambda i, t, f: rewritten(
        by_patching(i, f), "xl/styles.xml", lambda xml: xml.replace('<xf numFmtId="1" ', '<xf numFmtId="14" ')),
    "a damaged sheet": lambda i, t, f: _damaged(by_patching(i, f)),
    "an identity number that is no number": lambda i, t, f: in_cell(by_patching(i, f), "_nianbao", "B3",
                                                                    '<c r="B3"><v>二〇二一</v></c>'),
    "a date format among the numFmts, a plain one of the same id in a dxf": lambda i, t, f: rewritten(
        by_patching(i, f), "xl/styles.xml", lambda xml: xml.replace('numFmtId="164" formatCode="0.0000"',
                                                                    'numFmtId="164" formatCode="yyyy-mm-dd"').replace(
            "</styleSheet>", '<dxfs count="1"><dxf><numFmt numFmtId="164" formatCode="0.00"/></dxf></dxfs>'
                             "</styleSheet>")),
    "an elapsed-time format": lambda i, t, f: rewritten(
        by_patching(i, f), "xl/styles.xml", lambda xml: xml.replace('formatCode="0.0000"', 'formatCode="[h]"')),
    "single-quoted style attributes": lambda i, t, f: rewritten(
        by_patching(i, f), "xl/styles.xml", lambda xml: xml.replace('<xf numFmtId="1" ', "<xf numFmtId='14' ")),
    "an identity number in a date format": lambda i, t, f: in_cell(rewritten(  # the fee's style made a date
        by_patching(i, f), "xl/styles.xml", lambda xml: xml.replace('<xf numFmtId="164" ', '<xf numFmtId="14" ')),
        "_nianbao", "B3", '<c r="B3" s="7"><v>2021</v></c>'),
    "a lowercase cell address": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6", '<c r="d6" s="6"><v>5</v></c>'),
    "a comment that looks like a cell": lambda i, t, f: rewritten(
        by_patching(i, f), sheet_member(by_patching(i, f), T3),
        lambda xml: xml.replace("</sheetData>", '<!-- <c r="D6"><v>999</v></c> --></sheetData>')),
    "a number with spaces": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6", '<c r="D6" s="6"><v> 5</v></c>'),
    "a number with an underscore": lambda i, t, f: in_cell(by_patching(i, f), T3, "D6",
                                                           '<c r="D6" s="6"><v>1_000</v></c>'),
    "an identity sheet with prefixed elements": lambda i, t, f: rewritten(
        by_patching(i, f), sheet_member(by_patching(i, f), "_nianbao"), lambda xml: re.sub(
            r"<(/?)(\w+)", lambda m: f"<{m.group(1)}x:{m.group(2)}", xml).replace(
            "xmlns=", "xmlns:x=", 1)),
    "a missing sheet": lambda i, t, f: _edited(by_openpyxl(i, t, f), lambda wb: wb.remove(wb[T2])),
    "a deleted name": lambda i, t, f: _edited(by_openpyxl(i, t, f),
                                              lambda wb: wb.defined_names.pop("review.upheld")),
}


def _edited(data: bytes, edit: Callable[[openpyxl.Workbook], object]) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    edit(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _damaged(data: bytes) -> bytes:
    """One byte of a sheet's compressed data changed, the archive otherwise intact."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(sheet_member(data, T3))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    position = start + info.compress_size // 2
    return data[:position] + bytes([data[position] ^ 0x55]) + data[position + 1:]


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_reads_what_calamine_reads(case: str, issued: Path, tmp_path: Path, form: FormSpec) -> None:
    data = CASES[case](issued, tmp_path, form)
    fast = fast_read(data, form)
    assert fast is not None, "the fast path should read this return itself"
    _same(fast, calamine_read(data, form))
    assert read_workbook(data, form).values == fast.values


@pytest.mark.parametrize("case", list(DECLINED))
def test_fast_path_leaves_the_unusual_to_calamine(case: str, issued: Path, tmp_path: Path, form: FormSpec) -> None:
    data = DECLINED[case](issued, tmp_path, form)
    assert fast_read(data, form) is None
    whole = read_workbook(data, form)
    slow = calamine_read(data, form)
    assert (whole.identity, whole.issues) == (slow.identity, slow.issues)
    assert {k: None if v == "" else v for k, v in whole.values.items()} == \
        {k: None if v == "" else v for k, v in slow.values.items()}


def test_what_each_path_reads_in_the_cells_that_differ(issued: Path, tmp_path: Path, form: FormSpec) -> None:
    """Not only the same on both paths, but right: the values the cases above were made with."""
    text = fast_read(CASES["text in number cells (shared strings)"](issued, tmp_path, form), form)
    assert text is not None
    assert [text.values[f"apply.new.{k}"] for k in ("natural_person", "commercial", "research")] == [
        "三件", 'A&B <"x"> ', "二件"]
    inline = read_workbook(DECLINED["text in a number cell (inline, as openpyxl writes it)"](issued, tmp_path, form),
                           form)
    assert inline.values["apply.new.natural_person"] == 'A&B <"x">'
    total = fast_read(CASES["a total with its value"](issued, tmp_path, form), form)
    assert total is not None and total.values["apply.new.total"] == 24.0
    exponent = fast_read(CASES["a number in exponent form"](issued, tmp_path, form), form)
    assert exponent is not None and exponent.values["apply.new.natural_person"] == 20.0
    boolean = fast_read(CASES["a boolean"](issued, tmp_path, form), form)
    assert boolean is not None and boolean.values["review.upheld"] is True
    fee = fast_read(CASES["patched decimals"](issued, tmp_path, form), form)
    assert fee is not None and fee.values["active.fees.amount_wan"] == 309.0263
    dated_identity = DECLINED["an identity number in a date format"](issued, tmp_path, form)
    with pytest.raises(Unusual, match="identity"):  # the identity is read first: it is what declines
        workbook_read._read_usual(dated_identity, form)
    year = read_workbook(dated_identity, form)
    assert year.identity is not None and year.identity["year"] == "1905-07-13"  # calamine shows the date it is
    dated = read_workbook(DECLINED["a date"](issued, tmp_path, form), form)
    assert isinstance(dated.values["apply.new.natural_person"], date)
    assert [i.code for i in read_workbook(DECLINED["a damaged sheet"](issued, tmp_path, form), form).issues] == \
        ["corrupt-workbook"]


def test_a_fast_path_that_trips_falls_back_and_never_raises(issued: Path, form: FormSpec,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the fast path stumbles on, read_workbook's promise holds: calamine reads the file, nothing raises."""
    data = by_patching(issued, form)
    expected = calamine_read(data, form)

    def trips(*_: object) -> RawWorkbook:
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(workbook_read, "_read_usual", trips)
    raw = read_workbook(data, form)
    assert (raw.identity, raw.issues) == (expected.identity, []) and raw.values == expected.values


def _archive(content: bytes, compression: int, level: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression, compresslevel=level) as zf:
        zf.writestr("xl/workbook.xml", content)
    return buffer.getvalue()


def test_a_part_seen_before_is_known_by_its_bytes_or_its_content_never_by_its_crc_alone() -> None:
    """What the layout and style caches stand on (tasks/workbook_read.py): a part is the one seen when its stored
    bytes are, or when it inflates, CRC intact, to the same content; a damaged copy behind an intact directory
    entry is read and refused (Unusual), not taken for the part it claims to be."""
    content = b'<?xml version="1.0"?><workbook>' + b'<sheet name="x" sheetId="1"/>' * 50 + b"</workbook>"
    seen = Archive(_archive(content, zipfile.ZIP_DEFLATED, 1)).seen("xl/workbook.xml")
    assert seen.content == content and len(seen.stored) == 1

    assert Archive(_archive(content, zipfile.ZIP_DEFLATED, 1)).holds("xl/workbook.xml", seen)
    other_writer = _archive(content, zipfile.ZIP_DEFLATED, 9)
    assert Archive(other_writer).holds("xl/workbook.xml", seen) and len(seen.stored) == 2  # remembered
    assert not Archive(_archive(content.replace(b'"x"', b'"y"'), zipfile.ZIP_DEFLATED, 1)).holds(
        "xl/workbook.xml", seen)

    stored = _archive(content, zipfile.ZIP_STORED)
    damaged = stored.replace(b'sheetId="1"', b'sheetId="7"', 1)  # the directory's CRC and size still the part's
    assert Archive(stored).holds("xl/workbook.xml", seen)
    with pytest.raises(Unusual, match="damaged"):
        Archive(damaged).holds("xl/workbook.xml", seen)
    # found by a second reader: the bytes of a form seen, under another method in the directory, are other content
    directory = stored.rindex(b"PK\x01\x02")
    deflated_in_name = stored[:directory + 10] + struct.pack("<H", 8) + stored[directory + 12:]
    with pytest.raises(Unusual, match="inflate|damaged"):
        Archive(deflated_in_name).holds("xl/workbook.xml", seen)


@pytest.mark.parametrize(("xml", "found"), [
    (b'<?xml version="1.0"?>\n<worksheet><sheetData/></worksheet>', False),
    (b'<?xml version="1.0"?>\n<worksheet><t>why?</t><t>?&gt;</t></worksheet>', False),  # a "?" in text
    (b'<worksheet><t>a<?pi data?>b</t></worksheet>', True),  # no declaration
    (b'<?xml version="1.0"?>\n<worksheet><t>xxgk-annual<?pi data?></t></worksheet>', True),
    (b'<?xml version="1.0"?><?pi?><worksheet/>', True),
])
def test_a_processing_instruction_past_the_declaration_is_found(xml: bytes, found: bool) -> None:
    """calamine reads past one inside a text, the fast path would not: such a sheet goes to calamine."""
    assert _instruction_after_declaration(xml) is found
