"""Rectification (Art. 16) with Art. 19 notices, against a real Orthanc (with the plugin) and DCMTK
storescp, on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json
import threading
import time

import pydicom

from orthanc_server import make_ct_study, wait_for, write_rules
from test_rights_common import DPO, REVIEWER, STAFF, client_for, rights_db, rights_pg_url, wait_status  # noqa: F401

OLD, NEW = "Wrongname^Agatha", "Rightname^Agatha"
KOS = "1.2.840.10008.5.1.4.1.1.88.59"


def rule(name, dest="scp", profile="research"):
    return {"name": name, "match": {"Modality": ["NO-SUCH-MODALITY"]}, "destination": {"type": "modality", "name": dest},
            "profile": profile, "purpose": "research", "lawful_basis": "research"}


def instances_tags(orthanc) -> list[dict]:
    return [orthanc.get_json(f"/instances/{i}/simplified-tags") for i in orthanc.get_json("/instances")]


def every_answer(orthanc) -> str:
    """What Orthanc answers about every resource, at every level (index entries and file tags)."""
    answers = [orthanc.get(f"/{level}", params={"expand": 1}).text for level in ("patients", "studies", "series", "instances")]
    for i in orthanc.get_json("/instances"):
        answers += [orthanc.get(f"/instances/{i}/tags").text, orthanc.get(f"/instances/{i}/header").text]
    for p in orthanc.get_json("/patients"):
        answers += [orthanc.get(f"/patients/{p}/shared-tags").text, orthanc.get(f"/patients/{p}/module").text]
    return "\n".join(answers)


def assert_every_level_says(orthanc, new: dict, old: dict) -> None:
    """Patient, study, series and instance level answer with ``new``; a patient-level find on the
    new values finds the patient; no answer carries an ``old`` value."""
    (patient,) = orthanc.get_json("/patients")
    tags = orthanc.get_json(f"/patients/{patient}")["MainDicomTags"]
    assert {k: tags.get(k) for k in new} == new
    for study in orthanc.get_json("/studies", params={"expand": 1}):
        assert {k: study["PatientMainDicomTags"].get(k) for k in new} == new
    for t in instances_tags(orthanc):
        assert {k: t.get(k) for k in new} == new
    for k, v in new.items():
        assert orthanc.post_json("/tools/find", {"Level": "Patient", "Query": {k: v}}) == [patient], k
        assert orthanc.post_json("/tools/find", {"Level": "Study", "Query": {k: v}}), k
    for k, v in old.items():
        if v:
            assert orthanc.post_json("/tools/find", {"Level": "Patient", "Query": {k: v}}) == [], k
    text = every_answer(orthanc)
    for v in old.values():
        if v:
            assert v not in text


def storage_files(orthanc) -> list:
    """Orthanc's stored attachments (the DICOM files themselves), not the index database."""
    return [p for p in orthanc.storage_dir.rglob("*") if p.is_file() and not p.name.startswith("index")]


def route_and_wait(orthanc, study_id, rule_name):
    job = orthanc.post_json("/gdpr/route", {"level": "study", "id": study_id, "rule": rule_name})
    return wait_for(lambda: (j := orthanc.get_json(f"/gdpr/jobs/{job['id']}"))["status"] in ("done", "failed", "refused") and j,
                    30, message="route job")


