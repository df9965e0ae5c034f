"""Properties of the rule engine (tasks/check.py) over generated units: nothing valid refused, nothing broken
accepted, every broken rule named at its cell, no exception whatever a cell holds."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.figures import figures_text
from schemas.form_spec import CellType, FormSpec, get_form
from schemas.issues import ISSUE_KINDS
from tasks.check import CheckResult, check_values, texts_of
from tasks.workbook_read import RawValue
from tests.property.strategies import (
    APPLICANTS,
    ARBITRARY,
    as_read,
    cached_totals,
    column_inputs,
    expansion,
    expected_after_change,
    money,
    total_of,
    valid_units,
)

Flat = set[tuple[str, str | None, str | None]]
# the packaged form, as the `form` fixture gives it: not a test argument, for Hypothesis would print its 88 kB repr
FORM = get_form()


def flat(result: CheckResult) -> Flat:
    return {(i.code, i.rule, i.cell) for i in result.issues}


def input_keys(form: FormSpec) -> list[str]:
    return [c.key for c in form.input_cells]


def exact(value: Decimal | float | int) -> Fraction:
    return Fraction(value) if not isinstance(value, float) else Fraction(Decimal(repr(value)))


def assert_sums_hold_exactly(form: FormSpec, values: Mapping[str, Decimal]) -> None:
    """R1-R4 on the figures, in exact rational arithmetic (no rounding context in between)."""
    for total, rule in form.totals.items():
        assert exact(values[total]) == sum(exact(values[p]) for p in rule.right), total
    for rule in form.sum_rules():
        left = sum(exact(values[k]) for k in rule.left)
        right = sum(exact(values[k]) for k in rule.right)
        assert left == right, rule.id


@given(data=st.data())
def test_a_valid_unit_is_accepted_with_its_figures(data: st.DataObject) -> None:
    form = FORM
    figures = data.draw(valid_units(form))
    raw = as_read(data.draw, figures)
    if data.draw(st.booleans(), label="saved by Excel, totals cached"):
        raw.update(cached_totals(form, figures))
    result = check_values(raw, form)
    assert result.issues == []
    assert result.passed
    assert {k: result.values[k] for k in figures} == figures
    assert set(result.values) == {c.key for c in form.cells}  # every total computed: nothing lost


@given(data=st.data())
def test_totals_are_the_exact_sums_of_their_parts(data: st.DataObject) -> None:
    form = FORM
    figures = data.draw(valid_units(form))
    values = check_values(as_read(data.draw, figures), form).values
    for total, rule in form.totals.items():
        assert values[total] == sum((values[p] for p in rule.right), Decimal(0)), total
        assert values[total] == total_of(form, total, figures), total  # the sum of the inputs it counts
    assert_sums_hold_exactly(form, values)
    # with the cached totals the workbook had, the very same figures
    with_cached = {**as_read(data.draw, figures), **cached_totals(form, figures)}
    assert check_values(with_cached, form).values == values


@given(data=st.data())
def test_one_changed_input_raises_exactly_the_issues_of_its_rules(data: st.DataObject) -> None:
    form = FORM
    figures = data.draw(valid_units(form))
    key = data.draw(st.sampled_from(input_keys(form)), label="changed cell")
    cell = form.cell_by_key[key]
    step = Decimal(data.draw(st.integers(1, 10**6))) if cell.type is CellType.INT else \
        data.draw(money(cell.places).filter(bool))
    changed = figures[key] + step * data.draw(st.sampled_from([1, -1]), label="sign")
    typed = data.draw(st.booleans(), label="totals cached")
    raw = {**as_read(data.draw, {**figures, key: changed}), **(cached_totals(form, figures) if typed else {})}
    result = check_values(raw, form)
    if changed < 0:
        expected: Flat = {("negative-value", "R5", cell.address)}  # R5; its sums are then not computed
    else:
        expected = set(expected_after_change(form, key, typed))
    assert flat(result) == expected
    assert len(result.issues) == len(expected)  # each broken rule reported once
    assert result.passed == (not expected)
    if changed >= 0:
        assert result.values[key] == changed  # what the unit wrote is what is kept, right or wrong
    for issue in result.issues:  # named on the sheet of the cell it is about
        assert issue.field is not None
        assert issue.sheet == form.sheet_by_id[form.cell_by_key[issue.field].sheet].name


@given(data=st.data())
def test_a_changed_cached_total_is_reported_at_that_total(data: st.DataObject) -> None:
    form = FORM
    figures = data.draw(valid_units(form))
    total = data.draw(st.sampled_from(sorted(form.totals)), label="changed total")
    typed = cached_totals(form, figures)
    typed[total] = float(total_of(form, total, figures) + data.draw(st.sampled_from([1, -1, 7, 100_000])))
    result = check_values({**as_read(data.draw, figures), **typed}, form)
    assert flat(result) == {("total-mismatch", form.totals[total].id, form.cell_by_key[total].address)}
    assert result.values[total] == total_of(form, total, figures)  # the recomputed total is kept, not the typed


# Magnitudes no real unit has, as a program could write them: a count of 10**30 is still a whole number >= 0
_WIDE = st.one_of(st.just(0), st.integers(0, 9), st.integers(0, 10**12), st.integers(10**12, 10**33))


@given(data=st.data())
def test_a_change_of_one_is_seen_whatever_the_other_figures_are(data: st.DataObject) -> None:
    form = FORM
    """Accepted means R1-R4 hold exactly: a magnitude that exhausts Decimal's 28 digits must not hide a change."""
    applicant = data.draw(st.sampled_from(APPLICANTS))
    new, carried, results, carry_next = column_inputs(form, applicant)
    counts = {c.key: 0 for c in form.input_cells}  # Python ints: the unit itself is exact
    for key in (*results, carry_next):
        counts[key] = data.draw(_WIDE)
    counts[new] = sum(counts[k] for k in (*results, carry_next))
    key = data.draw(st.sampled_from([new, carried, *results, carry_next]), label="changed cell")
    counts[key] += 1
    raw: dict[str, RawValue] = dict(counts)
    result = check_values(raw, form)
    assert not result.passed, "a unit whose 勾稽关系 is off by one was accepted"
    if result.passed:  # pragma: no cover - the message above says it; this says how far off it was
        assert_sums_hold_exactly(form, result.values)


