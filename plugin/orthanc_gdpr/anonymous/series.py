"""The series an export reads: its instances by Instance Number, loaded only when chosen.

A series comes from files (:func:`series_from_files`: headers first, pixels of the chosen
instances only) or from Orthanc (the service builds :class:`Member` objects whose ``load``
fetches the instance over REST). Each series is named by its Orthanc ID, computed here for
files exactly as Orthanc computes it, so that a decision about local files and one about the
same series in Orthanc name the same source.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..deid.files import iter_inputs, read
from ..deid.engine import DeidentificationError
from ..pixels.reports import is_report_bearing
from .refusal import Refused

#: Series whose objects are never images: refused before anything is read.
NON_IMAGE_MODALITIES = {"SR": "structured report", "DOC": "encapsulated document", "KO": "key object selection",
                        "PR": "presentation state", "RTPLAN": "radiotherapy plan", "RTSTRUCT": "structure set"}


def orthanc_id(*parts: str) -> str:
    """Orthanc's ID of a resource: SHA-1 of its identifying UIDs joined by ``|``, in five
    groups of eight hex digits (patient: PatientID; study: + StudyInstanceUID; series: +
    SeriesInstanceUID)."""
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


def not_an_image(ds: Dataset) -> str | None:
    """Why ``ds`` cannot be exported as an image (a short reason), or None."""
    reason = is_report_bearing(ds) or NON_IMAGE_MODALITIES.get(str(ds.get("Modality", "")).upper())
    if reason:
        return reason
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return "no pixel data"
    return None


@dataclass
class Member:
    """One instance of a series."""
    instance_number: int | None
    frames: int
    load: Callable[[], Dataset] = field(repr=False)
    orthanc_id: str = ""


@dataclass
class Series:
    orthanc_id: str
    patient_key: str  #: the Orthanc ID of the patient: counts distinct patients, never leaves the audit
    modality: str
    members: list[Member]

    @property
    def slices(self) -> int:
        """Slices in the series: single-frame instances count one, multi-frame ones their frames."""
        return sum(m.frames for m in self.members)


def _loader(path: Path) -> Callable[[], Dataset]:
    def load() -> Dataset:
        try:
            return read(path)
        except DeidentificationError as exc:
            raise Refused("inputs", "unreadable", f"a chosen instance cannot be read ({exc})") from None
    return load


def _header(path: Path) -> Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, NotImplementedError,
            RecursionError, struct.error):
        return None


def series_from_files(paths: Iterable[Path]) -> list[Series]:
    """The series in ``paths`` (files and folders), each with its members; non-DICOM files are
    skipped and counted, a folder with no DICOM at all is refused."""
    found: dict[str, Series] = {}
    skipped = 0
    for path in iter_inputs([Path(p) for p in paths]):
        ds = _header(path)
        if ds is None or "SeriesInstanceUID" not in ds:
            skipped += 1
            continue
        patient = str(ds.get("PatientID", ""))
        sid = orthanc_id(patient, str(ds.get("StudyInstanceUID", "")), str(ds.SeriesInstanceUID))
        series = found.setdefault(sid, Series(sid, orthanc_id(patient), str(ds.get("Modality", "")).upper(), []))
        number = ds.get("InstanceNumber")
        series.members.append(Member(int(number) if number not in (None, "") else None,
                                     int(ds.get("NumberOfFrames") or 1), _loader(path)))
    if not found:
        raise Refused("inputs", "no-dicom", f"no DICOM instance found ({skipped} other file(s) skipped)")
    return list(found.values())
