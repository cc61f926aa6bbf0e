"""DICOM in, DICOM out: reading, de-identifying and writing instances, one or a whole tree.

An input that cannot be read, de-identified or written is held back with a clear reason; an
output file appears only complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import Pool
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

import pydicom
import pydicom.config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..pixels.cores import share_cores
from . import raw
from .encoder import encode_part10
from .engine import Deidentifier, DeidentificationError, InstanceDropped, _label
from .keys import Keyring
from .pixel_policy import deface_series
from .profile import Profile
from .report import InstanceReport, RunReport

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._^-]")


_UNDEFINED_LENGTH = 0xFFFFFFFF


#: What pydicom hears during the parse in progress (per thread and task): see _PrematureEnd.
_PARSE_LOG: ContextVar[list[str] | None] = ContextVar("orthanc_gdpr_parse_log", default=None)


class _PrematureEnd(logging.Handler):
    """pydicom logs an end of data inside an element, then returns what it read so far.

    This handler lets :func:`_parse` hear it, so that a truncated file is held back instead of
    being written shorter. It records only during our own parses (a context variable).
    """

    def emit(self, record: logging.LogRecord) -> None:
        heard = _PARSE_LOG.get()
        if heard is not None and "end of file" in record.getMessage().lower():
            heard.append(record.getMessage())


_PREMATURE_END = _PrematureEnd()


def _check_complete(ds: Dataset, pixels_follow: bool, size: int | None) -> None:
    """Refuse a data set that pydicom read from truncated data: one that ends inside an element.

    An image without pixel data is not truncated: it is a header-only object (see the engine).

    ``size``: the number of bytes it was read from (None when they were inflated first).
    """
    keys = list(ds.keys())
    last = ds.get_item(keys[-1]) if keys else None
    if (size is not None and not pixels_follow and last is not None and last.is_raw
            and last.length != _UNDEFINED_LENGTH and 0 < size - (last.value_tell + last.length) < 12):
        raise DeidentificationError("truncated: the file ends inside an element header")
    stack = [ds]
    while stack:
        dataset = stack.pop()
        for tag, elem in list(dataset._dict.items()):  # get_item without its Tag() per element
            if elem.is_raw and elem.value is None:
                elem = dataset.get_item(tag)  # decodes it, as get_item always did
            if elem.is_raw:
                if elem.value is not None and elem.length != _UNDEFINED_LENGTH and len(elem.value) < elem.length:
                    raise DeidentificationError(f"truncated: the file ends inside {_label(int(tag))}")
            elif elem.VR == "SQ":
                stack.extend(elem.value)


def _parse(fp: BinaryIO | mmap.mmap | str | os.PathLike, stop_before_pixels: bool) -> Dataset:
    """dcmread, with a second, forced attempt for bare data sets; hostile input -> DeidentificationError."""
    def attempt(force: bool) -> Dataset:
        if not isinstance(fp, (str, os.PathLike)):
            fp.seek(0)
        heard: list[str] = []
        token = _PARSE_LOG.set(heard)
        try:
            ds = pydicom.dcmread(fp, force=force, stop_before_pixels=stop_before_pixels)
        finally:
            _PARSE_LOG.reset(token)
        if heard:
            raise DeidentificationError(f"truncated: {heard[0]}"[:300])
        return ds

    if _PREMATURE_END not in pydicom.config.logger.handlers:
        pydicom.config.logger.addHandler(_PREMATURE_END)

    try:
        try:
            ds = attempt(force=False)
        except InvalidDicomError:
            ds = attempt(force=True)
            if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
                raise DeidentificationError("not a DICOM file (no preamble, no SOP UIDs)") from None
    except DeidentificationError:
        raise
    except RecursionError:
        raise DeidentificationError("sequences nested too deep to parse safely") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, NotImplementedError, struct.error) as e:
        raise DeidentificationError(f"unreadable DICOM: {type(e).__name__}: {e}"[:300]) from None
    return ds


def read(source: str | os.PathLike | bytes) -> Dataset:
    """Parse one DICOM instance (Part 10 file, or a bare data set with SOP UIDs)."""
    return _parse(io.BytesIO(source) if isinstance(source, bytes) else source, stop_before_pixels=False)


def _trailing_pixel_data(ds: Dataset, tail: memoryview) -> int:
    """The length of the native (defined-length) Pixel Data element that ``tail`` starts with,
    when it is encoded like the data set before it and followed by nothing but, at most, Data
    Set Trailing Padding (FFFC,FFFC), which Table E.1-1 removes anyway; 0 otherwise. The element
    can then be copied to the output byte for byte."""
    implicit, little = getattr(ds, "original_encoding", (None, None))
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if implicit is None or not little or (syntax is not None and UID(syntax).is_implicit_VR is not implicit):
        return 0
    return raw.trailing_pixel_length(tail, implicit)


def _split(fp: BinaryIO | mmap.mmap, data: bytes | mmap.mmap, split: bool = True
           ) -> tuple[Dataset, memoryview | bytes]:
    """:func:`read_split` on ``data`` through ``fp``, a reader over the same bytes.

    ``split=False`` parses everything (for an engine that needs the pixel data).
    """
    ds = _parse(fp, stop_before_pixels=split)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        ds = _parse(fp, stop_before_pixels=False)  # read from an inflated copy: offsets mean nothing
        _check_complete(ds, pixels_follow=False, size=None)
        return ds, b""
    tail = memoryview(data)[fp.tell():]
    pixels = _trailing_pixel_data(ds, tail) if split and tail else 0
    if pixels:
        _check_complete(ds, pixels_follow=True, size=len(data))
        return ds, tail[:pixels]
    if tail:
        ds = _parse(fp, stop_before_pixels=False)
    _check_complete(ds, pixels_follow=False, size=len(data))
    return ds, b""


def read_split(data: bytes) -> tuple[Dataset, memoryview | bytes]:
    """Parse an instance, leaving a trailing native Pixel Data element undecoded.

    Returns the data set and the raw bytes of that element (b"" when the whole instance had to
    be parsed: encapsulated or missing pixel data, or elements after it). Pixel data is never
    changed by de-identification, so copying it verbatim is both faster and byte-identical.
    """
    return _split(io.BytesIO(data), data)


@contextmanager
def _source(source: bytes | str | os.PathLike) -> Iterator[tuple[BinaryIO | mmap.mmap, bytes | mmap.mmap]]:
    """A reader and the bytes behind it; files are memory-mapped, not copied into memory."""
    if isinstance(source, bytes):
        yield io.BytesIO(source), source
        return
    try:
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as e:
        raise DeidentificationError(f"cannot read input: {e.strerror}") from None
    if mapped is None:
        yield io.BytesIO(b""), b""
        return
    try:
        yield mapped, mapped
    finally:
        try:
            mapped.close()
        except BufferError:  # a view still referenced (e.g. by a traceback): closed when collected
            pass


def encode(ds: Dataset) -> bytes:
    """Write ``ds`` as a DICOM Part 10 file, keeping its transfer syntax."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        ds.file_meta = meta = meta or FileMetaDataset()
        implicit = getattr(ds, "original_encoding", (True, True))[0]
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = None  # the 128-byte preamble may carry anything (e.g. a TIFF header): zeroed
    syntax = UID(meta.TransferSyntaxUID)
    if (syntax == DeflatedExplicitVRLittleEndian or not syntax.is_transfer_syntax
            or getattr(ds, "original_encoding", None) != (syntax.is_implicit_VR, True)):
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = syntax.is_compressed
    try:
        return encode_part10(ds, meta, syntax.is_implicit_VR)
    except Exception:  # not covered, or an error: pydicom writes it (or raises its own error)
        return _encode_pydicom(ds, meta, syntax.is_implicit_VR)


