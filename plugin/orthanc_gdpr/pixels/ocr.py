"""Finding burned-in text with Tesseract (Debian ``tesseract-ocr`` through pytesseract).

For one grey image:

1. an *ink map*: thin strokes brighter (on dark surroundings) or darker (on light ones) than
   what surrounds them by more than :data:`CONTRAST` grey levels, without specks smaller than :data:`MIN_SPECK` pixels. Tesseract reads it as black ink on white, which
   removes speckle and gradients that otherwise hide text from it;
2. *text-line candidates*: ink blobs joined horizontally (letters into words and lines);
3. one Tesseract run over the whole ink image (sparse text): a candidate touched by a word it
   reads is text. The candidates no word touched, if shaped like text, get a second chance in
   one more run over a mosaic of their crops;
4. the boxes of the confirmed lines (and of words outside any line), with a margin.

The text read is never returned: only boxes leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytesseract
from PIL import Image
from scipy import ndimage as ndi

from .masks import Box

#: Grey levels (0..255 scale) between text and the mean of its surroundings.
CONTRAST = 60
#: Ink blobs smaller than this (pixels) are noise.
MIN_SPECK = 5
#: Side of the window over which the surroundings' brightness decides the text's polarity.
BACKGROUND_WINDOW = 25
#: Side of the window (pixels) whose median brightness tells bright text from dark text.
LEVEL_WINDOW = 48
#: Tesseract reads small text best when its letters are about 20 pixels high: small images are
#: enlarged by this factor, and images longer than :data:`MAX_SIDE` shrunk to it.
UPSCALE, UPSCALE_BELOW, MAX_SIDE = 2, 1100, 2400
#: Text lines are at most this tall (pixels); taller blobs are not lines.
MAX_LINE_HEIGHT = 120
#: Confidence Tesseract must give a word for it to confirm a candidate on its own crop.
MOSAIC_MIN_CONFIDENCE = 40
MAX_MOSAIC_CANDIDATES = 300
_TESSERACT_CONFIG = "--psm 11"


class OcrUnavailable(RuntimeError):
    """Tesseract is not installed or failed."""


def to_gray8(frame: np.ndarray) -> np.ndarray:
    """A frame (any bit depth, grey or colour) as 8-bit grey; colour keeps each pixel's brightest
    channel, so that coloured text stays as bright as white text."""
    f = frame.max(axis=-1) if frame.ndim == 3 else frame
    if f.dtype == np.uint8:
        return f
    f = f.astype(np.float32)
    lo, hi = np.percentile(f, (0.5, 99.9))
    hi = max(hi, lo + 1)
    return np.clip((f - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Boolean map of high-contrast strokes (see the module docstring, step 1).

    A stroke differs from the mean of its window: brighter where the surroundings are dark,
    darker where they are light, either in mid-grey surroundings (the surroundings' brightness is a median over about
    :data:`LEVEL_WINDOW` pixels, which text covering less than half of it does not move).
    Taking one polarity per place keeps the dark margins of bright letters from counting as
    dark strokes."""
    f = gray.astype(np.float32)
    mean = ndi.uniform_filter(f, BACKGROUND_WINDOW)
    coarse = ndi.median_filter(f[::4, ::4], size=LEVEL_WINDOW // 4)
    level = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:f.shape[0], :f.shape[1]]
    ink = ((level < 170) & (f - mean > CONTRAST)) | ((level > 85) & (mean - f > CONTRAST))
    labels, _ = ndi.label(ink)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= MIN_SPECK
    keep[0] = False
    return keep[labels]


def _line_candidates(ink: np.ndarray) -> list[Box]:
    joined = ndi.binary_dilation(ink, structure=np.ones((3, 9), bool))
    labels, _ = ndi.label(joined)
    boxes = []
    for sl in ndi.find_objects(labels):
        y0, y1, x0, x1 = sl[0].start + 1, sl[0].stop - 1, sl[1].start + 4, sl[1].stop - 4
        if 4 <= y1 - y0 <= MAX_LINE_HEIGHT and x1 > x0:
            boxes.append((x0, y0, x1, y1))
    return boxes


def _text_shaped(box: Box, ink: np.ndarray) -> bool:
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    fill = ink[y0:y1, x0:x1].mean()
    return 6 <= h <= 80 and w >= 1.5 * h and 0.08 <= fill <= 0.9


