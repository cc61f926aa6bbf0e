"""Clean Graphics Option (PS3.15 E.3.3, code 113103): overlays, curves and presentation-state text.

Overlay planes (groups 6000-601E) and retired curves (5000-501E) can carry names, IDs and
measurements with dates: they are removed whole. Text objects in presentation states'
Graphic Annotation Sequence are removed; graphic objects (lines, ROIs) stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

REPEATING_GROUPS = (0x5000, 0x6000)


@dataclass(frozen=True)
class GraphicsReport:
    overlay_elements_removed: int
    text_objects_removed: int


def clean_graphics(ds: Dataset) -> GraphicsReport:
    """Remove overlays, curves and presentation-state text objects from ``ds`` in place."""
    tags = [e.tag for e in ds if (e.tag.group & 0xFF01) in REPEATING_GROUPS]
    for tag in tags:
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
    return GraphicsReport(len(tags), texts)
