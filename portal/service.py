"""What the upload page does, without HTTP: resolve a unit's link, read its status, take one uploaded file.

Every upload goes through tasks/intake.py exactly as an inbox file does: archived first, examined, stored in one
transaction, answered in the outbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from schemas.form_spec import get_form
from schemas.settings import Settings
from schemas.tables import Assignment, Campaign, EventLog, Submission, Unit, Verdict
from tasks.answers import Answer, write_answer
from tasks.archive import receive_bytes
from tasks.db import get_engine
from tasks.ingest import examine_received
from tasks.intake import answer_for, load_ingest_context, store_received
from tasks.status import STATUS_CHINESE, campaign_status
from tasks.upload_links import read_token, verify_token

log = logging.getLogger(__name__)
CHINA = ZoneInfo("Asia/Shanghai")
CHANNEL_CHINESE = {"portal": "网页上传", "mail": "电子邮件", "inbox": "报送文件夹"}


@dataclass(frozen=True)
class UnitLink:
    """A verified link: the campaign and unit it opens (copied out of the session)."""

    token: str
    campaign_id: int
    year: int
    deadline: date
    form_id: str
    form_version: str
    secret: str
    unit_id: int
    unit_code: str
    unit_name: str
    workbook_path: str


@dataclass(frozen=True)
class StatusView:
    code: str  # issued / returned / rejected / accepted / missing
    label: str
    css: str
    last: str | None
    issue_count: int
    has_accepted: bool = False  # an accepted return counts: the unit's own report can be downloaded


@dataclass(frozen=True)
class HistoryRow:
    version: int
    received: str
    file_name: str
    channel: str
    accepted: bool
    errors: int
    held: bool = False  # passed every check after the report was approved: kept, not consolidated


@dataclass(frozen=True)
class Outcome:
    """One upload's answer, and the submission it was stored as (None when it could not be stored as its own)."""

    answer: Answer
    submission_id: int | None
    sha256: str


