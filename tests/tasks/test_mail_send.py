"""Sending against a real SMTP server on loopback: delivery, a server that is down, one that is busy (4xx) and then
accepts, a recipient refused for good (5xx, recorded on the assignment and shown in status), STARTTLS with AUTH,
the .eml writer, and the ledger that sends each event's message once, also when a batch is claimed at once and
stops midway."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import Session, select

from schemas.settings import Settings
from schemas.tables import Assignment, Campaign, EventLog, MailMessage, MailStatus, Unit, utcnow
from tasks.db import get_engine
from tasks.mail_compose import CampaignInfo, UnitContact, compose_issue
from tasks.mail_config import MailConfig
from tasks.mail_ledger import (
    STALE_CLAIM,
    ClaimRequest,
    Envelope,
    Result,
    claim,
    claim_many,
    issue_key,
    record_many,
    refresh_claims,
)
from tasks.mail_send import MailOutcome, MailSetupError, Outgoing, open_transport, send_message, send_messages
from tasks.status import campaign_status
from tests.conftest import DEADLINE
from tests.factories import register_units
from tests.mail_server import Behaviour, self_signed, smtp_server
from tests.ports import free_port

PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def session(settings: Settings, units_file: Path) -> Iterator[Session]:
    """The units of tests.factories, a campaign, and a workbook assignment for each unit."""
    register_units(settings, units_file)
    session = Session(get_engine(settings.db_url))
    campaign = Campaign(form_id="xxgk-annual", form_version="2021", year=2021, deadline=DEADLINE, secret="k" * 32)
    session.add(campaign)
    session.flush()
    workbook = settings.home / "wb.xlsx"
    workbook.write_bytes(b"PK\x03\x04 not really a workbook")
    for unit in session.exec(select(Unit)).all():
        assert unit.id is not None and campaign.id is not None
        session.add(Assignment(campaign_id=campaign.id, unit_id=unit.id, workbook_path=str(workbook),
                               workbook_sha256="0" * 64))
    session.commit()
    yield session
    session.close()


def _config(settings: Settings, port: int | None, **overrides: object) -> MailConfig:
    values: dict[str, object] = {"eml_folder": settings.mail_dir(2021), "host": "127.0.0.1" if port else None,
                                 "port": port, "security": "none", "timeout": 5.0,
                                 "from_address": "xxgk@example.gov.cn"}
    values.update(overrides)
    return MailConfig(**values)  # type: ignore[arg-type]


def _send(session: Session, config: MailConfig, code: str = "T001", sleeps: list[float] | None = None) -> MailOutcome:
    outgoing = _outgoing(session, config, code)
    recorded = sleeps if sleeps is not None else []
    with open_transport(config) as transport:
        return send_message(session=session, transport=transport, message=outgoing.message,
                            envelope=outgoing.envelope,
                            from_address=config.from_address, retries=config.retries, sleep=recorded.append)


def _ledger(session: Session) -> list[MailMessage]:
    session.expire_all()
    return list(session.exec(select(MailMessage)).all())


def test_a_message_is_delivered_once_however_often_it_is_sent(settings, session):
    with smtp_server() as (port, server):
        config = _config(settings, port)
        first = _send(session, config)
        again = _send(session, config)
    assert first.status is MailStatus.SENT and again.status is None
    assert len(server.received) == 1
    got = server.received[0]
    assert got.rcpt_tos == ["t001@example.gov.cn"] and got.mail_from == "xxgk@example.gov.cn"
    assert "2021年政府信息公开工作年度报告填报" in str(got.message["Subject"])
    [row] = _ledger(session)
    assert (row.status, row.attempts, row.channel, row.recipient) == (MailStatus.SENT, 1, "smtp", "t001@example.gov.cn")
    assert got.message["Message-ID"] == row.message_id and row.message_id.startswith("<nianbao.")


def test_a_server_that_is_down_is_retried_with_backoff_then_recorded_and_retried_by_the_next_run(settings, session):
    port = free_port()  # nothing listens here: connection refused
    sleeps: list[float] = []
    outcome = _send(session, _config(settings, port), sleeps=sleeps)
    assert outcome.status is MailStatus.FAILED_TEMPORARY
    assert sleeps == [2.0, 4.0, 8.0]  # three retries, the wait doubling each time
    [row] = _ledger(session)
    assert row.status is MailStatus.FAILED_TEMPORARY and row.attempts == 4 and "Connection" in row.last_error
    # a temporary failure is not the unit's fault: nothing on its assignment
    assert all(a.delivery_error is None for a in session.exec(select(Assignment)).all())
    with smtp_server() as (up, server):
        later = _send(session, _config(settings, up))
    assert later.status is MailStatus.SENT and len(server.received) == 1
    assert _ledger(session)[0].attempts == 5


def test_a_busy_server_answering_4xx_is_retried_and_the_message_arrives_once(settings, session):
    sleeps: list[float] = []
    with smtp_server(Behaviour(busy_times=2)) as (port, server):
        outcome = _send(session, _config(settings, port), sleeps=sleeps)
    assert outcome.status is MailStatus.SENT
    assert server.data_attempts == 3 and len(server.received) == 1
    assert sleeps == [2.0, 4.0]
    assert _ledger(session)[0].attempts == 3


def test_a_recipient_refused_for_good_is_recorded_on_the_assignment_and_shown_in_status(settings, session):
    behaviour = Behaviour(refuse={"t001@example.gov.cn": "550 5.1.1 User unknown"})
    sleeps: list[float] = []
    with smtp_server(behaviour) as (port, server):
        config = _config(settings, port)
        outcome = _send(session, config, sleeps=sleeps)
        again = _send(session, config)  # the same bad address is not tried again
    assert outcome.status is MailStatus.FAILED_PERMANENT and again.status is None
    assert sleeps == [] and server.received == []
    assert "550" in outcome.error
    campaign = session.exec(select(Campaign)).one()
    rows = {r.unit: r for r in campaign_status(session=session, campaign=campaign)}
    assert rows["T001"].delivery_error and "550" in rows["T001"].delivery_error
    assert "t001@example.gov.cn" in rows["T001"].delivery_error
    assert rows["T002"].delivery_error is None
    kinds = [e.kind for e in session.exec(select(EventLog)).all()]
    assert "mail.failed-permanent" in kinds
    # the unit's address is corrected: the message is owed again, goes out, and the error is cleared
    unit = session.exec(select(Unit).where(Unit.code == "T001")).one()
    unit.email = "t001-new@example.gov.cn"
    session.add(unit)
    session.commit()
    with smtp_server() as (port, server):
        fixed = _send(session, _config(settings, port))
    assert fixed.status is MailStatus.SENT and server.received[0].rcpt_tos == ["t001-new@example.gov.cn"]
    session.expire_all()
    rows = {r.unit: r for r in campaign_status(session=session, campaign=campaign)}
    assert rows["T001"].delivery_error is None


def test_starttls_and_login_work_and_a_wrong_password_stops_without_ever_showing_it(settings, session, tmp_path,
                                                                                      caplog):
    caplog.set_level(logging.DEBUG)
    tls = self_signed(tmp_path)
    with smtp_server(tls=tls, login=("xxgk", PASSWORD)) as (port, server):
        good = _config(settings, port, security="starttls", ca_file=tls[0], user="xxgk",
                       password=SecretStr(PASSWORD))
        assert _send(session, good).status is MailStatus.SENT
        bad = _config(settings, port, security="starttls", ca_file=tls[0], user="xxgk",
                      password=SecretStr(PASSWORD + "-wrong"))
        with pytest.raises(MailSetupError) as raised:
            _send(session, bad, code="T002")
    assert len(server.received) == 1
    assert "535" in str(raised.value) and PASSWORD not in str(raised.value)
    assert PASSWORD not in "".join(traceback.format_exception(raised.value))
    assert PASSWORD not in caplog.text and PASSWORD not in repr(bad)
    row = next(r for r in _ledger(session) if r.unit_code == "T002")
    assert row.status is MailStatus.FAILED_TEMPORARY and PASSWORD not in row.last_error  # the next run tries again


def test_an_unverifiable_certificate_is_a_setup_error(settings, session, tmp_path):
    tls = self_signed(tmp_path)
    with smtp_server(tls=tls) as (port, server), pytest.raises(MailSetupError):
        _send(session, _config(settings, port, security="starttls"))  # no ca_file: the system CAs do not know it
    assert server.received == []


def test_without_smtp_the_message_is_written_as_an_eml_file_once(settings, session):
    config = _config(settings, None)
    first = _send(session, config)
    again = _send(session, config)
    assert first.status is MailStatus.WRITTEN and again.status is None
    files = list(settings.mail_dir(2021).rglob("*.eml"))
    assert [Path(first.eml_path)] == files
    assert files[0].parent.name == "T001" and "下发" in files[0].name
    assert files[0].read_bytes().isascii()  # every header encoded, every part base64


def test_a_unit_without_an_address_is_recorded_not_sent(settings, session):
    unit = session.exec(select(Unit).where(Unit.code == "T002")).one()
    unit.email = ""
    session.add(unit)
    session.commit()
    outcome = _send(session, _config(settings, None), code="T002")
    assert outcome.status is MailStatus.FAILED_PERMANENT and outcome.error == "未登记电子邮箱"
    assert not list(settings.mail_dir(2021).rglob("*.eml"))


def test_a_fresh_claim_is_left_alone_and_a_stale_one_is_taken_over(session):
    envelope = Envelope("issue:1:T001", "issue", 1, "T001")
    row = claim(session=session, envelope=envelope, recipient="a@b.cn", subject="s")
    assert row is not None and row.status is MailStatus.PENDING
    assert claim(session=session, envelope=envelope, recipient="a@b.cn", subject="s") is None  # being sent now
    later = utcnow() + STALE_CLAIM + timedelta(seconds=1)  # its sender died between claim and outcome
    taken = claim(session=session, envelope=envelope, recipient="a@b.cn", subject="s", now=later)
    assert taken is not None and taken.id == row.id
    assert claim(session=session, envelope=envelope, recipient="a@b.cn", subject="s", now=later) is None


def _outgoing(session: Session, config: MailConfig, code: str) -> Outgoing:
    campaign = session.exec(select(Campaign)).one()
    unit = session.exec(select(Unit).where(Unit.code == code)).one()
    assert campaign.id is not None
    message = compose_issue(config, CampaignInfo(campaign.id, 2021, DEADLINE, campaign.secret),
                            UnitContact(unit.code, unit.name, unit.contact, unit.email),
                            Path(session.exec(select(Assignment)).first().workbook_path))  # type: ignore[union-attr]
    return Outgoing(message, Envelope(issue_key(campaign.id, code), "issue", campaign.id, code))


def _send_batch(session: Session, config: MailConfig, codes: list[str]) -> list[MailOutcome]:
    batch = [_outgoing(session, config, code) for code in codes]
    with open_transport(config) as transport:
        return send_messages(session=session, transport=transport, batch=batch, from_address=config.from_address,
                             retries=0, sleep=lambda _: None)


def test_a_wrong_setup_stops_the_batch_and_gives_back_the_claims_it_never_tried(settings, session, tmp_path):
    tls = self_signed(tmp_path)
    codes = ["T001", "T002", "D001"]
    with smtp_server(tls=tls, login=("xxgk", PASSWORD)) as (port, server):
        bad = _config(settings, port, security="starttls", ca_file=tls[0], user="xxgk",
                      password=SecretStr(PASSWORD + "-wrong"))
        with pytest.raises(MailSetupError):
            _send_batch(session, bad, codes)
        rows = _ledger(session)
        # the message that met the refusal is owed again; the two never tried left no trace, not even a claim
        assert [(r.unit_code, r.status) for r in rows] == [("T001", MailStatus.FAILED_TEMPORARY)]
        good = _config(settings, port, security="starttls", ca_file=tls[0], user="xxgk",
                       password=SecretStr(PASSWORD))
        first = _send_batch(session, good, codes)
        again = _send_batch(session, good, codes)
    assert [o.status for o in first] == [MailStatus.SENT] * 3 and [o.status for o in again] == [None] * 3
    assert sorted(r for got in server.received for r in got.rcpt_tos) == [
        "d001@example.gov.cn", "t001@example.gov.cn", "t002@example.gov.cn"]
    assert {r.status for r in _ledger(session)} == {MailStatus.SENT}


def test_an_eml_batch_that_breaks_midway_keeps_what_it_wrote_and_owes_the_rest(settings, session):
    config = _config(settings, None)
    folder = settings.mail_dir(2021)
    folder.mkdir(parents=True)
    (folder / "T002").write_text("a file where the unit's folder should be")
    with pytest.raises(OSError):
        _send_batch(session, config, ["T001", "T002", "D001"])
    rows = {r.unit_code: r for r in _ledger(session)}
    assert rows["T001"].status is MailStatus.WRITTEN and Path(rows["T001"].eml_path).is_file()
    assert rows["T002"].status is MailStatus.PENDING  # its outcome is unknown: rewritten once the claim is stale
    assert "D001" not in rows  # never tried: given back
    (folder / "T002").unlink()
    outcomes = _send_batch(session, config, ["T001", "T002", "D001"])
    assert [o.status for o in outcomes] == [None, None, MailStatus.WRITTEN]


def test_an_event_listed_twice_in_a_batch_is_sent_once(settings, session):
    with smtp_server() as (port, server):
        outcomes = _send_batch(session, _config(settings, port), ["T001", "T001"])
    assert [o.status for o in outcomes] == [MailStatus.SENT, None] and len(server.received) == 1


def test_a_batch_claim_takes_only_what_is_owed(session):
    def request(key: str, recipient: str = "a@b.cn") -> ClaimRequest:
        return ClaimRequest(Envelope(key, "issue", 1, key.rsplit(":", 1)[1]), recipient, "s")

    now = utcnow()
    first = claim_many(session=session, requests=[request("issue:1:A"), request("issue:1:B"), request("issue:1:C"),
                                                  request("issue:1:D")], now=now)
    assert all(c is not None for c in first)
    a, b, c, d = (x for x in first if x is not None)
    record_many(session=session, results=[Result(a, MailStatus.SENT, "smtp", 1),
                                          Result(b, MailStatus.FAILED_PERMANENT, "smtp", 1, "550"),
                                          Result(c, MailStatus.FAILED_TEMPORARY, "smtp", 1, "421")])
    again = [request("issue:1:A"), request("issue:1:B"), request("issue:1:C"), request("issue:1:D")]
    taken = claim_many(session=session, requests=again, now=now + timedelta(minutes=1))
    # sent: never again; refused for good: not to the same address; temporary: again; pending and fresh: not ours
    assert [x is not None for x in taken] == [False, False, True, False]
    moved = claim_many(session=session, requests=[request("issue:1:B", "new@b.cn")], now=now + timedelta(minutes=1))
    assert moved[0] is not None and moved[0].id == b.id  # the unit's address was corrected: owed again
    later = now + STALE_CLAIM + timedelta(minutes=1)
    refresh_claims(session=session, claims=[d], now=now + timedelta(minutes=10))  # still being sent: kept fresh
    assert claim_many(session=session, requests=[request("issue:1:D")], now=later) == [None]
    stale = claim_many(session=session, requests=[request("issue:1:D")], now=later + timedelta(minutes=10))
    assert stale[0] is not None and stale[0].id == d.id


def test_a_dead_server_costs_one_message_its_retries_not_every_message(settings, session):
    port = free_port()  # nothing listens here: connection refused
    config = _config(settings, port)
    batch = [_outgoing(session, config, code) for code in ["T001", "T002", "D001"]]
    sleeps: list[float] = []
    with open_transport(config) as transport:
        outcomes = send_messages(session=session, transport=transport, batch=batch, from_address=config.from_address,
                                 retries=3, sleep=sleeps.append)
    assert sleeps == [2.0, 4.0, 8.0]  # the first message's backoff only: the others are not tried
    assert [o.status for o in outcomes] == [MailStatus.FAILED_TEMPORARY] * 3
    assert sorted((r.unit_code, r.attempts) for r in _ledger(session)) == [("D001", 0), ("T001", 4), ("T002", 0)]
    with smtp_server() as (up, server):  # the next run, the server back: every message goes out, once
        again = _send_batch(session, _config(settings, up), ["T001", "T002", "D001"])
    assert [o.status for o in again] == [MailStatus.SENT] * 3 and len(server.received) == 3
