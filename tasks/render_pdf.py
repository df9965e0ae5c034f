"""A report as PDF: its HTML page laid out for A4 by WeasyPrint (the print styles of document.html.j2).

WeasyPrint needs pango and a Chinese font, which `make install` installs (scripts/system-packages). Without a Chinese
font every character would print as an empty box, so no PDF is made then: PdfUnavailable says what to install,
and the report is written without its PDF.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache


class PdfUnavailable(RuntimeError):
    """This machine cannot print the report: WeasyPrint, pango or a Chinese font is missing."""


def render_pdf(html: str) -> bytes:
    """The HTML page as a PDF document (A4, page numbers, the fonts the page names)."""
    if not chinese_font_installed():
        raise PdfUnavailable("no Chinese font for the PDF: install fonts-noto-cjk (scripts/system-packages does)")
    try:
        from weasyprint import HTML  # ~1 s to import: only when a PDF is made
    except OSError as exc:  # pango or its libraries missing: WeasyPrint fails to load them at import
        raise PdfUnavailable(f"WeasyPrint cannot load pango ({exc}): install libpango-1.0-0 libpangoft2-1.0-0 "
                             "(scripts/system-packages does)") from exc
    return bytes(HTML(string=html).write_pdf())


@lru_cache(maxsize=1)
def chinese_font_installed() -> bool:
    """Whether fontconfig knows a font with Chinese glyphs (what WeasyPrint will find)."""
    if shutil.which("fc-list") is None:
        return False
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30, check=False)
    return bool(found.stdout.strip())
