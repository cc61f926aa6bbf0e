"""Before/after PNG previews and the list of masked boxes, for a person's visual sign-off."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from .masks import Box
from .render import Window, frames, to_8bit


def _first_frame(ds: Dataset, window: Window | None = None) -> tuple[Image.Image, Window | None]:
    pixels, used = to_8bit(ds, frames(ds)[0], window)
    return Image.fromarray(pixels).convert("RGB"), used


#: Outline colours on the before image: text lines the detector found, other masked boxes.
TEXT_REGION_COLOUR, MASK_COLOUR = (255, 210, 0), (255, 0, 0)


def previews(before_ds: Dataset, after_ds: Dataset, boxes: list[Box], out_dir: Path,
             text_regions: list[Box] = ()) -> list[Path]:
    """Write ``<SOP Instance UID of after>-before.png`` (the detected ``text_regions`` outlined
    in yellow, the other masked ``boxes`` in red), ``-after.png`` and ``-boxes.json`` into
    ``out_dir``; returns their paths. The before image shows the original pixels: keep
    ``out_dir`` where only the reviewer can read it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = str(after_ds.get("SOPInstanceUID", "instance"))
    before, window = _first_frame(before_ds)
    draw = ImageDraw.Draw(before)
    detected = set(text_regions)
    for box in [b for b in boxes if b not in detected] + list(text_regions):
        x0, y0, x1, y1 = box
        colour = TEXT_REGION_COLOUR if box in detected else MASK_COLOUR
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=2)
    paths = [out_dir / f"{stem}-before.png", out_dir / f"{stem}-after.png", out_dir / f"{stem}-boxes.json"]
    before.save(paths[0])
    _first_frame(after_ds, window)[0].save(paths[1])  # the same window, so masks show as masks
    paths[2].write_text(json.dumps({"boxes": [list(b) for b in boxes],
                                    "text_regions": [list(b) for b in text_regions]}, indent=1))
    return paths
