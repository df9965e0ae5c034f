"""Reading a published annual report into the form's 200 statutory figures (year zero).

The strongest checks are round trips: figures with a different number in nearly every cell go through nianbao's
own renderers (HTML, Word, summary workbook, JSON) and through the layout of the real 息县 2021 report, and must
come back cell for cell. The real report itself must read as the golden test's independent parser reads it. Then
the hazards of real reports (merged cells, dashes, separators, full-width digits, the 2019 layout), and every way
a file is refused, by its Chinese problem.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import docx
import openpyxl
import pytest

from schemas.form_spec import CellSpec, CellType, FormSpec
from tasks.check import recheck
from tasks.consolidate import CountyFigures, figures_json
from tasks.published_report import ParsedReport, parse_published_report, statutory_cells
from tasks.render_docx import render_docx
from tasks.render_html import render_html
from tasks.report_build import ReportInput, build_report
from tasks.report_workbook import summary_workbook
from tests.conftest import REFERENCE
from tests.flows.test_golden_demo import seed_figures

SEED = REFERENCE / "xixian_2021_report.txt"
PUBLISHED = Path(__file__).parents[1] / "data" / "published"
TITLE = "示范县人民政府2020年政府信息公开工作年度报告"
COLUMNS = ("natural_person", "commercial", "research", "public_interest", "legal_service", "other_org")
SECTIONS = ("二、主动公开政府信息情况", "三、收到和处理政府信息公开申请情况", "四、政府信息公开行政复议、行政诉讼情况",
            "五、存在的主要问题及改进情况")
_FIGURE = re.compile(r"^\d+(?:\.\d+)?$")


# --------------------------------------------------------------------------- builders


def rich_figures(form: FormSpec) -> dict[str, Decimal]:
    """Every cell of the form a different number where the rules allow (so a figure read into the wrong cell
    shows), every hard rule kept: the totals are sums, and each column's 结转下年度 closes its 勾稽关系."""
    figures = {c.key: Decimal(7 * i + 1) for i, c in enumerate(form.input_cells) if c.type is CellType.INT}
    figures |= {c.key: Decimal(f"{4321 + i}.0{i}87") for i, c in enumerate(form.input_cells)
                if c.type is not CellType.INT}
    for j, column in enumerate(COLUMNS):
        results = sum((v for k, v in figures.items() if k.startswith("apply.result.") and k.endswith(f".{column}")),
                      Decimal(0))
        figures[f"apply.carried.{column}"] = Decimal(j + 1)
        figures[f"apply.carry_next.{column}"] = Decimal(2 * j + 11)
        figures[f"apply.new.{column}"] = results + Decimal(2 * j + 11) - Decimal(j + 1)
    for key, rule in form.totals.items():
        figures[key] = sum((figures[part] for part in rule.right), Decimal(0))
    assert recheck(figures, form) == [], "the builder itself must keep every rule"
    return figures


def statutory(form: FormSpec, figures: dict[str, Decimal]) -> dict[str, Decimal]:
    return {c.key: figures[c.key] for c in statutory_cells(form)}


def report_document_bytes(form: FormSpec, figures: dict[str, Decimal], kind: str, *, title: str = TITLE,
                          year: int = 2020) -> bytes:
    """The report as nianbao publishes it: rendered HTML or Word, the summary workbook or the figures file."""
    if kind == "json":
        county = CountyFigures(year, 1, 1, figures, None)
        return json.dumps(figures_json(form, county), ensure_ascii=False, indent=1).encode("utf-8")
    if kind == "xlsx":
        return summary_workbook(form, f"{title}（汇总：1/1个单位）", figures, [])
    document, _ = build_report(form, ReportInput(title=title, year=year, cells=figures, narrative={}, charts=False))
    return render_html(document).encode("utf-8") if kind == "html" else render_docx(document)


def in_reading_order(form: FormSpec, table: str) -> list[CellSpec]:
    """A printed table's cells row by row, left to right (column B before AA)."""
    return sorted((c for c in form.cells if c.table == table),
                  key=lambda c: (c.row_number, len(c.column_letter), c.column_letter))


