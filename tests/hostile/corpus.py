"""The hostile files: every way a returned file can be wrong, damaged or malicious, built from the workbooks the
campaign really issued, and the answer each must get (issue codes and a key part of each Chinese message).

Each case has a unit of its own (H01, H02, ...), so that what one case stores never touches another's versions.
A case sends one file or a few (`Sent`): round 1 goes through the first ingest run, round 2 through a second one
(a resubmission, the same file again). tests/hostile/test_hostile_files.py runs them through the real flow.
"""

from __future__ import annotations

import io
import random
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import openpyxl

from cli.simulate import fill_by_names
from schemas.form_spec import FormSpec
from tasks.identity import IDENTITY_SHEET, WorkbookIdentity, sign
from tasks.xlsx_values import sheet_parts
from tests.factories import valid_figures

T2, T3, T4 = "表二 主动公开", "表三 依申请公开", "表四 复议诉讼"
LICENCE = "active.license.decisions"  # 表二 B9: in no sum rule, so any whole number there passes


@dataclass(frozen=True)
class Kit:
    """What building a case needs: the form, the campaign's facts and the workbooks it issued."""

    form: FormSpec
    year: int
    campaign_id: int
    secret: str
    workbooks: Path  # this year's issued workbooks
    last_year_workbooks: Path
    scratch: Path

    def issued(self, code: str, last_year: bool = False) -> Path:
        folder = self.last_year_workbooks if last_year else self.workbooks
        [found] = folder.glob(f"*-{code}-*.xlsx")
        return found

    def filled(self, code: str, **changes: object) -> bytes:
        """The unit's workbook filled by defined name with figures that pass, some replaced by raw values (dots
        in keys as '__'; None empties a cell), saved by openpyxl as another program would."""
        return self._filled(self.issued(code), changes)

    def filled_last_year(self, code: str) -> bytes:
        return self._filled(self.issued(code, last_year=True), {})

    def _filled(self, issued: Path, changes: dict[str, object]) -> bytes:
        values: dict[str, object] = dict(valid_figures(self.form))
        values.update({key.replace("__", "."): value for key, value in changes.items()})
        target = self.scratch / f"{len(list(self.scratch.iterdir()))}.xlsx"
        return fill_by_names(issued, target, values).read_bytes()

    def edited(self, data: bytes, edit: Callable[[openpyxl.Workbook], None]) -> bytes:
        workbook = openpyxl.load_workbook(io.BytesIO(data))
        edit(workbook)
        out = io.BytesIO()
        workbook.save(out)
        return out.getvalue()

    def resigned(self, data: bytes, *, secret: str | None = None, **changes: str | int) -> bytes:
        """The identity changed and signed again (with the campaign's secret unless another is given)."""
        workbook = openpyxl.load_workbook(io.BytesIO(data))
        rows = {row[0].value: row[1] for row in workbook[IDENTITY_SHEET].iter_rows() if row[0].value}
        fields: dict[str, str | int] = {k: str(rows[k].value) for k in ("form_id", "form_version", "year",
                                                                          "campaign_id", "unit_code")}
        fields.update(changes)
        signature = sign(WorkbookIdentity.model_validate(fields), secret or self.secret)
        for key, value in [*fields.items(), ("signature", signature)]:
            rows[key].value = str(value)
        out = io.BytesIO()
        workbook.save(out)
        return out.getvalue()


@dataclass(frozen=True)
class Sent:
    """One file the unit sends, with the answer it must get."""

    name: str
    data: bytes
    issues: tuple[tuple[str, str], ...] = ()  # (code, a key part of its Chinese message), in order
    accepted: bool = False
    identified: bool = True  # stored as the case unit's return (False: as a file of no known unit)
    duplicate: bool = False
    version: int = 1
    replaces: int | None = None  # the accepted version this one replaces
    round: int = 1
    folder: str | None = None  # the unit's subfolder of the inbox (the channel then names the unit)
    figures: dict[str, str] = field(default_factory=dict)  # figures that must be stored exactly so


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Kit, str], list[Sent]]  # (kit, the case unit's code) -> the files it sends
    why: str = ""  # the decision, where there was one to make