def _encode_pydicom(ds: Dataset, meta: FileMetaDataset, implicit: bool) -> bytes:
    """What dcmwrite does for a little endian data set written as read, minus its deep copy of
    the file meta (ours to change). :func:`encoder.encode_part10` gives the same bytes, faster."""
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    out.is_implicit_VR, out.is_little_endian = implicit, True
    write_dataset(out, ds)
    return out.getvalue()


def _deidentify(engine: Deidentifier, fp: BinaryIO | mmap.mmap, data: bytes | mmap.mmap, defaced: bool = False
                ) -> tuple[Dataset, bytes, memoryview | bytes, InstanceReport]:
    """Read and de-identify one instance: (data set, encoded head, verbatim pixel tail, report)."""
    ds, pixels = _split(fp, data, split=engine.pixel_data_untouched)
    try:
        report = engine.deidentify(ds, defaced, pixels_split=bool(pixels))
        return ds, encode(ds), pixels, report
    except DeidentificationError:
        raise
    except RecursionError:
        raise DeidentificationError("sequences nested too deep to process safely") from None
    except Exception as e:  # any fault in a hostile file: hold the instance back, say why
        raise DeidentificationError(f"cannot de-identify: {type(e).__name__}: {e}"[:300]) from None


def deidentify_bytes(engine: Deidentifier, data: bytes | str | os.PathLike, defaced: bool = False
                     ) -> tuple[Dataset, bytes, InstanceReport]:
    """Read, de-identify and re-encode one instance; raises DeidentificationError.

    The returned data set lacks a trailing native Pixel Data element (copied verbatim into the
    returned bytes).
    """
    with _source(data) as (fp, buffer):
        ds, head, pixels, report = _deidentify(engine, fp, buffer, defaced)
        return ds, head + pixels, report


