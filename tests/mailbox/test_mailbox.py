"""Mailbox in, against a real dovecot on loopback: replies with workbooks go through the one intake path, other
mail is answered politely and kept, and every message is processed once however often it is polled."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

import tasks.mailbox_intake as mailbox_intake
from flows.mailbox_tasks import poll_mailbox, take_mailbox
from schemas.settings import Settings, get_settings
from schemas.tables import MailboxMessage, Submission, Unit
from tasks.db import get_engine
from tasks.mailbox import Mailbox, MailboxConfig, MailboxError, mailbox_config
from tests.channels import YEAR, Opened
from tests.mailbox.dovecot import ImapServer
from tests.ports import free_port

pytestmark = pytest.mark.usefixtures("prefect_harness")
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _mail(sender: str, subject: str, *, attachments: list[tuple[str, bytes, tuple[str, str]]] = (),  # type: ignore[assignment]
          headers: dict[str, str] | None = None, body: str = "您好，报表见附件。") -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = "xxgk@county.example"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="unit.example")
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(body)
    for name, data, (maintype, subtype) in attachments:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def _session(settings: Settings) -> Session:
    return Session(get_engine(settings.db_url))


def _submissions(settings: Settings) -> list[tuple[str, str, str, str, str]]:
    with _session(settings) as session:
        rows = session.exec(select(Submission, Unit).join(Unit, col(Unit.id) == col(Submission.unit_id))
                            .order_by(col(Submission.id))).all()
    return [(unit.code, sub.verdict.value, sub.channel, sub.sender, sub.original_name) for sub, unit in rows]


def _ledger(settings: Settings) -> list[MailboxMessage]:
    with _session(settings) as session:
        return list(session.exec(select(MailboxMessage).order_by(col(MailboxMessage.uid))).all())


def _emls(settings: Settings) -> list[Path]:
    return sorted(settings.mail_dir(YEAR).rglob("*.eml"))


def _flags(server: ImapServer, folder: str = "INBOX") -> list[bytes]:
    conn = server.client()
    try:
        _, count = conn.select(folder)
        if count[0] == b"0":
            return []
        _, data = conn.fetch("1:*", "(FLAGS)")
        return [item for item in data if isinstance(item, bytes)]
    finally:
        conn.logout()


def test_replies_are_taken_in_answered_and_kept_once(opened: Opened, imap_server: ImapServer,
                                                     tmp_path: Path) -> None:
    settings = get_settings()
    good = opened.filled("T001", tmp_path / "城关镇年报.xlsx").read_bytes()
    broken = opened.broken("D001", tmp_path / "市场监管局.xlsx").read_bytes()
    imap_server.append(_mail("李强 <t001@example.gov.cn>", "城关镇2021年度年报", attachments=[
        ("城关镇年报.xlsx", good, XLSX), ("盖章件.pdf", b"%PDF-1.4 scan", ("application", "pdf"))]))
    imap_server.append(_mail("赵刚 <zhao.personal@example.com>", "回复：年报填报", attachments=[
        ("市场监管局.xlsx", broken, XLSX)]))
    imap_server.append(_mail("张丽 <t002@example.gov.cn>", "请问怎么填？", body="表格在哪里下载？"))
    imap_server.append(_mail("MAILER-DAEMON@relay.example", "Undelivered Mail Returned to Sender",
                             headers={"Auto-Submitted": "auto-replied"}))

    summary = poll_mailbox(YEAR)

    assert (summary.messages, summary.accepted, summary.rejected, summary.notes, summary.automatic) == (4, 1, 1, 2, 1)
    assert _submissions(settings) == [
        ("T001", "accepted", "mail", "t001@example.gov.cn", "城关镇年报.xlsx"),  # RFC 2231 name decoded
        ("D001", "rejected", "mail", "zhao.personal@example.com", "市场监管局.xlsx"),
    ]
    ledger = _ledger(settings)
    assert [row.state for row in ledger] == ["processed", "processed", "processed", "auto-reply"]
    assert ledger[0].other_attachments == ["盖章件.pdf"] and ledger[0].subject == "城关镇2021年度年报"
    for row in ledger:  # every message kept whole, under its sha256
        assert Path(row.archive_path).is_file() and Path(row.archive_path).suffix == ".eml"
    # answers as for inbox files, in the outbox; mails: the answer to unit and sender, notes to the others
    answers = settings.outbox_dir(YEAR) / "answers"
    assert len(list((answers / "T001").glob("*回执*.txt"))) == 1
    assert len(list((answers / "D001").glob("*问题清单*.txt"))) == 1
    mails = {p: p.read_bytes() for p in _emls(settings)}
    texts = {p: _text(raw) for p, raw in mails.items()}
    to_personal = [p for p, raw in mails.items() if b"zhao.personal@example.com" in raw]
    assert to_personal and any("未通过审核" in texts[p] for p in to_personal)
    notes = [p for p in mails if "mailbox-note" in p.name]
    assert len(notes) == 2
    note_texts = sorted(texts[p] for p in notes)
    assert any("盖章件.pdf" in t and "不是填报工作簿" in t for t in note_texts)
    assert any("没有找到填报工作簿" in t and "河口乡" in t for t in note_texts)  # greeted by the unit's name
    assert not any(b"relay.example" in raw for raw in mails.values())  # a bounce is never answered
    assert all(b"\\Seen" in flags for flags in _flags(imap_server))

    # polled again, and again: nothing is taken twice, nobody is answered twice
    before = (len(_submissions(settings)), sorted(mails))
    assert poll_mailbox(YEAR).messages == 0
    assert poll_mailbox(YEAR).messages == 0
    assert (len(_submissions(settings)), _emls(settings)) == before


def _text(raw: bytes) -> str:
    from email import message_from_bytes
    from email import policy as email_policy

    message = message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    return "\n".join(part.get_content() for part in message.walk() if part.get_content_type() == "text/plain")


def test_two_runs_at_once_take_each_message_once(opened: Opened, imap_server: ImapServer, tmp_path: Path) -> None:
    settings = get_settings()
    for code, name in (("T001", "a.xlsx"), ("T002", "b.xlsx"), ("D001", "c.xlsx")):
        data = opened.filled(code, tmp_path / name).read_bytes()
        imap_server.append(_mail(f"{code.lower()}@example.gov.cn", "年报", attachments=[(name, data, XLSX)]))
    config = mailbox_config(settings)
    assert config is not None
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(take_mailbox(settings, config, YEAR).messages)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sum(results) == 3
    assert sorted(code for code, *_ in _submissions(settings)) == ["D001", "T001", "T002"]
    assert len(_ledger(settings)) == 3


def test_processed_messages_move_to_the_processed_folder_over_starttls(
        opened: Opened, imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NIANBAO_IMAP_SECURITY", "starttls")
    monkeypatch.setenv("NIANBAO_IMAP_PORT", str(imap_server.imap_port))
    monkeypatch.setenv("NIANBAO_IMAP_PROCESSED_FOLDER", "Processed")
    get_settings.cache_clear()
    data = opened.filled("G001", tmp_path / "g.xlsx").read_bytes()
    imap_server.append(_mail("g001@example.gov.cn", "年报", attachments=[("g.xlsx", data, XLSX)]))
    assert poll_mailbox(YEAR).accepted == 1
    assert _flags(imap_server) == [] and len(_flags(imap_server, "Processed")) == 1


def test_a_run_that_died_after_claiming_is_finished_later_from_the_archive(
        opened: Opened, imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = get_settings()
    data = opened.filled("T002", tmp_path / "t.xlsx").read_bytes()
    imap_server.append(_mail("t002@example.gov.cn", "年报", attachments=[("t.xlsx", data, XLSX)]))
    config = mailbox_config(settings)
    assert config is not None

    def dies(*_args: object, **_kwargs: object) -> None:
        raise SystemExit("the worker was killed")

    with monkeypatch.context() as patch:
        patch.setattr(mailbox_intake, "examine_received", dies)
        with pytest.raises(SystemExit):
            take_mailbox(settings, config, YEAR)
    assert [row.state for row in _ledger(settings)] == ["received"] and _submissions(settings) == []
    assert take_mailbox(settings, config, YEAR).messages == 0  # still claimed: not stale yet
    with _session(settings) as session:  # a quarter of an hour later
        row = session.exec(select(MailboxMessage)).one()
        row.claimed_at = datetime.now(UTC) - timedelta(minutes=20)
        session.add(row)
        session.commit()
    assert take_mailbox(settings, config, YEAR).accepted == 1
    assert [row.state for row in _ledger(settings)] == ["processed"]
    assert [code for code, *_ in _submissions(settings)] == ["T002"]


def test_the_same_message_twice_in_the_folder_is_taken_once(opened: Opened, imap_server: ImapServer,
                                                            tmp_path: Path) -> None:
    settings = get_settings()
    raw = _mail("t001@example.gov.cn", "年报", attachments=[
        ("t.xlsx", opened.filled("T001", tmp_path / "t.xlsx").read_bytes(), XLSX)])
    imap_server.append(raw)
    imap_server.append(raw)  # e.g. copied back from another folder
    summary = poll_mailbox(YEAR)
    assert summary.accepted == 1 and [r.state for r in _ledger(settings)] == ["processed", "duplicate"]
    assert len(_submissions(settings)) == 1


def test_wrong_password_and_plain_text_to_a_remote_server_are_clear_errors(
        mailbox_env: Settings) -> None:
    config = mailbox_config(mailbox_env)
    assert config is not None
    from pydantic import SecretStr

    with pytest.raises(MailboxError, match="login"):
        Mailbox(MailboxConfig(**{**config.__dict__, "password": SecretStr("wrong")}))
    with pytest.raises(MailboxError, match="plain"):
        Mailbox(MailboxConfig(host="imap.county.example", user="x", password=SecretStr("y"), security="plain"))
    assert _ledger(mailbox_env) == []


def test_an_unreachable_mailbox_is_logged_and_does_not_fail_the_run(
        opened: Opened, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIANBAO_IMAP_PORT", str(free_port()))  # nothing listens there
    get_settings.cache_clear()
    summary = poll_mailbox(YEAR)
    assert summary.configured and summary.messages == 0 and "unreachable" in summary.error
    assert "imap-test-password" not in summary.error
    assert _ledger(opened.settings) == []
