"""Progress, events, report digest and approval: the pure builders and the persistence functions, no Prefect run."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prefect.client.schemas.actions import ArtifactCreate
from sqlmodel import Session, select

from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Assignment, AssignmentStatus, Campaign, CampaignState, EventLog, Report, Unit, UnitKind
from tasks.approval import ApprovalError, approve_report, send_back_report
from tasks.consolidate import consolidate, figures_json
from tasks.db import get_engine
from tasks.open_campaigns import open_campaign_years
from tasks.progress import (
    TABLE_ROWS_LIMIT,
    CampaignProgress,
    ProgressRow,
    artifact_key,
    load_progress,
    progress_percent,
    progress_table,
    progress_table_note,
    summarize_progress,
)
from tasks.progress_events import event_specs, pending_rows, record_emitted
from tasks.report_digest import build_digest, digest_markdown, load_report_digest
from tasks.status import STATUS_ROWS_A_FETCH, UnitStatus, campaign_status
from tests.factories import valid_figures

AT = datetime(2022, 1, 15, 1, 30, tzinfo=UTC)  # 09:30 in China


def _campaign(session: Session, year: int = 2021, state: CampaignState = CampaignState.OPEN) -> Campaign:
    campaign = Campaign(form_id="xxgk-annual", form_version="2021", year=year, deadline=date(year + 1, 1, 20),
                        secret="s" * 64, state=state)
    session.add(campaign)
    session.flush()
    return campaign


def _report(session: Session, campaign: Campaign, folder: Path, cells: dict[str, object]) -> Report:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{campaign.year}年政府信息公开工作年度报告-draft-20220301-180000"
    for suffix in (".html", ".xlsx"):
        stem.with_suffix(suffix).write_text("x", encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps({"cells": cells}), encoding="utf-8")
    assert campaign.id is not None
    report = Report(campaign_id=campaign.id, figures_sha256="0" * 64, units_expected=4, units_accepted=3,
                    html_path=str(stem.with_suffix(".html")), xlsx_path=str(stem.with_suffix(".xlsx")),
                    json_path=str(stem.with_suffix(".json")), created_at=AT)
    session.add(report)
    session.flush()
    return report


def _county_cells(form: FormSpec, **overrides: int) -> dict[str, object]:
    """County figures of three units with valid returns, as the report's JSON holds them."""
    figures = {code: _with_totals(form, valid_figures(form)) for code in ("D001", "T001", "T002")}
    county = consolidate(form, 2021, figures, 4, None)
    cells: dict[str, object] = dict(figures_json(form, county)["cells"])  # type: ignore[call-overload]
    cells.update(overrides)
    return cells


def _with_totals(form: FormSpec, figures: dict[str, Decimal]) -> dict[str, Decimal]:
    for key, rule in form.totals.items():
        figures[key] = sum((figures[part] for part in rule.right), Decimal(0))
    return figures


def test_artifact_keys_are_keys_prefect_accepts() -> None:
    for what in ("progress", "units", "report"):
        key = artifact_key(2021, what)
        assert ArtifactCreate(key=key, type="markdown", data="x").key == key
    with pytest.raises(ValueError):
        ArtifactCreate(key="Campaign_2021", type="markdown", data="x")


def test_progress_counts_accepted_of_expected_and_tables_in_chinese() -> None:
    rows = [ProgressRow(unit="D001", name="市场监管局", status="accepted", last_submission_at=AT, issue_count=0,
                        reminders=0),
            ProgressRow(unit="T001", name="城关镇", status="rejected", last_submission_at=AT.replace(tzinfo=None),
                        issue_count=3, reminders=2),
            ProgressRow(unit="T002", name="河口乡", status="missing", last_submission_at=None, issue_count=0,
                        reminders=1)]
    progress = CampaignProgress(year=2021, deadline=date(2022, 1, 20), expected=3, accepted=1, rows=rows)
    assert progress_percent(progress) == 33.3
    assert progress_percent(CampaignProgress(year=2021, deadline=date(2022, 1, 20), expected=0, accepted=0,
                                             rows=[])) == 0.0
    table = progress_table(progress)
    assert table[0] == {"单位代码": "D001", "单位名称": "市场监管局", "状态": "已通过", "最近报送": "2022-01-15 09:30",
                        "问题数": 0, "催报次数": 0}
    assert [(r["状态"], r["最近报送"], r["催报次数"]) for r in table[1:]] == [
        ("未通过", "2022-01-15 09:30", 2), ("逾期未报", "—", 1)]


def _statuses(statuses: list[str], held: dict[int, int] | None = None) -> list[UnitStatus]:
    held = held or {}
    return [UnitStatus(unit=f"U{n:05d}", name=f"单位{n}", kind="department", status=status, last_submission_at=None,
                       issue_count=0, late=False, has_accepted=status == "accepted", workbook="", held=held.get(n, 0))
            for n, status in enumerate(statuses)]


