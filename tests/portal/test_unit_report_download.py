"""The upload page hands a unit its own annual report, made from its accepted return, over real HTTP: only the unit's
own (by its link), only what was accepted, and nothing else of the data folder whatever the address says."""

from __future__ import annotations

import http.client
import io
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import docx
import httpx
import pytest
import uvicorn
from sqlmodel import Session, col, select

from cli.simulate import fill_by_names
from portal.app import create_app
from schemas.settings import Settings
from schemas.tables import Assignment, Unit
from tasks.db import get_engine
from tests.channels import YEAR, Opened
from tests.factories import valid_figures
from tests.flows.test_unit_reports import docx_tables, expected_tables, html_tables
from tests.portal.test_upload_page import _client, _upload
from tests.ports import free_port

pytestmark = pytest.mark.usefixtures("prefect_harness")
TYPES = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "pdf": "application/pdf", "html": "text/html; charset=utf-8"}
TEXTS = {
    "T001": {"narrative.overview": "城关镇坚持以公开为常态、不公开为例外。\n"
                                   "将政务公开纳入年度考核，开展社会评议，未发生责任追究情况。",
             "narrative.problems": "城关镇的问题：公开栏目更新不及时。", "narrative.other": "城关镇无其他事项。"},
    "D001": {"narrative.overview": "市场监督管理局做好市场监管政策公开。",
             "narrative.problems": "市场监督管理局的问题：解读形式单一。",
             "narrative.other": "市场监督管理局无其他事项。"},
}
TITLES = {"T001": f"城关镇{YEAR}年政府信息公开工作年度报告",
          "D001": f"示范县市场监督管理局{YEAR}年政府信息公开工作年度报告"}


def _fill(opened: Opened, code: str, target: Path, **overrides: int | str) -> tuple[Path, dict[str, Decimal]]:
    """The unit's workbook with its figures (valid, or with the overrides) and its 文字部分 texts."""
    figures = valid_figures(opened.form, **overrides)
    return fill_by_names(opened.issued(code), target, {**figures, **TEXTS[code]}), figures


def _accept(client: httpx.Client, opened: Opened, code: str, path: Path) -> str:
    """Upload the workbook through the unit's page; give the result page, which says it was accepted."""
    posted = _upload(client, opened.token(code), path)
    assert posted.status_code == 303
    result = client.get(posted.headers["location"]).text
    assert 'data-verdict="accepted"' in result
    return result


def _report_links(page: str) -> dict[str, str]:
    """The unit page's links to its own report: format -> address."""
    found = re.search(r'<p class="report-links" id="unit-report">(.*?)</p>', page, re.S)
    if found is None:
        return {}
    return {href.rsplit(".", 1)[1]: href for href in re.findall(r'href="([^"]+)"', found.group(1))}


def _download_name(response: httpx.Response) -> str:
    """The file name the response offers. Word and PDF are saved; the web page opens in the browser, sandboxed
    (never a page of the portal's own) with its style and charts and nothing else."""
    disposition = response.headers["content-disposition"]
    if response.headers["content-type"].startswith("text/html"):
        assert disposition.startswith("inline;")
        policy = {part.strip() for part in response.headers["content-security-policy"].split(";")}
        assert {"sandbox", "default-src 'none'", "style-src 'unsafe-inline'", "img-src data:"} <= policy
    else:
        assert disposition.startswith("attachment;")
    return unquote(disposition.split("filename*=utf-8''", 1)[1])


def _accepted_folder(opened: Opened, code: str) -> Path:
    with Session(get_engine(opened.settings.db_url)) as session:
        submission_id = session.exec(select(Assignment.accepted_submission_id)
                                     .join(Unit, col(Unit.id) == col(Assignment.unit_id))
                                     .where(Unit.code == code)).one()
    assert submission_id is not None
    return opened.settings.unit_reports_dir(YEAR) / code / str(submission_id)


def _check_word(content: bytes, code: str, figures: Mapping[str, Decimal], opened: Opened) -> None:
    """The Word file is the unit's: its title, its accepted figures in the tables, its own prose."""
    assert docx.Document(io.BytesIO(content)).paragraphs[0].text == TITLES[code]
    assert docx_tables(content) == expected_tables(opened.form, figures)
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(content)).paragraphs)
    for line in "\n".join(TEXTS[code].values()).splitlines():
        assert line in text


@contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    """The real app for these settings on a loopback port, as the portal_url fixture serves it."""
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(),
                                           log_level="warning", server_header=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET the path as written (no client tidies '..' or percent-escapes away; Chinese percent-encoded)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", quote(path, safe="/%.:"))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_an_accepted_return_offers_the_units_own_report_in_three_formats(
        opened: Opened, portal_url: str, tmp_path: Path) -> None:
    token = opened.token("T001")
    good, figures = _fill(opened, "T001", tmp_path / "城关镇.xlsx")
    with _client(portal_url) as client:
        before = client.get(f"/u/{token}")
        refused = client.get(f"/u/{token}/report.docx")
        result = _accept(client, opened, "T001", good)
        links = _report_links(client.get(f"/u/{token}").text)
        downloads = {fmt: client.get(href) for fmt, href in links.items()}

    assert _report_links(before.text) == {} and 'id="unit-report"' not in before.text
    assert _report_links(result) == links  # the receipt page offers it at once
    assert refused.status_code == 404 and "年度报告暂不能下载" in refused.text and "尚无审核通过的报送" in refused.text
    assert links == {fmt: f"/u/{token}/report.{fmt}" for fmt in ("docx", "pdf", "html")}
    folder = _accepted_folder(opened, "T001")
    home = str(opened.settings.home.resolve())
    for fmt, response in downloads.items():
        assert response.status_code == 200, fmt
        assert response.headers["content-type"] == TYPES[fmt]
        assert _download_name(response) == f"{YEAR}年城关镇政府信息公开工作年度报告.{fmt}"
        assert home not in response.headers["content-disposition"]
        assert response.content == (folder / _download_name(response)).read_bytes()  # what is kept on record
    _check_word(downloads["docx"].content, "T001", figures, opened)
    assert downloads["pdf"].content.startswith(b"%PDF-")
    page = downloads["html"].text
    assert f"<title>{TITLES['T001']}</title>" in page
    assert html_tables(page) == expected_tables(opened.form, figures)
    assert all(line in page for line in "\n".join(TEXTS["T001"].values()).splitlines())


def test_a_link_only_ever_gets_its_own_units_report(opened: Opened, portal_url: str, tmp_path: Path) -> None:
    t001, t001_figures = _fill(opened, "T001", tmp_path / "t001.xlsx")
    d001, d001_figures = _fill(opened, "D001", tmp_path / "d001.xlsx", active__license__decisions=345,
                               active__penalty__decisions=67)
    rejected = opened.broken("T002", tmp_path / "t002.xlsx")
    with _client(portal_url) as client:
        _accept(client, opened, "T001", t001)
        _accept(client, opened, "D001", d001)
        posted = _upload(client, opened.token("T002"), rejected)
        assert 'data-verdict="rejected"' in client.get(posted.headers["location"]).text
        own = {code: client.get(f"/u/{opened.token(code)}/report.docx") for code in ("T001", "D001")}
        t002_page = client.get(f"/u/{opened.token('T002')}")
        t002 = {fmt: client.get(f"/u/{opened.token('T002')}/report.{fmt}") for fmt in TYPES}
        reference = client.get("/u/nonsense")
        payload = opened.token("T002").split(".")[0]
        forged = payload + "." + opened.token("T001").split(".")[1]  # T002's claim under T001's signature
        for token in (forged, "nonsense", opened.token("X999")):
            for fmt in TYPES:
                response = client.get(f"/u/{token}/report.{fmt}")
                assert response.status_code == 404 and response.text == reference.text, (token, fmt)

    _check_word(own["T001"].content, "T001", t001_figures, opened)
    _check_word(own["D001"].content, "D001", d001_figures, opened)
    assert _report_links(t002_page.text) == {}
    for response in t002.values():  # a unit with only a rejected return has no report, and none of another's
        assert response.status_code == 404 and "年度报告暂不能下载" in response.text
    assert not (opened.settings.unit_reports_dir(YEAR) / "T002").exists()


