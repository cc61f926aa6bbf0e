"""Anonymous exports of series in Orthanc: the service side of criteria 1 and 2.

A series is read over REST: its instance list (Instance Number, Number of Frames) first, then
the files of the instances an export needs (the chosen slices only, for criterion 2). The export
itself is the engine's (:mod:`orthanc_gdpr.anonymous.slices`, :mod:`~orthanc_gdpr.anonymous.aggregate`),
staged in a private directory under the service's data directory and handed back as a ZIP of the files (no comment, no dates, the
files' random names); nothing stays on the server. The decision record, or the refusal, goes to
the audit chain.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from orthanc_gdpr.anonymous import Limits, Refused
from orthanc_gdpr.anonymous.decision import EVENT, REFUSED_EVENT
from orthanc_gdpr.anonymous.series import Member, Series
from orthanc_gdpr.anonymous.aggregate import AggregateRequest, export_aggregate
from orthanc_gdpr.anonymous.aggregate import check_request as check_aggregate_request
from orthanc_gdpr.anonymous.slices import SliceRequest, export_slices
from orthanc_gdpr.deid.engine import DeidentificationError
from orthanc_gdpr.deid.files import read

from . import audit
from .orthanc import OrthancClient, PatientNotFound

#: A ZIP entry's date: the earliest ZIP can store, so that no entry says when it was made.
NO_DATE = (1980, 1, 1, 0, 0, 0)


def series_in_study(client: OrthancClient, study: str, series: str | None) -> Series:
    """The image series ``series`` of the Orthanc study ``study`` (or its only series)."""
    st = client.get_json(f"/studies/{study}")
    if series is None:
        if len(st.get("Series", [])) != 1:
            raise Refused("series", "required", f"the study has {len(st.get('Series', []))} series: name one "
                          "(its Orthanc ID)")
        series = st["Series"][0]
    if series not in st.get("Series", []):
        raise Refused("series", "not-in-study", "no such series in this study")
    return series_from_orthanc(client, series, str(st.get("ParentPatient", "")))


def series_from_orthanc(client: OrthancClient, series: str, patient: str | None = None) -> Series:
    """The Orthanc series ``series``: its instances by number, each fetched only when loaded."""
    try:
        info = client.get_json(f"/series/{series}")
        if patient is None:
            patient = str(client.get_json(f"/studies/{info['ParentStudy']}").get("ParentPatient", ""))
        instances = client.series_instances(series)
    except PatientNotFound:
        raise Refused("series", "not-found", "no such series in Orthanc") from None
    members = []
    for inst in instances:
        tags = inst.get("MainDicomTags", {})
        number = str(tags.get("InstanceNumber", "")).strip()
        members.append(Member(int(number) if number.lstrip("-").isdigit() else None,
                              int(str(tags.get("NumberOfFrames") or "1").strip() or 1),
                              _loader(client, inst["ID"]), inst["ID"]))
    return Series(series, patient, str(info.get("MainDicomTags", {}).get("Modality", "")).upper(), members)


def _loader(client: OrthancClient, instance: str):
    def load():
        try:
            return read(client.instance_file(instance))
        except DeidentificationError as exc:
            raise Refused("series", "unreadable", f"an instance cannot be read ({exc})") from None
    return load


def zipped(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.iterdir()):
            zf.writestr(zipfile.ZipInfo(path.name, NO_DATE), path.read_bytes())
    return buf.getvalue()


def _recorded(criterion: int, decided_by: str, run, source: list[str], **context: Any):
    """``run(record)`` with the decision recorded in the audit chain; a refusal is recorded too
    once the source series are known (``source`` is filled by ``run`` as it finds them)."""
    try:
        return run(lambda d: audit.record(EVENT, actor=d.decided_by, **d.fields()))
    except PatientNotFound:
        raise Refused("study", "not-found", "no such study in Orthanc") from None
    except Refused as e:
        if source:
            audit.record(REFUSED_EVENT, actor=decided_by, criterion=criterion, source_series=source, **context,
                         **e.to_dict())
        raise


def export_study_slices(client: OrthancClient, work_dir: Path, study: str, series: str | None,
                        request: SliceRequest, limits: Limits) -> tuple[bytes, dict]:
    """The ZIP of the exported slices, and the decision record as stored; :class:`Refused`
    (recorded in the audit chain once the series is known) when a check fails."""
    work_dir.mkdir(parents=True, exist_ok=True)
    source: list[str] = []

    def run(record):
        found = series_in_study(client, study, series)
        source.append(found.orthanc_id)
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            result = export_slices(found, request, Path(tmp) / "export", limits, record)
            return zipped(result.out), result.audit

    return _recorded(2, request.decided_by, run, source, study=study)


def export_series_aggregate(client: OrthancClient, work_dir: Path, series: list[str], request: AggregateRequest,
                            limits: Limits) -> tuple[bytes, dict]:
    """The ZIP holding the aggregate of the Orthanc series ``series``, and the decision record."""
    work_dir.mkdir(parents=True, exist_ok=True)
    source: list[str] = []

    def run(record):
        check_aggregate_request(request)
        found = [series_from_orthanc(client, s) for s in dict.fromkeys(series)]
        source.extend(s.orthanc_id for s in found)
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            result = export_aggregate(found, request, Path(tmp) / "export", limits, record)
            return zipped(result.out), result.audit

    return _recorded(1, request.decided_by, run, source)
