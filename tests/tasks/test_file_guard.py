"""What the guard takes for a worksheet (or workbook, or relationships) outside its namespace, or for a sheet
without its one sheetData
(Excel would call the file damaged either way), and what it leaves alone: the namespaces Excel and WPS write, under
a prefix or not, an empty sheet, and parts that are not worksheets. And where a part's cells are read."""

from __future__ import annotations

import pytest

from tasks.file_guard import cells_span, outside_namespace

MAIN = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


@pytest.mark.parametrize("root", [
    f"<worksheet {MAIN} xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">",
    "<worksheet xmlns='http://purl.oclc.org/ooxml/spreadsheetml/main'>",  # Excel's Strict Open XML
    f'<worksheet mc:Ignorable="x14ac" note="a > in a value" {MAIN}>',
    f'<!-- <a> --><?pi <b>?><worksheet {MAIN}>',
    f"<chartsheet {MAIN.replace('main', 'other')}>",  # not a worksheet: not this check's business
    '<sst xmlns="urn:whatever">',
])
def test_a_worksheet_in_its_namespace_or_another_part_passes(root: str) -> None:
    assert not outside_namespace(f"{DECLARATION}{root}<sheetData/></worksheet>".encode())


def test_prefixes_excel_declares_below_the_root_pass() -> None:
    """Excel's extLst declares x14 and mc where it uses them: other prefixes, not the sheet's."""
    xml = (f'{DECLARATION}<worksheet {MAIN}><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>'
           '<extLst><ext uri="{{78C0D931}}" xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
           f'<x14:dataValidations xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"/></ext></extLst>'
           f'<mc:AlternateContent xmlns:mc="urn:mc"><mc:Choice Requires="x14"><sheetData {MAIN}/></mc:Choice>'
           '</mc:AlternateContent></worksheet>')
    assert not outside_namespace(xml.encode())


@pytest.mark.parametrize("root", [
    '<worksheet xmlns:y="http://schemas.openxmlformats.org/spreadsheetml/2006/main">',  # no default namespace
    '<worksheet xmlns="urn:other">',
    '<x:worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">',  # x bound to nothing
    '<x:worksheet xmlns:y="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:x="urn:other">',
    '<worksheet>',
    # found by a second reader: a declaration in an attribute's value, a start tag in a comment before the root
    f"""<worksheet a=' {MAIN}' xmlns="urn:other">""",
    '<!--<a>--><worksheet xmlns="urn:other">',
])
def test_a_worksheet_outside_its_namespace_is_found(root: str) -> None:
    assert outside_namespace(f"{DECLARATION}{root}<sheetData/></worksheet>".encode())


@pytest.mark.parametrize("content", [
    '<sheetData xmlns="urn:other"><row r="1"><c r="A1"><v>1</v></c></row></sheetData>',  # the default, bound again
    '<sheetData xmlns=""><row r="1"><c r="A1"><v>1</v></c></row></sheetData>',  # ... or to none
    '<sheetData><row r="1" xmlns="urn:other"><c r="A1"><v>1</v></c></row></sheetData>',
])
def test_content_taken_out_of_the_namespace_below_the_root_is_found(content: str) -> None:
    assert outside_namespace(f"{DECLARATION}<worksheet {MAIN}>{content}</worksheet>".encode())


def test_a_prefixed_worksheet_over_unprefixed_content_is_found() -> None:
    x = 'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    prefixed = f'<x:worksheet {x}><x:sheetData><x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c></x:row></x:sheetData>'
    unprefixed = f'<x:worksheet {x}><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>'
    assert not outside_namespace(f"{DECLARATION}{prefixed}</x:worksheet>".encode())
    assert outside_namespace(f"{DECLARATION}{unprefixed}</x:worksheet>".encode())
    both = f'<x:worksheet {x} {MAIN}><sheetData/></x:worksheet>'  # the default bound to ours too: in it
    assert not outside_namespace(f"{DECLARATION}{both}".encode())




RELATIONSHIPS = 'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"'


WORKBOOK, RELATIONSHIPS_PART = "xl/workbook.xml", "xl/_rels/workbook.xml.rels"


@pytest.mark.parametrize(("name", "part"), [
    (WORKBOOK, f'<workbook {MAIN}><sheets><sheet name="表二" sheetId="1" r:id="rId1"/></sheets></workbook>'),
    (RELATIONSHIPS_PART,
     f'<Relationships {RELATIONSHIPS}><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>'),
    (WORKBOOK, '<x:workbook xmlns:x="http://purl.oclc.org/ooxml/spreadsheetml/main"><x:sheets/></x:workbook>'),
    ("xl\\workbook.xml", f'<workbook {MAIN}><sheets/></workbook>'),  # calamine's name for it too
])
def test_a_workbook_and_relationships_in_their_namespaces_pass(name: str, part: str) -> None:
    assert not outside_namespace(f"{DECLARATION}{part}".encode(), name)


@pytest.mark.parametrize(("name", "part"), [
    # found by the fuzzer: the relationships' namespace bound to a prefix only; the readers found the sheets by name
    (RELATIONSHIPS_PART,
     f'<Relationships {RELATIONSHIPS.replace("xmlns=", "xmlns:y=")}><Relationship Id="rId1"/></Relationships>'),
    (RELATIONSHIPS_PART, f'<Relationships {MAIN}><Relationship Id="rId1"/></Relationships>'),  # the workbook's
    (WORKBOOK, f'<workbook {RELATIONSHIPS}><sheets/></workbook>'),
    (WORKBOOK, f'<workbook {MAIN}><sheets xmlns="urn:other"><sheet name="表二" sheetId="1"/></sheets></workbook>'),
    ("xl\\_rels\\workbook.xml.rels", '<Relationships xmlns="urn:x"><Relationship Id="rId1"/></Relationships>'),
])
def test_a_workbook_or_relationships_outside_their_namespace_are_found(name: str, part: str) -> None:
    assert outside_namespace(f"{DECLARATION}{part}".encode(), name)