def test_no_address_reaches_another_file(opened: Opened, portal_url: str, tmp_path: Path) -> None:
    good, _ = _fill(opened, "T001", tmp_path / "t001.xlsx")
    token = opened.token("T001")
    with _client(portal_url) as client:
        _accept(client, opened, "T001", good)
        reference = client.get("/u/nonsense").content
    folder = _accepted_folder(opened, "T001")
    stem = f"{YEAR}年城关镇政府信息公开工作年度报告"
    attempts = [
        f"/u/{token}/report.xlsx", f"/u/{token}/report.DOCX", f"/u/{token}/report.", f"/u/{token}/report.docx.pdf",
        f"/u/{token}/report.docx%00", f"/u/{token}/report.docx/../../../nianbao.db",
        f"/u/{token}/report.%2e%2e%2f%2e%2e%2f%2e%2e%2fnianbao.db", f"/u/{token}/report..%2F..%2Fnianbao.db",
        f"/u/{token}/report.docx%2F..%2F..%2F..%2F..%2Fnianbao.db", f"/u/{token}/..%2F..%2Fnianbao.db",
        f"/u/{token}/{stem}.docx", f"/u/{token}/T001/{folder.name}/{stem}.docx", "/u/../nianbao.db",
        "/unit-reports/T001/" + folder.name + f"/{stem}.docx", "/u/%2e%2e%2fnianbao.db/report.docx",
    ]
    for path in attempts:
        status, body = _raw_get(portal_url, path)
        assert status == 404 and body == reference, path
    assert _raw_get(portal_url, f"/u/{token}/report.docx")[0] == 200  # the one address that is


def test_a_new_accepted_return_gets_its_own_report_and_a_rejected_one_changes_nothing(
        opened: Opened, portal_url: str, tmp_path: Path) -> None:
    token = opened.token("T001")
    first, first_figures = _fill(opened, "T001", tmp_path / "first.xlsx")
    second, second_figures = _fill(opened, "T001", tmp_path / "second.xlsx", active__license__decisions=121)
    broken = opened.broken("T001", tmp_path / "broken.xlsx")
    with _client(portal_url) as client:
        _accept(client, opened, "T001", first)
        first_folder = _accepted_folder(opened, "T001")
        before = client.get(f"/u/{token}/report.docx").content
        _accept(client, opened, "T001", second)
        second_folder = _accepted_folder(opened, "T001")
        after = client.get(f"/u/{token}/report.docx").content
        posted = _upload(client, token, broken)
        assert 'data-verdict="rejected"' in client.get(posted.headers["location"]).text
        page = client.get(f"/u/{token}").text
        still = client.get(f"/u/{token}/report.docx").content

    assert first_folder != second_folder
    _check_word(before, "T001", first_figures, opened)
    _check_word(after, "T001", second_figures, opened)
    assert still == after  # the accepted return still counts after a rejected one
    assert _report_links(page) and "未通过" in page
    name = f"{YEAR}年城关镇政府信息公开工作年度报告.docx"
    assert (first_folder / name).read_bytes() == before and (second_folder / name).read_bytes() == after


@pytest.mark.parametrize("template", [b"not a Word file", None], ids=["not-a-docx", "moved-away"])
def test_a_format_that_cannot_be_made_is_refused_with_503_and_the_others_still_download(
        opened: Opened, tmp_path: Path, template: bytes | None) -> None:
    office_template = tmp_path / "模板.docx"  # NIANBAO_DOCX_TEMPLATE: broken, or no longer there
    if template is not None:
        office_template.write_bytes(template)
    good, _ = _fill(opened, "T001", tmp_path / "t001.xlsx")
    token = opened.token("T001")
    with _serving(opened.settings.model_copy(update={"docx_template": office_template})) as base, \
            _client(base) as client:
        _accept(client, opened, "T001", good)
        word = client.get(f"/u/{token}/report.docx")
        page = client.get(f"/u/{token}/report.html")

    assert word.status_code == 503 and "年度报告暂不能下载" in word.text and "改为下载其他格式" in word.text
    assert page.status_code == 200 and f"<title>{TITLES['T001']}</title>" in page.text
    assert not list(_accepted_folder(opened, "T001").glob("*.docx"))
