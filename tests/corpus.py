"""Test corpora and checkers for the de-identification engine.

* :func:`corpus_files`: the readable DICOM instances of pydicom's test files, pydicom-data and
  deid-data (whatever is installed).
* :func:`sensitive_values` / :func:`leaks`: the leak checker. It walks the INPUT at every depth,
  collects the values of attributes whose effective action under a profile is not K, and looks
  for each of them in the OUTPUT's raw bytes.
* :func:`make_instance`, :func:`deep_sequence_file`: synthetic test data, built in the tests.
* :func:`dciodvfy_errors`: the number of ``Error`` lines dicom3tools reports for a file.
* :func:`quiet_pydicom_in_test`: an autouse fixture for the test modules that import it.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import struct
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from orthanc_gdpr.deid import Profile
from orthanc_gdpr.deid.files import quiet_pydicom, read_split
from orthanc_gdpr.deid.engine import DeidentificationError
from orthanc_gdpr.pixels import is_report_bearing
from orthanc_gdpr.deid.options import ALL as ALL_OPTIONS
from orthanc_gdpr.deid.table import SafePrivate
from orthanc_gdpr.deid.uids import is_registered

PROFILES = ("basic", "research", "teaching", "clinical-trial")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: Values shorter than this are too common to prove anything (``M``, ``CT``, ``1``).
MIN_VALUE_LENGTH = 4
STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
                        "UC", "UI", "UR", "UT"})
#: Values the engine itself writes (dummies, marks): finding them in the output proves nothing.
ENGINE_TEXT = ("ANONYMIZED", "ANONYMOUS", "19000101000000", "urn:none", "YES", "UNMODIFIED",
               "DICOM PS3.15 2026d Annex E", "Basic Application Confidentiality Profile",
               *(o.meaning for o in ALL_OPTIONS))


@contextlib.contextmanager
def quiet_pydicom_restored() -> Iterator[None]:
    """The CLI's pydicom settings for a while; the test process gets its own back after."""
    mode = pydicom.config.settings.reading_validation_mode
    try:
        with warnings.catch_warnings():
            quiet_pydicom()
            yield
    finally:
        pydicom.config.settings.reading_validation_mode = mode


@pytest.fixture(autouse=True)
def quiet_pydicom_in_test():
    """Autouse in the test modules that import it: :func:`quiet_pydicom_restored` per test."""
    with quiet_pydicom_restored():
        yield


def _installed_data_dirs() -> list[Path]:
    dirs = []
    for module in ("data_store", "deid_data"):
        try:
            package = __import__(module)
        except ImportError:
            continue
        dirs.append(Path(package.__file__).parent / "data")
    return dirs


@functools.cache
def corpus_files() -> tuple[Path, ...]:
    """Every image-like input the engine accepts, from the three public corpora (sorted,
    de-duplicated); report-bearing objects, which profiles drop, are in :func:`report_files`."""
    return tuple(p for p in _readable_files() if p not in report_files())


@functools.cache
def report_files() -> tuple[Path, ...]:
    """Report-bearing objects of the corpora (SR, encapsulated documents, document captures...)."""
    return tuple(p for p in _readable_files() if is_report_bearing(read_split(p.read_bytes())[0]))


