"""`nianbao demo`: a whole collection year on a demo county, end to end, on the embedded defaults.

Units are registered, the campaign is opened, every unit "fills" its own workbook (openpyxl, by defined name) into
the inbox with a simulated arrival time, the returns are ingested in rounds (one unit's first return breaks the
勾稽关系 and is rejected, then fixed; one unit is late), and the county report is compiled.
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
from cli.simulate import fill_by_names
from schemas.settings import get_settings

log = logging.getLogger("nianbao")
MARKER = ".nianbao-demo"
TEXTS = Path(__file__).parent / "demo_texts" / "xixian_2021_sections.txt"


def run_demo(year: int = 2021) -> int:
    from flows.compile_report import compile_report
    from flows.ingest_returns import ingest_returns
    from flows.open_collection import open_collection

    settings = demo_mail.force_eml()
    home = _fresh_home(settings.home)
    deadline = date(year + 1, 1, 20)
    _register_units(home)
    log.info("1/5 开启%d年度填报，截止日期 %s", year, deadline)
    opened = open_collection(year, deadline)
    workbooks = Path(opened.outbox) / "workbooks"
    inbox = settings.inbox_dir(year)

    log.info("2/5 各单位填报并报送（%s 首次报送勾稽关系有误）", demo_county.BROKEN_UNIT)
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

    log.info("3/5 %s 修改后重新报送", demo_county.BROKEN_UNIT)
    _return(workbooks, inbox, demo_county.BROKEN_UNIT, year, demo_county.FIGURES[demo_county.BROKEN_UNIT],
            datetime(year + 1, 1, 16, 2, tzinfo=UTC), suffix="（修改后）")
    second = ingest_returns(year)
    log.info("   第二轮：%d 个文件，通过 %d，未通过 %d", second.files, second.accepted, second.rejected)
    demo_mail.answer_returns(year, opened.campaign_id)
    demo_mail.chase(year, deadline - timedelta(days=1))  # D-1: the late unit again
    demo_mail.chase(year, deadline + timedelta(days=1))  # D+1: escalated to its leader, in the coordinator's digest

    log.info("4/5 %s 逾期报送", demo_county.LATE_UNIT)
    _return(workbooks, inbox, demo_county.LATE_UNIT, year, demo_county.FIGURES[demo_county.LATE_UNIT],
            datetime(year + 1, 1, 26, 7, tzinfo=UTC))
    third = ingest_returns(year)
    log.info("   第三轮：%d 个文件，通过 %d，未通过 %d", third.files, third.accepted, third.rejected)
    demo_mail.answer_returns(year, opened.campaign_id)

    log.info("5/5 汇总全县报告")
    report = compile_report(year, str(TEXTS), "draft", demo_county.COUNTY_NAME)
    rejected = [a for a in first.answers if "问题清单" in a]
    log.info("\n演示完成。\n  报告：%s\n  汇总表：%s\n  未通过审核的问题清单示例：%s\n  数据目录：%s\n"
             "  查看进度：NIANBAO_HOME=%s .venv/bin/nianbao status --year %d\n%s",
             report.html, report.xlsx, rejected[0] if rejected else "—", home.resolve(), home, year,
             demo_mail.mail_summary(year))
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


def _office_hours(year: int, n: int) -> datetime:
    """The n-th on-time return: four a day from 8 January, between 09:00 and 15:00 Beijing time."""
    return datetime(year + 1, 1, 8, 1, tzinfo=UTC) + timedelta(days=n // 4, hours=2 * (n % 4))


def _return(workbooks: Path, inbox: Path, code: str, year: int, figures: dict[str, int | str], at: datetime,
            suffix: str = "") -> Path:
    issued = next(workbooks.glob(f"{year}年*-{code}-*.xlsx"))
    values = {k: Decimal(v) if isinstance(v, str) else v for k, v in figures.items()}
    target = fill_by_names(issued, inbox / f"{issued.stem}{suffix}.xlsx", values)
    os.utime(target, (at.timestamp(), at.timestamp()))  # the file's arrival time in the inbox
    return target
