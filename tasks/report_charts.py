"""The report's charts as PNG bytes: how the year's applications ended, who applied, and figures over several years.

Pure functions of plain data, for the county report and each unit's report; the caller builds the data and places the
images (the document adds the caption, so the title is only drawn small at the top left, and "" leaves it out).
Each chart is drawn on its own Figure with the Agg canvas, never through pyplot. Settings come from a style context
that starts from matplotlib's defaults: a user's matplotlibrc cannot change the output, and the global rcParams are
as before once the call returns. A module lock keeps two Prefect task threads from interleaving those settings.
The PNG carries no software or date metadata, so the same data gives the same bytes.
"""

from __future__ import annotations

import io
import textwrap
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matplotlib import font_manager, style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# WenQuanYi first: a one-face file, and the font scripts/system-packages installs for the charts.
CJK_FONT_FAMILIES: tuple[str, ...] = (
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Noto Sans SC",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "WenQuanYi Zen Hei",
)
DPI = 200
WIDTH_PX, HEIGHT_PX = 1260, 630  # 160 × 80 mm at 200 dpi
COLOURS = ("#2f5597", "#9dc3e6", "#7f7f7f", "#c9c9c9")
_INK, _GREY = "#262626", "#7f7f7f"
# A family name can map to a font without Chinese glyphs (a stub, a Latin-only substitute): check a few.
_GLYPH_SAMPLE = "政府信息公开申请办结予以不详年件"
_LOCK = threading.Lock()


class ChartFontMissing(RuntimeError):
    """No installed font can draw Chinese: the caller leaves the charts out, with a warning."""


@dataclass(frozen=True)
class ChartFont:
    family: str
    path: str
    face_index: int


def find_cjk_font(families: Sequence[str] = CJK_FONT_FAMILIES) -> ChartFont:
    """Return the first of `families` that matplotlib knows and that has Chinese glyphs."""
    found = _first_cjk_font(families)
    if found is None:
        # matplotlib's font list is a cache made on first use: fonts installed since (scripts/system-packages run
        # after a first demo) are not in it until it is told about them
        _add_new_system_fonts()
        found = _first_cjk_font(families)
    if found is not None:
        return found
    raise ChartFontMissing(
        f"no CJK font for the charts among {', '.join(families) or '(none)'}; install one, e.g. the Debian package "
        "fonts-wqy-microhei (scripts/system-packages does)"
    )


def _add_new_system_fonts() -> None:
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # a damaged font file is skipped, as matplotlib does
                continue


def _first_cjk_font(families: Sequence[str]) -> ChartFont | None:
    installed = font_manager.get_font_names()
    for family in families:
        if family not in installed:
            continue
        path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        if all(font_manager.get_font(path).get_char_index(ord(char)) for char in _GLYPH_SAMPLE):
            return ChartFont(family, path.path, path.face_index)
    return None


def outcome_chart(
    outcomes: Sequence[tuple[str, int]], title: str, *, fonts: Sequence[str] = CJK_FONT_FAMILIES
) -> bytes:
    """Draw how the year's concluded applications ended: one horizontal bar per result group, top to bottom."""
    counts = _counts(outcomes)
    return _render(lambda fig: _draw_outcomes(fig, outcomes, counts, title), fonts)


def applicant_chart(
    applicants: Sequence[tuple[str, int]], title: str, *, fonts: Sequence[str] = CJK_FONT_FAMILIES
) -> bytes:
    """Draw the year's new applications by applicant type, one bar per type."""
    counts = _counts(applicants)
    return _render(lambda fig: _draw_applicants(fig, applicants, counts, title), fonts)


def trend_chart(
    years: Sequence[int],
    series: Sequence[tuple[str, Sequence[int | None]]],
    title: str,
    unit: str = "件",
    *,
    fonts: Sequence[str] = CJK_FONT_FAMILIES,
) -> bytes:
    """Draw figures over several years as grouped bars, one colour per series; None is a year not known."""
    for name, values in series:
        if len(values) != len(years):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(years)} years")
        if any(value is not None and value < 0 for value in values):
            raise ValueError(f"series {name!r} has a negative value")
    return _render(lambda fig: _draw_trend(fig, years, series, title, unit), fonts)


def _counts(pairs: Sequence[tuple[str, int]]) -> list[int]:
    counts = [count for _, count in pairs]
    if any(count < 0 for count in counts):
        raise ValueError(f"negative count in {pairs!r}")
    return counts


