"""Criterion 2: a few individual slices of one series, as plain PNG files.

:func:`export_slices` checks, in this order, and refuses at the first failure with nothing
written: the clinician's attestation is there; the selection is not a whole volume (the
:class:`~.limits.Limits` in force); every slice exists, is one frame and is an image; no slice
shows burned-in text (or, when the user asked for it, the text is masked and the record says
where). The PNG files get random names in a staging directory, which becomes OUT once every
check passed; the decision record is then written through ``record`` (the audit chain), and an
export whose record cannot be written is removed again: nothing is released unrecorded.

Formats: ``png8`` is the windowed picture a person sees (Modality LUT, the stated window,
MONOCHROME1 inverted; colour as it is); ``png16`` holds the stored grey values themselves, shifted
by 2^(Bits Stored - 1) when they are signed, so that modality values are
``(png - offset) * slope + intercept`` (all stated in the record, none in the file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ..pixels import render
from ..pixels.codecs import CodecError
from ..pixels.text_detection import to_display8
from . import burned_in, png
from .decision import ATTESTATION, SLICES, Decision
from .limits import Limits
from .refusal import Refused
from .selection import SliceRef
from .series import Member, Series, not_an_image
from .staging import Staging

FORMATS = ("png8", "png16")


@dataclass(frozen=True)
class SliceRequest:
    """What the user asked for, and who answers for it."""
    slices: list[SliceRef]
    decided_by: str
    clinician: str
    statement: str
    format: str = "png8"
    window: render.Window | str | None = None  #: png8: a preset name, a Window, or the image's default
    mask_text: bool = False


@dataclass
class SliceExport:
    out: Path
    decision: Decision
    audit: dict[str, Any]  #: the audit record as stored (seq, hash)


def parse_window(text: str | None) -> render.Window | str | None:
    """``--window``: a preset name (``lung``, ``default``...) or ``CENTER,WIDTH``."""
    if text is None or "," not in text:
        if text not in (None, "default", "auto") and text not in render.CT_PRESETS:
            raise Refused("--window", "unknown-window", f"unknown preset; known: default, "
                          f"{', '.join(render.CT_PRESETS)}, or CENTER,WIDTH")
        return text
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise Refused("--window", "syntax", "give CENTER,WIDTH as two numbers, e.g. 40,400") from None
    if width < 1:
        raise Refused("--window", "syntax", "the width must be at least 1")
    return render.Window(center, width, "custom")


def check_request(request: SliceRequest) -> None:
    """Refuse a request without its attestation or with a bad option, before any data is read."""
    if not request.clinician.strip():
        raise Refused("--clinician", "attestation-required", "name the clinician who attests that the slices "
                      f"show {ATTESTATION} (criterion 2)")
    if not request.statement.strip():
        raise Refused("--statement", "attestation-required", "give the clinician's statement that the slices "
                      f"show {ATTESTATION} (criterion 2)")
    if not request.decided_by.strip():
        raise Refused("--decided-by", "required", "name the person who decides that the export is anonymous")
    if request.format not in FORMATS:
        raise Refused("--format", "unknown-format", f"one of {', '.join(FORMATS)}")


def _resolve(series: Series, refs: list[SliceRef]) -> list[tuple[SliceRef, Member, int]]:
    """(slice, member, frame index from 0) for every asked slice; refuses what does not exist."""
    by_number: dict[int, list[Member]] = {}
    for m in series.members:
        if m.instance_number is not None:
            by_number.setdefault(m.instance_number, []).append(m)
    numbers = sorted(by_number)
    span = f"instance numbers {numbers[0]}-{numbers[-1]}" if numbers else "no instance numbers"
    out = []
    for ref in refs:
        found = by_number.get(ref.instance)
        if not found:
            raise Refused("--slices", "out-of-range", f"slice {ref} is not in the series ({span})")
        if len(found) > 1:
            raise Refused("--slices", "ambiguous", f"{len(found)} instances of the series carry instance number "
                          f"{ref.instance}: the slice cannot be chosen by number")
        member = found[0]
        if ref.frame is None and member.frames > 1:
            raise Refused("--slices", "frame-required", f"instance {ref.instance} has {member.frames} frames: "
                          f"name one as {ref.instance}:FRAME (frames 1-{member.frames})")
        frame = ref.frame or 1
        if frame > member.frames:
            raise Refused("--slices", "out-of-range", f"slice {ref}: instance {ref.instance} has "
                          f"{member.frames} frame(s)")
        out.append((ref, member, frame - 1))
    return out


def _pixels16(ds: Dataset, frame: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    if frame.ndim == 3 or render.is_colour(ds):
        raise Refused("--format", "grey-only", "png16 holds grey images; use png8 for colour")
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    bits = int(ds.get("BitsStored", 16))
    offset = (1 << (bits - 1)) if signed else 0
    values = frame.astype(np.int64) + offset
    if values.min() < 0 or values.max() > 0xFFFF:
        raise Refused("--format", "grey-only", "the stored values do not fit 16 bits")
    mapping = {"values": "stored", "offset": offset, "rescale_slope": float(ds.get("RescaleSlope", 1) or 1),
               "rescale_intercept": float(ds.get("RescaleIntercept", 0) or 0),
               "photometric": str(ds.get("PhotometricInterpretation", ""))}
    return values.astype(np.uint16), mapping


def _render(ds: Dataset, frame: np.ndarray, request: SliceRequest) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """The pixels to write, the 8-bit views the text check reads, and how the pixels were made."""
    view, window = render.to_8bit(ds, frame, request.window)
    how: dict[str, Any] = {"window": window.describe() if window else "none (colour)"}
    if window:
        how.update(window_center=window.center, window_width=window.width)
    if request.format == "png8":
        return view, [view], how
    pixels, mapping = _pixels16(ds, frame)
    return pixels, [view, to_display8(frame)], {**mapping, "text_check_views": ["window", "full range"]}


def _text_check(ref: SliceRef, ds: Dataset, views: list[np.ndarray], mask: bool) -> list[tuple[int, int, int, int]]:
    """The boxes to mask (empty when the slice is clean); refuses a slice with text unless ``mask``."""
    boxes, declared = burned_in.known_regions(ds)
    for view in views:
        boxes += burned_in.text_regions(view)
    boxes = sorted(set(boxes))
    if declared and not boxes:
        raise Refused("--slices", "burned-in-text", f"slice {ref}: the instance declares burned-in annotation "
                      "(Burned In Annotation YES) but the detector cannot locate it: refused")
    if boxes and not mask:
        raise Refused("--slices", "burned-in-text", f"slice {ref}: burned-in text found ({len(boxes)} region(s)); "
                      "choose other slices, or ask for the text to be masked, which the decision record "
                      "then states")
    return boxes


def export_slices(series: Series, request: SliceRequest, out: str | Path, limits: Limits,
                  record: Callable[[Decision], dict[str, Any]]) -> SliceExport:
    """Export the asked slices of ``series`` into ``out`` (see the module docstring); ``record``
    stores the decision (the audit chain) and returns the stored record."""
    check_request(request)
    if series.modality in ("SR", "DOC", "KO", "PR"):
        raise Refused("inputs", "not-an-image", f"the series holds {series.modality} objects, not images")
    limits.check_slice_count(len(request.slices), series.slices)
    chosen = _resolve(series, request.slices)
    outputs, masked = [], []
    with Staging(out) as staging:
        loaded: dict[int, tuple[Dataset, np.ndarray]] = {}
        for ref, member, frame_index in chosen:
            if id(member) not in loaded:
                ds = member.load()
                reason = not_an_image(ds)
                if reason:
                    raise Refused("--slices", "not-an-image", f"slice {ref} is not an image ({reason})")
                try:
                    loaded[id(member)] = ds, render.frames(ds)
                except CodecError as exc:
                    raise Refused("--slices", "undecodable", f"slice {ref}: {exc}") from None
            ds, frames = loaded[id(member)]
            pixels, views, how = _render(ds, frames[frame_index], request)
            boxes = _text_check(ref, ds, views, request.mask_text)
            if boxes:
                pixels = np.array(pixels)
                for x0, y0, x1, y1 in boxes:
                    pixels[y0:y1, x0:x1] = 0
                masked.append({"slice": str(ref), "boxes": [list(b) for b in boxes]})
            entry = staging.write(png.encode(pixels), ".png")
            outputs.append({**entry, "slice": str(ref), "format": request.format,
                            "rows": int(pixels.shape[0]), "columns": int(pixels.shape[1]), **how})
        decision = Decision(
            criterion=2, classification=SLICES, decided_by=request.decided_by, clinician=request.clinician,
            statement=request.statement, source_series=[series.orthanc_id], outputs=outputs,
            limits=limits.to_dict(),
            rationale=(f"{len(outputs)} of {series.slices} slices of one series (at most "
                       f"{limits.max_slices_per_series}, fewer than {100 * limits.max_series_fraction:g} %): "
                       "not a whole volume; PNG files with no ancillary chunk and random names, no DICOM "
                       f"metadata; burned-in text check {'masked the text found' if masked else 'found no text'}; "
                       f"{request.clinician} attests {ATTESTATION}."),
            checks={"burned_in_text": "masked" if masked else "none found", "detector": burned_in.detector(),
                    "masked": masked, "series_slices": series.slices},
            method={"format": request.format, "files": len(outputs)})
        out_dir, stored = staging.release(lambda: record(decision))
        return SliceExport(out_dir, decision, stored)
