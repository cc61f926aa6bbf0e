"""Rectification (Art. 16), erasure (Art. 17) and the Art. 19 notices to earlier recipients.

Applying is a job (``rights_jobs``), retried with back-off while Orthanc is unreachable, and
idempotent: the plan (studies, old and new UIDs, recipients) is stored before anything is
touched, and each step checks what an interrupted attempt left behind.

Rectification in Orthanc (1.10 checked): per study ``POST /studies/{id}/modify`` with
``{"Replace": {...changes, "StudyInstanceUID": <new UID chosen in the plan>}, "Force": true,
"KeepSource": false}`` - new series/instance UIDs, the corrected instances replace the old ones.
With ``uid_policy`` ``keep`` (allowed when the PatientID changes) ``POST /patients/{id}/modify``
keeps every UID. (Orthanc refuses to store a modified instance under an unchanged Orthanc id, so
keeping UIDs with an unchanged PatientID is refused up front.)

A study-level modify leaves Orthanc's patient entry (its index row and main DICOM tags) as the
first instance of the patient made it: the patient resource would still show the old name, and a
patient-level ``/tools/find`` on the new name would find nothing. After the modify, each patient
holding the corrected studies is rebuilt from its (corrected) files with ``POST
/patients/{id}/reconstruct``; the job then checks patient, study, series and instance level.
"""
from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from . import audit, forgetting, notices, patient_keys
from .disclosures import DOWNLOAD, ROUTE, disclosures_for
from .errors import Conflict, ServiceError
from .jobs import Lease, LeasedQueue, LeaseWorker
from .models import ErasedPseudonym, Erasure, PatientLock, Rectification, RightsJob, utcnow
from .orthanc import OrthancError, PatientNotFound

log = logging.getLogger("portability.rights")

#: Patient-level attributes a rectification may change (applied to every study of the patient).
RECTIFIABLE = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientBirthTime",
               "PatientSex", "OtherPatientNames", "EthnicGroup", "PatientComments")
ENUMERATED = {"PatientSex": ("M", "F", "O", "")}
REJECTION_CODES = {
    "113038": "Incorrect Modality Worklist Entry",
    "113037": "Rejected for Patient Safety Reasons",
    "113039": "Data Retention Policy Expired",
}
KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
RETENTION_GROUNDS = {
    "medical-record-retention": "Art. 17(3)(b)/(c): retention of the medical record required by national law",
    "legal-claims": "Art. 17(3)(e): establishment, exercise or defence of legal claims",
    "public-health": "Art. 17(3)(c): reasons of public interest in the area of public health",
    "archiving-research": "Art. 17(3)(d): archiving, scientific research or statistics (Art. 89)",
    "legal-obligation": "Art. 17(3)(b): compliance with a legal obligation",
}


class InvalidValue(ServiceError):
    status, code = 422, "invalid-value"


class Unprocessable(ServiceError):
    status, code = 422, "unprocessable"


class Retryable(Exception):
    """A step failed for a reason that may pass (Orthanc down, partial state): retry later."""


# ----------------------------------------------------------------------------- validation
#: what a valid value of a VR looks like (PS3.5 table 6.2-1), for error messages that state the
#: rule without repeating the rejected value
VR_RULES = {
    "DA": "a date YYYYMMDD", "TM": "a time HHMMSS.FFFFFF (HH, HHMM, ... allowed)",
    "DT": "a date-time YYYYMMDDHHMMSS.FFFFFF&ZZXX", "CS": "upper-case letters, digits, space and _, at most 16",
    "PN": "a person name: at most 5 ^-separated components of 64 characters, no control characters",
    "LO": "at most 64 characters, no backslash or control characters",
    "SH": "at most 16 characters, no backslash or control characters",
    "LT": "at most 10240 characters", "AS": "an age nnnD, nnnW, nnnM or nnnY",
}


