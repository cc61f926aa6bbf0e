"""What the patient's landing page says about a bundle: its studies, their dates, its size.

Read from the bundle itself (its ``FHIR/R5.JSON`` manifest, one ImagingStudy per study), so the
page shows exactly what the ZIP holds. Names and identifiers are never read: only dates,
descriptions, modalities and counts.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

MANIFEST = "FHIR/R5.JSON"


@dataclass
class StudySummary:
    date: date | None
    description: str | None
    modalities: list[str] = field(default_factory=list)
    series: int = 0
    images: int = 0


def studies_in(bundle: Path) -> list[StudySummary]:
    """The studies of a bundle, oldest first; an unreadable manifest gives an empty list."""
    try:
        with zipfile.ZipFile(bundle) as z:
            doc = json.loads(z.read(MANIFEST))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    out = []
    for entry in doc.get("entry", []):
        res = entry.get("resource", {})
        if res.get("resourceType") != "ImagingStudy":
            continue
        started = res.get("started")
        try:
            when = date.fromisoformat(started[:10]) if started else None
        except ValueError:
            when = None
        modalities = sorted({cd["code"] for m in res.get("modality", []) for cd in m.get("coding", []) if cd.get("code")})
        out.append(StudySummary(date=when, description=res.get("description"), modalities=modalities,
                                series=res.get("numberOfSeries", 0), images=res.get("numberOfInstances", 0)))
    return sorted(out, key=lambda st: (st.date is None, st.date or date.min))