# --- zip and XML surgery -------------------------------------------------------------------------------------------


def members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def zipped(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, content in entries:
            zf.writestr(name, content)
    return out.getvalue()


def rewritten(data: bytes, member: str, edit: Callable[[str], str]) -> bytes:
    """The archive with one member's XML edited as text (deflated again, sizes and CRC right)."""
    return zipped([(info.filename, edit(content.decode("utf-8")).encode("utf-8") if info.filename == member
                    else content) for info, content in members(data)])


def with_member(data: bytes, name: str, content: bytes) -> bytes:
    return zipped([*((info.filename, body) for info, body in members(data)), (name, content)])


def sheet_member(data: bytes, sheet: str) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sheet_parts(zf.read("xl/workbook.xml"), zf.read("xl/_rels/workbook.xml.rels"))[sheet]


def in_cell(data: bytes, sheet: str, address: str, element: str) -> bytes:
    """The archive with one cell of a sheet replaced by the element given (its style kept)."""
    pattern = re.compile(rf'<c r="{address}"([^>]*?)(?:/>|>.*?</c>)', re.DOTALL)

    def edit(xml: str) -> str:
        found = pattern.search(xml)
        assert found is not None, address
        style = re.search(r' s="[0-9]+"', found.group(1))
        return xml[:found.start()] + element.format(style=style.group(0) if style else "") + xml[found.end():]

    return rewritten(data, sheet_member(data, sheet), edit)


def patched_directory(data: bytes, member: str, *, size: int | None = None, flags: int = 0) -> bytes:
    """The archive with what its central directory and local header say of one member changed: its inflated
    size, extra flag bits. The member's data is left as it is."""
    buffer = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.getinfo(member).header_offset
    end = data.rfind(b"PK\x05\x06")
    count, _, central = struct.unpack_from("<HII", data, end + 10)
    for _ in range(count):  # the central entry pointing at this member's local header
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, central + 28)
        if struct.unpack_from("<I", data, central + 42)[0] == local:
            break
        central += 46 + name_length + extra_length + comment_length
    else:
        raise AssertionError(member)
    for flag_at, size_at in ((central + 8, central + 24), (local + 6, local + 22)):
        struct.pack_into("<H", buffer, flag_at, struct.unpack_from("<H", buffer, flag_at)[0] | flags)
        if size is not None:
            struct.pack_into("<I", buffer, size_at, size)
    return bytes(buffer)


