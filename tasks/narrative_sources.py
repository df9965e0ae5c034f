"""Where the county report's prose comes from: the coordinator's file, named or found in the campaign's folder.

The coordinator writes sections 一, 五 and 六 once a year in one of three ways: a text file (.txt, the bracketed
markers or the headings), a Markdown file (.md), or the coordinator's sheet (.xlsx: the 文字部分 sheet of the
workbook, made by `nianbao narrative-sheet`). Without a file named, campaigns/YEAR/narrative.(md|txt|xlsx) is used
if it exists, so the scheduled drafts pick the text up too.
"""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl

from schemas.form_spec import FormSpec, SheetKind
from tasks.narrative import Narrative, narrative_from_texts, parse_narrative

DEFAULT_NAMES = ("narrative.md", "narrative.txt", "narrative.xlsx")


class NarrativeFileError(ValueError):
    """A coordinator's file that cannot be read as the report's prose."""


def find_narrative_file(folder: Path) -> Path | None:
    """The campaign's own narrative file, if the coordinator put one there."""
    return next((folder / name for name in DEFAULT_NAMES if (folder / name).is_file()), None)


def read_narrative_file(path: Path, form: FormSpec) -> Narrative:
    """The prose sections of the file, by section number."""
    assert form.report is not None
    if path.suffix.lower() == ".xlsx":
        return narrative_from_texts(_sheet_texts(path, form), {t.key: t.section for t in form.texts})
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = path.read_bytes().decode("gb18030")  # saved by Notepad on a Chinese Windows
        except UnicodeDecodeError as exc:
            raise NarrativeFileError(f"{path}: neither UTF-8 nor GB18030 text") from exc
    headings = {s.number: s.heading for s in form.report.sections}
    prose = {s.number for s in form.report.sections if s.text}
    return parse_narrative(text, headings, prose, markdown=path.suffix.lower() in {".md", ".markdown"})


def _sheet_texts(path: Path, form: FormSpec) -> dict[str, str]:
    """The texts of a workbook's 文字部分 sheet, found by their defined names (or, failing that, their address)."""
    try:
        book = openpyxl.load_workbook(io.BytesIO(path.read_bytes()), data_only=True)
    except Exception as exc:  # noqa: BLE001  openpyxl raises many kinds on a damaged file
        raise NarrativeFileError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__})") from exc
    texts = {}
    for spec in form.texts:
        sheet_name, address = form.sheet_by_id[spec.sheet].name, spec.address
        if spec.key in book.defined_names:
            sheet_name, ref = next(iter(book.defined_names[spec.key].destinations))
            address = ref.replace("$", "")
        if sheet_name in book.sheetnames and book[sheet_name][address].value is not None:
            texts[spec.key] = str(book[sheet_name][address].value).replace("\r\n", "\n")
    if not texts and not any(s.kind is SheetKind.NARRATIVE and s.name in book.sheetnames for s in form.sheets):
        raise NarrativeFileError(f"{path}: no 文字部分 sheet (make one with `nianbao narrative-sheet`)")
    return texts
