"""Build a patient's portability bundle (ZIP) from Orthanc, with memory flat in study size.

The instances are planned in DICOM order (study date, series number, instance number) and fetched
from ``/instances/{id}/file`` by a few parallel requests, at most a small window ahead; each worker
hashes the file (SHA-256 for SHA256SUMS, CRC-32 for the ZIP) while it arrives and parses its header
only (``stop_before_pixels``), in memory (spilled to a staging file past ``SPILL`` bytes). In plan
order, each instance then gets its directory records and IHE PDI File ID (``dicomdir.DicomDir``:
8 upper-case characters per component, no extension) and is appended to the ZIP straight away
(ZIP_STORED; ``zipwriter.ZipWriter`` writes each local header once, with the known CRC and
sizes, and hashes the archive as it goes). With the viewer on, the same worker also decodes the
pixels and renders the viewer's JPEGs (:mod:`.viewer`), which follow their instance into the ZIP.
The DICOMDIR, FHIR, INDEX.HTM and its language pages (with the Art. 15 notice of :mod:`.notice`),
README, the viewer's pages, thumbnails (from Orthanc's ``/preview`` of one instance per series)
and SHA256SUMS follow. The ZIP is written to
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
import queue
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pydicom

from ..i18n import translator
from ..orthanc import OrthancClient, OrthancError, PatientNotFound
from . import fhir
from .dicomdir import DicomDir
from .html import FHIR_README, index_htm, language_page, readme_txt
from .notice import Art15, SiteNotice, Source
from .pages import STYLESHEET, stylesheet
from .viewer import Rendered, SeriesViewer, ViewerOptions, render_instance
from .zipwriter import ZipWriter

CHUNK = 1 << 20
SPILL = 4 << 20  # an instance larger than this is staged on disk while it waits for its turn
THUMB = 160
Progress = Callable[[str, int, int], None]  # (phase, done, total)
Disclosures = Callable[[set[str]], list]  # the patient's Orthanc ids -> their Disclosure list
SOURCE_KEYS = ("Modality", "SeriesDate", "StudyDate", "Manufacturer", "ManufacturerModelName", "StationName",
               "InstitutionName")

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
    # DICOM order, as the DICOMDIR, FHIR and INDEX.HTM list them: the File IDs follow it.
    studies.sort(key=lambda s: (s["MainDicomTags"].get("StudyDate") or "",
                                s["MainDicomTags"].get("StudyInstanceUID") or ""))
    instances = []  # (orthanc id, size, series orthanc id)
    resources = {patient["ID"]} | {s["ID"] for s in studies}
    for s in studies:
        series = client.study_series(s["ID"])
        series.sort(key=lambda se: (_num(se["MainDicomTags"].get("SeriesNumber")),
                                    se["MainDicomTags"].get("SeriesInstanceUID") or ""))
        for se in series:
            resources.add(se["ID"])
            members = client.series_instances(se["ID"])
            members.sort(key=lambda i: (_num(i["MainDicomTags"].get("InstanceNumber")),
                                        i["MainDicomTags"].get("SOPInstanceUID") or ""))
            for inst in members:
                instances.append((inst["ID"], int(inst.get("FileSize") or 0), se["ID"]))
                resources.add(inst["ID"])
    return patient, studies, instances, resources


def _num(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


@dataclass
class _Fetched:
    """One downloaded instance: its bytes (``buf[:size]`` from the buffer pool, or in ``path``
    past SPILL), its hashes and its header (no pixel data)."""
    header: object
    size: int
    crc: int
    sha256: str
    buf: bytearray | None
    path: Path | None
    rendered: Rendered | None = None

    def data(self):
        if self.path is None:
            with memoryview(self.buf) as view:
                yield view[:self.size]
            return
        with open(self.path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def discard(self, buffers) -> None:
        if self.buf is not None:
            buffers.put(self.buf)
            self.buf = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _download(client: OrthancClient, orthanc_id: str, spill: Path, buffers,
              viewer: ViewerOptions | None = None) -> _Fetched:
    """Fetch one instance into a buffer of the pool (one per download in the window, reused:
    no per-file allocation, so the heap does not fragment), hashing it on the way; with
    ``viewer``, render its pictures too (the pixel data is then dropped from the header)."""
    whole = viewer is not None and viewer.enabled
    h, crc, size = hashlib.sha256(), 0, 0
    buf = buffers.get()
    f = None
    try:
        for chunk in client.stream_instance(orthanc_id, CHUNK, reuse=True):
            h.update(chunk)  # hashlib and zlib release the GIL on large buffers
            crc = zlib.crc32(chunk, crc)
            if f is None and size + len(chunk) > SPILL:
                f = open(spill, "wb")
                f.write(memoryview(buf)[:size])
            if f is not None:
                f.write(chunk)
            else:
                buf[size:size + len(chunk)] = chunk  # grows the buffer up to SPILL at most
            size += len(chunk)
        if f is None:  # a transient copy: pydicom reads element by element, BytesIO is C
            with memoryview(buf) as view:
                copy = io.BytesIO(view[:size])
            header = pydicom.dcmread(copy, stop_before_pixels=not whole)
            del copy
        else:
            f.close()
            buffers.put(buf)
            buf = None
            header = pydicom.dcmread(spill, stop_before_pixels=not whole)
        rendered = render_instance(header, viewer) if whole else None
        if whole and "PixelData" in header:
            del header["PixelData"]
    except BaseException:
        if f is not None:
            f.close()
        if buf is not None:
            buffers.put(buf)
        raise
    return _Fetched(header, size, crc, h.hexdigest(), buf, spill if f is not None else None, rendered)


def _preview(client: OrthancClient, orthanc_id: str) -> bytes | None:
    png = client.preview_png(orthanc_id)
    if not png:
        return None
    try:
        return _thumbnail(png)
    except Exception:  # an undecodable preview: no thumbnail for that series
        return None


def _thumbnail(png: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("L") if im.mode not in ("L", "RGB") else im
        im.thumbnail((THUMB, THUMB))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()


def _source(client: OrthancClient, orthanc_id: str, tags: dict) -> Source:
    """Where a series comes from: its device tags, and the AE title that sent it to Orthanc."""
    try:
        sender = client.get_json(f"/instances/{orthanc_id}/metadata?expand").get("RemoteAET") or None
    except (OrthancError, PatientNotFound, AttributeError):
        sender = None
    model = " ".join(filter(None, (tags.get("Manufacturer"), tags.get("ManufacturerModelName"))))
    return Source(tags.get("Modality"), tags.get("SeriesDate") or tags.get("StudyDate"),
                  tuple(filter(None, (model, tags.get("StationName"), tags.get("InstitutionName")))), sender)


def build_bundle(client: OrthancClient, out: str | os.PathLike, *, patient_id: str | None = None,
                 orthanc_patient: str | None = None, issuer_of_patient_id: str | None = None,
                 study_uids: list[str] | None = None, issuer: str = "Orthanc GDPR",
                 progress: Progress | None = None, workers: int = 4, site: SiteNotice | None = None,
                 disclosures: Disclosures | None = None,
                 viewer: ViewerOptions | None = ViewerOptions()) -> BundleResult:
    """Build the copy at ``out``. ``site``: the Art. 15 notice's site facts and languages (default:
    ``issuer`` as controller, English and German); ``disclosures``: looks up the recipients in the
    audit store (None: the copy says the list was not available); ``viewer``: None or size 0 for
    no viewer."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    report = progress or (lambda phase, done, total: None)
    try:
        return _build(client, out, partial, staging, report, patient_id=patient_id,
                      orthanc_patient=orthanc_patient, issuer_of_patient_id=issuer_of_patient_id,
                      study_uids=study_uids, site=site or SiteNotice(controller=issuer),
                      disclosures=disclosures, viewer=viewer if viewer and viewer.enabled else None,
                      workers=workers)
    except OSError as e:
        partial.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise DiskFull(f"not enough disk space for the bundle in {out.parent}: {e.strerror}") from e
        raise BundleError(f"cannot write the bundle: {e}") from e
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        client.close()  # the per-thread download connections
        shutil.rmtree(staging, ignore_errors=True)


