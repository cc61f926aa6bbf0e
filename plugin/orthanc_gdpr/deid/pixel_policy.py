"""How a profile's pixel options meet the pixel package (:mod:`orthanc_gdpr.pixels`).

* Report-bearing objects (SR, KO and PR with text, encapsulated documents, document-like
  captures) are dropped by default. With Clean Structured Content, SR and KO are kept and their
  content tree is cleaned by the table's rules; with Clean Graphics, a presentation state is kept
  and its graphic annotations are cleaned; document-like captures are kept only when Clean
  Structured Content and Clean Pixel Data both apply; encapsulated PDF/CDA documents are always
  dropped (nothing here can clean them).
* Clean Recognizable Visual Features works on whole head CT/MR volumes, so it runs before the
  per-instance engine (:func:`deface_series`); an instance of a head volume that did not go
  through it is held back.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from .. import pixels
from ..pixels import is_report_bearing

HEAD_WORDS = ("HEAD", "BRAIN", "SKULL", "FACE", "NEURO", "CRANI", "ORBIT", "SINUS")
MIN_VOLUME_SLICES = 10


def report_policy(ds: Dataset, clean_structured: bool, clean_pixels: bool, clean_graphics: bool) -> str | None:
    """Why ``ds`` must be dropped under these options, or None to keep it."""
    reason = is_report_bearing(ds)
    if reason is None:
        return None
    if reason.startswith(("structured report", "key object")) and clean_structured:
        return None
    if reason.startswith("presentation state") and clean_graphics:
        return None
    if reason.startswith("document-like") and clean_structured and clean_pixels:
        return None
    return f"report-bearing object dropped ({reason})"


def is_head_volume(ds: Dataset) -> bool:
    """CT or MR of the head (by body part, descriptions or protocol): a face can be rendered."""
    if str(ds.get("Modality", "")).upper() not in ("CT", "MR"):
        return False
    text = " ".join(str(ds.get(k, "") or "") for k in
                    ("BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName")).upper()
    return any(word in text for word in HEAD_WORDS)


def deface_series(files: list[str], workdir: Path) -> tuple[dict[int, str], dict[int, str]]:
    """Deface every head volume among ``files`` (indexes into the list).

    Returns ``(defaced, failed)``: index -> path of the defaced copy written in ``workdir``, and
    index -> reason for slices of head volumes that could not be defaced (to hold back).
    """
    series: dict[str, list[int]] = defaultdict(list)
    for index, path in enumerate(files):
        try:
            head = pydicom.dcmread(path, defer_size=1024)  # large values stay on disk, presence is known
        except Exception:  # unreadable files are the engine's to refuse, with its own reason
            continue
        if is_head_volume(head) and "PixelData" in head:  # header-only objects have no face to remove
            series[str(head.get("SeriesInstanceUID", ""))].append(index)
    defaced: dict[int, str] = {}
    failed: dict[int, str] = {}
    for number, indexes in enumerate(series.values()):
        if len(indexes) < MIN_VOLUME_SLICES:
            failed.update({i: f"head series of {len(indexes)} slices: too few to reconstruct and deface"
                           for i in indexes})
            continue
        try:
            slices = [pydicom.dcmread(files[i]) for i in indexes]
            pixels.deface_volume(slices)
        except (pixels.DefaceError, ValueError, OSError) as e:
            failed.update({i: f"face could not be removed: {e}" for i in indexes})
            continue
        for i, ds in zip(indexes, slices):
            out = workdir / f"defaced-{number}-{i}.dcm"
            ds.save_as(out, enforce_file_format=True)
            defaced[i] = str(out)
    return defaced, failed
