"""How a return's figures are stored: one JSON object of exact decimal texts, e.g. {"apply.new.total": "17726"}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal


def figures_text(values: Mapping[str, Decimal]) -> str:
    """Every figure as its exact text: whole numbers plain, decimals as read (never through a float)."""
    return json.dumps({key: format(value, "f") for key, value in values.items()}, separators=(",", ":"))


def figures_from_text(text: str) -> dict[str, Decimal]:
    return {key: Decimal(value) for key, value in json.loads(text).items()}
