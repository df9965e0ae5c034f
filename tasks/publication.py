"""Write a report Document as the files a county publishes: HTML (always), Word and PDF.

A format that cannot be made on this machine (no Chinese font for the PDF, a broken Word template) is left out with
a note saying why; the others are still written, so a report is never lost to one missing part.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tasks.render_docx import DocxTemplateError, render_docx
from tasks.render_html import render_html
from tasks.render_pdf import PdfUnavailable, render_pdf
from tasks.report_document import Document

log = logging.getLogger(__name__)
PUBLICATION_FORMATS = ("docx", "pdf")  # besides the HTML page, which every report has


def write_publication(document: Document, stem: Path, formats: tuple[str, ...], notes: list[str],
                      docx_template: bytes | None = None) -> dict[str, str]:
    """Write stem.html and the asked formats (stem.docx, stem.pdf); return format -> path. A format that
    cannot be made is appended to notes (in Chinese) and left out."""
    html = render_html(document)
    files = {"html": _write(stem.with_suffix(".html"), html.encode("utf-8"))}
    if "docx" in formats:
        try:
            files["docx"] = _write(stem.with_suffix(".docx"), render_docx(document, docx_template))
        except DocxTemplateError as exc:
            log.warning("no Word file for %s: %s", stem.name, exc)
            notes.append(f"未生成Word版：{exc}")
    if "pdf" in formats:
        try:
            files["pdf"] = _write(stem.with_suffix(".pdf"), render_pdf(html))
        except PdfUnavailable as exc:
            log.warning("no PDF for %s: %s", stem.name, exc)
            notes.append(f"未生成PDF版：{exc}")
    return files


def _write(path: Path, data: bytes) -> str:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)
    return str(path)
