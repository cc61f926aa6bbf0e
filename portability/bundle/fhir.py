"""FHIR collection Bundles (R5 and R4B) describing the studies in a portability bundle.

Shaped after the HL7 Europe Imaging Study Manifest (hl7-eu/imaging-manifest, "MADO"): Patient,
one ImagingStudy per study (identifier ``urn:dicom:uid`` / ``urn:oid:<StudyInstanceUID>``, series
with uid, modality, counts, bodySite where known, instances with uid and sopClass), an Endpoint
that says where the DICOM objects are, and a Provenance saying who produced the manifest.

The Endpoint of an offline copy
-------------------------------
A manifest's Endpoint normally points at a DICOMweb (WADO-RS) base URL. An offline copy has no
server: the objects sit beside the manifest in a DICOM File-set. The Endpoint therefore has

* ``connectionType``: ``urn:ietf:rfc:3986`` / ``urn:oid:1.2.840.10008.1.3.10`` — the DICOM
  Media Storage Directory (DICOMDIR) SOP Class: "read this through the DICOMDIR";
* ``address``: ``../DICOMDIR`` — relative to the FHIR file, i.e. the DICOMDIR at the root of the
  bundle (or of the CD/USB stick it was copied to);
* ``payload.mimeType``: ``application/dicom``.

A receiving system resolves each instance by SOP Instance UID through the DICOMDIR (or simply
imports the whole File-set) instead of calling WADO-RS.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
DICOMDIR_SOP_CLASS = "urn:oid:1.2.840.10008.1.3.10"

# DICOM Body Part Examined (PS3.16 Annex L) -> SNOMED CT, for the common ones; others: text only.
BODY_PARTS = {
    "HEAD": ("69536005", "Head structure"), "BRAIN": ("12738006", "Brain structure"),
    "NECK": ("45048000", "Neck structure"), "CHEST": ("51185008", "Thoracic structure"),
    "ABDOMEN": ("113345001", "Abdominal structure"), "PELVIS": ("12921003", "Pelvic structure"),
    "SPINE": ("421060004", "Spinal structure"), "KNEE": ("72696002", "Knee region structure"),
    "BREAST": ("76752008", "Breast structure"), "HAND": ("85562004", "Hand structure"),
}
GENDER = {"M": "male", "F": "female", "O": "other"}


def _date(da: str | None) -> str | None:
    if da and len(da) >= 8 and da[:8].isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:8]}"
    return None


def _datetime(da: str | None, tm: str | None) -> str | None:
    d = _date(da)
    if not d:
        return None
    tm = (tm or "").split(".")[0]
    if len(tm) >= 4 and tm[:4].isdigit():
        ss = tm[4:6] if len(tm) >= 6 and tm[4:6].isdigit() else "00"
        return f"{d}T{tm[:2]}:{tm[2:4]}:{ss}Z"
    return d


def _uid(value: str) -> str:
    return f"urn:oid:{value}"


def human_name(pn: str) -> dict[str, Any]:
    alpha = (pn or "").split("=")[0]
    comps = alpha.split("^") + [""] * 5
    family, given, middle, prefix, suffix = (c.strip() for c in comps[:5])
    name: dict[str, Any] = {"text": " ".join(x for x in (prefix, given, middle, family, suffix) if x) or alpha}
    if family:
        name["family"] = family
    givens = [g for g in (given, middle) if g]
    if givens:
        name["given"] = givens
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    return name


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def build(patient: dict, studies: list[dict], *, issuer: str, version: str,
          created: datetime | None = None) -> dict[str, Any]:
    """A collection Bundle (``version`` "R5" or "R4B") as a JSON-able dict.

    ``patient``: PatientID, PatientName, PatientBirthDate, PatientSex, IssuerOfPatientID.
    ``studies``: StudyInstanceUID, StudyDate, StudyTime, StudyDescription, series: [SeriesInstanceUID,
    SeriesNumber, Modality, SeriesDescription, BodyPartExamined, instances: [SOPInstanceUID,
    SOPClassUID, InstanceNumber]].
    """
    r5 = version == "R5"
    created = created or datetime.now(timezone.utc)
    ns = uuid.uuid5(uuid.NAMESPACE_OID, "|".join(s["StudyInstanceUID"] for s in studies) + version)
    full = {k: f"urn:uuid:{uuid.uuid5(ns, k)}" for k in ("patient", "endpoint", "provenance", "org")}

    ident: dict[str, Any] = {"value": patient.get("PatientID") or "UNKNOWN"}
    if patient.get("IssuerOfPatientID"):
        ident["assigner"] = {"display": patient["IssuerOfPatientID"]}
    pat: dict[str, Any] = {"resourceType": "Patient", "identifier": [ident]}
    if patient.get("PatientName"):
        pat["name"] = [human_name(patient["PatientName"])]
    if GENDER.get(patient.get("PatientSex") or ""):
        pat["gender"] = GENDER[patient["PatientSex"]]
    elif patient.get("PatientSex"):
        pat["gender"] = "unknown"
    if _date(patient.get("PatientBirthDate")):
        pat["birthDate"] = _date(patient["PatientBirthDate"])

    org = {"resourceType": "Organization", "name": issuer, "active": True}

    payload_type = {"coding": [_coding(DCM, "DCM", "DICOM")], "text": "DICOM objects"}
    connection = _coding("urn:ietf:rfc:3986", DICOMDIR_SOP_CLASS, "DICOM File-set (DICOMDIR) on media")
    endpoint: dict[str, Any] = {
        "resourceType": "Endpoint", "status": "active", "name": "Offline DICOM File-set of this copy",
        "address": "../DICOMDIR",
        "managingOrganization": {"reference": full["org"]},
    }
    if r5:
        endpoint["connectionType"] = [{"coding": [connection]}]
        endpoint["payload"] = [{"type": [payload_type], "mimeType": ["application/dicom"]}]
        endpoint["description"] = ("The DICOM objects are stored beside this manifest as a DICOM File-set; "
                                   "resolve instances through the DICOMDIR at the root of the copy.")
    else:
        endpoint["connectionType"] = connection
        endpoint["payloadType"] = [payload_type]
        endpoint["payloadMimeType"] = ["application/dicom"]

    entries: list[tuple[str, dict]] = [(full["patient"], pat)]
    study_urls = []
    for study in studies:
        sid = f"urn:uuid:{uuid.uuid5(ns, 'study' + study['StudyInstanceUID'])}"
        study_urls.append(sid)
        n_inst = sum(len(se["instances"]) for se in study["series"])
        modalities = sorted({se["Modality"] for se in study["series"] if se.get("Modality")})
        res: dict[str, Any] = {
            "resourceType": "ImagingStudy",
            "identifier": [{"system": "urn:dicom:uid", "value": _uid(study["StudyInstanceUID"])}],
            "status": "available",
            "subject": {"reference": full["patient"]},
            "endpoint": [{"reference": full["endpoint"]}],
            "numberOfSeries": len(study["series"]),
            "numberOfInstances": n_inst,
        }
        if modalities:
            res["modality"] = ([{"coding": [_coding(DCM, m)]} for m in modalities] if r5
                               else [_coding(DCM, m) for m in modalities])
        started = _datetime(study.get("StudyDate"), study.get("StudyTime"))
        if started:
            res["started"] = started
        if study.get("StudyDescription"):
            res["description"] = study["StudyDescription"]
        series_out = []
        for se in study["series"]:
            s_out: dict[str, Any] = {"uid": se["SeriesInstanceUID"]}
            if str(se.get("SeriesNumber") or "").strip().lstrip("-").isdigit():
                s_out["number"] = int(se["SeriesNumber"])
            mod = se.get("Modality") or "OT"
            s_out["modality"] = {"coding": [_coding(DCM, mod)]} if r5 else _coding(DCM, mod)
            if se.get("SeriesDescription"):
                s_out["description"] = se["SeriesDescription"]
            s_out["numberOfInstances"] = len(se["instances"])
            s_out["endpoint"] = [{"reference": full["endpoint"]}]
            body = (se.get("BodyPartExamined") or "").strip().upper()
            if body:
                code = BODY_PARTS.get(body)
                coding = _coding(SNOMED, code[0], code[1]) if code else {"display": body}
                if r5:
                    concept = {"coding": [coding], "text": body} if code else {"text": body}
                    s_out["bodySite"] = {"concept": concept}
                else:
                    s_out["bodySite"] = coding
            insts = []
            for inst in se["instances"]:
                i_out: dict[str, Any] = {
                    "uid": inst["SOPInstanceUID"],
                    "sopClass": _coding("urn:ietf:rfc:3986", _uid(inst["SOPClassUID"])),
                }
                if str(inst.get("InstanceNumber") or "").strip().lstrip("-").isdigit():
                    i_out["number"] = int(inst["InstanceNumber"])
                insts.append(i_out)
            s_out["instance"] = insts
            series_out.append(s_out)
        res["series"] = series_out
        entries.append((sid, res))

    entries.append((full["endpoint"], endpoint))
    entries.append((full["org"], org))
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": u} for u in study_urls] + [{"reference": full["patient"]}],
        "recorded": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "activity": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                        "CREATE", "create")],
                     "text": "copy of the patient's imaging for the patient (GDPR Art. 15/20)"},
        "agent": [{"who": {"reference": full["org"], "display": issuer}}],
    }
    entries.append((full["provenance"], provenance))
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid5(ns, 'bundle')}"},
        "type": "collection",
        "timestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "entry": [{"fullUrl": u, "resource": r} for u, r in entries],
    }


def validate(bundle: dict, version: str) -> None:
    """Parse with fhir.resources (R5 or R4B); raises on an invalid resource."""
    if version == "R5":
        from fhir.resources.bundle import Bundle
    else:
        from fhir.resources.R4B.bundle import Bundle
    Bundle.model_validate(bundle)