@functools.cache
def _readable_files() -> tuple[Path, ...]:
    candidates = [Path(p) for p in pydicom.data.get_testdata_files() if Path(p).is_file()]
    for directory in _installed_data_dirs():
        candidates += [p for p in directory.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc", ".md", ".zip")]
    usable = []
    for path in sorted(set(candidates)):
        try:
            ds, _ = read_split(path.read_bytes())  # the engine's own reader: truncation refused
        except DeidentificationError:
            continue
        if str(ds.get("SOPInstanceUID", "") or "").strip():
            usable.append(path)
    return tuple(usable)


def sample_file(name: str) -> Path:
    return Path(pydicom.data.get_testdata_file(name))


# -- the leak checker ------------------------------------------------------------------------


def _strings(elem) -> list[str]:
    """The text values of a string element: whole value, each of its values, PN components."""
    if elem.VR not in STRING_VRS or elem.value in (None, ""):
        return []
    value = elem.value
    values = [str(v) for v in value] if isinstance(value, (list, pydicom.multival.MultiValue)) else [str(value)]
    out = set()
    for v in values:
        v = v.strip(" \x00")
        out.add(v)
        if elem.VR == "PN":
            for group in v.split("="):
                out.update(part.strip() for part in group.split("^"))
    if len(values) > 1:
        out.add("\\".join(v.strip() for v in values))
    return [v for v in out if len(v) >= MIN_VALUE_LENGTH]


def _walk(ds: Dataset, profile: Profile, safe: SafePrivate | None, removed: bool,
          sensitive: set[str], kept: set[str]) -> None:
    """Sort the values of ``ds`` into sensitive and kept; ``removed``: inside a removed sequence."""
    stack = [(ds, removed)]
    while stack:
        dataset, gone = stack.pop()
        for elem in dataset:
            tag = int(elem.tag)
            group = tag >> 16
            if group & 1:
                creator_tag = (group << 16) | ((tag >> 8) & 0xFF)
                creator = str(dataset[creator_tag].value) if (tag & 0xFF00) and creator_tag in dataset else ""
                action = "K" if (0x10 <= (tag & 0xFFFF) <= 0xFF) or (safe and creator and safe.is_safe(creator, tag)) else "X"
            else:
                rule = profile.table.lookup(tag)
                action = "K" if rule is None else rule.action
                if rule is None and elem.VR in ("UI", "DA", "DT"):
                    action = "U"  # unlisted UIDs and dates are remapped or shifted, not kept
            # Cleaned values (C) keep their harmless part (words; times, which a whole-day shift
            # leaves as they are), so they count as kept here: what cleaning
            # removes is tested by the cleaning tests.
            cleaned_text = action == "C" and elem.VR not in ("DA", "DT", "PN", "UI")
            bucket = sensitive if (gone or action in "XZDUC") and not cleaned_text else kept
            if elem.VR == "SQ":
                stack.extend((item, gone or action in "XZD") for item in elem.value)
            else:
                bucket.update(_strings(elem))


def _too_common(value: str) -> bool:
    """Short numbers (``0010``, ``1234``, times) turn up by chance, e.g. inside new UIDs."""
    return len(value) < MIN_VALUE_LENGTH or (len(value) < 8 and all(c in "0123456789.:+- " for c in value))


def sensitive_values(ds: Dataset, profile: Profile) -> set[str]:
    """Values of the input that the profile does not keep and that must not be in the output."""
    sensitive: set[str] = set()
    kept: set[str] = set()
    safe = SafePrivate.load() if profile.has("retain-safe-private") else None
    _walk(ds, profile, safe, False, sensitive, kept)
    if profile.has("retain-uids"):
        kept |= {v for v in sensitive if _looks_like_uid(v)}
    if profile.has("retain-longitudinal-full-dates"):
        kept |= {v for v in sensitive if v.isdigit() and len(v) == 8}
    pixels = bytes(ds.get_item(0x7FE00010).value or b"") if 0x7FE00010 in ds else b""
    return {v for v in sensitive
            if not _too_common(v) and not any(v in e for e in ENGINE_TEXT) and not is_registered(v)
            and not any(v in k for k in kept) and v.encode("utf-8", "replace") not in pixels}


def _looks_like_uid(value: str) -> bool:
    return all(part.isdigit() for part in value.split("."))


def _encodings(value: str) -> set[bytes]:
    forms = set()
    for codec in ("ascii", "latin-1", "utf-8"):
        try:
            forms.add(value.encode(codec))
        except UnicodeEncodeError:
            pass
    return forms


def leaks(input_ds: Dataset, output: bytes, profile: Profile) -> list[str]:
    """Sensitive input values found anywhere in the output bytes."""
    return sorted(v for v in sensitive_values(input_ds, profile) if any(f in output for f in _encodings(v)))


# -- synthetic instances --------------------------------------------------------------------


def make_instance(patient_name: str = "Doe^John", patient_id: str = "PID4711", birth: str = "19610304",
                  study_date: str = "20200102", study_uid: str | None = None, accession: str = "ACC99887766",
                  charset: str | None = None, pixels: bytes | None = None) -> Dataset:
    """A small, valid CT instance with file meta, ready to be de-identified."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.SourceApplicationEntityTitle = "SENDER_AE_X1"
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = "101112"
    ds.AccessionNumber = accession
    ds.Modality = "CT"
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth
    ds.PatientSex = "M"
    ds.StudyID = "STUDY42"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels if pixels is not None else bytes(range(32))
    return ds


def to_bytes(ds: Dataset) -> bytes:
    from io import BytesIO
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# -- hostile nesting, written as raw bytes --------------------------------------------------


def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _pad(text: str) -> bytes:
    data = text.encode("ascii")
    return data + (b"\0" if len(data) % 2 else b"")


def deep_sequence_file(depth: int) -> bytes:
    """A Part 10 file whose ContentSequence nests ``depth`` levels (undefined lengths).

    Built with bytes, not pydicom, so that the test itself never recurses.
    """
    uid = generate_uid()
    meta_body = (_explicit(0x00020001, b"OB", b"\0\1")
                 + _explicit(0x00020002, b"UI", _pad("1.2.840.10008.5.1.4.1.1.88.11"))
                 + _explicit(0x00020003, b"UI", _pad(uid))
                 + _explicit(0x00020010, b"UI", _pad(ExplicitVRLittleEndian)))
    meta = _explicit(0x00020000, b"UL", struct.pack("<I", len(meta_body))) + meta_body
    head = (_explicit(0x00080016, b"UI", _pad("1.2.840.10008.5.1.4.1.1.88.11"))
            + _explicit(0x00080018, b"UI", _pad(uid))
            + _explicit(0x00100010, b"PN", _pad("Deep^Patient")))
    open_seq = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + b"\xff\xff\xff\xff"
    open_item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close_item = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    close_seq = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    leaf = _explicit(0x0040A160, b"UT", _pad("leaf text"))
    body = (open_seq + open_item) * depth + leaf + (close_item + close_seq) * depth
    return b"\0" * 128 + b"DICM" + meta + head + body


# -- dicom3tools ----------------------------------------------------------------------------

DCIODVFY = shutil.which("dciodvfy")


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines of dciodvfy for one file."""
    assert DCIODVFY, "dciodvfy (dicom3tools) is not installed"
    done = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, errors="replace", timeout=120)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


def iter_datasets(ds: Dataset) -> Iterator[Dataset]:
    """``ds`` and every sequence item in it, at every depth (iteratively)."""
    stack = [ds]
    while stack:
        current = stack.pop()
        yield current
        for elem in current:
            if elem.VR == "SQ":
                stack.extend(elem.value)


def sequence_of(*items: Dataset) -> Sequence:
    return Sequence(list(items))