def seed_layout(form: FormSpec, figures: dict[str, Decimal]) -> str:
    """The real report's text, with its printed figures replaced by these, in reading order: the portal's own
    layout (tabs, a lost tab, the numerals of section 一) carrying any figures."""
    lines = SEED.read_text(encoding="utf-8").splitlines()
    queue: list[Decimal] = []
    out = []
    for line in lines:
        if line.strip() in SECTIONS:
            number = SECTIONS.index(line.strip())
            queue = [figures[c.key] for c in in_reading_order(form, "二三四"[number] + "、")] if number < 3 else []
        fields = line.split("\t")
        if queue and any(_FIGURE.match(f.strip()) for f in fields):
            fields = [str(queue.pop(0)) if _FIGURE.match(f.strip()) else f for f in fields]
        out.append("\t".join(fields))
    assert not queue
    return "\n".join(out) + "\n"


def with_row(text: str, label: str, figures: list[str] | None) -> str:
    """The text with the one row of figures labelled label given these figures instead (None: the row removed)."""
    lines = text.split("\n")
    [index] = [i for i, line in enumerate(lines)
               if label in line and any(_FIGURE.match(f.strip()) for f in line.split("\t"))]
    if figures is None:
        del lines[index]
        return "\n".join(lines)
    fields = lines[index].split("\t")
    first = next(i for i, f in enumerate(fields) if _FIGURE.match(f.strip()))
    lines[index] = "\t".join([*fields[:first], *figures])
    return "\n".join(lines)


def word_document(text: str, merged_zero: str | None = None) -> bytes:
    """A Word report as clerks make them: paragraphs, and each run of tab-separated lines a table; the row whose
    label is merged_zero has one "0" in a cell merged across all its figures (柞水县凤凰镇 2021)."""
    document = docx.Document()
    block: list[list[str]] = []

    def table() -> None:
        if not block:
            return
        width = max(len(row) for row in block)
        grid = document.add_table(rows=len(block), cols=width)
        for i, row in enumerate(block):
            for j, value in enumerate(row):
                grid.cell(i, j).text = value
            if merged_zero is not None and merged_zero in "".join(row):
                first = next(j for j, value in enumerate(row) if _FIGURE.match(value.strip()))
                for j in range(first, width):
                    grid.cell(i, j).text = ""
                grid.cell(i, first).merge(grid.cell(i, width - 1)).text = "0"
        block.clear()

    for line in text.splitlines():
        if "\t" in line:
            block.append(line.split("\t"))
        else:
            table()
            document.add_paragraph(line)
    table()
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def parse(form: FormSpec, data: bytes | str, name: str = "报告.txt") -> ParsedReport:
    return parse_published_report(data.encode("utf-8") if isinstance(data, str) else data, name, form)


@pytest.fixture(scope="module")
def rich(form: FormSpec) -> dict[str, Decimal]:
    return rich_figures(form)


@pytest.fixture(scope="module")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed(form: FormSpec) -> dict[str, Decimal]:
    """The seed's figures as the golden test's own parser reads them."""
    return {key: Decimal(value) for key, value in seed_figures(form).items()}


# --------------------------------------------------------------------------- the real report, round trips


def test_the_real_published_report_reads_as_printed(form: FormSpec, seed_text: str,
                                                    seed: dict[str, Decimal]) -> None:
    """Its section 一 has "二、完善制度…" and "三、…落实情况", and one row lost its leading tab: neither misleads."""
    parsed = parse(form, seed_text, "息县2021年报告.txt")

    assert parsed.figures == seed and len(parsed.figures) == 200
    assert (parsed.problems, parsed.missing, parsed.notes) == ([], [], [])
    assert (parsed.title, parsed.year, parsed.body, parsed.layout) == (
        "息县人民政府2021年政府信息公开工作年度报告", 2021, "息县人民政府", "2021")
    assert parsed.complete and parsed.issues == []


@pytest.mark.parametrize("kind", ["html", "docx", "xlsx", "json"])
def test_our_own_published_report_reads_back_every_figure(form: FormSpec, rich: dict[str, Decimal],
                                                          kind: str) -> None:
    parsed = parse(form, report_document_bytes(form, rich, kind), f"示范县2020年报告.{kind}")

    assert parsed.figures == statutory(form, rich)
    assert (parsed.problems, parsed.missing, parsed.notes) == ([], [], [])
    assert parsed.year == 2020
    if kind != "json":  # the figures file has its year but no title
        assert parsed.body == "示范县人民政府" and parsed.title.startswith(TITLE)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "utf-16"])
def test_portal_text_in_the_real_layout_carries_any_figures(form: FormSpec, rich: dict[str, Decimal],
                                                            encoding: str) -> None:
    """Text copied from the portal and saved by Notepad (UTF-8, with a BOM, ANSI on a Chinese Windows, Unicode)."""
    text = seed_layout(form, rich)
    parsed = parse(form, text.encode(encoding))

    assert parsed.figures == statutory(form, rich)
    assert parsed.problems == [] and parsed.year == 2021


