"""The offline viewer inside a patient's copy: pre-rendered JPEGs and plain HTML pages, no script.

Per series (``IHE_PDI/V0001/`` in bundle order), every image, or every frame of a multi-frame
image (a cine longer than ``max_frames`` frames: an evenly sampled strip), is rendered with
:mod:`orthanc_gdpr.pixels.render` in the instance's default window and, for CT, the lung,
soft-tissue and bone presets. Each (window, image) has a JPEG (``D00001.JPG``: D default, L lung,
S soft tissue, B bone) and a page (``D00001.HTM``) with first / previous / next / last links,
links to the same image in the other windows and to the series' image list (``DINDEX.HTM``),
and access keys (P previous, N next, I image list, H overview). Pages work from ``file://``, a
CD or a USB stick: relative links, one stylesheet in the bundle, a Content-Security-Policy that
allows nothing but files of the bundle.

Size and quality: ``size`` is the longest side in pixels (a larger image is reduced by a whole
factor, so 512 -> 256, 1024 -> 256 at the default 256; 512 keeps CT at full resolution); ``quality`` is the JPEG quality. Both come
from the service settings ``VIEWER_SIZE`` and ``VIEWER_QUALITY``; ``VIEWER_SIZE=0`` leaves the
viewer out.
"""
from __future__ import annotations

import math
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from orthanc_gdpr.pixels.render import CT_PRESETS, frames, is_colour, render, sampled_window, to_8bit

from .pages import e, page, series_caption

#: the views of a grey CT image; any other image gets the default one only
CT_WINDOWS = ("default", "lung", "soft-tissue", "bone")
LETTER = {"default": "D", "lung": "L", "soft-tissue": "S", "bone": "B"}
LABEL = {"default": "window.default", "lung": "window.lung", "soft-tissue": "window.soft_tissue",
         "bone": "window.bone"}


@dataclass(frozen=True)
class ViewerOptions:
    size: int = 256
    quality: int = 80
    max_frames: int = 40

    @property
    def enabled(self) -> bool:
        return self.size > 0

    @classmethod
    def from_settings(cls, settings) -> "ViewerOptions":
        return cls(settings.viewer_size, settings.viewer_quality, settings.viewer_max_frames)


@dataclass
class Rendered:
    """One instance's pictures: per shown frame, window -> JPEG bytes."""
    frames: int
    shown: list[int]
    windows: tuple[str, ...]
    jpegs: list[dict[str, bytes]]
    width: int
    height: int


_luts: dict[tuple, np.ndarray] = {}  # (pixel dtype, rescale, photometric, window) -> 8-bit table


def _lut(ds, dtype, window) -> np.ndarray:
    """``render.to_8bit`` tabulated over every value of a 8/16-bit pixel type: the same mapping
    (Modality LUT, VOI window, MONOCHROME1), applied to a frame by one table look-up."""
    key = (dtype.str, str(ds.get("RescaleSlope", 1)), str(ds.get("RescaleIntercept", 0)),
           ds.get("PhotometricInterpretation"), window)
    table = _luts.get(key)
    if table is None:
        values = np.arange(1 << (8 * dtype.itemsize), dtype=np.dtype(f"u{dtype.itemsize}")).view(dtype)
        table = to_8bit(ds, values.reshape(1, -1), window)[0].ravel()
        if "ModalityLUTSequence" not in ds:  # a lookup table of its own: not shared with others
            if len(_luts) > 256:
                _luts.clear()
            _luts[key] = table
    return table


def _pictures(ds, frame, names: tuple[str, ...], factor: int = 1) -> dict[str, Image.Image]:
    """PIL images of one decoded frame, every ``factor``-th pixel each way, in each named window;
    a colour frame as it is."""
    shown = frame[::factor, ::factor] if factor > 1 else frame
    if is_colour(ds) or shown.ndim != 2 or shown.dtype.kind not in "ui" or shown.dtype.itemsize > 2:
        return {"default": render(ds, shown, "default")}
    own = sampled_window(ds, frame)
    windows = {"default": own}
    # a preset equal to the instance's own window is left out: the default view shows it
    windows.update((n, CT_PRESETS[n]) for n in names if n != "default"
                   and (CT_PRESETS[n].center, CT_PRESETS[n].width) != (own.center, own.width))
    index = np.ascontiguousarray(shown).view(np.dtype(f"u{shown.dtype.itemsize}"))
    return {n: Image.fromarray(np.take(_lut(ds, shown.dtype, w), index), "L") for n, w in windows.items()}


_scratch = threading.local()


def _jpeg(image: Image.Image, quality: int) -> bytes:
    """The JPEG of one picture. Pillow holds the GIL while it encodes into memory (``BytesIO``) but
    releases it while it encodes into a file, so each thread encodes into a scratch file of its
    own and the other download threads run meanwhile. The file has no name (owner-only, removed
    when it is created) and each picture overwrites the one before."""
    scratch = getattr(_scratch, "file", None)
    if scratch is None:
        scratch = _scratch.file = tempfile.TemporaryFile(prefix="viewer-")
    scratch.seek(0)
    image.save(scratch, "JPEG", quality=quality)
    size = scratch.tell()
    scratch.seek(0)
    return scratch.read(size)


def _windows(ds) -> tuple[str, ...]:
    return CT_WINDOWS if ds.get("Modality") == "CT" and not is_colour(ds) else ("default",)


