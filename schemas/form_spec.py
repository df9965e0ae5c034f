"""The statutory form as data: pydantic models for a form definition YAML, and its loader.

A form definition names every cell (stable key, sheet, Excel address, Chinese labels, type, how the county figure
is consolidated), every rule (hard rules block acceptance, soft rules warn) and the sheet layout. The builder, the
reader, the checker, the database and the report all read it; nothing else hard-codes a cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMS_DIR = Path(__file__).parent / "forms"
DEFAULT_FORM_FILE = FORMS_DIR / "xxgk-2021.yaml"

_ADDRESS = re.compile(r"^[A-Z]{1,3}[1-9][0-9]*$")
_RANGE = re.compile(r"^[A-Z]{1,3}[1-9][0-9]*(:[A-Z]{1,3}[1-9][0-9]*)?$")


class FormSpecError(ValueError):
    """A form definition that cannot be used (bad YAML, unknown cell in a rule, duplicate address)."""


class CellType(StrEnum):
    INT = "int"
    DECIMAL = "decimal"


class Consolidation(StrEnum):
    SUM = "sum"  # county figure = sum over the units in scope
    DESIGNATED = "designated"  # county figure = the figure of the campaign's designated unit


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CellSpec(_Frozen):
    key: str = Field(description="Stable key, e.g. apply.new.natural_person; also the workbook's defined name")
    sheet: str = Field(description="Id of the sheet the cell is on")
    address: str = Field(pattern=_ADDRESS.pattern, description="Excel address on that sheet, e.g. D6")
    table: str = Field(description="Statutory table number, e.g. 三、")
    row: str = Field(description="Chinese row label; '/' separates the label's levels")
    col: str = Field(description="Chinese column label; '/' separates the label's levels")
    type: CellType = CellType.INT
    places: int = Field(default=0, ge=0, le=10, description="Decimal places the county convention keeps")
    consolidation: Consolidation = Consolidation.SUM

    @property
    def label(self) -> str:
        """Human label in Chinese: the row's last level and the column's last level."""
        return f"{self.row.split('/')[-1]}｜{self.col.split('/')[-1]}"

    @property
    def row_number(self) -> int:
        return int(re.sub(r"^[A-Z]+", "", self.address))

    @property
    def column_letter(self) -> str:
        return re.sub(r"[0-9]+$", "", self.address)


class SheetCell(_Frozen):
    sheet: str
    address: str = Field(pattern=_ADDRESS.pattern)


class SumEqualsRule(_Frozen):
    """left sum == right sum. With computes=True the single left cell is a total: a formula in the workbook, and
    recomputed from its parts on return (a typed total that disagrees with its parts is an issue)."""

    kind: Literal["sum-equals"]
    id: str
    title: str
    severity: Severity = Severity.ERROR
    left: list[str] = Field(min_length=1)
    right: list[str] = Field(min_length=1)
    computes: bool = False
    left_label: str = Field(default="左边合计", description="How the unit is told what the left side is")
    right_label: str = Field(default="右边合计", description="How the unit is told what the right side is")
    check_cell: SheetCell | None = Field(default=None, description="Visible in-sheet check of this rule")

    @model_validator(mode="after")
    def _total_is_single(self) -> SumEqualsRule:
        if self.computes and len(self.left) != 1:
            raise ValueError(f"rule {self.id}: a computing rule has exactly one cell on the left")
        return self

    def cells(self) -> list[str]:
        return [*self.left, *self.right]


class ValidNumberRule(_Frozen):
    """Every cell is present and a number of its type: whole numbers >= 0; decimals >= 0."""

    kind: Literal["valid-number"]
    id: str
    title: str
    severity: Severity = Severity.ERROR

    def cells(self) -> list[str]:
        return []


class MaxDecimalsRule(_Frozen):
    kind: Literal["max-decimals"]
    id: str
    title: str
    severity: Severity = Severity.WARNING
    cell: str
    places: int = Field(ge=0)

    def cells(self) -> list[str]:
        return [self.cell]


class AllZeroRule(_Frozen):
    """Cells that must be zero for units of the given kinds (e.g. 规章 below the districted-city level)."""

    kind: Literal["all-zero"]
    id: str
    title: str
    severity: Severity = Severity.WARNING
    cells_: list[str] = Field(alias="cells", min_length=1)
    unit_kinds: list[str]

    def cells(self) -> list[str]:
        return list(self.cells_)


class StockFlowRule(_Frozen):
    """Cross-year: stock(y) == stock(y-1) + inflow(y) - outflow(y)."""

    kind: Literal["stock-flow"]
    id: str
    title: str
    severity: Severity = Severity.WARNING
    stock: str
    inflow: str
    outflow: str

    def cells(self) -> list[str]:
        return [self.stock, self.inflow, self.outflow]


class CarryPair(_Frozen):
    this_year: str
    last_year: str


class CarryOverRule(_Frozen):
    """Cross-year: this year's cell == last year's paired cell (上年结转 = 上年结转下年度)."""

    kind: Literal["carry-over"]
    id: str
    title: str
    severity: Severity = Severity.WARNING
    pairs: list[CarryPair] = Field(min_length=1)

    def cells(self) -> list[str]:
        return [c for p in self.pairs for c in (p.this_year, p.last_year)]


Rule = Annotated[
    SumEqualsRule | ValidNumberRule | MaxDecimalsRule | AllZeroRule | StockFlowRule | CarryOverRule,
    Field(discriminator="kind"),
]


class SheetKind(StrEnum):
    TABLE = "table"  # one of the statutory tables 二, 三, 四
    NARRATIVE = "narrative"  # the report's prose (一, 五, 六) and the figures section 六 states (信息处理费)


class TextSpec(_Frozen):
    """A text the unit writes into its workbook: the prose of one section of its own annual report."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_.]*$", description="Stable key and defined name, e.g. narrative.overview")
    sheet: str
    address: str = Field(pattern=_ADDRESS.pattern)
    section: str = Field(description="Report section the text is, e.g. 一")
    label: str
    max_chars: int = Field(default=30_000, gt=0, le=32_767, description="Excel holds 32,767 characters a cell")


