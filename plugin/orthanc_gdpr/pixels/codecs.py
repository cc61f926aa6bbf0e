"""Decoding pixel data to frames and writing masked frames back, losslessly or uncompressed.

Decoding goes through pydicom's pixel handlers (pylibjpeg, openjpeg, RLE; deflate is read by
pydicom itself), for every transfer syntax they support. Colour frames come back as RGB
whatever the stored photometric interpretation (YBR_FULL, YBR_FULL_422, YBR_RCT, YBR_ICT).

Writing back uses ``Dataset.set_pixel_data`` (which fixes Rows, Columns, Samples per Pixel,
Photometric Interpretation, Planar Configuration, Bits Allocated/Stored, High Bit, Pixel
Representation and Number of Frames), then, for ``reencode="lossless"``, compresses with an
encoder that pydicom has here. Lossy Image Compression is never reset: an image that was lossy
once stays flagged.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    UID,
)

from .jpeg_repair import repaired_frames

REENCODE_MODES = ("lossless", "uncompressed")
#: Native syntaxes: written back as Explicit VR Little Endian (Deflated stays deflated).
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)
#: Lossless syntaxes we re-encode into when the input had one of them; anything else compressed
#: (lossy JPEG, JPEG lossless, JPEG-LS without an encoder) becomes RLE Lossless.
LOSSLESS_ENCODABLE = (RLELossless, JPEG2000Lossless, JPEGLSLossless)


class CodecError(ValueError):
    """The pixel data cannot be decoded or written back."""


def decode(ds: Dataset) -> np.ndarray:
    """All frames as one array ``(frames, rows, columns[, samples])``, colour as RGB.

    A sequential JPEG that the decoders refuse for a malformed scan header is decoded from
    repaired frames (:mod:`.jpeg_repair`); ``ds`` keeps its own Pixel Data."""
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for missing handlers and bad data
        repaired = repaired_frames(ds)
        if repaired is None:
            raise CodecError(f"cannot decode {ds.file_meta.TransferSyntaxUID.name}: {exc}") from exc
        original = ds.PixelData
        ds.PixelData = encapsulate(repaired)
        try:
            arr = ds.pixel_array
        except Exception as again:  # noqa: BLE001 - the repair did not help: the first error says why
            raise CodecError(f"cannot decode {ds.file_meta.TransferSyntaxUID.name}: {exc}") from again
        finally:
            ds.PixelData = original
    frames = int(ds.get("NumberOfFrames") or 1)
    return arr if frames > 1 else arr[None, ...]


def native_grey(ds: Dataset) -> np.ndarray | None:
    """The frames of uncompressed little-endian grey Pixel Data (8 or 16 bits allocated) as
    :func:`decode` gives them, read without a decoder: ``(frames, rows, columns)``, the bits above
    Bits Stored cleared (sign-extended for signed data). Read-only: a view of Pixel Data where no
    bit needs clearing. None for anything else, which :func:`decode` handles.

    For display: pydicom's general path spends about 0.3 ms of interpreter time on a 512x512
    slice, holding the GIL, where this takes a few microseconds."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax not in NATIVE or syntax == ExplicitVRBigEndian or "PixelData" not in ds:
        return None
    if int(ds.get("SamplesPerPixel", 1)) != 1 or ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    allocated, stored = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    if allocated not in (8, 16) or not 1 <= stored <= allocated:
        return None
    count, rows, columns = int(ds.get("NumberOfFrames") or 1), int(ds.Rows), int(ds.Columns)
    data = ds.PixelData
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    if len(data) < count * rows * columns * dtype.itemsize:
        return None
    arr = np.frombuffer(data, dtype, count * rows * columns).reshape(count, rows, columns)
    if stored == allocated:
        return arr
    unused = allocated - stored
    if signed:
        return (arr << unused) >> unused  # arithmetic shift: the sign bit of Bits Stored extended
    return arr & ((1 << stored) - 1)


def _photometric(ds: Dataset) -> str:
    pi = str(ds.PhotometricInterpretation)
    return "RGB" if int(ds.SamplesPerPixel) == 3 else pi


def black_value(ds: Dataset) -> int:
    """The stored value that displays as black under any window: the smallest value Bits Stored
    can hold (the largest for MONOCHROME1); 0 for colour and palette images."""
    if int(ds.SamplesPerPixel) == 3 or ds.PhotometricInterpretation == "PALETTE COLOR":
        return 0
    bits, signed = int(ds.BitsStored), int(ds.get("PixelRepresentation", 0)) == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return high if ds.PhotometricInterpretation == "MONOCHROME1" else low


def _encodable(syntax: UID, ds: Dataset) -> bool:
    try:
        encoder = get_encoder(syntax)
    except NotImplementedError:
        return False
    if not encoder.is_available:
        return False
    if syntax == RLELossless:  # pydicom's RLE encoders take 8 and 16 bits (15 segments at most)
        return int(ds.BitsAllocated) <= 16 and int(ds.SamplesPerPixel) * int(ds.BitsAllocated) // 8 <= 15
    return int(ds.BitsStored) <= (24 if syntax == JPEG2000Lossless else 16)


def target_syntax(ds: Dataset, reencode: str) -> UID:
    """The transfer syntax the masked pixels are written in (see the module docstring)."""
    if reencode not in REENCODE_MODES:
        raise CodecError(f"reencode must be one of {REENCODE_MODES}, not {reencode!r}")
    source = ds.file_meta.TransferSyntaxUID
    if reencode == "uncompressed":
        return ExplicitVRLittleEndian
    if source in NATIVE:
        return DeflatedExplicitVRLittleEndian if source == DeflatedExplicitVRLittleEndian else ExplicitVRLittleEndian
    for syntax in ((source,) if source in LOSSLESS_ENCODABLE else ()) + (RLELossless,):
        if _encodable(syntax, ds):
            return syntax
    return ExplicitVRLittleEndian


def _set_wide_pixel_data(ds: Dataset, arr: np.ndarray) -> None:
    """What ``set_pixel_data`` does, for the 32-bit samples it does not take: native little
    endian Pixel Data, colour as RGB (as decoded), interleaved; the other pixel-module values
    (Bits Allocated/Stored, High Bit, Pixel Representation, frames) describe it already."""
    ds.PhotometricInterpretation = _photometric(ds)
    if int(ds.SamplesPerPixel) > 1:
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OW"
    ds["PixelData"].is_undefined_length = False


def encode(ds: Dataset, frames: np.ndarray, reencode: str) -> UID:
    """Write ``frames`` into ``ds`` in the syntax :func:`target_syntax` picks; returns it."""
    target = target_syntax(ds, reencode)
    arr = frames if frames.shape[0] > 1 else frames[0]
    try:
        if not ds.file_meta.TransferSyntaxUID.is_little_endian:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        if arr.dtype.itemsize <= 2:
            ds.set_pixel_data(arr, _photometric(ds), int(ds.BitsStored), generate_instance_uid=False)
        else:
            _set_wide_pixel_data(ds, arr)
        if target == DeflatedExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = target
        elif target != ExplicitVRLittleEndian:
            ds.compress(target, arr, generate_instance_uid=False)
    except Exception as exc:  # encoder plugins raise RuntimeError, ValueError, ...
        raise CodecError(f"cannot write pixel data as {target.name}: {exc}") from exc
    return target
