"""Mail in the flows, under a real Prefect and a real SMTP server on loopback: the open flow mails each unit its
workbook once however often it runs, a refused address shows in status, and returns are answered by mail."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from prefect import flow
from sqlmodel import Session

from cli.main import main
from flows.common import form_for
from flows.ingest_returns import ingest_returns
from flows.mail_tasks import mail_answers, mail_owed_answers
from flows.open_collection import open_collection
from schemas.settings import Settings, get_settings
from schemas.tables import MailStatus
from tasks.archive import receive_bytes
from tasks.db import get_engine
from tasks.ingest import examine_received
from tasks.intake import load_ingest_context, store_received
from tasks.mail_send import MailOutcome
from tasks.upload_links import verify_token
from tests.conftest import DEADLINE
from tests.factories import register_units, valid_figures
from tests.flows.mail_helpers import YEAR, ledger, return_workbook, use_smtp
from tests.mail_server import Behaviour, smtp_server

pytestmark = pytest.mark.usefixtures("prefect_harness")



def test_the_open_flow_mails_each_unit_its_workbook_once(settings, units_file, monkeypatch):
    register_units(settings, units_file)
    with smtp_server() as (port, server):
        use_smtp(monkeypatch, port)
        first = open_collection(YEAR, DEADLINE)
        second = open_collection(YEAR, DEADLINE)
    assert (first.mailed, second.mailed) == (4, 0)
    assert sorted(r for got in server.received for r in got.rcpt_tos) == [
        "d001@example.gov.cn", "g001@example.gov.cn", "t001@example.gov.cn", "t002@example.gov.cn"]
    for got in server.received:
        message = got.message
        [attachment] = list(message.iter_attachments())
        code = got.rcpt_tos[0][:4].upper()
        [issued] = (get_settings().outbox_dir(YEAR) / "workbooks").glob(f"*-{code}-*.xlsx")
        assert attachment.get_filename() == issued.name and attachment.get_content() == issued.read_bytes()
        plain = message.get_body(("plain",))
        assert plain is not None
        token = plain.get_content().split("/u/", 1)[1].split()[0]
        assert verify_token(token, _secret(settings), now=datetime(2022, 1, 10, tzinfo=UTC)) is not None
    assert [row.status for row in ledger(settings)] == [MailStatus.SENT] * 4


def test_without_smtp_the_open_flow_writes_eml_files_once(settings, units_file):
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    open_collection(YEAR, DEADLINE)
    files = sorted(settings.mail_dir(YEAR).rglob("*.eml"))
    assert [f.parent.name for f in files] == ["D001", "G001", "T001", "T002"]
    assert [row.status for row in ledger(settings)] == [MailStatus.WRITTEN] * 4


def test_a_refused_address_is_recorded_and_shown_in_status(settings, units_file, monkeypatch, capsys):
    register_units(settings, units_file)
    with smtp_server(Behaviour(refuse={"t002@example.gov.cn": "550 5.1.1 Mailbox unavailable"})) as (port, server):
        use_smtp(monkeypatch, port)
        summary = open_collection(YEAR, DEADLINE)
    assert summary.mailed == 3 and len(server.received) == 3
    assert main(["status", "--year", str(YEAR), "--json"]) == 0
    rows = {r["unit"]: r for r in json.loads(capsys.readouterr().out)}
    assert "550" in rows["T002"]["delivery_error"] and rows["T001"]["delivery_error"] is None
    assert main(["status", "--year", str(YEAR)]) == 0
    out = capsys.readouterr().out
    assert "邮件投递失败" in out and "550" in out


def _secret(settings: Settings) -> str:
    from tasks.campaigns import get_campaign

    with Session(get_engine(settings.db_url)) as session:
        return get_campaign(session=session, form=form_for(), year=YEAR).secret


@flow
def _store_and_answer(year: int, files: list[tuple[str, bytes]]) -> list[MailOutcome]:
    """What the ingest flow does for a batch, then the answer-mail task on what it stored."""
    settings = get_settings()
    with Session(get_engine(settings.db_url)) as session:
        context = load_ingest_context(session=session, form=form_for(), year=year)
        received = [(data, receive_bytes(data, name=name, archive_dir=settings.archive_dir, channel="portal"))
                    for name, data in files]
        exams = examine_received(received, form=form_for(), context=context, max_bytes=settings.max_upload_bytes)
        stored = store_received(session=session, context=context, examinations=exams)
        session.commit()
    first = mail_answers(year, context, stored)
    again = mail_answers(year, context, stored)  # a retried task sends nothing twice
    assert all(o.status is None for o in again)
    return first


def test_returns_are_answered_by_mail_receipt_or_issue_list(settings, units_file, monkeypatch, form):
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)  # issue mails as .eml: no SMTP yet
    good = return_workbook(settings, "T001", valid_figures(form), name="good.xlsx")
    bad = return_workbook(settings, "T002", valid_figures(form, apply__new__natural_person=3), name="bad.xlsx")
    files = [(p.name, p.read_bytes()) for p in (good, bad)]
    for p in (good, bad):
        p.unlink()
    with smtp_server() as (port, server):
        use_smtp(monkeypatch, port)
        outcomes = _store_and_answer(YEAR, files)
    assert [o.status for o in outcomes] == [MailStatus.SENT, MailStatus.SENT]
    by_rcpt = {got.rcpt_tos[0]: got.message for got in server.received}
    assert set(by_rcpt) == {"t001@example.gov.cn", "t002@example.gov.cn"}
    assert "已通过审核" in str(by_rcpt["t001@example.gov.cn"]["Subject"])
    rejection = by_rcpt["t002@example.gov.cn"]
    assert "未通过审核" in str(rejection["Subject"])
    text = rejection.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "单元格" in text and "〔规则 R1" in text and "/u/" in text
    kinds = {(row.unit_code, row.kind) for row in ledger(settings) if row.kind in {"receipt", "rejection"}}
    assert kinds == {("T001", "receipt"), ("T002", "rejection")}


@flow
def _owed(year: int, campaign_id: int) -> list[MailOutcome]:
    return mail_owed_answers(year, campaign_id)


def test_the_ingest_flow_answers_by_mail_once_and_owes_nothing(settings, units_file, form):
    register_units(settings, units_file)
    opened = open_collection(YEAR, DEADLINE)
    return_workbook(settings, "G001", valid_figures(form))
    return_workbook(settings, "D001", valid_figures(form, apply__new__natural_person=3))
    ingest_returns(YEAR)
    names = sorted(p.name.split("-")[0] for p in settings.mail_dir(YEAR).rglob("*.eml"))
    assert names == ["下发"] * 4 + ["回执", "问题清单"]  # the answers went out with the ingest run
    assert _owed(YEAR, opened.campaign_id) == []  # so the catch-up finds nothing owed
    kinds = {(row.unit_code, row.kind) for row in ledger(settings) if row.kind in {"receipt", "rejection"}}
    assert kinds == {("G001", "receipt"), ("D001", "rejection")}
