"""The upload page's rate limit per link, over real HTTP, and the limiter's window on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from cli.simulate import fill_by_names
from portal.rate_limit import UploadLimiter
from schemas.tables import EventLog
from tasks.db import get_engine
from tests.channels import Opened
from tests.factories import valid_figures
from tests.portal.conftest import serve_portal
from tests.portal.test_upload_page import _client, _submissions, _upload

LIMIT = 3


def test_a_link_uploading_too_often_is_told_to_wait_and_nothing_is_stored(opened: Opened, tmp_path: Path) -> None:
    settings = opened.settings.model_copy(update={"portal_upload_limit": LIMIT, "portal_upload_window": 600})
    files = [fill_by_names(opened.issued("T001"), tmp_path / f"T001-{n}.xlsx",
                           valid_figures(opened.form, active__license__decisions=100 + n)) for n in range(LIMIT + 2)]
    other = fill_by_names(opened.issued("T002"), tmp_path / "T002.xlsx", valid_figures(opened.form))
    with serve_portal(settings) as url, _client(url) as client:
        allowed = [_upload(client, opened.token("T001"), path).status_code for path in files[:LIMIT]]
        refused = [_upload(client, opened.token("T001"), path) for path in files[LIMIT:]]
        neighbour = _upload(client, opened.token("T002"), other)

    assert allowed == [303] * LIMIT
    for response in refused:
        assert response.status_code == 429
        assert "上传过于频繁，请稍后再试" in response.text and f"最多上传 {LIMIT} 次" in response.text
        assert 0 < int(response.headers["retry-after"]) <= 600
    assert neighbour.status_code == 303  # one unit's limit is its own
    assert [(code, verdict) for code, verdict, _, _ in _submissions(opened)] == [
        ("T001", "accepted")] * LIMIT + [("T002", "accepted")]
    with Session(get_engine(settings.db_url)) as session:
        traces = session.exec(select(EventLog).where(EventLog.kind == "portal.upload_rate_limited")).all()
    assert [(e.unit_code, e.detail["limit"]) for e in traces] == [("T001", LIMIT)]  # once a window, not a flood


def test_the_window_slides() -> None:
    now = [0.0]
    limiter = UploadLimiter(2, 60, clock=lambda: now[0])
    assert limiter.take("a") is None
    now[0] = 10
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(50)  # the first upload leaves the window at 60
    assert limiter.take("b") is None
    now[0] = 60.5
    assert limiter.take("a") is None  # one slot again
    assert limiter.take("a") == pytest.approx(9.5)
