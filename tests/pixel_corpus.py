"""Pixel test corpus: images with random names, IDs and dates burned in, and their ground truth.

* :func:`rendered_cases`: deterministic synthetic cases (several fonts, sizes, positions, bright
  and dark text, several backgrounds, transfer syntaxes, single and multi-frame), each a DICOM
  dataset plus the rendered strings with per-character ink masks.
* :func:`score`: detection recall (share of rendered characters whose ink is masked) and false
  masking (share of non-text pixels masked) for one case, from the boxes a cleaner reported.
* :func:`package_files`: the US, SC and cine files shipped by pydicom-data and deid-data.
* :func:`head_phantom`: a synthetic CT head (skin, skull, brain, a face with a nose) as slices.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/opentype/urw-base35"),
             Path("/usr/share/fonts/truetype/noto"))
#: Preferred fonts; the DejaVu ones come with fonts-dejavu-core (scripts/setup.sh), the rest only
#: where installed.
FONT_NAMES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf",
              "DejaVuSansCondensed.ttf", "NimbusSans-Regular.otf", "NimbusMonoPS-Bold.otf",
              "NimbusRoman-Regular.otf", "NotoSansMono-Regular.ttf")
SURNAMES = ("MUELLER", "SMITH", "DUPONT", "ROSSI", "NGUYEN", "KOWALSKI", "GARCIA", "OKAFOR",
            "JOHANSSON", "PETROV", "TANAKA", "MURPHY", "SCHMIDT", "MARTIN", "BERNARD")
GIVEN = ("ANNA", "JOHN", "MARIE", "HANS", "LUCIA", "PIOTR", "AKIRA", "SEAN", "ELENA", "OMAR")
#: Characters whose ink masked at this share count as masked.
CHAR_MASKED_SHARE = 0.9


def fonts() -> list[Path]:
    """The installed corpus fonts (at least the three DejaVu ones)."""
    found = [d / n for n in FONT_NAMES for d in FONT_DIRS if (d / n).is_file()]
    if len(found) < 3:
        raise RuntimeError(f"corpus fonts missing: found {found}")
    return found


def random_text(rng: random.Random) -> str:
    """A name, an ID, a date or a labelled combination, like scanner overlays show them."""
    name = f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN)}"
    pid = "".join(rng.choice(string.digits) for _ in range(rng.randint(6, 9)))
    date = f"{rng.randint(1930, 2024)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    choices = (name.replace("^", ", "), f"ID: {pid}", f"{date[6:]}/{date[4:6]}/{date[:4]}",
               f"DOB {date[:4]}-{date[4:6]}-{date[6:]}", f"{name.replace('^', ' ')} {pid}",
               f"MRN {rng.choice(string.ascii_uppercase)}{pid}", date)
    return rng.choice(choices)


@dataclass
class RenderedString:
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the ink
    char_inks: list[np.ndarray] = field(repr=False)  # per non-space character: bool mask, full size


@dataclass
class Case:
    name: str
    ds: Dataset
    strings: list[RenderedString]
    frames: int


def _background(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A grey-level background in 0..255: dark, ultrasound-like speckle fan, gradient or light page."""
    if kind == "dark":
        return rng.normal(12, 4, (h, w)).clip(0, 255)
    if kind == "page":
        return rng.normal(235, 6, (h, w)).clip(0, 255)
    if kind == "gradient":
        return np.tile(np.linspace(20, 200, w), (h, 1)) + rng.normal(0, 3, (h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h * 0.1, w / 2
    r, ang = np.hypot(yy - cy, xx - cx), np.arctan2(xx - cx, yy - cy)
    fan = (r > h * 0.1) & (r < h * 0.85) & (np.abs(ang) < 0.6)
    speckle = rng.rayleigh(45, (h, w)) * (1.2 - r / h)
    return np.where(fan, speckle, 5).clip(0, 255)


def _draw(img: np.ndarray, rng: random.Random, font_path: Path, size: int, text: str,
          occupied: list[tuple[int, int, int, int]]) -> RenderedString | None:
    h, w = img.shape
    font = ImageFont.truetype(str(font_path), size)
    x0, y0, x1, y1 = font.getbbox(text)
    tw, th = x1 - x0, y1 - y0
    if tw + 8 > w:
        return None
    for _ in range(30):
        x, y = rng.randint(4, w - tw - 4) - x0, rng.randint(4, h - th - 4) - y0
        box = (x + x0, y + y0, x + x1, y + y1)
        if not any(box[0] < b[2] + 6 and b[0] < box[2] + 6 and box[1] < b[3] + 6 and b[1] < box[3] + 6
                   for b in occupied):
            break
    else:
        return None
    layer = Image.new("L", (w, h), 0)
    ImageDraw.Draw(layer).text((x, y), text, font=font, fill=255)
    ink = np.asarray(layer) > 96
    region = img[box[1]:box[3], box[0]:box[2]]
    bright = region.mean() < 128
    level = rng.randint(225, 255) if bright else rng.randint(0, 30)
    img[:] = np.where(np.asarray(layer) > 0, img + (level - img) * (np.asarray(layer) / 255.0), img)
    inks = []
    for i, ch in enumerate(text):
        if ch.isspace():
            continue
        cx = x + font.getlength(text[:i])
        bx0, by0, bx1, by1 = font.getbbox(ch)
        m = np.zeros_like(ink)
        sl = (slice(max(0, y + by0), y + by1), slice(max(0, int(cx + bx0)), int(np.ceil(cx + bx1))))
        m[sl] = ink[sl]
        if m.any():
            inks.append(m)
    occupied.append(box)
    return RenderedString(text, box, inks)


#: (background, rows, columns, frames, rgb, transfer syntax, SOP class, modality)
LAYOUTS = (
    ("dark", 480, 640, 1, False, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, "OT"),
    ("speckle", 600, 800, 1, True, RLELossless, UltrasoundImageStorage, "US"),
    ("gradient", 512, 512, 1, False, JPEG2000Lossless, SecondaryCaptureImageStorage, "SC"),
    ("page", 700, 560, 1, False, DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, "OT"),
    ("speckle", 480, 640, 6, False, RLELossless, UltrasoundMultiFrameImageStorage, "US"),
    ("speckle", 768, 1024, 1, False, ExplicitVRLittleEndian, UltrasoundImageStorage, "US"),
)


def _dataset(frames: np.ndarray, rgb: bool, syntax: str, sop_class: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "CORPUS^CASE"
    if frames.shape[0] > 1:
        ds.NumberOfFrames = frames.shape[0]
    arr = frames if frames.shape[0] > 1 else frames[0]
    if rgb:
        arr = np.repeat(arr[..., None], 3, axis=-1)
        arr[..., 0] = np.minimum(arr[..., 0].astype(np.uint16) + 10, 255).astype(np.uint8)
    ds.set_pixel_data(arr, "RGB" if rgb else "MONOCHROME2", 8)
    if syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    return ds


def rendered_cases(count: int = 12, seed: int = 20260) -> list[Case]:
    """``count`` cases cycling through :data:`LAYOUTS`, 3 to 6 strings each."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    font_paths = fonts()
    cases = []
    for n in range(count):
        kind, h, w, nframes, rgb, syntax, sop, modality = LAYOUTS[n % len(LAYOUTS)]
        base = _background(kind, h, w, nrng)
        text_layer = np.full((h, w), np.nan)
        strings: list[RenderedString] = []
        occupied: list[tuple[int, int, int, int]] = []
        canvas = base.copy()
        for _ in range(rng.randint(3, 6)):
            s = _draw(canvas, rng, rng.choice(font_paths), rng.choice((12, 14, 16, 18, 22, 28)),
                      random_text(rng), occupied)
            if s:
                strings.append(s)
        text_px = canvas != base
        text_layer[text_px] = canvas[text_px]
        frames = []
        for f in range(nframes):
            frame = base if f == 0 else _background(kind, h, w, nrng)
            frames.append(np.where(text_px, text_layer, frame).round().clip(0, 255).astype(np.uint8))
        ds = _dataset(np.stack(frames), rgb, syntax, sop, modality)
        cases.append(Case(f"{n:02d}-{kind}-{modality}-{nframes}f-{syntax.name}", ds, strings, nframes))
    return cases


def masked_map(shape: tuple[int, int], boxes) -> np.ndarray:
    """Union of ``(x0, y0, x1, y1)`` boxes as a boolean map."""
    m = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        m[max(0, y0):y1, max(0, x0):x1] = True
    return m


def score(case: Case, masked: np.ndarray) -> tuple[int, int, int, float]:
    """(characters, characters masked, strings fully masked, false-masking share) for one frame."""
    chars = masked_chars = full = 0
    text = np.zeros_like(masked)
    for s in case.strings:
        ok = [(m & masked).sum() >= CHAR_MASKED_SHARE * m.sum() for m in s.char_inks]
        chars, masked_chars, full = chars + len(ok), masked_chars + sum(ok), full + all(ok)
        x0, y0, x1, y1 = s.box
        text[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = True
    false = float((masked & ~text).sum() / max(1, (~text).sum()))
    return chars, masked_chars, full, false


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
