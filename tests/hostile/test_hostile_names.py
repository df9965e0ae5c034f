"""Hostile file names through every channel: the inbox folder, the upload page, a mail attachment.

Whatever the name (a path, a NUL, a line break, a direction override, 300 characters, a Windows device), the file
is archived, stored once under a safe form of its name, and answered; the answer and the archived copy stay inside
their folders.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlmodel import Session, col, select

from flows.ingest_returns import ingest_returns
from portal.service import PortalService
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Submission, Verdict
from tasks.archive import MAX_NAME_BYTES, safe_name
from tasks.db import get_engine
from tasks.intake import load_ingest_context
from tasks.mailbox_intake import MailIntake
from tests.channels import YEAR, Opened, open_campaign

pytestmark = pytest.mark.usefixtures("prefect_harness")

# names a file system can hold (the inbox) and names only a sender can make up (upload, mail)
ON_DISK = [
    "年报\\..\\..\\Windows\\年报.xlsx",  # (the inbox leaves names starting with a dot alone: hidden files)
    "年报\u202excod.xlsx",  # shows as 年报xlsx.docx in a file list
    "年报😀🎉.xlsx",
    "年报．ｘｌｓｘ",  # full-width dot and letters: no suffix at all
    "ＣＯＮ.xlsx",
    "CON.xlsx",
    "nul.xlsx",
    "COM1.xlsx",
    "年报\r\nBcc: someone@example.com.xlsx",
    "-rf .xlsx",
    "城关镇" * 26 + ".xlsx",  # 239 bytes: its answer's name would pass 255
    "年报 .xlsx. ",
]
MADE_UP = ON_DISK + [
    "..\\..\\Windows\\年报.xlsx",
    "../../x.xlsx",
    "/etc/cron.d/年报.xlsx",
    "a\x00b.xlsx",
    "城关镇" * 100 + ".xlsx",
    "..",
    "",
]


def _unsafe(name: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in name) or "/" in name or "\\" in name


def _check_kept(settings: Settings, rows: list[Submission], sent: dict[str, tuple[str, bytes]]) -> None:
    """Every file stored once under its safe name, archived byte for byte inside the archive, accepted, answered
    inside the unit's answer folder under a name a file system takes."""
    by_digest = {row.sha256: row for row in rows}
    assert len(by_digest) == len(rows) == len(sent)
    outbox = settings.outbox_dir(YEAR).resolve()
    answers = list((outbox / "answers").rglob("*"))
    for name, (safe, data) in sent.items():
        row = by_digest[hashlib.sha256(data).hexdigest()]
        assert row.original_name == safe == safe_name(name), repr(name)
        assert not _unsafe(safe) and len(safe.encode()) <= MAX_NAME_BYTES and safe not in ("", ".", "..")
        archived = Path(row.archive_path).resolve()
        assert archived.is_relative_to(settings.archive_dir.resolve()) and archived.read_bytes() == data
        assert row.verdict is Verdict.ACCEPTED, (repr(name), row.issues)
    for path in answers:
        assert path.resolve().is_relative_to(outbox / "answers")
        assert not _unsafe(path.name) and len(path.name.encode()) <= 255, path.name
    receipts = [p for p in answers if p.is_file() and "回执" in p.name]
    assert len(receipts) == len(sent) and {p.parent.name for p in receipts} == {"T001"}


def _files(opened: Opened, names: list[str], tmp_path: Path, start: int) -> dict[str, bytes]:
    """One distinct accepted return of T001 for each name."""
    return {name: opened.filled("T001", tmp_path / f"{i}.xlsx", active__license__decisions=start + i).read_bytes()
            for i, name in enumerate(names)}


def _rows(settings: Settings, channel: str) -> list[Submission]:
    with Session(get_engine(settings.db_url)) as session:
        return list(session.exec(select(Submission).where(Submission.channel == channel)
                                 .order_by(col(Submission.id))).all())


@pytest.fixture
def opened(settings: Settings, units_file: Path, form: FormSpec) -> Opened:
    return open_campaign(settings, units_file, form)


def test_names_through_the_inbox(opened: Opened, tmp_path: Path) -> None:
    settings = opened.settings
    files = _files(opened, ON_DISK, tmp_path, 100)
    settings.inbox_dir(YEAR).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (settings.inbox_dir(YEAR) / name).write_bytes(data)

    summary = ingest_returns(YEAR)

    assert (summary.files, summary.accepted) == (len(ON_DISK), len(ON_DISK))
    _check_kept(settings, _rows(settings, "inbox"), {n: (safe_name(n), d) for n, d in files.items()})
    processed = {p.name for p in (settings.campaign_dir(YEAR) / "processed").rglob("*") if p.is_file()}
    assert processed == set(ON_DISK)  # moved under the names they came with, in the processed folder


def test_names_through_the_upload_page(opened: Opened, tmp_path: Path) -> None:
    settings = opened.settings
    service = PortalService(settings)
    link = service.resolve(opened.token("T001"))
    assert link is not None
    files = _files(opened, MADE_UP, tmp_path, 200)
    for name, data in files.items():
        outcome = service.take_upload(link, name, data, "127.0.0.1")
        assert outcome.answer.accepted and outcome.answer.file_name == safe_name(name)
    _check_kept(settings, _rows(settings, "portal"), {n: (safe_name(n), d) for n, d in files.items()})


def _mail_with(name: str, data: bytes, uid: int) -> bytes:
    """A reply with the workbook attached under this name, its parameter RFC 2231 encoded as mail clients do
    (which is how a NUL or a line break can reach a file name)."""
    encoded = quote(name.encode("utf-8"), safe="")
    body = base64.encodebytes(data).decode("ascii")
    return (f"From: 城关镇 <t001@example.gov.cn>\r\nTo: xxgk@county.gov.cn\r\nSubject: 年报 {uid}\r\n"
            f"Message-ID: <names-{uid}@example.gov.cn>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
            "见附件。\r\n--b\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n"
            f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename*=UTF-8''{encoded}\r\n\r\n"
            f"{body}\r\n--b--\r\n").encode()


def test_names_through_the_mailbox(opened: Opened, tmp_path: Path, form: FormSpec) -> None:
    settings = opened.settings
    engine = get_engine(settings.db_url)
    with Session(engine) as session:
        context = load_ingest_context(session=session, form=form, year=YEAR)
    notes: list[object] = []
    intake = MailIntake(engine=engine, form=form, context=context, archive_dir=settings.archive_dir,
                        outbox=settings.outbox_dir(YEAR), max_bytes=settings.max_upload_bytes, reply=notes.append,
                        mail_answers=lambda stored: None)
    names = [n for n in MADE_UP if safe_name(n).lower().endswith(".xlsx")]  # the rest are no workbook by name
    files = _files(opened, names, tmp_path, 300)
    for uid, (name, data) in enumerate(files.items(), start=1):
        outcome = intake.take(_mail_with(name, data, uid), mailbox="INBOX", uidvalidity=1, uid=uid,
                              arrived=datetime.now(UTC))
        assert outcome is not None and outcome.accepted == 1, (repr(name), outcome)
    assert notes == []  # each mail brought a workbook and nothing else: no note owed
    _check_kept(settings, _rows(settings, "mail"), {n: (safe_name(n), d) for n, d in files.items()})
