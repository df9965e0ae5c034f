"""The messages as a mail client sees them: parsed back from their bytes, and the raw header forms that Outlook,
Foxmail and webmail need (RFC 2047 subjects and names, RFC 2231 attachment names, plain text plus HTML); and the
fast writer of tasks/mail_mime.py, which must give the email package's own bytes."""

from __future__ import annotations

import base64
import email
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest

from schemas.issues import Issue
from tasks.answers import Answer, render_answer
from tasks.chase import UnitSituation, plan_chase
from tasks.check import CheckContext, check_values
from tasks.mail_compose import (
    CampaignInfo,
    DigestRow,
    UnitContact,
    compose_answer,
    compose_chase,
    compose_digest,
    compose_issue,
    recipients_of,
)
from tasks.mail_config import MailConfig
from tasks.mail_mime import to_bytes
from tasks.upload_links import verify_token
from tests.factories import valid_figures

CAMPAIGN = CampaignInfo(7, 2021, date(2022, 1, 20), "campaign-secret-0123456789abcdef")
UNIT = UnitContact("D003", "息县发展和改革委员会", "王敏", "d003@example.gov.cn", "刘强", "leader@example.gov.cn")
WORKBOOK_NAME = "2021年政府信息公开工作年度报告-D003-息县发展和改革委员会.xlsx"


@pytest.fixture
def config(tmp_path: Path) -> MailConfig:
    return MailConfig(eml_folder=tmp_path, from_address="xxgk@xixian.gov.cn", from_name="息县人民政府办公室",
                      contact="政务公开股 张丽，0376-1234567", portal_base_url="https://nianbao.xixian.gov.cn/")


