"""Pixel de-identification: Clean Pixel Data, Clean Graphics and Clean Recognizable Visual
Features (PS3.15 E.3.1-E.3.3), plus the detection of report-bearing objects.

Entry points for the header engine and the CLI:

* :func:`clean_pixel_data` masks burned-in text in place and returns a :class:`PixelReport`;
* :func:`is_report_bearing` says why an instance is a report (to drop or clean it);
* :func:`deface_volume` removes the face from a head CT/MR series;
* :func:`clean_graphics` removes overlays and presentation-state text;
* :func:`previews.previews` writes before/after PNGs for a person's sign-off;
* :func:`at_risk_modalities` reads which modalities get OCR from a configuration.

Plain Python (numpy, pydicom, Pillow, pytesseract, scipy): nothing here imports ``orthanc``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .codecs import CodecError, black_value, decode, encode
from .graphics import GraphicsReport, clean_graphics
from .masks import Box, MaskRuleError, MaskRules
from .reports import is_report_bearing
from .ultrasound import outside_regions

__all__ = ["PixelCleaningError", "PixelReport", "MaskRules", "MaskRuleError", "DefaceReport", "DefaceError",
           "GraphicsReport", "clean_pixel_data", "is_report_bearing", "deface_volume", "clean_graphics",
           "at_risk_modalities", "DEFAULT_OCR_MODALITIES"]

#: Loaded on first use: defacing and OCR pull in SciPy, which the header-only engine never needs.
_LAZY = {"DefaceError": ".deface", "DefaceReport": ".deface", "deface_volume": ".deface"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Modalities whose images often carry burned-in text (PS3.15 E.3.1); DX and CR when configured.
DEFAULT_OCR_MODALITIES = frozenset({"US", "SC", "OT", "XA", "ES", "XC"})
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
CLEAN_PIXEL_DATA_CODE = ("113101", "DCM", "Clean Pixel Data Option")
#: Frames compared to find the static layer of a cine (text that stays while the image moves).
STATIC_SAMPLE = 16


class PixelCleaningError(ValueError):
    """The instance's pixels cannot be cleaned: hold the instance back."""


@dataclass
class PixelReport:
    """What was masked, and how; never the text read (only counts)."""
    frames: int
    boxes: list[Box] = field(default_factory=list)  # masked on every frame, (x0, y0, x1, y1) end-exclusive
    methods: list[str] = field(default_factory=list)  # "mask-rule:<name>", "us-regions", "ocr"
    masked_pixels: int = 0  # per frame
    ocr_images: int = 0
    ocr_words: int = 0
    tesseract_runs: int = 0
    ocr_ms: float = 0.0
    transfer_syntax: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_risk_modalities(config: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The modalities whose images get OCR: ``config["OcrModalities"]`` (a list replacing the
    default :data:`DEFAULT_OCR_MODALITIES`), plus ``config["OcrAlsoModalities"]`` (e.g. ``["DX", "CR"]``)."""
    config = config or {}
    base = config.get("OcrModalities")
    modalities = set(DEFAULT_OCR_MODALITIES if base is None else (str(m).upper() for m in base))
    modalities |= {str(m).upper() for m in config.get("OcrAlsoModalities", ())}
    return frozenset(modalities)


def _needs_ocr(ds: Dataset, modalities: frozenset[str]) -> bool:
    """BurnedInAnnotation is not trusted: YES forces OCR, absent or NO does not prevent it."""
    return (str(ds.get("Modality", "")).upper() in modalities
            or str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX)
            or str(ds.get("BurnedInAnnotation", "")).upper() == "YES")


def _ocr_images(frames: np.ndarray) -> list[np.ndarray]:
    """The distinct grey images to read: first, middle and last frames and, for cines, the
    static layer (pixels equal on sampled frames; moving pixels black)."""
    from .ocr import to_gray8
    n = frames.shape[0]
    images = [to_gray8(frames[i]) for i in sorted({0, n // 2, n - 1})]
    if n > 1:
        sample = frames[np.linspace(0, n - 1, min(n, STATIC_SAMPLE)).astype(int)]
        moving = np.any(sample != sample[0], axis=0)
        if moving.ndim == 3:
            moving = moving.any(axis=-1)
        static = images[0].copy()
        static[moving] = 0
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


def clean_pixel_data(ds: Dataset, *, ocr: bool = True, masks: MaskRules | None = None,
                     reencode: str = "lossless", modalities: frozenset[str] | None = None) -> PixelReport:
    """Mask burned-in text in ``ds`` in place: the rectangles of matching mask rules, everything
    outside the ultrasound regions, and (``ocr`` and an at-risk modality, see
    :func:`at_risk_modalities`) every box of text Tesseract finds. Masked pixels become black on
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
    if ocr and _needs_ocr(ds, modalities or DEFAULT_OCR_MODALITIES):
        from .ocr import OcrUnavailable, find_text
        start = time.perf_counter()
        images = _ocr_images(frames)
        try:
            with ThreadPoolExecutor(max_workers=min(len(images), os.cpu_count() or 1)) as pool:
                findings = list(pool.map(find_text, images))
        except OcrUnavailable as exc:
            raise PixelCleaningError(str(exc)) from exc
        report.methods.append("ocr")
        report.ocr_images, report.ocr_ms = len(images), (time.perf_counter() - start) * 1000
        report.ocr_words = sum(f.words for f in findings)
        report.tesseract_runs = sum(f.tesseract_runs for f in findings)
        boxes += sorted({b for f in findings for b in f.boxes})
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
