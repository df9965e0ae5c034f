"""County figures: summed cells, designated cells, their JSON form, and the re-check of the sum rules."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from schemas.form_spec import CellType, Consolidation, FormSpec
from tasks.check import check_values, recheck
from tasks.consolidate import consolidate, figures_json
from tests.factories import valid_figures


def accepted(form: FormSpec, **changes: int | str) -> dict[str, Decimal]:
    """All 200 figures of a unit, as stored after acceptance (totals recomputed)."""
    result = check_values({k: float(v) for k, v in valid_figures(form, **changes).items()}, form)
    assert result.issues == []
    return result.values


@pytest.fixture
def per_unit(form: FormSpec) -> dict[str, dict[str, Decimal]]:
    return {
        "G001": accepted(form, active__normative__issued=12, active__normative__valid=19,
                         active__fees__amount_wan="309.0263", active__license__decisions=17726),
        "T001": accepted(form, active__normative__issued=3, active__normative__valid=5, active__fees__amount_wan="1.5",
                         review__upheld=1, review__pending=1, apply__new__legal_service=2,
                         apply__result__unable__not_held__legal_service=2),
        "D001": accepted(form, active__penalty__decisions=2068, litigation__direct__corrected=1),
    }


def test_designated_cells_in_the_form(form: FormSpec) -> None:
    designated = {c.key for c in form.cells if c.consolidation is Consolidation.DESIGNATED}
    assert {"active.normative.valid", "active.fees.amount_wan"} <= designated


def test_sum_cells_are_summed(form: FormSpec, per_unit: dict[str, dict[str, Decimal]]) -> None:
    county = consolidate(form, 2021, per_unit, units_expected=4, designated_unit="G001")
    assert county.cells["active.license.decisions"] == 17726 + 120 + 120
    assert county.cells["active.penalty.decisions"] == 7 + 7 + 2068
    assert county.cells["apply.new.natural_person"] == 6
    assert county.cells["apply.new.legal_service"] == 2
    assert county.cells["apply.new.total"] == 3 + 5 + 3
    assert county.cells["apply.result.total.total"] == 2 + 4 + 2
    assert county.cells["apply.carry_next.total"] == 3
    assert county.cells["review.total"] == 2 and county.cells["litigation.direct.total"] == 1
    for cell in form.cells:
        if cell.consolidation is Consolidation.SUM:
            assert county.cells[cell.key] == sum(f[cell.key] for f in per_unit.values()), cell.key
    assert (county.year, county.units_expected, county.units_accepted) == (2021, 4, 3)


def test_designated_cells_come_from_the_designated_unit(form: FormSpec,
                                                        per_unit: dict[str, dict[str, Decimal]]) -> None:
    county = consolidate(form, 2021, per_unit, units_expected=3, designated_unit="G001")
    assert county.designated_unit == "G001"
    assert county.cells["active.normative.valid"] == 19
    assert county.cells["active.normative.issued"] == 12
    assert county.cells["active.fees.amount_wan"] == Decimal("309.0263")
    for cell in form.cells:
        if cell.consolidation is Consolidation.DESIGNATED:
            assert county.cells[cell.key] == per_unit["G001"][cell.key], cell.key
    assert county.notes == []


def test_designated_unit_not_reported_yet(form: FormSpec, per_unit: dict[str, dict[str, Decimal]]) -> None:
    del per_unit["G001"]
    county = consolidate(form, 2021, per_unit, units_expected=3, designated_unit="G001")
    assert county.cells["active.normative.valid"] == 0
    assert county.cells["active.fees.amount_wan"] == 0
    assert county.notes and all("G001" in note for note in county.notes)
    assert county.cells["active.license.decisions"] == 240


def test_no_units_gives_zeros(form: FormSpec) -> None:
    county = consolidate(form, 2021, {}, units_expected=4, designated_unit=None)
    assert set(county.cells) == {c.key for c in form.cells}
    assert all(v == 0 for v in county.cells.values())
    assert county.issues == [] and county.units_accepted == 0


def test_consistent_figures_recheck_clean(form: FormSpec, per_unit: dict[str, dict[str, Decimal]]) -> None:
    county = consolidate(form, 2021, per_unit, units_expected=3, designated_unit="G001")
    assert county.issues == []
    assert recheck(county.cells, form) == []


def test_figures_json(form: FormSpec, per_unit: dict[str, dict[str, Decimal]]) -> None:
    per_unit["G001"]["active.fees.amount_wan"] = Decimal("309.02")
    county = consolidate(form, 2021, per_unit, units_expected=4, designated_unit="G001")
    data = figures_json(form, county)
    assert (data["year"], data["units_expected"], data["units_accepted"]) == (2021, 4, 3)
    cells = data["cells"]
    assert isinstance(cells, dict)
    assert set(cells) == {c.key for c in form.cells} and len(cells) == 200 + 3  # with the 信息处理费 figures
    for cell in form.cells:
        value = cells[cell.key]
        if cell.type is CellType.INT:
            assert type(value) is int, cell.key
        else:
            assert isinstance(value, str), cell.key
    assert cells["active.fees.amount_wan"] == "309.0200"
    assert cells["active.license.decisions"] == 17966
    assert cells["apply.result.total.total"] == 8
    json.dumps(data)  # serialisable as is


def test_figures_json_fee_has_four_places(form: FormSpec, per_unit: dict[str, dict[str, Decimal]]) -> None:
    for fee, text in [(Decimal("309.0263"), "309.0263"), (Decimal(0), "0.0000"), (Decimal("7"), "7.0000")]:
        per_unit["G001"]["active.fees.amount_wan"] = fee
        county = consolidate(form, 2021, per_unit, units_expected=3, designated_unit="G001")
        cells = figures_json(form, county)["cells"]
        assert isinstance(cells, dict)
        assert cells["active.fees.amount_wan"] == text


def test_wrong_total_found_on_recheck(form: FormSpec, per_unit: dict[str, dict[str, Decimal]]) -> None:
    per_unit["D001"]["apply.new.total"] += 1  # a stored total that disagrees with its parts
    county = consolidate(form, 2021, per_unit, units_expected=3, designated_unit="G001")
    found = {(i.code, i.rule, i.cell) for i in county.issues}
    assert ("total-mismatch", "R2.apply.new", "J6") in found
    assert ("sum-mismatch", "R1.total", "J31") in found
    assert all(i.is_error for i in county.issues)


@pytest.mark.parametrize(("key", "expected"), [
    ("apply.new.total", {("total-mismatch", "R2.apply.new", "J6"), ("sum-mismatch", "R1.total", "J31")}),
    ("apply.result.total.natural_person", {("total-mismatch", "R3.natural_person", "D29"),
                                           ("total-mismatch", "R2.apply.result.total", "J29"),
                                           ("sum-mismatch", "R1.natural_person", "D31")}),
    ("apply.result.total.total", {("total-mismatch", "R2.apply.result.total", "J29"),
                                  ("sum-mismatch", "R3.total", "J29"), ("sum-mismatch", "R1.total", "J31")}),
    ("review.total", {("total-mismatch", "R4.review", "E6")}),
    ("apply.new.natural_person", {("total-mismatch", "R2.apply.new", "J6"),
                                  ("sum-mismatch", "R1.natural_person", "D31")}),
])
def test_recheck_finds_each_broken_rule(form: FormSpec, key: str, expected: set[tuple[str, str, str]]) -> None:
    values = accepted(form)
    assert recheck(values, form) == []
    values[key] += 1
    assert {(i.code, i.rule, i.cell) for i in recheck(values, form)} == expected


def test_recheck_messages_are_chinese(form: FormSpec) -> None:
    values = accepted(form)
    values["apply.new.total"] = Decimal(9)
    issues = recheck(values, form)
    total = next(i for i in issues if i.code == "total-mismatch")
    assert (total.expected, total.found, total.sheet) == ("3", "9", "表三 依申请公开")
    assert "合计" in total.message
