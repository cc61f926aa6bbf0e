"""Finding burned-in text with a learned text detector, confirmed by a text recognizer.

The models are PaddleOCR's PP-OCRv4 *detection* (a DB, differentiable-binarization, network) and
*recognition* (a CTC line reader) networks in ONNX form, as shipped inside the
``rapidocr-onnxruntime`` wheel (Apache-2.0). They are read from the installed package (or from
the directory named by ``ORTHANC_GDPR_TEXT_MODELS``), their graphs fused (:mod:`.model_graph`:
the same arithmetic, fewer nodes; once, then kept by :mod:`.graph_cache`), and run on ``onnxruntime`` on the CPU,
on this process's share of the cores (:mod:`.cores`); nothing is fetched at run time. The
package's own Python code (which needs OpenCV) is not used.

For one image (grey of any bit depth, or RGB, as a person would see it):

1. the image becomes 8-bit (grey: its 0.5th..99.9th percentile range stretched to 0..255, so
   that text burned in at any stored value stands out) and enlarged when small (see
   :data:`MIN_SHORT_SIDE`);
2. the detector gives a text probability per pixel; connected regions above
   :data:`PIXEL_THRESHOLD` whose mean probability reaches :data:`REGION_THRESHOLD` are text-line
   *candidates*, grown back to the full line ("unclipped", as DB prescribes, by
   :data:`UNCLIP_RATIO`);
3. the recognizer reads the start of each candidate (up to :data:`REC_MAX_WIDTH` pixels at
   :data:`REC_HEIGHT`, about four letters): it is *text* when it reads at least
   :data:`MIN_CHARS` letters or digits with a confidence of :data:`MIN_CHAR_CONFIDENCE` or more,
   and its whole reading has a mean confidence of :data:`MIN_MEAN_CONFIDENCE` or more.
   Lung texture, bone and speckle that the detector found text-like read as nothing, or as one
   character (a vertebra reads as "0"); names, IDs and dates have more than one;
4. each text line's box (the DB box, which reaches about a quarter of the line's height beyond
   its letters) is padded by :data:`PAD` pixel and clipped to the image. The region masked around
   a line's letters is thus at most :func:`margin` wide (a third of the line's height, at least
   3 pixels): the tolerance the rendered-corpus tests hold it to.

Only boxes and counts leave this module, never the text read.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import cores
from .graph_cache import fused_model
from .masks import Box
from .model_graph import DESCRIPTION as FUSION

MODEL_PACKAGE = "rapidocr-onnxruntime"
DETECTION_MODEL = "ch_PP-OCRv4_det_infer.onnx"
RECOGNITION_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
#: A directory holding both model files, used instead of the installed package's copy.
MODELS_ENV = "ORTHANC_GDPR_TEXT_MODELS"
METHOD = "text-detector"

#: The detector reads images enlarged so that their shorter side is at least
#: :data:`MIN_SHORT_SIDE` pixels (PP-OCR's own input rule: 8-pixel fonts are too small for it in
#: a 512-pixel image at its own size), by at most :data:`MAX_UPSCALE`, and shrunk so that their
#: longer side is at most :data:`MAX_SIDE` pixels.
MIN_SHORT_SIDE, MAX_UPSCALE, MAX_SIDE = 736, 2.0, 2048
#: DB post-processing (the PP-OCR defaults are 0.3, 0.5 and 1.6).
PIXEL_THRESHOLD = 0.3
REGION_THRESHOLD = 0.5
UNCLIP_RATIO = 1.0
#: Pixels added around each confirmed line box.
PAD = 1
#: Candidates smaller than this (pixels, detector scale) are specks; taller than
#: :data:`MAX_LINE_HEIGHT` (or a quarter of the image) they are not a line of text.
MIN_CANDIDATE_SIDE = 3
MAX_LINE_HEIGHT = 96
#: The recognizer reads lines scaled to this height (pixels), at most this wide; batches are
#: padded to a multiple of :data:`REC_WIDTH_STEP`.
REC_HEIGHT, REC_MAX_WIDTH, REC_WIDTH_STEP = 48, 160, 32
REC_BATCH = 16
#: A candidate is text when the recognizer reads this many letters or digits in it, each with at
#: least this probability.
MIN_CHARS = 2
MIN_CHAR_CONFIDENCE = 0.5
#: ... and the mean confidence of everything it reads there is at least this (on the rendered
#: corpus text lines read at 0.79 or more, speckle that read as digits at 0.49 or less).
MIN_MEAN_CONFIDENCE = 0.65
#: Grey images: the percentiles stretched to 0..255.
STRETCH_PERCENTILES = (0.5, 99.9)


class TextDetectionError(RuntimeError):
    """Text cannot be looked for: hold the image back (the message never holds pixel content)."""


class ModelUnavailable(TextDetectionError):
    """The detection or recognition model cannot be loaded."""


class UnsupportedImage(TextDetectionError):
    """The image is not something the detector can take (shape, size or values)."""


@dataclass(frozen=True)
class TextRegions:
    """Where text is in one image, and how it was found (counts only, never the text).

    ``boxes`` are ``(x0, y0, x1, y1)``, end-exclusive, in the image's own pixel coordinates,
    already padded; ``candidates`` is how many regions the detector proposed,
    ``boxes`` the ones the recognizer confirmed (one per line; padded lines may overlap)."""

    boxes: list[Box]
    candidates: int
    method: str = METHOD
    model: str = ""
    ms: float = 0.0
    scale: float = 1.0
    rejected: int = field(default=0)


def margin(line_height: int) -> int:
    """The most the masked region reaches beyond the letters of a line this tall (pixels, each side)."""
    return max(3, round(line_height / 3))


# -- models ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Models:
    detector: object
    recognizer: object
    characters: tuple[str, ...]
    version: str
    threads: int


_lock = threading.Lock()
_loaded: _Models | None = None


def _model_dir() -> tuple[Path, str]:
    override = os.environ.get(MODELS_ENV)
    if override:
        return Path(override), f"models from {MODELS_ENV}"
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelUnavailable(f"the {MODEL_PACKAGE} package (text detection models) is not installed") from exc
    return Path(str(dist.locate_file("rapidocr_onnxruntime/models"))), f"{MODEL_PACKAGE} {dist.version}"


def _session(path: Path, threads: int):
    """An onnxruntime session for the model file at ``path``, its graph fused (:mod:`.model_graph`,
    kept by :mod:`.graph_cache`), running on ``threads`` intra-op threads, and the file's SHA-256."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # threads sleep instead of spinning between runs: the CPU goes to decoding and other workers
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = path.read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    return ort.InferenceSession(fused_model(model, sha), options, providers=["CPUExecutionProvider"]), sha