def test_rectification_journey_corrects_every_instance_and_notifies_the_earlier_dicom_recipient(
        orthanc_factory, storescp, rights_db, tmp_path):
    rules = write_rules(tmp_path / "rules.json", rule("research-scp"))
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()}, gdpr={"RoutingRules": str(rules)})
    files = make_ct_study(4, patient_id="RECT-1", patient_name=OLD, series=2)
    ids = [orthanc.upload(f) for f in files]
    old_study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    # Earlier recipient: the study went to the research destination through the plugin (de-identified).
    assert route_and_wait(orthanc, old_study, "research-scp")["status"] == "done"
    first = storescp.wait_for_files(4)
    received = {str(pydicom.dcmread(p).SOPInstanceUID) for p in first}

    with client_for(orthanc, rights_db, tmp_path) as c:
        r = c.post("/api/rectifications", headers=STAFF, json={
            "patient_id": "RECT-1", "evidence": "passport seen at the desk, ref. 2024-117",
            "changes": [{"attribute": "PatientName", "current": OLD, "proposed": NEW}]})
        assert r.status_code == 201, r.text
        rect = r.json()
        assert rect["status"] == "requested" and rect["changes"][0]["vr"] == "PN"
        assert c.post(f"/api/rectifications/{rect['id']}/decision", headers=STAFF,
                      json={"approve": True, "reason": "ok"}).status_code == 403  # staff may not decide
        r = c.post(f"/api/rectifications/{rect['id']}/decision", headers=REVIEWER,
                   json={"approve": True, "reason": "identity and evidence checked"})
        assert r.status_code == 200 and r.json()["status"] == "applying", r.text
        done = wait_status(c, f"/api/rectifications/{rect['id']}", ("applied", "failed"))
        assert done["status"] == "applied", done

        # Orthanc: the corrected value at every level, the old one in no answer (nor in the raw files).
        tags = instances_tags(orthanc)
        assert len(tags) == 4 and {t["PatientName"] for t in tags} == {NEW}
        assert_every_level_says(orthanc, {"PatientName": NEW}, {"PatientName": OLD})
        assert old_study not in orthanc.get_json("/studies")
        assert not {t["SOPInstanceUID"] for t in tags} & {str(pydicom.dcmread(io.BytesIO(f)).SOPInstanceUID) for f in files}
        raw = storage_files(orthanc)
        assert len(raw) >= 4
        for p in raw:
            assert OLD.encode() not in p.read_bytes(), f"old value still in {p}"

        # Art. 19: the destination got the corrected copy (through the same profile) and a KOS 113038
        # rejecting exactly the de-identified instances it had received.
        files_now = storescp.wait_for_files(9, timeout=60)
        kos = [pydicom.dcmread(p) for p in files_now if pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID == KOS]
        assert len(kos) == 1
        note = kos[0]
        assert note.ConceptNameCodeSequence[0].CodeValue == "113038"
        assert note.ConceptNameCodeSequence[0].CodingSchemeDesignator == "DCM"
        assert note.ConceptNameCodeSequence[0].CodeMeaning == "Incorrect Modality Worklist Entry"
        refs = {str(r.ReferencedSOPInstanceUID) for st in note.CurrentRequestedProcedureEvidenceSequence
                for se in st.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
        assert refs == received
        assert OLD.split("^")[0].encode() not in b"".join(p.read_bytes() for p in files_now)
        corrected = {str(pydicom.dcmread(p).SOPInstanceUID) for p in files_now} - received - {str(note.SOPInstanceUID)}
        assert len(corrected) == 4

        notices = c.get("/api/notices", params={"right": "rectification"}, headers=STAFF).json()
        assert {(n["action"], n["state"]) for n in notices} == {("corrected-copy", "sent"),
                                                                  ("rejection-note-113038", "sent")}

        # The old value survives in the audit record only.
        rect = c.get(f"/api/rectifications/{rect['id']}", headers=STAFF).json()
        assert OLD not in json.dumps(rect)
        applied = c.get("/api/audit/records", params={"event": "rectification.applied"}, headers=DPO).json()
        assert len(applied) == 1 and applied[0]["old_values"] == {"PatientName": OLD}
        assert applied[0]["new_values"] == {"PatientName": NEW}
        assert c.get("/api/audit/verify", headers=DPO).json()["intact"] is True
        # ... and the plugin's route records are in the same store.
        plugin = c.get("/api/audit/records", params={"source": "plugin"}, headers=DPO).json()
        assert any(r["event"] == "route.done" for r in plugin)


def test_rejected_rectification_keeps_orthanc_unchanged_and_records_the_reason(orthanc, rights_db, tmp_path):
    for f in make_ct_study(2, patient_id="RECT-2", patient_name=OLD, series=1):
        orthanc.upload(f)
    with client_for(orthanc, rights_db, tmp_path) as c:
        rect = c.post("/api/rectifications", headers=STAFF, json={
            "patient_id": "RECT-2", "changes": [{"attribute": "PatientBirthDate", "current": "", "proposed": "19700101"}]}).json()
        r = c.post(f"/api/rectifications/{rect['id']}/decision", headers=REVIEWER,
                   json={"approve": False, "reason": "no evidence of the birth date supplied"})
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        assert r.json()["decision_reason"] == "no evidence of the birth date supplied"
        assert c.post(f"/api/rectifications/{rect['id']}/decision", headers=REVIEWER,
                      json={"approve": True, "reason": "changed my mind"}).status_code == 409
        time.sleep(0.5)
        assert {t.get("PatientBirthDate", "") for t in instances_tags(orthanc)} == {""}
        events = [e["event"] for e in c.get("/api/audit/records", headers=DPO).json()]
        assert "rectification.rejected" in events and "rectification.applied" not in events
        # The patient is unlocked: a new request may be filed.
        again = c.post("/api/rectifications", headers=STAFF, json={
            "patient_id": "RECT-2", "changes": [{"attribute": "PatientSex", "current": "O", "proposed": "F"}]})
        assert again.status_code in (201, 409)
        assert again.status_code == 201 or "current value" in again.text


def test_bad_input_unknown_patient_404_invalid_vr_422_stale_current_409(orthanc, rights_db, tmp_path):
    for f in make_ct_study(1, patient_id="RECT-3", patient_name=OLD, series=1):
        orthanc.upload(f)
    with client_for(orthanc, rights_db, tmp_path) as c:
        def post(patient, attribute, current, proposed):
            return c.post("/api/rectifications", headers=STAFF, json={
                "patient_id": patient, "changes": [{"attribute": attribute, "current": current, "proposed": proposed}]})

        r = post("NO-SUCH-PATIENT", "PatientName", OLD, NEW)
        assert r.status_code == 404 and r.json()["error"] == "unknown-patient", r.text
        for attribute, value in [("PatientBirthDate", "19701345"), ("PatientBirthDate", "1970-01-01"),
                                 ("PatientName", "A" * 70), ("PatientSex", "X"), ("PatientID", "x" * 65)]:
            r = post("RECT-3", attribute, "", value)
            assert r.status_code == 422, (attribute, value, r.text)
            assert attribute in r.json()["detail"] and value not in r.text  # names the rule, never the value
        r = post("RECT-3", "StudyDescription", "", "x")
        assert r.status_code == 422 and "cannot be rectified" in r.json()["detail"]
        r = post("RECT-3", "PatientName", "Somebody^Else", NEW)
        assert r.status_code == 409 and "current value" in r.json()["detail"]
        assert c.get("/api/rectifications", headers=STAFF).json() == []
        assert {t["PatientName"] for t in instances_tags(orthanc)} == {OLD}


def test_two_requests_racing_on_one_patient_one_wins_the_other_409(orthanc, rights_db, tmp_path):
    for f in make_ct_study(1, patient_id="RECT-4", patient_name=OLD, series=1):
        orthanc.upload(f)
    with client_for(orthanc, rights_db, tmp_path) as c:
        barrier = threading.Barrier(4)
        answers = []

        def file(i):
            barrier.wait()
            answers.append(c.post("/api/rectifications", headers=STAFF, json={
                "patient_id": "RECT-4", "changes": [{"attribute": "PatientName", "current": OLD, "proposed": f"Name{i}^X"}]}))

        threads = [threading.Thread(target=file, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 409, 409, 409], [a.text for a in answers]
        assert all("for this patient" in a.json()["detail"] for a in answers if a.status_code == 409)
        assert len(c.get("/api/rectifications", headers=STAFF).json()) == 1


def test_orthanc_down_while_applying_job_retries_and_nothing_is_half_applied(orthanc, rights_db, tmp_path):
    for f in make_ct_study(4, patient_id="RECT-5", patient_name=OLD, series=2):
        orthanc.upload(f)
    with client_for(orthanc, rights_db, tmp_path) as c:
        rect = c.post("/api/rectifications", headers=STAFF, json={
            "patient_id": "RECT-5", "changes": [{"attribute": "PatientName", "current": OLD, "proposed": NEW},
                                                {"attribute": "PatientBirthDate", "current": "", "proposed": "19800229"}]}).json()
        orthanc.stop()
        r = c.post(f"/api/rectifications/{rect['id']}/decision", headers=REVIEWER,
                   json={"approve": True, "reason": "evidence checked"})
        assert r.status_code == 200, r.text
        state = wait_for(lambda: (x := c.get(f"/api/rectifications/{rect['id']}", headers=STAFF).json())["job"]
                         and x["job"]["attempts"] >= 2 and x, 30, message="two failed attempts")
        assert state["status"] == "applying" and state["job"]["status"] in ("retrying", "running")
        assert "unreachable" in (state["job"]["error"] or "")
        orthanc.start()
        done = wait_status(c, f"/api/rectifications/{rect['id']}", ("applied", "failed"))
        assert done["status"] == "applied", done
        tags = instances_tags(orthanc)
        assert len(tags) == 4 and {(t["PatientName"], t["PatientBirthDate"]) for t in tags} == {(NEW, "19800229")}
        assert_every_level_says(orthanc, {"PatientName": NEW, "PatientBirthDate": "19800229"}, {"PatientName": OLD})
        assert len(orthanc.get_json("/studies")) == 1 and len(orthanc.get_json("/patients")) == 1
        events = [e["event"] for e in c.get("/api/audit/records", headers=DPO).json()]
        assert events.count("rectification.retry") >= 2 and events.count("rectification.applied") == 1