class LabelSpec(_Frozen):
    range: str = Field(pattern=_RANGE.pattern)
    text: str
    style: Literal["title", "header", "row", "check"]


class SheetSpec(_Frozen):
    id: str
    name: str = Field(max_length=31, description="Excel sheet name (31 characters at most)")
    kind: SheetKind = SheetKind.TABLE
    unit_line: str = Field(pattern=_RANGE.pattern, description="Merged range showing the unit and year")
    labels: list[LabelSpec]
    merges: list[str] = Field(default_factory=list, description="Value cells spanning several columns (top-left)")
    column_widths: dict[str, float] = Field(default_factory=dict)
    row_heights: dict[int, float] = Field(default_factory=dict, description="Tall rows for the texts")


class MeasureSpec(_Frozen):
    """A figure the report talks about: the sum of some cells (新收申请, 不予公开 over its 8 reasons, ...)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(description="As a sentence names it, e.g. 新收政府信息公开申请")
    short: str = Field(default="", description="As a table or a chart names it; default: the label")
    cells: list[str] = Field(min_length=1)
    unit: str = "件"
    group: str | None = Field(default=None, description="Charted together: outcome, applicant")
    compare: bool = Field(default=False, description="A row of the comparison with last year")
    breakdown: bool = Field(default=False, description="A column of the per-unit breakdown")

    @property
    def name(self) -> str:
        return self.short or self.label


class FactSpec(_Frozen):
    """Sentences made from the figures, by a macro of tasks/templates/report_facts.j2; a coordinator's text may
    place them with {{placeholder}}."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="The macro's name")
    placeholder: str = Field(description="Chinese name used in a text, e.g. 依申请公开 for {{依申请公开}}")


class ReportSectionSpec(_Frozen):
    number: str = Field(description="一 … 六")
    heading: str
    sheet: str | None = Field(default=None, description="A table section: the sheet it shows")
    text: str | None = Field(default=None, description="A prose section: the text key that holds it")
    facts: str | None = Field(default=None, description="Id of the sentences that open the section")
    facts_unless: str | None = Field(default=None, description="A prose section naming this (信息处理费) states "
                                     "the fact itself: the sentences are not added")
    hint: str = Field(default="", description="What belongs in a prose section, shown while it is unwritten")