def _render(draw: Callable[[Figure], None], fonts: Sequence[str]) -> bytes:
    font = find_cjk_font(fonts)
    buffer = io.BytesIO()
    with _LOCK, style.context(["default", _rc(font.family)]):
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _rc(family: str) -> dict[str, object]:
    return {
        "font.family": [family, "DejaVu Sans"],  # DejaVu (bundled) for any glyph the CJK font lacks
        "font.size": 8,
        "axes.unicode_minus": False,  # some CJK fonts have no U+2212
        "axes.titlesize": 8,
        "axes.titlelocation": "left",
        "axes.titlecolor": _GREY,
        "axes.edgecolor": "#a6a6a6",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.axisbelow": True,
        "grid.color": "#e0e0e0",
        "grid.linewidth": 0.6,
        "text.color": _INK,
        "xtick.color": _INK,
        "ytick.color": _INK,
        "legend.frameon": False,
    }


def _draw_outcomes(fig: Figure, outcomes: Sequence[tuple[str, int]], counts: list[int], title: str) -> None:
    total = sum(counts)
    if total == 0:
        return _message(fig, title, "本年度无办结的申请")
    ax = _axes(fig, title)
    rows = range(len(counts))
    bars = ax.barh(rows, counts, height=0.6, color=COLOURS[0])
    ax.bar_label(bars, [f"{count}件 ({count / total:.1%})" for count in counts], padding=3)
    ax.set_yticks(rows, [_wrap(name, 8) for name, _ in outcomes])
    ax.invert_yaxis()  # the groups read top to bottom in the given order
    ax.set_xlim(0, max(counts) * 1.3)  # room for the labels at the bar ends
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x")


def _draw_applicants(fig: Figure, applicants: Sequence[tuple[str, int]], counts: list[int], title: str) -> None:
    if sum(counts) == 0:
        return _message(fig, title, "本年度无新收的申请")
    ax = _axes(fig, title)
    columns = range(len(counts))
    bars = ax.bar(columns, counts, width=0.55, color=COLOURS[0])
    ax.bar_label(bars, [str(count) for count in counts], padding=2)
    ax.set_xticks(columns, [_wrap(name, 6) for name, _ in applicants])
    _value_axis(ax, max(counts), "件")


def _draw_trend(
    fig: Figure, years: Sequence[int], series: Sequence[tuple[str, Sequence[int | None]]], title: str, unit: str
) -> None:
    known = [value for _, values in series for value in values if value is not None]
    if not known:
        return _message(fig, title, "暂无历年数据")
    ax = _axes(fig, title)
    width = 0.8 / len(series)
    label_size = 7 if len(years) * len(series) <= 12 else 5.5
    for index, (name, values) in enumerate(series):
        offsets = [year + (index - (len(series) - 1) / 2) * width for year in range(len(years))]
        shown = [(x, value) for x, value in zip(offsets, values, strict=True) if value is not None]
        bars = ax.bar([x for x, _ in shown], [v for _, v in shown], width * 0.9, label=name, color=COLOURS[index % 4])
        # Every bar keeps its label, so a 0 or a 63 beside a 17726 stays readable though its bar is a hairline.
        ax.bar_label(bars, [str(v) for _, v in shown], padding=2, fontsize=label_size)
        for x, value in zip(offsets, values, strict=True):
            if value is None:  # a gap, marked so that it is not read as zero
                ax.text(x, 0, "不详", ha="center", va="bottom", fontsize=label_size, color=_GREY)
    ax.set_xticks(range(len(years)), [f"{year}年" for year in years])
    ax.set_xlim(-0.5, len(years) - 0.5)  # set, not autoscaled: a trailing unknown year has no bar to scale to
    ax.tick_params(axis="x", length=0)
    _value_axis(ax, max(known), unit)
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=len(series), borderaxespad=0.2, handlelength=1)


def _axes(fig: Figure, title: str) -> Axes:
    ax = fig.add_subplot()
    if title:
        ax.set_title(title)
    return ax


def _value_axis(ax: Axes, top: int, unit: str) -> None:
    ax.set_ylim(0, max(top, 1) * 1.15)  # room for the values on top; an all-zero chart still has an axis
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(unit, rotation=0, loc="top", labelpad=4)
    ax.grid(axis="y")


def _message(fig: Figure, title: str, text: str) -> None:
    ax = _axes(fig, title)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():  # a light frame, so that the empty chart does not look like a missing image
        spine.set_visible(True)
        spine.set_color("#d9d9d9")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color=_GREY, transform=ax.transAxes)


def _wrap(label: str, width: int) -> str:
    # Chinese has no spaces, so textwrap breaks after `width` characters: fine for the short statutory labels.
    return "\n".join(textwrap.wrap(label, width)) or label
