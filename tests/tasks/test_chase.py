"""The chase planner across a simulated January: which day gets which message (dates passed in, never slept)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from tasks.chase import ChasePlan, UnitSituation, latest_scheduled_day, plan_chase

DEADLINE = date(2022, 1, 20)
DAYS = (7, 3, 1)
ISSUE = {"severity": "error", "sheet": "表一", "cell": "C7", "rule": "R1", "message": "合计不符", "expected": "3",
         "found": "2", "code": "total-mismatch"}


def unit(code: str, **changes: Any) -> UnitSituation:
    fields: dict[str, Any] = {"code": code, "name": f"单位{code}", "status": "issued", "email": f"{code}@x.gov.cn",
                              "contact": "经办人", "leader": "", "leader_email": ""}
    fields.update(changes)
    return UnitSituation(**fields)


def _january(units: dict[str, UnitSituation], events: dict[date, dict[str, dict[str, Any]]],
             runs_per_day: int = 1) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Run the planner every day of January (and a few times a day), feeding back what it sent and what units did.

    Returns every message as (day, unit, kind, level) and the days a digest went out."""
    sent: list[tuple[str, str, str, str]] = []
    digests: list[str] = []
    day = date(2022, 1, 1)
    while day <= date(2022, 1, 31):
        for code, change in events.get(day, {}).items():
            units[code] = replace(units[code], **change)
        for _ in range(runs_per_day):
            plan = plan_chase(today=day, deadline=DEADLINE, reminder_days=DAYS, units=list(units.values()),
                              digest_done_today=day.isoformat() in digests)
            for action in plan.actions:
                sent.append((day.isoformat(), action.unit.code, action.kind, action.level))
                units[action.unit.code] = replace(action.unit, last_chased=day)
            if plan.digest:
                digests.append(day.isoformat())
        day += timedelta(days=1)
    return sent, digests


def test_a_simulated_january_gives_each_unit_the_right_message_on_the_right_day():
    units = {
        "LATE": unit("LATE", leader="刘强", leader_email="boss@x.gov.cn"),  # never returns
        "FIXED": unit("FIXED"),  # returns on the 15th, accepted
        "WRONG": unit("WRONG"),  # returns on the 12th, rejected, never fixes it
        "EARLY": unit("EARLY", status="accepted"),  # accepted before anything
        "BOTH": unit("BOTH"),  # accepted on the 10th, a correction rejected on the 18th: the accepted one counts
    }
    events: dict[date, dict[str, dict[str, Any]]] = {
        date(2022, 1, 10): {"BOTH": {"status": "accepted", "has_accepted": True}},
        date(2022, 1, 12): {"WRONG": {"status": "rejected", "issues": (ISSUE,)}},
        date(2022, 1, 15): {"FIXED": {"status": "accepted"}},
        date(2022, 1, 18): {"BOTH": {"status": "rejected", "issues": (ISSUE,)}},
    }
    sent, digests = _january(units, events, runs_per_day=3)  # the flow runs three times a day: no difference
    by_unit: dict[str, list[tuple[str, str, str]]] = {}
    for day, code, kind, level in sent:
        by_unit.setdefault(code, []).append((day[-2:], kind, level))
    reminders = [("13", "reminder", "D-7"), ("17", "reminder", "D-3"), ("19", "reminder", "D-1")]
    escalations = [("21", "escalation", "D+1"), ("24", "escalation", "D+4"), ("27", "escalation", "D+7"),
                   ("30", "escalation", "D+10")]
    assert by_unit == {
        "LATE": reminders + escalations,
        "FIXED": reminders[:1],  # quiet once accepted
        "WRONG": reminders + escalations,  # rejected and never fixed: chased to the end
    }
    # one digest a day: on the reminder days before the deadline, every day after it
    assert digests == ["2022-01-13", "2022-01-17", "2022-01-19"] + [f"2022-01-{d}" for d in range(21, 32)]
    assert len(sent) == len({(d, c) for d, c, _, _ in sent})  # never two messages to a unit on one day


def test_escalation_goes_to_the_leader_with_the_contact_in_copy_or_else_to_the_unit():
    plan = plan_chase(today=date(2022, 1, 21), deadline=DEADLINE, reminder_days=DAYS, units=[
        unit("A", leader="刘强", leader_email="boss@x.gov.cn"), unit("B"), unit("C", email="")])
    a, b, c = plan.actions
    assert (a.kind, a.to, a.cc) == ("escalation", ("boss@x.gov.cn",), ("A@x.gov.cn",))
    assert "督办负责人刘强" in a.reason and "已逾期1天" in a.reason
    assert (b.to, b.cc) == (("B@x.gov.cn",), ()) and "未登记负责人邮箱" in b.reason
    assert c.to == ()  # planned all the same: the send records that there is no address, and the digest shows it
    assert [u.code for u in plan.overdue] == ["A", "B", "C"] and plan.digest


def test_a_rejected_unit_is_reminded_with_its_outstanding_issues():
    plan = plan_chase(today=date(2022, 1, 17), deadline=DEADLINE, reminder_days=DAYS,
                      units=[unit("R", status="rejected", issues=(ISSUE, ISSUE))])
    [action] = plan.actions
    assert action.kind == "reminder" and action.days_left == 3
    assert action.reason == "报送未通过审核，2个问题未修改，距截止日期还有3天"
    assert [u.code for u in plan.rejected] == ["R"]


def test_a_missed_day_is_caught_up_the_next_day_but_only_once():
    units = [unit("A")]
    plan = plan_chase(today=date(2022, 1, 14), deadline=DEADLINE, reminder_days=DAYS, units=units)
    assert [(a.level, a.days_left) for a in plan.actions] == [("D-7", 6)]  # the flow did not run on the 13th
    chased = [replace(units[0], last_chased=date(2022, 1, 14))]
    assert plan_chase(today=date(2022, 1, 15), deadline=DEADLINE, reminder_days=DAYS, units=chased).actions == ()


@pytest.mark.parametrize(("today", "expected"), [
    (date(2022, 1, 12), None), (date(2022, 1, 13), date(2022, 1, 13)), (date(2022, 1, 16), date(2022, 1, 13)),
    (date(2022, 1, 20), date(2022, 1, 19)), (date(2022, 1, 21), date(2022, 1, 21)),
    (date(2022, 1, 23), date(2022, 1, 21)), (date(2022, 1, 24), date(2022, 1, 24)),
])
def test_latest_scheduled_day(today: date, expected: date | None) -> None:
    assert latest_scheduled_day(today, DEADLINE, DAYS) == expected


def test_on_the_deadline_day_itself_when_configured():
    plan = plan_chase(today=DEADLINE, deadline=DEADLINE, reminder_days=(3, 0), units=[unit("A")])
    assert [(a.level, a.reason) for a in plan.actions] == [("D", "尚未报送，今天截止")]


def test_nothing_before_the_first_reminder_day_and_nothing_for_accepted_or_pending_units():
    early: ChasePlan = plan_chase(today=date(2022, 1, 5), deadline=DEADLINE, reminder_days=DAYS, units=[unit("A")])
    assert early.actions == () and not early.digest and early.quiet == (("A", "未到催报日"),)
    late = plan_chase(today=date(2022, 1, 25), deadline=DEADLINE, reminder_days=DAYS,
                      units=[unit("A", status="accepted"), unit("B", status="returned")])
    assert late.actions == () and late.overdue == () and not late.digest
    assert dict(late.quiet) == {"A": "已通过审核", "B": "已报送，待审核"}