def _scale_for(shape: tuple[int, int]) -> float:
    side = max(shape)
    if side < UPSCALE_BELOW:
        return float(UPSCALE)
    return min(1.0, MAX_SIDE / side)


def _words(page: np.ndarray, scale: float) -> list[tuple[Box, float]]:
    """(box in page coordinates / scale, confidence) of every word with a letter or digit."""
    image = Image.fromarray(np.where(page, 0, 255).astype(np.uint8))
    if scale != 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    try:
        data = pytesseract.image_to_data(image, config=_TESSERACT_CONFIG, output_type=pytesseract.Output.DICT)
    except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError) as exc:
        raise OcrUnavailable(f"tesseract failed: {exc}") from exc
    words = []
    for text, conf, x, y, w, h in zip(data["text"], data["conf"], data["left"], data["top"],
                                      data["width"], data["height"]):
        if any(c.isalnum() for c in text) and float(conf) >= 0:
            words.append(((int(x / scale), int(y / scale), int(np.ceil((x + w) / scale)),
                           int(np.ceil((y + h) / scale))), float(conf)))
    return words


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _mosaic_confirmed(ink: np.ndarray, candidates: list[Box], scale: float) -> list[Box]:
    """Candidates on which Tesseract reads a word, reading all of them in one run."""
    candidates = sorted(candidates, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))[:MAX_MOSAIC_CANDIDATES]
    gap = 12
    width = max(b[2] - b[0] for b in candidates) + 2 * gap
    height = sum(b[3] - b[1] + gap for b in candidates) + gap
    page = np.zeros((height, width), bool)
    spans, y = [], gap
    for x0, y0, x1, y1 in candidates:
        page[y:y + y1 - y0, gap:gap + x1 - x0] = ink[y0:y1, x0:x1]
        spans.append((y, y + y1 - y0))
        y += y1 - y0 + gap
    hits = set()
    for (wx0, wy0, wx1, wy1), conf in _words(page, scale):
        if conf < MOSAIC_MIN_CONFIDENCE:
            continue
        centre = (wy0 + wy1) / 2
        hits.update(i for i, (s0, s1) in enumerate(spans) if s0 <= centre < s1)
    return [candidates[i] for i in sorted(hits)]


def merge_lines(boxes: list[Box]) -> list[Box]:
    """Boxes on one line with a gap of at most a letter's height between them, merged (this also
    covers the punctuation between words, whose dots are too small for the ink map)."""
    boxes = sorted(boxes)
    merged = True
    while merged:
        merged, out = False, []
        for b in boxes:
            for i, a in enumerate(out):
                h = min(a[3] - a[1], b[3] - b[1])
                if (min(a[3], b[3]) - max(a[1], b[1]) >= 0.5 * h
                        and max(a[0], b[0]) - min(a[2], b[2]) <= 2 * h):
                    out[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return boxes


def _pad(box: Box, shape: tuple[int, int]) -> Box:
    x0, y0, x1, y1 = box
    m = max(3, (y1 - y0) // 3)
    return max(0, x0 - m), max(0, y0 - m), min(shape[1], x1 + m), min(shape[0], y1 + m)


@dataclass(frozen=True)
class TextFinding:
    """Where text is, and how it was found (counts only, never the text)."""
    boxes: list[Box]
    words: int
    tesseract_runs: int


def find_text(gray: np.ndarray) -> TextFinding:
    """Boxes around the text in an 8-bit grey image (see the module docstring)."""
    ink = ink_map(gray)
    if not ink.any():
        return TextFinding([], 0, 0)
    scale = _scale_for(gray.shape)
    words = _words(ink, scale)
    lines = _line_candidates(ink)
    confirmed = [ln for ln in lines if any(_overlaps(ln, w) for w, _ in words)]
    loose = [w for w, _ in words if not any(_overlaps(w, ln) for ln in confirmed)]
    runs = 1
    unread = [ln for ln in lines if ln not in confirmed and _text_shaped(ln, ink)]
    if unread:
        confirmed += _mosaic_confirmed(ink, unread, scale)
        runs += 1
    return TextFinding([_pad(b, gray.shape) for b in merge_lines(confirmed + loose)], len(words), runs)
