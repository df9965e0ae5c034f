"""ingest-parallel's own arithmetic: how the inbox is split, how the parts add up, a failed part reported.

The whole of it, on a Prefect server with two workers, is tests/deployments/test_parallel_ingest.py.
"""

from __future__ import annotations

import uuid

import pytest

from flows.ingest_parallel import PartRun, add_up, plan_parts, summary_rows
from flows.part_summary import PartCounts


@pytest.mark.parametrize(("waiting", "parts", "expected"), [
    (240, 4, (4, 60)),
    (241, 4, (4, 61)),  # the shares add up to at least the inbox: no file left for want of a share
    (3, 4, (3, 1)),  # no run for nothing
    (0, 4, (1, 1)),  # one still runs: the mailbox, and claims of runs that died
    (10, 1, (1, 10)),
])
def test_the_inbox_is_split_into_shares_that_cover_it(waiting: int, parts: int, expected: tuple[int, int]) -> None:
    runs, share = plan_parts(waiting, parts)
    assert (runs, share) == expected
    assert runs * share >= waiting


def test_no_parts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_parts(10, 0)


def _run(name: str, state: str, counts: PartCounts | None, message: str = "") -> PartRun:
    return PartRun(id=uuid.uuid4(), name=name, state=state, counts=counts, message=message)


def test_the_parts_add_up_and_a_failed_one_is_reported_with_what_becomes_of_its_files() -> None:
    runs = [_run("a", "Completed", PartCounts(files=60, accepted=50, rejected=5, duplicates=5, resumed=2)),
            _run("b", "Completed", PartCounts(files=60, accepted=58, rejected=2, duplicates=0, held=1)),
            _run("c", "Crashed", None, "Flow run infrastructure exited with non-zero status code -9.")]

    summary = add_up(2021, runs)

    assert (summary.files, summary.accepted, summary.rejected, summary.duplicates) == (120, 108, 7, 5)
    assert (summary.held, summary.resumed) == (1, 2)
    assert summary.failed == ["c"]
    rows = summary_rows(summary)
    assert [row["状态"] for row in rows] == ["完成", "完成", "未完成（Crashed）", "2 / 3 完成"]
    assert rows[2]["文件"] == 0 and "由下一次接收运行接手" in str(rows[2]["说明"])
    assert "-9" in str(rows[2]["说明"])
    assert rows[-1]["文件"] == 120 and rows[-1]["运行"] == "合计"


def test_a_completed_run_that_recorded_no_counts_is_not_counted_as_done() -> None:
    summary = add_up(2021, [_run("a", "Completed", None)])
    assert summary.failed == ["a"] and summary.files == 0
