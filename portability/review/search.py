"""Finding studies in Orthanc (``POST /tools/find``) and reading a study's series and instances.

A search never puts what a person typed into a URL or a log line: the page posts the form, and
errors name the field and the rule, not the value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from ..orthanc import OrthancClient

PAGE_SIZE = 50
MODALITY = re.compile(r"^[A-Z]{2,4}$")
#: Orthanc's wildcard characters: typed ones are taken literally (no "*" that lists everyone).
_WILDCARDS = re.compile(r"[*?\\]")


@dataclass(frozen=True)
class StudyQuery:
    patient: str = ""  #: PatientID (exact) or part of PatientName
    accession: str = ""
    date_from: str = ""  #: YYYY-MM-DD
    date_to: str = ""
    modality: str = ""
    since: int = 0  #: paging offset

    def problems(self) -> list[tuple[str, str]]:
        """(field, rule) for each field that is not valid; empty when the query can run."""
        out = []
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    out.append((name, "Enter the date as year-month-day, for example 2024-03-31"))
        if self.date_from and self.date_to and not out and self.date_from > self.date_to:
            out.append(("date_to", "The end date must be the same as or after the start date"))
        if self.modality and not MODALITY.match(self.modality):
            out.append(("modality", "Enter a DICOM modality code of 2 to 4 capital letters, for example CT"))
        for name in ("patient", "accession"):
            if len(getattr(self, name)) > 64:
                out.append((name, "Enter at most 64 characters"))
        if not any((self.patient, self.accession, self.date_from, self.date_to, self.modality)):
            out.append(("patient", "Enter at least one search term"))
        return out

    def orthanc_query(self) -> list[dict]:
        """One or two Orthanc queries (patient ID exact, or name containing the text)."""
        base: dict[str, str] = {}
        if self.accession:
            base["AccessionNumber"] = _WILDCARDS.sub("", self.accession)
        if self.date_from or self.date_to:
            base["StudyDate"] = f"{self.date_from.replace('-', '')}-{self.date_to.replace('-', '')}"
        if self.modality:
            base["ModalitiesInStudy"] = self.modality
        if not self.patient:
            return [base]
        text = _WILDCARDS.sub("", self.patient)
        return [{**base, "PatientID": text}, {**base, "PatientName": f"*{text}*"}]


@dataclass
class StudyHit:
    id: str
    patient_name: str
    patient_id: str
    birth_date: str
    study_date: str
    description: str
    accession: str
    modalities: str
    series_count: int


@dataclass
class SearchResult:
    hits: list[StudyHit] = field(default_factory=list)
    more: bool = False  #: another page follows
    since: int = 0


def _hit(study: dict) -> StudyHit:
    tags, patient = study.get("MainDicomTags", {}), study.get("PatientMainDicomTags", {})
    return StudyHit(id=study["ID"], patient_name=patient.get("PatientName", ""),
                    patient_id=patient.get("PatientID", ""), birth_date=patient.get("PatientBirthDate", ""),
                    study_date=tags.get("StudyDate", ""), description=tags.get("StudyDescription", ""),
                    accession=tags.get("AccessionNumber", ""), modalities=tags.get("ModalitiesInStudy", ""),
                    series_count=len(study.get("Series", [])))


def find_studies(client: OrthancClient, query: StudyQuery) -> SearchResult:
    """One page of studies matching ``query``, newest first; ``more`` says a next page exists."""
    found: dict[str, dict] = {}
    for q in query.orthanc_query():
        # Orthanc 1.10 pages with Since/Limit; the union of two queries is paged here instead.
        for study in client.post_json("/tools/find", {"Level": "Study", "Query": q, "Expand": True,
                                                       "Limit": query.since + PAGE_SIZE + 1}):
            found[study["ID"]] = study
    hits = sorted((_hit(s) for s in found.values()), key=lambda h: (h.study_date, h.id), reverse=True)
    page = hits[query.since:query.since + PAGE_SIZE]
    return SearchResult(hits=page, more=len(hits) > query.since + PAGE_SIZE, since=query.since)


@dataclass
class SeriesInfo:
    id: str
    number: str
    modality: str
    description: str
    instances: list[str]  #: Orthanc instance IDs in InstanceNumber order
    frames: dict[str, int]  #: instance -> NumberOfFrames


@dataclass
class StudyInfo:
    id: str
    patient_name: str
    patient_id: str
    study_date: str
    description: str
    accession: str
    series: list[SeriesInfo]

    @property
    def instance_count(self) -> int:
        return sum(len(s.instances) for s in self.series)

    def all_instances(self) -> list[str]:
        return [i for s in self.series for i in s.instances]


def _number(text: str) -> tuple[int, str]:
    try:
        return int(float(text)), text
    except (TypeError, ValueError):
        return 1 << 30, str(text)


def _frames(text: str | None) -> int:
    try:
        return max(1, int(text or 1))
    except ValueError:
        return 1


def load_study(client: OrthancClient, study_id: str) -> StudyInfo:
    """The study with its series and instances (three REST calls, whatever its size).
    Raises ``PatientNotFound`` (404) for an unknown study."""
    study = client.get_json(f"/studies/{study_id}")
    series = client.get_json(f"/studies/{study_id}/series")
    instances = client.get_json(f"/studies/{study_id}/instances")
    by_series: dict[str, list[dict]] = {}
    for inst in instances:
        by_series.setdefault(inst.get("ParentSeries", ""), []).append(inst)
    out = []
    for s in sorted(series, key=lambda s: (_number(s["MainDicomTags"].get("SeriesNumber", "")), s["ID"])):
        members = sorted(by_series.get(s["ID"], []),
                         key=lambda i: (_number(i["MainDicomTags"].get("InstanceNumber", "")), i["ID"]))
        tags = s.get("MainDicomTags", {})
        out.append(SeriesInfo(
            id=s["ID"], number=tags.get("SeriesNumber", ""), modality=tags.get("Modality", ""),
            description=tags.get("SeriesDescription", ""), instances=[i["ID"] for i in members],
            frames={i["ID"]: _frames(i["MainDicomTags"].get("NumberOfFrames")) for i in members}))
    tags, patient = study.get("MainDicomTags", {}), study.get("PatientMainDicomTags", {})
    return StudyInfo(id=study["ID"], patient_name=patient.get("PatientName", ""),
                     patient_id=patient.get("PatientID", ""), study_date=tags.get("StudyDate", ""),
                     description=tags.get("StudyDescription", ""), accession=tags.get("AccessionNumber", ""),
                     series=out)
