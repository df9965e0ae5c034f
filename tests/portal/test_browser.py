"""End to end in headless Debian chromium: a unit's clerk opens the link, uploads a broken workbook, reads the
issues, uploads the fixed one, gets the receipt and opens its own report. Screenshots go to tests/output/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.channels import YEAR, Opened

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
OUTPUT = Path(__file__).parents[1] / "output"

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver; .ci/run does)")]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1200,1400", "--lang=zh-CN"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _gone(element: object) -> bool:
    """True once the element's page has been replaced. Selenium's staleness_of knows one way chromedriver says so;
    mid-navigation it may say the other ("does not belong to the document"), which failed a CI run."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.remote.webelement import WebElement

    assert isinstance(element, WebElement)
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in (exc.msg or ""):
            return True
        raise
    return False


def test_clerk_uploads_a_broken_workbook_then_the_fixed_one(browser: object, opened: Opened, portal_url: str,
                                                            tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    OUTPUT.mkdir(exist_ok=True)
    broken = opened.broken("T001", tmp_path / "城关镇-初稿.xlsx")
    fixed = opened.filled("T001", tmp_path / "城关镇-修改稿.xlsx")

    browser.get(f"{portal_url}/u/{opened.token('T001')}")
    assert "城关镇" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(OUTPUT / "portal-1-unit-page.png"))

    def upload(path: Path) -> str:
        before = browser.find_element(By.TAG_NAME, "html")
        browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 30).until(lambda _: _gone(before))  # the page before the upload is gone
        verdict = WebDriverWait(browser, 30).until(ready.presence_of_element_located((By.ID, "verdict")))
        return str(verdict.get_attribute("data-verdict"))

    assert upload(broken) == "rejected"
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.issue")
    assert rows and "R1" in rows[0].text
    assert "/result?" in browser.current_url  # POST-redirect-GET: reloading does not upload again
    browser.save_screenshot(str(OUTPUT / "portal-2-issues.png"))

    assert upload(fixed) == "accepted"
    assert "已通过审核" in browser.find_element(By.ID, "verdict").text
    browser.save_screenshot(str(OUTPUT / "portal-3-receipt.png"))
    browser.refresh()
    assert browser.find_element(By.ID, "verdict").get_attribute("data-verdict") == "accepted"

    # the unit's own report, as a web page: it opens in the browser (not a download), styled and whole, and
    # sandboxed by its policy (the portal's own pages allow no inline style: the report's would not apply there)
    browser.find_element(By.CSS_SELECTOR, "#unit-report a[href$='/report.html']").click()
    WebDriverWait(browser, 30).until(lambda b: b.current_url.endswith("/report.html"))
    assert browser.title == f"城关镇{YEAR}年政府信息公开工作年度报告"
    title = browser.find_element(By.TAG_NAME, "h1")
    assert title.value_of_css_property("text-align") == "center"  # the report's inline style applied
    tables = browser.find_elements(By.TAG_NAME, "table")
    assert len(tables) >= 3 and all(t.is_displayed() for t in tables)
    for image in browser.find_elements(By.TAG_NAME, "img"):  # its charts, data: images the policy allows
        assert int(image.get_attribute("naturalWidth") or 0) > 0, image.get_attribute("alt")
    browser.save_screenshot(str(OUTPUT / "portal-4-unit-report.png"))
