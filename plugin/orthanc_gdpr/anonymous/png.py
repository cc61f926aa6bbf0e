"""PNG files that carry pixels and nothing else.

Pillow writes only the critical chunks (IHDR, IDAT, IEND) when it is given no text, no ICC
profile, no EXIF and no resolution; :func:`encode` says so explicitly and :func:`chunks`
reads a file's chunk types back so that the claim is checked on every file written.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The only chunk types an exported file may hold (PLTE is never written: grey or RGB only).
CRITICAL = ("IHDR", "IDAT", "IEND")


class PngError(ValueError):
    """Not a PNG, or a PNG with more than pixels in it."""


def encode(pixels: np.ndarray) -> bytes:
    """``pixels`` (rows x columns grey, uint8 or uint16; or rows x columns x 3 uint8 RGB) as a
    PNG with critical chunks only."""
    if pixels.dtype == np.uint16 and pixels.ndim == 2:
        image = Image.fromarray(np.ascontiguousarray(pixels, dtype="<u2"))  # mode I;16
    elif pixels.dtype == np.uint8 and (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        image = Image.fromarray(pixels)
    else:
        raise PngError(f"cannot write {pixels.dtype} pixels of shape {pixels.shape} as PNG")
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6, pnginfo=None, icc_profile=None, exif=b"")
    data = buf.getvalue()
    extra = [c for c in chunks(data) if c not in CRITICAL]
    if extra:  # a Pillow that starts adding chunks must not go unnoticed
        raise PngError(f"the PNG encoder added ancillary chunks {extra}")
    return data


def chunks(data: bytes) -> list[str]:
    """The chunk types of a PNG file, in order; :class:`PngError` when it is not a sound PNG."""
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG file")
    out, pos = [], len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise PngError("truncated chunk header")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise PngError(f"chunk {kind!r} is truncated or corrupt")
        out.append(kind.decode("latin-1"))
        pos += 12 + length
    return out
