"""Batches of one ingest run store in turn; one that cannot be stored stops the later ones, never hangs them."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from flows.ingest_returns import StoreTurn, store_and_answer


def test_a_batch_after_one_that_could_not_be_stored_is_not_stored() -> None:
    before = StoreTurn()
    before.end(failed=True)
    turn = StoreTurn()
    nothing = cast(Any, None)  # never reached: the batch gives up before storing
    with pytest.raises(RuntimeError, match="earlier batch"):
        store_and_answer.fn(2021, nothing, [], nothing, nothing, before, turn)
    assert not turn.wait()  # and the batch after it gives up too


def test_a_turn_ends_once_and_wakes_the_batch_waiting_for_it() -> None:
    turn = StoreTurn()
    seen: list[bool] = []
    waiter = threading.Thread(target=lambda: seen.append(turn.wait()))
    waiter.start()
    turn.end(failed=False)
    turn.end(failed=True)  # the flow's done-callback, after the task ended its turn itself: no change
    waiter.join(timeout=5)
    assert seen == [True] and not turn.failed
