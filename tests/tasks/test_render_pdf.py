"""The HTML page and the PDF printed from it: real WeasyPrint, real fonts, pages rendered to PNG and read back.

The PNG pages are saved under tests/output/ to be looked at; the assertions read the PDF's own text and fonts.
"""

from __future__ import annotations

import re
import zlib
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pypdfium2
import pytest

from schemas.form_spec import FormSpec
from tasks.check import check_values
from tasks.render_html import render_html
from tasks.render_pdf import PdfUnavailable, chinese_font_installed, render_pdf
from tasks.report_build import ReportInput, build_report
from tasks.report_document import Document, Paragraph, Section
from tests.factories import valid_figures

OUTPUT = Path(__file__).parents[1] / "output"


@pytest.fixture(scope="module")
def document(form: FormSpec) -> Document:
    cells = check_values({k: float(v) for k, v in valid_figures(form).items()}, form).values
    narrative = {"一": [Paragraph(text="本年度，示范县认真贯彻落实《政府信息公开条例》<“依法公开”& 规范>。")]}
    built, _ = build_report(form, ReportInput(title="示范县人民政府2021年政府信息公开工作年度报告", year=2021,
                                              cells=cells, narrative=narrative, draft=True,
                                              history=[(2020, {k: v + 1 for k, v in cells.items()})]))
    return built


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.images: list[str] = []
        self._skip = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip = tag in {"style", "title"}
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def test_html_page_escapes_text_and_embeds_the_charts(document: Document) -> None:
    page = render_html(document)
    assert "&lt;“依法公开”&amp; 规范&gt;" in page
    reader = _Text()
    reader.feed(page)
    assert "本年度，示范县认真贯彻落实《政府信息公开条例》<“依法公开”& 规范>。" in reader.parts
    assert len(reader.images) == 3 and all(src.startswith("data:image/png;base64,") for src in reader.images)
    assert '<p class="draft-mark">草稿</p>' in page


@pytest.mark.skipif(not chinese_font_installed(), reason="no Chinese font: scripts/system-packages installs one")
def test_pdf_is_a4_with_chinese_text_in_an_embedded_chinese_font(document: Document) -> None:
    pdf = render_pdf(render_html(document))
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "report-example.pdf").write_bytes(pdf)
    book = pypdfium2.PdfDocument(pdf)
    try:
        width, height = book[0].get_size()
        assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)
        text = "".join(book[i].get_textpage().get_text_range() for i in range(len(book)))
        for page_number in range(len(book)):
            book[page_number].render(scale=1.5).to_pil().save(OUTPUT / f"report-example-page{page_number + 1}.png")
        ink = book[0].render(scale=0.5).to_pil().convert("L")
        assert ink.getextrema()[0] < 100  # something is printed on the first page
    finally:
        book.close()
    flat = re.sub(r"\s+", "", text)
    for heading in ("示范县人民政府2021年政府信息公开工作年度报告", "一、总体情况",
                    "三、收到和处理政府信息公开申请情况", "六、其他需要报告的事项", "本年度新收政府信息公开申请3件"):
        assert heading in flat, heading
    assert "—1—" in flat and "草稿" in flat  # the page number and the draft mark of the print styles
    fonts = set(re.findall(rb"/FontName\s*/[A-Z]{6}\+([A-Za-z-]+)", _inflated(pdf)))
    assert any(b"CJK" in name for name in fonts), fonts  # glyphs from a Chinese font, not empty boxes


def _inflated(pdf: bytes) -> bytes:
    """The PDF with its compressed streams (object streams hold the font dictionaries) inflated."""
    parts = [pdf]
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            parts.append(zlib.decompress(stream))
        except zlib.error:
            continue  # an image or a stream of another filter
    return b"\n".join(parts)


def test_no_pdf_without_a_chinese_font(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine where fontconfig finds no font (no fc-list on the PATH) gets a clear reason, not empty boxes."""
    monkeypatch.setenv("PATH", str(tmp_path))
    chinese_font_installed.cache_clear()
    try:
        with pytest.raises(PdfUnavailable, match="fonts-noto-cjk"):
            render_pdf(render_html(Document(title="标题", sections=[Section(heading="一、总体情况")])))
    finally:
        chinese_font_installed.cache_clear()


def test_figures_keep_their_exact_text(form: FormSpec) -> None:
    cells = check_values({k: float(v) for k, v in valid_figures(form, active__fees__amount_wan="309.0263").items()},
                         form).values
    built, _ = build_report(form, ReportInput(title="t", year=2021, cells=cells, narrative={}, charts=False))
    assert Decimal("309.0263") == cells["active.fees.amount_wan"]
    assert ">309.0263<" in render_html(built)
