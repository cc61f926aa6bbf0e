"""Before/after images for the review page, rendered here (no script in the browser).

A frame is windowed by :mod:`orthanc_gdpr.pixels.render` (the instance's own window, or a named
CT preset), the boxes Clean Pixel Data masked are outlined, and the picture is scaled to at most
:data:`MAX_SIDE` pixels and sent as PNG. Before and after use the same window, so a mask shows as
a mask, not as a change of contrast.
"""
from __future__ import annotations

import io

from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from orthanc_gdpr.pixels.render import CT_PRESETS, choose_window, frames, modality_values, render

from .inspection import Inspected

MAX_SIDE = 512
WINDOWS = ("default", *CT_PRESETS)
OUTLINE = (255, 40, 40)


class ImageUnavailable(LookupError):
    """No picture for this side (no pixel data, or the instance was held back)."""


def frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def render_png(inspected: Inspected, side: str, frame: int = 0, window: str = "default") -> bytes:
    """PNG of ``frame`` of the original (``side="before"``) or de-identified (``"after"``) instance."""
    ds = inspected.original if side == "before" else inspected.after
    if ds is None or "PixelData" not in ds:
        raise ImageUnavailable("no pixel data to show")
    try:
        decoded = frames(ds)
    except Exception as e:  # noqa: BLE001 - undecodable pixels: say so, never crash the page
        raise ImageUnavailable(f"pixel data cannot be decoded ({type(e).__name__})") from None
    index = min(max(frame, 0), decoded.shape[0] - 1)
    pixels = decoded[index]
    chosen = None
    if pixels.ndim == 2:  # grey: the original frame's window for both sides
        reference = pixels if side == "before" else frames(inspected.original)[index]
        chosen = choose_window(inspected.original, modality_values(inspected.original, reference), window)
    image = render(ds, pixels, chosen).convert("RGB")
    boxes = (inspected.report.pixels or {}).get("boxes", []) if inspected.report is not None else []
    if boxes:
        draw = ImageDraw.Draw(image)
        width = max(2, image.width // 256)
        for x0, y0, x1, y1 in boxes:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=OUTLINE, width=width)
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False, compress_level=3)
    return out.getvalue()
