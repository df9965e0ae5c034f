"""The zip writer behind every issued workbook: archives zipfile reads and verifies, names and times kept."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator

import pytest

from tasks.zip_write import Member, dos_stamp, zip_bytes


def test_zipfile_reads_back_every_member_whole_with_its_name_and_time() -> None:
    contents = {"[Content_Types].xml": b"<Types/>" * 50, "xl/worksheets/sheet1.xml": "填报单位：城关镇".encode() * 400,
                "docProps/说明.txt": b"", "xl/media/image1.png": bytes(range(256)) * 40}
    time, date = dos_stamp((2021, 12, 31, 23, 59, 58))
    archive = zip_bytes([Member.of(name, data, dos_time=time, dos_date=date) for name, data in contents.items()])
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None  # every member's CRC checked
        assert [info.filename for info in zf.infolist()] == list(contents)
        assert {info.filename: zf.read(info) for info in zf.infolist()} == contents
        assert {info.date_time for info in zf.infolist()} == {(2021, 12, 31, 23, 59, 58)}
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zf.infolist())
        assert zf.getinfo("docProps/说明.txt").flag_bits & 0x800  # a UTF-8 name says so


def test_a_member_is_deflated_once_and_written_as_is() -> None:
    member = Member.of("a.xml", b"<a/>" * 1000)
    assert len(member.deflated) < 100 and member.size == 4000
    first, again = zip_bytes([member]), zip_bytes([member])
    assert first == again and member.deflated in first


def test_what_needs_zip64_is_refused_not_written_wrong() -> None:
    huge = Member("big.bin", b"", 0, 0x1_0000_0000)
    with pytest.raises(ValueError, match="zip64"):
        zip_bytes([huge])
    with pytest.raises(ValueError, match="zip64"):
        zip_bytes([Member.of(f"{n}.txt", b"") for n in range(0x10000)])


def test_a_member_deflated_piece_by_piece_is_the_same_as_one_deflated_whole() -> None:
    """Member.streamed (pieces deflated on another thread while the next is made): the same content, CRC and size
    as Member.of, whatever the pieces' sizes, empty ones included."""
    content = "".join(f'<row r="{n}"><c r="A{n}"><v>{n * 7}</v></c></row>' for n in range(20_000)).encode()
    cuts = [0, 0, 1, 100, 70_000, 70_000, 250_000, len(content)]
    pieces = (content[start:end] for start, end in zip(cuts, cuts[1:], strict=False))
    streamed, whole = Member.streamed("sheet.xml", pieces), Member.of("sheet.xml", content)
    assert (streamed.crc, streamed.size) == (whole.crc, whole.size) == (zlib.crc32(content), len(content))
    with zipfile.ZipFile(io.BytesIO(zip_bytes([streamed]))) as zf:
        assert zf.testzip() is None and zf.read("sheet.xml") == content


def test_a_piece_that_cannot_be_made_fails_the_member() -> None:
    def pieces() -> Iterator[bytes]:
        yield b"<a>"
        raise ValueError("row 3 cannot be written")

    with pytest.raises(ValueError, match="row 3"):
        Member.streamed("sheet.xml", pieces())
