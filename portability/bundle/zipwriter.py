"""A sequential ZIP writer for entries whose size and CRC-32 are known before their data.

The bundle's DICOM files are hashed (SHA-256, CRC-32) while they are downloaded, so each entry's
local header can be written with its final sizes and CRC: no seeking back (Python's ``zipfile``
rewrites every local header), no data descriptors (which some readers refuse on stored entries),
and the whole archive is hashed (SHA-256) as it is written instead of being read back.

The format is PKWARE APPNOTE 6.3.x: local headers, central directory, end of central directory;
ZIP64 extra fields and end records when a size, an offset or the entry count needs them. Names
are ASCII or UTF-8 (general purpose flag bit 11).
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from typing import BinaryIO, Iterable

_LIMIT = 0xFFFFFFFF
_MAX_ENTRIES = 0xFFFF
STORED, DEFLATED = 0, 8


def _dos_time(stamp: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    y, mo, d, h, mi, s = stamp
    return (h << 11) | (mi << 5) | (s // 2), ((max(y, 1980) - 1980) << 9) | (mo << 5) | d


class ZipWriter:
    """Write entries one after the other into ``fp`` (opened for writing, positioned at 0)."""

    def __init__(self, fp: BinaryIO, stamp: tuple[int, int, int, int, int, int], *,
                 force_zip64: bool = False) -> None:
        self._fp = fp
        self._time, self._date = _dos_time(stamp)
        self._force64 = force_zip64
        self._pos = 0
        self._central: list[bytes] = []
        self._names: set[str] = set()
        self.sha256 = hashlib.sha256()  # of every byte written so far

    @property
    def size(self) -> int:
        return self._pos

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self.sha256.update(data)
        self._fp.write(data)
        self._pos += len(data)

    def add(self, name: str, size: int, crc: int, chunks: Iterable[bytes], *,
            method: int = STORED, compressed_size: int | None = None) -> None:
        """One entry: ``chunks`` must yield exactly ``compressed_size`` (``size`` when stored)
        bytes, the (compressed) data whose uncompressed form has ``size`` bytes and CRC ``crc``."""
        if name in self._names:
            raise ValueError(f"duplicate ZIP entry {name!r}")
        self._names.add(name)
        csize = size if compressed_size is None else compressed_size
        encoded = name.encode("utf-8")
        flags = 0 if encoded.isascii() else 0x800
        offset = self._pos
        zip64 = self._force64 or size >= _LIMIT or csize >= _LIMIT
        version = 45 if zip64 else 20
        if zip64:
            extra = struct.pack("<HHQQ", 0x0001, 16, size, csize)
            local_sizes = (_LIMIT, _LIMIT)
        else:
            extra, local_sizes = b"", (csize, size)
        self._write(struct.pack("<IHHHHHIIIHH", 0x04034B50, version, flags, method, self._time,
                                self._date, crc, *local_sizes, len(encoded), len(extra)) + encoded + extra)
        written = 0
        for chunk in chunks:
            self._write(chunk)
            written += len(chunk)
        if written != csize:
            raise ValueError(f"ZIP entry {name!r}: {written} bytes written, {csize} announced")

        # Central directory entry: ZIP64 fields only for the values that overflow, in APPNOTE order.
        fields, values = [], []
        for value in (size, csize):
            if zip64:
                fields.append(value)
                values.append(_LIMIT)
            else:
                values.append(value)
        uncompressed_v, compressed_v = values
        if offset >= _LIMIT or self._force64:
            fields.append(offset)
            offset_v = _LIMIT
        else:
            offset_v = offset
        cextra = struct.pack(f"<HH{len(fields)}Q", 0x0001, 8 * len(fields), *fields) if fields else b""
        cversion = 45 if cextra else 20
        self._central.append(struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | cversion, cversion, flags, method,
            self._time, self._date, crc, compressed_v, uncompressed_v, len(encoded), len(cextra), 0, 0,
            0, (0o100644 << 16), offset_v) + encoded + cextra)

    def add_bytes(self, name: str, data: bytes, *, compress: bool = True) -> None:
        crc = zlib.crc32(data)
        if compress:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed = c.compress(data) + c.flush()
            self.add(name, len(data), crc, [packed], method=DEFLATED, compressed_size=len(packed))
        else:
            self.add(name, len(data), crc, [data])

    def close(self) -> None:
        """Write the central directory and the end records."""
        start = self._pos
        for entry in self._central:
            self._write(entry)
        cd_size = self._pos - start
        count = len(self._central)
        if self._force64 or count >= _MAX_ENTRIES or start >= _LIMIT or cd_size >= _LIMIT:
            eocd64 = self._pos
            self._write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0,
                                    count, count, cd_size, start))
            self._write(struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1))
            count16, size32, start32 = (min(count, _MAX_ENTRIES), min(cd_size, _LIMIT), min(start, _LIMIT))
        else:
            count16, size32, start32 = count, cd_size, start
        self._write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count16, count16, size32, start32, 0))
