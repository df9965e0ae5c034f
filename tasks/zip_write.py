"""Write a zip archive from members deflated beforehand: a template's unchanged members are compressed once, not
once a copy (zipfile.writestr deflates every member of every copy, ~60% of issuing a workbook).

The archive is the plainest kind every reader takes (Excel, WPS, openpyxl, calamine): no data descriptors, no
extra fields, no zip64, sizes and CRC in each local header, names in UTF-8 (flagged when not ASCII).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_VERSION = 20  # 2.0: deflate
_UTF8 = 0x800
_DEFLATED = 8
MAX_BYTES = 0xFFFFFFFF  # past this a member or the archive needs zip64, which this writer does not write


@dataclass(frozen=True)
class Member:
    """A member as stored: its name, deflated bytes, CRC-32 and size, and its DOS time and date."""

    name: str
    deflated: bytes
    crc: int
    size: int
    dos_time: int = 0
    dos_date: int = (1 << 5) | 1  # 1980-01-01, the earliest a zip can say

    @classmethod
    def of(cls, name: str, content: bytes, *, level: int = 1, dos_time: int = 0,
           dos_date: int = (1 << 5) | 1) -> Member:
        """Deflate content (raw deflate, as zip stores it) at the given level."""
        packer = zlib.compressobj(level, zlib.DEFLATED, -15)
        return cls(name, packer.compress(content) + packer.flush(), zlib.crc32(content), len(content), dos_time,
                   dos_date)

    @classmethod
    def streamed(cls, name: str, pieces: Iterable[bytes], *, level: int = 1, dos_time: int = 0,
                 dos_date: int = (1 << 5) | 1) -> Member:
        """Deflate content given as pieces, on a thread of its own while the caller makes the next piece.

        For a large member made as it is written (the summary workbook's 2 million cells): zlib lets go of the
        interpreter while it deflates and checksums, so on a second core the compression costs the caller next to
        nothing. One thread: a deflate stream and a CRC take their pieces in order."""
        packer = zlib.compressobj(level, zlib.DEFLATED, -15)
        crc, size = 0, 0

        def pack(piece: bytes) -> bytes:
            nonlocal crc, size
            crc, size = zlib.crc32(piece, crc), size + len(piece)
            return packer.compress(piece)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deflate") as deflater:
            packed = [deflater.submit(pack, piece) for piece in pieces]
            deflated = b"".join([part.result() for part in packed]) + packer.flush()
        return cls(name, deflated, crc, size, dos_time, dos_date)


def dos_stamp(date_time: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    """(DOS time, DOS date) of a ZipInfo.date_time."""
    year, month, day, hour, minute, second = date_time
    return (hour << 11) | (minute << 5) | (second // 2), ((max(year, 1980) - 1980) << 9) | (month << 5) | day


def zip_bytes(members: Sequence[Member]) -> bytes:
    """The archive of these members, in this order."""
    parts: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for member in members:
        name = member.name.encode("utf-8")
        flags = 0 if name.isascii() else _UTF8
        if max(len(member.deflated), member.size) > MAX_BYTES:
            raise ValueError(f"{member.name}: too large for a zip without zip64")
        header = _LOCAL.pack(0x04034B50, _VERSION, flags, _DEFLATED, member.dos_time, member.dos_date, member.crc,
                             len(member.deflated), member.size, len(name), 0)
        central.append(_CENTRAL.pack(0x02014B50, _VERSION, _VERSION, flags, _DEFLATED, member.dos_time,
                                     member.dos_date, member.crc, len(member.deflated), member.size, len(name), 0, 0,
                                     0, 0, 0, offset) + name)
        parts += [header, name, member.deflated]
        offset += len(header) + len(name) + len(member.deflated)
    directory = b"".join(central)
    if offset + len(directory) > MAX_BYTES or len(members) > 0xFFFF:
        raise ValueError("too large for a zip without zip64")
    end = _END.pack(0x06054B50, 0, 0, len(members), len(members), len(directory), offset, 0)
    return b"".join([*parts, directory, end])
