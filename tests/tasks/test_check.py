"""tasks.check.check_values on raw value dicts, as python-calamine gives them: every rule passing and failing."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from schemas.form_spec import CellType, FormSpec, Severity
from schemas.issues import ISSUE_KINDS, Category
from tasks.check import CheckContext, CheckResult, check_values, parse_cell
from tasks.workbook_read import RawValue
from tests.factories import valid_figures

_CHINESE = re.compile(r"[\u4e00-\u9fff]")
_ADDRESS = re.compile(r"^[A-Z]{1,3}[1-9][0-9]*$")
T2, T3, T4 = "表二 主动公开", "表三 依申请公开", "表四 复议诉讼"


def raw_values(form: FormSpec, overrides: dict[str, Any] | None = None, **figures: int | str) -> dict[str, RawValue]:
    """Input cells as calamine reads them (numbers are floats); totals absent, like formulas without cached values.
    `figures` change the valid figures (dots as '__'); `overrides` put raw values (also into totals) as they are."""
    raw: dict[str, RawValue] = {key: float(value) for key, value in valid_figures(form, **figures).items()}
    raw.update(overrides or {})
    return raw


def flat(result: CheckResult) -> set[tuple[str, str | None, str | None]]:
    return {(i.code, i.rule, i.cell) for i in result.issues}


# (id, changed figures, raw overrides, context, expected (code, rule, cell) of every issue, passes)
CASES: list[tuple[str, dict[str, int | str], dict[str, Any], CheckContext | None, set[tuple[str, str, str]], bool]] = [
    ("valid", {}, {}, None, set(), True),
    # R1: 一 + 二 = 三(七) + 四, per column and in the total column
    ("R1-natural_person-broken", {"apply__new__natural_person": 3}, {}, None,
     {("sum-mismatch", "R1.natural_person", "D31"), ("sum-mismatch", "R1.total", "J31")}, False),
    ("R1-commercial-broken", {"apply__carry_next__commercial": 0}, {}, None,
     {("sum-mismatch", "R1.commercial", "E31"), ("sum-mismatch", "R1.total", "J31")}, False),
    ("R1-other_org-broken", {"apply__carried__other_org": 4}, {}, None,
     {("sum-mismatch", "R1.other_org", "I31"), ("sum-mismatch", "R1.total", "J31")}, False),
    ("R1-carried-balanced", {"apply__carried__research": 2, "apply__result__deny__third_party__research": 1,
                             "apply__carry_next__research": 1}, {}, None, set(), True),
    ("R1-two-columns-cancel-in-total", {"apply__new__natural_person": 3, "apply__new__commercial": 0}, {}, None,
     {("sum-mismatch", "R1.natural_person", "D31"), ("sum-mismatch", "R1.commercial", "E31")}, False),
    # R2: a typed row total that disagrees with its parts
    ("R2-typed-total-wrong", {}, {"apply.new.total": 5.0}, None, {("total-mismatch", "R2.apply.new", "J6")}, False),
    ("R2-typed-total-right", {}, {"apply.new.total": 3.0}, None, set(), True),
    ("R2-typed-total-right-int", {}, {"apply.new.total": 3}, None, set(), True),
    ("R2-typed-total-text", {}, {"apply.carry_next.total": "合计"}, None,
     {("total-mismatch", "R2.apply.carry_next", "J30")}, False),
    ("R2-deny-row-typed-wrong", {}, {"apply.result.deny.admin_query.total": 1.0}, None,
     {("total-mismatch", "R2.apply.result.deny.admin_query", "J17")}, False),
    # R3: a typed （七）总计 that disagrees with the result rows
    ("R3-column-total-wrong", {}, {"apply.result.total.natural_person": 3.0}, None,
     {("total-mismatch", "R3.natural_person", "D29")}, False),
    ("R3-column-total-right", {}, {"apply.result.total.natural_person": 2.0}, None, set(), True),
    ("R3-grand-total-wrong", {}, {"apply.result.total.total": 5.0}, None,
     {("total-mismatch", "R2.apply.result.total", "J29")}, False),
    # R4: table 4 totals
    ("R4-review-total-wrong", {}, {"review.total": 1.0}, None, {("total-mismatch", "R4.review", "E6")}, False),
    ("R4-review-total-right", {"review__upheld": 1, "review__pending": 2}, {"review.total": 3.0}, None, set(), True),
    ("R4-direct-total-wrong", {"litigation__direct__corrected": 1}, {"litigation.direct.total": 2.0}, None,
     {("total-mismatch", "R4.litigation.direct", "J6")}, False),
    ("R4-after-review-total-wrong", {}, {"litigation.after_review.total": 1.0}, None,
     {("total-mismatch", "R4.litigation.after_review", "O6")}, False),
    # R5: every cell a number of its type
    ("R5-text", {}, {"apply.new.natural_person": "三"}, None, {("type-error", "R5", "D6")}, False),
    ("R5-text-with-unit", {}, {"active.fees.amount_wan": "240万元"}, None, {("type-error", "R5", "B16")}, False),
    ("R5-negative", {}, {"review.upheld": -1.0}, None, {("negative-value", "R5", "A6")}, False),
    ("R5-negative-fee", {}, {"active.fees.amount_wan": -0.5}, None, {("negative-value", "R5", "B16")}, False),
    ("R5-fraction", {}, {"active.license.decisions": 1.5}, None, {("not-whole-number", "R5", "B9")}, False),
    ("R5-empty", {}, {"active.penalty.decisions": None}, None, {("empty-value", "R5", "B12")}, False),
    ("R5-empty-string", {}, {"active.penalty.decisions": ""}, None, {("empty-value", "R5", "B12")}, False),
    ("R5-blank-string", {}, {"apply.carried.natural_person": "  "}, None, {("empty-value", "R5", "D7")}, False),
    ("R5-bool", {}, {"active.coercion.decisions": True}, None, {("type-error", "R5", "B13")}, False),
    ("R5-date", {}, {"active.coercion.decisions": datetime(2021, 3, 1)}, None, {("type-error", "R5", "B13")}, False),
    ("R5-nan", {}, {"active.coercion.decisions": float("nan")}, None, {("type-error", "R5", "B13")}, False),
    ("R5-whole-float-ok", {}, {"active.license.decisions": 120.0}, None, set(), True),
    ("R5-fee-fraction-ok", {}, {"active.fees.amount_wan": 0.5}, None, set(), True),
    # S1: fee with more than 4 decimals warns but passes
    ("S1-five-decimals", {}, {"active.fees.amount_wan": 12.34567}, None,
     {("too-many-decimals", "S1", "B16")}, True),
    ("S1-four-decimals", {}, {"active.fees.amount_wan": 309.0263}, None, set(), True),
    # S2: 规章 non-zero below the districted city
    ("S2-township", {"active__rules__issued": 1}, {}, CheckContext(unit_kind="township"),
     {("expected-zero", "S2", "B5")}, True),
    ("S2-department-all-three", {"active__rules__issued": 2, "active__rules__repealed": 1, "active__rules__valid": 3},
     {}, CheckContext(unit_kind="department"),
     {("expected-zero", "S2", "B5"), ("expected-zero", "S2", "C5"), ("expected-zero", "S2", "D5")}, True),
    ("S2-zero-township", {}, {}, CheckContext(unit_kind="township"), set(), True),
    ("S2-kind-unknown", {"active__rules__issued": 1}, {}, CheckContext(unit_kind=None), set(), True),
    # S3: 现行有效(y) = 现行有效(y-1) + 制发(y) - 废止(y)
    ("S3-broken", {}, {}, CheckContext(previous={"active.normative.valid": Decimal(5)}),
     {("stock-flow-mismatch", "S3", "D6")}, True),
    ("S3-holds", {"active__normative__issued": 2, "active__normative__repealed": 1, "active__normative__valid": 6},
     {}, CheckContext(previous={"active.normative.valid": Decimal(5)}), set(), True),
    ("S3-no-previous", {"active__normative__valid": 6}, {}, CheckContext(previous={}), set(), True),
    # S4: 上年结转(y) = 结转下年度(y-1), column by column
    ("S4-broken", {}, {}, CheckContext(previous={"apply.carry_next.natural_person": Decimal(2)}),
     {("carry-over-mismatch", "S4", "D7")}, True),
    ("S4-broken-total", {}, {}, CheckContext(previous={"apply.carry_next.natural_person": Decimal(2),
                                                        "apply.carry_next.total": Decimal(2)}),
     {("carry-over-mismatch", "S4", "D7"), ("carry-over-mismatch", "S4", "J7")}, True),
    ("S4-holds", {"apply__new__natural_person": 1, "apply__carried__natural_person": 1}, {},
     CheckContext(previous={"apply.carry_next.natural_person": Decimal(1), "apply.carry_next.total": Decimal(1),
                            "apply.carry_next.commercial": Decimal(0)}), set(), True),
]


@pytest.mark.parametrize(("changed", "overrides", "context", "expected", "passes"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_rule_cases(form: FormSpec, changed: dict[str, int | str], overrides: dict[str, Any],
                    context: CheckContext | None, expected: set[tuple[str, str, str]], passes: bool) -> None:
    result = check_values(raw_values(form, overrides, **changed), form, context)
    assert flat(result) == expected
    assert result.passed is passes
    assert len(result.issues) == len(expected)  # each problem reported once


@pytest.mark.parametrize(("code", "severity"), [
    ("too-many-decimals", Severity.WARNING), ("expected-zero", Severity.WARNING),
    ("stock-flow-mismatch", Severity.WARNING), ("carry-over-mismatch", Severity.WARNING),
    ("sum-mismatch", Severity.ERROR), ("total-mismatch", Severity.ERROR), ("type-error", Severity.ERROR),
    ("negative-value", Severity.ERROR), ("not-whole-number", Severity.ERROR), ("empty-value", Severity.ERROR),
])
def test_issue_codes_have_the_right_severity(form: FormSpec, code: str, severity: Severity) -> None:
    found = [
        issue
        for _id, changed, overrides, context, expected, _passes in CASES
        if any(e[0] == code for e in expected)
        for issue in check_values(raw_values(form, overrides, **changed), form, context).issues
        if issue.code == code
    ]
    assert found, f"no case produces {code}"
    assert {i.severity for i in found} == {severity}


def test_every_issue_says_where_and_why_in_chinese(form: FormSpec) -> None:
    sheet_names = {s.name for s in form.sheets}
    for _id, changed, overrides, context, _expected, _passes in CASES:
        for issue in check_values(raw_values(form, overrides, **changed), form, context).issues:
            assert issue.sheet in sheet_names, issue
            assert issue.cell is not None and _ADDRESS.match(issue.cell), issue
            assert issue.code in ISSUE_KINDS
            assert issue.category is Category.DATA
            assert _CHINESE.search(issue.message), issue
            assert "{" not in issue.message and "}" not in issue.message
            assert issue.rule is not None
            assert issue.field in form.cell_by_key


def test_issue_sheet_is_the_sheet_of_the_cell(form: FormSpec) -> None:
    raw = raw_values(form, {"active.license.decisions": "x", "apply.new.natural_person": -1.0, "review.total": 9.0})
    where = {(i.sheet, i.cell) for i in check_values(raw, form).issues}
    assert where == {(T2, "B9"), (T3, "D6"), (T4, "E6")}


def test_total_mismatch_reports_expected_and_found(form: FormSpec) -> None:
    result = check_values(raw_values(form, {"apply.new.total": 5.0}), form)
    (issue,) = result.issues
    assert (issue.expected, issue.found, issue.field) == ("3", "5", "apply.new.total")
    assert "3" in issue.message and "5" in issue.message
    assert issue.rule_title and issue.rule_title in issue.message
    # the recomputed total is what is kept, not what was typed
    assert result.values["apply.new.total"] == Decimal(3)


def test_sum_mismatch_message_gives_both_sides(form: FormSpec) -> None:
    result = check_values(raw_values(form, apply__new__natural_person=3), form)
    issue = next(i for i in result.issues if i.rule == "R1.natural_person")
    assert issue.sheet == T3
    assert "第一项加第二项之和为3" in issue.message
    assert "第三项加第四项之和为2" in issue.message


def test_value_issue_message_quotes_the_cell_and_value(form: FormSpec) -> None:
    (issue,) = check_values(raw_values(form, {"active.license.decisions": 1.5}), form).issues
    assert "行政许可" in issue.message and "1.5" in issue.message
    (issue,) = check_values(raw_values(form, {"apply.new.natural_person": "三件"}), form).issues
    assert issue.found == "三件" and "三件" in issue.message


def test_all_issues_are_collected_not_just_the_first(form: FormSpec) -> None:
    raw = raw_values(
        form,
        {
            "apply.new.natural_person": "二",  # type-error
            "review.upheld": -2.0,  # negative-value
            "active.license.decisions": 1.5,  # not-whole-number
            "active.penalty.decisions": None,  # empty-value
            "litigation.direct.total": 4.0,  # total-mismatch (parts are 0)
            "active.fees.amount_wan": 1.234567,  # too-many-decimals (warning)
        },
        apply__new__commercial=2,  # R1.commercial broken
    )
    result = check_values(raw, form, CheckContext(unit_kind="township"))
    assert {
        ("type-error", "R5", "D6"),
        ("negative-value", "R5", "A6"),
        ("not-whole-number", "R5", "B9"),
        ("empty-value", "R5", "B12"),
        ("total-mismatch", "R4.litigation.direct", "J6"),
        ("too-many-decimals", "S1", "B16"),
        ("sum-mismatch", "R1.commercial", "E31"),
    } <= flat(result)
    assert not result.passed
    assert len(result.errors) >= 6
    assert [i.code for i in result.warnings] == ["too-many-decimals"]


def test_valid_unit_passes_with_totals_recomputed(form: FormSpec) -> None:
    figures = valid_figures(form)
    result = check_values(raw_values(form), form)
    assert result.issues == []
    assert result.passed
    assert set(result.values) == {c.key for c in form.cells}
    for key, figure in figures.items():
        assert result.values[key] == figure
    assert len(form.totals) == 34
    for total, rule in form.totals.items():
        assert result.values[total] == sum((result.values[p] for p in rule.right), Decimal(0)), total
    results = [k for k in result.values
               if k.startswith("apply.result.") and k.endswith(".total") and not k.startswith("apply.result.total.")]
    assert len(results) == 21
    assert result.values["apply.result.total.total"] == sum(result.values[k] for k in results) == Decimal(2)
    assert result.values["apply.new.total"] == Decimal(3)
    assert result.values["apply.carry_next.total"] == Decimal(1)
    assert result.values["apply.result.total.natural_person"] == Decimal(2)
    assert result.values["review.total"] == Decimal(0)


def test_valid_unit_with_cached_totals_passes(form: FormSpec) -> None:
    # a workbook saved by Excel carries the formulas' cached values: they agree, so no issue
    computed = check_values(raw_values(form), form).values
    raw: dict[str, RawValue] = {k: float(v) for k, v in computed.items()}
    assert check_values(raw, form).issues == []


def test_values_are_exact_decimals(form: FormSpec) -> None:
    result = check_values(raw_values(form, {"active.fees.amount_wan": 309.0263}), form)
    assert result.values["active.fees.amount_wan"] == Decimal("309.0263")
    assert all(isinstance(v, Decimal) for v in result.values.values())
    whole = [c.key for c in form.cells if c.type is CellType.INT]
    assert all(result.values[k] == result.values[k].to_integral_value() for k in whole)


def test_unreadable_part_leaves_its_total_and_rules_alone(form: FormSpec) -> None:
    result = check_values(raw_values(form, {"apply.new.natural_person": "?"}), form)
    assert "apply.new.natural_person" not in result.values
    assert "apply.new.total" not in result.values
    assert flat(result) == {("type-error", "R5", "D6")}


def test_cells_missing_from_the_raw_values_are_not_reported_again(form: FormSpec) -> None:
    raw = raw_values(form)
    del raw["review.upheld"]  # the reader reported the missing name
    result = check_values(raw, form)
    assert result.issues == []
    assert "review.upheld" not in result.values and "review.total" not in result.values


def test_renamed_sheet_is_named_as_the_unit_sees_it(form: FormSpec) -> None:
    context = CheckContext(sheet_names={"t2": "表二"})
    (issue,) = check_values(raw_values(form, {"active.license.decisions": "x"}), form, context).issues
    assert issue.sheet == "表二"


@pytest.mark.parametrize(("raw", "key", "code", "value"), [
    (3, "active.license.decisions", None, Decimal(3)),
    (3.0, "active.license.decisions", None, Decimal(3)),
    (0.1, "active.fees.amount_wan", None, Decimal("0.1")),
    (2.5, "active.license.decisions", "not-whole-number", None),
    (-1, "active.license.decisions", "negative-value", None),
    (float("inf"), "active.fees.amount_wan", "type-error", None),
    ("12", "active.license.decisions", "type-error", None),
    (False, "active.license.decisions", "type-error", None),
])
def test_parse_cell(form: FormSpec, raw: RawValue, key: str, code: str | None, value: Decimal | None) -> None:
    parsed, issue = parse_cell(raw, form.cell_by_key[key], "表二 主动公开")
    assert parsed == value
    assert (issue.code if issue else None) == code
    if issue:
        assert issue.rule == "R5" and issue.cell == form.cell_by_key[key].address
