"""Read last year's published annual report into the form's statutory cell figures: the "year zero" import.

A county starting with nianbao has no database for last year. Its published report is read here instead, so that
this year's workbooks get 上年结转 (= last year's 结转下年度继续办理) and the report can compare the years. Read are
the portal's page (.html), text copied from it (.txt), the Word version (.docx), and nianbao's own summary workbook
(.xlsx) and figures file (.json). tasks/published_rows.py turns the free-text formats into rows; this module finds
the tables 二, 三 and 四 in them by their headings and maps their numbers onto cell keys, checking them with the
form's sum rules. Nothing here raises on a bad file: what stops an import is a Chinese problem, a doubt a note.
"""

from __future__ import annotations

import io
import json
import math
import re
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import PurePath

import openpyxl

from schemas.form_spec import CellSpec, CellType, FormSpec, Severity
from schemas.issues import Issue
from tasks.check import recheck
from tasks.published_rows import Row, Rows, docx_rows, html_rows, text_rows

STATUTORY_TABLES = ("二、", "三、", "四、")
ACCEPTED = ("可导入的格式：网页（.html/.htm）、从网页复制的文本（.txt）、Word文档（.docx），"
            "或nianbao导出的上年汇总表（.xlsx）和数据文件（.json）")
HEADINGS = {"二": "二、主动公开政府信息情况", "三": "三、收到和处理政府信息公开申请情况",
            "四": "四、政府信息公开行政复议、行政诉讼情况"}