def compound_file(streams: dict[str, bytes]) -> bytes:
    """A minimal OLE compound file (version 3, 512-byte sectors) holding these streams, each padded to 4 KB so that
    none goes to the mini stream: how .xls, .et and password-protected .xlsx files are stored."""
    end, free, fat_sector = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    padded = {name: body.ljust(max(4096, -(-len(body) // 512) * 512), b"\0") for name, body in streams.items()}
    fat = [fat_sector, end]  # sector 0: the FAT itself, sector 1: the directory
    starts = []
    for body in padded.values():
        starts.append(len(fat))
        count = len(body) // 512
        fat += [len(fat) + i + 1 for i in range(count - 1)] + [end]
    assert len(fat) <= 128, "one FAT sector holds 128 sectors"
    fat += [free] * (128 - len(fat))

    def entry(name: str, kind: int, start: int, size: int, child: int = free, right: int = free) -> bytes:
        encoded = (name + "\0").encode("utf-16-le")
        return (encoded.ljust(64, b"\0") + struct.pack("<HBBIII", len(encoded), kind, 1, free, right, child)
                + b"\0" * 16 + b"\0" * 4 + b"\0" * 16 + struct.pack("<IIxxxx", start, size))

    names = list(padded)
    directory = entry("Root Entry", 5, end, 0, child=1)
    for i, name in enumerate(names):
        directory += entry(name, 2, starts[i], len(streams[name]), right=i + 2 if i + 1 < len(names) else free)
    directory = directory.ljust(512, b"\0")
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + b"\0" * 6 + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end, 0, end, 0)
              + struct.pack("<I", 0) + struct.pack("<I", free) * 108)
    return header + struct.pack("<128I", *fat) + directory + b"".join(padded.values())


def renamed_sheet(old: str, new: str) -> Callable[[openpyxl.Workbook], None]:
    """Rename a sheet as Excel does: the defined names on it follow (openpyxl alone would leave them behind)."""

    def edit(workbook: openpyxl.Workbook) -> None:
        workbook[old].title = new
        for name in workbook.defined_names.values():
            name.attr_text = name.attr_text.replace(f"'{old}'!", f"'{new}'!")

    return edit


def inserted_row_by_openpyxl(sheet: str, at: int) -> Callable[[openpyxl.Workbook], None]:
    """Insert a row with openpyxl, then move what it does not (names, merges) as Excel would."""

    def edit(workbook: openpyxl.Workbook) -> None:
        worksheet = workbook[sheet]
        merges = [str(m) for m in worksheet.merged_cells.ranges]
        for merge in merges:
            worksheet.unmerge_cells(merge)
        worksheet.insert_rows(at)
        for merge in merges:
            worksheet.merge_cells(_shift_refs(merge, at, None))
        for name in workbook.defined_names.values():
            if name.attr_text.startswith(f"'{sheet}'!"):
                name.attr_text = _shift_refs(name.attr_text, at, None)

    return edit


def _shift_refs(text: str, row_at: int | None, col_at: int | None) -> str:
    """Every A1 reference in text moved as Excel moves it for a row inserted at row_at and a column at col_at."""

    def move(match: re.Match[str]) -> str:
        col_dollar, letters, row_dollar, digits = match.groups()
        col = _col_number(letters)
        row = int(digits)
        if col_at is not None and col >= col_at:
            col += 1
        if row_at is not None and row >= row_at:
            row += 1
        return f"{col_dollar}{_col_letters(col)}{row_dollar}{row}"

    return re.sub(r"(?<![A-Za-z_])(\$?)([A-Z]{1,3})(\$?)([0-9]{1,7})(?![0-9(])", move, text)


def inserted_by_excel(data: bytes, sheet: str, row_at: int, col_at: int) -> bytes:
    """A row and a column inserted in one sheet as Excel saves it: the sheet's cells, rows, merges, formulas and
    validations moved, and the defined names on the sheet with them."""
    member = sheet_member(data, sheet)

    def edit_sheet(xml: str) -> str:
        xml = re.sub(r'<row r="([0-9]+)"', lambda m: f'<row r="{int(m.group(1)) + (int(m.group(1)) >= row_at)}"', xml)
        xml = re.sub(r'(<c r=")([A-Z]+[0-9]+)"', lambda m: m.group(1) + _shift_refs(m.group(2), row_at, col_at) + '"',
                     xml)
        xml = re.sub(r'(ref|sqref)="([^"]+)"', lambda m: f'{m.group(1)}="{_shift_refs(m.group(2), row_at, col_at)}"',
                     xml)
        xml = re.sub(r"<f>([^<]*)</f>", lambda m: f"<f>{_shift_refs(m.group(1), row_at, col_at)}</f>", xml)
        return xml.replace("<cols>", "<cols>", 1)

    def edit_names(xml: str) -> str:
        escaped = sheet.replace("'", "''")
        return re.sub(rf"(<definedName [^>]*>)'{re.escape(escaped)}'!([^<]*)(</definedName>)",
                      lambda m: f"{m.group(1)}'{escaped}'!{_shift_refs(m.group(2), row_at, col_at)}{m.group(3)}", xml)

    return rewritten(rewritten(data, member, edit_sheet), "xl/workbook.xml", edit_names)


def _col_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - 64
    return number


def _col_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def all_inputs(form: FormSpec, value: object, sheet_id: str | None = None) -> dict[str, object]:
    """Every input cell (of one sheet) set to value, as fill_by_names takes them ('.' as '__')."""
    return {c.key.replace(".", "__"): value for c in form.input_cells if sheet_id is None or c.sheet == sheet_id}


def lol_dtd(root: str) -> str:
    """The "billion laughs": ten entities each ten times the one before, a billion "lol"s if expanded."""
    entities = '<!ENTITY lol "lol">'
    for i in range(1, 10):
        entities += f'<!ENTITY lol{i} "' + f"&lol{i - 1 if i > 1 else ''};" * 10 + '">'

    return f"<!DOCTYPE {root} [{entities}]>"


XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _figure(value: int | str) -> str:
    return format(Decimal(str(value)).normalize(), "f")


# --- the cases -----------------------------------------------------------------------------------------------------

def _not_a_zip(_kit: Kit, _code: str) -> list[Sent]:
    return [Sent("年报.xlsx", "这不是工作簿，只是一段文字。\n".encode(), (("not-a-workbook", "不是Excel工作簿"),),
                 identified=False)]


def _truncated(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled(code)
    return [Sent("年报.xlsx", data[: len(data) // 2], (("corrupt-workbook", "已损坏或未完整传送"),), identified=False)]


def _docx(_kit: Kit, _code: str) -> list[Sent]:
    data = zipped([("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w:document/>")])
    return [Sent("年报.docx", data, (("not-a-workbook", "年报.docx”不是Excel工作簿"),), identified=False)]


def _bomb_ratio(kit: Kit, code: str) -> list[Sent]:
    # 30 MB of spaces deflate to ~30 KB: a thousandfold, refused from the central directory, never inflated
    data = with_member(kit.filled(code), "xl/worksheets/sheet9.xml", b" " * (30 * 1024 * 1024))
    return [Sent("年报.xlsx", data, (("unsafe-archive", "压缩比超过100倍"),), identified=False)]


def _bomb_total(kit: Kit, code: str) -> list[Sent]:
    # twelve members of 100 KB each claiming 9 MB (90x each, under the ratio limit): 108 MB together
    data = kit.filled(code)
    for i in range(12):
        data = with_member(data, f"xl/media/pad{i}.bin", random.Random(i).randbytes(100_000))
    for i in range(12):
        data = patched_directory(data, f"xl/media/pad{i}.bin", size=9 * 1024 * 1024)
    return [Sent("年报.xlsx", data, (("unsafe-archive", "解压后超过100MB"),), identified=False)]


def _lying_member(kit: Kit, code: str) -> list[Sent]:
    # 表三's part inflates to 30 MB while it says 40 KB: the fast path stops at the size said, the guard too
    data = kit.filled(code)
    member = sheet_member(data, T3)
    [body] = [content for info, content in members(data) if info.filename == member]
    data = rewritten(data, member, lambda xml: xml + " " * (30 * 1024 * 1024))
    return [Sent("年报.xlsx", patched_directory(data, member, size=len(body)),
                 (("unsafe-archive", "解压后远超声明"),), identified=False)]


def _billion_laughs(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled(code)
    member = sheet_member(data, T3)
    data = rewritten(data, member, lambda xml: XML_DECLARATION + lol_dtd("worksheet") + xml)
    data = in_cell(data, T3, "D6", '<c r="D6"{style} t="inlineStr"><is><t>&lol9;</t></is></c>')
    return [Sent("年报.xlsx", data, (("unsafe-xml", f"“{member}”含有文档类型定义"),), identified=False)]


def _external_entity(kit: Kit, code: str) -> list[Sent]:
    dtd = '<!DOCTYPE workbook [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    data = rewritten(kit.filled(code), "xl/workbook.xml", lambda xml: XML_DECLARATION + dtd + xml.replace(
        "</definedNames>", '<definedName name="stolen">&xxe;</definedName></definedNames>'))
    return [Sent("年报.xlsx", data, (("unsafe-xml", "“xl/workbook.xml”含有文档类型定义"),), identified=False)]


def _dtd_after_comment(kit: Kit, code: str) -> list[Sent]:
    # a DTD hidden behind a long comment, beyond where the fast path looks for one: the guard finds it
    data = rewritten(kit.filled(code), "xl/styles.xml",
                     lambda xml: XML_DECLARATION + "<!--" + "x" * 8000 + "-->" + lol_dtd("styleSheet")
                     + xml.split("?>", 1)[-1])
    return [Sent("年报.xlsx", data, (("unsafe-xml", "“xl/styles.xml”含有文档类型定义"),), identified=False)]


def _xlsm(kit: Kit, code: str) -> list[Sent]:
    data = with_member(kit.filled(code), "xl/vbaProject.bin", compound_file({"VBA": b"Attribute VB_Name"}))
    return [Sent("年报.xlsm", data, (("macro-workbook", "保存类型选“Excel工作簿（*.xlsx）”"),), identified=False)]


def _excel4_macros(kit: Kit, code: str) -> list[Sent]:
    data = with_member(kit.filled(code), "xl/macrosheets/sheet1.xml", b'<xm:macrosheet xmlns:xm="x"/>')
    return [Sent("年报.xlsx", data, (("macro-workbook", "xl/macrosheets/sheet1.xml"),), identified=False)]


def _password(_kit: Kit, _code: str) -> list[Sent]:
    data = compound_file({"EncryptionInfo": b"\x04\x00\x04\x00\x40\x00\x00\x00" + b"<encryption/>",
                          "EncryptedPackage": bytes(range(256)) * 20})
    return [Sent("年报.xlsx", data, (("encrypted-workbook", "设置了打开密码"),), identified=False)]


def _zip_password(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled(code)
    return [Sent("年报.xlsx", patched_directory(data, sheet_member(data, T3), flags=0x1),
                 (("encrypted-workbook", "压缩包设置了密码"),), identified=False)]


def _xls(_kit: Kit, _code: str) -> list[Sent]:
    data = compound_file({"Workbook": b"\x09\x08\x10\x00\x00\x06\x05\x00" + b"\0" * 12})
    return [Sent("年报.xls", data, (("other-format", "旧版Excel格式（.xls"),), identified=False)]


def _et(_kit: Kit, _code: str) -> list[Sent]:
    data = compound_file({"Workbook": b"\x09\x08\x10\x00\x00\x06\x05\x00" + b"\0" * 12, "ETExtData": b"\0" * 64})
    return [Sent("年报.et", data, (("other-format", "WPS表格的专有格式（.et）"),), identified=False)]


def _xlsb(_kit: Kit, _code: str) -> list[Sent]:
    data = zipped([("[Content_Types].xml", b"<Types/>"), ("xl/workbook.bin", b"\x83\x01\x00"),
                   ("xl/worksheets/sheet1.bin", b"\x81\x01\x00")])
    return [Sent("年报.xlsb", data, (("other-format", "Excel二进制工作簿（.xlsb）"),), identified=False)]


def _ods(_kit: Kit, _code: str) -> list[Sent]:
    data = zipped([("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
                   ("content.xml", b"<office:document-content/>")], zipfile.ZIP_STORED)
    return [Sent("年报.ods", data, (("other-format", "OpenDocument格式"),), identified=False)]


def _fifty_mb(kit: Kit, code: str) -> list[Sent]:
    # a real workbook, but 50 MB of photos in it: refused by its size alone, kept whole in the archive
    data = with_member(kit.filled(code), "xl/media/image1.jpeg", random.Random(50).randbytes(50_500_000))
    assert len(data) > 50_000_000
    return [Sent("年报（含照片）.xlsx", data, (("file-too-large", "超过上限"),), identified=False)]


def _wrong_version(kit: Kit, code: str) -> list[Sent]:
    data = kit.resigned(kit.filled(code), form_version="2019")
    return [Sent("年报.xlsx", data, (("wrong-form-version", "表格版本为2019"),), identified=False)]


def _another_year(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled_last_year(code)
    return [Sent("年报.xlsx", data, (("wrong-campaign", f"属于{kit.year - 1}年度的填报"),), identified=False)]


def _another_unit(kit: Kit, code: str) -> list[Sent]:
    # the unit sends, from its own folder, the workbook issued to another unit
    data = kit.filled("H00")
    return [Sent("年报.xlsx", data, (("wrong-unit", f"不是本单位（{code}）"),), folder=code)]


def _unknown_unit(kit: Kit, code: str) -> list[Sent]:
    data = kit.resigned(kit.filled(code), unit_code="X999")  # signed right, for a unit not in the campaign
    return [Sent("年报.xlsx", data, (("unknown-unit", "“X999”不在本次填报名单内"),), identified=False)]


def _forged_unit(kit: Kit, code: str) -> list[Sent]:
    def edit(workbook: openpyxl.Workbook) -> None:
        for row in workbook[IDENTITY_SHEET].iter_rows():
            if row[0].value == "unit_code":
                row[1].value = "H00"

    return [Sent("年报.xlsx", kit.edited(kit.filled(code), edit), (("bad-signature", "签名不符"),),
                 identified=False)]


def _forged_signature(kit: Kit, code: str) -> list[Sent]:
    def edit(workbook: openpyxl.Workbook) -> None:
        for row in workbook[IDENTITY_SHEET].iter_rows():
            if row[0].value == "signature":
                row[1].value = "0" * 64

    return [Sent("年报.xlsx", kit.edited(kit.filled(code), edit), (("bad-signature", "签名不符"),),
                 identified=False)]


def _wrong_key(kit: Kit, code: str) -> list[Sent]:
    data = kit.resigned(kit.filled(code), secret="a-key-guessed-by-someone", unit_code="H00")
    return [Sent("年报.xlsx", data, (("bad-signature", "签名不符"),), identified=False)]


def _one_bad(change: dict[str, object], issue: tuple[str, str]) -> Callable[[Kit, str], list[Sent]]:
    def build(kit: Kit, code: str) -> list[Sent]:
        return [Sent("年报.xlsx", kit.filled(code, **change), (issue,))]

    return build


def _formula(cached: bool) -> Callable[[Kit, str], list[Sent]]:
    """The clerk typed =100+20 into 行政许可 (B9): Excel saves the formula with its value 120; a program may save
    the formula alone."""

    def build(kit: Kit, code: str) -> list[Sent]:
        value = "<v>120</v>" if cached else ""
        data = in_cell(kit.filled(code), T2, "B9", f'<c r="B9"{{style}}><f>100+20</f>{value}</c>')
        if cached:
            return [Sent("年报.xlsx", data, accepted=True, figures={LICENCE: "120"})]
        return [Sent("年报.xlsx", data, (("formula-without-value", "填的是公式（=100+20）"),))]

    return build


def _deleted_name(kit: Kit, code: str) -> list[Sent]:
    def edit(workbook: openpyxl.Workbook) -> None:
        del workbook.defined_names["apply.new.natural_person"]

    return [Sent("年报.xlsx", kit.edited(kit.filled(code), edit),
                 (("missing-name", "名称 apply.new.natural_person"),))]


def _deleted_sheet(kit: Kit, code: str) -> list[Sent]:
    def edit(workbook: openpyxl.Workbook) -> None:
        del workbook[T4]

    return [Sent("年报.xlsx", kit.edited(kit.filled(code), edit), (("missing-sheet", f"缺少工作表“{T4}”"),))]


RENAMED = "依申请公开（本单位）"


def _renamed(kit: Kit, code: str) -> list[Sent]:
    data = kit.edited(kit.filled(code, apply__new__natural_person=2), renamed_sheet(T3, RENAMED))
    return [Sent("年报.xlsx", data, accepted=True, figures={"apply.new.natural_person": "2", "apply.new.total": "3"})]


def _renamed_bad(kit: Kit, code: str) -> list[Sent]:
    data = kit.edited(kit.filled(code, apply__new__commercial=-1, apply__carry_next__commercial=0),
                      renamed_sheet(T3, RENAMED))
    return [Sent("年报.xlsx", data, (("negative-value", "不能为负数，实际为-1"),))]


def _hidden(kit: Kit, code: str) -> list[Sent]:
    def edit(workbook: openpyxl.Workbook) -> None:
        workbook[T2].sheet_state = "hidden"
        workbook[T4].sheet_state = "veryHidden"

    data = kit.edited(kit.filled(code, active__penalty__decisions=9), edit)
    return [Sent("年报.xlsx", data, accepted=True, figures={"active.penalty.decisions": "9", LICENCE: "120"})]


def _inserted_by_openpyxl(kit: Kit, code: str) -> list[Sent]:
    data = kit.edited(kit.filled(code, apply__new__natural_person=2), inserted_row_by_openpyxl(T3, 5))
    return [Sent("年报.xlsx", data, accepted=True,
                 figures={"apply.new.natural_person": "2", "apply.result.open.natural_person": "1"})]


def _inserted_by_excel(kit: Kit, code: str) -> list[Sent]:
    data = inserted_by_excel(kit.filled(code, apply__new__natural_person=2), T3, 5, 3)
    return [Sent("年报.xlsx", data, accepted=True,
                 figures={"apply.new.natural_person": "2", "apply.new.commercial": "1",
                          "apply.result.open.natural_person": "1"})]


def _merged(kit: Kit, code: str) -> list[Sent]:
    def edit(workbook: openpyxl.Workbook) -> None:
        workbook[T3].merge_cells("D16:I16")  # six input cells of one row under one merge: five lose their value

    return [Sent("年报.xlsx", kit.edited(kit.filled(code), edit),
                 (("merged-input", "单元格区域D16:I16被合并，其中6个"),))]


def _as_issued(kit: Kit, code: str) -> list[Sent]:
    return [Sent("年报.xlsx", kit.issued(code).read_bytes(), (("empty-return", "与下发时相同"),))]


def _emptied(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled(code, **all_inputs(kit.form, None))
    return [Sent("年报.xlsx", data, (("empty-return", "都是空白或0，表格尚未填写"),))]


def _empty_sheet(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled(code, **all_inputs(kit.form, None, "t4"))
    return [Sent("年报.xlsx", data, (("empty-sheet", f"工作表“{T4}”中需填写的12个单元格都是空的"),))]


def _all_zero_explained(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled(code, **all_inputs(kit.form, 0), narrative__other="本单位本年度各项工作均未涉及，数据均为0。")
    return [Sent("年报.xlsx", data, (("empty-return", "已收到“文字部分”的说明"),), accepted=True)]


def _duplicate(kit: Kit, code: str) -> list[Sent]:
    data = kit.filled(code)
    return [Sent("年报.xlsx", data, accepted=True), Sent("年报（副本）.xlsx", data, accepted=True, duplicate=True),
            Sent("年报（再发一次）.xlsx", data, accepted=True, duplicate=True, round=2)]


def _resaved(kit: Kit, code: str) -> list[Sent]:
    first = kit.filled(code, active__penalty__decisions=5)
    def resave(workbook: openpyxl.Workbook) -> None:  # opened and saved again elsewhere: other bytes, same figures
        workbook.properties.lastModifiedBy = "办公室另一台电脑"

    again = kit.edited(first, resave)
    assert again != first
    return [Sent("年报.xlsx", first, accepted=True, figures={"active.penalty.decisions": "5"}),
            Sent("年报-另存.xlsx", again, accepted=True, version=2, replaces=1, round=2,
                 figures={"active.penalty.decisions": "5"})]


def _resubmitted(kit: Kit, code: str) -> list[Sent]:
    return [Sent("年报.xlsx", kit.filled(code, active__penalty__decisions=5), accepted=True),
            Sent("年报-修改.xlsx", kit.filled(code, active__penalty__decisions=6), accepted=True, version=2,
                 replaces=1, round=2, figures={"active.penalty.decisions": "6"})]


def _rejected_then_fixed(kit: Kit, code: str) -> list[Sent]:
    return [Sent("年报.xlsx", kit.filled(code, review__upheld=-1), (("negative-value", "不能为负数"),)),
            Sent("年报-修改.xlsx", kit.filled(code), accepted=True, version=2, round=2)]


CASES: list[Case] = [
    Case("not-a-zip", _not_a_zip),
    Case("truncated", _truncated),
    Case("docx", _docx),
    Case("zip-bomb-ratio", _bomb_ratio),
    Case("zip-bomb-total", _bomb_total),
    Case("zip-member-lying-about-its-size", _lying_member),
    Case("billion-laughs-in-a-sheet", _billion_laughs),
    Case("external-entity-in-workbook-xml", _external_entity),
    Case("dtd-behind-a-comment", _dtd_after_comment),
    Case("xlsm-with-vba", _xlsm, "macro files are never opened: the clerk is told to save as .xlsx"),
    Case("excel4-macro-sheet", _excel4_macros),
    Case("password-to-open", _password),
    Case("zip-password", _zip_password),
    Case("xls", _xls, "never read: the defined names and identity are read from the .xlsx parts only"),
    Case("et", _et, "WPS's own format is not read (calamine reads no .et): the clerk is told to save as .xlsx"),
    Case("xlsb", _xlsb),
    Case("ods", _ods),
    Case("fifty-mb", _fifty_mb),
    Case("wrong-template-version", _wrong_version),
    Case("another-year", _another_year),
    Case("another-units-workbook", _another_unit),
    Case("unknown-unit", _unknown_unit),
    Case("forged-unit-code", _forged_unit),
    Case("forged-signature", _forged_signature),
    Case("re-signed-with-a-wrong-key", _wrong_key),
    Case("text-in-a-number-cell", _one_bad({"apply__new__natural_person": "二件"},
                                           ("type-error", "应填数字，实际为“二件”"))),
    Case("fraction-as-text", _one_bad({LICENCE: "1/2"}, ("type-error", "实际为“1/2”"))),
    Case("negative", _one_bad({"review__upheld": -1}, ("negative-value", "不能为负数，实际为-1"))),
    Case("fraction", _one_bad({LICENCE: 120.5}, ("not-whole-number", "应为整数（件数），实际为120.5"))),
    Case("huge-1e20", _one_bad({LICENCE: 1e20}, ("value-too-large", "为100000000000000000000，超过了合理上限"))),
    Case("huge-twenty-nines", _one_bad({"active.penalty.decisions": 99999999999999999999},
                                       ("value-too-large", "超过了合理上限999999999"))),
    Case("formula-with-its-value", _formula(cached=True),
         "a formula Excel saved with its value is read as that value: the figure the clerk saw"),
    Case("formula-without-a-value", _formula(cached=False),
         "a formula saved without its value is not worked out here: the clerk is asked for the number"),
    Case("typed-total-disagrees", _one_bad({"apply__new__total": 99},
                                           ("total-mismatch", "应等于其分项之和3，实际填写99"))),
    Case("deleted-name", _deleted_name),
    Case("deleted-sheet", _deleted_sheet),
    Case("renamed-sheet", _renamed),
    Case("renamed-sheet-with-a-bad-value", _renamed_bad),
    Case("hidden-sheets", _hidden),
    Case("inserted-row-openpyxl", _inserted_by_openpyxl),
    Case("inserted-row-and-column-as-excel", _inserted_by_excel),
    Case("merged-over-inputs", _merged),
    Case("returned-as-issued", _as_issued,
         "the issued workbook holds 0 in every input cell: sent back untouched it would pass every rule"),
    Case("every-input-emptied", _emptied),
    Case("one-sheet-emptied", _empty_sheet),
    Case("all-zero-explained", _all_zero_explained, "all zeros with a 文字部分 explanation: accepted, with a warning"),
    Case("duplicate-file", _duplicate),
    Case("same-content-resaved", _resaved),
    Case("resubmission-after-acceptance", _resubmitted),
    Case("rejected-then-fixed", _rejected_then_fixed),
]
