"""How a return's figures are stored: one JSON text of exact decimals."""

from __future__ import annotations

import json
from decimal import Decimal

from schemas.figures import figures_from_text, figures_text


def test_figures_text_is_the_json_of_exact_decimal_texts_and_reads_back_exactly() -> None:
    values = {"apply.new.natural_person": Decimal(17726), "fee.amount": Decimal("309.0263"),
              "tiny": Decimal("0.00001"), "exponent": Decimal("1E+2"), 'odd "key"\\': Decimal(0), "中文": Decimal(5)}
    text = figures_text(values)
    assert text == json.dumps({k: format(v, "f") for k, v in values.items()}, separators=(",", ":"))
    assert json.loads(text)["exponent"] == "100" and json.loads(text)["tiny"] == "0.00001"
    assert figures_from_text(text) == values
    assert figures_text({}) == "{}"
