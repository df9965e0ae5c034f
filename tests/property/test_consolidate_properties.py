"""Properties of the county consolidation (tasks/consolidate.py) over sets of generated, accepted units: the sum of
valid units is valid, the order of units does not matter, each unit adds exactly its figures, designated cells come
from the designated unit alone, and money is added exactly."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.form_spec import CellType, Consolidation, get_form
from tasks.check import check_values, recheck
from tasks.consolidate import CountyFigures, consolidate, figures_json
from tests.property.strategies import as_read, valid_units

FORM = get_form()  # not a test argument: Hypothesis would print its 88 kB repr
SUMMED = [c.key for c in FORM.cells if c.consolidation is Consolidation.SUM]
DESIGNATED = [c.key for c in FORM.cells if c.consolidation is Consolidation.DESIGNATED]
MONEY = [c for c in FORM.cells if c.type is CellType.DECIMAL and c.consolidation is Consolidation.SUM]


@st.composite
def accepted_units(draw: st.DrawFn, most: int = 6) -> dict[str, dict[str, Decimal]]:
    """Units (codes U00...) with their figures as stored after acceptance: read as calamine reads, checked."""
    units = {}
    for number in range(draw(st.integers(0, most), label="units")):
        result = check_values(as_read(draw, draw(valid_units(FORM))), FORM)
        assert result.passed
        units[f"U{number:02d}"] = result.values
    return units


def county(per_unit: dict[str, dict[str, Decimal]], designated: str | None) -> CountyFigures:
    return consolidate(FORM, 2021, per_unit, units_expected=len(per_unit) + 1, designated_unit=designated)


def designated_among(draw: Callable[..., Any], per_unit: dict[str, dict[str, Decimal]]) -> str | None:
    chosen: str | None = draw(st.sampled_from([*per_unit, "ABSENT"]) | st.none(), label="designated unit")
    return chosen


@given(data=st.data())
def test_the_sum_of_accepted_units_passes_every_sum_rule(data: st.DataObject) -> None:
    per_unit = data.draw(accepted_units())
    figures = county(per_unit, designated_among(data.draw, per_unit))
    assert figures.issues == []
    assert recheck(figures.cells, FORM) == []
    assert set(figures.cells) == {c.key for c in FORM.cells}  # every cell, units or none
    for key in SUMMED:  # exactly, not to 28 digits
        assert Fraction(figures.cells[key]) == sum((Fraction(u[key]) for u in per_unit.values()), Fraction(0)), key
    assert figures.units_accepted == len(per_unit)


@given(data=st.data())
def test_the_order_of_the_units_does_not_matter(data: st.DataObject) -> None:
    per_unit = data.draw(accepted_units())
    designated = designated_among(data.draw, per_unit)
    shuffled = dict(data.draw(st.permutations(list(per_unit.items())), label="order"))
    first, second = county(per_unit, designated), county(shuffled, designated)
    assert (first.cells, first.issues, first.notes) == (second.cells, second.issues, second.notes)


@given(data=st.data())
def test_adding_a_unit_adds_exactly_its_figures(data: st.DataObject) -> None:
    per_unit = data.draw(accepted_units(most=4))
    new = check_values(as_read(data.draw, data.draw(valid_units(FORM))), FORM).values
    designated = designated_among(data.draw, per_unit)
    before = county(per_unit, designated).cells
    after = county({**per_unit, "NEW": new}, designated).cells
    for key in SUMMED:
        assert after[key] - before[key] == new[key], key
    for key in DESIGNATED:  # a unit that is not the designated one changes none of its cells
        assert after[key] == before[key], key
    as_designated = county({**per_unit, "NEW": new}, "NEW").cells
    assert {k: as_designated[k] for k in DESIGNATED} == {k: new[k] for k in DESIGNATED}


@given(data=st.data())
def test_designated_cells_come_from_the_designated_unit_alone(data: st.DataObject) -> None:
    per_unit = data.draw(accepted_units())
    designated = designated_among(data.draw, per_unit)
    figures = county(per_unit, designated)
    for key in DESIGNATED:
        expected = per_unit[designated][key] if designated in per_unit else Decimal(0)
        assert figures.cells[key] == expected, key
    assert bool(figures.notes) == (designated not in per_unit)  # a missing designated unit is said, not hidden
    # whatever the other units report in those cells, the county figure stays the designated unit's
    others = {code: {**values, **{k: values[k] + 1_000 for k in DESIGNATED}} if code != designated else values
              for code, values in per_unit.items()}
    assert {k: county(others, designated).cells[k] for k in DESIGNATED} == {k: figures.cells[k] for k in DESIGNATED}


_AMOUNTS = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False) | \
    st.sampled_from([0.1, 0.2, 0.3, 0.01, 1e-7, 5e-324, 123456789.30000001, 999999999999.99])


@given(data=st.data())
def test_money_is_added_exactly(data: st.DataObject) -> None:
    """Amounts as a unit's Excel holds them (any float; more places than the form keeps only warn, S1), summed over
    many units: the county figure is their exact sum, not a float's nor a 28-digit rounding of it."""
    base = check_values(as_read(data.draw, data.draw(valid_units(FORM))), FORM).values
    amounts = data.draw(st.lists(st.tuples(_AMOUNTS, _AMOUNTS), min_size=1, max_size=40), label="amounts")
    per_unit = {}
    for number, (billed, collected) in enumerate(amounts):
        raw = {**{k: float(v) for k, v in base.items() if k not in FORM.totals},
               "fee.billed_yuan": billed, "fee.collected_yuan": collected}
        result = check_values(raw, FORM)
        assert result.passed and {i.code for i in result.issues} <= {"too-many-decimals"}
        per_unit[f"U{number:02d}"] = result.values
    figures = county(per_unit, None)
    for cell, index in zip(MONEY, (0, 1), strict=True):
        exact = sum((Fraction(Decimal(repr(pair[index]))) for pair in amounts), Fraction(0))
        assert Fraction(figures.cells[cell.key]) == exact, cell.key
    places = [Decimal(repr(a)).as_tuple().exponent for pair in amounts for a in pair]
    if all(isinstance(p, int) and p >= -2 for p in places):  # amounts in 分: shown to the 分, as they are
        shown = figures_json(FORM, figures)["cells"]
        assert isinstance(shown, dict)
        for cell, index in zip(MONEY, (0, 1), strict=True):
            total = sum((Decimal(repr(pair[index])) for pair in amounts), Decimal(0))
            assert shown[cell.key] == format(total.quantize(Decimal("0.01")), "f"), cell.key
