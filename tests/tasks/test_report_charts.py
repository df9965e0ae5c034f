"""The report's charts: valid PNGs of the set size, byte-identical for the same data, Chinese drawn with a CJK font.

Every example chart is saved to tests/output/chart-*.png, to be looked at.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import pytest
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from PIL import Image

from tasks.report_charts import (
    CJK_FONT_FAMILIES,
    HEIGHT_PX,
    WIDTH_PX,
    ChartFontMissing,
    applicant_chart,
    find_cjk_font,
    outcome_chart,
    trend_chart,
)

OUTPUT = Path(__file__).resolve().parents[1] / "output"
OUTCOMES = [("予以公开", 5), ("部分公开", 0), ("不予公开", 0), ("无法提供", 0), ("不予处理", 0), ("其他处理", 0)]
APPLICANTS = [("自然人", 12), ("商业企业", 3), ("科研机构", 0), ("社会公益组织", 1), ("法律服务机构", 2), ("其他", 0)]
YEARS = [2019, 2020, 2021]
REQUESTS: list[tuple[str, list[int | None]]] = [("新收申请", [14, None, 18]), ("办结", [12, 9, 0])]
DECISIONS: list[tuple[str, list[int | None]]] = [("行政许可", [17726, 15980, 16402]), ("行政处罚", [63, 0, None])]

EXAMPLES: dict[str, Callable[[], bytes]] = {
    "outcome": lambda: outcome_chart(OUTCOMES, "2021年度政府信息公开申请办结情况"),
    "outcome-long-labels": lambda: outcome_chart(
        [("予以公开", 1203), ("部分公开", 87), ("不予公开（属于国家秘密等）", 12), ("本机关不掌握相关政府信息", 40)], ""
    ),
    "outcome-zero": lambda: outcome_chart([(name, 0) for name, _ in OUTCOMES], "办结情况"),
    "outcome-empty": lambda: outcome_chart([], "办结情况"),
    "applicant": lambda: applicant_chart(APPLICANTS, "新收申请的申请人类型"),
    "applicant-zero": lambda: applicant_chart([(name, 0) for name, _ in APPLICANTS], ""),
    "trend": lambda: trend_chart(YEARS, REQUESTS, "历年申请情况"),
    "trend-magnitudes": lambda: trend_chart(YEARS, DECISIONS, "行政许可与行政处罚决定"),
    "trend-unknown": lambda: trend_chart(YEARS, [("新收申请", [None, None, None])], "历年申请情况"),
    "trend-empty": lambda: trend_chart([], [], "历年申请情况"),
    "trend-zero": lambda: trend_chart(YEARS, [("行政复议", [0, 0, 0])], "行政复议", unit="次"),
}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_is_a_valid_png_of_the_set_size(name: str) -> None:
    data = EXAMPLES[name]()
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / f"chart-{name}.png").write_bytes(data)
    assert png_size(data) == (WIDTH_PX, HEIGHT_PX)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # whole-file check: chunks and CRCs


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_same_data_gives_the_same_bytes_without_metadata(name: str) -> None:
    data = EXAMPLES[name]()
    assert EXAMPLES[name]() == data
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"tIME"):
        assert chunk not in data


def test_different_data_gives_different_bytes() -> None:
    assert outcome_chart(OUTCOMES, "") != outcome_chart([("予以公开", 6), *OUTCOMES[1:]], "")
    assert applicant_chart(APPLICANTS, "甲") != applicant_chart(APPLICANTS, "乙")


def test_unknown_year_is_not_drawn_as_zero() -> None:
    known_zero: list[tuple[str, list[int | None]]] = [("新收申请", [14, 0, 18]), ("办结", [12, 9, 0])]
    assert trend_chart(YEARS, REQUESTS, "") != trend_chart(YEARS, known_zero, "")


def test_all_zero_differs_from_no_data_at_all() -> None:
    assert EXAMPLES["trend-zero"]() != EXAMPLES["trend-unknown"]()


def test_mismatched_series_is_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 years"):
        trend_chart(YEARS, [("新收申请", [1, 2])], "")


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        outcome_chart([("予以公开", -1)], "")
    with pytest.raises(ValueError, match="negative"):
        trend_chart(YEARS, [("办结", [1, -2, 3])], "")


def test_chosen_font_has_the_chinese_glyphs() -> None:
    font = find_cjk_font()
    face = FT2Font(font.path, face_index=font.face_index)
    labels = "".join(name for name, _ in OUTCOMES + APPLICANTS) + "本年度无办结的申请历年不详件"
    assert [char for char in labels if face.get_char_index(ord(char)) == 0] == []


def test_noto_collection_gives_its_simplified_chinese_face() -> None:
    if "Noto Sans CJK SC" not in font_manager.get_font_names():
        pytest.skip("Noto Sans CJK SC not installed")
    font = find_cjk_font(["Noto Sans CJK SC"])
    assert FT2Font(font.path, face_index=font.face_index).family_name == "Noto Sans CJK SC"  # not face 0, the JP one
    OUTPUT.mkdir(exist_ok=True)
    data = applicant_chart(APPLICANTS, "新收申请", fonts=["Noto Sans CJK SC"])
    (OUTPUT / "chart-applicant-noto.png").write_bytes(data)


def test_no_cjk_font_raises_chart_font_missing() -> None:
    with pytest.raises(ChartFontMissing, match="fonts-wqy-microhei"):
        find_cjk_font(["No Such Font", "DejaVu Sans"])  # DejaVu is there, but has no Chinese
    with pytest.raises(ChartFontMissing):
        outcome_chart(OUTCOMES, "", fonts=[])
    assert issubclass(ChartFontMissing, RuntimeError)


def test_global_matplotlib_state_neither_changed_nor_used() -> None:
    before = dict(matplotlib.rcParams)
    data = applicant_chart(APPLICANTS, "新收申请")
    assert dict(matplotlib.rcParams) == before
    with matplotlib.rc_context({"font.size": 20, "axes.facecolor": "red", "font.family": "serif"}):
        assert applicant_chart(APPLICANTS, "新收申请") == data


def test_threads_get_the_same_bytes() -> None:
    expected = {name: EXAMPLES[name]() for name in ("outcome", "trend")}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: (name, EXAMPLES[name]()), ["outcome", "trend"] * 4))
    assert all(data == expected[name] for name, data in results)


def test_fonts_installed_after_matplotlib_cached_its_list_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI failure: matplotlib's font list was cached before scripts/system-packages installed the CJK fonts."""
    expected = find_cjk_font()
    stale = [entry for entry in font_manager.fontManager.ttflist
             if entry.name not in CJK_FONT_FAMILIES and entry.fname != expected.path]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    assert expected.family not in font_manager.get_font_names()
    assert find_cjk_font() == expected
    assert expected.family in font_manager.get_font_names()