def test_a_word_report_made_by_hand_reads_like_its_text(form: FormSpec, seed_text: str,
                                                        seed: dict[str, Decimal]) -> None:
    """Word tables of the real report, one row a single "0" merged across its seven cells."""
    parsed = parse(form, word_document(seed_text, merged_zero="2.重复申请"), "息县2021年报告.docx")

    assert parsed.figures == seed and parsed.problems == []
    assert parsed.notes == ["表三“（五）不予处理2.重复申请”一行只有一个“0”（合并单元格），按7项均为0读取。"]


def test_a_portal_page_in_gb2312_inside_a_layout_table(form: FormSpec, rich: dict[str, Decimal]) -> None:
    """Portal pages declare GB2312, wrap the article in a layout table, and put a breadcrumb before it."""
    html = report_document_bytes(form, rich, "html").decode("utf-8")
    html = html.replace('<meta charset="utf-8">',
                        '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">')
    html = html.replace("<article>", '<table width="100%"><tr><td>首页 &gt; 政府信息公开 &gt; 年度报告</td></tr>'
                                     "<tr><td>").replace("</article>", "</td></tr></table>")
    parsed = parse(form, html.encode("gb18030"), "年报.htm")

    assert parsed.figures == statutory(form, rich) and parsed.problems == []


@pytest.mark.parametrize(("name", "kind", "what"), [
    ("年报.txt", "html", "网页"),  # the page's source saved as text
    ("年报.doc", "html", "网页"),  # portals' "Word" downloads are often a web page named .doc
    ("年报.xlsx", "docx", "Word文档（.docx）"),
])
def test_a_file_is_read_as_what_it_is_not_as_it_is_named(form: FormSpec, rich: dict[str, Decimal], name: str,
                                                         kind: str, what: str) -> None:
    parsed = parse(form, report_document_bytes(form, rich, kind), name)

    assert parsed.figures == statutory(form, rich) and parsed.problems == []
    assert parsed.notes == [f"文件“{name}”的内容实际是{what}，已按{what}读取。"]


# --------------------------------------------------------------------------- hazards of real reports


def test_a_row_of_one_merged_zero_or_dash_is_a_row_of_zeros(form: FormSpec, seed_text: str,
                                                            seed: dict[str, Decimal]) -> None:
    text = with_row(seed_text, "7.属于行政执法案卷", ["0"])
    text = with_row(text, "规章", ["—"])
    parsed = parse(form, text)

    assert parsed.figures == seed and parsed.problems == []
    assert parsed.notes == ["表二“规章”一行只有一个“—”（合并单元格），按3项均为0读取。",
                            "表三“（三）不予公开7.属于行政执法案卷”一行只有一个“0”（合并单元格），按7项均为0读取。"]


def test_dashes_for_zero_are_read_as_zero_and_noted(form: FormSpec, seed_text: str,
                                                    seed: dict[str, Decimal]) -> None:
    text = with_row(seed_text, "一、本年新收", ["3", "—", "-", "/", "－", "无", "3"])
    text = with_row(text, "2.其他法律行政法规禁止公开", ["——", "0", "0", "0", "0", "0", "0"])
    parsed = parse(form, text)

    assert parsed.figures == seed and parsed.problems == []
    dashes = ("—", "-", "/", "－", "无", "——")
    assert [n.split("”列为")[1] for n in parsed.notes] == [f"“{d}”，按0读取。" for d in dashes]
    assert parsed.notes[0] == "表三“一、本年新收政府信息公开申请数量”一行“商业企业”列为“—”，按0读取。"


@pytest.mark.parametrize(("printed", "licences", "fee"), [
    ("17,726", "17726", "309.0263"),  # thousands separators
    ("17，726", "17726", "309.0263"),  # a full-width comma
    ("１７７２６", "17726", "309.0263"),  # full-width digits
    ("17726", "17726", "３０９．０２６３"),
])
def test_separators_and_full_width_digits(form: FormSpec, seed_text: str, printed: str, licences: str,
                                          fee: str) -> None:
    text = with_row(with_row(seed_text, "行政许可", [printed]), "行政事业性收费", [fee])
    parsed = parse(form, text)

    assert parsed.problems == [] and parsed.notes == []
    assert parsed.figures["active.license.decisions"] == Decimal(licences)
    assert parsed.figures["active.fees.amount_wan"] == Decimal("309.0263")


