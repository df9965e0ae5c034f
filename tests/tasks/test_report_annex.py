"""The annex's 四、分单位明细: a row per unit for a county, a row per kind of unit above UNIT_ROWS_LIMIT (a
prefecture's or a province's thousands), with the same exact sums either way."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from schemas.form_spec import FormSpec, MeasureSpec
from tasks.accepted import AcceptedFigures
from tasks.completeness import Completeness, Timeliness, UnitCompleteness
from tasks.report_annex import UNIT_ROWS_LIMIT, _breakdown, _completeness
from tasks.report_document import Table
from tasks.report_measures import format_measure
from tests.factories import valid_figures

KINDS = ["乡镇（街道）", "县直部门", "县政府办公室"]


def _units(n: int) -> Completeness:
    return Completeness(deadline=date(2022, 1, 20), units=[UnitCompleteness(
        code=f"U{i:04d}", name=f"单位{i}", kind=KINDS[0] if i % 3 else KINDS[1] if i else KINDS[2],
        timeliness=Timeliness.ON_TIME if i % 7 else Timeliness.MISSING, returns=1 if i % 7 else 0,
        first_return_at=None, first_accepted_at=None) for i in range(n)])


def _figures(form: FormSpec, completeness: Completeness) -> dict[str, dict[str, Decimal]]:
    """Each unit with a return: figures of its own (a licence count and a fee that differ unit to unit)."""
    return {u.code: {**valid_figures(form), "active.license.decisions": Decimal(n),
                     "active.fees.amount_wan": Decimal(n) / 10000}
            for n, u in enumerate(completeness.units) if u.timeliness is Timeliness.ON_TIME}


def _rows(section: object) -> list[list[str]]:
    table = next(b for b in section.blocks if isinstance(b, Table))  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return [[cell.text for cell in row] for row in table.grid.rows]


def _annex(completeness: Completeness, per_unit: object) -> object:
    from tasks.report_annex import AnnexInput

    return AnnexInput(title="", year=2021, completeness=completeness, county=None,  # type: ignore[arg-type]
                      per_unit=per_unit, previous=None)  # type: ignore[arg-type]


def _measures(form: FormSpec, columns: list[MeasureSpec], units: list[dict[str, Decimal]]) -> list[str]:
    return [format_measure(form, spec, sum((f.get(k, Decimal(0)) for f in units for k in spec.cells), Decimal(0)))
            for spec in columns]


def test_a_county_gets_a_row_per_unit(form: FormSpec) -> None:
    completeness = _units(UNIT_ROWS_LIMIT)
    rows = _rows(_breakdown(form, _annex(completeness, _figures(form, completeness))))  # type: ignore[arg-type]
    assert rows[0][:4] == ["序号", "单位名称", "单位类型", "报送情况"]
    assert len(rows) == 1 + UNIT_ROWS_LIMIT + 1 and rows[-1][1] == "合计"
    assert rows[8][1:4] == ["单位7", KINDS[0], "未报送"] and set(rows[8][4:]) == {"—"}


def test_a_province_gets_a_row_per_kind_with_the_same_exact_sums(form: FormSpec) -> None:
    completeness = _units(UNIT_ROWS_LIMIT + 1)
    figures = _figures(form, completeness)
    assert form.report is not None
    columns = [m for m in form.report.measures if m.breakdown]
    as_dicts = _breakdown(form, _annex(completeness, figures))  # type: ignore[arg-type]
    keys = tuple(cell.key for cell in form.cells)
    as_table = _breakdown(form, _annex(completeness, AcceptedFigures.from_values(keys, figures)))  # type: ignore

    rows = _rows(as_dicts)
    assert rows == _rows(as_table)  # summed from the stored texts or from Decimals: the same figures
    assert rows[0][:4] == ["序号", "单位类型", "单位数", "已通过审核"]
    assert [row[1] for row in rows[1:]] == [KINDS[2], KINDS[0], KINDS[1], "合计"]
    for row, kind in zip(rows[1:4], [KINDS[2], KINDS[0], KINDS[1]], strict=True):
        members = [u for u in completeness.units if u.kind == kind]
        reported = [figures[u.code] for u in members if u.code in figures]
        assert row[2:4] == [str(len(members)), str(len(reported))]
        assert row[4:] == _measures(form, columns, reported), kind
    every = list(figures.values())
    assert rows[-1][2:] == [str(UNIT_ROWS_LIMIT + 1), str(len(every)), *_measures(form, columns, every)]
    assert "按单位类型汇总" in as_dicts.blocks[1].text  # type: ignore[union-attr]


def _late(n: int, missing_every: int) -> Completeness:
    """n units, every one late but each missing_every-th, which never reported."""
    return Completeness(deadline=date(2022, 1, 20), units=[UnitCompleteness(
        code=f"U{i:04d}", name=f"单位{i}", kind=KINDS[i % 2],
        timeliness=Timeliness.MISSING if i % missing_every == 0 else Timeliness.LATE,
        returns=0 if i % missing_every == 0 else 1, first_return_at=None, first_accepted_at=None) for i in range(n)])


def test_a_few_late_units_are_listed_by_name_many_are_counted_by_kind() -> None:
    few = _rows(_completeness(_annex(_late(UNIT_ROWS_LIMIT, 10), {})))  # type: ignore[arg-type]
    assert few[0][:4] == ["序号", "单位名称", "单位类型", "报送情况"] and len(few) == 1 + UNIT_ROWS_LIMIT
    assert few[1][1:4] == ["单位0", KINDS[0], "未报送"] and few[2][1:4] == ["单位1", KINDS[1], "逾期报送"]

    many = _late(UNIT_ROWS_LIMIT + 1, 10)
    section = _completeness(_annex(many, {}))  # type: ignore[arg-type]
    rows = _rows(section)
    assert rows[0] == ["序号", "单位类型", "逾期报送", "未通过审核", "未报送", "合计"]
    for row, kind in zip(rows[1:3], KINDS[:2], strict=True):
        late = sum(1 for u in many.units if u.kind == kind and u.timeliness is Timeliness.LATE)
        missing = sum(1 for u in many.units if u.kind == kind and u.timeliness is Timeliness.MISSING)
        assert row == [row[0], kind, str(late), "0", str(missing), str(late + missing)]
    assert rows[-1] == ["", "合计", "270", "0", "31", str(UNIT_ROWS_LIMIT + 1)]
    assert "nianbao status" in section.blocks[2].text  # type: ignore[union-attr]
