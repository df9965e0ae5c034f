"""Run the upload page with uvicorn (`nianbao portal`)."""

from __future__ import annotations

import uvicorn

from portal.app import create_app
from schemas.settings import Settings


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted. Behind a reverse proxy on another host, list it in FORWARDED_ALLOW_IPS."""
    config = uvicorn.Config(create_app(settings), host=host, port=port, server_header=False, proxy_headers=True,
                            log_level="info", access_log=False)  # the access log would print every unit's link
    uvicorn.Server(config).run()
