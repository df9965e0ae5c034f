"""What the guard takes for a worksheet outside SpreadsheetML's namespace (Excel would call the file damaged), and
what it leaves alone: the namespaces Excel and WPS write, under a prefix or not, and parts that are not worksheets."""

from __future__ import annotations

import pytest

from tasks.file_guard import worksheet_outside_namespace

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
    assert not worksheet_outside_namespace(f"{DECLARATION}{root}<sheetData/></worksheet>".encode())


def test_prefixes_excel_declares_below_the_root_pass() -> None:
    """Excel's extLst declares x14 and mc where it uses them: other prefixes, not the sheet's."""
    xml = (f'{DECLARATION}<worksheet {MAIN}><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>'
           '<extLst><ext uri="{{78C0D931}}" xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
           f'<x14:dataValidations xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"/></ext></extLst>'
           f'<mc:AlternateContent xmlns:mc="urn:mc"><mc:Choice Requires="x14"><sheetData {MAIN}/></mc:Choice>'
           '</mc:AlternateContent></worksheet>')
    assert not worksheet_outside_namespace(xml.encode())


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
    assert worksheet_outside_namespace(f"{DECLARATION}{root}<sheetData/></worksheet>".encode())


@pytest.mark.parametrize("content", [
    '<sheetData xmlns="urn:other"><row r="1"><c r="A1"><v>1</v></c></row></sheetData>',  # the default, bound again
    '<sheetData xmlns=""><row r="1"><c r="A1"><v>1</v></c></row></sheetData>',  # ... or to none
    '<sheetData><row r="1" xmlns="urn:other"><c r="A1"><v>1</v></c></row></sheetData>',
])
def test_content_taken_out_of_the_namespace_below_the_root_is_found(content: str) -> None:
    assert worksheet_outside_namespace(f"{DECLARATION}<worksheet {MAIN}>{content}</worksheet>".encode())


def test_a_prefixed_worksheet_over_unprefixed_content_is_found() -> None:
    x = 'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    prefixed = f'<x:worksheet {x}><x:sheetData><x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c></x:row></x:sheetData>'
    unprefixed = f'<x:worksheet {x}><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>'
    assert not worksheet_outside_namespace(f"{DECLARATION}{prefixed}</x:worksheet>".encode())
    assert worksheet_outside_namespace(f"{DECLARATION}{unprefixed}</x:worksheet>".encode())
    both = f'<x:worksheet {x} {MAIN}><sheetData/></x:worksheet>'  # the default bound to ours too: in it
    assert not worksheet_outside_namespace(f"{DECLARATION}{both}".encode())

