"""Ultrasound: everything outside the Sequence of Ultrasound Regions is blanked.

Scanners put the patient's name, ID and the date in the banner and margins, outside the regions
that hold image data (PS3.3 C.8.5.5). The regions' bounding boxes are kept, the rest is masked.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset


def region_boxes(ds: Dataset) -> list[tuple[int, int, int, int]]:
    """The ``(x0, y0, x1, y1)`` (end-exclusive) boxes of the ultrasound regions, clipped to the image."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    boxes = []
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        try:
            x0, y0 = int(region.RegionLocationMinX0), int(region.RegionLocationMinY0)
            x1, y1 = int(region.RegionLocationMaxX1) + 1, int(region.RegionLocationMaxY1) + 1
        except AttributeError:
            continue
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(cols, x1), min(rows, y1)
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return boxes


def outside_regions(ds: Dataset) -> np.ndarray | None:
    """Boolean ``(rows, columns)`` map of what lies outside every region, or None without regions."""
    boxes = region_boxes(ds)
    if not boxes:
        return None
    outside = np.ones((int(ds.Rows), int(ds.Columns)), bool)
    for x0, y0, x1, y1 in boxes:
        outside[y0:y1, x0:x1] = False
    return outside
