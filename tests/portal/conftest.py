"""A campaign opened by the real flow, and the upload page served by uvicorn on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from portal.app import create_app
from schemas.form_spec import FormSpec
from schemas.settings import Settings
from tests.channels import Opened, open_campaign
from tests.ports import free_port

MAX_UPLOAD = 200_000  # small, so the size-limit tests send little; a filled workbook is ~30 KB


@pytest.fixture
def opened(settings: Settings, units_file: Path, form: FormSpec) -> Opened:
    return open_campaign(settings.model_copy(update={"max_upload_bytes": MAX_UPLOAD}), units_file, form)


@pytest.fixture
def portal_url(opened: Opened) -> Iterator[str]:
    """The real app on a real socket, in a thread of this process; stopped when the test ends."""
    with serve_portal(opened.settings) as url:
        yield url


@contextmanager
def serve_portal(settings: Settings) -> Iterator[str]:
    """The app made with these settings, served by uvicorn on a free loopback port."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                            server_header=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # started is set once the socket listens
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
