"""The upload page over real HTTP: a unit opens its link, uploads, and reads the verdict; links, CSRF and size hold."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from schemas.tables import EventLog, Submission, Unit
from tasks.db import get_engine
from tests.channels import YEAR, Opened
from tests.portal.conftest import MAX_UPLOAD

pytestmark = pytest.mark.usefixtures("prefect_harness")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, follow_redirects=False)


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def _upload(client: httpx.Client, token: str, path: Path, *, csrf: str | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
    """Open the unit's page (for its cookie and form field), then post the file as a browser would."""
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    field = _csrf(page) if csrf is None else csrf
    return client.post(f"/u/{token}", data={"csrf": field}, headers=headers or {},
                       files={"file": (path.name, path.read_bytes(), XLSX)})


def _submissions(opened: Opened) -> list[tuple[str, str, str, str]]:
    with Session(get_engine(opened.settings.db_url)) as session:
        rows = session.exec(select(Submission, Unit).join(Unit, col(Unit.id) == col(Submission.unit_id))
                            .order_by(col(Submission.id))).all()
    return [(unit.code, sub.verdict.value, sub.channel, sub.sender) for sub, unit in rows]


def _answers(opened: Opened, code: str) -> list[Path]:
    return sorted((opened.settings.outbox_dir(YEAR) / "answers" / code).glob("*.txt"))


def test_unit_page_shows_name_year_status_deadline_and_form(opened: Opened, portal_url: str) -> None:
    with _client(portal_url) as client:
        page = client.get(f"/u/{opened.token('T001')}")
    assert page.status_code == 200
    text = page.text
    assert "城关镇" in text and "2021年度" in text and "2022年1月20日" in text
    assert "逾期未报" in text  # the tests' deadline is past and nothing came back yet
    assert 'enctype="multipart/form-data"' in text and 'name="csrf"' in text
    assert "河口乡" not in text and "T002" not in text  # nothing about other units
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    for header in ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"):
        assert header in page.headers
    assert page.headers["cache-control"] == "no-store"
    assert "server" not in page.headers


def test_good_upload_answers_with_a_receipt_via_redirect(opened: Opened, portal_url: str, tmp_path: Path) -> None:
    good = opened.filled("T001", tmp_path / "城关镇2021年报.xlsx")
    with _client(portal_url) as client:
        posted = _upload(client, opened.token("T001"), good)
        assert posted.status_code == 303
        result = client.get(posted.headers["location"])
    assert result.status_code == 200
    assert 'data-verdict="accepted"' in result.text and "已通过审核" in result.text
    assert "城关镇2021年报.xlsx" in result.text and "第1次" in result.text
    assert _submissions(opened) == [("T001", "accepted", "portal", "127.0.0.1")]
    answers = _answers(opened, "T001")  # the same answer as an inbox file gets
    assert len(answers) == 1 and "回执" in answers[0].name and "已通过审核" in answers[0].read_text("utf-8")
    with _client(portal_url) as client:  # the unit's page now says so
        page = client.get(f"/u/{opened.token('T001')}")
    assert "已通过" in page.text and "网页上传" in page.text


def test_broken_upload_lists_each_issue_with_sheet_cell_rule_expected_found(
        opened: Opened, portal_url: str, tmp_path: Path) -> None:
    broken = opened.broken("T001", tmp_path / "broken.xlsx")
    with _client(portal_url) as client:
        posted = _upload(client, opened.token("T001"), broken)
        result = client.get(posted.headers["location"])
    assert 'data-verdict="rejected"' in result.text and "未通过审核" in result.text
    rows = re.findall(r'<tr class="issue">(.*?)</tr>', result.text, re.S)
    assert rows
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    # 序号, 工作表, 单元格, 规则, 问题说明, 应为, 实际: the R1 break names a sheet, a cell and a rule
    assert any(c[1] != "—" and re.fullmatch(r"[A-Z]+\d+", c[2]) and c[3].startswith("R1") for c in cells), cells
    stored = _submissions(opened)
    assert stored == [("T001", "rejected", "portal", "127.0.0.1")]
    assert "问题清单" in _answers(opened, "T001")[0].name


def test_same_file_twice_is_stored_once(opened: Opened, portal_url: str, tmp_path: Path) -> None:
    good = opened.filled("T002", tmp_path / "good.xlsx")
    with _client(portal_url) as client:
        first = _upload(client, opened.token("T002"), good)
        second = _upload(client, opened.token("T002"), good)
        again = client.get(second.headers["location"])
    assert first.status_code == second.status_code == 303
    assert 'data-verdict="duplicate"' in again.text
    assert len(_submissions(opened)) == 1


def test_another_units_workbook_through_this_units_link_is_rejected(
        opened: Opened, portal_url: str, tmp_path: Path) -> None:
    theirs = opened.filled("D001", tmp_path / "d001.xlsx")
    with _client(portal_url) as client:
        posted = _upload(client, opened.token("T001"), theirs)
        result = client.get(posted.headers["location"])
    assert 'data-verdict="rejected"' in result.text
    assert "下发给“D001”" in result.text  # the wrong-unit issue, in Chinese
    assert _submissions(opened) == [("T001", "rejected", "portal", "127.0.0.1")]