def load_models() -> _Models:
    """The detection and recognition sessions, loaded once per process (thread-safe), and again
    when the process's share of the cores changes (:func:`.cores.share_cores`)."""
    global _loaded
    with _lock:
        threads = cores.threads()
        if _loaded is None or _loaded.threads != threads:
            directory, origin = _model_dir()
            det_path, rec_path = directory / DETECTION_MODEL, directory / RECOGNITION_MODEL
            try:
                (detector, det_sha), (recognizer, rec_sha) = (_session(det_path, threads),
                                                              _session(rec_path, threads))
                vocabulary = recognizer.get_modelmeta().custom_metadata_map["character"].splitlines()
                version = (f"PP-OCRv4 det {det_sha[:12]} + rec {rec_sha[:12]} ({origin}, "
                           f"onnxruntime {_ort_version()}, {FUSION})")
            except Exception as exc:  # onnxruntime raises its own types for missing/corrupt files
                raise ModelUnavailable(f"text detection model cannot be loaded: {type(exc).__name__}") from exc
            _loaded = _Models(detector, recognizer, ("",) + tuple(vocabulary) + (" ",), version, threads)
        return _loaded


def unload_models() -> None:
    """Forget the loaded models (the next detection loads them again, e.g. from a new directory)."""
    global _loaded
    with _lock:
        _loaded = None


def _ort_version() -> str:
    import onnxruntime as ort
    return ort.__version__


def model_version() -> str:
    """Which models detect text here (file hashes and package version); loads them if needed."""
    return load_models().version


