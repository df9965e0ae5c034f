"""The Chinese answer to a return: a receipt for an accepted one, the full issue list for a rejected one."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.form_spec import FormSpec
from schemas.issues import Issue
from tasks.answers import SENDER, Answer, render_answer, write_answer
from tasks.check import CheckContext, check_values
from tests.factories import valid_figures

RECEIVED = datetime(2022, 1, 10, 2, 30, 5, tzinfo=UTC)  # 10:30 in China


def answer(issues: list[dict[str, Any]] | None = None, **changes: Any) -> Answer:
    fields: dict[str, Any] = {
        "unit_code": "T001", "unit_name": "城关镇", "file_name": "城关镇年报.xlsx", "year": 2021, "accepted": True,
        "duplicate": False, "version": 1, "received_at": RECEIVED, "replaces": None, "issues": issues or [],
        "deadline": date(2022, 1, 20),
    }
    fields.update(changes)
    return Answer(**fields)


@pytest.fixture
def rejected_issues(form: FormSpec) -> list[Issue]:
    raw: dict[str, Any] = {k: float(v) for k, v in valid_figures(form, apply__new__commercial=2).items()}
    raw.update({"active.license.decisions": "一百二十", "review.upheld": -1.0, "apply.new.total": 9.0,
                "active.fees.amount_wan": 1.234567})
    issues = check_values(raw, form, CheckContext(unit_kind="township")).issues
    assert {i.code for i in issues} == {"type-error", "negative-value", "total-mismatch", "sum-mismatch",
                                        "too-many-decimals"}
    return issues


def test_receipt_for_an_accepted_return() -> None:
    text = render_answer(answer())
    assert text.startswith("城关镇：")
    assert "已通过审核" in text and "未通过" not in text
    assert "2021年" in text and "城关镇年报.xlsx" in text and "第1次" in text
    assert "2022-01-10 10:30" in text  # received time in China
    assert "问题清单" not in text
    assert SENDER in text


def test_receipt_with_warnings_lists_them_as_hints(rejected_issues: list[Issue]) -> None:
    warnings = [i.public() for i in rejected_issues if not i.is_error]
    text = render_answer(answer(warnings))
    assert "已通过审核" in text
    assert "提示" in text and "问题清单" not in text
    assert "单元格 B16" in text and "〔规则 S1〕" in text


def test_receipt_that_replaces_an_earlier_return() -> None:
    text = render_answer(answer(version=3, replaces=2))
    assert "第3次" in text and "替换此前已通过的第2次" in text


def test_a_return_repeating_the_previous_figures_is_told_so(rejected_issues: list[Issue]) -> None:
    errors = [i.public() for i in rejected_issues if i.is_error]
    rejected = render_answer(answer(errors, accepted=False, version=3, repeats=2))
    assert "与第2次报送完全相同，未作任何修改" in rejected and "另存的副本" in rejected
    assert rejected.index("完全相同") < rejected.index("问题清单")  # said before the list it explains
    accepted = render_answer(answer(version=3, replaces=2, repeats=2))
    assert "各项数据与第2次报送完全相同。" in accepted and "未作任何修改" not in accepted
    held = render_answer(answer(version=3, repeats=2, locked=True))
    assert "未计入汇总" in held and "与第2次报送完全相同" in held
    # a first return, a changed one and a duplicate (the same file, answered as such) say nothing of it
    assert all("各项数据与" not in render_answer(a) for a in (
        answer(), answer(errors, accepted=False, version=2), answer(duplicate=True, version=2, repeats=1)))


def test_rejection_lists_every_issue(rejected_issues: list[Issue]) -> None:
    issues = [i.public() for i in rejected_issues]
    text = render_answer(answer(issues, accepted=False, version=2))
    errors = [i for i in rejected_issues if i.is_error]
    assert "未通过审核" in text and "已通过审核" not in text
    assert f"共发现 {len(errors)} 个问题" in text
    assert "截止日期：2022年1月20日" in text
    assert "问题清单" in text
    for issue in rejected_issues:
        assert f"工作表“{issue.sheet}”" in text
        assert f"单元格 {issue.cell}" in text
        assert f"〔规则 {issue.rule}〕" in text
        assert issue.message in text
    # each error numbered on its own line with sheet, cell and rule together
    for number, issue in enumerate(errors, start=1):
        assert f"{number}. 工作表“{issue.sheet}” 单元格 {issue.cell} 〔规则 {issue.rule}〕" in text
    assert "提示（不影响审核结果" in text  # the warning is kept apart from the errors


def test_rejection_shows_expected_and_found(rejected_issues: list[Issue]) -> None:
    text = render_answer(answer([i.public() for i in rejected_issues], accepted=False))
    assert "应为：4　实际：9" in text  # the typed 本年新收 total (parts: 2 + 2)


def test_structure_issue_without_cell() -> None:
    issue = Issue(code="bad-signature")
    text = render_answer(answer([issue.public()], accepted=False, unit_name=None))
    assert text.startswith("报送单位：")
    assert "共发现 1 个问题" in text and issue.message in text
    assert "单元格" not in text


def test_duplicate_return() -> None:
    text = render_answer(answer(duplicate=True, version=2))
    assert "完全相同" in text and "第2次" in text and "不重复登记" in text


def test_write_answer_under_the_units_folder(tmp_path: Path, rejected_issues: list[Issue]) -> None:
    outbox = tmp_path / "outbox"
    item = answer([i.public() for i in rejected_issues], accepted=False, version=2)
    path = write_answer(item, outbox)
    assert path.parent == outbox / "answers" / "T001"
    assert path.suffix == ".txt"
    assert "第2次" in path.name and "问题清单" in path.name and "城关镇年报" in path.name
    assert path.name.startswith("20220110-103005")
    text = path.read_text(encoding="utf-8")
    assert "未通过审核" in text
    assert all(i.message in text for i in rejected_issues)


def test_write_answer_receipt_and_unidentified(tmp_path: Path) -> None:
    receipt = write_answer(answer(), tmp_path)
    assert receipt.parent == tmp_path / "answers" / "T001" and "回执" in receipt.name
    assert "已通过审核" in receipt.read_text(encoding="utf-8")
    stray = write_answer(answer([Issue(code="not-a-workbook", found="x.txt").public()], unit_code=None,
                                accepted=False, file_name="x.txt"), tmp_path)
    assert stray.parent == tmp_path / "answers" / "_unidentified"
    assert receipt != stray
