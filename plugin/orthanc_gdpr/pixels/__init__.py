"""Pixel de-identification: Clean Pixel Data, Clean Graphics and Clean Recognizable Visual
Features (PS3.15 E.3.1-E.3.3), plus the detection of report-bearing objects.

Entry points for the header engine and the CLI:

* :func:`clean_pixel_data` masks burned-in text in place and returns a :class:`PixelReport`;
* :func:`is_report_bearing` says why an instance is a report (to drop or clean it);
* :func:`deface_volume` removes the face from a head CT/MR series;
* :func:`clean_overlays` erases the text of overlay planes (removes those it cannot read);
  :func:`clean_graphics` does that, removes curves and presentation-state text;
* :func:`previews.previews` writes before/after PNGs for a person's sign-off;
* :func:`text_detection.find_text_regions` finds the text lines in one image (also used to
  check exported images for burned-in text).

Plain Python (numpy, pydicom, Pillow, scipy, OpenCV, onnxruntime): nothing here imports ``orthanc``.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from . import cores
from .codecs import CodecError, black_value, decode, encode
from .graphics import GraphicsReport, OverlayOutcome, clean_graphics, clean_overlays
from .masks import Box, MaskRuleError, MaskRules
from .reports import is_report_bearing
from .ultrasound import outside_regions

__all__ = ["PixelCleaningError", "PixelReport", "MaskRules", "MaskRuleError", "DefaceReport", "DefaceError",
           "GraphicsReport", "clean_pixel_data", "is_report_bearing", "deface_volume", "clean_graphics",
           "clean_overlays", "OverlayOutcome",
           "TEXT_CHECKED_MODALITIES"]

#: Loaded on first use: defacing and OCR pull in SciPy, which the header-only engine never needs.
_LAZY = {"DefaceError": ".deface", "DefaceReport": ".deface", "deface_volume": ".deface"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The modalities whose images are checked for burned-in text by default: all of these, and any
#: other modality too (a profile may narrow the list, with a stated purpose).
TEXT_CHECKED_MODALITIES = ("CT", "MR", "DX", "CR", "MG", "PT", "NM", "RF", "XA", "US", "SC", "OT", "ES", "XC")
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
CLEAN_PIXEL_DATA_CODE = ("113101", "DCM", "Clean Pixel Data Option")
#: Frames compared to find the static layer of a cine (text that stays while the image moves).
STATIC_SAMPLE = 16


class PixelCleaningError(ValueError):
    """The instance's pixels cannot be cleaned: hold the instance back."""


@dataclass
class PixelReport:
    """What was masked, and how; never the text read (only boxes and counts)."""
    frames: int
    boxes: list[Box] = field(default_factory=list)  # masked on every frame, (x0, y0, x1, y1) end-exclusive
    methods: list[str] = field(default_factory=list)  # "mask-rule:<name>", "us-regions", "text-detector"
    masked_pixels: int = 0  # per frame
    #: the text lines the detector found (padded, end-exclusive boxes; also in ``boxes``)
    text_regions: list[Box] = field(default_factory=list)
    text_region_count: int = 0
    #: how text was looked for: method, model version, images read, candidates, rejected, ms
    text_detection: dict[str, Any] | None = None
    transfer_syntax: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked_for_text(ds: Dataset, modalities: frozenset[str] | None) -> bool:
    """Every image by default (``modalities`` None); else those modalities and secondary captures.
    BurnedInAnnotation is never trusted: absent or NO does not prevent the check, YES forces it."""
    return (modalities is None
            or str(ds.get("Modality", "")).upper() in modalities
            or str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX)
            or str(ds.get("BurnedInAnnotation", "")).upper() == "YES")


def _as_seen(ds: Dataset, frame: np.ndarray) -> np.ndarray:
    """A frame as a person sees it: MONOCHROME1 inverted, palette colour through its LUT."""
    photometric = ds.get("PhotometricInterpretation")
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut
        return apply_color_lut(frame, ds)
    if photometric == "MONOCHROME1":
        f = frame.astype(np.int64)
        return int(f.max()) + int(f.min()) - f
    return frame