class PortalService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: Engine = get_engine(settings.db_url)
        self._report_lock = threading.Lock()

    def resolve(self, token: str, now: datetime | None = None) -> UnitLink | None:
        """The link if the token is genuine, unexpired and names a unit of the campaign; None for anything else."""
        claimed = read_token(token)
        if claimed is None:
            return None
        with Session(self.engine) as session:
            campaign = session.get(Campaign, claimed.campaign_id)
            if campaign is None or campaign.id is None or verify_token(token, campaign.secret, now) is None:
                return None
            row = session.exec(select(Unit, Assignment).join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                               .where(Unit.code == claimed.unit_code, Assignment.campaign_id == campaign.id)).first()
            if row is None:
                return None
            unit, assignment = row
            assert unit.id is not None
            return UnitLink(token=token, campaign_id=campaign.id, year=campaign.year, deadline=campaign.deadline,
                            form_id=campaign.form_id, form_version=campaign.form_version, secret=campaign.secret,
                            unit_id=unit.id, unit_code=unit.code, unit_name=unit.name,
                            workbook_path=assignment.workbook_path)

    def status(self, link: UnitLink, today: date | None = None) -> StatusView:
        with Session(self.engine) as session:
            campaign = session.get_one(Campaign, link.campaign_id)
            row = next(r for r in campaign_status(session=session, campaign=campaign, today=today)
                       if r.unit == link.unit_code)
        css = {"accepted": "ok", "rejected": "bad", "missing": "late"}.get(row.status, "")
        return StatusView(row.status, STATUS_CHINESE[row.status], css,
                          china_time(row.last_submission_at) if row.last_submission_at else None, row.issue_count,
                          row.has_accepted)

    def unit_report(self, link: UnitLink, fmt: str) -> Path | None:
        """The unit's own annual report (html, docx or pdf) of its accepted return, written on first asking;
        None when there is no accepted return or the format cannot be made here (no Chinese font for a PDF)."""
        from tasks.publication import publication_file  # Word and PDF: imported on first asking
        from tasks.unit_reports import load_unit_sources, unit_report_stem, write_unit_report

        form = get_form(link.form_id, link.form_version)
        with Session(self.engine) as session:
            campaign = session.get_one(Campaign, link.campaign_id)
            sources = load_unit_sources(session=session, form=form, campaign=campaign, codes=[link.unit_code])
        if not sources:
            return None
        folder = self.settings.unit_reports_dir(link.year)
        path = publication_file(unit_report_stem(folder, link.year, sources[0]), fmt)
        with self._report_lock:  # one at a time: a PDF takes a second and a good deal of memory
            if not path.is_file():
                try:
                    template = self._docx_template() if fmt == "docx" else None
                except OSError as exc:  # the office's template moved or unreadable: no Word file, the rest still
                    log.warning("Word template %s cannot be read: %s", self.settings.docx_template, exc)
                    return None
                write_unit_report(form, link.year, sources[0], folder, (fmt,) if fmt != "html" else (), template)
        return path if path.is_file() else None

    def _docx_template(self) -> bytes | None:
        return self.settings.docx_template.read_bytes() if self.settings.docx_template else None

    def history(self, link: UnitLink, limit: int = 10) -> list[HistoryRow]:
        with Session(self.engine) as session:
            rows = session.exec(select(Submission).where(Submission.campaign_id == link.campaign_id,
                                                         Submission.unit_id == link.unit_id)
                                .order_by(col(Submission.id).desc()).limit(limit)).all()
        return [HistoryRow(s.version, china_time(s.received_at), s.original_name,
                           CHANNEL_CHINESE.get(s.channel, s.channel), s.verdict is not Verdict.REJECTED, s.error_count,
                           s.verdict is Verdict.HELD)
                for s in rows]

    def take_upload(self, link: UnitLink, file_name: str, data: bytes, sender: str) -> Outcome:
        """Archive, examine, store and answer one uploaded file, as the ingest flow does for an inbox file."""
        settings = self.settings
        form = get_form(link.form_id, link.form_version)
        with Session(self.engine) as session:
            context = load_ingest_context(session=session, form=form, year=link.year)
        incoming = receive_bytes(data, name=file_name, archive_dir=settings.archive_dir, channel="portal",
                                 sender=sender, claimed_unit=link.unit_code)
        examined = examine_received([(data, incoming)], form=form, context=context,
                                    max_bytes=settings.max_upload_bytes)
        with Session(self.engine) as session:
            item = store_received(session=session, context=context, examinations=examined)[0]
            session.commit()
            owner = session.get_one(Submission, item.submission_id).unit_id
        answer = answer_for(item, context)
        submission_id: int | None = item.submission_id
        if item.duplicate and owner != link.unit_id:
            # the same bytes are already on record as another unit's return: judge this upload on its own
            # (it is the other unit's workbook, so it carries a wrong-unit issue) and do not point at that record
            answer = replace(answer, accepted=False, duplicate=False,
                             issues=[i.public() for i in item.examination.issues])
            submission_id = None
        write_answer(answer, settings.outbox_dir(link.year))
        return Outcome(answer, submission_id, incoming.sha256)

    def answer_of(self, link: UnitLink, submission_id: int, duplicate: bool) -> tuple[Answer, str] | None:
        """The answer to one of this unit's stored submissions, rebuilt from the database (for the result page)."""
        with Session(self.engine) as session:
            sub = session.get(Submission, submission_id)
            if sub is None or sub.campaign_id != link.campaign_id or sub.unit_id != link.unit_id:
                return None
            replaced = session.get(Submission, sub.replaces_id) if sub.replaces_id else None
            answer = Answer(unit_code=link.unit_code, unit_name=link.unit_name, file_name=sub.original_name,
                            year=link.year, accepted=sub.verdict is not Verdict.REJECTED, duplicate=duplicate,
                            version=sub.version, received_at=as_utc(sub.received_at),
                            replaces=replaced.version if replaced else None, issues=list(sub.issues),
                            deadline=link.deadline, locked=sub.verdict is Verdict.HELD,
                            repeats=sub.repeats_version)
            return answer, sub.sha256

    def record_refused(self, link: UnitLink, size: int | None, sender: str) -> None:
        """A refused oversized upload leaves a trace for the coordinator (its bytes were never read)."""
        with Session(self.engine) as session:
            session.add(EventLog(campaign_id=link.campaign_id, unit_code=link.unit_code,
                                 kind="portal.upload_too_large",
                                 detail={"declared_size": size, "limit": self.settings.max_upload_bytes,
                                         "sender": sender}))
            session.commit()


    def record_rate_limited(self, link: UnitLink, sender: str, limit: int, window: int) -> None:
        """The first refusal of a window leaves a trace (a flood of them would flood the append-only log)."""
        since = datetime.now(UTC) - timedelta(seconds=window)
        with Session(self.engine) as session:
            earlier = session.exec(select(EventLog.id).where(
                EventLog.campaign_id == link.campaign_id, EventLog.unit_code == link.unit_code,
                EventLog.kind == "portal.upload_rate_limited", col(EventLog.at) > since)).first()
            if earlier is None:
                session.add(EventLog(campaign_id=link.campaign_id, unit_code=link.unit_code,
                                     kind="portal.upload_rate_limited",
                                     detail={"limit": limit, "window_seconds": window, "sender": sender}))
                session.commit()


def result_signature(link: UnitLink, submission_id: int, duplicate: bool) -> str:
    """Binds a result page's address to the link that uploaded it: no one can page through others' results."""
    message = f"{link.token}\x1f{submission_id}\x1f{int(duplicate)}".encode()
    mac = hmac.new(f"portal-result\x1f{link.secret}".encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode("ascii")


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # SQLite gives back naive UTC


def china_time(moment: datetime) -> str:
    return as_utc(moment).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def china_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"
