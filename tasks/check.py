"""Check a workbook's raw values against every rule of the form; collect every issue before deciding.

Totals are recomputed from their parts (formulas written by openpyxl carry no cached value, and a unit may have
typed over one); a total that holds a number disagreeing with its parts is an issue of the rule that defines it.
Sums are exact whatever the size of the figures (EXACT): a rule holds or fails on the figures, never on a rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation, localcontext

from schemas.form_spec import (
    AllZeroRule,
    CarryOverRule,
    CellSpec,
    CellType,
    FormSpec,
    MaxDecimalsRule,
    StockFlowRule,
    SumEqualsRule,
)
from schemas.issues import Issue
from tasks.workbook_read import RawValue

_EXACT = 2**53  # floats below this are exact integers when whole
_ZERO = Decimal(0)
_SMALL = tuple(Decimal(n) for n in range(10_000))  # most figures are small whole numbers: made once
# The context every sum of figures is made in. Decimal's default keeps 28 digits, so 10**28 + 1 == 10**28 there and
# a unit whose 勾稽关系 is off by one would pass; here an addition is never rounded. Only additions and comparisons
# run in it (a division would try to fill its precision).
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


@dataclass(frozen=True)
class CheckContext:
    unit_kind: str | None = None
    previous: Mapping[str, Decimal] | None = None  # the unit's accepted figures of last year, where known
    sheet_names: Mapping[str, str] = field(default_factory=dict)  # sheet id -> name, when the unit renamed one


@dataclass
class CheckResult:
    values: dict[str, Decimal]
    issues: list[Issue]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if not i.is_error]

    @property
    def passed(self) -> bool:
        return not self.errors


def check_values(raw: Mapping[str, RawValue], form: FormSpec, context: CheckContext | None = None) -> CheckResult:
    """Parse every input cell, recompute every total, apply every rule; return the figures and all issues."""
    context = context or CheckContext()
    values: dict[str, Decimal] = {}
    issues: list[Issue] = []
    for key, whole in form.input_whole:
        try:
            found = raw[key]
        except KeyError:
            continue  # not found in the workbook: the reader has reported it
        if type(found) is float and whole and 0 <= found < _EXACT and found.is_integer():
            # the usual case, what parse_cell would conclude, made quick
            number = int(found)
            values[key] = _SMALL[number] if number < len(_SMALL) else Decimal(number)
            continue
        cell = form.cell_by_key[key]
        value, issue = parse_cell(found, cell, _sheet(form, cell, context))
        if issue:
            issues.append(issue)
        if value is not None:
            values[key] = value
    with localcontext(EXACT):
        issues.extend(_recompute_totals(raw, form, values, context))
        for rule in form.rules:
            issues.extend(_apply(rule, form, values, context))
    return CheckResult(values, issues)


def texts_of(raw: Mapping[str, RawValue], form: FormSpec) -> dict[str, str]:
    """The texts the unit wrote (its report's prose), line ends made plain and trailing spaces trimmed; empty ones
    left out. Prose is never an issue: whatever a unit writes there is its own to publish."""
    texts = {}
    for spec in form.texts:
        value = raw.get(spec.key)
        if value is None or value == "":
            continue
        if isinstance(value, float):
            value = str(int(value)) if value.is_integer() else repr(value)
        text = str(value).replace("\r\n", "\n").replace("\r", "\n")
        cleaned = "\n".join(line.rstrip() for line in text.split("\n")).strip()
        if cleaned:
            texts[spec.key] = cleaned[:spec.max_chars]
    return texts


def parse_cell(raw: RawValue, cell: CellSpec, sheet: str) -> tuple[Decimal | None, Issue | None]:
    """The exact value of one input cell, or the issue that stops it being one (rule R5)."""

    def issue(code: str, found: str, note: str = "") -> tuple[None, Issue]:
        return None, Issue(code=code, rule="R5", sheet=sheet, cell=cell.address, field=cell.key, label=cell.label,
                           found=found, note=note)

    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return issue("empty-value", "")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return issue("type-error", str(raw)[:40])
    try:
        value = Decimal(raw) if isinstance(raw, int) else Decimal(repr(raw))
    except InvalidOperation:
        return issue("type-error", str(raw)[:40])
    if not value.is_finite():
        return issue("type-error", str(raw)[:40])
    if value < 0:
        return issue("negative-value", _fmt(value))
    if value.is_signed():  # -0 (a program's or a formula's): kept as such it would be shown as -0.0000
        value = value.copy_abs()
    if cell.type is CellType.INT:
        if value != value.to_integral_value():
            return issue("not-whole-number", _fmt(value))
        return Decimal(int(value)), None
    return value, None


def _recompute_totals(raw: Mapping[str, RawValue], form: FormSpec, values: dict[str, Decimal],
                      context: CheckContext) -> Iterator[Issue]:
    for key, parts in form.total_parts:
        try:
            computed = sum([values[part] for part in parts], _ZERO)
        except KeyError:
            continue  # a part could not be read: its own issue says so
        values[key] = computed
        typed = raw.get(key)
        if typed is None or (isinstance(typed, str) and not typed.strip()):
            continue  # a formula saved without a cached value
        number = _typed_number(typed)
        if number is None or number != computed:
            rule = form.totals[key]
            cell = form.cell_by_key[key]
            yield Issue(code="total-mismatch", rule=rule.id, rule_title=rule.title, sheet=_sheet(form, cell, context),
                        cell=cell.address, field=key, label=cell.label, expected=_fmt(computed),
                        found=str(typed)[:40] if number is None else _fmt(number))


def _typed_number(typed: RawValue) -> Decimal | None:
    """The number a total cell holds (NaN and infinities too: they differ from any sum), None for anything else
    (a text, a boolean, a date: a unit may type or format over a total)."""
    if isinstance(typed, bool) or not isinstance(typed, int | float):
        return None
    return Decimal(typed) if isinstance(typed, int) else Decimal(repr(typed))


def _apply(rule: object, form: FormSpec, values: dict[str, Decimal], context: CheckContext) -> Iterator[Issue]:
    if isinstance(rule, SumEqualsRule) and not rule.computes:
        yield from _sum_equals(rule, form, values, context)
    elif isinstance(rule, MaxDecimalsRule) and rule.cell in values:
        exponent = values[rule.cell].as_tuple().exponent
        if isinstance(exponent, int) and -exponent > rule.places:
            yield _cell_issue("too-many-decimals", rule, form, rule.cell, context, _fmt(values[rule.cell]),
                              str(rule.places))
    elif isinstance(rule, AllZeroRule) and context.unit_kind in rule.unit_kinds:
        for key in rule.cells():
            if key in values and values[key] != 0:
                yield _cell_issue("expected-zero", rule, form, key, context, _fmt(values[key]), "0")
    elif isinstance(rule, StockFlowRule) and context.previous and rule.stock in context.previous:
        if all(k in values for k in rule.cells()):
            expected = context.previous[rule.stock] + values[rule.inflow] - values[rule.outflow]
            if values[rule.stock] != expected:
                yield _cell_issue("stock-flow-mismatch", rule, form, rule.stock, context, _fmt(values[rule.stock]),
                                  _fmt(expected))
    elif isinstance(rule, CarryOverRule) and context.previous:
        for pair in rule.pairs:
            if pair.this_year in values and pair.last_year in context.previous:
                if values[pair.this_year] != context.previous[pair.last_year]:
                    yield _cell_issue("carry-over-mismatch", rule, form, pair.this_year, context,
                                      _fmt(values[pair.this_year]), _fmt(context.previous[pair.last_year]))


def _sum_equals(rule: SumEqualsRule, form: FormSpec, values: dict[str, Decimal],
                context: CheckContext) -> Iterator[Issue]:
    if not all(k in values for k in rule.cells()):
        return  # a part is unreadable; that part's own issue says why
    left = sum((values[k] for k in rule.left), Decimal(0))
    right = sum((values[k] for k in rule.right), Decimal(0))
    if left == right:
        return
    if rule.check_cell is not None:
        sheet, address = _sheet_name(form, rule.check_cell.sheet, context), rule.check_cell.address
    else:
        first = form.cell_by_key[rule.left[0]]
        sheet, address = _sheet(form, first, context), first.address
    yield Issue(code="sum-mismatch", severity=rule.severity, rule=rule.id, rule_title=rule.title, sheet=sheet,
                cell=address, field=rule.left[0], expected=_fmt(left), found=_fmt(right),
                note=f"{rule.left_label}为{_fmt(left)}，{rule.right_label}为{_fmt(right)}")


def _cell_issue(code: str, rule: MaxDecimalsRule | AllZeroRule | StockFlowRule | CarryOverRule, form: FormSpec,
                key: str, context: CheckContext, found: str, expected: str) -> Issue:
    cell = form.cell_by_key[key]
    return Issue(code=code, severity=rule.severity, rule=rule.id, rule_title=rule.title,
                 sheet=_sheet(form, cell, context), cell=cell.address, field=key, label=cell.label,
                 expected=expected, found=found)


def _sheet(form: FormSpec, cell: CellSpec, context: CheckContext) -> str:
    return _sheet_name(form, cell.sheet, context)


def _sheet_name(form: FormSpec, sheet_id: str, context: CheckContext) -> str:
    return context.sheet_names.get(sheet_id) or form.sheet_by_id[sheet_id].name


def _fmt(value: Decimal) -> str:
    """As a person writes it: 7 not 7.0, 309.0263 as is."""
    return format(value.normalize(), "f")


def cross_year(values: Mapping[str, Decimal], previous: Mapping[str, Decimal], form: FormSpec) -> list[Issue]:
    """The cross-year rules (S3 stock and flow, S4 carry-over) of figures against last year's."""
    context = CheckContext(previous=previous)
    issues: list[Issue] = []
    with localcontext(EXACT):
        for rule in form.rules:
            if isinstance(rule, StockFlowRule | CarryOverRule):
                issues.extend(_apply(rule, form, dict(values), context))
    return issues


def recheck(values: Mapping[str, Decimal], form: FormSpec) -> list[Issue]:
    """Every sum rule on already-exact figures (the consolidated county figures): totals included."""
    issues: list[Issue] = []
    context = CheckContext()
    with localcontext(EXACT):
        for rule in form.sum_rules():
            if rule.computes:
                key = rule.left[0]
                if key in values and all(p in values for p in rule.right):
                    parts = sum((values[p] for p in rule.right), Decimal(0))
                    if parts != values[key]:
                        cell = form.cell_by_key[key]
                        issues.append(Issue(code="total-mismatch", rule=rule.id, rule_title=rule.title,
                                            sheet=_sheet(form, cell, context), cell=cell.address, field=key,
                                            label=cell.label, expected=_fmt(parts), found=_fmt(values[key])))
            else:
                issues.extend(_sum_equals(rule, form, dict(values), context))
    return issues
