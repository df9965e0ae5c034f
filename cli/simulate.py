"""A unit's clerk, simulated: open the issued workbook, type figures into cells found by defined name, save.

Uses openpyxl, as another program would; the demo, the tests and the benchmark fill workbooks through this.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import openpyxl


def fill_by_names(source: Path, target: Path, values: Mapping[str, object]) -> Path:
    """Copy the workbook at source to target with each named cell set to its value (Decimal as a number)."""
    wb = openpyxl.load_workbook(source)
    for key, value in values.items():
        sheet_name, address = next(iter(wb.defined_names[key].destinations))
        wb[sheet_name][address.replace("$", "")] = float(value) if isinstance(value, Decimal) else value
    target.parent.mkdir(parents=True, exist_ok=True)
    wb.save(target)
    return target
