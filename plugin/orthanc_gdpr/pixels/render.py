"""Showing a DICOM image to a person: one frame windowed into an 8-bit picture.

Used wherever a person looks at pixels: review pages, the patient's offline viewer, before/after
previews and anonymous slice exports. The steps follow PS3.3:

1. the Modality LUT (Rescale Slope/Intercept, C.11.1) turns stored values into output units
   (Hounsfield units for CT);
2. a *window* (centre and width, the linear VOI LUT function of C.11.2.1.2.1) maps those units to
   0..255;
3. MONOCHROME1 is inverted so that it displays as the modality meant; colour (RGB, or palette
   colour through its lookup table) is shown as it is.

The window is the first one the instance declares (Window Center/Width), else one spanning the
frame's values from the 0.5th to the 99.5th percentile. CT gets the usual named presets as well.

Nothing here reads or writes files: callers decode once with :func:`frames` and render as many
frames and windows as they need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut

from .codecs import decode, native_grey


@dataclass(frozen=True)
class Window:
    """A VOI window in modality output units; ``name`` says where it came from."""

    center: float
    width: float
    name: str

    def describe(self) -> str:
        """Human-readable, for captions and records: ``lung (C -600, W 1500)``."""
        return f"{self.name} (C {self.center:g}, W {self.width:g})"


#: Named CT windows in Hounsfield units (common radiology defaults, e.g. Radiopaedia's
#: "Windowing (CT)" article: lung W1500/L-600, soft tissue W400/L40, bone W1800/L400,
#: brain W80/L40).
CT_PRESETS: dict[str, Window] = {
    "soft-tissue": Window(40, 400, "soft-tissue"),
    "lung": Window(-600, 1500, "lung"),
    "bone": Window(400, 1800, "bone"),
    "brain": Window(40, 80, "brain"),
}


def frames(ds: Dataset) -> np.ndarray:
    """Every frame, decoded once: ``(frames, rows, columns[, samples])``; colour comes as RGB.
    Uncompressed grey frames are read-only (:func:`.codecs.native_grey`): copy one to change it."""
    native = native_grey(ds)
    return native if native is not None else decode(ds)


def is_colour(ds: Dataset) -> bool:
    return int(ds.get("SamplesPerPixel", 1)) == 3 or ds.get("PhotometricInterpretation") == "PALETTE COLOR"


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def modality_values(ds: Dataset, frame: np.ndarray) -> np.ndarray:
    """A grey frame in modality output units (Rescale Slope/Intercept applied), as float32."""
    return np.asarray(apply_modality_lut(frame, ds), dtype=np.float32)


def declared_window(ds: Dataset) -> Window | None:
    """The instance's own first window (Window Center/Width), if it declares a usable one."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width >= 1:
        return Window(center, width, "default")
    return None


def _automatic_window(values: np.ndarray) -> Window:
    lo, hi = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    return Window((lo + hi) / 2, max(hi - lo, 1.0), "auto")


def default_window(ds: Dataset, values: np.ndarray) -> Window:
    """The instance's own first window, else the frame's 0.5th..99.5th percentile range."""
    own = declared_window(ds)
    return own if own is not None else _automatic_window(values)


def windows_for(ds: Dataset, values: np.ndarray) -> list[Window]:
    """The windows worth offering for this image: its default, then the CT presets for CT."""
    windows = [default_window(ds, values)]
    if ds.get("Modality") == "CT":
        windows += list(CT_PRESETS.values())
    return windows


def named_window(window: Window | str) -> Window:
    """A :class:`Window` as it is, or a CT preset by name."""
    if isinstance(window, Window):
        return window
    if window in CT_PRESETS:
        return CT_PRESETS[window]
    raise ValueError(f"unknown window preset {window!r} (known: default, {', '.join(CT_PRESETS)})")


def choose_window(ds: Dataset, values: np.ndarray, window: Window | str | None) -> Window:
    """``None`` or ``"default"``: the default window; a preset name; or a :class:`Window`."""
    if window in (None, "default", "auto"):
        return default_window(ds, values)
    return named_window(window)


#: An automatic window reads every SAMPLE_STEP-th pixel each way: the percentiles of a 16th of a
#: frame give the same window at a 16th of the cost.
SAMPLE_STEP = 4


def sampled_window(ds: Dataset, frame: np.ndarray, window: Window | str | None = None) -> Window:
    """:func:`choose_window` for one decoded grey ``frame`` (stored values, whole frame), with an
    automatic window from every :data:`SAMPLE_STEP`-th pixel each way. The pixels are read only for
    an automatic window: not for a declared one, a preset or a :class:`Window`."""
    if window not in (None, "default", "auto"):
        return named_window(window)
    own = declared_window(ds)
    if own is not None:
        return own
    return _automatic_window(modality_values(ds, frame[::SAMPLE_STEP, ::SAMPLE_STEP]))


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """The linear VOI LUT function of PS3.3 C.11.2.1.2.1, to 0..255."""
    c, w = window.center, max(window.width, 1.0)
    scaled = ((values - (c - 0.5)) / (w - 1 if w > 1 else 1) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_8bit(ds: Dataset, frame: np.ndarray, window: Window | str | None = None) -> tuple[np.ndarray, Window | None]:
    """One decoded frame as 8-bit pixels for display, and the window used (``None`` for colour)."""
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
    if frame.ndim == 3:
        if frame.dtype != np.uint8:
            top = float(frame.max()) or 1.0
            frame = np.clip(frame.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
        return frame, None
    values = modality_values(ds, frame)
    chosen = choose_window(ds, values, window)
    grey = apply_window(values, chosen)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        grey = 255 - grey
    return grey, chosen


def render(ds: Dataset, frame: np.ndarray, window: Window | str | None = None) -> Image.Image:
    """One decoded frame as a PIL image (``L`` for grey, ``RGB`` for colour)."""
    pixels, _ = to_8bit(ds, frame, window)
    return Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L")
