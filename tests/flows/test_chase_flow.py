"""The chase flow under a real Prefect and a real SMTP server: reminders before the deadline, escalation to the
leader after it, the digest, one message per unit per day however often it runs, and the dry run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select

from cli.main import main
from flows.chase_late_units import chase_late_units
from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from schemas.tables import EventLog, MailStatus
from tasks.db import get_engine
from tests.conftest import DEADLINE
from tests.factories import UNITS_CSV, register_units, valid_figures
from tests.flows.mail_helpers import YEAR, ledger, return_workbook, use_smtp
from tests.mail_server import Received, smtp_server

pytestmark = pytest.mark.usefixtures("prefect_harness")

# the register of tests.factories, D001 with a leader (the columns are optional: the other units have none)
UNITS_WITH_LEADER = UNITS_CSV.replace("code,name,kind,contact,email,phone",
                                      "code,name,kind,contact,email,phone,leader,leader_email")
UNITS_WITH_LEADER = UNITS_WITH_LEADER.replace("0376-5000004", "0376-5000004,钱局长,leader.d001@example.gov.cn")



@pytest.fixture
def campaign(settings, tmp_path, form):
    """Four units with workbooks; T001 returned and accepted, T002 returned and rejected (R1), D001 and G001 late."""
    units = tmp_path / "units.csv"
    units.write_text(UNITS_WITH_LEADER, encoding="utf-8")
    register_units(settings, units)
    open_collection(YEAR, DEADLINE)  # issue mails written as .eml (no SMTP yet)
    return_workbook(settings, "T001", valid_figures(form))
    return_workbook(settings, "T002", valid_figures(form, apply__new__natural_person=3))
    ingest_returns(YEAR)
    return settings


def _is_answer(got: Received) -> bool:
    return str(got.message["Subject"]).startswith(f"{YEAR}年政府信息公开工作年度报告：")


def _by_recipient(received: list[Received]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for got in received:
        for rcpt in got.rcpt_tos:
            found.setdefault(rcpt, []).append(str(got.message["Subject"]))
    return found


def test_running_the_chase_twice_a_day_sends_each_late_unit_one_message(campaign, monkeypatch):
    with smtp_server() as (port, server):
        use_smtp(monkeypatch, port)
        first = chase_late_units(YEAR, date(2022, 1, 17))  # D-3
        second = chase_late_units(YEAR, date(2022, 1, 17))
        answers = [g for g in server.received if _is_answer(g)]
        sent_on_17th = [g for g in server.received if not _is_answer(g)]
        escalated = chase_late_units(YEAR, date(2022, 1, 21))  # D+1
        again = chase_late_units(YEAR, date(2022, 1, 21))
    assert [(line.unit, line.kind, line.level, line.outcome) for line in first.lines] == [
        ("D001", "reminder", "D-3", "已发送"), ("G001", "reminder", "D-3", "已发送"),
        ("T002", "reminder", "D-3", "已发送")]
    assert first.digest == "已发送" and second.lines == [] and second.digest == ""
    # the ingest run answered both returns already (as .eml files, before SMTP was set): nothing owed, none again
    assert (first.answers, second.answers) == (0, 0) and answers == []
    assert dict(second.quiet)["D001"] == "今日已催报" and dict(second.quiet)["T001"] == "已通过审核"
    on_17th = _by_recipient(sent_on_17th)
    assert {k: len(v) for k, v in on_17th.items()} == {"d001@example.gov.cn": 1, "g001@example.gov.cn": 1,
                                                       "t002@example.gov.cn": 1, "coord@example.gov.cn": 1}
    assert "t001@example.gov.cn" not in on_17th  # accepted: left alone
    [t002] = [got.message for got in sent_on_17th if got.rcpt_tos == ["t002@example.gov.cn"]]
    text = t002.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "未通过审核" in text and "〔规则 R1" in text  # chased with its outstanding issues

    assert [(line.unit, line.kind, line.to, line.cc) for line in escalated.lines] == [
        ("D001", "escalation", ["leader.d001@example.gov.cn"], ["d001@example.gov.cn"]),
        ("G001", "escalation", ["g001@example.gov.cn"], []),
        ("T002", "escalation", ["t002@example.gov.cn"], [])]
    assert again.lines == [] and again.digest == ""
    chase_mail = [g for g in server.received if not _is_answer(g)]
    assert len(chase_mail) == 4 + 4  # three reminders and a digest on each of the two days, nothing twice
    [leader_mail] = [g for g in server.received if "leader.d001@example.gov.cn" in g.rcpt_tos]
    assert sorted(leader_mail.rcpt_tos) == ["d001@example.gov.cn", "leader.d001@example.gov.cn"]
    assert str(leader_mail.message["Subject"]).startswith("【逾期督办】")

    chase_rows = [row for row in ledger(campaign) if row.kind in {"reminder", "escalation", "digest"}]
    assert len(chase_rows) == 8 and all(row.status is MailStatus.SENT for row in chase_rows)
    assert {(row.unit_code, row.day, row.level) for row in chase_rows if row.kind == "escalation"} == {
        ("D001", date(2022, 1, 21), "D+1"), ("G001", date(2022, 1, 21), "D+1"), ("T002", date(2022, 1, 21), "D+1")}
    with Session(get_engine(campaign.db_url)) as session:
        logged = session.exec(select(EventLog).where(EventLog.kind == "reminder.sent")).all()
    assert len(logged) == 6


def test_the_dry_run_lists_who_would_be_chased_and_why_and_sends_nothing(campaign, capsys):
    summary = chase_late_units(YEAR, date(2022, 1, 21), dry_run=True)
    assert summary.dry_run and [line.unit for line in summary.lines] == ["D001", "G001", "T002"]
    assert all(line.outcome == "演练，未发送" for line in summary.lines)
    assert "已逾期1天" in summary.lines[0].reason and "督办负责人钱局长" in summary.lines[0].reason
    assert summary.digest.startswith("将发送")
    assert main(["chase", "--year", str(YEAR), "--today", "2022-01-21", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "演练" in out and "D001" in out and "逾期督办" in out and "T001" not in out
    chase_kinds = {"reminder", "escalation", "digest"}
    assert [row for row in ledger(campaign) if row.kind in chase_kinds] == []
    assert not [p for p in Path(campaign.mail_dir(YEAR)).rglob("*.eml") if "督办" in p.name]
    # and the real run, without SMTP, writes them as .eml files
    assert main(["chase", "--year", str(YEAR), "--today", "2022-01-21"]) == 0
    written = sorted(p.name.split("-")[0] for p in Path(campaign.mail_dir(YEAR)).rglob("*.eml")
                     if p.name.split("-")[0] in {"督办", "日报"})
    assert written == ["日报", "督办", "督办", "督办"]
