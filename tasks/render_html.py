"""A report Document as one HTML page: for the county portal as it is, and the source of the PDF (print styles).

The page is self-contained (charts embedded as data URIs), so it can be published, mailed or archived as one file.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from tasks.report_document import Document

TEMPLATES = Path(__file__).parent / "templates"


def render_html(document: Document) -> str:
    """The document as an HTML page (UTF-8 text)."""
    # a long title breaks before its year, not in the middle of a word (GB/T 9704: 回行时词意完整)
    title_lines = re.split(r"(?=\d{4}年)", document.title, maxsplit=1)
    return _template().render(**document.model_dump(), title_lines=[t for t in title_lines if t])


@lru_cache(maxsize=1)
def _template() -> Template:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env.get_template("document.html.j2")