def test_full_width_figures_in_table_three(form: FormSpec, seed_text: str, seed: dict[str, Decimal]) -> None:
    text = with_row(seed_text, "一、本年新收", ["３", "０", "０", "０", "０", "０", "３"])
    assert parse(form, text).figures == seed


def test_a_fee_with_more_places_than_the_county_keeps_is_imported_exactly(form: FormSpec, seed_text: str) -> None:
    parsed = parse(form, with_row(seed_text, "行政事业性收费", ["24252.311082"]))

    assert parsed.figures["active.fees.amount_wan"] == Decimal("24252.311082") and parsed.problems == []
    assert parsed.notes == ["表二“行政事业性收费”一行“本年收费金额（单位：万元）”列为24252.311082，有6位小数"
                            "（本县惯例保留4位），按原值导入。"]


def test_a_whole_number_printed_with_decimals_is_read_and_noted(form: FormSpec, seed_text: str) -> None:
    parsed = parse(form, with_row(seed_text, "行政强制", ["63.00"]))

    assert parsed.figures["active.coercion.decisions"] == Decimal(63) and parsed.problems == []
    assert parsed.notes == ["表二“行政强制”一行“本年处理决定数量”列为“63.00”，按63读取。"]


def test_section_one_headed_with_the_statutory_numerals_and_words(form: FormSpec, seed_text: str,
                                                                  seed: dict[str, Decimal]) -> None:
    """Section 一's own "二、" and "三、" carrying the key words of sections 二 and 三, one with a figure."""
    text = seed_text.replace("二、完善制度，建立规范的公开程序", "二、主动公开政府信息\t1200\t条")
    text = text.replace("三、政府信息公开工作落实情况", "三、依申请公开：收到和处理申请情况")
    assert text != seed_text and "二、主动公开政府信息\t1200" in text
    parsed = parse(form, text)

    assert parsed.figures == seed and parsed.problems == []


def test_a_row_label_worded_a_little_differently_is_still_its_row(form: FormSpec, seed_text: str,
                                                                  seed: dict[str, Decimal]) -> None:
    """A comma for the 、 of (六)1: the row must not be taken for "3.其他", whose label hides in "其他处理"."""
    text = seed_text.replace("1.申请人无正当理由逾期不补正、行政机关", "1.申请人无正当理由逾期不补正，行政机关")
    text = with_row(text, "1.申请人无正当理由", ["1", "0", "0", "0", "0", "0", "1"])
    text = with_row(text, "一、本年新收", ["4", "0", "0", "0", "0", "0", "4"])
    text = with_row(text, "(七) 总计", ["4", "2", "0", "0", "0", "0", "6"])
    parsed = parse(form, text)

    assert parsed.problems == []
    assert parsed.figures["apply.result.other.no_correction.natural_person"] == 1
    assert parsed.figures["apply.result.other.other.natural_person"] == 0
    changed = {k for k, v in parsed.figures.items() if v != seed[k]}
    assert changed == {"apply.new.natural_person", "apply.new.total", "apply.result.total.natural_person",
                       "apply.result.total.total", "apply.result.other.no_correction.natural_person",
                       "apply.result.other.no_correction.total"}


def test_a_report_in_the_2019_layout(form: FormSpec) -> None:
    """国办公开办函〔2019〕60号: table 二 counts other things and is left out; table 三's single (六)其他处理 row
    goes to the 2021 "3.其他", its two new rows are 0."""
    parsed = parse(form, (PUBLISHED / "report_2020_layout2019.txt").read_bytes())

    assert parsed.layout == "2019" and parsed.year == 2020 and parsed.problems == []
    assert parsed.missing == [c.key for c in statutory_cells(form) if c.table == "二、"]
    assert len(parsed.figures) == 190
    other = {k.removeprefix("apply.result.other."): v for k, v in parsed.figures.items()
             if k.startswith("apply.result.other.") and v}
    assert other == {"other.natural_person": 1, "other.total": 1}
    assert {k for k in parsed.figures if k.startswith(("apply.result.other.no_correction.",
                                                       "apply.result.other.no_fee."))} == {
        f"apply.result.other.{row}.{column}" for row in ("no_correction", "no_fee") for column in (*COLUMNS, "total")}
    assert parsed.figures["apply.result.total.total"] == 6 and parsed.figures["litigation.direct.pending"] == 1
    assert parsed.notes[0].startswith("本报告使用2019年格式（国办公开办函〔2019〕60号，见“本年新制作数量”")
    assert "“（六）其他处理只有一行”" in parsed.notes[0] and "表二统计口径不同" in parsed.notes[0]
    assert parsed.notes[1].startswith("表三“（六）其他处理”（2019年格式只有一行）计入2021年格式的“3.其他”")
    assert not parsed.complete