class NarrativeCheck(_Frozen):
    """N1: a figure the prose states must be one of the table's (收到N件 -> 新收, or 新收+上年结转)."""

    id: str
    pattern: str = Field(description="Regular expression; its one group is the figure")
    measures: list[str] = Field(min_length=1, description="The figure may equal any of these measures")
    title: str

    @model_validator(mode="after")
    def _one_group(self) -> NarrativeCheck:
        if re.compile(self.pattern).groups != 1:
            raise ValueError(f"narrative check {self.id}: the pattern needs exactly one group")
        return self


class SectionPrompt(_Frozen):
    """What a section must say for some reporting bodies (第五十条: governments report 考核、评议、责任追究)."""

    section: str
    keywords: list[str] = Field(min_length=1, description="The section says it if it names every keyword")
    unit_kinds: list[str] = Field(description="Unit kinds it applies to; the county report always")
    text: str


class ChartSpec(_Frozen):
    """A chart in a report section: a group of measures this year (bars), or measures over the years (trend)."""

    kind: Literal["bars", "trend"]
    section: str = Field(description="Number of the section it follows, e.g. 三")
    caption: str
    group: str | None = Field(default=None, description="bars: the group of measures, e.g. outcome")
    measures: list[str] = Field(default_factory=list, description="trend: the measures drawn over the years")


class ReportSpec(_Frozen):
    sections: list[ReportSectionSpec] = Field(min_length=1)
    preface: str = Field(default="", description="Paragraph under the title; {basis}, {year}, {compiled_by} filled")
    measures: list[MeasureSpec]
    facts: list[FactSpec] = Field(default_factory=list)
    narrative_checks: list[NarrativeCheck] = Field(default_factory=list)
    prompts: list[SectionPrompt] = Field(default_factory=list)
    charts: list[ChartSpec] = Field(default_factory=list)

    @cached_property
    def measure_by_id(self) -> dict[str, MeasureSpec]:
        return {m.id: m for m in self.measures}

    def group(self, name: str) -> list[MeasureSpec]:
        return [m for m in self.measures if m.group == name]


