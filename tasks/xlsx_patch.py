"""Make a copy of a saved .xlsx with some cell values replaced, without openpyxl.

Only cells that already exist in the template's sheet XML can be patched (the template writes a placeholder into
each), so the patch is a substitution of one `<c>` element: styles, formulas elsewhere, names, protection and
validation are untouched. Numbers are written as numbers, text as inline strings.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import escape

from openpyxl.utils.cell import column_index_from_string, coordinate_from_string, get_column_letter

from tasks.zip_write import Member, dos_stamp, zip_bytes

_CELL = re.compile(r'<c r="([A-Z]+[0-9]+)"([^>]*?)(?:/>|>.*?</c>)', re.DOTALL)
_TYPE_ATTR = re.compile(r'\s+t="[^"]*"')
_SHEET = re.compile(r'<sheet [^>]*?name="([^"]+)"[^>]*?r:id="([^"]+)"')
_REL = re.compile(
    r'<Relationship [^>]*?Id="([^"]+)"[^>]*?Target="([^"]+)"|<Relationship [^>]*?Target="([^"]+)"[^>]*?Id="([^"]+)"'
)

_DIMENSION = re.compile(r'<dimension ref="([^"]+)"\s*/>')

CellValue = str | int | Decimal
LEVEL = 1  # deflate level: the workbooks are small, and issuing 10,000 of them is what takes time


class XlsxPatcher:
    """Holds a template's members in memory, deflated once, and writes patched copies of it: only the members a
    copy changes are deflated again, and only the cells it patches are rewritten (their places found once)."""

    def __init__(self, data: bytes) -> None:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            self._entries = [(info.filename, zf.read(info), dos_stamp(info.date_time)) for info in zf.infolist()]
            self.sheet_paths = _sheet_paths(zf)
        self._contents = {name: content for name, content, _ in self._entries}
        self._deflated: dict[str, Member] = {}  # the members no copy has changed, deflated at their first use
        self._cells: dict[str, _SheetCells] = {}

    def render(self, patches: Mapping[str, Mapping[str, CellValue]],
               appended: Mapping[str, tuple[int, Sequence[Sequence[CellValue]]] | SheetRows] | None = None) -> bytes:
        """A copy of the template with patches[sheet name][address] written into those cells, and
        appended[sheet name] = (first row number, rows), or SheetRows, added below the sheet's last row."""
        by_path = {self.sheet_paths[sheet]: cells for sheet, cells in patches.items() if cells}
        rows_by_path = {self.sheet_paths[sheet]: rows if isinstance(rows, SheetRows) else sheet_rows(*rows)
                        for sheet, rows in (appended or {}).items()}
        members = []
        for name, content, (dos_time, dos_date) in self._entries:
            cells = by_path.get(name)
            rows = rows_by_path.get(name)
            if cells or rows:
                xml = self._sheet_cells(name).patched(cells, name) if cells else content.decode("utf-8")
                if rows:
                    head, tail = _around_rows(xml, rows)
                    pieces = (piece.encode("utf-8") for piece in itertools.chain([head], rows.pieces, [tail]))
                    members.append(Member.streamed(name, pieces, level=LEVEL, dos_time=dos_time, dos_date=dos_date))
                else:
                    members.append(Member.of(name, xml.encode("utf-8"), level=LEVEL, dos_time=dos_time,
                                             dos_date=dos_date))
                continue
            member = self._deflated.get(name)
            if member is None:
                member = self._deflated[name] = Member.of(name, content, level=LEVEL, dos_time=dos_time,
                                                          dos_date=dos_date)
            members.append(member)
        return zip_bytes(members)

    def _sheet_cells(self, path: str) -> _SheetCells:
        found = self._cells.get(path)
        if found is None:
            found = self._cells[path] = _SheetCells(self._contents[path].decode("utf-8"))
        return found


class _SheetCells:
    """A sheet's XML and where each of its cells is in it: a patch rewrites the cells it names, nothing else."""

    def __init__(self, xml: str) -> None:
        self.xml = xml
        self.places: dict[str, tuple[int, int, str]] = {}  # address -> (start, end, attributes but its type)
        for match in _CELL.finditer(xml):
            self.places.setdefault(match.group(1), (match.start(), match.end(), _TYPE_ATTR.sub("", match.group(2))))

    def patched(self, cells: Mapping[str, CellValue], where: str) -> str:
        missing = [address for address in cells if address not in self.places]
        if missing:
            raise ValueError(f"{where}: template has no cells {sorted(missing)} to patch")
        parts = []
        done = 0
        for address in sorted(cells, key=lambda a: self.places[a][0]):
            start, end, attrs = self.places[address]
            parts += [self.xml[done:start], _cell_xml(address, attrs, cells[address])]
            done = end
        parts.append(self.xml[done:])
        return "".join(parts)


@dataclass(frozen=True)
class SheetRows:
    """Rows of sheet XML to append, as pieces (made while the archive is written, for a large sheet; iterable
    again), how many rows they are and the last cell they reach (for the sheet's <dimension>)."""

    pieces: Iterable[str]
    count: int
    last_cell: str

    def __bool__(self) -> bool:
        return self.count > 0