@pytest.mark.parametrize(("name", "part"), [
    # an add-in's own XML under a root of the same name (a second reader's find: the first version refused it)
    ("customXml/item1.xml", '<workbook xmlns="http://example.com/addin"><sheet name="a"/></workbook>'),
    ("customXml/item2.xml", '<Relationships xmlns="urn:addin"><Relationship Id="a"/></Relationships>'),
    # relationships neither reader reads the figures through: the fast path does not look at them either
    ("_rels/.rels", '<Relationships xmlns="urn:x"><Relationship Id="rId1"/></Relationships>'),
])
def test_other_parts_with_such_roots_are_not_the_workbooks(name: str, part: str) -> None:
    assert not outside_namespace(f"{DECLARATION}{part}".encode(), name)

ROW = '<row r="1"><c r="A1"><v>1</v></c></row>'


def _span(body: str, root: str = f"<worksheet {MAIN}>", end: str = "</worksheet>") -> str | None:
    """The text the cells are read from, or None for a worksheet refused."""
    xml = f"{DECLARATION}{root}{body}{end}".encode()
    span = cells_span(xml)
    return None if span is None else xml[span[0]:span[1]].decode()


@pytest.mark.parametrize(("body", "cells"), [
    (f"<sheetData>{ROW}</sheetData>", ROW),
    ("<sheetData/>", ""),  # an empty sheet
    ("<sheetData />", ""),
    ('<sheetViews><sheetView workbookViewId="0"/></sheetViews><cols><col min="1" max="2"/></cols>'
     f'<sheetData>{ROW}<row r="2"/></sheetData><mergeCells count="1"><mergeCell ref="A1:B1"/></mergeCells>',
     f'{ROW}<row r="2"/>'),
    ('<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>sheetData</t></is></c></row></sheetData>',
     '<row r="1"><c r="A1" t="inlineStr"><is><t>sheetData</t></is></c></row>'),
    # a cell outside it: calamine reads none (Excel calls it damaged, and leaves it out when it repairs the file)
    (f'<sheetData>{ROW}</sheetData><c r="B8"><v>21</v></c>', ROW),
    (f'<row r="9"><c r="A1"><v>5</v></c></row><sheetData>{ROW}</sheetData>', ROW),
])
def test_a_worksheets_cells_are_read_in_its_sheet_data(body: str, cells: str) -> None:
    assert _span(body) == cells


def test_a_prefixed_worksheet_is_read_in_its_sheet_data_and_other_parts_as_they_are() -> None:
    x = 'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    row = '<x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c></x:row>'
    assert _span(f"<x:sheetData>{row}</x:sheetData>", f"<x:worksheet {x}>", "</x:worksheet>") == row
    # not worksheets: calamine reads a sheet wherever the relationships put it, so the guard looks at all of a part
    # that has a sheetData (or the name, by chance), and at none of one that has not
    sst = f'{DECLARATION}<sst {MAIN}><si><t>sheetData</t></si></sst>'.encode()
    assert cells_span(sst) == (0, len(sst))
    chart = f'{DECLARATION}<chartsheet {MAIN}><sheetViews/></chartsheet>'.encode()
    assert cells_span(chart) == (0, 0)
    # an external link's cache of the other workbook's sheets: a sheetData each, its cells <cell>, not <c>
    link = (f'{DECLARATION}<externalLink {MAIN}><externalBook><sheetDataSet><sheetData sheetId="0"><row r="1">'
            '<cell r="A1"><v>1</v></cell></row></sheetData><sheetData sheetId="1"/></sheetDataSet></externalBook>'
            '</externalLink>').encode()
    assert cells_span(link) == (0, len(link))


def test_parts_that_are_not_worksheets_hold_cells_only_in_a_sheet_data() -> None:
    """Excel's calcChain.xml lists cells as <c> elements, the same address once for each sheet that has it, with no
    sheetData: calamine reads no cell of it, and the guard took them for cells written twice. A sheet whose root
    is not a worksheet (the fast path leaves it to calamine) is looked at whole."""
    chain = f'{DECLARATION}<calcChain {MAIN}><c r="B10" i="1" l="1"/><c r="B10" i="2"/></calcChain>'.encode()
    assert cells_span(chain) == (0, 0)
    renamed = f"{DECLARATION}<chartsheet {MAIN}><sheetData>{ROW}</sheetData></chartsheet>".encode()
    assert cells_span(renamed) == (0, len(renamed))


@pytest.mark.parametrize("body", [
    f"<sheetDita>{ROW}</sheetData>",  # its start misspelt (found by the fuzzer: the readers disagreed)
    f"<sheetData>{ROW}</sheetDita>",  # its end
    f"<sheetDita>{ROW}</sheetDita>",  # both: no sheetData at all
    ROW,
    f"<sheetData>{ROW}",
    f"<sheetData>{ROW}</sheetData><sheetData>{ROW.replace('1', '2')}</sheetData>",  # two
    f"<sheetData/><sheetData>{ROW}</sheetData>",
    f"</sheetData><sheetData>{ROW}",  # its end before its start
])
def test_a_worksheet_without_its_one_sheet_data_is_refused(body: str) -> None:
    assert _span(body) is None
