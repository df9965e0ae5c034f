"""The project database (SQLModel): units, campaigns, assignments, submissions and their values, reports, events.

All tables live in this one module so relationships never import in circles. Timestamps are UTC. Figures are
stored as exact decimal strings: money is never a float, and the same column works on SQLite and PostgreSQL.
"""

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import JSON, Column, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UnitKind(StrEnum):
    TOWNSHIP = "township"  # 乡镇 / 街道
    DEPARTMENT = "department"  # 县直部门
    GOVERNMENT_OFFICE = "government_office"  # 县政府办公室

    @property
    def chinese(self) -> str:
        return {"township": "乡镇（街道）", "department": "县直部门", "government_office": "县政府办公室"}[self.value]


class AssignmentStatus(StrEnum):
    ISSUED = "issued"
    RETURNED = "returned"  # a file came back and awaits a verdict (only between archive and check)
    REJECTED = "rejected"
    ACCEPTED = "accepted"


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    # passed every check but arrived after the year's report was approved: kept, shown, not consolidated unless the
    # coordinator admits it as a recorded exception (tasks/admission.py)
    HELD = "held"


class CampaignState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    APPROVED = "approved"
    PUBLISHED = "published"


class UnitBase(SQLModel):
    code: str = Field(index=True, unique=True, max_length=32, description="Stable unit code, e.g. D001")
    name: str = Field(max_length=100, description="Official name, e.g. 息县发展和改革委员会")
    kind: UnitKind
    contact: str = Field(default="", max_length=50, description="Person who fills the report")
    email: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=50)
    active: bool = True
    leader: str = Field(default="", max_length=50, description="Unit leader (分管负责人), told when it is overdue")
    leader_email: str = Field(default="", max_length=200)


