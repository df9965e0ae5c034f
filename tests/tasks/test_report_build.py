"""A report as a Document: six sections in order, sentences that agree with the tables, what the prose owes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.form_spec import FormSpec
from tasks.check import check_values
from tasks.narrative import Narrative
from tasks.report_build import ReportInput, build_report
from tasks.report_document import Document, Figure, Paragraph, ParagraphStyle, Table, document_text
from tests.factories import valid_figures

HEADINGS = ["一、总体情况", "二、主动公开政府信息情况", "三、收到和处理政府信息公开申请情况",
            "四、政府信息公开行政复议、行政诉讼情况", "五、存在的主要问题及改进情况", "六、其他需要报告的事项"]


@pytest.fixture
def cells(form: FormSpec) -> dict[str, Decimal]:
    """A unit's accepted figures: 3 applications (2 natural persons, 1 company carried on), a fee, no 信息处理费."""
    return check_values({k: float(v) for k, v in valid_figures(form).items()}, form).values


def _report(form: FormSpec, cells: dict[str, Decimal], narrative: Narrative | None = None,
            **options: object) -> tuple[Document, list[str]]:
    document, findings = build_report(form, ReportInput(title="示范县人民政府2021年政府信息公开工作年度报告",
                                                        year=2021, cells=cells, narrative=narrative or {},
                                                        **options))  # type: ignore[arg-type]
    return document, [f.kind for f in findings]


def _paragraphs(document: Document, number: int) -> list[Paragraph]:
    return [b for b in document.sections[number].blocks if isinstance(b, Paragraph)]


def test_six_sections_in_order_tables_opened_by_their_sentences(form: FormSpec, cells: dict[str, Decimal]) -> None:
    document, _ = _report(form, cells, charts=False)
    assert [s.heading for s in document.sections] == HEADINGS
    for number in (1, 2, 3):
        blocks = document.sections[number].blocks
        assert isinstance(blocks[0], Paragraph) and blocks[0].style is ParagraphStyle.FACT
        assert [type(b) for b in blocks].count(Table) == 1
    assert document.sections[2].blocks[0].text.startswith("本年度新收政府信息公开申请3件")  # type: ignore[union-attr]
    assert document.preface[0].startswith("本报告根据《中华人民共和国政府信息公开条例》第五十条")
    assert "统计期限自2021年1月1日起至2021年12月31日止" in document.preface[0]


def test_unwritten_prose_is_a_marked_placeholder(form: FormSpec, cells: dict[str, Decimal]) -> None:
    document, kinds = _report(form, cells, charts=False)
    overview, problems, other = _paragraphs(document, 0), _paragraphs(document, 4), _paragraphs(document, 5)
    assert overview[0].style is ParagraphStyle.PLACEHOLDER and overview[0].text.startswith("【待填写】")
    assert problems[0].style is ParagraphStyle.PLACEHOLDER
    # section 六 is never empty: it states the 信息处理费 from the figures
    assert [(p.text, p.style) for p in other] == [
        ("本年度未发出信息处理费收费通知，未收取信息处理费。", ParagraphStyle.FACT)]
    assert kinds.count("placeholder") == 2 and "prompt" in kinds  # the county is a government: 第五十条


def test_section_six_of_just_none_says_the_fee(form: FormSpec, cells: dict[str, Decimal]) -> None:
    narrative = {"六": [Paragraph(text="无")]}
    document, _ = _report(form, cells, narrative, charts=False)
    assert [p.text for p in _paragraphs(document, 5)] == ["本年度未发出信息处理费收费通知，未收取信息处理费。"]
    written = {"六": [Paragraph(text="本年度未收取信息处理费。"), Paragraph(text="无其他需要报告的事项。")]}
    document, _ = _report(form, cells, written, charts=False)
    assert [p.text for p in _paragraphs(document, 5)] == ["本年度未收取信息处理费。", "无其他需要报告的事项。"]


def test_placeholders_in_the_prose_take_the_sentences(form: FormSpec, cells: dict[str, Decimal]) -> None:
    narrative = {"一": [Paragraph(text="（二）依申请公开情况", style=ParagraphStyle.SUBHEADING),
                       Paragraph(text="{{依申请公开}}群众满意率100%。")]}
    document, kinds = _report(form, cells, narrative, charts=False)
    assert _paragraphs(document, 0)[1].text.startswith("本年度新收政府信息公开申请3件，上年结转0件")
    assert "narrative-figure" not in kinds


def test_the_article_50_prompt_only_for_governments(form: FormSpec, cells: dict[str, Decimal]) -> None:
    said = {"一": [Paragraph(text="本年度将政府信息公开工作纳入绩效考核，开展社会评议，未发生责任追究情况。")]}
    for kind, narrative, prompted in [(None, {}, True), ("township", {}, True), ("department", {}, False),
                                      (None, said, False)]:
        document, kinds = _report(form, cells, narrative, charts=False, unit_kind=kind)
        assert ("prompt" in kinds) is prompted, kind
        assert any(p.text.startswith("【待补充】") for p in _paragraphs(document, 0)) is prompted, kind


def test_charts_where_there_is_something_to_show(form: FormSpec, cells: dict[str, Decimal]) -> None:
    document, _ = _report(form, cells)
    figures = [b for b in document.sections[2].blocks if isinstance(b, Figure)]
    assert [f.caption for f in figures] == ["图1　本年度政府信息公开申请办理结果",
                                            "图2　本年度新收政府信息公开申请的申请人类型"]
    assert all(f.png.startswith(b"\x89PNG") for f in figures)
    with_history, _ = _report(form, cells, history=[(2020, cells)])
    assert len([b for b in with_history.sections[2].blocks if isinstance(b, Figure)]) == 3  # and the trend
    nothing = {k: Decimal(0) for k in cells}
    empty, _ = _report(form, nothing)
    assert not any(isinstance(b, Figure) for s in empty.sections for b in s.blocks)


def test_comparison_with_last_year_follows_the_facts(form: FormSpec, cells: dict[str, Decimal]) -> None:
    last = dict(cells) | {"active.license.decisions": Decimal(100)}
    document, _ = _report(form, cells, charts=False, previous=last)
    second = document.sections[1].blocks[1]
    assert isinstance(second, Paragraph) and second.style is ParagraphStyle.FACT
    assert second.text.startswith("与上年相比，行政许可决定增加20件（增长20.0%）")


def test_plain_text_lists_every_table_row(form: FormSpec, cells: dict[str, Decimal]) -> None:
    document, _ = _report(form, cells, charts=False)
    text = document_text(document)
    assert "行政许可\t120" in text
    assert "（七）总计\t2\t0\t0\t0\t0\t0\t2" in text