def render_instance(ds, options: ViewerOptions) -> Rendered | None:
    """The viewer's JPEGs of one full dataset, or None when it has no picture we can decode."""
    if "PixelData" not in ds:
        return None
    try:
        pixels = frames(ds)
    except Exception:  # noqa: BLE001 - an undecodable image: the DICOM is in the copy, the viewer skips it
        return None
    count = int(pixels.shape[0])
    step = max(1, math.ceil(count / options.max_frames))
    shown = list(range(0, count, step))
    rows, cols = pixels.shape[1], pixels.shape[2]
    factor = max(1, math.ceil(max(rows, cols) / options.size))
    windows = _windows(ds)
    jpegs = []
    width = height = 0
    for f in shown:
        out = {}
        for w, img in _pictures(ds, pixels[f], windows, factor).items():
            width, height = img.size
            out[w] = _jpeg(img, options.quality)
        jpegs.append(out)
    return Rendered(count, shown, tuple(jpegs[0]) if jpegs else (), jpegs, width, height)


@dataclass
class SeriesViewer:
    """The pictures of one series as they are added to the ZIP, in plan order."""
    folder: str  # IHE_PDI/V0001
    windows: tuple[str, ...] = ()
    images: list[dict] = field(default_factory=list)  # {frame, frames, width, height}
    sampled: tuple[int, int] | None = None  # (frames, step) of the longest sampled cine

    def add(self, rendered: Rendered) -> list[tuple[str, bytes]]:
        """Files for the ZIP (name, JPEG) of one rendered instance."""
        if not self.windows:
            self.windows = rendered.windows
        files = []
        if len(rendered.shown) < rendered.frames:
            step = rendered.shown[1] - rendered.shown[0] if len(rendered.shown) > 1 else rendered.frames
            self.sampled = (rendered.frames, step)
        for f, jpegs in zip(rendered.shown, rendered.jpegs):
            n = len(self.images) + 1
            self.images.append({"frame": f + 1, "frames": rendered.frames,
                                "width": rendered.width, "height": rendered.height})
            for w in self.windows:  # a preset this instance left out equals its default view
                files.append((f"{self.folder}/{LETTER[w]}{n:05d}.JPG", jpegs.get(w, jpegs["default"])))
        return files

    def first_page(self, window: str) -> str:
        return f"{self.folder}/{LETTER[window]}00001.HTM"

    def pages(self, t, series: dict) -> list[tuple[str, str]]:
        """(name, HTML) of every page of this series, in ``t``'s language. What is the same on
        every page is translated and escaped once (a CT series has thousands of pages)."""
        total = len(self.images)
        modality, number = series.get("Modality") or "?", series.get("SeriesNumber") or "?"
        body = series.get("BodyPartExamined") or t("viewer.body_part_unknown")
        heading = f"<h1>{e(series_caption(t, series))}</h1>"
        label = {k: e(t(f"viewer.{k}")) for k in ("first", "prev", "next", "last", "index", "nav", "windows", "keys")}
        names = {w: t(LABEL[w]) for w in self.windows}
        sampled = f"<p>{e(t('viewer.sampled', frames=self.sampled[0], step=self.sampled[1]))}</p>" if self.sampled else ""
        out = []
        for w in self.windows:
            L, wname = LETTER[w], names[w]
            tail = (f'<li><a href="{L}INDEX.HTM" accesskey="i">{label["index"]}</a></li></ul></nav>')
            others = [o for o in self.windows if o != w]
            keys = f'<p class="keys">{label["keys"]}</p>'

            def link(k: int, n: int, what: str, key: str = "", rel: str = "") -> str:
                if not 1 <= k <= total or k == n:
                    return f'<li><span class="off">{label[what]}</span></li>'
                attrs = (f' accesskey="{key}"' if key else "") + (f' rel="{rel}"' if rel else "")
                return f'<li><a href="{L}{k:05d}.HTM"{attrs}>{label[what]}</a></li>'

            for i, img in enumerate(self.images):
                n = i + 1
                alt = t("viewer.alt", modality=modality, body_part=body, number=number, n=n, total=total, window=wname)
                position = t("viewer.position", n=n, total=total)
                if img["frames"] > 1:
                    position += " (" + t("viewer.frame", frame=img["frame"], frames=img["frames"]) + ")"
                main = [
                    heading, f'<p class="position">{e(position)} · {e(wname)}</p>', sampled,
                    f'<p class="frame"><img src="{L}{n:05d}.JPG" width="{img["width"]}" height="{img["height"]}" '
                    f'alt="{e(alt)}"></p>',
                    f'<nav aria-label="{label["nav"]}"><ul class="pager">',
                    link(1, n, "first"), link(n - 1, n, "prev", "p", "prev"), link(n + 1, n, "next", "n", "next"),
                    link(total, n, "last"), tail]
                if others:
                    main.append(f'<nav aria-label="{label["windows"]}"><h2>{label["windows"]}</h2><ul class="windows">'
                                + "".join(f'<li><a href="{LETTER[o]}{n:05d}.HTM">{e(names[o])}</a></li>' for o in others)
                                + "</ul></nav>")
                main.append(keys)
                title = t("viewer.title", modality=modality, number=number, window=wname, n=n, total=total)
                out.append((f"{self.folder}/{L}{n:05d}.HTM", page(t, title, "\n".join(filter(None, main)), base="../../")))
            items = "".join(f'<li><a href="{L}{k:05d}.HTM">{e(t("viewer.position", n=k, total=total))}</a></li>'
                            for k in range(1, total + 1))
            index = [heading, f"<p>{e(wname)}</p>", sampled,
                     f'<nav aria-label="{label["index"]}"><ol class="slices">{items}</ol></nav>']
            title = t("viewer.index_title", modality=modality, number=number, window=wname)
            out.append((f"{self.folder}/{L}INDEX.HTM", page(t, title, "\n".join(filter(None, index)), base="../../")))
        return out
