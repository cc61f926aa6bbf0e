"""Before/after images for the review page, rendered here (no script in the browser).

A frame is windowed by :mod:`orthanc_gdpr.pixels.render` (the instance's own window, or a named
CT preset), the boxes Clean Pixel Data masked are outlined, and the picture is scaled to at most
:data:`MAX_SIDE` pixels and sent as a JPEG of high quality (4:4:4, quality 92: twenty times
faster to encode than PNG, and sharp enough to read burned-in text). Before and after use the
same window, so a mask shows as a mask, not as a change of contrast.
"""
from __future__ import annotations

import io

import numpy.ma  # noqa: F401 - np.percentile imports it on first use: at start-up, not in a request
from PIL import Image, ImageDraw

from orthanc_gdpr.pixels.render import CT_PRESETS, frames, render, sampled_window

from .inspection import Inspected

MAX_SIDE = 512
WINDOWS = ("default", *CT_PRESETS)
OUTLINE = (255, 40, 40)
Image.preinit()  # Pillow's common format plugins, loaded at start-up rather than on the first picture


class ImageUnavailable(LookupError):
    """No picture for this side (no pixel data, or the instance was held back)."""


def _frames(inspected: Inspected, side: str):
    """Decoded frames of one side, decoded once per cached instance."""
    key = ("frames", side)
    if key not in inspected.pictures:
        ds = inspected.original if side == "before" else inspected.after
        try:
            inspected.pictures[key] = frames(ds)
        except Exception as e:  # noqa: BLE001 - undecodable pixels: say so, never crash the page
            raise ImageUnavailable(f"pixel data cannot be decoded ({type(e).__name__})") from None
    return inspected.pictures[key]


def render_picture(inspected: Inspected, side: str, frame: int = 0, window: str = "default") -> bytes:
    """JPEG of ``frame`` of the original (``side="before"``) or de-identified (``"after"``) instance."""
    ds = inspected.original if side == "before" else inspected.after
    if ds is None or "PixelData" not in ds:
        raise ImageUnavailable("no pixel data to show")
    decoded = _frames(inspected, side)
    index = min(max(frame, 0), decoded.shape[0] - 1)
    key = ("jpeg", side, index, window)
    if key in inspected.pictures:
        return inspected.pictures[key]
    pixels = decoded[index]
    chosen = None
    if pixels.ndim == 2:  # grey: the original frame's window for both sides
        chosen = inspected.pictures.get(("window", index, window))
        if chosen is None:
            chosen = sampled_window(inspected.original, _frames(inspected, "before")[index], window)
            inspected.pictures[("window", index, window)] = chosen
    image = render(ds, pixels, chosen)
    boxes = (inspected.report.pixels or {}).get("boxes", []) if inspected.report is not None else []
    if boxes:
        image = image.convert("RGB")
        draw = ImageDraw.Draw(image)
        width = max(2, image.width // 256)
        for x0, y0, x1, y1 in boxes:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=OUTLINE, width=width)
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, subsampling=0)
    inspected.pictures[key] = out.getvalue()
    return inspected.pictures[key]