class FormSpec(_Frozen):
    form_id: str = Field(pattern=r"^[a-z0-9-]+$")
    version: str
    title: str
    basis: str = Field(description="The notice that defines the format")
    instructions: list[str] = Field(default_factory=list, description="填报说明; {year} and {deadline} are filled")
    sheets: list[SheetSpec] = Field(min_length=1)
    cells: list[CellSpec] = Field(min_length=1)
    texts: list[TextSpec] = Field(default_factory=list)
    rules: list[Rule]
    report: ReportSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FormSpec:
        sheet_ids = {s.id for s in self.sheets}
        keys = [c.key for c in self.cells]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate cell keys")
        places = [(c.sheet, c.address) for c in self.cells]
        if len(set(places)) != len(places):
            raise ValueError("two cells share one address")
        for cell in self.cells:
            if cell.sheet not in sheet_ids:
                raise ValueError(f"cell {cell.key}: unknown sheet {cell.sheet}")
        known = set(keys)
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate rule ids")
        for rule in self.rules:
            unknown = [k for k in rule.cells() if k not in known]
            if unknown:
                raise ValueError(f"rule {rule.id}: unknown cells {unknown}")
        computed = [r.left[0] for r in self.sum_rules() if r.computes]
        if len(set(computed)) != len(computed):
            raise ValueError("a total is computed by two rules")
        self._check_texts(sheet_ids, set(keys), places)
        if self.report is not None:
            self._check_report(known)
        return self

    def _check_texts(self, sheet_ids: set[str], keys: set[str], places: list[tuple[str, str]]) -> None:
        text_keys = [t.key for t in self.texts]
        if len(set(text_keys)) != len(text_keys) or keys & set(text_keys):
            raise ValueError("a text key is used twice, or is also a cell key")
        for text in self.texts:
            if text.sheet not in sheet_ids:
                raise ValueError(f"text {text.key}: unknown sheet {text.sheet}")
            if (text.sheet, text.address) in places:
                raise ValueError(f"text {text.key}: its address is a cell's")

    def _check_report(self, known: set[str]) -> None:
        assert self.report is not None
        report = self.report
        ids = [m.id for m in report.measures]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate measure ids")
        for measure in report.measures:
            if unknown := [k for k in measure.cells if k not in known]:
                raise ValueError(f"measure {measure.id}: unknown cells {unknown}")
        texts = {t.key for t in self.texts}
        facts = {f.id for f in report.facts}
        for section in report.sections:
            if section.sheet is not None and self.sheet_by_id.get(section.sheet, None) is None:
                raise ValueError(f"report section {section.number}: unknown sheet {section.sheet}")
            if section.text is not None and section.text not in texts:
                raise ValueError(f"report section {section.number}: unknown text {section.text}")
            if section.facts is not None and section.facts not in facts:
                raise ValueError(f"report section {section.number}: unknown facts {section.facts}")
        for check in report.narrative_checks:
            if unknown := [m for m in check.measures if m not in report.measure_by_id]:
                raise ValueError(f"narrative check {check.id}: unknown measures {unknown}")
        numbers = {s.number for s in report.sections}
        for chart in report.charts:
            if chart.section not in numbers:
                raise ValueError(f"chart {chart.caption}: unknown section {chart.section}")
            if chart.kind == "bars" and not report.group(chart.group or ""):
                raise ValueError(f"chart {chart.caption}: no measures in group {chart.group}")
            if unknown := [m for m in chart.measures if m not in report.measure_by_id]:
                raise ValueError(f"chart {chart.caption}: unknown measures {unknown}")

    @cached_property
    def cell_by_key(self) -> dict[str, CellSpec]:
        return {c.key: c for c in self.cells}

    @cached_property
    def sheet_by_id(self) -> dict[str, SheetSpec]:
        return {s.id: s for s in self.sheets}

    @cached_property
    def totals(self) -> dict[str, SumEqualsRule]:
        """Total cell key -> the rule that computes it, in an order where parts come before their totals."""
        by_total = {r.left[0]: r for r in self.sum_rules() if r.computes}
        ordered: dict[str, SumEqualsRule] = {}

        def visit(key: str, path: tuple[str, ...]) -> None:
            if key in ordered or key not in by_total:
                return
            if key in path:
                raise FormSpecError(f"circular totals through {key}")
            for part in by_total[key].right:
                visit(part, (*path, key))
            ordered[key] = by_total[key]

        for key in by_total:
            visit(key, ())
        return ordered

    @cached_property
    def table_sheets(self) -> list[SheetSpec]:
        """The sheets of the statutory tables, in order (二, 三, 四)."""
        return [s for s in self.sheets if s.kind is SheetKind.TABLE]

    @cached_property
    def statutory_cells(self) -> list[CellSpec]:
        """The cells of the statutory tables: what a published report holds (200 in the 2021 format)."""
        tables = {s.id for s in self.table_sheets}
        return [c for c in self.cells if c.sheet in tables]

    @cached_property
    def input_cells(self) -> list[CellSpec]:
        return [c for c in self.cells if c.key not in self.totals]

    @cached_property
    def input_whole(self) -> tuple[tuple[str, bool], ...]:
        """Each input cell's key, and whether it takes a whole number: what checking a return loops over."""
        return tuple((c.key, c.type is CellType.INT) for c in self.input_cells)

    @cached_property
    def total_parts(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each total's key and its parts, parts before their totals (as in totals)."""
        return tuple((key, tuple(rule.right)) for key, rule in self.totals.items())

    def sum_rules(self) -> Iterator[SumEqualsRule]:
        return (r for r in self.rules if isinstance(r, SumEqualsRule))

    def cells_on(self, sheet_id: str) -> list[CellSpec]:
        return [c for c in self.cells if c.sheet == sheet_id]

    def texts_on(self, sheet_id: str) -> list[TextSpec]:
        return [t for t in self.texts if t.sheet == sheet_id]


# libyaml's safe loader where PyYAML has it (its wheels do): the form's 5,000 nodes in ~0.05 s, not ~0.4 s, the
# first thing every command and flow process does
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_form(path: Path = DEFAULT_FORM_FILE) -> FormSpec:
    """Load and validate a form definition file; raise FormSpecError with the precise reason."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506 (a safe loader)
        form = FormSpec.model_validate(raw)
        _ = form.totals  # fail on circular totals at load time
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise FormSpecError(f"{path}: {exc}") from exc
    return form


@lru_cache(maxsize=8)
def get_form(form_id: str = "xxgk-annual", version: str = "2021") -> FormSpec:
    """The packaged form definition with this id and version."""
    for path in sorted(FORMS_DIR.glob("*.yaml")):
        form = load_form(path)
        if form.form_id == form_id and form.version == version:
            return form
    raise FormSpecError(f"no form definition {form_id} version {version} in {FORMS_DIR}")
