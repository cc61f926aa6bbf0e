"""The retired Explicit VR Big Endian transfer syntax (PS3.5 A.3, retired in 2004), converted to
Explicit VR Little Endian so that it can be de-identified and written like any other instance.

Numbers (US, SS, UL, SL, FL, FD, AT, ...) are decoded from big endian by pydicom and re-encoded
by the writer. Values of the "other" VRs are byte strings in the file's byte order: each is
swapped per word of its VR (PS3.5 7.3): OW 2 bytes, OF and OL 4, OD and OV 8; OB is a string of
bytes and stays as it is. Native Pixel Data is swapped per pixel when Bits Allocated is 16, 32 or
64 (as pydicom decodes it, OB included, which some writers used for them), per 16-bit word when
it is 8 in OW (the standard packs two 8-bit pixels in a word), and left as it is in OB otherwise. UN values carry no word size: they are left as read (the table removes private
and unknown attributes anyway).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

#: Bytes per word of each VR whose value pydicom keeps as bytes in the file's byte order.
WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
PIXEL_VRS = ("OB", "OW")
PIXEL_DATA = 0x7FE00010
CONVERSION_NOTE = "converted from Explicit VR Big Endian (retired) to Explicit VR Little Endian"


def is_big_endian(ds: Dataset) -> bool:
    return getattr(ds, "original_encoding", (None, True))[1] is False


def _swapped(value: bytes, size: int) -> bytes:
    usable = len(value) - len(value) % size  # a stray odd byte (malformed) is kept as read
    words = np.frombuffer(value, dtype=f">u{size}", count=usable // size)
    return words.astype(f"<u{size}").tobytes() + value[usable:]


def to_little_endian(ds: Dataset) -> None:
    """Convert ``ds`` (read from big endian data), every sequence item included, in place."""
    stack = [ds]
    while stack:
        dataset = stack.pop()
        for tag in list(dataset.keys()):
            elem = dataset[tag]  # decodes a raw element: numbers become values, VRs get resolved
            if elem.VR == "SQ":
                stack.extend(elem.value or ())
            elif isinstance(elem.value, bytes) and elem.value:
                size = WORD_SIZE.get(elem.VR, 1)
                if tag == PIXEL_DATA and elem.VR in PIXEL_VRS:
                    size = max(size, int(dataset.get("BitsAllocated") or 0) // 8)
                if size > 1:
                    elem.value = _swapped(elem.value, size)
        dataset.set_original_encoding(False, True, dataset.original_character_set)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == ExplicitVRBigEndian:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
