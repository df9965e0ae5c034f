"""The packaged form definition against the reference data, and a broken definition failing at load time."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.form_spec import (
    DEFAULT_FORM_FILE,
    AllZeroRule,
    CarryOverRule,
    CellType,
    FormSpec,
    FormSpecError,
    MaxDecimalsRule,
    Severity,
    StockFlowRule,
    SumEqualsRule,
    ValidNumberRule,
    get_form,
    load_form,
)

REFERENCE = Path(__file__).parents[1] / "data" / "reference"
_RULE_LINE = re.compile(r"^(R[1-4]\.\S+): (.+?) == (.+)$")


def reference_cells() -> dict[str, dict[str, str]]:
    lines = (REFERENCE / "cells.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:] if line.strip()]
    return {row["key"]: row for row in rows}


def reference_rules() -> dict[str, tuple[set[str], set[str]]]:
    rules = {}
    for line in (REFERENCE / "rules.txt").read_text(encoding="utf-8").splitlines():
        match = _RULE_LINE.match(line.strip())
        if match:
            left = {k.strip() for k in match.group(2).split("+")}
            right = {k.strip() for k in match.group(3).split("+")}
            rules[match.group(1)] = (left, right)
    return rules


def test_reference_files_parse_as_expected() -> None:
    # guards the helpers: 200 cells and the 42 hard sum rules R1 (7) + R2 (25) + R3 (7) + R4 (3)
    assert len(reference_cells()) == 200
    ids = reference_rules()
    assert len(ids) == 42
    assert sum(1 for i in ids if i.startswith("R1.")) == 7
    assert sum(1 for i in ids if i.startswith("R2.")) == 25
    assert sum(1 for i in ids if i.startswith("R3.")) == 7
    assert sum(1 for i in ids if i.startswith("R4.")) == 3


def test_packaged_form_has_exactly_the_reference_cells(form: FormSpec) -> None:
    reference = reference_cells()
    keys = [c.key for c in form.statutory_cells]
    assert len(keys) == len(set(keys)) == 200
    assert set(keys) == set(reference)
    assert [s.id for s in form.table_sheets] == ["t2", "t3", "t4"]


def test_beyond_the_tables_only_the_processing_fee_of_section_six(form: FormSpec) -> None:
    """The narrative sheet adds what section 六 must state (信息处理费) and the prose of sections 一, 五, 六."""
    extra = [c for c in form.cells if c not in form.statutory_cells]
    assert [(c.key, c.sheet, c.table, c.type, c.places) for c in extra] == [
        ("fee.notices", "t6", "六、", CellType.INT, 0),
        ("fee.billed_yuan", "t6", "六、", CellType.DECIMAL, 2),
        ("fee.collected_yuan", "t6", "六、", CellType.DECIMAL, 2)]
    assert [(t.key, t.section) for t in form.texts] == [
        ("narrative.overview", "一"), ("narrative.problems", "五"), ("narrative.other", "六")]
    assert form.report is not None
    prose = {s.number: s.text for s in form.report.sections if s.text}
    assert prose == {t.section: t.key for t in form.texts}


@pytest.mark.parametrize("key", sorted(reference_cells()))
def test_cell_labels_and_type_match_reference(form: FormSpec, key: str) -> None:
    expected = reference_cells()[key]
    cell = form.cell_by_key[key]
    assert (cell.table, cell.row, cell.col) == (expected["table"], expected["row"], expected["col"])
    decimal = re.fullmatch(r"decimal\((\d+)\)", expected["type"])
    if decimal:
        assert cell.type is CellType.DECIMAL
        assert cell.places == int(decimal.group(1))
    else:
        assert expected["type"] == "int"
        assert cell.type is CellType.INT


def test_fee_is_the_only_decimal_with_four_places(form: FormSpec) -> None:
    decimals = [c for c in form.cells if c.type is CellType.DECIMAL]
    assert [(c.key, c.places) for c in decimals] == [
        ("active.fees.amount_wan", 4), ("fee.billed_yuan", 2), ("fee.collected_yuan", 2)]


def test_cell_count_split_into_inputs_and_totals(form: FormSpec) -> None:
    assert len(form.input_cells) == 166 + 3
    assert len(form.totals) == 34
    assert {c.key for c in form.input_cells}.isdisjoint(form.totals)


def test_totals_are_ordered_parts_before_totals(form: FormSpec) -> None:
    order = list(form.totals)
    for position, (key, rule) in enumerate(form.totals.items()):
        assert rule.left == [key]
        for part in rule.right:
            if part in form.totals:
                assert order.index(part) < position, f"{part} must come before {key}"


@pytest.mark.parametrize("rule_id", sorted(reference_rules()))
def test_reference_rule_is_a_sum_rule_with_same_cells(form: FormSpec, rule_id: str) -> None:
    rules = {r.id: r for r in form.rules}
    assert rule_id in rules
    rule = rules[rule_id]
    assert isinstance(rule, SumEqualsRule)
    assert rule.severity is Severity.ERROR
    left, right = reference_rules()[rule_id]
    assert set(rule.left) == left
    assert set(rule.right) == right
    assert len(rule.left) == len(left) and len(rule.right) == len(right)


def test_no_sum_rule_beyond_the_reference(form: FormSpec) -> None:
    assert {r.id for r in form.sum_rules()} == set(reference_rules())


def test_r1_rules_have_visible_check_cells_in_row_31(form: FormSpec) -> None:
    checks = {r.id: r.check_cell for r in form.sum_rules() if r.id.startswith("R1.")}
    assert all(c is not None and c.sheet == "t3" and c.address.endswith("31") for c in checks.values())
    assert sorted(c.address for c in checks.values() if c) == [f"{col}31" for col in "DEFGHIJ"]


@pytest.mark.parametrize(
    ("rule_id", "kind", "severity"),
    [
        ("R5", ValidNumberRule, Severity.ERROR),
        ("S1", MaxDecimalsRule, Severity.WARNING),
        ("S2", AllZeroRule, Severity.WARNING),
        ("S3", StockFlowRule, Severity.WARNING),
        ("S4", CarryOverRule, Severity.WARNING),
    ],
)
def test_other_rules_exist_with_severity(form: FormSpec, rule_id: str, kind: type, severity: Severity) -> None:
    rules = {r.id: r for r in form.rules}
    assert isinstance(rules[rule_id], kind)
    assert rules[rule_id].severity is severity


def test_soft_rules_point_at_the_right_cells(form: FormSpec) -> None:
    rules = {r.id: r for r in form.rules}
    s1, s2, s3, s4 = rules["S1"], rules["S2"], rules["S3"], rules["S4"]
    assert isinstance(s1, MaxDecimalsRule) and (s1.cell, s1.places) == ("active.fees.amount_wan", 4)
    assert isinstance(s2, AllZeroRule)
    assert set(s2.cells()) == {"active.rules.issued", "active.rules.repealed", "active.rules.valid"}
    assert {"township", "department", "government_office"} <= set(s2.unit_kinds)
    assert isinstance(s3, StockFlowRule)
    assert (s3.stock, s3.inflow, s3.outflow) == (
        "active.normative.valid", "active.normative.issued", "active.normative.repealed")
    assert isinstance(s4, CarryOverRule)
    columns = ["natural_person", "commercial", "research", "public_interest", "legal_service", "other_org", "total"]
    assert [(p.this_year, p.last_year) for p in s4.pairs] == [
        (f"apply.carried.{c}", f"apply.carry_next.{c}") for c in columns]


def test_get_form_returns_the_packaged_definition() -> None:
    form = get_form("xxgk-annual", "2021")
    assert form.form_id == "xxgk-annual" and form.version == "2021"
    assert form == load_form(DEFAULT_FORM_FILE)


def test_get_form_unknown_version_fails() -> None:
    with pytest.raises(FormSpecError, match="1999"):
        get_form("xxgk-annual", "1999")


# --- broken definitions -------------------------------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_FORM_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "form.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in data["rules"] if r["id"] == rule_id)
    return found


def _unknown_cell_in_rule(data: dict[str, Any]) -> None:
    _rule(data, "R4.review")["right"].append("review.no_such_cell")


def _duplicate_key(data: dict[str, Any]) -> None:
    twin = copy.deepcopy(data["cells"][0])
    twin["address"] = "Z99"
    data["cells"].append(twin)


def _same_address(data: dict[str, Any]) -> None:
    data["cells"][1]["address"] = data["cells"][0]["address"]


def _unknown_sheet(data: dict[str, Any]) -> None:
    data["cells"][0]["sheet"] = "t9"


def _duplicate_rule_id(data: dict[str, Any]) -> None:
    data["rules"].append(copy.deepcopy(_rule(data, "S1")))


def _circular_totals(data: dict[str, Any]) -> None:
    data["rules"].append({"id": "X1", "kind": "sum-equals", "title": "circular", "computes": True,
                          "left": ["review.upheld"], "right": ["review.total"]})


def _computing_rule_with_two_left_cells(data: dict[str, Any]) -> None:
    _rule(data, "R4.review")["left"].append("review.upheld")


def _bad_address(data: dict[str, Any]) -> None:
    data["cells"][0]["address"] = "b5"


def _unknown_rule_kind(data: dict[str, Any]) -> None:
    data["rules"].append({"id": "X2", "kind": "no-such-kind", "title": "?"})


def _unknown_field(data: dict[str, Any]) -> None:
    data["cells"][0]["colour"] = "yellow"


def _text_on_a_cell(data: dict[str, Any]) -> None:
    data["texts"][0]["address"] = "B8"  # fee.notices


def _text_key_of_a_cell(data: dict[str, Any]) -> None:
    data["texts"][0]["key"] = "fee.notices"


def _measure_of_unknown_cell(data: dict[str, Any]) -> None:
    data["report"]["measures"][0]["cells"] = ["apply.no_such_cell"]


def _section_of_unknown_text(data: dict[str, Any]) -> None:
    data["report"]["sections"][0]["text"] = "narrative.nothing"


def _narrative_check_without_group(data: dict[str, Any]) -> None:
    data["report"]["narrative_checks"][0]["pattern"] = "收到[0-9]+件"


def _narrative_check_of_unknown_measure(data: dict[str, Any]) -> None:
    data["report"]["narrative_checks"][0]["measures"] = ["nothing"]


@pytest.mark.parametrize(
    ("breaker", "reason"),
    [
        (_text_on_a_cell, "its address is a cell's"),
        (_text_key_of_a_cell, "also a cell key"),
        (_measure_of_unknown_cell, "apply.no_such_cell"),
        (_section_of_unknown_text, "unknown text narrative.nothing"),
        (_narrative_check_without_group, "exactly one group"),
        (_narrative_check_of_unknown_measure, "unknown measures ['nothing']"),
        (_unknown_cell_in_rule, "review.no_such_cell"),
        (_duplicate_key, "duplicate cell keys"),
        (_same_address, "two cells share one address"),
        (_unknown_sheet, "unknown sheet t9"),
        (_duplicate_rule_id, "duplicate rule ids"),
        (_circular_totals, "circular"),
        (_computing_rule_with_two_left_cells, "exactly one cell"),
        (_bad_address, "address"),
        (_unknown_rule_kind, "no-such-kind"),
        (_unknown_field, "colour"),
    ],
)
def test_broken_definition_fails_at_load(tmp_path: Path, breaker: Callable[[dict[str, Any]], None],
                                         reason: str) -> None:
    data = _raw()
    breaker(data)
    path = _write(tmp_path, data)
    with pytest.raises(FormSpecError, match=re.escape(reason)) as caught:
        load_form(path)
    assert str(path) in str(caught.value)


def test_unmodified_copy_loads(tmp_path: Path, form: FormSpec) -> None:
    # the control for the broken cases above: the copy itself is fine
    assert load_form(_write(tmp_path, _raw())) == form


@pytest.mark.parametrize(
    "text",
    [
        "form_id: xxgk-annual\nsheets: [unclosed\n",  # not YAML
        "",  # empty file
        "- just\n- a list\n",  # YAML, but not a form
        "form_id: xxgk-annual\n",  # required parts missing
    ],
)
def test_bad_yaml_fails_at_load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormSpecError):
        load_form(path)


def test_missing_file_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(FormSpecError, match="nowhere.yaml"):
        load_form(tmp_path / "nowhere.yaml")