def test_wrong_altered_expired_and_foreign_links_get_the_same_plain_404(opened: Opened, portal_url: str) -> None:
    good = opened.token("T001")
    payload, signature = good.split(".")
    forged_for_other = opened.token("T002").split(".")[0] + "." + signature  # T002's payload, T001's signature
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    bad = ["nonsense", good[:-2] + ("AA" if not good.endswith("AA") else "BB"), forged_for_other,
           opened.token("T001", expires=yesterday), opened.token("X999"), payload + ".", "../../etc/passwd"]
    with _client(portal_url) as client:
        reference = client.get("/u/nonsense")
        for token in bad:
            for response in (client.get(f"/u/{token}"), client.get(f"/u/{token}/workbook"),
                             client.post(f"/u/{token}", files={"file": ("a.xlsx", b"x", XLSX)})):
                assert response.status_code == 404, token
                assert response.text == reference.text
        assert client.get("/archive/").status_code == 404
        assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404
    assert "页面不存在" in reference.text and "T00" not in reference.text
    assert _submissions(opened) == []


def test_result_pages_cannot_be_paged_through(opened: Opened, portal_url: str, tmp_path: Path) -> None:
    good = opened.filled("T001", tmp_path / "good.xlsx")
    with _client(portal_url) as client:
        location = _upload(client, opened.token("T001"), good).headers["location"]
        assert client.get(location).status_code == 200
        tampered = re.sub(r"s=(\d+)", lambda m: f"s={int(m.group(1)) + 1}", location)
        assert client.get(tampered).status_code == 404
        other_link = location.replace(opened.token("T001"), opened.token("T002"))
        assert client.get(other_link).status_code == 404
        assert client.get(location.replace("s=", "s=x")).status_code == 404


def test_missing_or_forged_csrf_is_refused_with_403(opened: Opened, portal_url: str, tmp_path: Path) -> None:
    good = opened.filled("T001", tmp_path / "good.xlsx")
    token = opened.token("T001")
    with _client(portal_url) as client:
        page = client.get(f"/u/{token}")
        field = _csrf(page)
        nonce = field.split(".")[0]
        attempts = [
            {"data": {}},  # no field
            {"data": {"csrf": nonce + ".forged"}},  # the cookie's nonce with a made-up signature
            {"data": {"csrf": _csrf(client.get(f"/u/{opened.token('T002')}"))}},  # signed for another link
            {"data": {"csrf": field}, "headers": {"origin": "https://evil.example"}},
            {"data": {"csrf": field}, "headers": {"origin": "null"}},
            {"data": {"csrf": field}, "headers": {"referer": "https://evil.example/page"}},
        ]
        for attempt in attempts:
            response = client.post(f"/u/{token}", files={"file": (good.name, good.read_bytes(), XLSX)},
                                   **attempt)  # type: ignore[arg-type]
            assert response.status_code == 403, attempt
            assert "请求被拒绝" in response.text
        client.cookies.clear()  # the field alone, without its cookie
        response = client.post(f"/u/{token}", data={"csrf": field},
                               files={"file": (good.name, good.read_bytes(), XLSX)})
        assert response.status_code == 403
    assert _submissions(opened) == []


def test_too_large_upload_is_refused_with_413_unread_and_logged(opened: Opened, portal_url: str,
                                                                tmp_path: Path) -> None:
    big = tmp_path / "big.xlsx"
    big.write_bytes(b"PK" + b"\0" * (MAX_UPLOAD + 100_000))
    with _client(portal_url) as client:
        response = _upload(client, opened.token("T001"), big)
    assert response.status_code == 413 and "文件过大" in response.text
    just_over = tmp_path / "just_over.xlsx"  # inside the form's framing allowance: caught after parsing
    just_over.write_bytes(b"PK" + b"\0" * MAX_UPLOAD)
    with _client(portal_url) as client:
        assert _upload(client, opened.token("T001"), just_over).status_code == 413
    assert _submissions(opened) == []
    with Session(get_engine(opened.settings.db_url)) as session:
        refused = session.exec(select(EventLog).where(EventLog.kind == "portal.upload_too_large")).all()
    assert [e.unit_code for e in refused] == ["T001", "T001"]


@pytest.mark.parametrize("content", [b"", b"not a workbook at all"])
def test_empty_or_non_workbook_upload_gets_a_clear_answer(opened: Opened, portal_url: str, tmp_path: Path,
                                                         content: bytes) -> None:
    path = tmp_path / "报表.xlsx"
    path.write_bytes(content)
    with _client(portal_url) as client:
        response = _upload(client, opened.token("T001"), path)
        if content:
            response = client.get(response.headers["location"])
            assert "不是Excel工作簿" in response.text
        else:
            assert response.status_code == 400 and "没有收到文件" in response.text


def test_no_page_exposes_a_file_path(opened: Opened, portal_url: str, tmp_path: Path) -> None:
    good = opened.filled("T001", tmp_path / "good.xlsx")
    broken = opened.broken("T002", tmp_path / "broken.xlsx")
    home = str(opened.settings.home.resolve())
    with _client(portal_url) as client:
        pages = [client.get(f"/u/{opened.token('T001')}")]
        pages.append(client.get(_upload(client, opened.token("T001"), good).headers["location"]))
        pages.append(client.get(_upload(client, opened.token("T002"), broken).headers["location"]))
        workbook = client.get(f"/u/{opened.token('T001')}/workbook")
    for page in pages:
        assert page.status_code == 200
        assert home not in page.text and "archive" not in page.text and str(tmp_path) not in page.text
    assert workbook.status_code == 200 and workbook.content == opened.issued("T001").read_bytes()
    assert home not in workbook.headers.get("content-disposition", "")
