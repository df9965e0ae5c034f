"""Write a report Document as the files a county publishes: HTML (always), Word and PDF.

A format that cannot be made on this machine (no Chinese font for the PDF, a broken Word template) is left out with
a note saying why; the others are still written, so a report is never lost to one missing part.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from tasks.render_docx import DocxTemplateError, render_docx
from tasks.render_html import render_html
from tasks.render_pdf import PdfUnavailable, render_pdf
from tasks.report_document import Document

log = logging.getLogger(__name__)
PUBLICATION_FORMATS = ("docx", "pdf")  # besides the HTML page, which every report has


def publication_file(stem: Path, fmt: str) -> Path:
    """The file of one format: stem.fmt, the suffix added to the whole name (a unit's name may hold a dot, which
    Path.with_suffix would take for the start of a suffix and cut the name there)."""
    return stem.with_name(f"{stem.name}.{fmt}")


def write_publication(document: Document, stem: Path, formats: tuple[str, ...], notes: list[str],
                      docx_template: bytes | None = None) -> dict[str, str]:
    """Write stem.html and the asked formats (stem.docx, stem.pdf); return format -> path. A format that
    cannot be made is appended to notes (in Chinese) and left out."""
    html = render_html(document)
    files = {"html": _write(publication_file(stem, "html"), html.encode("utf-8"))}
    if "docx" in formats:
        try:
            files["docx"] = _write(publication_file(stem, "docx"), render_docx(document, docx_template))
        except DocxTemplateError as exc:
            log.warning("no Word file for %s: %s", stem.name, exc)
            notes.append(f"未生成Word版：{exc}")
    if "pdf" in formats:
        try:
            files["pdf"] = _write(publication_file(stem, "pdf"), render_pdf(html))
        except PdfUnavailable as exc:
            log.warning("no PDF for %s: %s", stem.name, exc)
            notes.append(f"未生成PDF版：{exc}")
    return files


def _write(path: Path, data: bytes) -> str:
    # a part file of this writer's own: the upload page and the unit-reports flow may write one report at once
    partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.part")
    partial.write_bytes(data)
    partial.replace(path)
    return str(path)
