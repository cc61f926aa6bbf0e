"""DICOM in, DICOM out: reading, de-identifying and writing instances, one or a whole tree.

An input that cannot be read, de-identified or written is held back with a clear reason; an
output file appears only complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .engine import Deidentifier, DeidentificationError
from .keys import Keyring
from .profile import Profile
from .report import InstanceReport, RunReport

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._^-]")


def read(source: str | os.PathLike | bytes) -> Dataset:
    """Parse one DICOM instance (Part 10 file, or a bare data set with SOP UIDs)."""
    def parse(force: bool) -> Dataset:
        fp = io.BytesIO(source) if isinstance(source, bytes) else source
        return pydicom.dcmread(fp, force=force)

    try:
        try:
            ds = parse(force=False)
        except InvalidDicomError:
            ds = parse(force=True)
            if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
                raise DeidentificationError("not a DICOM file (no preamble, no SOP UIDs)") from None
        return ds
    except DeidentificationError:
        raise
    except RecursionError:
        raise DeidentificationError("sequences nested too deep to parse safely") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, NotImplementedError) as e:
        raise DeidentificationError(f"unreadable DICOM: {type(e).__name__}: {e}"[:300]) from None


def encode(ds: Dataset) -> bytes:
    """Write ``ds`` as a DICOM Part 10 file, keeping its transfer syntax."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        ds.file_meta = meta = meta or FileMetaDataset()
        implicit = getattr(ds, "original_encoding", (True, True))[0]
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def deidentify_bytes(engine: Deidentifier, data: bytes | str | os.PathLike) -> tuple[Dataset, bytes, InstanceReport]:
    """Read, de-identify and re-encode one instance; raises DeidentificationError."""
    ds = read(data)
    try:
        report = engine.deidentify(ds)
        return ds, encode(ds), report
    except DeidentificationError:
        raise
    except RecursionError:
        raise DeidentificationError("sequences nested too deep to process safely") from None
    except Exception as e:  # any fault in a hostile file: hold the instance back, say why
        raise DeidentificationError(f"cannot de-identify: {type(e).__name__}: {e}"[:300]) from None


def output_path(ds: Dataset, report: InstanceReport) -> Path:
    """patient pseudonym / study UID / series UID / SOP instance UID.dcm: no identifiers."""
    parts = [report.patient_pseudonym, str(ds.get("StudyInstanceUID", "study")),
             str(ds.get("SeriesInstanceUID", "series")), f"{ds.SOPInstanceUID}.dcm"]
    return Path(*(_SAFE_NAME.sub("_", p) for p in parts))


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
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


_worker: tuple[Deidentifier, Path] | None = None


def _init_worker(job: _Job) -> None:
    global _worker
    _worker = (Deidentifier(job.profile, Keyring(job.key)), job.out_dir)


def _process(item: tuple[int, str]) -> tuple[int, str | None, dict | str]:
    index, source = item
    assert _worker is not None
    engine, out_dir = _worker
    try:
        ds, data, report = deidentify_bytes(engine, source)
        relative = output_path(ds, report)
        write_atomic(out_dir / relative, data)
        return index, str(relative), report.to_dict()
    except DeidentificationError as e:
        return index, None, str(e)
    except OSError as e:
        return index, None, f"cannot write output: {e.strerror}"


def deidentify_tree(inputs: list[Path], out_dir: Path, profile: Profile, key: bytes,
                    workers: int | None = None,
                    progress: Callable[[int, int, int], None] | None = None) -> RunReport:
    """De-identify every input file into ``out_dir``; returns the run report.

    ``progress(done, total, held_back)`` is called as results arrive.
    """
    files = [str(p) for p in iter_inputs(inputs)]
    run = RunReport(profile=profile.name, options=[o.cli for o in profile.options])
    job = _Job(profile, key, out_dir)
    workers = workers or os.cpu_count() or 1
    results: list[tuple[int, str | None, dict | str]] = []
    held = 0
    if workers == 1 or len(files) < 8:
        _init_worker(job)
        outcomes = map(_process, enumerate(files))
        pool = None
    else:
        pool = Pool(workers, initializer=_init_worker, initargs=(job,))
        outcomes = pool.imap_unordered(_process, enumerate(files), chunksize=16)
    try:
        for outcome in outcomes:
            results.append(outcome)
            held += outcome[1] is None
            if progress:
                progress(len(results), len(files), held)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    for index, output, detail in sorted(results, key=lambda r: r[0]):
        if output is None:
            run.add_held_back(index, files[index], str(detail))
        else:
            run.add_instance(index, output, detail)  # type: ignore[arg-type]
    return run
