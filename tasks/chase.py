"""Who to chase today, and how: a pure planner (dates in, decisions out; no clock, no database, no mail).

The schedule, counted in days from the deadline D (Asia/Shanghai calendar days):
- before it, a reminder on each configured day D-n (default D-7, D-3, D-1) to every unit not yet accepted;
- after it, an escalation on D+1 and every ESCALATE_EVERY_DAYS days after (D+4, D+7, ...) to the unit's leader
  (its contact in copy), and the unit is listed in the coordinator's digest every day;
- a unit whose latest return was rejected is chased the same way, with its outstanding issues;
- accepted units, units whose return awaits its verdict, and units with an earlier accepted return are left alone.
A missed day is caught up: a unit is due when no chase message reached it since the latest scheduled day, so a flow
that did not run on D-7 reminds on D-6; and since a unit's last message is dated, it never gets two on one day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

ESCALATE_EVERY_DAYS = 3


@dataclass(frozen=True)
class UnitSituation:
    """Where one unit stands, as the chase sees it."""

    code: str
    name: str
    status: str  # issued / returned / rejected / accepted
    has_accepted: bool = False  # an earlier accepted return counts even if the latest was rejected
    issues: tuple[dict[str, Any], ...] = ()  # errors of the latest (rejected) return, as Issue.public()
    last_return: datetime | None = None
    email: str = ""
    contact: str = ""
    leader: str = ""
    leader_email: str = ""
    last_chased: date | None = None  # the latest day a reminder or escalation went to it (sent or written)


@dataclass(frozen=True)
class ChaseAction:
    unit: UnitSituation
    kind: str  # reminder / escalation
    level: str  # D-7 = seven days before the deadline, D+1 = the day after it
    days_left: int  # negative after the deadline
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reason: str  # Chinese, for the dry run and the digest


@dataclass(frozen=True)
class ChasePlan:
    today: date
    deadline: date
    actions: tuple[ChaseAction, ...]
    quiet: tuple[tuple[str, str], ...]  # (unit code, why nothing today), for the dry run
    overdue: tuple[UnitSituation, ...]  # not accepted and past the deadline
    rejected: tuple[UnitSituation, ...]  # latest return rejected, nothing accepted
    expected: int
    accepted: int
    digest: bool  # the coordinator's digest is owed today


def plan_chase(*, today: date, deadline: date, reminder_days: tuple[int, ...] | list[int],
               units: list[UnitSituation], digest_done_today: bool = False,
               escalate_every: int = ESCALATE_EVERY_DAYS) -> ChasePlan:
    """Decide today's reminders, escalations and digest; at most one message per unit."""
    due = latest_scheduled_day(today, deadline, tuple(reminder_days), escalate_every)
    actions: list[ChaseAction] = []
    quiet: list[tuple[str, str]] = []
    for unit in units:
        why_not = _why_quiet(unit, today, due)
        if why_not:
            quiet.append((unit.code, why_not))
            continue
        assert due is not None
        actions.append(_action(unit, today, deadline, due))
    chased = [u for u in units if _outstanding(u)]
    overdue = tuple(u for u in chased if today > deadline)
    rejected = tuple(u for u in chased if u.status == "rejected")
    return ChasePlan(
        today=today, deadline=deadline, actions=tuple(actions), quiet=tuple(quiet), overdue=overdue,
        rejected=rejected, expected=len(units), accepted=sum(1 for u in units if u.status == "accepted"),
        digest=not digest_done_today and bool(actions or overdue),
    )


def latest_scheduled_day(today: date, deadline: date, reminder_days: tuple[int, ...],
                         escalate_every: int = ESCALATE_EVERY_DAYS) -> date | None:
    """The latest day on or before today on which the schedule chases (None before the first reminder day)."""
    if today > deadline:
        over = (today - deadline).days
        return deadline + timedelta(days=1 + (over - 1) // escalate_every * escalate_every)
    days = [deadline - timedelta(days=n) for n in reminder_days if n >= 0]
    passed = [d for d in days if d <= today]
    return max(passed) if passed else None


def level_of(day: date, deadline: date) -> str:
    offset = (day - deadline).days
    return f"D{offset:+d}" if offset else "D"


def _outstanding(unit: UnitSituation) -> bool:
    return unit.status in {"issued", "rejected"} and not unit.has_accepted


def _why_quiet(unit: UnitSituation, today: date, due: date | None) -> str:
    if unit.status == "accepted":
        return "已通过审核"
    if unit.status == "returned":
        return "已报送，待审核"
    if unit.has_accepted:
        return "前次报送已通过，汇总以其为准"
    if due is None:
        return "未到催报日"
    if unit.last_chased is not None and unit.last_chased >= due:
        return "今日已催报" if unit.last_chased == today else f"{unit.last_chased:%m月%d日}已催报，未到下次催报日"
    return ""


def _action(unit: UnitSituation, today: date, deadline: date, due: date) -> ChaseAction:
    days_left = (deadline - today).days
    errors = len(unit.issues)
    state = f"报送未通过审核，{errors}个问题未修改" if unit.status == "rejected" else "尚未报送"
    if days_left >= 0:
        when = "今天截止" if days_left == 0 else f"距截止日期还有{days_left}天"
        return ChaseAction(unit, "reminder", level_of(due, deadline), days_left, _addresses(unit.email), (),
                           f"{state}，{when}")
    if unit.leader_email:
        to, cc = _addresses(unit.leader_email), _addresses(unit.email)
        whom = f"督办负责人{unit.leader or ''}"
    else:
        to, cc = _addresses(unit.email), ()
        whom = "未登记负责人邮箱，发给经办人"
    return ChaseAction(unit, "escalation", level_of(due, deadline), days_left, to, cc,
                       f"已逾期{-days_left}天，{state}（{whom}）")


def _addresses(*candidates: str) -> tuple[str, ...]:
    return tuple(a for a in candidates if a)
