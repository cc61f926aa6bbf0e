"""Sequential JPEG streams with a malformed scan header, read as IJG libjpeg reads them.

A sequential DCT scan (JPEG Baseline, JPEG Extended) codes spectral coefficients 0 to 63 with no
successive approximation: its SOS header must say Ss = 0, Se = 63, Ah = Al = 0. Some writers put
Se = 0 (NEMA's NM1_JPLY, pydicom's ``JPEG-lossy.dcm``). IJG libjpeg warns and decodes such a
scan as sequential anyway; the strict decoders pydicom uses refuse it. :func:`repaired_frames`
gives the frames with those three bytes set to what a sequential scan means, so the same
decoders can read them. Nothing else in the stream is touched.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

SEQUENTIAL_JPEG = (JPEGBaseline8Bit, JPEGExtended12Bit)
_SOS = b"\xff\xda"
_SEQUENTIAL_SCAN = b"\x00\x3f\x00"  # Ss = 0, Se = 63, Ah/Al = 0


def _repaired(frame: bytes) -> bytes:
    """``frame`` with every sequential scan header's spectral selection set to 0-63.

    In entropy-coded data a 0xFF byte is followed by 0x00 or a restart marker, so every
    0xFF 0xDA in the stream is a real SOS marker."""
    out = bytearray(frame)
    start = out.find(_SOS)
    while start >= 0 and start + 4 <= len(out):
        end = start + 2 + int.from_bytes(out[start + 2:start + 4], "big")  # marker + segment length
        if end <= len(out) and out[end - 3:end] != _SEQUENTIAL_SCAN:
            out[end - 3:end] = _SEQUENTIAL_SCAN
        start = out.find(_SOS, end)
    return bytes(out)


def repaired_frames(ds: Dataset) -> list[bytes] | None:
    """The frames of a sequential JPEG instance with their scan headers repaired, or None when
    the syntax is not sequential JPEG or nothing needed repair."""
    if ds.file_meta.get("TransferSyntaxUID") not in SEQUENTIAL_JPEG:
        return None
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    repaired = [_repaired(f) for f in frames]
    return repaired if repaired != frames else None