class Unit(UnitBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Campaign(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("form_id", "year"),)

    id: int | None = Field(default=None, primary_key=True)
    form_id: str
    form_version: str
    year: int = Field(index=True, description="Report year (the statistical year, not the year of collection)")
    deadline: date
    state: CampaignState = CampaignState.OPEN
    secret: str = Field(description="HMAC key that signs this campaign's workbooks")
    designated_unit_code: str | None = Field(
        default=None, description="Unit whose figures are taken for cells consolidated as 'designated'"
    )
    created_at: datetime = Field(default_factory=utcnow)


class Assignment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("campaign_id", "unit_id"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    status: AssignmentStatus = AssignmentStatus.ISSUED
    workbook_path: str
    workbook_sha256: str
    issued_at: datetime = Field(default_factory=utcnow)
    last_submission_at: datetime | None = None
    last_submission_id: int | None = None
    accepted_submission_id: int | None = Field(default=None, description="Latest accepted: the one consolidated")
    issue_count: int = 0
    delivery_error: str | None = Field(default=None, description="Why mail to the unit failed for good, if it did")


class Submission(SQLModel, table=True):
    """Every returned file, accepted or not. The raw bytes are in the archive under their sha256."""

    # the same bytes from two units are two returns (the second one's own wrong-unit rejection)
    __table_args__ = (UniqueConstraint("campaign_id", "sha256", "unit_id"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    received_at: datetime = Field(default_factory=utcnow)
    channel: str = Field(default="inbox", description="inbox / mail / portal")
    sender: str = Field(default="", description="Who sent it, where the channel tells (folder, mail address)")
    original_name: str
    sha256: str = Field(max_length=64)
    archive_path: str
    size: int
    verdict: Verdict
    version: int = Field(default=1, description="1 for a unit's first return, 2 for its second, ...")
    replaces_id: int | None = Field(default=None, description="The accepted submission this one supersedes")
    # a unit that sends its return again with every figure as before (re-saved, or the old file sent instead of
    # the corrected one) is told so in its answer
    repeats_version: int | None = Field(default=None, description="The unit's previous return, when this one "
                                                                  "repeats its figures exactly")
    error_count: int = 0
    warning_count: int = 0
    issues: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # one JSON object a return, {"apply.new.total": "17726", "active.fees.amount_wan": "309.0263", ...}: a return
    # is read and written whole, and one row a file (not 200) keeps storing and consolidating fast
    figures: str = Field(default="{}", sa_column=Column(Text, nullable=False),
                         description="Every figure read, as a JSON object of exact decimal texts")
    texts: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"),
                       description="The prose of the unit's own report (文字部分), a JSON object by text key")


class Report(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    kind: str = Field(default="draft", description="draft / final")
    created_at: datetime = Field(default_factory=utcnow)
    figures_sha256: str
    units_expected: int
    units_accepted: int
    html_path: str
    xlsx_path: str
    json_path: str
    error_count: int = 0
    approved_by: str | None = Field(default=None, max_length=100, description="Who approved it as final")
    approved_at: datetime | None = None
    review_comment: str = Field(default="", description="The coordinator's comment when the report was sent back")
    files: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"),
                                  description="Every file of the report by kind (docx, pdf, annex-html, ...)")
    notes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"),
                             description="What to look at before publishing: the prose against the tables, ...")


class PublishedFigures(SQLModel, table=True):
    """The tables of a report published before nianbao was used (year zero), imported from the published file:
    they seed the next year's 上年结转 and its comparison with last year. unit_code None: the county's report."""

    __table_args__ = (UniqueConstraint("form_id", "year", "unit_code"),)

    id: int | None = Field(default=None, primary_key=True)
    form_id: str
    year: int = Field(index=True)
    unit_code: str | None = Field(default=None, index=True)
    title: str = Field(default="", description="The title the published report bears")
    original_name: str
    sha256: str = Field(max_length=64)
    archive_path: str = Field(description="The imported file, archived by its sha256")
    figures: str = Field(sa_column=Column(Text, nullable=False), description="JSON object of exact decimal texts")
    notes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    imported_at: datetime = Field(default_factory=utcnow)

class MailStatus(StrEnum):
    PENDING = "pending"  # claimed: being sent right now (or the sender died; see tasks/mail_send.py)
    WRITTEN = "written"  # no SMTP server configured: written as an .eml file
    SENT = "sent"
    FAILED_TEMPORARY = "failed-temporary"  # retried and still failing (4xx, server down): a later run tries again
    FAILED_PERMANENT = "failed-permanent"  # refused for good (5xx, no address): recorded on the assignment


class MailMessage(SQLModel, table=True):
    """The mail ledger: one row per event a message is owed for; the unique key makes every send happen once.

    Reminders and escalations are rows of kind reminder/escalation: campaign x unit x day x level x channel x status.
    """

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(unique=True, max_length=200, description="e.g. issue:3:D001, answer:17, digest:3:2022-01-21")
    kind: str = Field(index=True, description="issue / receipt / rejection / reminder / escalation / digest")
    campaign_id: int | None = Field(default=None, index=True)
    unit_code: str | None = Field(default=None, index=True)
    day: date | None = Field(default=None, description="The day a chase message is for (Asia/Shanghai)")
    level: str = Field(default="", description="Chase level, e.g. D-3 (3 days before the deadline), D+1")
    channel: str = Field(default="", description="smtp / eml")
    status: MailStatus = MailStatus.PENDING
    attempts: int = 0
    last_error: str = ""
    recipient: str = Field(default="", description="To and Cc addresses, comma separated")
    subject: str = ""
    message_id: str = ""
    eml_path: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class MailboxMessage(SQLModel, table=True):
    """The mailbox ledger: one row per message taken from the IMAP folder, so each is processed once however often
    (or by however many runs) the folder is polled. Claimed (state 'received') before its attachments are taken in.
    """

    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid"),)

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=300, description="user@host/folder")
    uidvalidity: int
    uid: int
    campaign_id: int | None = Field(default=None, index=True)
    message_id: str = Field(default="", index=True, max_length=300)
    sender: str = Field(default="", description="From address")
    subject: str = ""
    received_at: datetime = Field(default_factory=utcnow, description="When the IMAP server received it")
    raw_sha256: str = Field(max_length=64, index=True)
    archive_path: str = Field(description="The raw message, archived before anything reads it")
    state: str = Field(default="received", description="received / processed / duplicate / auto-reply")
    claimed_at: datetime = Field(default_factory=utcnow, description="When a run took it (a stale claim is retried)")
    submission_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    other_attachments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    processed_at: datetime | None = None


class EventLog(SQLModel, table=True):
    """Append-only audit record of every change of state."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    campaign_id: int | None = Field(default=None, index=True)
    unit_code: str | None = None
    kind: str = Field(description="e.g. unit.imported, workbook.issued, submission.accepted, report.compiled")
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def core_table(model: type[SQLModel]) -> Table:
    """A table model's Core table (SQLModel sets __table__ at class creation), for multi-row statements and
    Core rows where ORM objects would cost too much."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]
