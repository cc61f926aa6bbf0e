"""Pixel test corpus: phantom images with names, IDs and dates burned in, and their ground truth.

* :func:`rendered_cases`: deterministic synthetic cases (fixed seeds) for the modality groups
  CT, MR, DX/CR, MG, US and SC: 8-, 12- and 16-bit, MONOCHROME1 and MONOCHROME2, RGB, single
  frames and a cine; phantom anatomy (lungs with vessels, ribs, spine, skull, brain, breast
  tissue, speckle) with noise; blocks of 1-3 text lines (light on dark and dark on light,
  8-24 px, several font faces) in the corners, along the edges and over the anatomy; and, per
  group, images without any text. Each case is a DICOM dataset plus the rendered lines.
* :func:`measure`: for one case, which text lines a cleaner masked and what share of the pixels
  outside the text boxes it changed.
* :func:`package_files`: the US, SC and cine files shipped by pydicom-data and deid-data.
* :func:`head_phantom`: a synthetic CT head (skin, skull, brain, a face with a nose) as slices.

Text boxes: a rendered line's box is the bounding box of every pixel its rendering touched,
grown by the masking margin of :func:`orthanc_gdpr.pixels.text_detection.margin` (a fifth of
the line's height, at least 2 pixels): the region the cleaner is meant to mask. A line counts
as masked when :data:`LINE_MASKED_SHARE` of its ink (pixels at least half covered) is masked.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)
from scipy import ndimage as ndi

from orthanc_gdpr.pixels.text_detection import margin

FONT_FILES = ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSansMono.ttf",
              "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSansCondensed.ttf",
              "liberation/LiberationSans-Regular.ttf", "liberation/LiberationMono-Regular.ttf",
              "liberation/LiberationSerif-Regular.ttf", "liberation/LiberationSansNarrow-Bold.ttf")
FONT_ROOT = Path("/usr/share/fonts/truetype")
FONT_SIZES = (8, 9, 10, 11, 12, 14, 16, 18, 20, 24)
SURNAMES = ("MUELLER", "SMITH", "DUPONT", "ROSSI", "NGUYEN", "KOWALSKI", "GARCIA", "OKAFOR",
            "JOHANSSON", "PETROV", "TANAKA", "MURPHY", "SCHMIDT", "MARTIN", "BERNARD")
GIVEN = ("ANNA", "JOHN", "MARIE", "HANS", "LUCIA", "PIOTR", "AKIRA", "SEAN", "ELENA", "OMAR")
#: A line counts as masked when this share of its ink is masked.
LINE_MASKED_SHARE = 0.99
#: Where text blocks go: corners, edge middles, or anywhere over the anatomy.
ANCHORS = ("top-left", "top-right", "bottom-left", "bottom-right", "top", "bottom", "left", "right",
           "anatomy")


def fonts() -> list[Path]:
    """The corpus fonts (fonts-dejavu-core and fonts-liberation, installed by scripts/setup.sh)."""
    found = [FONT_ROOT / f for f in FONT_FILES if (FONT_ROOT / f).is_file()]
    if len(found) != len(FONT_FILES):
        raise RuntimeError(f"corpus fonts missing: {sorted(set(FONT_FILES) - {str(f.relative_to(FONT_ROOT)) for f in found})}")
    return found


def random_text(rng: random.Random) -> str:
    """A name, an ID, a date or a labelled combination, like scanner overlays show them."""
    name = f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN)}"
    pid = "".join(rng.choice(string.digits) for _ in range(rng.randint(6, 9)))
    date = f"{rng.randint(1930, 2024)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    choices = (name.replace("^", ", "), f"ID: {pid}", f"{date[6:]}/{date[4:6]}/{date[:4]}",
               f"DOB {date[:4]}-{date[4:6]}-{date[6:]}", f"{name.replace('^', ' ')} {pid}",
               f"MRN {rng.choice(string.ascii_uppercase)}{pid}", date, f"ACC {pid[:6]}",
               f"{rng.choice(SURNAMES).title()} {rng.choice(GIVEN).title()}")
    return rng.choice(choices)


@dataclass
class TextLine:
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive): every pixel the rendering touched
    ink: np.ndarray  # bool, the box's size: pixels at least half covered


@dataclass
class Case:
    name: str
    group: str  # CT, MR, DX/CR, MG, US, SC
    ds: Dataset
    lines: list[TextLine]
    frames: int


# -- phantom anatomy (display brightness 0..1) ---------------------------------------------------


def _texture(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    t = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return t / (t.std() or 1.0)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)


def _chest(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A PA chest radiograph: body, dark lungs with vessels, heart, spine, ribs, clavicles."""
    x, y = _grid(h, w)
    img = np.full((h, w), 0.08)
    body = (x / 0.88) ** 2 + (y / 1.15) ** 2 < 1
    img[body] = 0.55
    lungs = (((x - 0.38) / 0.3) ** 2 + ((y + 0.05) / 0.62) ** 2 < 1) | (((x + 0.38) / 0.3) ** 2 + ((y + 0.05) / 0.62) ** 2 < 1)
    img[lungs] = 0.22 + 0.07 * _texture(rng, (h, w), 2.5)[lungs]
    img[((x - 0.08) / 0.22) ** 2 + ((y - 0.25) / 0.3) ** 2 < 1] = 0.62
    img[(np.abs(x) < 0.07) & body] = 0.8
    for k in range(10):
        for side in (-1, 1):
            yc = -0.55 + 0.13 * k + 0.35 * (x * side - 0.1) ** 2
            rib = (np.abs(y - yc) < 0.022) & (x * side > 0.05) & (x * side < 0.75) & body
            img[rib] += 0.22
    clav = (np.abs(y + 0.7 - 0.15 * np.abs(x)) < 0.03) & (np.abs(x) < 0.55)
    img[clav] += 0.25
    return img + 0.03 * _texture(rng, (h, w), 1.0)