def test_a_province_table_lists_the_units_still_to_act_on() -> None:
    county = summarize_progress(2021, date(2022, 1, 20), _statuses(["accepted"] * TABLE_ROWS_LIMIT), {"U00003": 2})
    assert (county.expected, county.accepted, county.pending) == (TABLE_ROWS_LIMIT, TABLE_ROWS_LIMIT, 0)
    table = progress_table(county)
    assert len(table) == TABLE_ROWS_LIMIT and progress_table_note(county) == ""
    assert table[3]["催报次数"] == 2 and "定稿后报送（未并入）" not in table[3]

    kinds = ["accepted"] * 6 + ["rejected", "missing", "returned"]  # a third still to act on
    units = _statuses([kinds[n % len(kinds)] for n in range(10_000)], held={9: 1})
    province = summarize_progress(2021, date(2022, 1, 20), iter(units), {})
    pending = [u.unit for u in units if u.status != "accepted" or u.held]
    assert (province.expected, province.accepted, province.pending, province.held) == (
        10_000, sum(u.status == "accepted" for u in units), len(pending), 1)
    table = progress_table(province)
    assert [r["单位代码"] for r in table] == pending[:TABLE_ROWS_LIMIT] and "U00009" in pending[:5]
    assert {r["状态"] for r in table} >= {"未通过", "逾期未报"}
    assert table[pending.index("U00009")]["定稿后报送（未并入）"] == 1  # the column, once a unit has a held return
    assert progress_table_note(province) == (
        f"；共10000个单位，表中列出尚待处理（未通过或定稿后报送）的{TABLE_ROWS_LIMIT}个（共{len(pending)}个），"
        "全部单位见 nianbao status")


def test_progress_is_read_from_the_database_a_fetch_at_a_time(settings: Settings) -> None:
    """load_progress over more units than a fetch: the same counts and rows as the whole status list gives."""
    with Session(get_engine(settings.db_url)) as session:
        campaign = _campaign(session)
        assert campaign.id is not None
        units = [Unit(code=f"U{n:05d}", name=f"单位{n}", kind=UnitKind.DEPARTMENT)
                 for n in range(STATUS_ROWS_A_FETCH + 500)]
        session.add_all(units)
        session.flush()
        session.add_all(Assignment(campaign_id=campaign.id, unit_id=u.id or 0, workbook_path=f"{u.code}.xlsx",
                                   workbook_sha256="0" * 64,
                                   status=AssignmentStatus.ACCEPTED if n % 3 else AssignmentStatus.REJECTED,
                                   accepted_submission_id=n if n % 3 else None)
                        for n, u in enumerate(units))
        session.add(EventLog(campaign_id=campaign.id, unit_code="U00003", kind="reminder.sent", at=AT, detail={}))
        session.flush()
        progress = load_progress(session=session, campaign=campaign, today=date(2022, 1, 1))
        whole = campaign_status(session=session, campaign=campaign, today=date(2022, 1, 1))
    rejected = [s.unit for s in whole if s.status == "rejected"]
    assert (progress.expected, progress.pending) == (len(whole), len(rejected)) == (STATUS_ROWS_A_FETCH + 500, 500)
    assert [r.unit for r in progress.rows] == rejected[:TABLE_ROWS_LIMIT]
    assert progress.accepted == len(whole) - len(rejected)
    assert [(r.unit, r.reminders) for r in progress.rows[:3]] == [("U00000", 0), ("U00003", 1), ("U00006", 0)]


def test_events_name_the_unit_and_campaign_and_are_emitted_once_per_row(settings: Settings) -> None:
    with Session(get_engine(settings.db_url)) as session:
        campaign = _campaign(session)
        assert campaign.id is not None
        for kind, code in [("campaign.opened", None), ("workbook.issued", "D001"), ("submission.rejected", "D001"),
                           ("submission.accepted", "D001"), ("reminder.written", "T001"),
                           ("reminder.failed-permanent", "T002"), ("mail.sent", "T002"), ("report.compiled", None)]:
            session.add(EventLog(campaign_id=campaign.id, unit_code=code, kind=kind, at=AT, detail={"n": 1}))
        session.flush()
        rows = pending_rows(session=session, campaign=campaign)
        specs = event_specs(campaign, rows)
        assert [(s.event, s.resource["prefect.resource.id"]) for s in specs] == [
            ("nianbao.workbook.issued", "nianbao.unit.D001"), ("nianbao.submission.rejected", "nianbao.unit.D001"),
            ("nianbao.submission.accepted", "nianbao.unit.D001"), ("nianbao.reminder.sent", "nianbao.unit.T001"),
            ("nianbao.reminder.failed", "nianbao.unit.T002"), ("nianbao.report.compiled", "nianbao.campaign.2021")]
        assert specs[0].related == [{"prefect.resource.id": "nianbao.campaign.2021",
                                     "prefect.resource.name": "2021年度", "prefect.resource.role": "campaign"}]
        assert specs[0].payload == {"kind": "workbook.issued", "unit": "D001", "year": 2021, "n": 1}
        assert specs[0].occurred == AT
        # the same row always gives the same event id: a repeat is stored once by the Prefect server
        assert [s.id for s in event_specs(campaign, rows)] == [s.id for s in specs]
        record_emitted(session=session, campaign_id=campaign.id, rows=rows, emitted=len(specs))
        session.flush()
        assert pending_rows(session=session, campaign=campaign) == []
        session.add(EventLog(campaign_id=campaign.id, unit_code="T002", kind="submission.accepted", at=AT))
        session.flush()
        assert [r.unit_code for r in pending_rows(session=session, campaign=campaign)] == ["T002"]


