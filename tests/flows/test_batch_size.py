"""How many items a task run takes: the setting, or up to twice it so that a big run takes about four."""

from __future__ import annotations

import pytest

from flows.common import batch_size, batches
from schemas.settings import get_settings


@pytest.mark.parametrize(("base", "items", "size"), [
    (200, 0, 200), (200, 24, 200), (200, 800, 200), (200, 1_000, 250), (200, 1_600, 400), (200, 10_000, 400),
    (3, 24, 6), (3, 5, 3)])
def test_a_batch_is_the_setting_or_up_to_twice_it(base: int, items: int, size: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIANBAO_BATCH_SIZE", str(base))
    get_settings.cache_clear()
    try:
        assert batch_size(items) == size
        runs = list(batches(list(range(items)), batch_size(items)))
        assert sum(len(run) for run in runs) == items and len(runs) <= max(4, -(-items // (2 * base)))
    finally:
        get_settings.cache_clear()
