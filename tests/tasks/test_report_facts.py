"""Sentences made from the figures, changes from last year, and the prose checked against the tables (N1)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.form_spec import FormSpec
from tasks.check import check_values
from tasks.report_document import Paragraph, ParagraphStyle
from tasks.report_facts import check_narrative, comparison, fact, fill_placeholders, section_measures
from tasks.report_measures import measures
from tests.factories import valid_figures
from tests.flows.test_golden_demo import seed_figures


@pytest.fixture
def seed(form: FormSpec) -> dict[str, Decimal]:
    """The 息县 2021 county figures as printed, and the 信息处理费 figures (none charged)."""
    cells = {key: Decimal(value) for key, value in seed_figures(form).items()}
    return cells | {"fee.notices": Decimal(0), "fee.billed_yuan": Decimal(0), "fee.collected_yuan": Decimal(0)}


def test_sentences_of_the_seed_report(form: FormSpec, seed: dict[str, Decimal]) -> None:
    values = measures(form, seed)
    assert fact("active", values) == ("本年度制发行政规范性文件12件，废止0件，现行有效19件；作出行政许可决定17726件、"
                                      "行政处罚决定2068件、行政强制决定63件；行政事业性收费309.0263万元。")
    assert fact("applications", values) == ("本年度新收政府信息公开申请3件，上年结转2件，共计5件；办结5件，"
                                            "其中予以公开5件；结转下年度继续办理0件。")
    assert fact("reviews", values) == "本年度因政府信息公开工作被申请行政复议0件，被提起行政诉讼0件。"
    assert fact("fees", values) == "本年度未发出信息处理费收费通知，未收取信息处理费。"


def test_sentences_name_every_outcome_and_case_there_is(form: FormSpec) -> None:
    figures = valid_figures(form, apply__new__commercial=3, apply__carry_next__commercial=0,
                            apply__result__partial__commercial=1,
                            apply__result__deny__third_party__commercial=1,
                            apply__result__reject__duplicate__commercial=1,
                            review__corrected=1, review__pending=1, litigation__direct__upheld=2,
                            fee__notices=2, fee__billed_yuan="300.00", fee__collected_yuan="200.5")
    checked = check_values({k: float(v) for k, v in figures.items()}, form)
    assert checked.errors == []
    values = measures(form, checked.values)
    assert fact("applications", values) == (
        "本年度新收政府信息公开申请5件，上年结转0件，共计5件；办结5件，其中予以公开1件、"
        "部分公开2件、不予公开1件、不予处理1件；结转下年度继续办理0件。")
    assert fact("reviews", values) == (
        "本年度因政府信息公开工作被申请行政复议2件（结果维持0件、结果纠正1件、其他结果0件、尚未审结1件），"
        "被提起行政诉讼2件（未经复议直接起诉2件、复议后起诉0件，其中结果纠正0件、尚未审结0件）。")
    assert fact("fees", values) == ("本年度依据《政府信息公开信息处理费管理办法》发出信息处理费收费通知2件，"
                                    "收费金额300.00元，实际收取200.50元。")


def test_changes_from_last_year(form: FormSpec, seed: dict[str, Decimal]) -> None:
    last = dict(seed) | {"apply.new.total": Decimal(2), "apply.carried.total": Decimal(0),
                         "apply.result.total.total": Decimal(10)}
    values = measures(form, seed, last)
    assert values["new"].change_text() == "增加1件（增长50.0%）"
    assert values["carried"].change_text() == "增加2件（上年为0）"
    assert values["concluded"].change_text() == "减少5件（下降50.0%）"
    assert values["carry_next"].change_text() == "持平"
    assert (values["new"].percent_text(), values["carried"].percent_text()) == ("+50.0%", "—")
    assert comparison(section_measures(form, values, "t3")) == (
        "与上年相比，新收政府信息公开申请增加1件（增长50.0%），上年结转政府信息公开申请增加2件（上年为0），"
        "办结政府信息公开申请减少5件（下降50.0%），结转下年度继续办理的申请与上年持平。")
    unknown = measures(form, seed)
    assert unknown["new"].change_text() == "" and comparison(section_measures(form, unknown, "t3")) == ""


def test_money_changes_keep_their_places(form: FormSpec, seed: dict[str, Decimal]) -> None:
    values = measures(form, seed, dict(seed) | {"active.fees.amount_wan": Decimal("300.0263")})
    assert values["fees"].text == "309.0263"
    assert values["fees"].change_text() == "增加9万元（增长3.0%）"


def test_the_seed_reports_prose_against_its_tables(form: FormSpec, seed: dict[str, Decimal]) -> None:
    """FORMAT.md: the 息县 report says 办理3件 and 规范性文件2篇 where its tables say 5 and 12 (19 in force);
    收到3件 agrees with the 3 new ones."""
    assert form.report is not None
    prose = [Paragraph(text="截至目前，共收到依申请公开件3件，办理3件，群众满意率100%。"),
             Paragraph(text="截至目前，息县政府网站发布县级规范性文件2篇、普通政策文件3篇。"),
             Paragraph(text="本年度作出行政许可决定17,726件。"),
             Paragraph(text="本年度未收到行政复议申请，本年度未收取信息处理费。"),
             Paragraph(text="办结5件", style=ParagraphStyle.FACT)]
    findings = check_narrative(prose, measures(form, seed), form.report.narrative_checks)
    assert [f.message for f in findings] == [
        "文字部分所述办结的申请件数应与表三“（七）总计”一致：文字为“截至目前，共收到依申请公开件3件，办理3件，"
        "群众满意率100%。”，表中本年办结5件。",
        "文字部分所述行政规范性文件件数应与表二“本年制发件数”或“现行有效件数”一致：文字为“截至目前，息县政府网站"
        "发布县级规范性文件2篇、普通政策文件3篇。”，表中行政规范性文件（制发）12件、行政规范性文件（现行有效）19件。"]


def test_a_received_figure_may_count_the_carried_ones_too(form: FormSpec, seed: dict[str, Decimal]) -> None:
    assert form.report is not None
    checks = form.report.narrative_checks
    values = measures(form, seed)
    assert check_narrative([Paragraph(text="共收到申请5件。")], values, checks) == []  # 3 new + 2 carried
    assert len(check_narrative([Paragraph(text="共收到申请4件。")], values, checks)) == 1


def test_placeholders_are_filled_and_unknown_ones_kept() -> None:
    facts = {"依申请公开": "本年度新收申请3件。"}
    filled, findings = fill_placeholders([Paragraph(text="{{依申请公开}}群众满意。"),
                                          Paragraph(text="见{{ 同比 }}。")], facts)
    assert [p.text for p in filled] == ["本年度新收申请3件。群众满意。", "见{{ 同比 }}。"]
    assert [f.kind for f in findings] == ["unknown-placeholder"]
    assert "{{依申请公开}}" in findings[0].message
