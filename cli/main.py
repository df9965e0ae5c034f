"""nianbao: collect the county's 政府信息公开工作年度报告 figures.

  nianbao units import FILE               register or update the reporting units (CSV or XLSX)
  nianbao open --year Y --deadline D      open the year's collection and issue the workbooks
  nianbao ingest --year Y [--inbox DIR]   check and store every returned workbook in the inbox
  nianbao status --year Y [--json]        where every unit stands
  nianbao report --year Y [--text F]      compile the county report (HTML, summary workbook, JSON)
  nianbao unit-reports --year Y [--unit C] each unit's own annual report from its accepted return
  nianbao import-report --year Y FILE     last year's published report, as year zero (carry-over, comparison)
  nianbao narrative-sheet --year Y        the coordinator's sheet for the report's prose (sections 一, 五, 六)
  nianbao docx-template FILE              the packaged Word template, to edit (NIANBAO_DOCX_TEMPLATE)
  nianbao chase --year Y [--dry-run]      remind late units, escalate overdue ones, mail the digest
  nianbao audit [--unit C] [--year Y]     the audit log: every recorded change of state, in order
  nianbao held --year Y [--admit ID ...]  returns kept after approval; admit one as a recorded exception
  nianbao demo                            a whole year on a demo county, end to end
  nianbao portal [--host H] [--port P]    the upload page units open through their personal links
  nianbao serve [--port P]                serve the scheduled and on-demand deployments (Prefect UI)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import nullcontext
from datetime import date
from pathlib import Path

from cli.prefect_env import configure_prefect, foreground_runs
from schemas.settings import get_settings

log = logging.getLogger("nianbao")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers = [handler]  # replaced, not added: main() may run several times in one process
    log.setLevel(logging.INFO)
    log.propagate = False  # Prefect installs a root handler of its own; print each line once
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    configure_prefect(settings.home)
    try:
        # flows the command runs in this terminal skip Prefect's heartbeat; serve and portal run for long
        with foreground_runs() if args.foreground else nullcontext():
            return int(args.run(args))
    except (ValueError, FileNotFoundError) as exc:
        log.error("nianbao: %s", exc)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nianbao", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(foreground=True)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    units = sub.add_parser("units", help="manage the register of reporting units")
    units_sub = units.add_subparsers(required=True, metavar="ACTION")
    imp = units_sub.add_parser("import", help="create or update units from a CSV or XLSX file")
    imp.add_argument("file", type=Path, help="columns: code, name, kind, contact, email (phone optional)")
    imp.set_defaults(run=_cmd_units_import)

    opn = sub.add_parser("open", help="open a year's collection and issue every active unit its workbook")
    opn.add_argument("--year", type=int, required=True, help="report year, e.g. 2021")
    opn.add_argument("--deadline", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
    opn.add_argument("--designated-unit", help="unit whose county-wide figures are taken (default: 县政府办)")
    opn.set_defaults(run=_cmd_open)

    ing = sub.add_parser("ingest", help="check and store every new file in the campaign's inbox")
    ing.add_argument("--year", type=int, required=True)
    ing.add_argument("--inbox", type=Path, help="inbox folder (default: $NIANBAO_HOME/campaigns/YEAR/inbox)")
    ing.set_defaults(run=_cmd_ingest)

    st = sub.add_parser("status", help="where every unit stands")
    st.add_argument("--year", type=int, required=True)
    st.add_argument("--json", action="store_true", help="print a JSON list")
    st.add_argument("--today", type=date.fromisoformat, help="judge lateness as of this day (YYYY-MM-DD)")
    st.set_defaults(run=_cmd_status)

    rep = sub.add_parser("report", help="compile the county report")
    rep.add_argument("--year", type=int, required=True)
    rep.add_argument("--text", type=Path, help="coordinator's text for sections 一, 五, 六")
    rep.add_argument("--final", action="store_true", help="mark as the final report (default: draft)")
    rep.add_argument("--json", action="store_true", help="print the county figures as JSON")
    rep.add_argument("--formats", help="publication formats besides HTML, comma separated (default: docx,pdf; "
                                       "'' for none)")
    rep.set_defaults(run=_cmd_report)

    ur = sub.add_parser("unit-reports", help="write each unit's own annual report from its accepted return")
    ur.add_argument("--year", type=int, required=True)
    ur.add_argument("--unit", action="append", dest="units", metavar="CODE", help="only this unit (repeatable)")
    ur.add_argument("--formats", help="formats besides HTML, comma separated (default: docx,pdf)")
    ur.set_defaults(run=_cmd_unit_reports)

    ir = sub.add_parser("import-report", help="import the tables of a report published before nianbao (year zero)")
    ir.add_argument("--year", type=int, required=True, help="the report's year, e.g. 2020 before collecting 2021")
    ir.add_argument("--unit", metavar="CODE", help="the unit whose own report it is (default: the county's report)")
    ir.add_argument("--force", action="store_true", help="import even with problems (they are kept with it)")
    ir.add_argument("file", type=Path, help=".txt copied from the portal, .html, .docx, or nianbao's .xlsx/.json")
    ir.set_defaults(run=_cmd_import_report)

    ns = sub.add_parser("narrative-sheet", help="write the coordinator's sheet for sections 一, 五, 六")
    ns.add_argument("--year", type=int, required=True)
    ns.add_argument("--output", type=Path, help="default: $NIANBAO_HOME/campaigns/YEAR/narrative.xlsx")
    ns.set_defaults(run=_cmd_narrative_sheet)

    dt = sub.add_parser("docx-template", help="write the packaged Word template, to edit and name in "
                                              "NIANBAO_DOCX_TEMPLATE")
    dt.add_argument("file", type=Path)
    dt.set_defaults(run=_cmd_docx_template)

    chase = sub.add_parser("chase", help="remind late units, escalate overdue ones, mail the coordinator's digest")
    chase.add_argument("--year", type=int, required=True)
    chase.add_argument("--dry-run", action="store_true", help="list who would be chased and why; send nothing")
    chase.add_argument("--today", type=date.fromisoformat, help="act as if today were YYYY-MM-DD (China time)")
    chase.set_defaults(run=_cmd_chase)

    au = sub.add_parser("audit", help="the audit log of a unit or a year: every recorded change of state")
    au.add_argument("--unit", metavar="CODE", help="one unit's entries (with its register changes)")
    au.add_argument("--year", type=int, help="one year's collection")
    au.add_argument("--kind", help="only entries whose kind starts with this, e.g. submission or mail")
    au.add_argument("--json", action="store_true", help="print a JSON list with every entry's full detail")
    au.set_defaults(run=_cmd_audit)

    hd = sub.add_parser("held", help="returns that arrived after the report was approved: list them, or admit one "
                                     "as a recorded exception (re-opens the year for a new approval)")
    hd.add_argument("--year", type=int, required=True)
    hd.add_argument("--admit", type=int, metavar="SUBMISSION", help="the held return to admit (its number)")
    hd.add_argument("--by", default="", help="who decided (required with --admit)")
    hd.add_argument("--reason", default="", help="why (required with --admit)")
    hd.set_defaults(run=_cmd_held)

    srv = sub.add_parser("serve", help="serve every deployment; starts a local Prefect server if none is set")
    srv.add_argument("--port", type=int, default=4200, help="port of the local Prefect server (default 4200)")
    srv.set_defaults(run=_cmd_serve, foreground=False)

    portal = sub.add_parser("portal", help="serve the upload page (units' personal links /u/TOKEN)")
    portal.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    portal.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    portal.set_defaults(run=_cmd_portal, foreground=False)

    demo = sub.add_parser("demo", help="run a whole collection year on a demo county")
    demo.add_argument("--year", type=int, default=2021)
    demo.set_defaults(run=_cmd_demo)
    return parser


def _cmd_units_import(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from tasks.db import get_engine
    from tasks.units import read_units_file, upsert_units

    rows = read_units_file(args.file)
    with Session(get_engine(get_settings().db_url)) as session:
        result = upsert_units(session=session, rows=rows)
        session.commit()
    log.info("units: %d created, %d updated, %d unchanged", result.created, result.updated, result.unchanged)
    return 0


def _cmd_open(args: argparse.Namespace) -> int:
    from flows.open_collection import open_collection

    summary = open_collection(args.year, args.deadline, args.designated_unit)
    log.info("%d年度：本次下发 %d 份工作簿（此前已下发 %d 份），位于 %s/workbooks", summary.year, summary.issued,
             summary.already_issued, summary.outbox)
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    _prestart_workers()
    from flows.ingest_returns import ingest_returns

    summary = ingest_returns(args.year, str(args.inbox) if args.inbox else None)
    held = f"，定稿后收到未并入 {summary.held}" if summary.held else ""
    log.info("%d年度：处理 %d 个文件，通过 %d，未通过 %d，重复 %d%s", summary.year, summary.files, summary.accepted,
             summary.rejected, summary.duplicates, held)
    if summary.skipped:
        log.warning("收件箱中有 %d 个文件因文件名以“~”或“.”开头（或为临时文件）未处理：%s。如其中有单位报送的工作簿，"
                    "请改名后放回收件箱。", len(summary.skipped), "、".join(summary.skipped[:20]))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from schemas.form_spec import get_form
    from tasks.campaigns import get_campaign
    from tasks.db import get_engine
    from tasks.status import campaign_status

    with Session(get_engine(get_settings().db_url)) as session:
        campaign = get_campaign(session=session, form=get_form(), year=args.year)
        rows = campaign_status(session=session, campaign=campaign, today=args.today)
    if args.json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False, indent=1) + "\n")
        return 0
    from cli.tables import print_status

    print_status(args.year, rows)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from cli.report_view import report_lines
    from flows.compile_report import compile_report

    summary = compile_report(args.year, str(args.text) if args.text else None, "final" if args.final else "draft",
                             formats=_formats(args.formats))
    if args.json:
        sys.stdout.write(json.dumps(summary.figures, ensure_ascii=False) + "\n")
    log.info("%s", report_lines(summary))
    return 0


def _formats(text: str | None) -> list[str] | None:
    """The formats asked for besides HTML; None: all. A misspelt one is refused, never silently left out."""
    if text is None:
        return None
    from tasks.publication import PUBLICATION_FORMATS

    wanted = [f.strip().lower() for f in text.replace("，", ",").split(",") if f.strip()]
    unknown = [f for f in wanted if f not in (*PUBLICATION_FORMATS, "html")]
    if unknown:
        raise ValueError(f"未知的格式：{'、'.join(unknown)}"
                         f"（可选：{'、'.join(PUBLICATION_FORMATS)}；网页版 HTML 总会生成）")
    return wanted


def _cmd_unit_reports(args: argparse.Namespace) -> int:
    from flows.unit_reports import unit_reports

    summary = unit_reports(args.year, args.units, _formats(args.formats))
    for report in summary.reports:
        log.info("%s %s：%s", report.code, report.name, "、".join(report.files.values()))
        for note in report.notes:
            log.info("    需注意：%s", note)
    for code in summary.missing:
        log.warning("%s：尚无审核通过的报送，未生成年度报告", code)
    log.info("%d年度：生成单位年度报告 %d 份，位于 %s", args.year, len(summary.reports),
             get_settings().unit_reports_dir(args.year))
    # a unit asked for by name and not made is a failure; units yet to return, in a run over all, are not
    return 1 if args.units and summary.missing else 0


def _cmd_import_report(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from schemas.form_spec import get_form
    from tasks.db import get_engine
    from tasks.published_import import PublishedImportError, import_published

    settings = get_settings()
    if not args.file.is_file():
        folder = "（这是一个文件夹，请指定报告文件）" if args.file.is_dir() else ""
        raise FileNotFoundError(f"找不到文件 {args.file}{folder}")
    with Session(get_engine(settings.db_url)) as session:
        try:
            done = import_published(session=session, form=get_form(), year=args.year, unit_code=args.unit,
                                    data=args.file.read_bytes(), name=args.file.name,
                                    archive_dir=settings.archive_dir, force=args.force)
        except PublishedImportError as exc:
            log.error("未导入 %s：", args.file)
            for problem in exc.problems:
                log.error("  - %s", problem)
            if exc.forceable and not args.force:
                log.error("请核对文件；确认无误仍要导入，加 --force。")
            else:
                log.error("请按上述原因更正后再导入。")
            return 2
        session.commit()
    whose = f"单位{done.unit_code}" if done.unit_code else "全县"
    title = f"《{done.title}》" if done.title else ""
    missing = f"，缺 {done.missing} 项" if done.missing else ""
    log.info("已导入%s %d年度报告%s：读取 %d 项数据%s%s", whose, done.year, title, done.figures, missing,
             "（替换此前导入的）" if done.replaced else "")
    for note in done.notes:
        log.info("  注意：%s", note)
    return 0


def _cmd_narrative_sheet(args: argparse.Namespace) -> int:
    from schemas.form_spec import get_form
    from tasks.narrative_sources import find_narrative_file
    from tasks.workbook_template import build_narrative_sheet

    folder = get_settings().campaign_dir(args.year)
    target = args.output or folder / "narrative.xlsx"
    if target.exists():
        raise ValueError(f"{target} 已存在，未覆盖：请直接填写它，或用 --output 指定另一个文件")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(build_narrative_sheet(get_form(), args.year))
    # the report finds only the campaign's own narrative file, and a .md or .txt there comes first
    used = find_narrative_file(folder)
    if used is not None and used.resolve() == target.resolve():
        log.info("文字部分填写表：%s（填好后保存，汇总报告时自动使用）", target)
    elif used is None:
        log.info("文字部分填写表：%s（填好后保存，汇总报告时用 --text %s 指定）", target, target)
    else:
        log.warning("文字部分填写表：%s；但汇总报告时将优先使用 %s（用 --text %s 指定填写表，或删除、改名 %s）",
                    target, used, target, used.name)
    return 0


def _cmd_docx_template(args: argparse.Namespace) -> int:
    from tasks.render_docx import default_template

    if args.file.exists():
        raise ValueError(f"{args.file} 已存在，未覆盖：请指定另一个文件名")
    args.file.write_bytes(default_template())
    log.info("Word 模板：%s（在 Word 中修改样式、页边距、页眉后，设置 NIANBAO_DOCX_TEMPLATE=%s）", args.file,
             args.file.resolve())
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from tasks.audit import audit_trail, china_time
    from tasks.db import get_engine

    if args.unit is None and args.year is None:
        raise ValueError("请用 --unit 或 --year 指定要查看的单位或年度")
    with Session(get_engine(get_settings().db_url)) as session:
        entries = audit_trail(session=session, unit_code=args.unit, year=args.year, kind_prefix=args.kind)
    if args.json:
        sys.stdout.write(json.dumps([e.public() for e in entries], ensure_ascii=False, indent=1) + "\n")
        return 0
    for entry in entries:
        who = f"{entry.unit_code} " if entry.unit_code and args.unit is None else ""
        year = f"{entry.year}年度 " if entry.year and args.year is None else ""
        sys.stdout.write(f"{china_time(entry.at)}  {year}{who}{entry.text}\n")
    log.info("共 %d 条记录", len(entries))
    return 0


def _cmd_held(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from schemas.form_spec import get_form
    from tasks.admission import admit_held, held_returns
    from tasks.audit import china_time
    from tasks.campaigns import get_campaign
    from tasks.db import get_engine

    with Session(get_engine(get_settings().db_url)) as session:
        campaign = get_campaign(session=session, form=get_form(), year=args.year)
        if args.admit is None:
            held = held_returns(session=session, campaign=campaign)
            for item in held:
                sys.stdout.write(f"{item.submission_id}\t{item.unit_code}\t{item.unit_name}\t第{item.version}次\t"
                                 f"{china_time(item.received_at)}\t{item.file_name}\n")
            log.info("%d年度：报告定稿后收到、已保存未并入的报送 %d 份%s", args.year, len(held),
                     f"（例外并入：nianbao held --year {args.year} --admit 编号 --by 批准人 --reason 理由）"
                     if held else "")
            return 0
        done = admit_held(session=session, campaign=campaign, submission_id=args.admit, by=args.by,
                          reason=args.reason)
        session.commit()
    replaced = f"，替换第{done.replaced_version}次" if done.replaced_version else ""
    log.info("已例外并入 %s 第%d次报送%s，已记入审计日志。", done.unit_code, done.version, replaced)
    if done.reopened:
        log.info("%d年度报告已重新开启：请重新汇总报告并再次审批定稿（原审批记录保留）。", args.year)
    return 0


def _prestart_workers() -> None:
    """The examination workers' forkserver starts while Prefect is imported and started (tasks/examine_pool.py)."""
    from tasks.examine_pool import prestart

    try:
        prestart()
    except Exception as exc:  # the pool starts its workers itself, or examines in this process
        log.warning("the examination workers could not be started ahead: %s", exc)


def _cmd_serve(args: argparse.Namespace) -> int:
    from deployments.serve import run

    return run(get_settings().home, port=args.port)


def _cmd_portal(args: argparse.Namespace) -> int:
    from portal.server import serve

    log.info("报送页面：http://%s:%d/u/<单位链接>（Ctrl+C 停止）", args.host, args.port)
    serve(get_settings(), host=args.host, port=args.port)
    return 0


def _cmd_chase(args: argparse.Namespace) -> int:
    from cli.chase_view import print_chase
    from flows.chase_late_units import chase_late_units

    print_chase(chase_late_units(args.year, args.today, args.dry_run))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(args.year)


if __name__ == "__main__":
    raise SystemExit(main())
