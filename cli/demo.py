"""`nianbao demo`: a whole collection year on a demo county, end to end, on the embedded defaults.

Units are registered; last year's published reports (the county's and one department's, written before nianbao was
used) are imported as year zero, so that the year-over-year comparison and one unit's 上年结转 have a source; the
campaign is opened, every unit "fills" its own workbook (openpyxl, by defined name: the tables and its 文字部分) into
the inbox with a simulated arrival time, the returns are ingested in rounds (one unit's first return breaks the
勾稽关系 and is rejected, then fixed; one unit is late), the county report is compiled (HTML, Word, PDF, its annex,
the summary workbook), and every unit's own annual report is written from its accepted return.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from cli import demo_county, demo_mail
from cli.report_view import report_lines
from cli.simulate import fill_by_names
from schemas.settings import get_settings

log = logging.getLogger("nianbao")
MARKER = ".nianbao-demo"
DEMO_TEXTS = Path(__file__).parent / "demo_texts"
TEXTS = DEMO_TEXTS / "xixian_2021_sections.txt"
# Last year's reports as published on the portal (text copied from the page): the county's, and one department's
# (D004 carried two applications into 2021). Their figures are invented to agree with the 2021 seed's 上年结转.
PUBLISHED_LAST_YEAR: dict[str | None, str] = {None: "xixian_2020_report.txt", "D004": "D004_2020_report.txt"}


def run_demo(year: int = 2021) -> int:
    from flows.compile_report import compile_report
    from flows.ingest_returns import ingest_returns
    from flows.open_collection import open_collection
    from flows.unit_reports import unit_reports

    settings = demo_mail.force_eml()
    home = _fresh_home(settings.home)
    deadline = date(year + 1, 1, 20)
    _register_units(home)
    log.info("0/6 导入上年度（%d年）已公开的年度报告（首次使用系统，作为上年数据）", year - 1)
    _import_last_year(year - 1)
    log.info("1/6 开启%d年度填报，截止日期 %s", year, deadline)
    opened = open_collection(year, deadline)
    workbooks = Path(opened.outbox) / "workbooks"
    inbox = settings.inbox_dir(year)

    log.info("2/6 各单位填报并报送（%s 首次报送勾稽关系有误）", demo_county.BROKEN_UNIT)
    on_time = [u["code"] for u in demo_county.UNITS if u["code"] != demo_county.LATE_UNIT]
    for n, code in enumerate(on_time):
        figures = demo_county.FIGURES[code]
        if code == demo_county.BROKEN_UNIT:
            figures = demo_county.broken_first_return(figures)
        _return(workbooks, inbox, code, year, figures, _office_hours(year, n))
    first = ingest_returns(year)
    log.info("   第一轮：%d 个文件，通过 %d，未通过 %d", first.files, first.accepted, first.rejected)
    demo_mail.answer_returns(year, opened.campaign_id)
    demo_mail.chase(year, deadline - timedelta(days=7))  # D-7: the late unit and the rejected one are reminded

    log.info("3/6 %s 修改后重新报送", demo_county.BROKEN_UNIT)
    _return(workbooks, inbox, demo_county.BROKEN_UNIT, year, demo_county.FIGURES[demo_county.BROKEN_UNIT],
            datetime(year + 1, 1, 16, 2, tzinfo=UTC), suffix="（修改后）")
    second = ingest_returns(year)
    log.info("   第二轮：%d 个文件，通过 %d，未通过 %d", second.files, second.accepted, second.rejected)
    demo_mail.answer_returns(year, opened.campaign_id)
    demo_mail.chase(year, deadline - timedelta(days=1))  # D-1: the late unit again
    demo_mail.chase(year, deadline + timedelta(days=1))  # D+1: escalated to its leader, in the coordinator's digest

    log.info("4/6 %s 逾期报送", demo_county.LATE_UNIT)
    _return(workbooks, inbox, demo_county.LATE_UNIT, year, demo_county.FIGURES[demo_county.LATE_UNIT],
            datetime(year + 1, 1, 26, 7, tzinfo=UTC))
    third = ingest_returns(year)
    log.info("   第三轮：%d 个文件，通过 %d，未通过 %d", third.files, third.accepted, third.rejected)
    demo_mail.answer_returns(year, opened.campaign_id)

    log.info("5/6 汇总全县报告")
    report = compile_report(year, str(TEXTS), "draft", demo_county.COUNTY_NAME)
    log.info("6/6 生成各单位的年度报告（各单位据此于1月31日前公开本单位报告）")
    units = unit_reports(year)
    example = next(r for r in units.reports if r.code == demo_county.CARRIED_UNIT)
    rejected = [a for a in first.answers if "问题清单" in a]
    log.info("\n演示完成。\n%s\n  各单位年度报告：%d 份，位于 %s\n    例：%s\n  未通过审核的问题清单示例：%s\n"
             "  数据目录：%s\n  查看进度：NIANBAO_HOME=%s .venv/bin/nianbao status --year %d\n%s",
             _indented(report_lines(report)), len(units.reports), settings.unit_reports_dir(year),
             example.files.get("pdf") or example.files["html"], rejected[0] if rejected else "—", home.resolve(),
             home, year, demo_mail.mail_summary(year))
    return 0


def _fresh_home(home: Path) -> Path:
    """Start from an empty data folder; only a folder an earlier demo made is ever cleared."""
    if home.exists() and any(child.name != "prefect" for child in home.iterdir()):
        if not (home / MARKER).exists():
            raise ValueError(f"{home} holds data that is not the demo's; set NIANBAO_HOME to an empty folder")
        for child in home.iterdir():
            if child.name != "prefect":  # keep Prefect's own history of earlier demo runs
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("created by `nianbao demo`; the demo clears this folder when it runs again\n")
    return home


def _register_units(home: Path) -> None:
    from tasks.db import get_engine
    from tasks.units import read_units_file, upsert_units

    path = home / "demo-units.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["code", "name", "kind", "contact", "email", "phone", "leader",
                                               "leader_email"])
        writer.writeheader()
        writer.writerows(demo_mail.with_leaders(demo_county.UNITS))
    rows = read_units_file(path)
    with Session(get_engine(get_settings().db_url)) as session:
        result = upsert_units(session=session, rows=rows)
        session.commit()
    log.info("登记单位 %d 个（%s）", result.created, path)


def _import_last_year(year: int) -> None:
    """Year zero: the reports published last year, read into figures (as `nianbao import-report` does)."""
    from schemas.form_spec import get_form
    from tasks.db import get_engine
    from tasks.published_import import import_published

    settings = get_settings()
    with Session(get_engine(settings.db_url)) as session:
        for unit_code, name in PUBLISHED_LAST_YEAR.items():
            done = import_published(session=session, form=get_form(), year=year, unit_code=unit_code,
                                    data=(DEMO_TEXTS / name).read_bytes(), name=name,
                                    archive_dir=settings.archive_dir)
            log.info("   %s：读取 %d 项数据", f"单位{unit_code}" if unit_code else "全县", done.figures)
        session.commit()


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _office_hours(year: int, n: int) -> datetime:
    """The n-th on-time return: four a day from 8 January, between 09:00 and 15:00 Beijing time."""
    return datetime(year + 1, 1, 8, 1, tzinfo=UTC) + timedelta(days=n // 4, hours=2 * (n % 4))


def _return(workbooks: Path, inbox: Path, code: str, year: int, figures: dict[str, int | str], at: datetime,
            suffix: str = "") -> Path:
    issued = next(workbooks.glob(f"{year}年*-{code}-*.xlsx"))
    values: dict[str, object] = {k: Decimal(v) if isinstance(v, str) else v for k, v in figures.items()}
    values |= demo_county.unit_texts(code, year) | {"fee.notices": 0, "fee.billed_yuan": Decimal("0.00"),
                                                   "fee.collected_yuan": Decimal("0.00")}
    target = fill_by_names(issued, inbox / f"{issued.stem}{suffix}.xlsx", values)
    os.utime(target, (at.timestamp(), at.timestamp()))  # the file's arrival time in the inbox
    return target