def test_a_2019_table_two_with_a_2021_table_three(form: FormSpec, seed_text: str,
                                                 seed: dict[str, Decimal]) -> None:
    """Each table by its own layout: the three (六) rows of a 2021 table 三 are not read as 2019's one row."""
    report_2019 = (PUBLISHED / "report_2020_layout2019.txt").read_text(encoding="utf-8")
    heading = "三、收到和处理政府信息公开申请情况"
    mixed = report_2019.split(heading)[0] + heading + seed_text.split(heading)[1]
    parsed = parse(form, mixed)

    assert parsed.problems == [] and parsed.layout == "2019"
    assert parsed.figures == {k: v for k, v in seed.items() if not k.startswith("active.")}
    assert parsed.notes == ["本报告使用2019年格式（国办公开办函〔2019〕60号，见“本年新制作数量”“本年新公开数量”"
                            "“对外公开总数量”“第二十条第(九)项”“政府集中采购”）：表三、表四按2021年格式对应读取；"
                            "表二统计口径不同（如“本年新制作数量”“上一年项目数量”），无法对应，未导入。"]


def test_a_2021_table_two_with_a_2019_table_three(form: FormSpec, seed_text: str, seed: dict[str, Decimal]) -> None:
    """The three (六) rows of the seed as the 2019 layout's one."""
    lines = [line for line in seed_text.split("\n") if not re.search(r"(申请人.*逾期|\t3\.其他\t)", line)]
    assert len(lines) == len(seed_text.split("\n")) - 3
    text = "\n".join(lines).replace("\t(七) 总计", "(六) 其他处理\t\t0\t0\t0\t0\t0\t0\t0\n\t(七) 总计")
    parsed = parse(form, text)

    assert parsed.problems == [] and parsed.layout == "2019"
    assert parsed.figures == seed  # table 二 read; the two rows 2019 did not have are 0
    assert parsed.notes[0] == ("本报告使用2019年格式（国办公开办函〔2019〕60号，见“（六）其他处理只有一行”）："
                               "表三、表四按2021年格式对应读取。")
    assert parsed.notes[1].startswith("表三“（六）其他处理”（2019年格式只有一行）计入2021年格式的“3.其他”")


def test_the_2019_row_name_in_a_2021_table_is_read_and_noted(form: FormSpec, seed_text: str,
                                                             seed: dict[str, Decimal]) -> None:
    parsed = parse(form, seed_text.replace("行政规范性文件\t12", "规范性文件\t12"))

    assert parsed.figures == seed and parsed.layout == "2021"
    assert parsed.notes == ["表二的行名“规范性文件”按“行政规范性文件”读取。"]


# --------------------------------------------------------------------------- what stops an import


def _ole(name: str) -> tuple[str, bytes]:
    return name, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)


_ACCEPTED = ("可导入的格式：网页（.html/.htm）、从网页复制的文本（.txt）、Word文档（.docx），"
             "或nianbao导出的上年汇总表（.xlsx）和数据文件（.json）。")

