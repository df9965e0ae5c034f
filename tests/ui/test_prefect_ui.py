"""Seen in a real browser: a real `prefect server start`, a small campaign run against it, the UI in chromium.

The campaign's progress and unit table artifacts must be visible in the Prefect UI, and the served deployments
listed; screenshots go to tests/output/.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from prefect.settings import PREFECT_API_URL, temporary_settings
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from deployments.serve import deployments
from deployments.server import prefect_server
from flows.open_collection import open_collection
from flows.scheduled import ingest_open_campaigns
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from tests.conftest import DEADLINE
from tests.factories import register_units, return_workbook, valid_figures
from tests.ports import free_port

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
OUTPUT = Path(__file__).resolve().parents[1] / "output"
YEAR = 2021

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")


@pytest.fixture
def database_url() -> None:
    """SQLite only: what the browser sees does not depend on the project database (the flows test both)."""
    return None


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="nianbao-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


def _page(browser: webdriver.Chrome, url: str, *texts: str, screenshot: str) -> str:
    """Open the page, wait until every text shows, save a screenshot; the page's text."""
    browser.get(url)
    try:
        WebDriverWait(browser, 30).until(
            lambda b: all(t in b.find_element(By.TAG_NAME, "body").text for t in texts))
    finally:
        OUTPUT.mkdir(exist_ok=True)
        browser.save_screenshot(str(OUTPUT / screenshot))
    text: str = browser.find_element(By.TAG_NAME, "body").text
    return text


def test_campaign_progress_and_units_are_visible_in_the_prefect_ui(
        settings: Settings, units_file: Path, form: FormSpec, tmp_path: Path, browser: webdriver.Chrome,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # so that deployments.server starts a real server
    port = free_port()
    with prefect_server(tmp_path / "prefect-server", port=port, wait_seconds=90) as api, \
            temporary_settings(updates={PREFECT_API_URL: api}):
        register_units(settings, units_file)
        open_collection(YEAR, DEADLINE)
        return_workbook(settings, "D001", valid_figures(form), YEAR)
        return_workbook(settings, "T001", valid_figures(form), YEAR)
        ingest_open_campaigns()
        for deployment in deployments():
            deployment.apply()
        with get_client(sync_client=True) as client:
            [units] = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
                key=ArtifactCollectionFilterKey(any_=[f"campaign-{YEAR}-units"])))
        ui = f"http://127.0.0.1:{port}"

        _page(browser, f"{ui}/artifacts", f"campaign-{YEAR}-progress", f"campaign-{YEAR}-units",
              f"{YEAR}年度填报进度：已通过 2 / 4 个单位", screenshot="prefect-ui-artifacts.png")
        _page(browser, f"{ui}/artifacts/key/campaign-{YEAR}-progress", "已通过 2 / 4 个单位", f"{YEAR}年度-接收报送-",
              screenshot="prefect-ui-progress.png")
        table = _page(browser, f"{ui}/artifacts/artifact/{units.latest_id}", "单位代码", "城关镇", "河口乡",
                      screenshot="prefect-ui-units.png")
        assert "已通过" in table and "逾期未报" in table
        _page(browser, f"{ui}/deployments", "every-5-min", "daily-0900", "daily-1800", "on-demand",
              "ingest-open-campaigns", "final-report", screenshot="prefect-ui-deployments.png")
