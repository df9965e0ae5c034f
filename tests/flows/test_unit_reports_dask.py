"""The unit-reports flow on a real Dask cluster (NIANBAO_DASK_ADDRESS): the same files as in the flow's own process,
written by more than one Dask worker process."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, get_task_stream

from flows.dask_runner import LOCAL, dask_task_runner
from flows.ingest_returns import ingest_returns
from flows.open_collection import open_collection
from flows.unit_reports import DASK_BATCH, UnitReportsSummary, unit_reports
from schemas.form_spec import FormSpec
from schemas.settings import Settings, get_settings
from tests.conftest import DEADLINE
from tests.factories import register_units, return_workbook, valid_figures
from tests.flows.test_unit_reports import D001_TEXTS

pytestmark = pytest.mark.usefixtures("prefect_harness")
YEAR = 2021
CODES = ["D001", "G001", "T001", "T002"]  # the units of tests/factories.py: two batches at once, one a worker
FORMATS = ["docx", "pdf"]


@pytest.fixture
def database_url() -> None:
    """SQLite only: where the batches run does not depend on the project database (the flow's tests run both)."""
    return None


@pytest.fixture
def cluster(settings: Settings) -> Iterator[LocalCluster]:
    """Two worker processes of one thread each, as two machines' workers would be, started with this test's
    settings in their environment (a machine's Dask worker is started with the same NIANBAO_* settings)."""
    assert settings.home.is_absolute()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                      dashboard_address="127.0.0.1:0") as local:
        yield local


def _contents(summary: UnitReportsSummary) -> dict[tuple[str, str], object]:
    """Every file's content by (unit, format); a Word file by its members (its zip headers carry the time)."""
    found: dict[tuple[str, str], object] = {}
    for report in summary.reports:
        for fmt, path in report.files.items():
            data = Path(path).read_bytes()
            if fmt == "docx":
                with zipfile.ZipFile(io.BytesIO(data)) as docx:
                    found[report.code, fmt] = {name: docx.read(name) for name in docx.namelist()}
            else:
                found[report.code, fmt] = data
    return found


def test_unit_reports_on_a_dask_cluster_are_the_same_files_written_by_several_workers(
        settings: Settings, units_file: Path, form: FormSpec, cluster: LocalCluster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    register_units(settings, units_file)
    open_collection(YEAR, DEADLINE)
    for n, code in enumerate(CODES):
        figures = valid_figures(form, active__license__decisions=100 + n)
        return_workbook(settings, code, {**figures, **D001_TEXTS}, YEAR)  # type: ignore[dict-item]
    assert ingest_returns(YEAR).accepted == len(CODES)
    here = unit_reports(YEAR, formats=FORMATS)
    expected = _contents(here)

    monkeypatch.setenv("NIANBAO_DASK_ADDRESS", cluster.scheduler_address)
    get_settings.cache_clear()
    with Client(cluster) as client, get_task_stream(client) as stream:  # type: ignore[no-untyped-call]
        on_dask = unit_reports(YEAR, formats=FORMATS)

    assert on_dask == here  # the same reports, files and notes, in the same order
    assert _contents(on_dask) == expected and len(expected) == len(CODES) * 3  # html, docx and pdf of each unit
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) == len(CODES) // DASK_BATCH
    assert cluster.scheduler is not None
    assert workers == set(cluster.scheduler.workers), "every Dask worker wrote reports"


def test_local_means_a_cluster_of_single_threaded_processes_made_for_the_run() -> None:
    runner = dask_task_runner(LOCAL, workers=3)
    assert runner.address is None
    assert runner.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True,
                                     "dashboard_address": "127.0.0.1:0"}
    assert dask_task_runner("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
