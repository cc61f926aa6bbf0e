"""Clean Graphics Option (PS3.15 E.3.3, code 113103): overlays, curves and presentation-state text.

Overlay planes (groups 6000-601E) can carry names, IDs and dates as well as outlines and
arrows. Each overlay bitmap is read by the same text detector as the pixels
(:mod:`.text_detection`); the text lines it finds are erased from the bitmap and the rest of the
overlay is kept. An overlay that cannot be read that way (multi-frame, a bitmap that does not
match its declared size, the detector unavailable) is removed whole, as is every retired curve
(5000-501E). Text objects in presentation states' Graphic Annotation Sequence are removed;
graphic objects (lines, ROIs) stay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .masks import Box

CURVE_GROUPS, OVERLAY_GROUPS = 0x5000, 0x6000
OVERLAY_DATA = 0x3000


@dataclass(frozen=True)
class OverlayOutcome:
    """What happened to one overlay plane: ``action`` is ``"text masked"`` (the text lines'
    bits cleared, the overlay kept), ``"no text found"`` (kept unchanged) or ``"removed"`` (the
    whole group, ``reason`` says why)."""

    group: str  # "6000"
    action: str
    text_regions: list[Box] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GraphicsReport:
    overlays: list[OverlayOutcome]
    curve_elements_removed: int
    text_objects_removed: int


def overlay_groups(ds: Dataset) -> list[int]:
    """The overlay groups of ``ds`` that hold an Overlay Data bitmap."""
    return sorted({e.tag.group for e in ds if (e.tag.group & 0xFF01) == OVERLAY_GROUPS
                   and e.tag.element == OVERLAY_DATA})


def _remove_group(ds: Dataset, group: int) -> None:
    for tag in [e.tag for e in ds if e.tag.group == group]:
        del ds[tag]


def _clean_overlay(ds: Dataset, group: int) -> OverlayOutcome:
    from pydicom.pixels.utils import pack_bits

    from .text_detection import TextDetectionError, find_text_regions
    name = f"{group:04X}"
    try:
        frames = ds.get((group, 0x0015))  # Number of Frames in Overlay
        if frames is not None and int(frames.value or 1) > 1:
            raise ValueError("multi-frame overlay")
        bits = np.array(ds.overlay_array(group), dtype=np.uint8)
        if bits.ndim != 2:
            raise ValueError("multi-frame overlay")
        regions = find_text_regions(bits * 255) if bits.any() else None
    except (TextDetectionError, ValueError, TypeError, AttributeError, KeyError) as exc:
        _remove_group(ds, group)
        return OverlayOutcome(name, "removed", reason=f"overlay cannot be read for text ({type(exc).__name__}: {exc})"[:200])
    if regions is None or not regions.boxes:
        return OverlayOutcome(name, "no text found")
    for x0, y0, x1, y1 in regions.boxes:
        bits[y0:y1, x0:x1] = 0
    ds[group, OVERLAY_DATA].value = pack_bits(bits)
    return OverlayOutcome(name, "text masked", list(regions.boxes))


def clean_overlays(ds: Dataset) -> list[OverlayOutcome]:
    """Erase the text lines of every overlay bitmap of ``ds`` in place, or remove the overlay
    when it cannot be read (see the module docstring). Other attributes of an overlay group
    (description, label, comments) are left to the header rules."""
    return [_clean_overlay(ds, g) for g in overlay_groups(ds)]


def clean_graphics(ds: Dataset) -> GraphicsReport:
    """Clean overlays (text erased, see :func:`clean_overlays`), remove curves and
    presentation-state text objects, in place."""
    overlays = clean_overlays(ds)
    curves = [e.tag for e in ds if (e.tag.group & 0xFF01) == CURVE_GROUPS]
    for tag in curves:
        del ds[tag]
    texts = 0
    annotations = ds.get("GraphicAnnotationSequence")
    if annotations is not None:
        kept = []
        for item in annotations:
            texts += len(item.get("TextObjectSequence", []))
            if "TextObjectSequence" in item:
                del item.TextObjectSequence
            if item.get("GraphicObjectSequence"):
                kept.append(item)
        ds.GraphicAnnotationSequence = kept
    return GraphicsReport(overlays, len(curves), texts)