@given(data=st.data())
def test_any_raw_value_gives_figures_or_issues_never_an_exception(data: st.DataObject) -> None:
    form = FORM
    keys = [c.key for c in form.cells] + [t.key for t in form.texts] + ["not.a.cell"]
    raw: dict[str, RawValue] = dict(as_read(data.draw, data.draw(valid_units(form))))
    if data.draw(st.booleans(), label="start empty"):
        raw = {}
    raw.update(data.draw(st.dictionaries(st.sampled_from(keys), ARBITRARY, max_size=12), label="arbitrary cells"))
    result = check_values(raw, form)  # no exception is the first property
    texts_of(raw, form)
    figures_text(result.values)
    for issue in result.issues:
        assert issue.code in ISSUE_KINDS
        assert issue.field is None or issue.field in form.cell_by_key
        assert issue.message  # the template renders with whatever was found
    for key, value in result.values.items():
        assert value.is_finite() and value >= 0 and not value.is_signed(), key  # no -0 to be shown as "-0"
        if form.cell_by_key[key].type is CellType.INT:
            assert value == value.to_integral_value(), key
    own = {i.field for i in result.issues if i.rule == "R5"}
    for key in input_keys(form):  # nothing lost: every input present is a figure or has its own R5 issue
        if key in raw:
            assert (key in result.values) != (key in own), key
    for total in form.totals:  # a total is computed exactly when all its inputs are figures
        assert (total in result.values) == all(k in result.values for k in expansion(form, total)), total


@pytest.mark.parametrize("applicant", APPLICANTS)
def test_the_model_of_the_sums_agrees_with_format_md(form: FormSpec, applicant: str) -> None:
    """The expectations above come from the form's data: they match the rules as FORMAT.md states them."""
    new, carried, results, carry_next = column_inputs(form, applicant)
    assert len(results) == 21  # (一) (二), 8 + 3 + 5 + 3 reasons
    column = form.cell_by_key[new].column_letter
    for key in (new, carried, *results, carry_next):  # R1 for the column and for 总计; R2-R4 are computed totals
        assert expected_after_change(form, key, typed_totals=False) == {
            ("sum-mismatch", f"R1.{applicant}", f"{column}31"), ("sum-mismatch", "R1.total", "J31")}
    row = form.cell_by_key[results[0]].row_number
    assert expected_after_change(form, results[0], typed_totals=True) >= {  # typed 总计 of its row and column
        ("total-mismatch", f"R3.{applicant}", f"{column}29"), ("total-mismatch", "R2.apply.result.open", f"J{row}")}
    others = [c.key for c in form.input_cells if not c.key.startswith("apply.")]
    for key in others:  # tables 二, 四 and 信息处理费: no rule but R4's computed totals
        assert expected_after_change(form, key, typed_totals=False) == set(), key
    assert {r[1] for r in expected_after_change(form, "review.upheld", typed_totals=True)} == {"R4.review"}


@pytest.mark.parametrize("key", ["active.fees.amount_wan", "fee.billed_yuan", "apply.new.natural_person"])
def test_a_negative_zero_is_kept_as_zero(form: FormSpec, key: str) -> None:
    """-0 (what a formula or a program may leave) is 0: kept signed it would be shown as -0.0000 in the report."""
    raw: dict[str, RawValue] = {c.key: 0.0 for c in form.input_cells}
    raw[key] = -0.0
    result = check_values(raw, form)
    assert result.passed and not result.values[key].is_signed()