def output_path(ds: Dataset, report: InstanceReport) -> Path:
    """patient pseudonym / study UID / series UID / SOP instance UID.dcm: no identifiers."""
    return _output_path(report, str(ds.get("StudyInstanceUID", "study")), str(ds.get("SeriesInstanceUID", "series")))


def _output_path(report: InstanceReport, study_uid: str, series_uid: str) -> Path:
    parts = [report.patient_pseudonym, study_uid, series_uid, f"{report.sop_instance_uid}.dcm"]
    return Path(*(_SAFE_NAME.sub("_", p) for p in parts))


def deidentify_raw(engine: Deidentifier, data: bytes | mmap.mmap) -> tuple[Path, bytes, memoryview, InstanceReport] | None:
    """The engine's result through its raw-element fast path (:mod:`.raw`): (output path, head,
    pixel element, report), or None where that path does not promise the engine's very bytes
    (the caller then runs the engine)."""
    try:
        result = raw.deidentify(engine, data)
    except Exception:  # NotCovered, or anything unexpected: the engine decides, and says why
        return None
    return _output_path(result.report, result.study_uid, result.series_uid), result.head, result.pixels, result.report


def write_atomic(path: Path, *parts: bytes | memoryview) -> None:
    """Write ``path`` complete or not at all: a hidden per-process partial file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            for part in parts:
                f.write(part)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def iter_inputs(paths: list[Path]) -> Iterator[Path]:
    """Every file under the given files and folders, in a stable order (DICOMDIRs skipped)."""
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    if name.upper() != "DICOMDIR" and not name.startswith("."):
                        yield Path(root) / name
        else:
            yield p


@dataclass(frozen=True)
class _Job:
    profile: Profile
    key: bytes
    out_dir: Path
    previews_dir: Path | None = None


_worker: tuple[Deidentifier, Path] | None = None


def quiet_pydicom() -> None:
    """Stop pydicom warning about every odd value it reads (the run report says what matters).

    Called by the command line and its worker processes, never on import: a library that imports
    the engine keeps its own pydicom settings.
    """
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")


def _init_worker(job: _Job, workers: int) -> None:
    """Set up a process that de-identifies inputs, one of ``workers`` doing so side by side."""
    global _worker
    quiet_pydicom()
    share_cores(workers)
    engine = Deidentifier(job.profile, Keyring(job.key))
    engine.previews_dir = job.previews_dir
    _worker = (engine, job.out_dir)


#: What became of one input: ("written", (relative output path, report)), ("held", reason) or
#: ("dropped", reason).
Outcome = tuple[int, str, "tuple[str, dict] | str"]


def _process(item: tuple[int, str, bool]) -> Outcome:
    index, source, defaced = item
    assert _worker is not None
    engine, out_dir = _worker
    raw_path = raw.covers(engine)
    try:
        with _source(source) as (fp, buffer):
            fast = deidentify_raw(engine, buffer) if raw_path and not defaced else None
            if fast is not None:
                relative, head, pixels, report = fast
                del fast
            else:
                ds, head, pixels, report = _deidentify(engine, fp, buffer, defaced)
                relative = output_path(ds, report)
            write_atomic(out_dir / relative, head, pixels)  # pixels: straight from the mapped input
            del pixels
        return index, "written", (str(relative), report.to_dict())
    except InstanceDropped as e:
        return index, "dropped", str(e)
    except DeidentificationError as e:
        return index, "held", str(e)
    except OSError as e:
        return index, "held", f"cannot write output: {e.strerror}"


def _chunk(profile: Profile) -> int:
    """Inputs handed to a worker at a time: header work takes milliseconds per file, so batches
    of 16 save round trips; pixel cleaning takes a quarter of a second or more per frame, so one
    at a time keeps every worker busy to the end (a batch of 16 could leave one worker with
    seconds of work while the others wait)."""
    return 1 if profile.has("clean-pixel-data") else 16


def deidentify_tree(inputs: list[Path], out_dir: Path, profile: Profile, key: bytes,
                    workers: int | None = None,
                    progress: Callable[[int, int, int], None] | None = None,
                    previews_dir: Path | None = None) -> RunReport:
    """De-identify every input file into ``out_dir``; returns the run report.

    ``progress(done, total, held_back)`` is called as results arrive. With Clean Recognizable
    Visual Features, head CT/MR series are defaced first (whole volumes, in a temporary folder).
    """
    files = [str(p) for p in iter_inputs(inputs)]
    run = RunReport(profile=profile.name, options=[o.cli for o in profile.options])
    job = _Job(profile, key, out_dir, previews_dir)
    with tempfile.TemporaryDirectory(prefix="orthanc-gdpr-deface-") as scratch:
        defaced, deface_failed = (deface_series(files, Path(scratch)) if profile.has("clean-recognizable-visual-features")
                                  else ({}, {}))
        items = [(i, defaced.get(i, f), i in defaced) for i, f in enumerate(files) if i not in deface_failed]
        results: list[Outcome] = [(i, "held", reason) for i, reason in deface_failed.items()]
        held = len(results)
        workers = workers or os.cpu_count() or 1
        if workers == 1 or len(items) < 8:
            _init_worker(job, 1)
            outcomes = map(_process, items)
            pool = None
        else:
            pool = Pool(workers, initializer=_init_worker, initargs=(job, workers))
            outcomes = pool.imap_unordered(_process, items, chunksize=_chunk(profile))
        try:
            for outcome in outcomes:
                results.append(outcome)
                held += outcome[1] == "held"
                if progress:
                    progress(len(results), len(files), held)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    for index, kind, detail in sorted(results, key=lambda r: r[0]):
        if kind == "written":
            output, report = detail  # type: ignore[misc]
            run.add_instance(index, output, report)
        elif kind == "dropped":
            run.add_dropped(index, files[index], str(detail))
        else:
            run.add_held_back(index, files[index], str(detail))
    return run