REFUSED_FILES: list[tuple[str, Callable[[FormSpec], tuple[str, bytes]], str]] = [
    ("empty", lambda f: ("年报.txt", b" \r\n\t"), f"文件“年报.txt”是空的，没有内容可读。{_ACCEPTED}"),
    ("pdf", lambda f: ("年报.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"),
     f"文件“年报.pdf”是PDF，无法可靠读取其中的表格。请将网页或Word版另存为.docx/.html，或复制全文保存为.txt后导入。{_ACCEPTED}"),
    ("pdf-named-txt", lambda f: ("年报.txt", b"%PDF-1.4\n"), "文件“年报.txt”是PDF，无法可靠读取其中的表格。"),
    ("ofd", lambda f: ("年报.ofd", b"PK\x03\x04\x14\x00"), "文件“年报.ofd”是OFD版式文件，无法可靠读取其中的表格。"),
    ("png", lambda f: ("表三截图.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
     f"文件“表三截图.png”是图片，无法读取其中的数字。请找到报告的网页或Word版，另存为.html/.docx后导入。{_ACCEPTED}"),
    ("jpeg-named-txt", lambda f: ("年报.txt", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
     "文件“年报.txt”是图片，无法读取其中的数字。"),
    ("doc", lambda f: _ole("年报.doc"),
     f"不能直接读取.doc文件“年报.doc”。请用Word或WPS打开后另存为.docx（或将网页另存为.html）再导入。{_ACCEPTED}"),
    ("xls", lambda f: _ole("汇总.xls"),
     "不能直接读取.xls文件“汇总.xls”。表格文件只能导入nianbao导出的上年汇总表（.xlsx）：如是该汇总表，"
     "请用Excel或WPS打开后另存为.xlsx；否则请导入报告的网页（.html）或Word版（.docx）。"),
    ("doc-named-docx", lambda f: _ole("年报.docx"),
     "文件“年报.docx”实际是旧版Word格式（.doc），只是扩展名为.docx。请用Word或WPS打开后另存为.docx再导入。"),
    ("xls-named-xlsx", lambda f: _ole("汇总.xlsx"),
     "文件“汇总.xlsx”实际是旧版Excel格式（.xls），只是扩展名为.xlsx。请用Excel或WPS打开后另存为.xlsx再导入。"),
    ("corrupt-zip", lambda f: ("年报.docx", b"PK\x03\x04" + b"\x00" * 64),
     "文件“年报.docx”无法作为Word文档（.docx）打开，文件可能已损坏或未完整下载。请重新下载或重新保存后再导入。"),
    ("half-downloaded-docx", lambda f: ("年报.docx", (d := report_document_bytes(f, rich_figures(f), "docx"))[
        : len(d) // 2]), "文件“年报.docx”无法作为Word文档（.docx）打开，文件可能已损坏或未完整下载。"),
    ("half-downloaded-xlsx", lambda f: ("汇总.xlsx", (d := report_document_bytes(f, rich_figures(f), "xlsx"))[
        : len(d) // 2]), "文件“汇总.xlsx”无法作为Excel工作簿（.xlsx）打开，文件可能已损坏或未完整下载。"),
    ("binary-named-txt", lambda f: ("年报.txt", bytes(range(256)) * 4),
     "文件内容不是文本（既不是UTF-8也不是GB18030编码，或含有二进制内容），无法按.txt读取。"),
    ("no-suffix", lambda f: ("年报", "二、主动公开政府信息情况".encode()),
     f"无法识别文件“年报”的格式（没有扩展名）。{_ACCEPTED}"),
    ("text-without-tables", lambda f: ("年报.txt", "息县人民政府2020年政府信息公开工作年度报告\n一、总体情况\n"
                                                 "2020年，息县认真贯彻落实《条例》。\n".encode()),
     "没有找到年度报告的三张统计表（二、主动公开政府信息情况；三、收到和处理政府信息公开申请情况；"
     "四、政府信息公开行政复议、行政诉讼情况），这可能不是政府信息公开工作年度报告，或报告正文没有保存下来。"),
    ("page-without-tables",
     lambda f: ("栏目.html", "<html><body><ul><li>2020年年度报告</li></ul></body></html>".encode()),
     "网页中没有表格（<table>）：请确认保存的是年度报告正文页面（而不是栏目列表或附件下载页），或改为导入Word版（.docx）。"),
]


@pytest.mark.parametrize(("make", "problem"), [(make, problem) for _, make, problem in REFUSED_FILES],
                         ids=[case for case, _, _ in REFUSED_FILES])
def test_a_file_that_cannot_be_read_is_refused_with_its_reason(form: FormSpec,
                                                               make: Callable[[FormSpec], tuple[str, bytes]],
                                                               problem: str) -> None:
    name, data = make(form)
    parsed = parse(form, data, name)

    assert len(parsed.problems) == 1 and parsed.problems[0].startswith(problem), parsed.problems
    assert parsed.figures == {} and len(parsed.missing) == 200 and not parsed.complete


def _twice(text: str) -> str:
    return text.replace("四、结转下年度继续办理\t", "\t(一) 予以公开\t\t3\t2\t0\t0\t0\t0\t5\n四、结转下年度继续办理\t")


TABLE_FAULTS: list[tuple[str, Callable[[str], str], list[str], tuple[str, ...]]] = [
    # (case, how the seed text is spoiled, the problems, the keys not read: by their beginning)
    ("row-missing", lambda t: with_row(t, "2.重复申请", None),
     ["表三没有找到“（五）不予处理2.重复申请”一行的数字。"], ("apply.result.reject.duplicate.",)),
    ("last-row-missing", lambda t: with_row(t, "四、结转下年度继续办理", None),
     ["表三只读到24行数字，应有25行：没有找到“四、结转下年度继续办理”及以下1行。"], ("apply.carry_next.",)),
    ("row-twice", _twice, ["表三“（一）予以公开”一行重复出现或位置不对（(一)予以公开）。"], ()),
    ("run-together", lambda t: with_row(t, "一、本年新收", ["3000003"]),
     ["表三“一、本年新收政府信息公开申请数量”一行的数字连在一起（“3000003”），无法拆分成7个数字。"
      "请对照原表，在数字之间加上制表符或空格后再导入。"], ("apply.new.",)),
    ("run-together-table-four", lambda t: with_row(t, "0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0", ["0" * 15]),
     ["表四的数字行的数字连在一起（“000000000000000”），无法拆分成15个数字。请对照原表，在数字之间加上制表符或空格后再导入。"],
     ("review.", "litigation.")),
    ("a-figure-short", lambda t: with_row(t, "二、上年结转", ["0", "2", "0", "0", "0", "2"]),
     ["表三“二、上年结转政府信息公开申请数量”一行应有7个数字，实际读到6个：0 2 0 0 0 2"], ("apply.carried.",)),
    ("negative", lambda t: with_row(t, "行政处罚", ["-2068"]),
     ["表二“行政处罚”一行“本年处理决定数量”列不能为负数，实际为“-2068”。"], ("active.penalty.",)),
    ("negative-full-width", lambda t: with_row(t, "二、上年结转", ["0", "2", "－1", "0", "0", "0", "2"]),
     ["表三“二、上年结转政府信息公开申请数量”一行“科研机构”列不能为负数，实际为“－1”。"], ("apply.carried.research",)),
    ("negative-minus-sign", lambda t: with_row(t, "行政强制", ["\u221263"]),
     ["表二“行政强制”一行“本年处理决定数量”列不能为负数，实际为“\u221263”。"], ("active.coercion.",)),
    ("fraction", lambda t: with_row(t, "(七) 总计", ["3", "1.5", "0", "0", "0", "0", "5"]),
     ["表三“（七）总计”一行“商业企业”列应为整数（件数），实际为“1.5”。"], ("apply.result.total.commercial",)),
    ("text-after-a-figure", lambda t: with_row(t, "行政强制", ["63", "件"]),
     ["表二“行政强制”一行应有1个数字，实际读到2个：63 件"], ("active.coercion.",)),
]


@pytest.mark.parametrize(("spoil", "problems", "unread"), [(s, p, u) for _, s, p, u in TABLE_FAULTS],
                         ids=[case for case, _, _, _ in TABLE_FAULTS])
def test_a_table_that_cannot_be_read_as_printed_is_refused(form: FormSpec, seed_text: str, seed: dict[str, Decimal],
                                                           spoil: Callable[[str], str], problems: list[str],
                                                           unread: tuple[str, ...]) -> None:
    text = spoil(seed_text)
    assert text != seed_text
    parsed = parse(form, text)

    assert parsed.problems == problems
    assert set(parsed.missing) == {k for k in seed if k.startswith(unread)}
    # every other figure is still read where it belongs, and the rules are not run on half-read tables
    assert parsed.figures == {k: v for k, v in seed.items() if not k.startswith(unread)}
    assert parsed.issues == []


def test_a_broken_balance_is_refused_with_the_rule_and_both_sides(form: FormSpec, seed_text: str) -> None:
    """One application more carried on to next year than the 商业企业 column can account for (and its total)."""
    text = with_row(seed_text, "四、结转下年度继续办理", ["0", "1", "0", "0", "0", "0", "1"])
    parsed = parse(form, text)

    assert len(parsed.figures) == 200 and parsed.missing == []
    assert [p.split("：")[0] for p in parsed.problems] == ["勾稽关系（商业企业列）", "勾稽关系（总计列）"]
    assert "目前第一项加第二项之和为2，第三项加第四项之和为3，两者不相等" in parsed.problems[0]
    assert "目前第一项加第二项之和为5，第三项加第四项之和为6，两者不相等" in parsed.problems[1]
    assert {i.rule for i in parsed.issues} == {"R1.commercial", "R1.total"}


def test_a_row_total_that_is_not_the_sum_of_its_row_is_refused(form: FormSpec, seed_text: str) -> None:
    parsed = parse(form, with_row(seed_text, "(一) 予以公开", ["3", "2", "0", "0", "0", "0", "6"]))

    assert parsed.problems[0] == ("“（一）予以公开｜总计”应等于其分项之和5，报告中为6。"
                                  "（行合计：“（一）予以公开”的总计等于各类申请人之和）")
    assert parsed.problems[1].startswith("办理结果合计（总计列）：")
    assert "目前（七）总计为5，（一）至（六）各项之和为6，两者不相等" in parsed.problems[1]
    assert len(parsed.problems) == 2


# --------------------------------------------------------------------------- nianbao's own .xlsx and .json


def _workbook(form: FormSpec, rich: dict[str, Decimal], change: Callable[[openpyxl.Workbook], None]) -> bytes:
    book = openpyxl.load_workbook(io.BytesIO(report_document_bytes(form, rich, "xlsx")))
    change(book)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _set(address: str, value: object) -> Callable[[openpyxl.Workbook], None]:
    def change(book: openpyxl.Workbook) -> None:
        book["表三 依申请公开"][address] = value

    return change


_D6 = "工作表“表三 依申请公开”D6（一、本年新收政府信息公开申请数量｜自然人）"


@pytest.mark.parametrize(("change", "problem"), [
    (_set("D6", -1), f"{_D6}不能为负数，实际为“-1”。"),
    (_set("D6", 1.5), f"{_D6}应为整数（件数），实际为“1.5”。"),
    (_set("D6", "12件"), f"{_D6}应为数字，实际为“12件”。"),
    (_set("D6", "=E6+F6"), f"{_D6}为空，应为数字（如为公式，请在Excel中打开并保存后再导入）。"),
    (lambda book: book.remove(book["表四 复议诉讼"]),
     "工作簿中没有工作表“表四 复议诉讼”：只能导入nianbao导出的上年汇总表（.xlsx）。"),
], ids=["negative", "fraction", "text", "formula-without-value", "sheet-missing"])
def test_a_summary_workbook_with_a_bad_cell_is_refused(form: FormSpec, rich: dict[str, Decimal],
                                                       change: Callable[[openpyxl.Workbook], None],
                                                       problem: str) -> None:
    parsed = parse(form, _workbook(form, rich, change), "2020年汇总.xlsx")

    assert parsed.problems == [problem]
    assert {k: v for k, v in statutory(form, rich).items() if k not in parsed.missing} == parsed.figures
    assert parsed.missing


def _json(form: FormSpec, rich: dict[str, Decimal], change: Callable[[dict[str, object]], object]) -> bytes:
    """nianbao's figures file with its cells changed."""
    document = json.loads(report_document_bytes(form, rich, "json"))
    change(document["cells"])
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _cell(key: str, value: object) -> Callable[[dict[str, object]], object]:
    return lambda cells: cells.__setitem__(key, value)


_NEW = "“一、本年新收政府信息公开申请数量｜自然人”（apply.new.natural_person）"


@pytest.mark.parametrize(("change", "problem"), [
    (_cell("apply.new.natural_person", -1), f"{_NEW}不能为负数，实际为“-1”。"),
    (_cell("apply.new.natural_person", 2.5), f"{_NEW}应为整数（件数），实际为“2.5”。"),
    (_cell("apply.new.natural_person", True), f"{_NEW}应为数字，实际为“True”。"),
    (_cell("review.total", None), "“行政复议｜总计”（review.total）应为数字，实际为“None”。"),
    (lambda cells: cells.pop("apply.new.natural_person"), "JSON文件缺少1项数字：apply.new.natural_person。"),
], ids=["negative", "fraction", "boolean", "null", "key-missing"])
def test_a_figures_file_with_a_bad_figure_is_refused(form: FormSpec, rich: dict[str, Decimal],
                                                     change: Callable[[dict[str, object]], object],
                                                     problem: str) -> None:
    parsed = parse(form, _json(form, rich, change), "2020.json")

    assert parsed.problems == [problem] and len(parsed.missing) == 1
    assert parsed.figures == {k: v for k, v in statutory(form, rich).items() if k not in parsed.missing}


@pytest.mark.parametrize(("data", "problem"), [
    (b'{"year": 2020, "cells": ', "JSON文件格式错误（第1行第25列：Expecting value），无法读取。"),
    (b'[{"cells": {}}]', "JSON文件中没有“cells”（各单元格的数字），不是nianbao导出的数据文件。"),
    ('{"cells": {"说明": "汇总"}}'.encode("utf-16-le"),
     "JSON文件不是UTF-8编码，无法读取。只能导入nianbao导出的数据文件（.json）。"),
])
def test_a_file_that_is_not_nianbaos_figures_file_is_refused(form: FormSpec, data: bytes, problem: str) -> None:
    parsed = parse(form, data, "figures.json")

    assert parsed.problems == [problem] and parsed.figures == {}
