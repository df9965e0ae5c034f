"""The report's prose: the coordinator's text and Markdown files, the coordinator's sheet, a unit's 文字部分."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

from schemas.form_spec import FormSpec
from tasks.narrative import narrative_from_texts, parse_narrative
from tasks.narrative_sources import NarrativeFileError, find_narrative_file, read_narrative_file
from tasks.report_document import ParagraphStyle
from tasks.workbook_template import build_narrative_sheet
from tests.conftest import REFERENCE

HEADINGS = {"一": "一、总体情况", "二": "二、主动公开政府信息情况", "三": "三、收到和处理政府信息公开申请情况",
            "四": "四、政府信息公开行政复议、行政诉讼情况", "五": "五、存在的主要问题及改进情况",
            "六": "六、其他需要报告的事项"}
PROSE = {"一", "五", "六"}


def _texts(narrative: dict[str, list]) -> dict[str, list[tuple[str, ParagraphStyle]]]:  # type: ignore[type-arg]
    return {number: [(p.text, p.style) for p in paragraphs] for number, paragraphs in narrative.items()}


def test_bracketed_markers_each_line_a_paragraph() -> None:
    text = "[总体情况]\n第一段。\n\n（一）加强领导\n第二段。\n[其他需要报告的事项]\n无\n"
    assert _texts(parse_narrative(text, HEADINGS, PROSE)) == {
        "一": [("第一段。", ParagraphStyle.BODY), ("（一）加强领导", ParagraphStyle.SUBHEADING),
              ("第二段。", ParagraphStyle.BODY)],
        "六": [("无", ParagraphStyle.BODY)]}


def test_a_published_report_pasted_whole_gives_its_prose_and_skips_its_tables() -> None:
    """The real 息县 report as copied from the portal: its section 一 re-uses 一、二、三 for its own sub-items, and
    its tables sit under 二、三、四 -- only the six statutory headings start sections."""
    text = (REFERENCE / "xixian_2021_report.txt").read_text(encoding="utf-8")
    narrative = parse_narrative(text, HEADINGS, PROSE)
    assert set(narrative) == {"一", "五", "六"}
    overview = [p.text for p in narrative["一"]]
    assert overview[0].startswith("2021年，息县积极贯彻落实")
    assert "一、加强领导，形成有力的组织保障" in overview and "二、完善制度，建立规范的公开程序" in overview
    assert not any("17726" in line or "行政许可" == line for line in overview)
    assert [p.text for p in narrative["六"]] == ["无"]
    assert narrative["五"][0].text == "存在的问题："
    assert not any("信息内容" in p.text for p in narrative["五"])


def test_markdown_headings_paragraphs_lists_and_emphasis() -> None:
    text = ("# 一、总体情况\n\n本年度，我县**认真贯彻**《条例》，\n持续推进政务公开。\n\n## （一）主动公开\n\n"
            "- 公开信息4150条；\n- 解读政策12篇。\n\n# 五、存在的主要问题及改进情况\n\n问题一。\n")
    assert _texts(parse_narrative(text, HEADINGS, PROSE, markdown=True)) == {
        "一": [("本年度，我县认真贯彻《条例》，持续推进政务公开。", ParagraphStyle.BODY),
              ("（一）主动公开", ParagraphStyle.SUBHEADING), ("公开信息4150条；", ParagraphStyle.BODY),
              ("解读政策12篇。", ParagraphStyle.BODY)],
        "五": [("问题一。", ParagraphStyle.BODY)]}


def test_text_before_the_first_section_is_not_prose() -> None:
    assert parse_narrative("说明：以下为报告正文\n[总体情况]\n正文。", HEADINGS, PROSE)["一"][0].text == "正文。"


def test_a_narrative_sheets_texts_line_by_line(form: FormSpec) -> None:
    texts = {"narrative.overview": "（一）主动公开情况\n本年度主动公开政府信息120条。\n\n", "narrative.other": "  "}
    narrative = narrative_from_texts(texts, {t.key: t.section for t in form.texts})
    assert _texts(narrative) == {"一": [("（一）主动公开情况", ParagraphStyle.SUBHEADING),
                                       ("本年度主动公开政府信息120条。", ParagraphStyle.BODY)]}


def test_files_by_their_kind(form: FormSpec, tmp_path: Path) -> None:
    text = tmp_path / "narrative.txt"
    text.write_bytes("[总体情况]\n本年度工作情况。\n".encode("gb18030"))  # Notepad on a Chinese Windows
    assert read_narrative_file(text, form)["一"][0].text == "本年度工作情况。"
    markdown = tmp_path / "sections.md"
    markdown.write_text("# 总体情况\n\n第一段\n接着写。\n", encoding="utf-8")
    assert read_narrative_file(markdown, form)["一"][0].text == "第一段接着写。"


def test_the_coordinators_sheet_round_trip(form: FormSpec, tmp_path: Path) -> None:
    book = openpyxl.load_workbook(io.BytesIO(build_narrative_sheet(form, 2021)))
    sheet = book.active
    assert set(book.defined_names) == {t.key for t in form.texts}
    assert all(sheet[form.cell_by_key[k].address].value is None for k in ("fee.notices", "fee.billed_yuan"))
    sheet["B4"] = "（一）主动公开\r\n本年度公开信息100条。"
    sheet["B5"] = "问题一。"
    path = tmp_path / "narrative.xlsx"
    book.save(path)
    assert _texts(read_narrative_file(path, form)) == {
        "一": [("（一）主动公开", ParagraphStyle.SUBHEADING), ("本年度公开信息100条。", ParagraphStyle.BODY)],
        "五": [("问题一。", ParagraphStyle.BODY)]}


def test_a_broken_or_foreign_sheet_is_a_clear_error(form: FormSpec, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(NarrativeFileError, match="not a readable .xlsx"):
        read_narrative_file(broken, form)
    other = tmp_path / "other.xlsx"
    openpyxl.Workbook().save(other)
    with pytest.raises(NarrativeFileError, match="no 文字部分 sheet"):
        read_narrative_file(other, form)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\xd8" * 10)
    with pytest.raises(NarrativeFileError, match="neither UTF-8 nor GB18030"):
        read_narrative_file(binary, form)


def test_the_campaigns_own_file_is_found(tmp_path: Path) -> None:
    assert find_narrative_file(tmp_path) is None
    (tmp_path / "narrative.txt").write_text("[总体情况]\n", encoding="utf-8")
    (tmp_path / "narrative.md").write_text("# 总体情况\n", encoding="utf-8")
    assert find_narrative_file(tmp_path) == tmp_path / "narrative.md"  # Markdown first