def _text_images(ds: Dataset, frames: np.ndarray) -> list[np.ndarray]:
    """The distinct images to read: first, middle and last frames and, for cines, the static
    layer (pixels equal on sampled frames; moving pixels black)."""
    n = frames.shape[0]
    images = [_as_seen(ds, frames[i]) for i in sorted({0, n // 2, n - 1})]
    if n > 1:
        sample = frames[np.linspace(0, n - 1, min(n, STATIC_SAMPLE)).astype(int)]
        moving = np.any(sample != sample[0], axis=0)
        if moving.ndim == 3:
            moving = moving.any(axis=-1)
        static = images[0].copy()
        static[moving] = static.min()
        images.append(static)
    distinct = {hashlib.sha1(im.tobytes()).digest(): im for im in images}
    return list(distinct.values())


def _add_method_code(ds: Dataset) -> None:
    value, scheme, meaning = CLEAN_PIXEL_DATA_CODE
    items = ds.get("DeidentificationMethodCodeSequence") or []
    if any(i.get("CodeValue") == value for i in items):
        return
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    ds.DeidentificationMethodCodeSequence = list(items) + [item]


def _find_text(ds: Dataset, frames: np.ndarray) -> tuple[list[Box], dict[str, Any]]:
    """The text regions of the images of :func:`_text_images` (read in parallel, on this process's
    share of the cores), and how they
    were found (method, model version, counts, milliseconds)."""
    from .text_detection import METHOD, TextDetectionError, find_text_regions
    start = time.perf_counter()
    images = _text_images(ds, frames)
    try:
        with ThreadPoolExecutor(max_workers=min(len(images), cores.threads())) as pool:
            findings = list(pool.map(find_text_regions, images))
    except TextDetectionError as exc:
        raise PixelCleaningError(f"text detection: {exc}") from exc
    boxes = sorted({b for f in findings for b in f.boxes})
    return boxes, {"method": METHOD, "model": findings[0].model, "images_read": len(images),
                   "candidates": sum(f.candidates for f in findings), "rejected": sum(f.rejected for f in findings),
                   "ms": round((time.perf_counter() - start) * 1000, 1)}


def clean_pixel_data(ds: Dataset, *, ocr: bool = True, masks: MaskRules | None = None,
                     reencode: str = "lossless", modalities: frozenset[str] | None = None) -> PixelReport:
    """Mask burned-in text in ``ds`` in place: the rectangles of matching mask rules, everything
    outside the ultrasound regions, and (``ocr``; every image, or only those of ``modalities``)
    every text line the text detector finds (:mod:`.text_detection`). Masked pixels become black on
    every frame. The pixels are written back (``reencode``: ``"lossless"`` keeps the syntax when
    it is native or lossless and encodable here, else RLE Lossless; ``"uncompressed"`` writes
    Explicit VR Little Endian) with the pixel-module attributes fixed, Burned In Annotation NO
    and code 113101 added. Unchanged pixels keep their original encoding when nothing is masked
    and ``reencode`` is ``"lossless"``. Raises :class:`PixelCleaningError` when it cannot."""
    if "PixelData" not in ds:
        raise PixelCleaningError("no Pixel Data (float or double pixel data is not supported)")
    try:
        frames = decode(ds)
        rules = masks if masks is not None else MaskRules.load()
    except (CodecError, MaskRuleError) as exc:
        raise PixelCleaningError(str(exc)) from exc
    report = PixelReport(frames=frames.shape[0])
    rows, cols = frames.shape[1:3]
    masked = np.zeros((rows, cols), bool)
    rule_boxes, names = rules.boxes_for(ds)
    report.methods += [f"mask-rule:{n}" for n in names]
    outside = outside_regions(ds) if str(ds.get("Modality", "")).upper() == "US" else None
    if outside is not None:
        masked |= outside
        report.methods.append("us-regions")
    boxes = list(rule_boxes)
    if ocr and _checked_for_text(ds, modalities):
        report.text_regions, report.text_detection = _find_text(ds, frames)
        report.text_region_count = len(report.text_regions)
        report.methods.append(report.text_detection["method"])
        boxes += report.text_regions
    for x0, y0, x1, y1 in boxes:
        masked[y0:y1, x0:x1] = True
    report.boxes, report.masked_pixels = boxes, int(masked.sum())
    if masked.any() or reencode != "lossless":
        frames = np.array(frames)  # pydicom's array may be read-only
        frames[:, masked] = black_value(ds)
        try:
            report.transfer_syntax = str(encode(ds, frames, reencode))
        except CodecError as exc:
            raise PixelCleaningError(str(exc)) from exc
    else:
        report.transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
    ds.BurnedInAnnotation = "NO"
    _add_method_code(ds)
    return report
