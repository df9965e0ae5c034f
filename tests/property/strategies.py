"""Generators of a unit's figures for the property tests, and a model of what the form's sums expect of them.

A valid unit is made from the meaning of the table (FORMAT.md R1-R5), not from the rule engine: every input cell a
non-negative number of its type, and in each applicant column of table 三 the applications in (新收 + 上年结转)
equal to those out (the 21 result rows + 结转下年度). Totals are left to the engine (formulas in the workbook).

The model of the sums (`expansion`) reads only the form's data: a total is the sum of its parts, so each total and
each rule side is a linear combination of input cells. It says which rule a change of one input must break.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from schemas.form_spec import CellSpec, CellType, FormSpec, SumEqualsRule
from tasks.workbook_read import RawValue

# a count anyone reports (most cells), or a large one (a county's 行政许可): sums stay exact in a float and in
# Decimal's 28 digits, as every figure a real workbook holds does
_COUNTS = st.one_of(st.integers(0, 3), st.integers(0, 60), st.integers(0, 10**9))
_MONEY_UNITS = st.one_of(st.integers(0, 10**6), st.integers(0, 10**13))  # at most 15 significant digits
APPLICANTS = ("natural_person", "commercial", "research", "public_interest", "legal_service", "other_org")


def _whole(form: FormSpec, key: str) -> bool:
    return form.cell_by_key[key].type is CellType.INT


def money(places: int) -> st.SearchStrategy[Decimal]:
    """A non-negative amount with at most `places` decimals, e.g. 309.0263 万元."""
    return _MONEY_UNITS.map(lambda n: Decimal(n).scaleb(-places))


def column_inputs(form: FormSpec, applicant: str) -> tuple[str, str, list[str], str]:
    """Table 三, one applicant column: the 新收 and 上年结转 inputs, the 21 result rows, and 结转下年度."""
    results = [c.key for c in form.input_cells
               if c.key.startswith("apply.result.") and c.key.endswith(f".{applicant}")]
    return f"apply.new.{applicant}", f"apply.carried.{applicant}", results, f"apply.carry_next.{applicant}"


_FORMS: dict[int, FormSpec] = {}


def valid_units(form: FormSpec) -> st.SearchStrategy[dict[str, Decimal]]:
    """The input figures of a unit that satisfies every hard rule (R1-R5) by construction."""
    # the strategy gets the form's id, not the form: Hypothesis shows a strategy with its arguments' repr (the
    # FormSpec's is 88 kB, and making it is itself an error under -W error)
    _FORMS[id(form)] = form
    return _valid_units(id(form))


@st.composite
def _valid_units(draw: st.DrawFn, form_id: int) -> dict[str, Decimal]:
    form = _FORMS[form_id]
    figures: dict[str, Decimal] = {}
    for applicant in APPLICANTS:
        new, carried, results, carry_next = column_inputs(form, applicant)
        for key in (*results, carry_next):
            figures[key] = Decimal(draw(_COUNTS))
        going_out = sum((figures[k] for k in (*results, carry_next)), Decimal(0))
        figures[carried] = Decimal(draw(st.integers(0, int(going_out))))
        figures[new] = going_out - figures[carried]  # R1 for this column
    for cell in form.input_cells:
        if cell.key not in figures:
            whole = cell.type is CellType.INT
            figures[cell.key] = Decimal(draw(_COUNTS)) if whole else draw(money(cell.places))
    return figures


def as_read(draw: Callable[..., Any], figures: Mapping[str, Decimal]) -> dict[str, RawValue]:
    """The figures as python-calamine gives them: floats, the odd whole number as an int."""
    raw: dict[str, RawValue] = {}
    for key, value in figures.items():
        whole = value == value.to_integral_value()
        raw[key] = int(value) if whole and draw(st.integers(0, 9)) == 0 else float(value)  # draw: st.DrawFn or
                                                                                            # DataObject.draw
    return raw


def cached_totals(form: FormSpec, figures: Mapping[str, Decimal]) -> dict[str, RawValue]:
    """The totals as a workbook saved by Excel carries them (the formulas' cached values), from the model."""
    return {key: float(total_of(form, key, figures)) for key in form.totals}


def total_of(form: FormSpec, key: str, figures: Mapping[str, Decimal]) -> Decimal:
    return sum((figures[k] * n for k, n in expansion(form, key).items()), Decimal(0))


_EXPANSIONS: dict[tuple[int, str], Counter[str]] = {}  # by the form's id: a FormSpec holds lists, not hashable


def expansion(form: FormSpec, key: str) -> Counter[str]:
    """The cell as a sum of input cells, with their multiplicities."""
    found = _EXPANSIONS.get((id(form), key))
    if found is None:
        rule = form.totals.get(key)
        found = Counter({key: 1}) if rule is None else Counter()
        for part in rule.right if rule else []:
            found.update(expansion(form, part))
        _EXPANSIONS[(id(form), key)] = found
    return found


def rule_weight(form: FormSpec, rule: SumEqualsRule, key: str) -> int:
    """How much left - right of a sum rule changes when the input cell `key` changes by one."""
    left = sum(expansion(form, k)[key] for k in rule.left)
    right = sum(expansion(form, k)[key] for k in rule.right)
    return left - right


def rule_cell(form: FormSpec, rule: SumEqualsRule) -> str:
    """Where an issue of a sum rule points: its in-sheet check cell, or the cell of its left side."""
    return rule.check_cell.address if rule.check_cell else form.cell_by_key[rule.left[0]].address


def expected_after_change(form: FormSpec, key: str, typed_totals: bool) -> set[tuple[str, str, str]]:
    """(code, rule, cell) of every issue that changing the valid input `key` (and nothing else) must raise."""
    expected = {("sum-mismatch", rule.id, rule_cell(form, rule)) for rule in form.sum_rules()
                if not rule.computes and rule_weight(form, rule, key) != 0}
    if typed_totals:  # each total that counts the cell now disagrees with its cached value
        expected |= {("total-mismatch", rule.id, form.cell_by_key[total].address)
                     for total, rule in form.totals.items() if expansion(form, total)[key] != 0}
    return expected


def cell_of(form: FormSpec, key: str) -> CellSpec:
    return form.cell_by_key[key]


_TEXT = st.text(max_size=30) | st.sampled_from(["三", "240万元", "1,000", " 5", "5 ", "1e3", "NaN", "-0", "１２"])
_HUGE_INTS = (2**53 + 1, 2**63, 2**64, 10**30, 10**400, -(10**400), 10**5000)
# by position: a strategy holding 10**5000 cannot be shown (repr exceeds Python's 4300 digits), and Hypothesis
# shows one when it suspects the strategy of using `random` (another thread did: see pyproject's filterwarnings)
_HUGE = st.integers(0, len(_HUGE_INTS) - 1).map(_HUGE_INTS.__getitem__)
_FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 5e-324, 1e28, 0.1, -0.0])
ARBITRARY: st.SearchStrategy[RawValue] = st.one_of(
    st.none(), st.booleans(), st.integers(), _HUGE, _FLOATS, _TEXT,
    st.dates(), st.datetimes(), st.times(), st.timedeltas(),
    st.builds(lambda d: date(2021, 1, 1) + timedelta(days=d), st.integers(-1000, 1000)),
    st.just(datetime(1899, 12, 31)), st.just(time(0, 0)),
)
