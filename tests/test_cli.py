"""The command line, in-process: `nianbao units import`, `open`, `ingest`, `status --json`, `report --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from cli.main import main
from cli.simulate import fill_by_names
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from schemas.tables import Unit
from tasks.db import get_engine
from tests.factories import valid_figures

pytestmark = pytest.mark.usefixtures("prefect_harness")



def test_import_open_ingest_status_report(settings: Settings, units_file: Path, form: FormSpec,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["units", "import", str(units_file)]) == 0
    assert "4 created" in capsys.readouterr().err
    assert main(["open", "--year", "2021", "--deadline", "2022-01-20"]) == 0
    assert "本次下发 4 份工作簿" in capsys.readouterr().err

    assert main(["status", "--year", "2021", "--json", "--today", "2022-01-10"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and [r["unit"] for r in rows] == ["D001", "G001", "T001", "T002"]
    for row in rows:
        assert {"unit", "status", "workbook"} <= set(row)
        assert row["status"] == "issued"
        assert Path(row["workbook"]).is_file()
        assert f"-{row['unit']}-" in Path(row["workbook"]).name

    issued = Path(next(r["workbook"] for r in rows if r["unit"] == "G001"))
    fill_by_names(issued, settings.inbox_dir(2021) / issued.name, valid_figures(form))
    assert main(["ingest", "--year", "2021"]) == 0
    assert "处理 1 个文件，通过 1" in capsys.readouterr().err

    assert main(["status", "--year", "2021", "--json", "--today", "2022-02-01"]) == 0
    after = {r["unit"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert after == {"D001": "missing", "G001": "accepted", "T001": "missing", "T002": "missing"}

    assert main(["report", "--year", "2021", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one JSON document on stdout
    assert out.count("\n") == 1
    assert {"year", "units_expected", "units_accepted", "cells"} <= set(report)
    assert (report["year"], report["units_expected"], report["units_accepted"]) == (2021, 4, 1)
    assert set(report["cells"]) == {c.key for c in form.cells} and len(report["cells"]) == 200 + 3
    assert report["cells"]["active.license.decisions"] == 120
    assert report["cells"]["active.fees.amount_wan"] == "12.3456"


@pytest.mark.usefixtures("home")  # a data folder of its own, never the repository's ./var
def test_status_without_today_judges_by_the_real_date(units_file: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["units", "import", str(units_file)]) == 0
    assert main(["open", "--year", "2021", "--deadline", "2022-01-20"]) == 0
    capsys.readouterr()

    assert main(["status", "--year", "2021", "--json"]) == 0

    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"missing"}  # the 2022 deadline has long passed


def test_bad_units_file_exits_2_naming_the_line(settings: Settings, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad-units.csv"
    bad.write_text("code,name,kind,contact,email\n"
                   "G001,示范县人民政府办公室,government_office,王敏,g001@example.gov.cn\n"
                   "T001,城关镇,村委会,李强,t001@example.gov.cn\n", encoding="utf-8")

    assert main(["units", "import", str(bad)]) == 2

    err = capsys.readouterr().err
    assert "line 3" in err and "kind" in err and "nothing imported" in err
    assert "line 2" not in err
    with Session(get_engine(settings.db_url)) as session:
        assert session.exec(select(func.count()).select_from(Unit)).one() == 0


def test_missing_units_file_and_unopened_year_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["units", "import", str(home / "no-such-file.csv")]) == 2
    assert "no-such-file.csv" in capsys.readouterr().err
    assert main(["status", "--year", "2021", "--json"]) == 2
    err = capsys.readouterr().err
    assert "no campaign for 2021" in err