def sheet_rows(first_row: int, rows: Sequence[Sequence[CellValue]]) -> SheetRows:
    """Rows of values (text as inline strings, numbers as numbers), numbered from first_row."""
    letters = [get_column_letter(i + 1) for i in range(max((len(r) for r in rows), default=0))]
    parts = []
    for offset, row in enumerate(rows):
        n = first_row + offset
        cells = []
        for letter, value in zip(letters, row, strict=False):
            if isinstance(value, str):
                cells.append(f'<c r="{letter}{n}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
            else:
                number = format(value, "f") if isinstance(value, Decimal) else str(value)
                cells.append(f'<c r="{letter}{n}" t="n"><v>{number}</v></c>')
        parts.append(f'<row r="{n}">{"".join(cells)}</row>')
    return SheetRows(["".join(parts)], len(rows), f"{letters[-1] if letters else 'A'}{first_row + len(rows) - 1}")


ROWS_A_PIECE = 500  # ~0.4 MB of XML: the deflating thread has work while the next piece is made


def text_then_number_rows(first_row: int, rows: Sequence[tuple[Sequence[str], Sequence[str]]]) -> SheetRows:
    """Rows of a few text cells followed by many numbers given as their exact texts ("17", "309.0263"), made a
    piece at a time as they are written.

    A wide sheet of a province's units (10,000 rows of 200 figures) costs ~8 s cell by cell. Here each row's
    numbers go into a pattern of the whole row made once (every column's `<c r="E…"><v>%s</v></c>`, the row number
    put in once a row): ~0.15 s. Every cell keeps its reference: ECMA-376 makes `r` optional, but not every reader
    a county office uses (WPS) is known to honour that.
    """
    width = max((len(texts) + len(numbers) for texts, numbers in rows), default=0)
    last_cell = f"{get_column_letter(max(width, 1))}{first_row + max(len(rows), 1) - 1}"
    return SheetRows(_RowPieces(first_row, rows), len(rows), last_cell)


@dataclass(frozen=True)
class _RowPieces:
    """The rows' XML a piece at a time, made again each time it is iterated (a SheetRows may be written twice)."""

    first_row: int
    rows: Sequence[tuple[Sequence[str], Sequence[str]]]

    def __iter__(self) -> Iterator[str]:
        return _rows_in_pieces(self.first_row, self.rows)


def _rows_in_pieces(first_row: int, rows: Sequence[tuple[Sequence[str], Sequence[str]]]) -> Iterator[str]:
    patterns: dict[tuple[int, int], str] = {}  # (text cells, numbers) -> the numbers' pattern, "\0" for the row
    parts: list[str] = []
    for n, (texts, numbers) in enumerate(rows, start=first_row):
        shape = (len(texts), len(numbers))
        pattern = patterns.get(shape)
        if pattern is None:
            # a figure is an exact decimal text (schemas/figures.py): no markup to escape, no % to read as one
            pattern = patterns[shape] = "".join(f'<c r="{get_column_letter(len(texts) + i + 1)}\0"><v>%s</v></c>'
                                                for i in range(len(numbers)))
        cells = "".join(f'<c r="{get_column_letter(i + 1)}{n}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'
                        for i, text in enumerate(texts))
        figures = pattern.replace("\0", str(n)) % tuple(numbers)
        parts.append(f'<row r="{n}">{cells}{figures}</row>')
        if len(parts) == ROWS_A_PIECE:
            yield "".join(parts)
            parts = []
    if parts:
        yield "".join(parts)


def _sheet_paths(zf: zipfile.ZipFile) -> dict[str, str]:
    workbook = zf.read("xl/workbook.xml").decode("utf-8")
    rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8")
    targets = {}
    for match in _REL.finditer(rels):
        rel_id, target = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        targets[rel_id] = target if target.startswith("/") else "xl/" + target
    return {_unescape(name): targets[rel_id].lstrip("/") for name, rel_id in _SHEET.findall(workbook)}


def _cell_xml(address: str, attrs: str, value: CellValue) -> str:
    if isinstance(value, str):
        return f'<c r="{address}"{attrs} t="inlineStr"><is><t>{escape(value)}</t></is></c>'
    number = format(value, "f") if isinstance(value, Decimal) else str(value)
    return f'<c r="{address}"{attrs} t="n"><v>{number}</v></c>'


def _around_rows(xml: str, rows: SheetRows) -> tuple[str, str]:
    """Sheet XML split where rows go after the existing ones (the template leaves those rows empty): the part
    before, its <dimension> widened to the rows (readers in streaming mode trust it), and the part after."""
    xml = _DIMENSION.sub(lambda m: f'<dimension ref="{_widest(m.group(1), rows.last_cell)}"/>', xml, count=1)
    if "<sheetData/>" in xml:
        head, _, tail = xml.partition("<sheetData/>")
        return head + "<sheetData>", "</sheetData>" + tail
    head, found, tail = xml.partition("</sheetData>")
    if not found:
        raise ValueError("the sheet has no <sheetData> to add rows to")
    return head, found + tail


def _widest(ref: str, last: str) -> str:
    """The range from ref's first cell to whichever of its last cell and `last` reaches further."""
    first, _, end = ref.partition(":")
    end = end or first
    end_col, end_row = coordinate_from_string(end)
    last_col, last_row = coordinate_from_string(last)
    column = max(column_index_from_string(end_col), column_index_from_string(last_col))
    return f"{first}:{get_column_letter(column)}{max(end_row, last_row)}"


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
