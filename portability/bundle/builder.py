"""Build a patient's portability bundle (ZIP) from Orthanc, with memory flat in study size.

Each instance is streamed from ``/instances/{id}/file`` into a staging file (a few parallel
requests); only its header is parsed. The DICOMDIR comes from pydicom's ``FileSet`` fed with
header-only copies (so pydicom never copies pixel data), which also assigns the IHE PDI file IDs
(8 upper-case characters, no extension). The ZIP is then written (ZIP_STORED for DICOM) to
``OUT.partial`` and renamed into place only when complete; any failure removes the partial ZIP and
the staging directory.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pydicom
from pydicom.fileset import FileSet

from ..orthanc import OrthancClient, OrthancError, PatientNotFound
from . import fhir
from .html import FHIR_README, index_htm, readme_txt

CHUNK = 1 << 20
THUMB = 160
Progress = Callable[[str, int, int], None]  # (phase, done, total)

PATIENT_KEYS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "IssuerOfPatientID")


class BundleError(RuntimeError):
    """The bundle could not be built; nothing was left behind."""


class DiskFull(BundleError):
    pass


@dataclass
class BundleResult:
    path: Path
    size: int
    sha256: str
    instances: int
    studies: int
    files: list[str] = field(default_factory=list)


def _s(ds, keyword: str) -> str | None:
    v = ds.get(keyword)
    return None if v is None or v == "" else str(v)


def _plan(client: OrthancClient, *, patient_id, orthanc_patient, issuer_of_patient_id, study_uids):
    patient = client.resolve_patient(patient_id, orthanc_patient)
    studies = client.patient_studies(patient["ID"])
    if study_uids:
        wanted = set(study_uids)
        studies = [s for s in studies if s["MainDicomTags"].get("StudyInstanceUID") in wanted]
        missing = wanted - {s["MainDicomTags"].get("StudyInstanceUID") for s in studies}
        if missing:
            raise PatientNotFound(f"study/studies not found for this patient: {', '.join(sorted(missing))}")
    if issuer_of_patient_id:
        kept = []
        for s in studies:
            first = client.get_json(f"/studies/{s['ID']}/instances")[0]["ID"]
            if client.instance_tags(first).get("IssuerOfPatientID", issuer_of_patient_id) == issuer_of_patient_id:
                kept.append(s)
        studies = kept
    if not studies:
        raise PatientNotFound("no studies for this patient (and issuer) in Orthanc")
    instances = []  # (orthanc id, size, series orthanc id)
    for s in studies:
        for se in client.study_series(s["ID"]):
            for inst in client.series_instances(se["ID"]):
                instances.append((inst["ID"], int(inst.get("FileSize") or 0), se["ID"]))
    return patient, studies, instances


def _download(client: OrthancClient, orthanc_id: str, dest: Path) -> dict:
    with open(dest, "wb") as f:
        for chunk in client.stream_instance(orthanc_id, CHUNK):
            f.write(chunk)
    ds = pydicom.dcmread(dest, stop_before_pixels=True)
    return {"path": dest, "header": ds}


# What pydicom's FileSet needs for PATIENT/STUDY/SERIES/IMAGE records (PS3.3 F.5), nothing more:
# the DICOMDIR is built from tiny stand-ins, the real files are never rewritten.
RECORD_KEYS = ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID",
               "AccessionNumber", "StudyDescription", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SOPInstanceUID", "SOPClassUID", "InstanceNumber", "SpecificCharacterSet")


def _record_source(ds):
    from pydicom.dataset import Dataset, FileMetaDataset

    small = Dataset()
    for k in RECORD_KEYS:
        if k in ds:
            small[k] = ds[k]
    small.file_meta = FileMetaDataset(ds.file_meta)
    return small


def _thumbnail(png: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("L") if im.mode not in ("L", "RGB") else im
        im.thumbnail((THUMB, THUMB))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()


def build_bundle(client: OrthancClient, out: str | os.PathLike, *, patient_id: str | None = None,
                 orthanc_patient: str | None = None, issuer_of_patient_id: str | None = None,
                 study_uids: list[str] | None = None, issuer: str = "Orthanc GDPR",
                 progress: Progress | None = None, workers: int = 4) -> BundleResult:
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    report = progress or (lambda phase, done, total: None)
    try:
        return _build(client, out, partial, staging, report, patient_id=patient_id,
                      orthanc_patient=orthanc_patient, issuer_of_patient_id=issuer_of_patient_id,
                      study_uids=study_uids, issuer=issuer, workers=workers)
    except OSError as e:
        partial.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise DiskFull(f"not enough disk space for the bundle in {out.parent}: {e.strerror}") from e
        raise BundleError(f"cannot write the bundle: {e}") from e
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build(client, out, partial, staging, report, *, patient_id, orthanc_patient,
           issuer_of_patient_id, study_uids, issuer, workers) -> BundleResult:
    report("planning", 0, 0)
    patient, studies, instances = _plan(client, patient_id=patient_id, orthanc_patient=orthanc_patient,
                                        issuer_of_patient_id=issuer_of_patient_id, study_uids=study_uids)
    total = len(instances)
    need = 2 * sum(size for _, size, _ in instances) + (16 << 20)
    free = shutil.disk_usage(out.parent).free
    if free < need:
        raise DiskFull(f"not enough disk space in {out.parent}: {need >> 20} MiB needed, {free >> 20} MiB free")

    raw = staging / "raw"
    raw.mkdir()
    fs = FileSet()
    fs.ID = "GDPRCOPY"
    meta: dict[str, dict] = {}  # SOPInstanceUID -> small dict
    staged: dict[str, Path] = {}
    patient_tags: dict[str, str] = {}
    series_members: dict[str, list[tuple[int, str]]] = {}  # series orthanc id -> (number, orthanc instance id)
    report("downloading", 0, total)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_download, client, oid, raw / f"{i:08d}"): (oid, series)
                   for i, (oid, _, series) in enumerate(instances)}
        try:
            for fut in as_completed(futures):
                oid, series = futures[fut]
                got = fut.result()
                ds = got["header"]
                uid = str(ds.SOPInstanceUID)
                if uid in staged:  # the same SOP instance twice: keep one
                    got["path"].unlink()
                else:
                    staged[uid] = got["path"]
                    if not patient_tags:
                        patient_tags = {k: _s(ds, k) for k in PATIENT_KEYS}
                    meta[uid] = {k: _s(ds, k) for k in (
                        "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription",
                        "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
                        "BodyPartExamined", "SOPInstanceUID", "SOPClassUID", "InstanceNumber")}
                    number = int(ds.get("InstanceNumber") or 0) if str(ds.get("InstanceNumber") or "0").lstrip("-").isdigit() else 0
                    series_members.setdefault(series, []).append((number, oid, meta[uid]["SeriesInstanceUID"]))
                    fs.add(_record_source(ds))  # a few attributes only: pydicom stages a tiny file
                done += 1
                report("downloading", done, total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    # Thumbnails: the middle instance of each series, through Orthanc's /preview.
    report("thumbnails", 0, len(series_members))
    thumbs: dict[str, str] = {}
    thumb_files: list[tuple[str, bytes]] = []
    for n, (series, members) in enumerate(sorted(series_members.items(), key=lambda kv: kv[1][0][2])):
        members.sort()
        _, oid, series_uid = members[len(members) // 2]
        png = client.preview_png(oid)
        if png:
            try:
                name = f"IHE_PDI/S{len(thumb_files) + 1:04d}.PNG"
                thumb_files.append((name, _thumbnail(png)))
                thumbs[series_uid] = name
            except Exception:  # an undecodable preview: no thumbnail for that series
                pass
        report("thumbnails", n + 1, len(series_members))

    report("dicomdir", 0, 1)
    fs_root = staging / "fileset"
    fs.write(fs_root)
    file_ids = {inst.SOPInstanceUID: inst.FileID.replace(os.sep, "/") for inst in fs}

    # Study / series tree for FHIR and INDEX.HTM, in DICOM order.
    tree: dict[str, dict] = {}
    for uid, m in meta.items():
        st = tree.setdefault(m["StudyInstanceUID"], {k: m[k] for k in (
            "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription")} | {"series": {}})
        se = st["series"].setdefault(m["SeriesInstanceUID"], {k: m[k] for k in (
            "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription", "BodyPartExamined")}
            | {"instances": []})
        se["instances"].append({k: m[k] for k in ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")})

    def num(v):
        try:
            return int(v)
        except (TypeError, ValueError):
            return 0

    study_list = []
    for st in sorted(tree.values(), key=lambda s: (s["StudyDate"] or "", s["StudyInstanceUID"])):
        series = sorted(st["series"].values(), key=lambda s: (num(s["SeriesNumber"]), s["SeriesInstanceUID"]))
        for se in series:
            se["instances"].sort(key=lambda i: (num(i["InstanceNumber"]), i["SOPInstanceUID"]))
        study_list.append(st | {"series": series})

    now = datetime.now(timezone.utc)
    issued = now.strftime("%Y-%m-%d")
    docs: list[tuple[str, bytes]] = []
    for version in ("R5", "R4B"):
        b = fhir.build(patient_tags, study_list, issuer=issuer, version=version, created=now)
        fhir.validate(b, version)
        docs.append((f"FHIR/{version}.JSON", json.dumps(b, indent=1, ensure_ascii=False).encode()))
    docs.append(("FHIR/README.TXT", FHIR_README.encode()))
    docs.append(("INDEX.HTM", index_htm(patient_tags, study_list, thumbs, issuer=issuer, issued=issued).encode()))
    docs.append(("README.TXT", readme_txt(patient_tags, study_list, issuer=issuer, issued=issued).encode()))
    docs.extend(thumb_files)

    report("packing", 0, len(staged))
    sums: list[tuple[str, str]] = []
    stamp = now.timetuple()[:6]

    def add_file(zf: zipfile.ZipFile, name: str, src: Path) -> None:
        h = hashlib.sha256()
        info = zipfile.ZipInfo(name, stamp)
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = src.stat().st_size
        with open(src, "rb") as f, zf.open(info, "w", force_zip64=info.file_size > 0x7FFF0000) as dst:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                dst.write(chunk)
        sums.append((h.hexdigest(), name))

    def add_bytes(zf: zipfile.ZipFile, name: str, data: bytes, compress: bool = True) -> None:
        info = zipfile.ZipInfo(name, stamp)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        zf.writestr(info, data)
        sums.append((hashlib.sha256(data).hexdigest(), name))

    with open(partial, "wb") as raw_out:
        with zipfile.ZipFile(raw_out, "w", allowZip64=True) as zf:
            add_file(zf, "DICOMDIR", fs_root / "DICOMDIR")
            for n, (uid, path) in enumerate(sorted(staged.items(), key=lambda kv: file_ids[kv[0]])):
                add_file(zf, file_ids[uid], path)
                path.unlink()  # staging shrinks as the ZIP grows
                report("packing", n + 1, len(staged))
            for name, data in docs:
                add_bytes(zf, name, data, compress=not name.endswith(".PNG"))
            listing = "".join(f"{h}  {name}\n" for h, name in sums).encode()
            info = zipfile.ZipInfo("SHA256SUMS", stamp)
            zf.writestr(info, listing)
        raw_out.flush()
        os.fsync(raw_out.fileno())
    h = hashlib.sha256()
    with open(partial, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    os.replace(partial, out)
    report("done", len(staged), len(staged))
    return BundleResult(path=out, size=out.stat().st_size, sha256=h.hexdigest(), instances=len(staged),
                        studies=len(study_list), files=[n for _, n in sums] + ["SHA256SUMS"])