# A section heading counts only with the key words of its statutory section: section 一 of real reports re-uses
# the numerals ("二、完善制度…"). Each inner tuple: one of these words must occur.
_SECTION_WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "二": (("主动公开",),), "三": (("申请",), ("收到", "处理")), "四": (("复议", "诉讼"),),
    "五": (("问题", "改进"),), "六": (("其他", "事项"),),
}
_LATER = {"二": "三四五六", "三": "四五六", "四": "五六"}
_HEADING = re.compile(r"^([二三四五六])[、.,]")
_TITLE = re.compile(r"^(?P<before>.*?)(?P<year>(?:19|20)\d{2})年度?(?P<after>.*?)政府信息公开(?:工作)?(?:年度)?报告")
_MARKERS_2019 = ("本年新制作数量", "本年新公开数量", "对外公开总数量", "第二十条第(九)项", "政府集中采购")
_TABLE_START = ("勾稽关系", "申请人情况", "自然人")
_DASHES = {"—", "——", "-", "--", "–", "―", "─", "/", "无"}
# a sign is part of a number, so that "-3" in a count cell is refused as a negative, not taken for row label text
_PLAIN = re.compile(r"^-?\d+(?:\.\d+)?$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_NUMBERING = re.compile(r"^(?:[一二三四五六七八九十]+、|\([一二三四五六七八九十]+\)|\d+[.、])")
_QUOTES = re.compile("[“”\"‘’'「」]")
_REMARK = re.compile(r"\([^()]*\)$")  # a trailing remark, e.g. "(区分处理的,只计这一情形,…)"
_ROW_ALIASES = {"规范性文件": "行政规范性文件"}  # the 2019 row name, still used in some 2021-format tables
_LEGACY_OTHER = "apply.result.other."  # the 2021 split of 2019's single (六)其他处理 row
_LEGACY_TARGET = "apply.result.other.other."
_IMAGE = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic"}
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_OLD_WORD = {".doc", ".wps", ".rtf", ".odt"}
_OLD_EXCEL = {".xls", ".et", ".ods"}
_OLD_OFFICE = _OLD_WORD | _OLD_EXCEL


@dataclass(frozen=True)
class ParsedReport:
    """What a published report gave: the statutory figures read, what is missing or wrong, and the title line."""

    figures: dict[str, Decimal]  # cell key -> value as printed (totals included)
    missing: list[str]  # statutory keys not read
    problems: list[str]  # Chinese; any stops the import
    notes: list[str]  # Chinese; doubts that do not stop it
    title: str = ""
    year: int | None = None
    body: str = ""
    layout: str = "2021"  # "2021" or "2019" (国办公开办函〔2019〕60号)
    issues: list[Issue] = field(default_factory=list)  # recheck() of the figures, when they were read cleanly

    @property
    def complete(self) -> bool:
        return not self.problems and not self.missing


@dataclass
class _Reading:
    figures: dict[str, Decimal] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = ""
    year: int | None = None
    body: str = ""
    layout: str = "2021"


@dataclass(frozen=True)
class _Line:
    """One expected row of numbers: how messages name it, the label text that identifies it, its cells."""

    name: str
    core: str
    cells: tuple[CellSpec, ...]
    columns: tuple[str, ...]


def parse_published_report(data: bytes, filename: str, form: FormSpec) -> ParsedReport:
    """Read a published annual report (.txt/.html/.docx) or nianbao's own .xlsx/.json into statutory figures."""
    reading = _Reading()
    kind = _kind(data, filename, reading)
    if kind is not None:
        _READERS[kind](data, form, reading)
    return _finish(reading, form)


def statutory_cells(form: FormSpec) -> list[CellSpec]:
    """The cells a published report holds: those of the tables 二, 三 and 四."""
    return [c for c in form.cells if c.table in STATUTORY_TABLES]


def _finish(reading: _Reading, form: FormSpec) -> ParsedReport:
    cells = statutory_cells(form)
    figures = {c.key: reading.figures[c.key] for c in cells if c.key in reading.figures}
    missing = [c.key for c in cells if c.key not in figures]
    # rules whose cells were not all read are skipped by recheck itself (the 2019 layout has no table 二)
    issues = recheck(figures, form) if not reading.problems else []
    problems = [*reading.problems, *(_message(i) for i in issues if i.severity is Severity.ERROR)]
    notes = [*reading.notes, *(_message(i) for i in issues if i.severity is not Severity.ERROR)]
    return ParsedReport(figures, missing, problems, notes, reading.title, reading.year, reading.body,
                        reading.layout, issues)


def _message(issue: Issue) -> str:
    """An issue's message as the coordinator reads it about a published report, which has no formulas to keep:
    the workbook's "请不要改动合计公式" would send them looking for one."""
    if issue.code == "total-mismatch":
        return f"“{issue.label}”应等于其分项之和{issue.expected}，报告中为{issue.found}。（{issue.rule_title}）"
    return issue.message


# --------------------------------------------------------------------------- which format


def _kind(data: bytes, filename: str, reading: _Reading) -> str | None:
    """The reader for the file, by its suffix and then its content; None (with the problem) if there is none."""
    name, suffix = PurePath(filename).name, PurePath(filename).suffix.lower()
    if not data.strip():
        reading.problems.append(f"文件“{name}”是空的，没有内容可读。{ACCEPTED}。")
        return None
    sniffed = _sniff(data)
    expected = {".txt": "txt", ".text": "txt", ".html": "html", ".htm": "html", ".shtml": "html",
                ".docx": "docx", ".xlsx": "xlsx", ".json": "json"}.get(suffix)
    if sniffed == "pdf" or suffix in {".pdf", ".ofd"}:
        kind = "PDF" if sniffed == "pdf" or suffix == ".pdf" else "OFD版式文件"
        reading.problems.append(f"文件“{name}”是{kind}，无法可靠读取其中的表格。请将网页或Word版另存为.docx/.html，"
                                f"或复制全文保存为.txt后导入。{ACCEPTED}。")
        return None
    if expected is not None and (sniffed is None or sniffed == expected or expected == "json"):
        return expected
    if sniffed in {"html", "docx", "xlsx"} and (expected is not None or suffix in _OLD_OFFICE or not suffix):
        reading.notes.append(f"文件“{name}”的内容实际是{_DESCRIPTIONS[sniffed]}，已按{_DESCRIPTIONS[sniffed]}读取。")
        return sniffed
    reading.problems.append(_unreadable(name, suffix, expected, sniffed))
    return None


_DESCRIPTIONS = {"html": "网页", "docx": "Word文档（.docx）", "xlsx": "Excel工作簿（.xlsx）", "ole": "旧版Office文件",
                 "zip": "压缩包", "pdf": "PDF", "image": "图片"}


def _sniff(data: bytes) -> str | None:
    """What the bytes are, where that is certain from their first bytes; None for text or unknown."""
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(_IMAGE_MAGIC) or data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"
    if data.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return "zip"
        return "docx" if "word/document.xml" in names else "xlsx" if "xl/workbook.xml" in names else "zip"
    head = data[:1024].lower().lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<table" in head or b"<body" in head:
        return "html"
    return None


def _unreadable(name: str, suffix: str, expected: str | None, sniffed: str | None) -> str:
    if expected in {"docx", "xlsx"} and sniffed == "ole":
        kind, old = ("Word", ".doc") if expected == "docx" else ("Excel", ".xls")
        return (f"文件“{name}”实际是旧版{kind}格式（{old}），只是扩展名为{suffix}。"
                f"请用{kind}或WPS打开后另存为{suffix}再导入。")
    if suffix in _IMAGE or sniffed == "image":
        return (f"文件“{name}”是图片，无法读取其中的数字。请找到报告的网页或Word版，另存为.html/.docx后导入。"
                f"{ACCEPTED}。")
    if expected in {"docx", "xlsx"}:
        label = "Word文档（.docx）" if expected == "docx" else "Excel工作簿（.xlsx）"
        return f"文件“{name}”无法作为{label}打开，文件可能已损坏或未完整下载。请重新下载或重新保存后再导入。"
    if expected is not None:
        content = _DESCRIPTIONS.get(sniffed or "", "其他格式")
        return f"文件“{name}”扩展名为{suffix}，内容却是{content}，无法读取。{ACCEPTED}。"
    if suffix in _OLD_EXCEL:
        # a spreadsheet is read only as nianbao's own summary workbook; telling the clerk to open it in Word misleads
        return (f"不能直接读取{suffix}文件“{name}”。表格文件只能导入nianbao导出的上年汇总表（.xlsx）：如是该汇总表，"
                f"请用Excel或WPS打开后另存为.xlsx；否则请导入报告的网页（.html）或Word版（.docx）。")
    if suffix in _OLD_WORD:
        return (f"不能直接读取{suffix}文件“{name}”。请用Word或WPS打开后另存为.docx（或将网页另存为.html）"
                f"再导入。{ACCEPTED}。")
    return f"无法识别文件“{name}”的格式{'（' + suffix + '）' if suffix else '（没有扩展名）'}。{ACCEPTED}。"


# --------------------------------------------------------------------------- free text: txt, html, docx


def _read_rows(make_rows: Callable[[bytes], Rows]) -> Callable[[bytes, FormSpec, _Reading], None]:
    def read(data: bytes, form: FormSpec, reading: _Reading) -> None:
        rows = make_rows(data)
        if rows.problem is not None:
            reading.problems.append(rows.problem)
            return
        reading.notes.extend(rows.notes)
        _read_document(rows.rows, form, reading)

    return read


def _read_document(rows: list[Row], form: FormSpec, reading: _Reading) -> None:
    sections = _sections(rows)
    _title(rows[: min([len(rows), *(start for start, _ in sections.values())])], reading)
    if not any(n in sections for n in HEADINGS):
        reading.problems.append("没有找到年度报告的三张统计表（" + "；".join(HEADINGS.values()) +
                                "），这可能不是政府信息公开工作年度报告，或报告正文没有保存下来。")
        return
    for number, heading in HEADINGS.items():
        if number not in sections:
            reading.problems.append(f"没有找到“{heading}”部分（标题应以“{number}、”开头）。")
    parts = {n: rows[start + 1:end] for n, (start, end) in sections.items()}
    # each table by its own layout: a report may bring table 二 up to 2021 and not table 三, or the reverse, and
    # reading a 2021 table 三 by the 2019 rows shifts its last rows onto the wrong ones
    markers = _markers_2019(parts.get("二", []) + parts.get("三", []))
    single_other = _single_other_row(parts.get("三", []))
    if markers or single_other:
        reading.layout = "2019"
        seen = "”“".join([*markers, *(["（六）其他处理只有一行"] if single_other else [])])
        reading.notes.append(f"本报告使用2019年格式（国办公开办函〔2019〕60号，见“{seen}”）：表三、表四按2021年格式对应读取"
                             + ("；表二统计口径不同（如“本年新制作数量”“上一年项目数量”），无法对应，未导入。"
                                if markers else "。"))
    if "二" in parts and not markers:
        _table_two(parts["二"], form, reading)
    if "三" in parts:
        _table_three(parts["三"], form, reading, "2019" if single_other else "2021")
    if "四" in parts:
        _table_four(parts["四"], form, reading)


def _compact(text: str) -> str:
    """Text as compared: NFKC (full-width digits and brackets to ASCII), no whitespace."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def _sections(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """Section number -> (heading row, end row) of 二…四; ended by the next statutory heading."""
    candidates: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if (number := _heading(row)) is not None:
            candidates.setdefault(number, []).append(index)
    starts = sorted(i for found in candidates.values() for i in found)
    sections: dict[str, tuple[int, int]] = {}
    for number in HEADINGS:
        later = [i for n in _LATER[number] for i in candidates.get(n, [])]
        spans = [(start, min([i for i in later if i > start] or [len(rows)])) for start in candidates.get(number, [])]
        if spans:
            # where section 一 re-uses a heading's words, the real heading is the one followed by the table
            sections[number] = max(spans, key=lambda span: _numeric_rows(rows, span[0], _next(starts, span[0])))
    return sections


def _next(starts: list[int], start: int) -> int:
    return next((i for i in starts if i > start), 10**9)


def _numeric_rows(rows: list[Row], start: int, end: int) -> int:
    return sum(1 for row in rows[start + 1:end] if _split(row)[1])


def _heading(row: Row) -> str | None:
    cells = [c for c in row if c]
    text = _compact("".join(cells))
    match = _HEADING.match(text)
    if match is None or len(cells) > 2 or len(text) > 40:
        return None
    number = match.group(1)
    words = _SECTION_WORDS[number]
    return number if all(any(w in text for w in group) for group in words) else None


def _title(rows: list[Row], reading: _Reading) -> None:
    for row in rows:
        text = _compact("".join(row))
        if len(text) <= 80 and _TITLE.match(text):
            _title_text(text, reading)
            return
    reading.notes.append("没有找到报告标题（如“××人民政府2021年政府信息公开工作年度报告”），报告年度和发布机关未知。")


def _title_text(text: str, reading: _Reading) -> None:
    """Title, year and publishing body from a title line; the year alone if the line is not a report title."""
    reading.title = text
    if match := _TITLE.match(text):
        reading.year = int(match.group("year"))
        reading.body = (match.group("before") or match.group("after")).removesuffix("关于")
    elif year := re.search(r"((?:19|20)\d{2})年", text):
        reading.year = int(year.group(1))


def _markers_2019(rows: list[Row]) -> list[str]:
    """The words of the 2019 table 二 found in these rows."""
    text = _compact("".join("".join(row) for row in rows))
    return [m for m in _MARKERS_2019 if m in text]


def _single_other_row(rows: list[Row]) -> bool:
    """Whether table 三 has the 2019 layout's one (六)其他处理 row, figures beside the group's own name."""
    return any(re.search(r"其他处理$", _split(row)[0]) and _split(row)[1] for row in rows)


def _split(row: Row) -> tuple[str, list[str]]:
    """A row's label (its leading text cells, compacted) and its values (every non-empty cell after them)."""
    label: list[str] = []
    values: list[str] = []
    for cell in (c.strip() for c in row):
        if not cell:
            continue
        if values or _looks_numeric(cell):
            values.append(cell)
        else:
            label.append(cell)
    return _compact("".join(label)), values


def _number_text(cell: str) -> str:
    """A cell's text as a number is read: compacted, the minus sign U+2212 (which NFKC keeps) as "-"."""
    return _compact(cell).replace("\u2212", "-")


def _looks_numeric(cell: str) -> bool:
    text = _number_text(cell)
    return text in _DASHES or bool(_PLAIN.match(text) or _THOUSANDS.match(text))


# --------------------------------------------------------------------------- the three tables


def _table_two(rows: list[Row], form: FormSpec, reading: _Reading) -> None:
    by_row: dict[str, list[CellSpec]] = {}
    for cell in (c for c in form.cells if c.table == "二、"):
        by_row.setdefault(cell.row, []).append(cell)
    found: set[str] = set()
    for label, values in (_split(row) for row in rows):
        name = _ROW_ALIASES.get(re.sub(r"\(.*?\)", "", label), re.sub(r"\(.*?\)", "", label))
        if not values or name not in by_row or name in found:
            continue
        found.add(name)
        if name != label:
            reading.notes.append(f"表二的行名“{label}”按“{name}”读取。")
        line = _Line(name, name, tuple(by_row[name]), tuple(c.col.split("/")[-1] for c in by_row[name]))
        _read_line(f"表二“{name}”一行", line, values, reading)
    for name in by_row:
        if name not in found:
            reading.problems.append(f"表二没有找到“{name}”一行的数字。")


def _lines_three(form: FormSpec, layout: str) -> list[_Line]:
    """The numeric rows of table 三 in the form's order; the 2019 layout has one (六)其他处理 row instead of three."""
    by_row: dict[int, list[CellSpec]] = {}
    for cell in (c for c in form.cells if c.table == "三、"):
        by_row.setdefault(cell.row_number, []).append(cell)
    lines = []
    for number in sorted(by_row):
        cells = tuple(sorted(by_row[number], key=lambda c: (len(c.column_letter), c.column_letter)))
        key, levels = cells[0].key, [_bare(level) for level in cells[0].row.split("/")]
        if layout == "2019" and key.startswith(_LEGACY_OTHER):
            if not key.startswith(_LEGACY_TARGET):
                continue
            levels = levels[:-1]
        name = "".join(levels[-2:]) if len(levels) > 2 else levels[-1]
        core = _NUMBERING.sub("", _QUOTES.sub("", _compact(levels[-1])))
        lines.append(_Line(name, core, cells, tuple(c.col.split("/")[-1] for c in cells)))
    return lines


def _bare(label: str) -> str:
    """A row label without its trailing remark: "（二）部分公开（区分处理的，…）" -> "（二）部分公开"."""
    return re.sub(r"（[^）]*）$", "", label) or label


def _identify(label: str, lines: list[_Line]) -> int | None:
    """The line a label names: the one whose core ends it (its remark in brackets aside), else the longest core it
    contains that is no part of another line's name.

    A row is named last in its label ("（六）其他处理1.申请人…"), so the end decides. Containment alone took a
    "1.申请人…不补正，行政机关…" written with a comma for "3.其他", whose core hides in the group's "其他处理".
    """
    text = _REMARK.sub("", _QUOTES.sub("", label))
    ending = [(len(line.core), i) for i, line in enumerate(lines) if line.core and text.endswith(line.core)]
    if ending:
        return max(ending)[1]
    names = [_compact(line.name) for line in lines]
    contained = [(len(line.core), i) for i, line in enumerate(lines) if line.core and line.core in text
                 and not any(line.core in name for j, name in enumerate(names) if j != i)]
    return max(contained)[1] if contained else None


def _table_three(rows: list[Row], form: FormSpec, reading: _Reading, layout: str) -> None:
    lines = _lines_three(form, layout)
    start = next((i for i, row in enumerate(rows) if any(w in _compact("".join(row)) for w in _TABLE_START)), 0)
    data = [(label, values) for label, values in (_split(row) for row in rows[start:]) if values]
    position = 0
    for label, values in data:
        if position >= len(lines):
            reading.notes.append(f"表三之后还有数字未读取：{label} {' '.join(values)}".strip())
            break
        found = _identify(label, lines)
        if found is not None and found < position:
            reading.problems.append(f"表三“{lines[found].name}”一行重复出现或位置不对（{label}）。")
            continue
        if found is not None and found > position:
            skipped = "”“".join(line.name for line in lines[position:found])
            reading.problems.append(f"表三没有找到“{skipped}”一行的数字。")
            position = found
        _read_line(f"表三“{lines[position].name}”一行", lines[position], values, reading)
        position += 1
    if position < len(lines):
        reading.problems.append(f"表三只读到{position}行数字，应有{len(lines)}行：没有找到“{lines[position].name}”"
                                f"及以下{len(lines) - position}行。")
    if layout == "2019" and any(k.startswith(_LEGACY_TARGET) for k in reading.figures):
        _legacy_other(form, reading)


def _legacy_other(form: FormSpec, reading: _Reading) -> None:
    split_rows = [c for c in form.cells if c.key.startswith(_LEGACY_OTHER) and not c.key.startswith(_LEGACY_TARGET)]
    for cell in split_rows:
        reading.figures[cell.key] = Decimal(0)
    names = "”“".join(dict.fromkeys(c.row.split("/")[-1] for c in split_rows))
    reading.notes.append(f"表三“（六）其他处理”（2019年格式只有一行）计入2021年格式的“3.其他”；“{names}”按0列示。")


def _table_four(rows: list[Row], form: FormSpec, reading: _Reading) -> None:
    cells = tuple(c for c in form.cells if c.table == "四、")
    columns = tuple(f"{c.row.split('/')[-1]}·{c.col.split('/')[-1]}" for c in cells)
    values = [v for _, row_values in (_split(row) for row in rows) for v in row_values]
    _read_line("表四的数字行", _Line("表四", "", cells, columns), values, reading)


def _read_line(where: str, line: _Line, values: list[str], reading: _Reading) -> None:
    """The values of one row onto its cells; a single merged 0 fills the row, run-together digits are not split."""
    count = len(line.cells)
    single = _compact(values[0]) if len(values) == 1 else ""
    if len(values) == count:
        for cell, column, text in zip(line.cells, line.columns, values, strict=True):
            if (value := _value(text, cell, f"{where}“{column}”列", reading)) is not None:
                reading.figures[cell.key] = value
    elif count > 1 and (single == "0" or single in _DASHES):
        reading.notes.append(f"{where}只有一个“{values[0]}”（合并单元格），按{count}项均为0读取。")
        reading.figures.update((cell.key, Decimal(0)) for cell in line.cells)
    elif count > 1 and re.fullmatch(rf"\d{{{count},}}", single):
        reading.problems.append(f"{where}的数字连在一起（“{values[0]}”），无法拆分成{count}个数字。"
                                "请对照原表，在数字之间加上制表符或空格后再导入。")
    else:
        reading.problems.append(f"{where}应有{count}个数字，实际读到{len(values)}个：{' '.join(values)}")


def _value(text: str, cell: CellSpec, where: str, reading: _Reading) -> Decimal | None:
    """The exact number a cell's text states; a dash is 0 (noted); anything else not a number is a problem."""
    compact = _number_text(text)
    if compact in _DASHES:
        reading.notes.append(f"{where}为“{text}”，按0读取。")
        return Decimal(0)
    if _THOUSANDS.match(compact):
        compact = compact.replace(",", "")
    if not _PLAIN.match(compact):
        reading.problems.append(f"{where}应为数字，实际为“{text}”。")
        return None
    return _typed(Decimal(compact), text, cell, where, reading)


def _typed(value: Decimal, text: str, cell: CellSpec, where: str, reading: _Reading) -> Decimal | None:
    if value < 0:
        reading.problems.append(f"{where}不能为负数，实际为“{text}”。")
        return None
    if cell.type is CellType.INT:
        if value != value.to_integral_value():
            reading.problems.append(f"{where}应为整数（件数），实际为“{text}”。")
            return None
        if "." in text or "e" in text.lower():
            reading.notes.append(f"{where}为“{text}”，按{int(value)}读取。")
        return Decimal(int(value))
    places = max(0, -int(value.as_tuple().exponent))
    if places > cell.places:
        reading.notes.append(f"{where}为{text}，有{places}位小数（本县惯例保留{cell.places}位），按原值导入。")
    return value


# --------------------------------------------------------------------------- nianbao's own files: xlsx, json


def _read_xlsx(data: bytes, form: FormSpec, reading: _Reading) -> None:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except Exception as exc:  # noqa: BLE001  openpyxl raises many kinds on a damaged file
        reading.problems.append(f"工作簿无法打开（{type(exc).__name__}），文件可能已损坏或未完整下载。")
        return
    cells = statutory_cells(form)
    for sheet_id in dict.fromkeys(c.sheet for c in cells):
        name = form.sheet_by_id[sheet_id].name
        if name not in book.sheetnames:
            reading.problems.append(f"工作簿中没有工作表“{name}”：只能导入nianbao导出的上年汇总表（.xlsx）。")
            continue
        sheet = book[name]
        title = sheet[form.sheet_by_id[sheet_id].unit_line.split(":")[0]].value
        if not reading.title and isinstance(title, str):
            _title_text(_compact(title), reading)
        for cell in (c for c in cells if c.sheet == sheet_id):
            _workbook_value(sheet[cell.address].value, cell, f"工作表“{name}”{cell.address}（{cell.label}）", reading)


def _workbook_value(raw: object, cell: CellSpec, where: str, reading: _Reading) -> None:
    value: Decimal | None
    if isinstance(raw, bool) or raw is None:
        reading.problems.append(f"{where}为空，应为数字（如为公式，请在Excel中打开并保存后再导入）。" if raw is None
                                else f"{where}应为数字，实际为“{raw}”。")
        return
    if isinstance(raw, int | float | Decimal):
        text = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
        value = _typed(Decimal(text), text, cell, where, reading)
    elif isinstance(raw, str):
        value = _value(raw, cell, where, reading)
    else:
        reading.problems.append(f"{where}应为数字，实际为“{raw}”。")
        return
    if value is not None:
        reading.figures[cell.key] = value


def _read_json(data: bytes, form: FormSpec, reading: _Reading) -> None:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        reading.problems.append("JSON文件不是UTF-8编码，无法读取。只能导入nianbao导出的数据文件（.json）。")
        return
    except json.JSONDecodeError as exc:
        reading.problems.append(f"JSON文件格式错误（第{exc.lineno}行第{exc.colno}列：{exc.msg}），无法读取。")
        return
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, dict):
        reading.problems.append("JSON文件中没有“cells”（各单元格的数字），不是nianbao导出的数据文件。")
        return
    if isinstance(year := document.get("year"), int) and not isinstance(year, bool):
        reading.year = year
    absent = [c.key for c in statutory_cells(form) if c.key not in cells]
    if absent:
        more = "等" if len(absent) > 5 else ""
        reading.problems.append(f"JSON文件缺少{len(absent)}项数字：{'、'.join(absent[:5])}{more}。")
    for cell in (c for c in statutory_cells(form) if c.key in cells):
        _json_value(cells[cell.key], cell, reading)


def _json_value(raw: object, cell: CellSpec, reading: _Reading) -> None:
    where = f"“{cell.label}”（{cell.key}）"
    if isinstance(raw, str):
        value = _value(raw, cell, where, reading)
    elif isinstance(raw, int) and not isinstance(raw, bool) or isinstance(raw, float) and math.isfinite(raw):
        value = _typed(Decimal(str(raw)), str(raw), cell, where, reading)
    else:
        reading.problems.append(f"{where}应为数字，实际为“{raw}”。")
        return
    if value is not None:
        reading.figures[cell.key] = value


def _readers() -> dict[str, Callable[[bytes, FormSpec, _Reading], None]]:
    return {"txt": _read_rows(text_rows), "html": _read_rows(html_rows), "docx": _read_rows(docx_rows),
            "xlsx": _read_xlsx, "json": _read_json}


_READERS = _readers()
