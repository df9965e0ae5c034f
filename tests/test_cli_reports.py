"""The report commands, in-process: `nianbao unit-reports`, `report --formats`, `narrative-sheet`, `docx-template`,
and a smoke test of `import-report` (its parser has tests of its own)."""

from __future__ import annotations

import re
from pathlib import Path

import docx
import pytest
from docx.shared import Pt
from sqlmodel import Session, col, func, select

from cli.main import main
from cli.simulate import fill_by_names
from schemas.form_spec import FormSpec
from schemas.settings import Settings, get_settings
from schemas.tables import EventLog, PublishedFigures
from tasks.db import get_engine
from tasks.report_digest import FILE_NAMES
from tests.factories import valid_figures
from tests.flows.test_unit_reports import html_sections

pytestmark = pytest.mark.usefixtures("prefect_harness")

YEAR = "2021"
DEMO_TEXTS = Path(__file__).parents[1] / "cli" / "demo_texts"
UNIT_TEXTS = {"narrative.overview": "本单位全面推进政务公开。", "narrative.problems": "公开质量有待提高。",
              "narrative.other": "无其他事项。"}
COUNTY_TEXTS = {  # what the coordinator types into the narrative sheet
    "narrative.overview": "（一）主动公开\n全县坚持以公开为常态。\n"
                          "（二）监督保障\n将政务公开纳入年度考核，开展社会评议。",
    "narrative.problems": "部分单位信息更新不及时。\n下一步将实行月通报制度。",
    "narrative.other": "本年度落实上级政务公开工作要点。",
}
SECTIONS = {"narrative.overview": "一、总体情况", "narrative.problems": "五、存在的主要问题及改进情况",
            "narrative.other": "六、其他需要报告的事项"}


def _collect(settings: Settings, units_file: Path, form: FormSpec, capsys: pytest.CaptureFixture[str]) -> None:
    """Units registered, 2021 opened, G001 and T001 accepted (D001 and T002 send nothing)."""
    assert main(["units", "import", str(units_file)]) == 0
    assert main(["open", "--year", YEAR, "--deadline", "2022-01-20"]) == 0
    for code in ("G001", "T001"):
        issued = next((settings.outbox_dir(2021) / "workbooks").glob(f"{YEAR}年*-{code}-*.xlsx"))
        fill_by_names(issued, settings.inbox_dir(2021) / issued.name, {**valid_figures(form), **UNIT_TEXTS})
    assert main(["ingest", "--year", YEAR]) == 0
    assert "通过 2" in capsys.readouterr().err


def _unit_files(settings: Settings, code: str) -> list[str]:
    folder = settings.unit_reports_dir(2021) / code
    return sorted(p.suffix for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _listed_files(err: str) -> dict[str, Path]:
    """The files `nianbao report` lists, by kind (html, docx, annex-pdf, ...)."""
    kinds = {name: kind for kind, name in FILE_NAMES.items()}
    listed = {}
    for line in err.splitlines():
        name, _, path = line.partition("：")
        if name in kinds:
            listed[kinds[name]] = Path(path)
    return listed


def test_unit_reports_writes_the_formats_asked_and_fails_for_a_named_unit_without_a_report(
        settings: Settings, units_file: Path, form: FormSpec, capsys: pytest.CaptureFixture[str]) -> None:
    _collect(settings, units_file, form, capsys)

    assert main(["unit-reports", "--year", YEAR, "--unit", "T001", "--formats", ""]) == 0
    err = capsys.readouterr().err
    assert _unit_files(settings, "T001") == [".html"] and _unit_files(settings, "G001") == []
    html = next(settings.unit_reports_dir(2021).glob("T001/*/*.html"))
    assert f"T001 城关镇：{html}" in err and "生成单位年度报告 1 份" in err and "尚无" not in err

    assert main(["unit-reports", "--year", YEAR, "--unit", "T001", "--unit", "T002"]) == 1
    err = capsys.readouterr().err
    assert "T002：尚无审核通过的报送，未生成年度报告" in err
    assert _unit_files(settings, "T001") == [".docx", ".html", ".pdf"]  # by default Word and PDF too
    assert _unit_files(settings, "T002") == []

    # every unit: those yet to return are listed, but a run over all is not a failure
    assert main(["unit-reports", "--year", YEAR, "--formats", "docx"]) == 0
    err = capsys.readouterr().err
    assert _unit_files(settings, "G001") == [".docx", ".html"]
    assert "D001：尚无审核通过的报送" in err and "T002：尚无审核通过的报送" in err and "G001：尚无" not in err
    assert "生成单位年度报告 2 份" in err

    assert main(["unit-reports", "--year", YEAR, "--formats", "word"]) == 2  # a typo is not "HTML only"
    assert "未知的格式：word" in capsys.readouterr().err


def test_report_writes_html_only_with_empty_formats_and_word_and_pdf_by_default(
        settings: Settings, units_file: Path, form: FormSpec, capsys: pytest.CaptureFixture[str]) -> None:
    _collect(settings, units_file, form, capsys)
    folder = settings.reports_dir(2021)

    assert main(["report", "--year", YEAR, "--formats", ""]) == 0
    listed = _listed_files(capsys.readouterr().err)
    assert set(listed) == {"html", "annex-html", "xlsx", "json"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in listed.values())
    first = {p.name: p.read_bytes() for p in folder.iterdir()}

    assert main(["report", "--year", YEAR]) == 0
    listed = _listed_files(capsys.readouterr().err)
    assert set(listed) == {"html", "docx", "pdf", "annex-html", "annex-docx", "annex-pdf", "xlsx", "json"}
    # the second report has files of its own, even when compiled within the same second as the first
    assert {p.name for p in folder.iterdir()} == set(first) | {p.name for p in listed.values()}
    assert not set(first) & {p.name for p in listed.values()}
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in first} == first
    title = "示范县人民政府2021年政府信息公开工作年度报告"
    assert docx.Document(str(listed["docx"])).paragraphs[0].text == title
    assert docx.Document(str(listed["annex-docx"])).paragraphs[0].text.startswith("示范县2021年")
    assert listed["pdf"].read_bytes().startswith(b"%PDF-") and listed["annex-pdf"].read_bytes().startswith(b"%PDF-")