# -- images ---------------------------------------------------------------------------------------


def to_display8(image: np.ndarray) -> np.ndarray:
    """An image as 8-bit: grey of any depth stretched (see the module docstring), RGB as it is
    (scaled to 0..255 when stored with more bits)."""
    if image.ndim == 3:
        if image.dtype == np.uint8:
            return image
        top = float(image.max()) or 1.0
        return np.clip(image.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
    if image.dtype == np.uint8:
        return image
    f = image.astype(np.float32)
    lo, hi = np.percentile(f, STRETCH_PERCENTILES)
    hi = max(float(hi), float(lo) + 1)
    return np.clip((f - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def _check(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise UnsupportedImage("image is not an array")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise UnsupportedImage(f"image shape {image.shape} is neither grey (rows, columns) nor RGB (rows, columns, 3)")
    if min(image.shape[:2]) < 8:
        raise UnsupportedImage(f"image of {image.shape[1]}x{image.shape[0]} pixels is too small to read")
    if image.dtype.kind not in "uib" and not (image.dtype.kind == "f" and np.isfinite(image).all()):
        raise UnsupportedImage(f"image values of type {image.dtype} cannot be read")


def _scale_for(rows: int, cols: int) -> float:
    scale = min(MAX_UPSCALE, max(1.0, MIN_SHORT_SIDE / min(rows, cols)))
    return min(scale, MAX_SIDE / max(rows, cols))


def _resized(pixels: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return pixels
    h, w = pixels.shape[:2]
    return np.asarray(Image.fromarray(pixels).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                  Image.BILINEAR))


def _normalised(pixels: np.ndarray) -> np.ndarray:
    """PP-OCR input: BGR, (x / 255 - 0.5) / 0.5, channels first. A grey image is its one
    channel, ``(rows, columns)``, which numpy broadcasts to the three the networks take."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32) / 127.5 - 1.0
    return ((pixels[..., ::-1].astype(np.float32) / 127.5) - 1.0).transpose(2, 0, 1)


# -- detection ------------------------------------------------------------------------------------


def _probability(models: _Models, pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    batch = np.zeros((1, 3, ph, pw), np.float32)
    batch[0, :, :h, :w] = _normalised(pixels)
    session = models.detector
    out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    return out[0, 0, :h, :w]


def _candidates(prob: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Unclipped line boxes (float, detector scale) of the text regions of a probability map."""
    above = prob > PIXEL_THRESHOLD
    if not above.any():
        return []
    text = above.copy()  # dilated by a 2x2 square: each pixel also takes its lower and right neighbours
    text[:-1] |= above[1:]
    text[:, :-1] |= text[:, 1:].copy()
    tallest = min(MAX_LINE_HEIGHT, prob.shape[0] / 4)
    # regions of edge-connected pixels (4-connectivity), numbered in raster order, with their boxes
    count, labels, stats, _ = cv2.connectedComponentsWithStats(text.view(np.uint8), connectivity=4,
                                                               ltype=cv2.CV_32S)
    inside = np.flatnonzero(labels)
    areas = stats[1:, cv2.CC_STAT_AREA]
    scores = np.bincount(labels.ravel()[inside], weights=prob.ravel()[inside], minlength=count)[1:] / areas
    boxes = []
    for (x0, y0, w, h, area), score in zip(stats[1:].tolist(), scores.tolist()):
        if score < REGION_THRESHOLD or min(h, w) < MIN_CANDIDATE_SIDE or min(h, w) > tallest:
            continue
        grow = area * UNCLIP_RATIO / (2 * (h + w))
        boxes.append((x0 - grow, y0 - grow, x0 + w + grow, y0 + h + grow))
    return boxes


# -- recognition ----------------------------------------------------------------------------------


def _line_crop(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    crop = pixels[y0:y1, x0:x1]
    if crop.shape[0] > 1.5 * crop.shape[1]:  # a vertical line of text: read it turned
        crop = np.ascontiguousarray(np.rot90(crop, -1))
    h, w = crop.shape[:2]
    width = max(REC_HEIGHT // 2, round(w * REC_HEIGHT / h))
    if width > REC_MAX_WIDTH:  # the start of a long line is enough to tell text
        crop, width = crop[:, :max(1, round(REC_MAX_WIDTH * h / REC_HEIGHT))], REC_MAX_WIDTH
    return np.asarray(Image.fromarray(crop).resize((width, REC_HEIGHT), Image.BILINEAR))


def _reads_text(models: _Models, crops: list[np.ndarray]) -> list[bool]:
    """Per crop: does the recognizer read :data:`MIN_CHARS` letters or digits in it, confidently?"""
    order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1])
    verdict = [False] * len(crops)
    session = models.recognizer
    for start in range(0, len(order), REC_BATCH):
        chunk = order[start:start + REC_BATCH]
        width = -(-max(crops[i].shape[1] for i in chunk) // REC_WIDTH_STEP) * REC_WIDTH_STEP
        batch = np.zeros((len(chunk), 3, REC_HEIGHT, width), np.float32)
        for k, i in enumerate(chunk):
            batch[k, :, :, :crops[i].shape[1]] = _normalised(crops[i])
        probs = session.run(None, {session.get_inputs()[0].name: batch})[0]
        best, conf = probs.argmax(axis=2), probs.max(axis=2)
        for k, i in enumerate(chunk):
            verdict[i] = _confident_alnum(best[k], conf[k], models.characters)
    return verdict


def _confident_alnum(best: np.ndarray, conf: np.ndarray, characters: tuple[str, ...]) -> bool:
    """CTC greedy reading (non-blank steps unlike the one before): are :data:`MIN_CHARS` of them
    letters (Latin or CJK: the recognizer reads both) or digits read with
    :data:`MIN_CHAR_CONFIDENCE`, and is the reading's mean confidence
    :data:`MIN_MEAN_CONFIDENCE` or more?"""
    previous, count, read = 0, 0, []
    for index, p in zip(best.tolist(), conf.tolist()):
        if index != previous and index != 0 and index < len(characters):
            ch = characters[index]
            count += ch.isalnum() and p >= MIN_CHAR_CONFIDENCE  # letters of any script, digits
            read.append(p)
        previous = index
    return count >= MIN_CHARS and sum(read) / len(read) >= MIN_MEAN_CONFIDENCE


# -- putting it together --------------------------------------------------------------------------


def find_text_regions(image: np.ndarray) -> TextRegions:
    """The boxes around the burned-in text lines of ``image`` (see the module docstring).

    ``image``: one frame as displayed, ``(rows, columns)`` grey of any integer depth
    (MONOCHROME1 already inverted) or ``(rows, columns, 3)`` RGB. Raises
    :class:`ModelUnavailable` when the models cannot be loaded and :class:`UnsupportedImage`
    for an image it cannot take; never returns "no text" for an image it did not read."""
    start = time.perf_counter()
    _check(image)
    models = load_models()
    display = to_display8(np.asarray(image))
    rows, cols = display.shape[:2]
    scale = _scale_for(rows, cols)
    scaled = _resized(display, scale)
    try:
        found = _candidates(_probability(models, scaled))
    except Exception as exc:  # onnxruntime errors on inputs it cannot take
        raise UnsupportedImage(f"text detector cannot read this image: {type(exc).__name__}") from exc
    lines = []
    for fx0, fy0, fx1, fy1 in found:
        box = (max(0, int(fx0 / scale)), max(0, int(fy0 / scale)),
               min(cols, int(np.ceil(fx1 / scale))), min(rows, int(np.ceil(fy1 / scale))))
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            lines.append(box)
    confirmed = [b for b, ok in zip(lines, _reads_text(models, [_line_crop(display, b) for b in lines])) if ok] \
        if lines else []
    padded = [(max(0, x0 - PAD), max(0, y0 - PAD), min(cols, x1 + PAD), min(rows, y1 + PAD))
              for x0, y0, x1, y1 in confirmed]
    return TextRegions(boxes=sorted(set(padded)), candidates=len(lines), model=models.version,
                       ms=(time.perf_counter() - start) * 1000, scale=scale,
                       rejected=len(lines) - len(confirmed))