def validate_change(attribute: str, proposed: str) -> dict:
    """The attribute's tag and VR; raises :class:`InvalidValue` when ``proposed`` is not valid for it.
    Messages name the attribute and the rule, never the rejected value."""
    from pydicom import config
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.valuerep import validate_value

    if attribute not in RECTIFIABLE:
        raise InvalidValue(f"this attribute cannot be rectified here; patient-level attributes: {', '.join(RECTIFIABLE)}")
    tag = tag_for_keyword(attribute)
    vr = dictionary_VR(tag)
    rule = f"{attribute} ({vr}) must be {VR_RULES.get(vr, f'a valid {vr} value')}"
    if not isinstance(proposed, str):
        raise InvalidValue(f"{attribute}: the proposed value must be a string")
    if attribute == "PatientID" and not proposed.strip():
        raise InvalidValue("PatientID: an empty patient ID is not a correction")
    try:
        validate_value(vr, proposed, config.RAISE)
    except (ValueError, TypeError):
        raise InvalidValue(f"proposed value rejected: {rule}") from None
    if vr == "DA" and proposed:
        try:
            datetime.strptime(proposed, "%Y%m%d")
        except ValueError:
            raise InvalidValue(f"proposed value rejected: {attribute} (DA) must be a calendar date YYYYMMDD") from None
    if attribute in ENUMERATED and proposed not in ENUMERATED[attribute]:
        raise InvalidValue(f"proposed value rejected: {attribute} ({vr}) must be one of "
                           f"{', '.join(v or repr('') for v in ENUMERATED[attribute])}")
    return {"attribute": attribute, "tag": f"{tag >> 16:04X},{tag & 0xFFFF:04X}", "vr": vr}


def tag_value(tags: dict, attribute: str) -> str:
    v = tags.get(attribute, "")
    return "\\".join(v) if isinstance(v, list) else str(v or "")


# ----------------------------------------------------------------------------- patient locks
def patient_key(s, patient_id: str, issuer: str) -> str:
    """The lock's key: the patient's keyed pseudonym (a lock row never names the patient)."""
    return patient_keys.pseudonym_in(s, patient_id, issuer)


def take_lock(s, patient_id: str, issuer: str, holder: str) -> None:
    """One open rectification or erasure per patient; the primary key makes racing inserts fail."""
    from sqlalchemy.exc import IntegrityError

    key = patient_key(s, patient_id, issuer)
    existing = s.get(PatientLock, key)
    if existing is not None:
        raise Conflict(f"{existing.holder} for this patient is still open; one at a time")
    try:
        s.add(PatientLock(patient_key=key, holder=holder))
        s.flush()
    except IntegrityError:
        raise Conflict("another rectification or erasure for this patient was filed at the same moment") from None


def release_lock(db, patient_id: str, issuer: str, holder: str) -> None:
    with db.session() as s:
        lock = s.get(PatientLock, patient_key(s, patient_id, issuer))
        if lock is not None and lock.holder == holder:
            s.delete(lock)


# ----------------------------------------------------------------------------- recipients (Art. 19)
def earlier_recipients(db, settings, patient_orthanc_id: str, resource_ids: set[str]) -> list[dict]:
    """Everyone who received data of these resources (Art. 19), one entry per recipient with the
    first time: destinations of plugin routing, users of de-identified downloads and the patient's
    own bundles, from :func:`portability.disclosures.disclosures_for`."""
    found: dict[tuple, dict] = {}
    for d in disclosures_for(db, settings, orthanc_patient=patient_orthanc_id, resources=resource_ids):
        when = d.at.isoformat()
        if d.kind == ROUTE:
            kind, _, name = d.recipient.partition(":")
            found.setdefault(("route", d.recipient, d.rule), {
                "kind": {"modality": "dicom"}.get(kind, kind), "recipient": d.recipient, "name": name,
                "rule": d.rule, "profile": d.profile, "purpose": d.purpose, "first": when})
        elif d.kind == DOWNLOAD:
            found.setdefault(("download", d.recipient), {"kind": "user-download", "recipient": f"user:{d.recipient}",
                                                         "profile": d.profile, "first": when})
        else:
            found.setdefault(("bundle", d.request_id), {"kind": "patient-bundle", "recipient": d.recipient,
                                                        "request_id": d.request_id, "first": when})
    return list(found.values())


