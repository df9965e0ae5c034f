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


class LabelSpec(_Frozen):
    range: str = Field(pattern=_RANGE.pattern)
    text: str
    style: Literal["title", "header", "row", "check"]


class SheetSpec(_Frozen):
    id: str
    name: str = Field(max_length=31, description="Excel sheet name (31 characters at most)")
    unit_line: str = Field(pattern=_RANGE.pattern, description="Merged range showing the unit and year")
    labels: list[LabelSpec]
    merges: list[str] = Field(default_factory=list, description="Value cells spanning several columns (top-left)")
    column_widths: dict[str, float] = Field(default_factory=dict)


class FormSpec(_Frozen):
    form_id: str = Field(pattern=r"^[a-z0-9-]+$")
    version: str
    title: str
    basis: str = Field(description="The notice that defines the format")
    instructions: list[str] = Field(default_factory=list, description="填报说明; {year} and {deadline} are filled")
    sheets: list[SheetSpec] = Field(min_length=1)
    cells: list[CellSpec] = Field(min_length=1)
    rules: list[Rule]

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
        return self

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


def load_form(path: Path = DEFAULT_FORM_FILE) -> FormSpec:
    """Load and validate a form definition file; raise FormSpecError with the precise reason."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
