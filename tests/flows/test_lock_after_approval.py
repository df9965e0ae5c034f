"""After the year's report is approved: late returns are kept and shown, never merged but by a recorded exception.

A campaign is opened, two units return, the report is compiled and approved; then more returns come by the inbox
and by the upload page. Everything runs through the real flows and commands, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from cli.main import main
from flows.compile_report import compile_report
from flows.ingest_returns import ingest_returns
from portal.service import PortalService
from schemas.tables import Assignment, Campaign, CampaignState, EventLog, Report, Submission, Unit, Verdict
from tasks.approval import approve_report
from tasks.campaigns import accepted_values
from tasks.db import get_engine
from tests.channels import YEAR, Opened, open_campaign

pytestmark = pytest.mark.usefixtures("prefect_harness")
APPROVED_LICENCES = 120  # tests.factories.valid_figures
LATE_LICENCES = 999


@pytest.fixture
def approved(settings, units_file, form) -> Opened:  # type: ignore[no-untyped-def]
    """T001 and G001 accepted, the report compiled and approved."""
    opened = open_campaign(settings, units_file, form)
    inbox = settings.inbox_dir(YEAR)
    opened.filled("T001", inbox / "T001.xlsx")
    opened.filled("G001", inbox / "G001.xlsx")
    assert ingest_returns(YEAR).accepted == 2
    _compile_and_approve(opened, "张主任")
    return opened


def _compile_and_approve(opened: Opened, approver: str) -> None:
    """A new draft of the county report, approved by approver."""
    compile_report(YEAR, None, "draft", None, [])
    with Session(get_engine(opened.settings.db_url)) as session:
        report = session.exec(select(Report).order_by(col(Report.id).desc())).first()
        campaign = session.get_one(Campaign, opened.campaign.id)
        assert report is not None
        approve_report(session=session, campaign=campaign, report=report, approver=approver, comment="",
                       at=datetime.now(UTC))
        session.commit()


def _figures(opened: Opened) -> dict[str, dict[str, Decimal]]:
    with Session(get_engine(opened.settings.db_url)) as session:
        assert opened.campaign.id is not None
        return accepted_values(session=session, campaign_id=opened.campaign.id)


def _submissions(opened: Opened, code: str) -> list[Submission]:
    with Session(get_engine(opened.settings.db_url)) as session:
        return list(session.exec(select(Submission).join(Unit, col(Unit.id) == col(Submission.unit_id))
                                 .where(Unit.code == code).order_by(col(Submission.version))).all())


def _state(opened: Opened) -> CampaignState:
    with Session(get_engine(opened.settings.db_url)) as session:
        return session.get_one(Campaign, opened.campaign.id).state


def _answers(opened: Opened, code: str) -> list[str]:
    folder = opened.settings.outbox_dir(YEAR) / "answers" / code
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"), key=lambda p: p.stat().st_mtime)]


def test_a_late_good_return_is_held_and_a_late_bad_one_changes_nothing(approved: Opened,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = _figures(approved)
    inbox = approved.settings.inbox_dir(YEAR)
    approved.filled("T001", inbox / "T001-更正.xlsx", active__license__decisions=LATE_LICENCES)
    approved.broken("G001", inbox / "G001-更正.xlsx")

    assert main(["ingest", "--year", str(YEAR)]) == 0
    assert "通过 0，未通过 1，重复 0，定稿后收到未并入 1" in capsys.readouterr().err

    assert _figures(approved) == before  # the approved figures stand
    assert before["T001"]["active.license.decisions"] == APPROVED_LICENCES
    t001, g001 = _submissions(approved, "T001"), _submissions(approved, "G001")
    assert [(s.version, s.verdict) for s in t001] == [(1, Verdict.ACCEPTED), (2, Verdict.HELD)]
    assert [(s.version, s.verdict) for s in g001] == [(1, Verdict.ACCEPTED), (2, Verdict.REJECTED)]
    held_answer, rejected_answer = _answers(approved, "T001")[-1], _answers(approved, "G001")[-1]
    assert "已通过审核并已保存。本年度报告已审核定稿，本次报送未计入汇总，汇总仍以定稿时的数据为准" in held_answer
    assert "本年度报告已审核定稿，修改后的报送将予保存，但不计入汇总" in rejected_answer
    assert "请在原工作簿上逐项修改后重新报送" not in rejected_answer

    assert main(["status", "--year", str(YEAR), "--json"]) == 0
    status = {row["unit"]: row for row in json.loads(capsys.readouterr().out)}
    assert (status["T001"]["status"], status["T001"]["held"]) == ("accepted", 1)
    assert (status["G001"]["status"], status["G001"]["held"]) == ("accepted", 0)  # not turned "rejected"
    assert main(["held", "--year", str(YEAR)]) == 0
    out, err = capsys.readouterr()
    assert out.split("\t")[:4] == [str(t001[1].id), "T001", "城关镇", "第2次"]
    assert "已保存未并入的报送 1 份" in err
    with Session(get_engine(approved.settings.db_url)) as session:
        kinds = session.exec(select(EventLog.kind).where(EventLog.unit_code == "T001")
                             .order_by(col(EventLog.id))).all()
    assert "submission.held" in kinds


def test_an_upload_after_approval_is_told_it_was_kept_not_counted(approved: Opened, tmp_path: Path) -> None:
    service = PortalService(approved.settings)
    link = service.resolve(approved.token("T002"))
    assert link is not None
    path = approved.filled("T002", tmp_path / "T002.xlsx")

    outcome = service.take_upload(link, path.name, path.read_bytes(), "127.0.0.1")

    assert outcome.answer.held and outcome.submission_id is not None
    found = service.answer_of(link, outcome.submission_id, False)
    assert found is not None and found[0].held  # the result page, rebuilt from the database, says so too
    assert "T002" not in _figures(approved)
    assert [row.held for row in service.history(link)] == [True]


def test_a_held_return_is_admitted_only_with_who_and_why_and_the_year_reopens(
        approved: Opened, capsys: pytest.CaptureFixture[str]) -> None:
    inbox = approved.settings.inbox_dir(YEAR)
    approved.filled("T001", inbox / "T001-更正.xlsx", active__license__decisions=LATE_LICENCES)
    ingest_returns(YEAR)
    held = _submissions(approved, "T001")[-1]
    first = _submissions(approved, "T001")[0]
    capsys.readouterr()

    assert main(["held", "--year", str(YEAR), "--admit", str(held.id)]) == 2
    assert "例外并入须写明批准人和理由" in capsys.readouterr().err
    assert main(["held", "--year", str(YEAR), "--admit", str(first.id), "--by", "张主任", "--reason", "更正"]) == 2
    assert "不是定稿后保存未并入的报送" in capsys.readouterr().err
    assert _state(approved) is CampaignState.APPROVED and _figures(approved)["T001"][
        "active.license.decisions"] == APPROVED_LICENCES

    assert main(["held", "--year", str(YEAR), "--admit", str(held.id), "--by", "张主任",
                 "--reason", "城关镇来函更正行政许可数"]) == 0
    err = capsys.readouterr().err
    assert "已例外并入 T001 第2次报送，替换第1次" in err and "请重新汇总报告并再次审批定稿" in err

    assert _figures(approved)["T001"]["active.license.decisions"] == LATE_LICENCES
    assert _state(approved) is CampaignState.OPEN
    with Session(get_engine(approved.settings.db_url)) as session:
        assignment = session.exec(select(Assignment).join(Unit, col(Unit.id) == col(Assignment.unit_id))
                                  .where(Unit.code == "T001")).one()
        assert assignment.accepted_submission_id == held.id
        events = {e.kind: e.detail for e in session.exec(select(EventLog)).all()}
    assert events["submission.admitted"] | {"submission_id": held.id} == {
        "submission_id": held.id, "version": 2, "by": "张主任", "reason": "城关镇来函更正行政许可数",
        "replaces_version": 1}
    assert events["campaign.reopened"]["by"] == "张主任"

    assert main(["held", "--year", str(YEAR), "--admit", str(held.id), "--by", "张主任", "--reason", "再次"]) == 2
    assert "已经例外并入" in capsys.readouterr().err
    assert main(["held", "--year", str(YEAR)]) == 0
    assert capsys.readouterr().out == ""  # nothing held any more

    assert main(["audit", "--unit", "T001", "--year", str(YEAR)]) == 0
    trail = capsys.readouterr().out
    assert "报告定稿后收到，已保存未并入汇总" in trail
    assert "定稿后报送（第2次）经例外批准并入汇总，批准人：张主任，理由：城关镇来函更正行政许可数" in trail

    # the year is open again: a new report can be compiled and approved, the first approval stays on record
    _compile_and_approve(approved, "李副县长")
    with Session(get_engine(approved.settings.db_url)) as session:
        approvals = session.exec(select(EventLog.detail).where(EventLog.kind == "report.approved")).all()
    assert [a["approved_by"] for a in approvals] == ["张主任", "李副县长"]
