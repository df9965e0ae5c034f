"""How a return's figures are stored: one JSON object of exact decimal texts, e.g. {"apply.new.total": "17726"}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache


def figures_text(values: Mapping[str, Decimal]) -> str:
    """Every figure as its exact text: whole numbers plain, decimals as read (never through a float).

    The same text as json.dumps(..., separators=(",", ":")) would write, made directly: a decimal's text needs
    no escaping, and each key is escaped once per process (a form's keys recur in every return).
    """
    return "{" + ",".join(f'{_json_string(key)}:"{_plain(value)}"' for key, value in values.items()) + "}"


def _plain(value: Decimal) -> str:
    text = str(value)  # three times quicker than format(value, "f"), and the same but for an exponent
    return format(value, "f") if "E" in text else text


@lru_cache(maxsize=4096)
def _json_string(text: str) -> str:
    return json.dumps(text)


def figures_from_text(text: str) -> dict[str, Decimal]:
    return {key: Decimal(value) for key, value in json.loads(text).items()}
