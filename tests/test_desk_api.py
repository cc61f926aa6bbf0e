"""The desk's JSON side, on SQLite and PostgreSQL: consent forms and consents signed on screen
(FHIR R5, hash in the audit chain, withdrawal seen by the gate's standing query at once), one record
per form token, and every open request of every right with its Art. 12(3) deadline."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from orthanc_server import make_ct_study
from portability.models import ConsentSigning, months_after
from test_rights_common import DPO, PLUGIN_TOKEN, REVIEWER, STAFF, client_for, rights_db, rights_pg_url  # noqa: F401

FORM = {"slug": "research-imaging", "language": "en", "title": "Research use of your images",
        "text": "I agree that my de-identified images may be used for research at St. Example.",
        "purpose": "research", "lawful_basis": "consent"}


def strokes(n: int = 3) -> dict:
    """A synthetic signature: ``n`` wavy strokes across the pad, 8 ms apart per point."""
    return {"width": 600, "height": 200, "started_at": "2026-12-01T09:00:00.000Z",
            "strokes": [{"pointer": "pen", "points": [[40 + 20 * i, 60 + 30 * k + (i % 2) * 15, 8 * i, 0.5]
                                                        for i in range(20)]} for k in range(n)]}


def standing(c, patient="SIG-1", purpose="research"):
    return c.get("/api/consents/standing", params={"patient_id": patient, "purpose": purpose},
                 headers={"Authorization": f"Bearer {PLUGIN_TOKEN}"}).json()


def test_forms_are_versioned_signing_is_fhir_hashed_audited_and_withdrawal_acts_at_once(rights_db, tmp_path):
    from fhir.resources.bundle import Bundle
    from fhir.resources.consent import Consent

    with client_for(None, rights_db, tmp_path) as c:
        assert c.post("/api/consent-forms", headers=STAFF, json=FORM).status_code == 403  # the DPO publishes
        bad = c.post("/api/consent-forms", headers=DPO, json={**FORM, "lawful_basis": "because"})
        assert bad.status_code == 422 and "lawful_basis" in bad.text
        v1 = c.post("/api/consent-forms", headers=DPO, json=FORM).json()
        v2 = c.post("/api/consent-forms", headers=DPO, json={**FORM, "text": FORM["text"] + " Version two."}).json()
        assert (v1["version"], v2["version"]) == (1, 2) and v1["sha256"] != v2["sha256"]
        assert [f["id"] for f in c.get("/api/consent-forms", headers=STAFF).json()] == [v2["id"]]
        assert len(c.get("/api/consent-forms", params={"every_version": True}, headers=STAFF).json()) == 2
        assert c.get(f"/api/consent-forms/{v1['id']}", headers=STAFF).json()["text"] == FORM["text"]

        token = {"Idempotency-Key": "tok-" + "a" * 20}
        first = c.post("/api/consent-signings", headers={**STAFF, **token},
                       json={"form_id": v2["id"], "patient_id": "SIG-1"}).json()
        again = c.post("/api/consent-signings", headers={**STAFF, **token},
                       json={"form_id": v2["id"], "patient_id": "SIG-1"}).json()
        assert first["id"] == again["id"] and len(c.get("/api/consent-signings", headers=STAFF).json()) == 1
        assert standing(c)["consent"] is False

        for empty in ({**strokes(), "strokes": []}, {**strokes(), "strokes": [{"points": [[10, 10, 0]]}]}):
            r = c.post(f"/api/consent-signings/{first['id']}/sign", headers=STAFF, json={"signature": empty})
            assert r.status_code == 422 and "empty" in r.json()["detail"]
        r = c.post(f"/api/consent-signings/{first['id']}/sign", headers=STAFF,
                   json={"signature": {**strokes(), "width": "wide"}})
        assert r.status_code == 422 and "width" in r.json()["detail"]
        assert c.get(f"/api/consent-signings/{first['id']}", headers=STAFF).json()["status"] == "pending"
        assert standing(c)["consent"] is False  # nothing half-saved

        signed = c.post(f"/api/consent-signings/{first['id']}/sign", headers=STAFF, json={"signature": strokes()})
        assert signed.status_code == 200, signed.text
        signed = signed.json()
        assert signed["status"] == "signed" and signed["consent_id"] and len(signed["sha256"]) == 64
        assert standing(c)["consent"] is True  # the plugin's gate sees it at once
        assert c.post(f"/api/consent-signings/{first['id']}/sign", headers=STAFF,
                      json={"signature": strokes()}).status_code == 409

        doc = c.get(f"/api/consent-signings/{first['id']}/fhir", headers=STAFF).json()
        parsed = Consent.model_validate(doc)
        assert parsed.decision == "permit" and parsed.status == "active"
        assert parsed.policyText[0].reference == f"#consent-form-{v2['id']}"
        assert [a.contentType for a in parsed.sourceAttachment] == ["image/svg+xml", "application/json"]
        assert json.loads(parsed.sourceAttachment[1].data)["strokes"][0]["points"][1][2] == 8
        assert c.get(f"/api/consent-signings/{first['id']}/verify", headers=STAFF).json()["intact"] is True
        records = [e for e in c.get("/api/audit/records", headers=DPO).json() if e["event"] == "consent.signed"]
        assert records[0]["sha256"] == signed["sha256"]

        w = c.post(f"/api/consents/{signed['consent_id']}/withdraw", headers=STAFF, json={"reason": "phoned"})
        assert w.status_code == 200
        assert standing(c)["consent"] is False
        bundle = Bundle.model_validate(c.get("/api/fhir/R5/Consent", params={"patient_id": "SIG-1"},
                                             headers=STAFF).json())
        assert bundle.total == 1 and bundle.entry[0].resource.status == "inactive"

        declined = c.post("/api/consent-signings", headers=STAFF, json={"form_id": v1["id"], "patient_id": "SIG-2"}).json()
        d = c.post(f"/api/consent-signings/{declined['id']}/decline", headers=STAFF).json()
        assert d["status"] == "declined" and d["consent_id"] is None
        assert Consent.model_validate(c.get(f"/api/consent-signings/{declined['id']}/fhir", headers=STAFF).json()).decision == "deny"
        assert standing(c, "SIG-2")["consent"] is False

        db = c.app.state.db
        with db.session() as s:  # a later change to the signature is detected
            row = s.get(ConsentSigning, first["id"])
            row.fhir = row.fhir.replace('"decision":"permit"', '"decision":"deny"')
        assert c.get(f"/api/consent-signings/{first['id']}/verify", headers=STAFF).json()["intact"] is False


def test_every_open_request_of_every_right_with_due_date_extension_assignee_and_filters(orthanc, rights_db, tmp_path):
    orthanc.upload(make_ct_study(1, patient_id="DESK-1")[0])
    with client_for(orthanc, rights_db, tmp_path) as c:
        old = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat()
        late = c.post("/requests", headers=STAFF, json={"patient_id": "DESK-1", "received_at": old}).json()
        fresh = c.post("/requests", headers=STAFF, json={"patient_id": "DESK-1", "kind": "access"}).json()
        erasure = c.post("/api/erasures", headers=STAFF, json={"patient_id": "DESK-1"}).json()
        flag = c.post("/api/flags", headers=STAFF, json={"patient_id": "DESK-2", "kind": "objection",
                                                         "reason": "Art. 21(1)"}).json()
        form = c.post("/api/consent-forms", headers=DPO, json=FORM).json()
        signing = c.post("/api/consent-signings", headers=STAFF, json={"form_id": form["id"], "patient_id": "DESK-3"}).json()

        cases = c.get("/api/desk/cases", headers=STAFF).json()
        assert {(x["case_kind"], x["ref_id"]) for x in cases} == {
            ("request", late["id"]), ("request", fresh["id"]), ("erasure", erasure["id"]),
            ("flag", flag["id"]), ("signing", signing["id"])}
        assert cases[0]["ref_id"] == late["id"] and cases[0]["overdue"] is True  # soonest due first
        assert {x["right"] for x in cases} == {"portability", "access", "erasure", "objection", "consent"}
        assert [x["ref_id"] for x in c.get("/api/desk/cases", params={"overdue": True}, headers=STAFF).json()] == [late["id"]]
        assert [x["case_kind"] for x in c.get("/api/desk/cases", params={"right": "erasure"}, headers=STAFF).json()] == ["erasure"]
        assert c.get("/api/desk/cases", params={"right": "gossip"}, headers=STAFF).status_code == 422

        r = c.post(f"/api/desk/cases/erasure/{erasure['id']}/assignee", headers=STAFF, json={"assignee": "rita"})
        assert r.json()["assignee"] == "rita"
        assert [x["case_kind"] for x in c.get("/api/desk/cases", params={"assignee": "rita"}, headers=STAFF).json()] == ["erasure"]

        ext = {"reason": "many studies across three archives", "channel": "letter", "evidence": "letter 2026/118"}
        assert c.post(f"/api/desk/cases/request/{fresh['id']}/extension", headers=STAFF, json=ext).status_code == 403
        r = c.post(f"/api/desk/cases/request/{fresh['id']}/extension", headers=REVIEWER, json=ext)
        assert r.status_code == 200, r.text
        received = datetime.fromisoformat(fresh["received_at"])
        assert datetime.fromisoformat(r.json()["due_at"]) == months_after(received, 3) and r.json()["extended"]
        assert c.post(f"/api/desk/cases/request/{fresh['id']}/extension", headers=REVIEWER, json=ext).status_code == 409
        too_late = c.post(f"/api/desk/cases/request/{late['id']}/extension", headers=REVIEWER, json=ext)
        assert too_late.status_code == 409 and "first month" in too_late.json()["detail"]
        assert c.post(f"/api/desk/cases/request/{fresh['id']}/extension", headers=REVIEWER,
                      json={**ext, "channel": "pigeon"}).status_code == 422
        events = [e["event"] for e in c.get("/api/audit/records", headers=DPO).json()]
        assert "case.extended" in events and "case.assigned" in events
