"""INDEX.HTM (for the patient, no scripts, English + German) and README.TXT.

Every value that comes from DICOM goes through :func:`e` (``html.escape``): names can contain
markup, e.g. ``<script>alert(1)</script>^Eve``.
"""
from __future__ import annotations

import html

from .fhir import human_name


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _date(da: str | None) -> str:
    return f"{da[:4]}-{da[4:6]}-{da[6:8]}" if da and len(da) >= 8 and da[:8].isdigit() else (da or "")


CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:2em;max-width:60em;color:#111;background:#fff}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #999}
.lang{display:inline-block;vertical-align:top;width:45%;margin-right:4%}
figure{display:inline-block;margin:0 1em 1em 0;text-align:center;vertical-align:top}
figure img{border:1px solid #444;background:#000;display:block}
figcaption{font-size:.85em;max-width:12em}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left}
.note{background:#f3f3f3;padding:.6em 1em}
"""


def index_htm(patient: dict, studies: list[dict], thumbs: dict[str, str], *, issuer: str,
              issued: str) -> str:
    """``thumbs``: SeriesInstanceUID -> relative path of its PNG thumbnail."""
    name = human_name(patient.get("PatientName") or "")["text"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Your medical images / Ihre medizinischen Bilder — {e(name)}</title>",
        f"<style>{CSS}</style></head><body>",
        '<h1>Your medical images <span lang="de">/ Ihre medizinischen Bilder</span></h1>',
        '<table>',
        f"<tr><th>Patient / Patient(in)</th><td>{e(name)}</td></tr>",
        f"<tr><th>Patient ID / Patienten-ID</th><td>{e(patient.get('PatientID'))}</td></tr>",
        f"<tr><th>Date of birth / Geburtsdatum</th><td>{e(_date(patient.get('PatientBirthDate')))}</td></tr>",
        f"<tr><th>Issued by / Ausgestellt von</th><td>{e(issuer)}</td></tr>",
        f"<tr><th>Date / Datum</th><td>{e(issued)}</td></tr>",
        "</table>",
        '<div class="note">',
        '<div class="lang" lang="en"><h2>What is this?</h2>'
        "<p>This is a copy of your medical images, as you asked for under the General Data Protection "
        "Regulation (GDPR, Articles 15 and 20). The first copy is free of charge.</p>"
        "<p>The images are in the DICOM format used by hospitals. To look at them, open the "
        "<b>DICOMDIR</b> file with any DICOM viewer (free viewers exist for every computer, for "
        "example Weasis, Horos, MicroDicom or the viewer built into many hospital systems). "
        "You can also give the whole folder to another doctor or hospital: they can import it.</p>"
        "<p>The folder <b>FHIR</b> holds a machine-readable summary for other health systems. "
        "The file <b>SHA256SUMS</b> lets anyone check that no file was changed.</p>"
        "<p>These images contain personal health data. Keep them safe.</p></div>",
        '<div class="lang" lang="de"><h2>Was ist das?</h2>'
        "<p>Dies ist eine Kopie Ihrer medizinischen Bilder, die Sie nach der "
        "Datenschutz-Grundverordnung (DSGVO, Artikel 15 und 20) angefordert haben. Die erste Kopie "
        "ist kostenlos.</p>"
        "<p>Die Bilder liegen im DICOM-Format vor, das Krankenhäuser verwenden. Öffnen Sie die Datei "
        "<b>DICOMDIR</b> mit einem DICOM-Betrachter (kostenlose Programme gibt es für jeden Computer, "
        "z. B. Weasis, Horos oder MicroDicom). Sie können den ganzen Ordner auch einer anderen Praxis "
        "oder Klinik geben: dort kann er eingelesen werden.</p>"
        "<p>Der Ordner <b>FHIR</b> enthält eine maschinenlesbare Zusammenfassung. Mit der Datei "
        "<b>SHA256SUMS</b> lässt sich prüfen, dass keine Datei verändert wurde.</p>"
        "<p>Diese Bilder enthalten persönliche Gesundheitsdaten. Bewahren Sie sie sicher auf.</p></div>",
        "</div>",
    ]
    for study in studies:
        n = sum(len(se["instances"]) for se in study["series"])
        out.append(f"<h2>{e(_date(study.get('StudyDate')))} — {e(study.get('StudyDescription') or 'Study')}"
                   f" <small>({len(study['series'])} series / Serien, {n} images / Bilder)</small></h2>")
        for se in study["series"]:
            caption = (f"{e(se.get('Modality'))} #{e(se.get('SeriesNumber'))} "
                       f"{e(se.get('SeriesDescription') or '')} — {len(se['instances'])} images / Bilder")
            thumb = thumbs.get(se["SeriesInstanceUID"])
            img = (f'<img src="{e(thumb)}" alt="preview of series {e(se.get("SeriesNumber"))}">'
                   if thumb else "<div>(no preview / keine Vorschau)</div>")
            out.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def readme_txt(patient: dict, studies: list[dict], *, issuer: str, issued: str) -> str:
    n = sum(len(se["instances"]) for s in studies for se in s["series"])
    return f"""YOUR MEDICAL IMAGES - COPY UNDER THE GDPR (ARTICLES 15 AND 20)
================================================================

Patient ID: {patient.get('PatientID')}
Issued by:  {issuer}
Date:       {issued}
Content:    {len(studies)} study/studies, {n} DICOM images

How to open
-----------
* INDEX.HTM   - open in any web browser: an overview with previews (English, Deutsch).
* DICOMDIR    - open with any DICOM viewer; the images are in the PT*/ST*/SE* folders
                (portable media layout, IHE PDI: file names without extensions).
* FHIR/       - machine-readable summary: R5.JSON (FHIR R5) and R4B.JSON (FHIR R4B),
                see FHIR/README.TXT.
* SHA256SUMS  - checksums of every file; check with: sha256sum -c SHA256SUMS

The first copy is free of charge. These files contain personal health data: keep them safe.

IHRE MEDIZINISCHEN BILDER - KOPIE NACH DER DSGVO (ARTIKEL 15 UND 20)
* INDEX.HTM im Webbrowser öffnen; DICOMDIR mit einem DICOM-Betrachter öffnen.
* Die erste Kopie ist kostenlos. Bitte bewahren Sie die Dateien sicher auf.
"""


FHIR_README = """FHIR manifest of this copy
==========================

R5.JSON   FHIR R5 collection Bundle (HL7 Europe Imaging Study Manifest shape)
R4B.JSON  the same content in FHIR R4B

Resources: Patient; one ImagingStudy per study (identifier system urn:dicom:uid, value
urn:oid:<StudyInstanceUID>; series with uid, modality, number of instances, body site where
known; instances with uid and sopClass); Endpoint; Organization (the issuer); Provenance.

The Endpoint of an offline copy: there is no DICOMweb server. Endpoint.address is the relative
URL "../DICOMDIR" (the DICOMDIR at the root of this copy), Endpoint.connectionType is
urn:ietf:rfc:3986 | urn:oid:1.2.840.10008.1.3.10 (the DICOM Media Storage Directory SOP Class),
and the payload is application/dicom. Resolve each instance by its SOP Instance UID through the
DICOMDIR, or import the whole File-set.
"""