def _ct(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An axial thorax CT in (HU + 1024) / 4095: air, fat ring, soft tissue, lungs, spine, ribs, table."""
    x, y = _grid(h, w)
    hu = np.full((h, w), -1000.0)
    body = (x / 0.82) ** 2 + (y / 0.6) ** 2 < 1
    hu[body] = -100
    hu[(x / 0.76) ** 2 + (y / 0.54) ** 2 < 1] = 40
    lungs = (((x - 0.35) / 0.28) ** 2 + ((y + 0.02) / 0.4) ** 2 < 1) | (((x + 0.35) / 0.28) ** 2 + ((y + 0.02) / 0.4) ** 2 < 1)
    hu[lungs] = -850 + 120 * np.maximum(_texture(rng, (h, w), 1.5), 0)[lungs]
    vert = (x / 0.1) ** 2 + ((y - 0.38) / 0.1) ** 2 < 1
    hu[vert] = 900
    hu[(x / 0.05) ** 2 + ((y - 0.38) / 0.05) ** 2 < 1] = 300
    ang = np.arctan2(y, x)
    ring = np.abs((x / 0.72) ** 2 + (y / 0.5) ** 2 - 1) < 0.06
    hu[ring & (np.cos(ang * 14) > 0.3)] = 700
    hu[(y > 0.7) & (y < 0.76) & (np.abs(x) < 0.9)] = 200
    hu += 12 * rng.standard_normal((h, w))
    return np.clip((hu + 1024) / 4095, 0, 1)


def _head_mr(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An axial T1 head: bright scalp fat, dark skull, grey/white matter folds, ventricles."""
    x, y = _grid(h, w)
    r = (x / 0.72) ** 2 + (y / 0.86) ** 2
    img = np.abs(0.03 * rng.standard_normal((h, w)))
    img[r < 1] = 0.85
    img[r < 0.9] = 0.08
    brain = r < 0.8
    folds = _texture(rng, (h, w), 3.0)
    img[brain] = np.where(folds[brain] > 0.2, 0.62, 0.42)
    img[((np.abs(x) - 0.12) / 0.08) ** 2 + (y / 0.3) ** 2 < 1] = 0.12
    return np.clip(img + 0.02 * rng.standard_normal((h, w)), 0, 1)


def _breast(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A mammogram (display: tissue bright): breast from the left edge, fibroglandular texture,
    pectoral muscle, skin line, calcifications."""
    x, y = _grid(h, w)
    u = (x + 1) / 1.3
    breast = u ** 2 + (y / 0.85) ** 2 < 1
    img = np.full((h, w), 0.03)
    dense = np.clip(0.5 + 0.22 * _texture(rng, (h, w), 6.0) + 0.1 * _texture(rng, (h, w), 1.5), 0, 1)
    img[breast] = (0.35 + 0.45 * dense * (1 - u))[breast]
    img[(x + 1 < 0.45 * (1 - (y + 1) / 0.9)) & breast] = 0.85
    img[breast & (u ** 2 + (y / 0.85) ** 2 > 0.97)] = 0.75
    for _ in range(12):
        cy, cx = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 10, w // 2)
        img[cy:cy + 2, cx:cx + 2] = 1.0
    return np.clip(img + 0.015 * rng.standard_normal((h, w)), 0, 1)


def _speckle(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An ultrasound sector: speckle in a fan, black around it."""
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h * 0.08, w / 2
    r, ang = np.hypot(yy - cy, xx - cx), np.arctan2(xx - cx, yy - cy)
    fan = (r > h * 0.1) & (r < h * 0.9) & (np.abs(ang) < 0.65)
    speckle = rng.rayleigh(0.2, (h, w)) * (1.25 - r / h) + 0.25 * np.maximum(_texture(rng, (h, w), 4.0), 0)
    return np.where(fan, np.clip(speckle, 0, 1), 0.01)


def _screen(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A workstation capture: a CT image in a light grey window frame (dark-on-light text room)."""
    img = np.full((h, w), 0.85)
    m = h // 10
    img[m:h - m, m:w - m] = _ct(h - 2 * m, w - 2 * m, rng) ** 0.8
    return img


# -- text -------------------------------------------------------------------------------------


def _render_block(img: np.ndarray, rng: random.Random, fonts_: list[Path], occupied: list,
                  colour: tuple[float, float, float]) -> list[TextLine]:
    """Draw 1-3 lines at one anchor into ``img`` (display brightness, grey or RGB, in place);
    light text on RGB images takes ``colour``. Text goes where it stays readable (see
    :func:`_text_level`); a block that finds no such place is left out."""
    h, w = img.shape[:2]
    font = ImageFont.truetype(str(rng.choice(fonts_)), rng.choice(FONT_SIZES))
    texts = [random_text(rng) for _ in range(rng.randint(1, 3))]
    step = int(font.size * 1.3) + 1
    bw, bh = max(int(np.ceil(font.getlength(t))) + 2 for t in texts), step * len(texts) + 2
    if bw + 24 > w or bh + 24 > h:
        return []
    anchor, pad, prefer_light = rng.choice(ANCHORS), rng.randint(3, 12), rng.random() < 0.65
    for _ in range(30):
        x = {"left": pad, "top-left": pad, "bottom-left": pad, "right": w - bw - pad, "top-right": w - bw - pad,
             "bottom-right": w - bw - pad}.get(anchor, (w - bw) // 2 if anchor in ("top", "bottom") else rng.randint(pad, w - bw - pad))
        y = {"top": pad, "top-left": pad, "top-right": pad, "bottom": h - bh - pad, "bottom-left": h - bh - pad,
             "bottom-right": h - bh - pad}.get(anchor, (h - bh) // 2 if anchor in ("left", "right") else rng.randint(pad, h - bh - pad))
        box = (x, y, x + bw, y + bh)
        level = _text_level(img[y:y + bh, x:x + bw], prefer_light, rng)
        if level is not None and not any(box[0] < b[2] + 8 and b[0] < box[2] + 8 and box[1] < b[3] + 8
                                         and b[1] < box[3] + 8 for b in occupied):
            break
        anchor = "anatomy"
    else:
        return []
    occupied.append(box)
    tone = np.asarray(colour) * level if img.ndim == 3 and level > 0.5 else level
    lines = []
    for i, text in enumerate(texts):
        layer = Image.new("L", (bw, bh), 0)
        ImageDraw.Draw(layer).text((1, 1 + i * step), text, font=font, fill=255)
        alpha = np.asarray(layer, np.float32) / 255.0
        ys, xs = np.nonzero(alpha)
        if not len(ys):
            continue
        a = alpha[..., None] if img.ndim == 3 else alpha
        region = img[y:y + bh, x:x + bw]
        region[:] = region * (1 - a) + tone * a
        lb = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        lines.append(TextLine(text, (x + lb[0], y + lb[1], x + lb[2], y + lb[3]),
                              alpha[lb[1]:lb[3], lb[0]:lb[2]] >= 0.5))
    return lines


def _text_level(region: np.ndarray, prefer_light: bool, rng: random.Random) -> float | None:
    """The text's display brightness over ``region``: light (0.9-1.0) where everything behind it
    is at most 0.6, dark (0.0-0.08) where everything is at least 0.35, the preferred one when
    both are; None where neither would be readable (mixed light and dark background)."""
    grey = region.mean(axis=-1) if region.ndim == 3 else region
    light_ok, dark_ok = np.percentile(grey, 98) <= 0.6, np.percentile(grey, 2) >= 0.35
    if light_ok and (prefer_light or not dark_ok):
        return rng.uniform(0.9, 1.0)
    if dark_ok:
        return rng.uniform(0.0, 0.08)
    return None


# -- DICOM --------------------------------------------------------------------------------------

#: name, group, phantom, rows, columns, SOP class, modality, photometric, bits stored,
#: transfer syntax, frames
Layout = tuple[str, str, object, int, int, str, str, str, int, str, int]
LAYOUTS: tuple[Layout, ...] = (
    ("ct", "CT", _ct, 512, 512, CTImageStorage, "CT", "MONOCHROME2", 12, ExplicitVRLittleEndian, 1),
    ("ct16", "CT", _ct, 512, 512, CTImageStorage, "CT", "MONOCHROME2", 16, RLELossless, 1),
    ("mr", "MR", _head_mr, 256, 256, MRImageStorage, "MR", "MONOCHROME2", 16, ExplicitVRLittleEndian, 1),
    ("mr12", "MR", _head_mr, 512, 448, MRImageStorage, "MR", "MONOCHROME2", 12, JPEG2000Lossless, 1),
    ("dx", "DX/CR", _chest, 1024, 1024, DigitalXRayImageStorageForPresentation, "DX", "MONOCHROME2", 12, ExplicitVRLittleEndian, 1),
    ("cr", "DX/CR", _chest, 880, 720, ComputedRadiographyImageStorage, "CR", "MONOCHROME1", 12, RLELossless, 1),
    ("mg", "MG", _breast, 1024, 832, DigitalMammographyXRayImageStorageForPresentation, "MG", "MONOCHROME2", 12, ExplicitVRLittleEndian, 1),
    ("mg1", "MG", _breast, 960, 768, DigitalMammographyXRayImageStorageForPresentation, "MG", "MONOCHROME1", 16, DeflatedExplicitVRLittleEndian, 1),
    ("us", "US", _speckle, 480, 640, UltrasoundImageStorage, "US", "RGB", 8, RLELossless, 1),
    ("us8", "US", _speckle, 600, 800, UltrasoundImageStorage, "US", "MONOCHROME2", 8, ExplicitVRLittleEndian, 1),
    ("uscine", "US", _speckle, 480, 640, UltrasoundMultiFrameImageStorage, "US", "MONOCHROME2", 8, RLELossless, 6),
    ("sc", "SC", _screen, 512, 512, SecondaryCaptureImageStorage, "OT", "RGB", 8, ExplicitVRLittleEndian, 1),
    ("sc8", "SC", _screen, 600, 800, SecondaryCaptureImageStorage, "SC", "MONOCHROME2", 8, JPEG2000Lossless, 1),
)
GROUPS = ("CT", "MR", "DX/CR", "MG", "US", "SC")
#: Light text on colour images comes in one of these display colours (RGB).
TEXT_COLOURS = ((1.0, 1.0, 1.0), (1.0, 0.95, 0.2), (0.3, 1.0, 0.4), (0.3, 0.9, 1.0))


def _stored(display: np.ndarray, photometric: str, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    v = np.clip(display, 0, 1)
    if photometric == "MONOCHROME1":
        v = 1 - v
    return np.rint(v * top).astype(np.uint8 if bits == 8 else np.uint16)


def _dataset(layout: Layout, frames: list[np.ndarray]) -> Dataset:
    _, _, _, _, _, sop, modality, photometric, bits, syntax, _ = layout
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "CORPUS^CASE"
    if modality == "CT":
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    arr = np.stack([_stored(f, photometric, bits) for f in frames])
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.set_pixel_data(arr if len(frames) > 1 else arr[0], photometric, bits)
    if syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, generate_instance_uid=False)
    return ds


def _case(n: int, layout: Layout, with_text: bool, seed: int, fonts_: list[Path]) -> Case:
    name, group, phantom, h, w = layout[:5]
    rgb, nframes = layout[7] == "RGB", layout[-1]
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    def picture() -> np.ndarray:
        grey = phantom(h, w, nrng)
        return np.repeat(grey[..., None], 3, axis=2) if rgb else grey
    base = picture()
    canvas = base.copy()
    lines: list[TextLine] = []
    if with_text:
        occupied: list = []
        colour = rng.choice(TEXT_COLOURS)
        for _ in range(rng.randint(1, 4)):
            lines += _render_block(canvas, rng, fonts_, occupied, colour)
    touched = canvas != base
    frames = [canvas] + [np.where(touched, canvas, picture()) for _ in range(nframes - 1)]
    return Case(f"{n:02d}-{name}-{'text' if with_text else 'clean'}", group, _dataset(layout, frames), lines, nframes)


def rendered_cases(per_layout: int = 3, clean_per_layout: int = 1, seed: int = 20260,
                   layouts: tuple[Layout, ...] = LAYOUTS) -> list[Case]:
    """``per_layout`` cases with text and ``clean_per_layout`` without, for each of ``layouts``
    (default: all of :data:`LAYOUTS`); the same seed always gives the same pixels."""
    fonts_ = fonts()
    cases = []
    for layout in layouts:
        k = LAYOUTS.index(layout)  # a layout's cases are the same whichever others are asked for
        for j in range(per_layout + clean_per_layout):
            cases.append(_case(len(cases), layout, j < per_layout, seed + 1000 * k + j, fonts_))
    return cases


# -- scoring ------------------------------------------------------------------------------------


def masked_map(shape: tuple[int, int], boxes) -> np.ndarray:
    """Union of ``(x0, y0, x1, y1)`` boxes as a boolean map."""
    m = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        m[max(0, y0):y1, max(0, x0):x1] = True
    return m


def text_boxes(case: Case, shape: tuple[int, int]) -> np.ndarray:
    """The case's text boxes (each line's box grown by the masking margin) as a boolean map."""
    boxes = []
    for line in case.lines:
        x0, y0, x1, y1 = line.box
        m = margin(y1 - y0)
        boxes.append((x0 - m, y0 - m, x1 + m, y1 + m))
    return masked_map(shape, boxes)


@dataclass(frozen=True)
class Score:
    lines: int
    lines_masked: int
    outside_changed: float  # share of the pixels outside the text boxes that changed
    pixels_changed: int


def measure(case: Case, before: np.ndarray, after: np.ndarray, masked: np.ndarray) -> Score:
    """Score one cleaned case: ``before``/``after`` are its decoded frames ``(frames, rows,
    columns[, samples])``; ``masked`` the map of what the cleaner reported masking."""
    changed = before != after
    if changed.ndim == 4:
        changed = changed.any(axis=-1)
    changed = changed.any(axis=0)
    done = 0
    for line in case.lines:
        x0, y0, x1, y1 = line.box
        done += masked[y0:y1, x0:x1][line.ink].sum() >= LINE_MASKED_SHARE * line.ink.sum()
    outside = ~text_boxes(case, changed.shape)
    return Score(len(case.lines), int(done), float((changed & outside).sum() / max(1, outside.sum())),
                 int(changed.sum()))


def package_files() -> list[Path]:
    """US, SC/OT and cine files from pydicom-data and deid-data (whatever is installed)."""
    out: list[Path] = []
    try:
        import data_store
        root = Path(data_store.__file__).parent / "data"
        out += [root / n for n in ("US1_J2KR.dcm", "US1_UNCR.dcm", "SC_rgb.dcm", "SC_rgb_rle_2frame.dcm",
                                   "color3d_jpeg_baseline.dcm", "gdcm-US-ALOKA-16.dcm") if (root / n).is_file()]
    except ImportError:
        pass
    try:
        import deid_data
        root = Path(deid_data.__file__).parent / "data" / "ultrasounds"
        out += sorted(root.glob("*.dcm"))
    except ImportError:
        pass
    return out


def head_phantom(n_slices: int = 48, size: int = 96, spacing: float = 3.0) -> tuple[list[Dataset], dict]:
    """A CT head (HU): skin, skull shell, brain, and a face (soft tissue bump and nose) in front of
    and below the skull base, as axial slices from feet to head. Returns the slices and boolean
    region masks (``brain``, ``face``) indexed ``[slice, row, column]``."""
    z, y, x = np.mgrid[0:n_slices, 0:size, 0:size].astype(float)
    # patient coordinates (mm): x left, y posterior, z superior; centre of the cranium at 0
    px, py, pz = (x - size / 2) * spacing * 0.5, (y - size / 2) * spacing * 0.5, (z - n_slices * 0.55) * spacing
    def ell(cx, cy, cz, ax, ay, az):
        return ((px - cx) / ax) ** 2 + ((py - cy) / ay) ** 2 + ((pz - cz) / az) ** 2 <= 1
    brain = ell(0, 5, 0, 60, 75, 55)
    skull = ell(0, 5, 0, 68, 83, 63) & ~brain
    head = ell(0, 5, 0, 74, 89, 69)
    neck = ell(0, 25, -80, 45, 45, 60)
    face = (ell(0, -55, -55, 50, 35, 45) | ell(0, -92, -40, 8, 12, 18)) & ~head & ~neck
    vol = np.full(brain.shape, -1000.0)
    vol[head | neck | face] = 40
    vol[skull] = 1200
    vol[brain] = 30
    slices = []
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(n_slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", study, series
        ds.FrameOfReferenceUID = frame
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [float(px[k, 0, 0]), float(py[k, 0, 0]), float(pz[k, 0, 0])]
        ds.PixelSpacing = [spacing * 0.5, spacing * 0.5]
        ds.SliceThickness = spacing
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.set_pixel_data((vol[k] + 1024).astype(np.uint16), "MONOCHROME2", 12)
        slices.append(ds)
    return slices, {"brain": brain, "face": face, "volume": vol}


def reread(ds: Dataset, path: Path) -> Dataset:
    """Write ``ds`` as a DICOM file and read it back."""
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)