def _build(client, out, partial, staging, report, *, patient_id, orthanc_patient,
           issuer_of_patient_id, study_uids, site, disclosures, viewer, workers) -> BundleResult:
    issuer = site.controller
    report("planning", 0, 0)
    patient, studies, instances, resources = _plan(client, patient_id=patient_id, orthanc_patient=orthanc_patient,
                                        issuer_of_patient_id=issuer_of_patient_id, study_uids=study_uids)
    total = len(instances)
    need = 2 * sum(size for _, size, _ in instances) + (16 << 20)
    free = shutil.disk_usage(out.parent).free
    if free < need:
        raise DiskFull(f"not enough disk space in {out.parent}: {need >> 20} MiB needed, {free >> 20} MiB free")

    now = datetime.now(timezone.utc)
    stamp = now.timetuple()[:6]
    raw = staging / "raw"
    raw.mkdir()
    dicomdir = DicomDir("GDPRCOPY", alphanumeric=total > 10 ** 6)
    meta: dict[str, dict] = {}  # SOPInstanceUID -> small dict
    patient_tags: dict[str, str] = {}
    sums: list[tuple[str, str]] = []  # (sha256, name) in ZIP order
    # Thumbnails: the middle instance of each series (in plan order), through Orthanc's /preview.
    series_order: dict[str, list[str]] = {}
    for oid, _, series in instances:
        series_order.setdefault(series, []).append(oid)
    thumb_of = {series: oids[len(oids) // 2] for series, oids in series_order.items()}
    series_uid: dict[str, str] = {}  # series orthanc id -> SeriesInstanceUID
    sources: dict[str, dict] = {}  # series orthanc id -> SOURCE_KEYS of its first instance
    viewers: dict[str, SeriesViewer] = {}  # series orthanc id -> its viewer
    window = max(1, workers) * 3  # downloads in flight or waiting: memory stays flat
    buffers: queue.SimpleQueue = queue.SimpleQueue()  # one buffer per download of the window
    for _ in range(window):
        buffers.put(bytearray())

    report("downloading", 0, total)
    with open(partial, "wb") as out_file, \
            ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="bundle") as pool:
        zw = ZipWriter(out_file, stamp)
        previews = {series: pool.submit(_preview, client, oid) for series, oid in thumb_of.items()}
        pending: deque = deque()
        todo = iter(enumerate(instances))

        def refill() -> None:
            while len(pending) < window:
                nxt = next(todo, None)
                if nxt is None:
                    return
                i, (oid, _, series) = nxt
                pending.append((series, pool.submit(_download, client, oid, raw / f"{i:08d}", buffers, viewer)))

        try:
            refill()
            done = 0
            while pending:
                series, fut = pending.popleft()
                got = fut.result()
                refill()
                ds = got.header
                try:
                    added = dicomdir.add(ds)
                except ValueError as e:
                    raise BundleError(f"instance {ds.get('SOPInstanceUID')} cannot be listed in the "
                                      f"DICOMDIR: {e}") from e
                if added:  # else the same SOP instance twice: keep one
                    uid = str(ds.SOPInstanceUID)
                    if not patient_tags:
                        patient_tags = {k: _s(ds, k) for k in PATIENT_KEYS}
                    meta[uid] = {k: _s(ds, k) for k in (
                        "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription",
                        "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
                        "BodyPartExamined", "SOPInstanceUID", "SOPClassUID", "InstanceNumber")}
                    series_uid.setdefault(series, meta[uid]["SeriesInstanceUID"])
                    if series not in sources:
                        sources[series] = {k: _s(ds, k) for k in SOURCE_KEYS}
                    name = dicomdir.file_id(uid)
                    zw.add(name, got.size, got.crc, got.data())
                    sums.append((got.sha256, name))
                    if got.rendered is not None:
                        sv = viewers.setdefault(series, SeriesViewer(f"IHE_PDI/V{len(viewers) + 1:04d}"))
                        for jpg_name, jpg in sv.add(got.rendered):
                            zw.add_bytes(jpg_name, jpg, compress=False)
                            sums.append((hashlib.sha256(jpg).hexdigest(), jpg_name))
                got.discard(buffers)
                done += 1
                report("downloading", done, total)

            report("thumbnails", 0, len(previews))
            thumbs: dict[str, str] = {}
            thumb_files: list[tuple[str, bytes]] = []
            for n, series in enumerate(previews):  # plan order
                png = previews[series].result()
                if png and series in series_uid:
                    name = f"IHE_PDI/S{len(thumb_files) + 1:04d}.PNG"
                    thumb_files.append((name, png))
                    thumbs[series_uid[series]] = name
                report("thumbnails", n + 1, len(previews))
        except BaseException:
            for _, fut in pending:
                fut.cancel()
            for fut in previews.values():
                fut.cancel()
            raise

        report("dicomdir", 0, 1)
        dicomdir_bytes = dicomdir.to_bytes()

        # Study / series tree for FHIR and INDEX.HTM, in DICOM order.
        tree: dict[str, dict] = {}
        for uid, m in meta.items():
            st = tree.setdefault(m["StudyInstanceUID"], {k: m[k] for k in (
                "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription")} | {"series": {}})
            se = st["series"].setdefault(m["SeriesInstanceUID"], {k: m[k] for k in (
                "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription", "BodyPartExamined")}
                | {"instances": []})
            se["instances"].append({k: m[k] for k in ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")})

        study_list = []
        for st in sorted(tree.values(), key=lambda s: (s["StudyDate"] or "", s["StudyInstanceUID"])):
            series = sorted(st["series"].values(), key=lambda s: (_num(s["SeriesNumber"]), s["SeriesInstanceUID"]))
            for se in series:
                se["instances"].sort(key=lambda i: (_num(i["InstanceNumber"]), i["SOPInstanceUID"]))
            study_list.append(st | {"series": series})

        issued = now.strftime("%Y-%m-%d")
        docs: list[tuple[str, bytes]] = [("DICOMDIR", dicomdir_bytes)]
        for version in ("R5", "R4B"):
            b = fhir.build(patient_tags, study_list, issuer=issuer, version=version, created=now)
            fhir.validate(b, version)
            docs.append((f"FHIR/{version}.JSON", json.dumps(b, indent=1, ensure_ascii=False).encode()))
        docs.append(("FHIR/README.TXT", FHIR_README.encode()))
        report("notice", 0, 1)
        notice = Art15(site, disclosures(resources) if disclosures else None,
                       [_source(client, series_order[se][0], src) for se, src in sources.items()])
        translators = [translator(lang) for lang in site.languages]
        by_uid = {series_uid[se]: v for se, v in viewers.items() if se in series_uid}
        docs.append((STYLESHEET, stylesheet()))
        for t in translators:
            docs.append((language_page(t.lang, translators[0].lang),
                         index_htm(t, translators, patient_tags, study_list, thumbs, by_uid, notice,
                                   issued=issued).encode()))
        docs.append(("README.TXT", readme_txt(translators, patient_tags, study_list, notice, issued=issued,
                                              viewer=bool(viewers)).encode()))
        series_meta = {se["SeriesInstanceUID"]: se for st in study_list for se in st["series"]}
        for uid, sv in by_uid.items():
            docs.extend((name, html.encode()) for name, html in sv.pages(translators[0], series_meta[uid]))
        docs.extend(thumb_files)

        report("packing", 0, len(docs))
        for n, (name, data) in enumerate(docs):
            # the viewer's many small pages are stored: deflating each costs more than it saves
            zw.add_bytes(name, data, compress=not name.endswith((".PNG", ".JPG")) and name != "DICOMDIR"
                         and not name.startswith("IHE_PDI/V"))
            sums.append((hashlib.sha256(data).hexdigest(), name))
            report("packing", n + 1, len(docs))
        zw.add_bytes("SHA256SUMS", "".join(f"{h}  {name}\n" for h, name in sums).encode(), compress=False)
        zw.close()
        out_file.flush()
        os.fsync(out_file.fileno())
    os.replace(partial, out)
    report("done", len(meta), len(meta))
    return BundleResult(path=out, size=zw.size, sha256=zw.sha256.hexdigest(), instances=len(meta),
                        studies=len(study_list), files=[n for _, n in sums] + ["SHA256SUMS"])
