"""Erasure (Art. 17): granted (removed from Orthanc, pseudonym listed, earlier recipients told) or
refused with a retention ground, against a real Orthanc with the plugin and DCMTK storescp."""
from __future__ import annotations

import pydicom

from orthanc_server import make_ct_study, wait_for, write_rules
from test_rights_common import DPO, REVIEWER, STAFF, client_for, rights_db, rights_pg_url, wait_status  # noqa: F401

KOS = "1.2.840.10008.5.1.4.1.1.88.59"


def test_granted_erasure_removes_the_patient_lists_the_pseudonym_and_notifies_recipients(
        orthanc_factory, storescp, rights_db, tmp_path):
    rules = write_rules(tmp_path / "rules.json", {
        "name": "research-scp", "match": {"Modality": ["NO-SUCH-MODALITY"]},
        "destination": {"type": "modality", "name": "scp"}, "profile": "research", "purpose": "research",
        "lawful_basis": "research"})
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()}, gdpr={"RoutingRules": str(rules)})
    ids = [orthanc.upload(f) for f in make_ct_study(3, patient_id="ER-1", series=1)]
    keep = orthanc.upload(make_ct_study(1, patient_id="ER-OTHER", series=1)[0])
    study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    job = orthanc.post_json("/gdpr/route", {"level": "study", "id": study, "rule": "research-scp"})
    wait_for(lambda: orthanc.get_json(f"/gdpr/jobs/{job['id']}")["status"] == "done", 30)
    storescp.wait_for_files(3)
    assert orthanc.get(f"/gdpr/studies/{study}/archive").status_code == 200  # a de-identified download by a user

    with client_for(orthanc, rights_db, tmp_path) as c:
        e = c.post("/api/erasures", headers=STAFF, json={"patient_id": "ER-1", "grounds": "Art. 17(1)(b): consent withdrawn"})
        assert e.status_code == 201, e.text
        e = e.json()
        assert c.post("/api/erasures", headers=STAFF, json={"patient_id": "ER-1"}).status_code == 409  # one at a time
        assert c.post(f"/api/erasures/{e['id']}/decision", headers=REVIEWER,
                      json={"grant": True, "reason": "no retention duty"}).status_code == 403  # DPO decides
        r = c.post(f"/api/erasures/{e['id']}/decision", headers=DPO, json={"grant": True, "reason": "no retention duty left"})
        assert r.status_code == 200 and r.json()["status"] == "erasing", r.text
        done = wait_status(c, f"/api/erasures/{e['id']}", ("erased", "failed"))
        assert done["status"] == "erased", done
        assert [p["MainDicomTags"]["PatientID"] for p in
                (orthanc.get_json(f"/patients/{x}") for x in orthanc.get_json("/patients"))] == ["ER-OTHER"]
        assert orthanc.get_json("/instances") == [keep]
        assert len(done["result"]["pseudonyms_listed"]) == 2  # one per profile the data left under (route: research, download: basic)
        notices = {(n["recipient"], n["action"], n["state"])
                   for n in c.get("/api/notices", params={"right": "erasure"}, headers=STAFF).json()}
        assert ("modality:scp", "rejection-note-113039", "sent") in notices
        assert ("user:gdpr-test", "notice", "to-send") in notices
        files = storescp.wait_for_files(4)
        kos = [pydicom.dcmread(p) for p in files if pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID == KOS]
        assert len(kos) == 1 and kos[0].ConceptNameCodeSequence[0].CodeValue == "113039"
        events = [x["event"] for x in c.get("/api/audit/records", headers=DPO).json()]
        assert "erasure.granted" in events and "erasure.done" in events
        # The patient is gone: a new request is refused as unknown.
        assert c.post("/api/erasures", headers=STAFF, json={"patient_id": "ER-1"}).status_code == 404


def test_refused_erasure_names_its_retention_ground_and_keeps_the_data(orthanc, rights_db, tmp_path):
    for f in make_ct_study(2, patient_id="ER-2", series=1):
        orthanc.upload(f)
    with client_for(orthanc, rights_db, tmp_path) as c:
        e = c.post("/api/erasures", headers=STAFF, json={"patient_id": "ER-2"}).json()
        r = c.post(f"/api/erasures/{e['id']}/decision", headers=DPO, json={"grant": False, "reason": "must keep"})
        assert r.status_code == 422 and "retention ground" in r.json()["detail"]
        r = c.post(f"/api/erasures/{e['id']}/decision", headers=DPO, json={
            "grant": False, "reason": "imaging is part of the medical record (30 years)",
            "retention_ground": "medical-record-retention", "retain_until": "2054-01-01T00:00:00Z"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "refused" and r.json()["retention_ground"] == "medical-record-retention"
        assert len(orthanc.get_json("/instances")) == 2
        refused = c.get("/api/audit/records", params={"event": "erasure.refused"}, headers=DPO).json()
        assert refused[0]["retention_ground"] == "medical-record-retention" and "17(3)" in refused[0]["legal_basis"]
        # Decided: no second decision; the patient is unlocked for a later request.
        assert c.post(f"/api/erasures/{e['id']}/decision", headers=DPO,
                      json={"grant": True, "reason": "second thoughts"}).status_code == 409
        assert c.post("/api/erasures", headers=STAFF, json={"patient_id": "ER-2"}).status_code == 201