def _parsed(message: EmailMessage) -> tuple[bytes, EmailMessage]:
    raw = message.as_bytes(policy=SMTP)
    parsed = email.message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def _bodies(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    # the bytes on the wire have CRLF line ends; compare text as the client shows it
    return plain.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def _token(url: str) -> str:
    return url.rsplit("/u/", 1)[1].split()[0].split('"')[0].split("<")[0]


def test_the_issue_mail_carries_the_workbook_the_personal_link_and_the_deadline(config, tmp_path):
    workbook = tmp_path / WORKBOOK_NAME
    workbook.write_bytes(b"PK\x03\x04 workbook bytes")
    raw, parsed = _parsed(compose_issue(config, CAMPAIGN, UNIT, workbook))

    assert str(parsed["Subject"]) == ("【请于2022年1月20日前报送】2021年政府信息公开工作年度报告填报"
                                      "（息县发展和改革委员会）")
    assert parsed["From"].addresses[0].display_name == "息县人民政府办公室"
    assert parsed["To"].addresses[0].addr_spec == "d003@example.gov.cn"
    assert parsed["To"].addresses[0].display_name == "息县发展和改革委员会"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == WORKBOOK_NAME
    assert attachment.get_content() == workbook.read_bytes()
    assert attachment.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    text, html = _bodies(parsed)
    for body in (text, html):
        assert "2022年1月20日" in body and "政务公开股 张丽，0376-1234567" in body and WORKBOOK_NAME in body
        assert "https://nianbao.xixian.gov.cn/u/" in body
    link = verify_token(_token(text), CAMPAIGN.secret, now=datetime(2022, 1, 25, tzinfo=UTC))
    assert link is not None and (link.campaign_id, link.unit_code) == (7, "D003")
    assert f'href="https://nianbao.xixian.gov.cn/u/{_token(text)}"' in html


def test_raw_headers_are_encoded_as_mail_clients_expect(config, tmp_path):
    workbook = tmp_path / WORKBOOK_NAME
    workbook.write_bytes(b"x")
    raw, _ = _parsed(compose_issue(config, CAMPAIGN, UNIT, workbook))
    assert raw.isascii()  # no 8-bit byte anywhere: headers encoded, parts base64
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert "\r\nSubject: =?utf-8?b?" in "\r\n" + head  # RFC 2047 encoded-words
    assert "From: =?utf-8?b?" in head and "<xxgk@xixian.gov.cn>" in head
    assert "To: =?utf-8?b?" in head and "<d003@example.gov.cn>" in head
    assert "filename*0*=utf-8''2021%E5%B9%B4" in raw.decode()  # RFC 2231
    assert all(len(line) <= 998 for line in raw.decode().split("\r\n"))
    assert all(len(line) <= 78 for line in head.split("\r\n"))
    words = re.findall(r"=\?utf-8\?b\?([^?]*)\?=", head)
    assert len(words) >= 4
    for word in words:  # each encoded-word decodes on its own: no character split across two of them
        base64.b64decode(word).decode("utf-8")
    assert b"Content-Type: multipart/alternative" in raw and b"Content-Type: text/html" in raw


def _answer(issues: list[dict[str, Any]], accepted: bool) -> Answer:
    return Answer(unit_code="D003", unit_name="息县发展和改革委员会", file_name="年报.xlsx", year=2021,
                  accepted=accepted, duplicate=False, version=2, received_at=datetime(2022, 1, 10, 2, tzinfo=UTC),
                  replaces=None, issues=issues, deadline=date(2022, 1, 20))


def test_the_rejection_lists_every_issue_where_and_what_and_links_to_upload_a_fixed_one(config, form):
    raw_values: dict[str, Any] = {k: float(v) for k, v in valid_figures(form, apply__new__commercial=2).items()}
    raw_values.update({"active.license.decisions": "一百二十", "review.upheld": -1.0})
    issues = [i.public() for i in check_values(raw_values, form, CheckContext(unit_kind="department")).issues]
    errors = [i for i in issues if i["severity"] == "error"]
    assert len(errors) >= 3
    answer = _answer(issues, accepted=False)
    _, parsed = _parsed(compose_answer(config, CAMPAIGN, UNIT, answer, [(UNIT.name, UNIT.email)]))

    assert "未通过审核" in str(parsed["Subject"]) and f"{len(errors)}个问题" in str(parsed["Subject"])
    text, html = _bodies(parsed)
    assert text.startswith(render_answer(answer).rstrip("\n"))  # word for word the .txt answer
    for issue in errors:
        for field in ("sheet", "cell", "rule", "expected", "found"):
            if issue.get(field):
                assert str(issue[field]) in html, (field, issue)
        assert str(issue["cell"]) in text
    assert "https://nianbao.xixian.gov.cn/u/" in text and "https://nianbao.xixian.gov.cn/u/" in html


def test_the_receipt_matches_the_txt_answer_and_has_no_upload_link(config):
    answer = _answer([], accepted=True)
    _, parsed = _parsed(compose_answer(config, CAMPAIGN, UNIT, answer, [(UNIT.name, UNIT.email)]))
    text, html = _bodies(parsed)
    assert "已通过审核" in str(parsed["Subject"])
    assert text.startswith(render_answer(answer).rstrip("\n"))
    assert "/u/" not in text and "/u/" not in html and "已通过审核" in html


def test_a_repeated_return_is_told_so_in_the_mails_text_and_html(config):
    answer = replace(_answer([], accepted=False), version=3, repeats=2)
    _, parsed = _parsed(compose_answer(config, CAMPAIGN, UNIT, answer, [(UNIT.name, UNIT.email)]))
    text, html = _bodies(parsed)
    assert text.startswith(render_answer(answer).rstrip("\n"))
    assert "与第2次报送完全相同" in text and "与第2次报送完全相同" in html


def test_html_is_escaped(config):
    unit = UnitContact("D009", "<script>alert(1)</script>局", email="d009@example.gov.cn")
    answer = Answer(unit_code="D009", unit_name=unit.name, file_name="a<b>.xlsx", year=2021, accepted=True,
                    duplicate=False, version=1, received_at=datetime(2022, 1, 10, tzinfo=UTC), replaces=None,
                    issues=[])
    _, parsed = _parsed(compose_answer(config, CAMPAIGN, unit, answer, [(unit.name, unit.email)]))
    _, html = _bodies(parsed)
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&lt;b&gt;.xlsx" in html


def _situation(**changes: Any) -> UnitSituation:
    fields: dict[str, Any] = {"code": UNIT.code, "name": UNIT.name, "status": "issued", "email": UNIT.email,
                              "contact": UNIT.contact, "leader": UNIT.leader, "leader_email": UNIT.leader_email}
    fields.update(changes)
    return UnitSituation(**fields)


def test_a_reminder_before_the_deadline_goes_to_the_unit(config):
    plan = plan_chase(today=date(2022, 1, 17), deadline=CAMPAIGN.deadline, reminder_days=(7, 3, 1),
                      units=[_situation()])
    [action] = plan.actions
    _, parsed = _parsed(compose_chase(config, CAMPAIGN, action, plan.today))
    assert recipients_of(parsed) == ["d003@example.gov.cn"]
    assert "催报提醒" in str(parsed["Subject"]) and "距截止还有3天" in str(parsed["Subject"])
    text, _ = _bodies(parsed)
    assert "尚未报送" in text and "还有 3 天" in text and "/u/" in text


def test_an_escalation_goes_to_the_leader_with_the_contact_in_copy_and_lists_outstanding_issues(config):
    issue = {"severity": "error", "sheet": "表三", "cell": "C12", "rule": "R2", "message": "合计不等于各项之和",
             "expected": "12", "found": "9", "code": "total-mismatch"}
    plan = plan_chase(today=date(2022, 1, 21), deadline=CAMPAIGN.deadline, reminder_days=(7, 3, 1),
                      units=[_situation(status="rejected", issues=(issue,))])
    [action] = plan.actions
    _, parsed = _parsed(compose_chase(config, CAMPAIGN, action, plan.today))
    assert parsed["To"].addresses[0].addr_spec == "leader@example.gov.cn"
    assert parsed["To"].addresses[0].display_name == "刘强"
    assert parsed["Cc"].addresses[0].addr_spec == "d003@example.gov.cn"
    assert "逾期督办" in str(parsed["Subject"]) and "已逾期1天" in str(parsed["Subject"])
    text, html = _bodies(parsed)
    assert text.startswith("刘强同志：")
    for body in (text, html):
        assert "C12" in body and "表三" in body and "R2" in body and "12" in body and "王敏" in body


def test_a_file_level_issue_is_not_given_an_expected_and_found_line(config):
    """'实际：年报.xls' under 'not a workbook' reads as if the file name were a wrong figure."""
    issue = Issue(code="not-a-workbook", found="年报.xls").public()
    plan = plan_chase(today=date(2022, 1, 17), deadline=CAMPAIGN.deadline, reminder_days=(7, 3, 1),
                      units=[_situation(status="rejected", issues=(issue,))])
    [action] = plan.actions
    text, html = _bodies(_parsed(compose_chase(config, CAMPAIGN, action, plan.today))[1])
    message = str(issue["message"])
    assert message in text and message in html
    assert "实际：" not in text and "<td>年报.xls</td>" not in html


def test_the_digest_tells_the_coordinator_who_was_chased_who_is_overdue_and_what_bounced(config):
    plan = plan_chase(today=date(2022, 1, 22), deadline=CAMPAIGN.deadline, reminder_days=(7, 3, 1),
                      units=[_situation(), _situation(code="T001", name="城关镇", status="accepted")])
    message = compose_digest(config, CAMPAIGN, plan, [DigestRow("D003", UNIT.name, "已逾期2天，尚未报送", "已发送")],
                             [DigestRow("T009", "河口乡", "t009@x.cn：550 User unknown")])
    _, parsed = _parsed(message)
    assert recipients_of(parsed) == ["xxgk@xixian.gov.cn"]  # no coordinator set: the office's own address
    assert "已通过1/2" in str(parsed["Subject"])
    text, html = _bodies(parsed)
    for body in (text, html):
        assert "已逾期 2 天" in body and "D003" in body and "刘强" in body and "550 User unknown" in body


def _every_message(config: MailConfig, workbook: Path) -> list[EmailMessage]:
    plan = plan_chase(today=date(2022, 1, 21), deadline=CAMPAIGN.deadline, reminder_days=(7, 3, 1),
                      units=[_situation()])
    note = EmailMessage(policy=SMTP)  # built the usual way, as the mailbox's notes are
    note["From"] = Address("息县人民政府办公室", addr_spec="xxgk@xixian.gov.cn")
    note["To"] = "d003@example.gov.cn"
    note["Subject"] = "关于您发来的邮件"
    note.set_content("未找到工作簿。\n", cte="base64")
    return [compose_issue(config, CAMPAIGN, UNIT, workbook),
            compose_answer(config, CAMPAIGN, UNIT, _answer([], accepted=True), [(UNIT.name, UNIT.email)]),
            compose_chase(config, CAMPAIGN, plan.actions[0], plan.today),
            compose_digest(config, CAMPAIGN, plan, [], []), note]


def test_the_fast_writer_gives_exactly_the_email_packages_bytes(config, tmp_path):
    workbook = tmp_path / WORKBOOK_NAME
    workbook.write_bytes(bytes(range(256)) * 70)
    for message in _every_message(config, workbook):
        assert to_bytes(message) == message.as_bytes(policy=SMTP)


def test_long_names_fold_within_78_columns_and_every_piece_decodes_on_its_own(config, tmp_path):
    name = "息县" + "某某" * 30 + "委员会😀"  # longer than any line, with a 4-byte character
    unit = UnitContact("D003", name, email="d003@example.gov.cn")
    workbook = tmp_path / f"2021年报-{name}.xlsx"
    workbook.write_bytes(b"x")
    message = compose_answer(config, CAMPAIGN, unit, _answer([], accepted=True),
                             [(name, unit.email), ("Zhang, Li", "zl@example.cn"), ("", "x@example.cn")])
    raw, parsed = _parsed(message)
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert all(len(line) <= 78 for line in head.split("\r\n"))
    # RFC 2047: the space between two encoded-words is no part of the name (mail clients drop it; Python's
    # parser keeps it inside a display name, for the email package's own folding just the same)
    assert [(a.display_name.replace(" ", "") if a.display_name != "Zhang, Li" else a.display_name, a.addr_spec)
            for a in parsed["To"].addresses] == [
        (name, "d003@example.gov.cn"), ("Zhang, Li", "zl@example.cn"), ("", "x@example.cn")]
    assert recipients_of(message) == recipients_of(parsed) == ["d003@example.gov.cn", "zl@example.cn",
                                                               "x@example.cn"]
    for word in re.findall(r"=\?utf-8\?b\?([^?]*)\?=", head):
        assert len(word) + 12 <= 75
        base64.b64decode(word).decode("utf-8")
    raw, parsed = _parsed(compose_issue(config, CAMPAIGN, unit, workbook))
    assert name in str(parsed["Subject"])
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n", 1)[0].decode().split("\r\n"))
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == workbook.name
    pieces = re.findall(r"filename\*\d+\*=(?:utf-8'')?([^;\r]*)", raw.decode())
    assert len(pieces) > 2
    for piece in pieces:  # split between characters: some clients decode each piece alone
        unquote_to_bytes(piece).decode("utf-8")


def test_a_line_break_in_a_name_is_refused_not_turned_into_a_header(config):
    unit = UnitContact("D003", "息县\r\nBcc: everyone@example.cn", email="d003@example.gov.cn")
    with pytest.raises(ValueError, match="linefeed"):
        compose_answer(config, CAMPAIGN, unit, _answer([], accepted=True), [(unit.name, unit.email)])


def test_an_address_the_fast_path_does_not_take_is_written_by_the_email_package(config):
    message = compose_answer(config, CAMPAIGN, UNIT, _answer([], accepted=True),
                             [(UNIT.name, '"wang min"@example.cn')])
    raw, parsed = _parsed(message)
    assert parsed["To"].addresses[0].addr_spec == '"wang min"@example.cn'
    assert parsed["To"].addresses[0].display_name == UNIT.name
    assert to_bytes(message) == raw