def test_narrative_sheet_is_written_once_and_its_texts_make_the_reports_prose(
        settings: Settings, units_file: Path, form: FormSpec, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _collect(settings, units_file, form, capsys)
    sheet = settings.campaign_dir(2021) / "narrative.xlsx"

    assert main(["narrative-sheet", "--year", YEAR]) == 0
    assert f"文字部分填写表：{sheet}（填好后保存，汇总报告时自动使用）" in capsys.readouterr().err
    blank = sheet.read_bytes()
    assert main(["narrative-sheet", "--year", YEAR]) == 2
    assert "已存在，未覆盖" in capsys.readouterr().err
    assert sheet.read_bytes() == blank
    # a sheet the report will not find by itself is never announced as used
    elsewhere = tmp_path / "文字部分.xlsx"
    assert main(["narrative-sheet", "--year", YEAR, "--output", str(elsewhere)]) == 0 and elsewhere.is_file()
    assert f"但汇总报告时将优先使用 {sheet}（用 --text {elsewhere} 指定填写表" in capsys.readouterr().err
    text_file = settings.campaign_dir(2022) / "narrative.txt"
    text_file.parent.mkdir(parents=True)
    text_file.write_text("[总体情况]\n……\n", encoding="utf-8")
    assert main(["narrative-sheet", "--year", "2022"]) == 0
    assert f"将优先使用 {text_file}" in capsys.readouterr().err

    assert main(["report", "--year", YEAR, "--formats", ""]) == 0  # not filled in yet: placeholders
    err = capsys.readouterr().err
    assert "“五、存在的主要问题及改进情况”尚未填写" in err

    fill_by_names(sheet, sheet, COUNTY_TEXTS)  # the coordinator types the texts in and saves
    assert main(["report", "--year", YEAR, "--formats", ""]) == 0
    err = capsys.readouterr().err
    assert "尚未填写" not in err and "未提供文字部分" not in err
    sections = html_sections(_listed_files(err)["html"].read_text(encoding="utf-8"))
    for key, heading in SECTIONS.items():
        written = [text for css, text in sections[heading] if css in {"body", "subheading"}]
        assert written == COUNTY_TEXTS[key].splitlines(), heading
    annex = _listed_files(err)["annex-html"].read_text(encoding="utf-8")
    assert f"文字部分来源：{sheet}" in annex


def test_docx_template_is_written_once_and_an_edited_copy_is_used(
        settings: Settings, units_file: Path, form: FormSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _collect(settings, units_file, form, capsys)
    template = tmp_path / "模板.docx"

    assert main(["docx-template", str(template)]) == 0
    assert f"NIANBAO_DOCX_TEMPLATE={template.resolve()}" in capsys.readouterr().err
    packaged = template.read_bytes()
    assert main(["docx-template", str(template)]) == 2
    assert "已存在，未覆盖" in capsys.readouterr().err and template.read_bytes() == packaged

    edited = docx.Document(str(template))  # the office's edit: a letterhead, and its own body size
    assert {"报告正文", "报告标题", "报告一级标题"} <= {s.name for s in edited.styles}
    edited.sections[0].header.add_paragraph("息县人民政府办公室")
    edited.styles["报告正文"].font.size = Pt(15)
    ours = tmp_path / "息县模板.docx"
    edited.save(str(ours))
    monkeypatch.setenv("NIANBAO_DOCX_TEMPLATE", str(ours))
    get_settings.cache_clear()

    assert main(["report", "--year", YEAR, "--formats", "docx"]) == 0
    county = _listed_files(capsys.readouterr().err)["docx"]
    assert main(["unit-reports", "--year", YEAR, "--unit", "T001", "--formats", "docx"]) == 0
    unit = next(settings.unit_reports_dir(2021).glob("T001/*/*.docx"))
    for path in (county, unit):
        made = docx.Document(str(path))
        assert "息县人民政府办公室" in [p.text for p in made.sections[0].header.paragraphs], path
        assert made.styles["报告正文"].font.size == Pt(15)
        assert any(p.style is not None and p.style.name == "报告正文" and p.text for p in made.paragraphs)

    broken = tmp_path / "坏模板.docx"
    broken.write_bytes(b"not a Word file")
    monkeypatch.setenv("NIANBAO_DOCX_TEMPLATE", str(broken))
    get_settings.cache_clear()
    assert main(["report", "--year", YEAR, "--formats", "docx"]) == 0  # the report is never lost to its template
    err = capsys.readouterr().err
    assert "未生成Word版：Word 模板无法使用" in err
    assert set(_listed_files(err)) == {"html", "annex-html", "xlsx", "json"}


def test_import_report_reads_a_good_file_and_refuses_a_broken_one_storing_nothing(
        settings: Settings, form: FormSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = DEMO_TEXTS / "xixian_2020_report.txt"
    text = good.read_text(encoding="utf-8")
    broken_text = text.replace("一、本年新收政府信息公开申请数量\t2\t2", "一、本年新收政府信息公开申请数量\t3\t2", 1)
    assert broken_text != text
    broken = tmp_path / "息县2020年报告（有误）.txt"
    broken.write_text(broken_text, encoding="utf-8")

    assert main(["import-report", "--year", "2020", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"未导入 {broken}" in err and "请核对文件；确认无误仍要导入，加 --force。" in err
    # the parser's own tests hold its wording; here: every problem listed, in Chinese, the broken rule named
    problems = [line.strip()[2:] for line in err.splitlines() if line.strip().startswith("- ")]
    assert problems and all(re.search(r"[\u4e00-\u9fff]", problem) for problem in problems)
    assert any("勾稽关系（自然人列）" in problem for problem in problems)
    with Session(get_engine(settings.db_url)) as session:
        assert session.exec(select(func.count()).select_from(PublishedFigures)).one() == 0
        assert session.exec(select(func.count()).select_from(EventLog)).one() == 0

    assert main(["import-report", "--year", "2020", str(good)]) == 0
    err = capsys.readouterr().err
    assert (f"已导入全县 2020年度报告《息县人民政府2020年政府信息公开工作年度报告》："
            f"读取 {len(form.statutory_cells)} 项数据") in err
    with Session(get_engine(settings.db_url)) as session:
        stored = session.exec(select(PublishedFigures)).all()
        assert [(p.year, p.unit_code, p.original_name) for p in stored] == [(2020, None, good.name)]
        kinds = session.exec(select(EventLog.kind).order_by(col(EventLog.id))).all()
        assert list(kinds) == ["published.imported"]


@pytest.mark.usefixtures("settings")
def test_import_report_never_suggests_force_where_it_cannot_help(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = DEMO_TEXTS / "xixian_2020_report.txt"

    assert main(["import-report", "--year", "2020", "--unit", "X999", str(good)]) == 2
    err = capsys.readouterr().err
    assert "单位代码X999不在单位名单中" in err and "--force" not in err and "请按上述原因更正后再导入。" in err

    assert main(["import-report", "--year", "2020", "--force", "--unit", "X999", str(good)]) == 2
    assert "--force。" not in capsys.readouterr().err

    assert main(["import-report", "--year", "2020", str(tmp_path)]) == 2
    assert f"找不到文件 {tmp_path}（这是一个文件夹，请指定报告文件）" in capsys.readouterr().err
    assert main(["import-report", "--year", "2020", str(tmp_path / "没有.txt")]) == 2
    assert "找不到文件" in capsys.readouterr().err


def test_a_report_compiled_in_the_same_second_gets_a_free_name(tmp_path: Path) -> None:
    from flows.compile_report import _free_stem

    stem = "2021年政府信息公开工作年度报告-draft-20220210-090000"
    assert _free_stem(tmp_path, stem) == stem
    (tmp_path / f"{stem}.html").write_text("first")
    assert _free_stem(tmp_path, stem) == f"{stem}-2"
    (tmp_path / "2021年政府信息公开工作年度报告汇总情况说明-draft-20220210-090000-2.pdf").write_text("annex")
    assert _free_stem(tmp_path, stem) == f"{stem}-3"  # the annex's name is taken too
