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
    '<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">',
    f'<worksheet mc:Ignorable="x14ac" note="a > in a value" {MAIN}>',
    f"<chartsheet {MAIN.replace('main', 'other')}>",  # not a worksheet: not this check's business
    '<sst xmlns="urn:whatever">',
])
def test_a_worksheet_in_its_namespace_or_another_part_passes(root: str) -> None:
    assert not worksheet_outside_namespace(f"{DECLARATION}{root}<sheetData/></worksheet>".encode())


@pytest.mark.parametrize("root", [
    '<worksheet xmlns:y="http://schemas.openxmlformats.org/spreadsheetml/2006/main">',  # no default namespace
    '<worksheet xmlns="urn:other">',
    '<x:worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">',  # x bound to nothing
    '<x:worksheet xmlns:y="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:x="urn:other">',
    '<worksheet>',
])
def test_a_worksheet_outside_its_namespace_is_found(root: str) -> None:
    assert worksheet_outside_namespace(f"{DECLARATION}{root}<sheetData/></worksheet>".encode())
