"""nianbao: collect the county's 政府信息公开工作年度报告 figures.

  nianbao units import FILE               register or update the reporting units (CSV or XLSX)
  nianbao open --year Y --deadline D      open the year's collection and issue the workbooks
  nianbao ingest --year Y [--inbox DIR]   check and store every returned workbook in the inbox
  nianbao status --year Y [--json]        where every unit stands
  nianbao report --year Y [--text F]      compile the county report (HTML, summary workbook, JSON)
  nianbao chase --year Y [--dry-run]      remind late units, escalate overdue ones, mail the digest
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
    rep.set_defaults(run=_cmd_report)

    chase = sub.add_parser("chase", help="remind late units, escalate overdue ones, mail the coordinator's digest")
    chase.add_argument("--year", type=int, required=True)
    chase.add_argument("--dry-run", action="store_true", help="list who would be chased and why; send nothing")
    chase.add_argument("--today", type=date.fromisoformat, help="act as if today were YYYY-MM-DD (China time)")
    chase.set_defaults(run=_cmd_chase)

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
    log.info("%d年度：处理 %d 个文件，通过 %d，未通过 %d，重复 %d", summary.year, summary.files, summary.accepted,
             summary.rejected, summary.duplicates)
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
    from flows.compile_report import compile_report

    summary = compile_report(args.year, str(args.text) if args.text else None, "final" if args.final else "draft")
    if args.json:
        sys.stdout.write(json.dumps(summary.figures, ensure_ascii=False) + "\n")
    log.info("报告：%s\n汇总表：%s\n已通过 %d / %d 个单位；汇总校验问题 %d 个", summary.html, summary.xlsx,
             summary.units_accepted, summary.units_expected, summary.errors)
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