def _deidentified_view(client, settings, profile: str, instances: list[dict]) -> dict | None:
    """What a destination fed through ``profile`` holds: the de-identified identity and UIDs,
    computed with the plugin's own engine and key (None without a key file)."""
    if not settings.plugin_key_file:
        return None
    from orthanc_gdpr.deid import Deidentifier, DeidentificationError, Keyring, deidentify_bytes, load_key, load_profile

    engine = Deidentifier(load_profile(profile), Keyring(load_key(settings.plugin_key_file)))
    view: dict[str, Any] = {"instances": []}
    for inst in instances:
        try:
            ds, _, _ = deidentify_bytes(engine, client.instance_file(inst["id"]))
        except DeidentificationError:
            continue  # held back by the plugin too: never sent
        view.setdefault("patient_id", str(ds.get("PatientID", "")))
        view.setdefault("patient_name", str(ds.get("PatientName", "")))
        view.setdefault("study_uid", str(ds.StudyInstanceUID))
        view["instances"].append({"sop": str(ds.SOPInstanceUID), "cls": str(ds.SOPClassUID),
                                  "series_uid": str(ds.SeriesInstanceUID), "study_uid": str(ds.StudyInstanceUID)})
    return view


def rejection_note(code: str, patient_id: str, patient_name: str, instances: list[dict],
                   issuer: str = "") -> bytes:
    """An IHE IOCM rejection note: Key Object Selection Document titled DCM ``code``, referencing
    the rejected instances (``instances``: sop, cls, series_uid, study_uid)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    now = datetime.now()

    def code_item(value: str, scheme: str, meaning: str) -> Dataset:
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
        return c

    ds = Dataset()
    ds.SOPClassUID = KOS_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID = patient_name, patient_id
    if issuer:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate, ds.PatientSex = "", ""
    study_uids = sorted({i["study_uid"] for i in instances})
    ds.StudyInstanceUID = study_uids[0]
    ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "", "", ""
    ds.Modality = "KO"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 9999, 1
    ds.Manufacturer = "orthanc-gdpr"
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [code_item(code, "DCM", REJECTION_CODES[code])]
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = [template]
    evidence = []
    for study_uid in study_uids:
        study = Dataset()
        study.StudyInstanceUID = study_uid
        series_items = []
        for series_uid in sorted({i["series_uid"] for i in instances if i["study_uid"] == study_uid}):
            series = Dataset()
            series.SeriesInstanceUID = series_uid
            refs = []
            for i in instances:
                if i["series_uid"] == series_uid and i["study_uid"] == study_uid:
                    r = Dataset()
                    r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = i["cls"], i["sop"]
                    refs.append(r)
            series.ReferencedSOPSequence = refs
            series_items.append(series)
        study.ReferencedSeriesSequence = series_items
        evidence.append(study)
    ds.CurrentRequestedProcedureEvidenceSequence = evidence
    content = []
    for i in instances:
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
        r = Dataset()
        r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = i["cls"], i["sop"]
        item.ReferencedSOPSequence = [r]
        content.append(item)
    ds.ContentSequence = content
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = KOS_SOP_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# ----------------------------------------------------------------------------- planning
def nested_paths(data: bytes, watch: dict[str, str]) -> set[str]:
    """Orthanc modify paths (``Seq[*].Keyword``) where a watched attribute holds its old value
    inside a sequence (e.g. the name repeated under OtherPatientIDsSequence)."""
    import pydicom

    found: set[str] = set()
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)

    def walk(dataset, prefix: str, depth: int) -> None:
        for elem in dataset:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item, f"{prefix}{elem.keyword}[*].", depth + 1)
            elif depth and elem.keyword in watch and str(elem.value or "") == watch[elem.keyword]:
                found.add(prefix + elem.keyword)

    if watch:
        walk(ds, "", 0)
    return found


def snapshot(client, orthanc_patient: str, watch: dict[str, str] | None = None) -> dict:
    """Studies, series and instances of a patient, with UIDs (what is about to change); with
    ``watch``, also the nested places where the old values occur."""
    studies = []
    nested: set[str] = set()
    for st in client.patient_studies(orthanc_patient):
        series, instances = [], []
        for se in client.study_series(st["ID"]):
            series.append({"id": se["ID"], "uid": se["MainDicomTags"].get("SeriesInstanceUID")})
            for inst in client.series_instances(se["ID"]):
                tags = client.instance_tags(inst["ID"])
                if watch:
                    nested |= nested_paths(client.instance_file(inst["ID"]), watch)
                instances.append({"id": inst["ID"], "sop": tags.get("SOPInstanceUID"), "cls": tags.get("SOPClassUID"),
                                  "series_uid": se["MainDicomTags"].get("SeriesInstanceUID"),
                                  "study_uid": st["MainDicomTags"].get("StudyInstanceUID")})
        studies.append({"old_id": st["ID"], "uid": st["MainDicomTags"].get("StudyInstanceUID"),
                        "series": series, "instances": instances})
    return {"patient": orthanc_patient, "studies": studies, "nested": sorted(nested)}


def _resource_ids(plan: dict) -> set[str]:
    ids = {plan["patient"]}
    for st in plan["studies"]:
        ids.add(st["old_id"])
        ids |= {s["id"] for s in st["series"]} | {i["id"] for i in st["instances"]}
    return ids


def make_plan(db, settings, client, orthanc_patient: str, watch: dict[str, str] | None = None) -> dict:
    from pydicom.uid import generate_uid

    plan = snapshot(client, orthanc_patient, watch)
    for st in plan["studies"]:
        st["new_uid"] = generate_uid()
    plan["recipients"] = earlier_recipients(db, settings, orthanc_patient, _resource_ids(plan))
    instances = [i for st in plan["studies"] for i in st["instances"]]
    plan["deidentified"] = {}
    for profile in sorted({r["profile"] for r in plan["recipients"] if r["kind"] in ("dicom",) and r.get("profile")}):
        view = _deidentified_view(client, settings, profile, instances)
        if view is not None:
            plan["deidentified"][profile] = view
    return plan


# ----------------------------------------------------------------------------- notices
def notify_recipients(db, settings, client, right: str, ref_id: int, plan: dict, code: str,
                      new_studies: list[str] | None, identity: tuple[str, str, str]) -> list[dict]:
    """Art. 19 for every earlier recipient: DICOM destinations get the corrected copy (through the
    plugin's rule, i.e. the same de-identification profile) and a rejection note; every other
    recipient kind gets a recorded notice to send."""
    results = []
    old_instances = [i for st in plan["studies"] for i in st["instances"]]
    for rcp in plan.get("recipients", []):
        if rcp["kind"] in ("dicom", "peer", "dicomweb") and rcp.get("rule") and new_studies:
            def route(rcp=rcp):
                jobs = [client.post_json("/gdpr/route", {"level": "study", "id": sid, "rule": rcp["rule"]})["id"]
                        for sid in new_studies]
                return "sent", {"via": "plugin-route", "rule": rcp["rule"], "plugin_jobs": jobs}
            results.append(notices.record_once(db, right, ref_id, rcp, "corrected-copy", route))
        if rcp["kind"] == "dicom":
            view = plan.get("deidentified", {}).get(rcp.get("profile") or "")
            if view and view["instances"]:
                def kos(rcp=rcp, view=view):
                    note = rejection_note(code, view["patient_id"], view["patient_name"], view["instances"])
                    client.post_raw(f"/modalities/{rcp['name']}/store-straight", note)
                    return "sent", {"via": "store-straight", "code": code, "references": len(view["instances"])}
            elif not rcp.get("profile"):
                def kos(rcp=rcp):
                    pid, name, issuer = identity
                    note = rejection_note(code, pid, name, old_instances, issuer)
                    client.post_raw(f"/modalities/{rcp['name']}/store-straight", note)
                    return "sent", {"via": "store-straight", "code": code, "references": len(old_instances)}
            else:
                def kos(rcp=rcp):
                    return "to-send", {"code": code, "why": "the de-identified UIDs this destination holds are "
                                       "unknown without the plugin key (ORTHANC_GDPR_SERVICE_PLUGIN_KEY_FILE)"}
            results.append(notices.record_once(db, right, ref_id, rcp, f"rejection-note-{code}", kos))
        elif rcp["kind"] in ("peer", "dicomweb", "user-download", "patient-bundle"):
            what = "rectified" if right == "rectification" else "erased"
            results.append(notices.record_once(db, right, ref_id, rcp, "notice", lambda rcp=rcp, what=what: (
                "to-send", {"text": f"data of this patient that you received were {what}; "
                                    f"please {'update' if what == 'rectified' else 'erase'} your copy",
                            "first_received": rcp.get("first")})))
    return results


# ----------------------------------------------------------------------------- applying
def _new_id(client, new_uid: str) -> str | None:
    found = client.find_studies(new_uid)
    return found[0] if found else None


def apply_rectification(db, settings, client, rect_id: int) -> None:
    with db.session() as s:
        r = s.get(Rectification, rect_id)
        if r.status == "applied":
            return
        changes, policy, plan = r.changes, r.uid_policy, r.plan
        patient_orthanc, code = r.orthanc_patient_id, r.rejection_code
        pid, issuer = r.patient_id, r.issuer
    replace = {c["attribute"]: c["proposed"] for c in changes}
    if plan is None:  # first attempt: check the current values, then fix the plan before touching anything
        try:
            patient = client.get_json(f"/patients/{patient_orthanc}")
        except PatientNotFound:
            raise Unprocessable("the patient is no longer in Orthanc") from None
        first = client.get_json(f"/patients/{patient_orthanc}/instances")[0]["ID"]
        tags = client.instance_tags(first)
        stale = [c["attribute"] for c in changes if tag_value(tags, c["attribute"]) != (c["current"] or "")]
        if stale:
            raise Unprocessable(f"the current value of {', '.join(stale)} in Orthanc is not the one in the request")
        plan = make_plan(db, settings, client, patient["ID"],
                         {c["attribute"]: c["current"] for c in changes if c["current"]})
        plan["identity"] = [tag_value(tags, "PatientID"), tag_value(tags, "PatientName"),
                            tag_value(tags, "IssuerOfPatientID")]
        with db.session() as s:
            s.get(Rectification, rect_id).plan = plan
        audit.record("rectification.planned", rectification_id=rect_id, studies=len(plan["studies"]),
                     instances=sum(len(st["instances"]) for st in plan["studies"]),
                     recipients=[x["recipient"] for x in plan["recipients"]])
    new_studies: list[str] = []
    # The old value repeated inside sequences (Orthanc 1.9.4+ modify paths) is corrected too.
    modify = {**replace, **{path: replace[path.rsplit(".", 1)[1]] for path in plan.get("nested", [])}}
    if policy == "regenerate":
        for st in plan["studies"]:
            old = client.find_studies(st["uid"])
            new = _new_id(client, st["new_uid"])
            if old and new:  # an interrupted attempt: drop its partial copy, modify again from the source
                client.delete(f"/studies/{new}")
                new = None
            if old:
                answer = client.post_json(f"/studies/{old[0]}/modify", {
                    "Replace": {**modify, "StudyInstanceUID": st["new_uid"]}, "Force": True, "KeepSource": False})
                new = answer["ID"]
                if client.find_studies(st["uid"]):  # Orthanc stored the copy but kept the source
                    client.delete(f"/studies/{old[0]}")
            if new is None:
                raise Unprocessable(f"study {st['uid']} is neither in Orthanc nor corrected (deleted meanwhile?)")
            new_studies.append(new)
    else:  # keep UIDs: patient-level modify (PatientID changes, so the Orthanc ids differ)
        sops = {i["sop"] for st in plan["studies"] for i in st["instances"]}
        old_exists = bool(client.find_patients(plan["identity"][0])) and \
            any(p["ID"] == plan["patient"] for p in client.find_patients(plan["identity"][0]))
        if old_exists:
            for p in client.find_patients(replace["PatientID"]):  # partial copy of an interrupted attempt
                for inst in client.get_json(f"/patients/{p['ID']}/instances"):
                    if client.instance_tags(inst["ID"]).get("SOPInstanceUID") in sops:
                        client.delete(f"/instances/{inst['ID']}")
            client.post_json(f"/patients/{plan['patient']}/modify",
                             {"Replace": modify, "Force": True, "KeepSource": False})
        for st in plan["studies"]:
            new_studies += client.find_studies(st["uid"])
    # Orthanc's index keeps the patient-level tags it first saw (a study-level modify leaves them):
    # rebuild them from the corrected files, so that the patient resource and patient-level finds
    # answer with the new values too.
    patients = sorted({client.get_json(f"/studies/{sid}")["ParentPatient"] for sid in new_studies})
    for orthanc_patient in patients:
        client.reconstruct("patients", orthanc_patient)
        kept = client.get_json(f"/patients/{orthanc_patient}").get("MainDicomTags", {})
        stale = [a for a, v in replace.items() if a in kept and kept[a] != v]
        if stale:
            raise Retryable(f"Orthanc's patient entry still holds the old {', '.join(stale)}")
    # Verify: every corrected instance carries the new values; no instance of the plan is left with the old ones.
    count = 0
    for sid in new_studies:
        for inst in client.get_json(f"/studies/{sid}/instances"):
            tags = client.instance_tags(inst["ID"])
            wrong = [a for a, v in replace.items() if tag_value(tags, a) != v]
            if wrong:
                raise Retryable(f"instance {inst['ID']} still lacks the corrected {', '.join(wrong)}")
            count += 1
    expected = sum(len(st["instances"]) for st in plan["studies"])
    if count != expected:
        raise Retryable(f"{count} corrected instances in Orthanc, {expected} expected")
    with db.session() as s:
        s.get(Rectification, rect_id).result = {"new_studies": new_studies, "instances": count}
    pid_now = replace.get("PatientID", plan["identity"][0])
    notices = notify_recipients(db, settings, client, "rectification", rect_id, plan, code, new_studies,
                                (pid_now, replace.get("PatientName", plan["identity"][1]), plan["identity"][2]))
    old_values = {c["attribute"]: c["current"] for c in changes}
    audit.record("rectification.applied", rectification_id=rect_id, patient_id=pid, issuer=issuer,
                 old_values=old_values, new_values=replace, uid_policy=policy, instances=count,
                 new_studies=new_studies, notices=[{k: n[k] for k in ("recipient", "action", "status")} for n in notices])
    with db.session() as s:  # the old values now live in the audit record only
        r = s.get(Rectification, rect_id)
        r.changes = [{**c, "current": None, "current_in": "audit record rectification.applied"} for c in r.changes]
        plan = dict(r.plan)
        plan.pop("identity", None)
        plan.pop("deidentified", None)
        r.plan = plan
        r.status, r.applied_at = "applied", utcnow()
        r.result = {"new_studies": new_studies, "instances": count, "notices": notices}
    release_lock(db, pid, issuer, f"rectification #{rect_id}")


def pseudonyms_of(settings, client, plan: dict, profiles: set[str]) -> list[tuple[str, str]]:
    if not settings.plugin_key_file or not plan["studies"] or not plan["studies"][0]["instances"]:
        return []
    from orthanc_gdpr.deid import Deidentifier, DeidentificationError, Keyring, deidentify_bytes, load_key, load_profile

    data = client.instance_file(plan["studies"][0]["instances"][0]["id"])
    out = []
    for profile in sorted(profiles or {"research"}):
        try:
            _, _, report = deidentify_bytes(Deidentifier(load_profile(profile), Keyring(load_key(settings.plugin_key_file))), data)
        except (DeidentificationError, Exception):  # noqa: BLE001 - a profile that is not installed: skip
            continue
        if report.patient_pseudonym:
            out.append((report.patient_pseudonym, profile))
    return out


def apply_erasure(db, settings, client, erasure_id: int) -> None:
    with db.session() as s:
        e = s.get(Erasure, erasure_id)
        if e.status == "erased":
            return
        plan, patient_orthanc, pid, issuer = e.plan, e.orthanc_patient_id, e.patient_id, e.issuer
    if plan is None:
        try:
            client.get_json(f"/patients/{patient_orthanc}")
        except PatientNotFound:
            raise Unprocessable("the patient is no longer in Orthanc") from None
        first = client.get_json(f"/patients/{patient_orthanc}/instances")[0]["ID"]
        tags = client.instance_tags(first)
        plan = make_plan(db, settings, client, patient_orthanc)
        plan["identity"] = [tag_value(tags, "PatientID"), tag_value(tags, "PatientName"),
                            tag_value(tags, "IssuerOfPatientID")]
        plan["pseudonyms"] = pseudonyms_of(settings, client, plan,
                                           {r["profile"] for r in plan["recipients"] if r.get("profile")})
        with db.session() as s:
            s.get(Erasure, erasure_id).plan = plan
        audit.record("erasure.planned", erasure_id=erasure_id, studies=len(plan["studies"]),
                     recipients=[x["recipient"] for x in plan["recipients"]])
    notices = notify_recipients(db, settings, client, "erasure", erasure_id, plan, "113039", None,
                                tuple(plan["identity"]))
    for st in plan["studies"]:
        for sid in client.find_studies(st["uid"]):
            client.delete(f"/studies/{sid}")
    left = [st["uid"] for st in plan["studies"] if client.find_studies(st["uid"])]
    if left:
        raise Retryable(f"{len(left)} studies still in Orthanc after deletion")
    with db.session() as s:
        known = set(s.scalars(select(ErasedPseudonym.pseudonym).where(ErasedPseudonym.erasure_id == erasure_id)))
        for pseudonym, profile in plan.get("pseudonyms", []):
            if pseudonym not in known:
                s.add(ErasedPseudonym(pseudonym=pseudonym, profile=profile, erasure_id=erasure_id))
    # The record of the erasure is sealed under the patient's key like every other record of the
    # patient; then the key is shredded, the working records go, and the files are compacted.
    audit.record("erasure.done", erasure_id=erasure_id, patient_id=pid, issuer=issuer,
                 studies=[st["uid"] for st in plan["studies"]],
                 pseudonyms_listed=len(plan.get("pseudonyms", [])),
                 notices=[{k: n[k] for k in ("recipient", "action", "status")} for n in notices])
    ref = patient_keys.shred(db, pid, issuer)
    forgotten = forgetting.forget_patient(db, pid, issuer, plan["patient"], ref, keep_erasure=erasure_id)
    with db.session() as s:
        e = s.get(Erasure, erasure_id)
        e.status, e.erased_at = "erased", utcnow()
        e.result = {"studies_deleted": len(plan["studies"]), "notices": notices, "service_records_deleted": forgotten,
                    "pseudonyms_listed": [ps for ps, _ in plan.get("pseudonyms", [])]}
    release_lock(db, pid, issuer, f"erasure #{erasure_id}")
    audit.record("erasure.forgotten", erasure_id=erasure_id, patient_pseudonym=ref, key="shredded", **forgotten)
    db.compact()


# ----------------------------------------------------------------------------- the job queue
#: advisory lock namespace of rights jobs (first key of ``pg_advisory_lock(int, int)``): "GDRJ"
RIGHTS_LOCK_CLASS = 0x4744524A

#: Rights jobs are claimed under the same lease as bundle jobs (:class:`.jobs.LeasedQueue`): a job
#: left ``running`` by a dead worker is made claimable again (``retrying``, due now; the attempt it
#: was on counts, and applying is idempotent), audited ``rights.reclaimed``.
RIGHTS_JOBS = LeasedQueue(
    model=RightsJob, lock_class=RIGHTS_LOCK_CLASS, ready=("queued", "retrying"),
    claimed_event="rights.claimed", reclaimed_event="rights.reclaimed",
    columns=(RightsJob.kind, RightsJob.ref_id),
    describe=lambda row: {"kind": row.kind, f"{row.kind}_id": row.ref_id},
    ready_when=lambda: [RightsJob.next_attempt_at <= utcnow()],
    order_by=(RightsJob.next_attempt_at, RightsJob.id),
    on_claim=lambda: {"attempts": RightsJob.attempts + 1},
    on_reclaim=lambda: {"status": "retrying", "next_attempt_at": utcnow()},
)


def enqueue(db, kind: str, ref_id: int) -> int:
    with db.session() as s:
        job = RightsJob(kind=kind, ref_id=ref_id, status="queued", attempts=0, next_attempt_at=utcnow())
        s.add(job)
        s.flush()
        return job.id


def claim(db, worker: str) -> Lease | None:
    """Take the first due job (queued, or retrying and due): running, one more attempt, under a lease."""
    return RIGHTS_JOBS.claim(db, worker)


def reclaim(db) -> list[int]:
    """Make the running jobs of dead workers claimable again (audited ``rights.reclaimed``)."""
    return RIGHTS_JOBS.reclaim(db)


def _mark(db, kind: str, ref_id: int, status: str, error: str | None = None) -> tuple[str, str]:
    with db.session() as s:
        row = s.get(Rectification if kind == "rectification" else Erasure, ref_id)
        row.status = status
        if error:
            row.result = {**(row.result or {}), "error": error}
        return row.patient_id, row.issuer


def run_job(db, settings, make_client, job_id: int) -> None:
    with db.session() as s:
        job = s.get(RightsJob, job_id)
        kind, ref_id, attempts = job.kind, job.ref_id, job.attempts
    apply = apply_rectification if kind == "rectification" else apply_erasure
    try:
        apply(db, settings, make_client(), ref_id)
    except (OrthancError, Retryable, PatientNotFound, OSError) as e:
        error = f"{type(e).__name__}: {e}"
        final = attempts >= settings.rights_max_attempts
        delay = min(settings.rights_retry_seconds * 2 ** (attempts - 1), settings.rights_max_retry_seconds)
        with db.session() as s:
            j = s.get(RightsJob, job_id)
            j.error, j.status = error, "failed" if final else "retrying"
            j.next_attempt_at = utcnow() + timedelta(seconds=delay)
            if final:
                j.finished_at = utcnow()
        audit.record(f"{kind}.{'failed' if final else 'retry'}", **{f"{kind}_id": ref_id}, job_id=job_id,
                     attempt=attempts, error=error[:500], retry_in_seconds=None if final else delay)
        if final:
            pid, issuer = _mark(db, kind, ref_id, "failed", error)
            release_lock(db, pid, issuer, f"{kind} #{ref_id}")
        return
    except Exception as e:  # noqa: BLE001 - not retryable (bad plan, vanished data): fail clearly
        error = f"{type(e).__name__}: {getattr(e, 'message', e)}"
        log.warning("rights job %s failed: %s", job_id, error)
        with db.session() as s:
            j = s.get(RightsJob, job_id)
            j.error, j.status, j.finished_at = error, "failed", utcnow()
        pid, issuer = _mark(db, kind, ref_id, "failed", error)
        release_lock(db, pid, issuer, f"{kind} #{ref_id}")
        audit.record(f"{kind}.failed", **{f"{kind}_id": ref_id}, job_id=job_id, attempt=attempts, error=error[:500])
        return
    with db.session() as s:
        j = s.get(RightsJob, job_id)
        j.status, j.finished_at, j.error = "done", utcnow(), None


def rights_worker(db, settings, make_client, reclaim_seconds: float = 5.0) -> LeaseWorker:
    """The worker that applies approved rectifications and granted erasures."""
    return LeaseWorker("rights", RIGHTS_JOBS, run_job, db, settings, make_client, reclaim_seconds)