def test_open_campaign_years_lists_only_open_ones(settings: Settings, form: FormSpec) -> None:
    with Session(get_engine(settings.db_url)) as session:
        _campaign(session, 2022)
        _campaign(session, 2020, CampaignState.APPROVED)
        _campaign(session, 2021)
        assert open_campaign_years(session=session, form=form) == [2021, 2022]


def test_digest_shows_key_figures_checks_missing_units_and_files(settings: Settings, form: FormSpec,
                                                                  tmp_path: Path) -> None:
    with Session(get_engine(settings.db_url)) as session:
        campaign = _campaign(session)
        cells = _county_cells(form)
        report = _report(session, campaign, tmp_path / "reports", cells)
        texts = {k: str(v) for k, v in cells.items()}
        digest = build_digest(form, 2021, report, texts, ["示范县人民政府办公室（G001）"])
        text = digest_markdown(digest)
        assert "2021年度汇总报告（草稿）" in text and "已通过审核：**3 / 4** 个单位" in text
        assert f"| {form.cell_by_key['apply.new.total'].label} | 9 |" in text  # 3 units x 3 new applications
        assert "条勾稽规则全部通过" in text
        assert "- 示范县人民政府办公室（G001）" in text
        assert f"({Path(report.html_path).resolve().as_uri()})" in text

        broken = build_digest(form, 2021, report, {**{k: str(v) for k, v in cells.items()},
                                                   "apply.new.total": "10"}, [])
        assert len(broken.failed_checks) >= 1
        assert "条未通过" in digest_markdown(broken) and "无：全部单位均已通过审核。" in digest_markdown(broken)


def test_approval_marks_the_report_final_and_the_campaign_approved(settings: Settings, form: FormSpec,
                                                                     tmp_path: Path) -> None:
    with Session(get_engine(settings.db_url)) as session:
        campaign = _campaign(session)
        report = _report(session, campaign, tmp_path / "reports", _county_cells(form))
        draft_html = report.html_path
        approve_report(session=session, campaign=campaign, report=report, approver="王敏", comment="同意", at=AT)
        session.commit()
        session.refresh(report)
        assert (report.kind, report.approved_by, campaign.state) == ("final", "王敏", CampaignState.APPROVED)
        assert report.approved_at is not None and report.approved_at.replace(tzinfo=UTC) == AT
        assert "-final-" in Path(report.html_path).name and Path(report.html_path).exists()
        assert Path(draft_html).exists()  # the draft file stays as it was compiled
        log = session.exec(select(EventLog).where(EventLog.kind == "report.approved")).one()
        assert log.detail["approved_by"] == "王敏" and log.detail["report_id"] == report.id
        with pytest.raises(ApprovalError, match="already final"):
            send_back_report(session=session, campaign=campaign, report=report, approver="王敏", comment="x", at=AT)


def test_send_back_keeps_a_draft_with_the_comment(settings: Settings, form: FormSpec, tmp_path: Path) -> None:
    with Session(get_engine(settings.db_url)) as session:
        campaign = _campaign(session)
        report = _report(session, campaign, tmp_path / "reports", _county_cells(form))
        with pytest.raises(ApprovalError, match="approver"):
            approve_report(session=session, campaign=campaign, report=report, approver=" ", comment="", at=AT)
        send_back_report(session=session, campaign=campaign, report=report, approver="王敏",
                         comment="请核对城关镇数据", at=AT)
        session.commit()
        session.refresh(report)
        assert (report.kind, report.approved_by, report.review_comment) == ("draft", None, "请核对城关镇数据")
        assert campaign.state is CampaignState.OPEN
        log = session.exec(select(EventLog).where(EventLog.kind == "report.sent_back")).one()
        assert log.detail == {"report_id": report.id, "by": "王敏", "comment": "请核对城关镇数据"}


def test_digest_of_a_report_whose_figures_file_is_gone_says_so(settings: Settings, form: FormSpec,
                                                               tmp_path: Path) -> None:
    with Session(get_engine(settings.db_url)) as session:
        campaign = _campaign(session)
        report = _report(session, campaign, tmp_path / "reports", _county_cells(form))
        Path(report.json_path).unlink()
        digest = load_report_digest(session=session, form=form, campaign=campaign)
        assert digest is not None and digest.key_figures == []
        assert digest.failed_checks == [f"汇总数据文件不存在，无法列示数据：{report.json_path}"]
