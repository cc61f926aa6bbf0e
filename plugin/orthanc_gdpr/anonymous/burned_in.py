"""The burned-in text check of a slice: the detector ``clean-pixel-data`` uses, behind one function.

:func:`text_regions` is the only place that calls the text detector, so that a better detector
replaces it here and nowhere else. :func:`known_regions` adds what the headers already say: the
rectangles of matching mask rules, and a Burned In Annotation of YES (which no detector can
overrule: it means the image has text even where none is found).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from ..pixels.masks import Box, MaskRules
from .refusal import Refused

def detector() -> str:
    """Which detector checked the slices, with its models' version (for the decision record)."""
    from ..pixels.text_detection import METHOD, model_version

    return f"{METHOD} {model_version()}"


def text_regions(image: np.ndarray) -> list[Box]:
    """Boxes (x0, y0, x1, y1, end-exclusive) around the text in a grey or RGB image as displayed;
    :class:`Refused` when the detector cannot run (no check, no export)."""
    from ..pixels.text_detection import TextDetectionError, find_text_regions

    try:
        return find_text_regions(image).boxes
    except TextDetectionError as exc:
        raise Refused("--slices", "text-check-unavailable", f"the burned-in text check cannot run ({exc}): "
                      "nothing is exported") from None


def known_regions(ds: Dataset) -> tuple[list[Box], bool]:
    """The mask-rule rectangles for this instance, and whether its header declares burned-in text."""
    boxes, _ = MaskRules.load().boxes_for(ds)
    return list(boxes), str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
