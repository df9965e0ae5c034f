"""Every hostile file of tests/hostile/corpus.py through the real ingest flow: each gets its own clear answer (the
exact issue codes, a key part of each Chinese message), nothing crashes, nothing is accepted that should not be,
every file is archived byte for byte and stored as exactly one submission.

All the cases go through two runs of ingest_returns (round 1, then round 2 for the files sent again), once on
SQLite and once on PostgreSQL; each case then checks its own files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from flows.ingest_returns import IngestSummary, ingest_returns
from flows.open_collection import open_collection
from schemas.form_spec import FormSpec
from schemas.settings import Settings, get_settings
from schemas.tables import Assignment, Campaign, Submission, Unit, Verdict
from tasks.archive import safe_name
from tasks.campaigns import accepted_values, get_campaign
from tasks.db import get_engine
from tasks.file_guard import Refused, guard_archive
from tasks.workbook_read import read_workbook
from tasks.xlsx_values import Archive, Unusual
from tests.conftest import DEADLINE, NO_POSTGRES, POSTGRES_URL
from tests.factories import register_units
from tests.hostile.corpus import CASES, RENAMED, T3, Case, Kit, Sent, lol_dtd, rewritten, sheet_member

YEAR = 2021
UNIT_OF = {case.id: f"H{i:02d}" for i, case in enumerate(CASES, start=1)}  # H00: the other unit some cases use


@dataclass
class World:
    settings: Settings
    campaign_id: int
    sent: dict[str, list[Sent]]
    runs: list[IngestSummary]


def _units_csv(path: Path) -> Path:
    lines = ["code,name,kind,contact,email", "H00,测试县人民政府办公室,government_office,联系人,h00@example.gov.cn"]
    lines += [f"H{i:02d},测试{i:02d}镇,township,联系人,h{i:02d}@example.gov.cn" for i in range(1, len(CASES) + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _drop(settings: Settings, code: str, sent: Sent, moment: float) -> None:
    folder = settings.inbox_dir(YEAR) / sent.folder if sent.folder else settings.inbox_dir(YEAR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{code}-{sent.name}"
    path.write_bytes(sent.data)
    os.utime(path, (moment, moment))  # the order files arrived in: a copy after its original


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, form: FormSpec) -> Iterator[World]:
    """Every case's files, ingested by the real flow in two runs, on a data folder and database of their own."""
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    request.getfixturevalue("prefect_harness")
    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as patch:
        (root / "var").mkdir()
        patch.setenv("NIANBAO_HOME", str(root / "var"))
        if request.param == "postgresql":
            from tests.postgres import temporary_database

            database = temporary_database(POSTGRES_URL)
            patch.setenv("NIANBAO_DATABASE_URL", database.__enter__())
        else:
            patch.delenv("NIANBAO_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        try:
            yield _ingest_all(get_settings(), form, root)
        finally:
            get_settings.cache_clear()
            if request.param == "postgresql":
                database.__exit__(None, None, None)


def _ingest_all(settings: Settings, form: FormSpec, root: Path) -> World:
    register_units(settings, _units_csv(root / "units.csv"))
    open_collection(YEAR - 1, date(2021, 1, 20))
    open_collection(YEAR, DEADLINE)
    with Session(get_engine(settings.db_url)) as session:
        campaign = get_campaign(session=session, form=form, year=YEAR)
        assert campaign.id is not None
        kit = Kit(form, YEAR, campaign.id, campaign.secret, settings.outbox_dir(YEAR) / "workbooks",
                  settings.outbox_dir(YEAR - 1) / "workbooks", root / "scratch")
    kit.scratch.mkdir()
    sent = {case.id: case.build(kit, UNIT_OF[case.id]) for case in CASES}
    runs = []
    moment = 1_640_000_000.0
    for round_ in (1, 2):
        for case in CASES:
            for item in sent[case.id]:
                if item.round == round_:
                    moment += 1
                    _drop(settings, UNIT_OF[case.id], item, moment)
        runs.append(ingest_returns(YEAR))
    return World(settings, campaign.id, sent, runs)


def _row(world: World, sent: Sent) -> tuple[Submission, str | None]:
    """The one submission the file is stored as, and the unit it is stored for."""
    digest = hashlib.sha256(sent.data).hexdigest()
    with Session(get_engine(world.settings.db_url)) as session:
        rows = session.exec(select(Submission, Unit.code).outerjoin(Unit, col(Unit.id) == col(Submission.unit_id))
                            .where(Submission.campaign_id == world.campaign_id, Submission.sha256 == digest)).all()
    assert len(rows) == 1, f"{len(rows)} submissions for one file"
    submission, unit = rows[0]
    return submission, unit


def _answers(world: World, code: str | None) -> list[Path]:
    folder = world.settings.outbox_dir(YEAR) / "answers" / (code or "_unidentified")
    return sorted(folder.glob("*.txt"))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_file(world: World, case: Case) -> None:
    code = UNIT_OF[case.id]
    for sent in world.sent[case.id]:
        submission, unit = _row(world, sent)
        where = f"{case.id}: {sent.name}"
        # stored once, for the right unit, with the right verdict
        assert unit == (code if sent.identified or sent.folder else None), where
        assert (submission.verdict is Verdict.ACCEPTED) is sent.accepted, (where, submission.issues)
        # kept: the archived bytes are the bytes sent
        archived = Path(submission.archive_path)
        assert archived.is_relative_to(world.settings.archive_dir) and archived.read_bytes() == sent.data, where
        assert submission.size == len(sent.data)
        if sent.duplicate:
            assert submission.original_name != f"{code}-{sent.name}", where  # the row is the first one's
            assert any("重复" in a.name and safe_name(Path(sent.name).stem) in a.name for a in _answers(world, unit))
            continue
        # the answer: exactly these issues, each saying what it should
        assert [i["code"] for i in submission.issues] == [c for c, _ in sent.issues], (where, submission.issues)
        for issue, (_, part) in zip(submission.issues, sent.issues, strict=True):
            assert part in issue["message"], (where, issue["message"])
        assert submission.version == sent.version, where
        figures = json.loads(submission.figures)
        assert {key: figures.get(key) for key in sent.figures} == sent.figures, where
        answer = [a for a in _answers(world, unit) if f"第{sent.version}次" in a.name
                  and a.name.endswith(f"-{code}-{Path(sent.name).stem}.txt")]
        assert len(answer) == 1, (where, _answers(world, unit))
        text = answer[0].read_text(encoding="utf-8")
        assert ("回执" in answer[0].name) is sent.accepted, where
        for _, part in sent.issues:
            assert part in text, (where, part)
        if sent.replaces is not None:
            with Session(get_engine(world.settings.db_url)) as session:
                replaced = session.get_one(Submission, submission.replaces_id)
            assert replaced.version == sent.replaces, where


def test_every_file_was_taken_and_answered(world: World) -> None:
    """Both runs ended, took every file once and left none in the inbox; the counts add up."""
    for round_, run in enumerate(world.runs, start=1):
        files = [s for sent in world.sent.values() for s in sent if s.round == round_]
        assert run.files == len(files)
        assert run.accepted == sum(1 for s in files if s.accepted and not s.duplicate)
        assert run.duplicates == sum(1 for s in files if s.duplicate)
        assert run.rejected == sum(1 for s in files if not s.accepted and not s.duplicate)
    assert not [p for p in world.settings.inbox_dir(YEAR).rglob("*") if p.is_file()]


def test_only_good_returns_are_consolidated_and_each_once(world: World) -> None:
    """A unit's accepted figures are those of its latest accepted return: a copy re-saved with the same figures
    replaces the first, it is not counted beside it."""
    with Session(get_engine(world.settings.db_url)) as session:
        values = accepted_values(session=session, campaign_id=world.campaign_id)
        accepted_ids = dict(session.exec(select(Unit.code, Assignment.accepted_submission_id)
                                         .join(Assignment, col(Assignment.unit_id) == col(Unit.id))
                                         .join(Campaign, col(Campaign.id) == col(Assignment.campaign_id))
                                         .where(Campaign.id == world.campaign_id)).all())
    expected = {UNIT_OF[case_id] for case_id, sent in world.sent.items() if any(s.accepted and s.identified
                                                                                  for s in sent)}
    assert set(values) == expected
    resaved = UNIT_OF["same-content-resaved"]
    assert str(values[resaved]["active.penalty.decisions"]) == "5"
    second = next(s for s in world.sent["same-content-resaved"] if s.version == 2)
    submission, _ = _row(world, second)
    assert accepted_ids[resaved] == submission.id


# --- what the readers do with entities, asked directly ----------------------------------------------------------------


def _laughing(data: bytes) -> bytes:
    member = sheet_member(data, T3)
    data = rewritten(data, member, lambda xml: lol_dtd("worksheet") + xml)
    return rewritten(data, member, lambda xml: xml.replace(
        '<c r="D6"', '<c r="D6" t="inlineStr"><is><t>&lol9;</t></is></c><c r="Z99"', 1))


def test_no_reader_expands_an_entity(world: World, form: FormSpec) -> None:
    """Neither the fast path nor calamine expands the billion laughs, and read_workbook refuses the file before
    calamine sees it; openpyxl parses through defusedxml, which refuses it outright."""
    import openpyxl
    import python_calamine
    from defusedxml import DTDForbidden, EntitiesForbidden

    code = UNIT_OF["billion-laughs-in-a-sheet"]
    data = _laughing(next((world.settings.outbox_dir(YEAR) / "workbooks").glob(f"*-{code}-*.xlsx")).read_bytes())
    # the fast path: the DTD in the prolog sends the file to the other path, which refuses it
    with pytest.raises(Unusual):
        archive = Archive(data)
        archive.read(sheet_member(data, T3))
    raw = read_workbook(data, form, "laughs.xlsx")
    assert [i.code for i in raw.issues] == ["unsafe-xml"] and raw.values == {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(Refused):
        guard_archive(data, zf.infolist())
    # calamine, were the file to reach it: the entity is an error, never a billion "lol"s
    try:
        grid = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_name(T3).to_python()
        assert not any("lollol" in str(value) for row in grid for value in row)
    except python_calamine.CalamineError:
        pass
    # openpyxl (the coordinator's own files are read with it) goes through defusedxml
    with pytest.raises(ValueError, match="invalid XML") as refused:
        openpyxl.load_workbook(io.BytesIO(data))
    assert isinstance(refused.value.__cause__, DTDForbidden | EntitiesForbidden)


def test_a_bomb_is_refused_by_what_it_declares(form: FormSpec) -> None:
    """60 MB of zeros in a 60 KB file: refused from the central directory, before anything inflates it."""
    noise = random.Random(7).randbytes(64)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", b"<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", noise + b"\0" * (60 * 1024 * 1024))  # 60 MB of zeros: ~60 KB
    raw = read_workbook(out.getvalue(), form, "bomb.xlsx")
    assert [(i.code, i.found) for i in raw.issues] == [("unsafe-archive", "bomb.xlsx")]
    assert "压缩比超过100倍" in raw.issues[0].message


def test_renamed_sheet_is_named_as_the_unit_sees_it(world: World) -> None:
    submission, _ = _row(world, world.sent["renamed-sheet-with-a-bad-value"][0])
    assert [(i["code"], i["sheet"], i["cell"]) for i in submission.issues] == [("negative-value", RENAMED, "E6")]


def test_the_corpus_covers_every_new_issue_kind(world: World) -> None:
    from schemas.issues import ISSUE_KINDS

    answered = {code for sent in world.sent.values() for s in sent for code, _ in s.issues}
    new = {"unsafe-archive", "unsafe-xml", "macro-workbook", "encrypted-workbook", "other-format", "merged-input",
           "empty-return", "empty-sheet", "formula-without-value", "value-too-large"}
    assert new <= answered <= set(ISSUE_KINDS)
    assert len(CASES) >= 30
