"""Anonymous slices of a series in Orthanc: the service side of criterion 2.

The series is read over REST: its instance list (Instance Number, Number of Frames) first, then
the files of the chosen instances only. The export itself is the engine's
(:func:`orthanc_gdpr.anonymous.slices.export_slices`), staged in a private directory under the
service's data directory and handed back as a ZIP of the PNG files (no comment, no dates, the
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
    info = client.get_json(f"/series/{series}")
    members = []
    for inst in client.series_instances(series):
        tags = inst.get("MainDicomTags", {})
        number = str(tags.get("InstanceNumber", "")).strip()
        members.append(Member(int(number) if number.lstrip("-").isdigit() else None,
                              int(str(tags.get("NumberOfFrames") or "1").strip() or 1),
                              _loader(client, inst["ID"]), inst["ID"]))
    return Series(series, str(st.get("ParentPatient", "")), str(info.get("MainDicomTags", {}).get("Modality", "")).upper(),
                  members)


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


def export_study_slices(client: OrthancClient, work_dir: Path, study: str, series: str | None,
                        request: SliceRequest, limits: Limits, request_id: Any = None) -> tuple[bytes, dict]:
    """The ZIP of the exported slices, and the decision record as stored; :class:`Refused`
    (recorded in the audit chain once the series is known) when a check fails."""
    work_dir.mkdir(parents=True, exist_ok=True)
    source: list[str] = []
    try:
        found = series_in_study(client, study, series)
        source = [found.orthanc_id]
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            result = export_slices(found, request, Path(tmp) / "export", limits,
                                   lambda d: audit.record(EVENT, actor=d.decided_by, **d.fields()))
            return zipped(result.out), result.audit
    except PatientNotFound:
        raise Refused("study", "not-found", "no such study in Orthanc") from None
    except Refused as e:
        if source:
            audit.record(REFUSED_EVENT, actor=request.decided_by, criterion=2, source_series=source, study=study,
                         **e.to_dict())
        raise
