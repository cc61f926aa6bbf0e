"""Consent registry, restriction/objection flags, FHIR Consent export, and the plugin's consent gate
asking the running service (uvicorn on a free port) before routing, against a real Orthanc."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import uvicorn

from orthanc_server import free_port, make_ct_study, wait_for, write_rules
from portability.app import create_app
from test_rights_common import (DPO, PLUGIN_TOKEN, REVIEWER, STAFF, client_for, rights_db, rights_pg_url,  # noqa: F401
                                settings_for)


def test_consent_crud_withdrawal_expiry_standing_and_fhir_export(rights_db, tmp_path):
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.consent import Consent

    with client_for(None, rights_db, tmp_path) as c:
        soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
        research = c.post("/api/consents", headers=STAFF, json={
            "patient_id": "C-1", "purpose": "research", "evidence": "form 2024/88, scanned", "expires_at": "2999-01-01T00:00:00Z"})
        assert research.status_code == 201, research.text
        research = research.json()
        assert research["status"] == "active" and research["recorded_by"] == "alice"
        teaching = c.post("/api/consents", headers=STAFF, json={"patient_id": "C-1", "purpose": "teaching",
                                                                 "expires_at": soon}).json()
        assert c.post("/api/consents", json={"patient_id": "C-1", "purpose": "research"}).status_code == 401

        def standing(purpose, token=PLUGIN_TOKEN):
            return c.get("/api/consents/standing", params={"patient_id": "C-1", "issuer": "", "purpose": purpose},
                         headers={"Authorization": f"Bearer {token}"})

        assert standing("research").json() == {"consent": True, "restricted": False, "objected": False}
        assert standing("teaching").json()["consent"] is True
        assert standing("transfer-abroad").json()["consent"] is False
        assert standing("research", token="wrong").status_code == 401
        for blank in ({"patient_id": ""}, {"patient_id": "  "}, {}):  # data without a PatientID
            r = c.get("/api/consents/standing", params={"issuer": "", "purpose": "research", **blank},
                      headers={"Authorization": f"Bearer {PLUGIN_TOKEN}"})
            assert r.status_code == 400 and "PatientID (0010,0020)" in r.json()["detail"], (blank, r.text)
        time.sleep(2.2)  # the teaching consent expires
        assert standing("teaching").json()["consent"] is False
        assert c.get(f"/api/consents/{teaching['id']}", headers=STAFF).json()["status"] == "expired"
        bad = c.post("/api/consents", headers=STAFF, json={"patient_id": "C-1", "purpose": "Research!"})
        assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "body.purpose"
        assert "Research!" not in bad.text and "pattern" in bad.json()["detail"]  # the rule, not the value
        long_id = "C" * 70
        bad = c.post("/api/consents", headers=STAFF, json={"patient_id": long_id, "purpose": "research"})
        assert bad.status_code == 422 and long_id not in bad.text and "body.patient_id" in bad.json()["detail"]
        assert "at most 64 characters" in bad.json()["detail"]

        w = c.post(f"/api/consents/{research['id']}/withdraw", headers=STAFF, json={"reason": "patient phoned"})
        assert w.status_code == 200 and w.json()["status"] == "withdrawn" and w.json()["withdrawn_by"] == "alice"
        assert c.post(f"/api/consents/{research['id']}/withdraw", headers=STAFF, json={}).status_code == 409
        assert standing("research").json()["consent"] is False

        flag = c.post("/api/flags", headers=STAFF, json={"patient_id": "C-1", "kind": "restriction",
                                                         "reason": "accuracy contested (Art. 18(1)(a))"}).json()
        c.post("/api/flags", headers=STAFF, json={"patient_id": "C-1", "kind": "objection"})
        assert standing("research").json() == {"consent": False, "restricted": True, "objected": True}
        assert c.post(f"/api/flags/{flag['id']}/lift", headers=STAFF).status_code == 403  # reviewer or above
        assert c.post(f"/api/flags/{flag['id']}/lift", headers=REVIEWER).status_code == 200
        assert standing("research").json()["restricted"] is False

        one = c.get(f"/api/consents/{research['id']}/fhir", headers=STAFF).json()
        parsed = Consent.model_validate(one)
        assert parsed.status == "inactive" and parsed.provision.type == "permit"
        assert parsed.patient.identifier.value == "C-1"
        assert parsed.provision.purpose[0].code == "research"
        bundle = Bundle.model_validate(c.get("/api/fhir/Consent", params={"patient_id": "C-1"}, headers=STAFF).json())
        assert len(bundle.entry) == 2
        urls = [e.fullUrl for e in bundle.entry]  # valid urn:uuid: UUIDs, one per consent
        assert all(u.startswith("urn:uuid:") and str(uuid.UUID(u[9:])) == u[9:] for u in urls) and len(set(urls)) == 2

        # A patient token sees and withdraws its own consents only; refusals are audited.
        other = c.post("/api/consents", headers=STAFF, json={"patient_id": "C-2", "purpose": "research"}).json()
        token = c.post("/api/patient-tokens", headers=STAFF, json={"patient_id": "C-1"}).json()["token"]
        mine = c.get("/api/consents", headers={"X-Patient-Token": token}).json()
        assert {x["patient_id"] for x in mine} == {"C-1"}
        assert c.post(f"/api/consents/{other['id']}/withdraw", headers={"X-Patient-Token": token}, json={}).status_code == 403
        assert c.get("/api/consents", headers={"X-Patient-Token": "pt_forged"}).status_code == 401
        events = c.get("/api/audit/records", headers=DPO).json()
        kinds = [e["event"] for e in events]
        for k in ("consent.recorded", "consent.withdrawn", "restriction.recorded", "objection.recorded",
                  "restriction.lifted", "consent.standing", "access.refused"):
            assert k in kinds, k
        assert sum(1 for e in events if e["event"] == "access.refused") >= 4


class _Server:
    """The service under uvicorn in a thread, on a free port."""

    def __init__(self, app, port):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.server.started, 15, message="uvicorn start")
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)


def test_plugin_consent_gate_asks_the_service_refuses_then_delivers_after_consent_and_restriction_blocks(
        orthanc_factory, storescp, rights_db, tmp_path):
    port = free_port()
    token_file = tmp_path / "service.token"
    token_file.write_text(PLUGIN_TOKEN)
    dest = {"type": "modality", "name": "scp"}
    never = {"Modality": ["NO-SUCH-MODALITY"]}
    rules = write_rules(tmp_path / "rules.json",
                        {"name": "research-consent", "match": never, "destination": dest, "profile": "research",
                         "purpose": "research", "lawful_basis": "consent"},
                        {"name": "care", "match": never, "destination": dest, "profile": "basic",
                         "purpose": "care", "lawful_basis": "care"})
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()},
                              gdpr={"RoutingRules": str(rules), "ConsentServiceUrl": f"http://127.0.0.1:{port}",
                                    "ConsentServiceTokenFile": str(token_file)})
    s1 = orthanc.get_json(f"/instances/{orthanc.upload(make_ct_study(2, patient_id='GATE-1', series=1)[0])}/study")["ID"]
    app = create_app(settings_for(orthanc, rights_db, tmp_path))

    def route(study, rule_name):
        job = orthanc.post_json("/gdpr/route", {"level": "study", "id": study, "rule": rule_name})
        return wait_for(lambda: (j := orthanc.get_json(f"/gdpr/jobs/{job['id']}"))["status"] in ("done", "refused", "failed") and j,
                        30, message="route job")

    with _Server(app, port):
        import requests

        base = f"http://127.0.0.1:{port}"
        refused = route(s1, "research-consent")
        assert refused["status"] == "refused" and "no recorded consent" in refused["reason"], refused
        assert storescp.received_files() == []
        r = requests.post(f"{base}/api/consents", auth=("alice", "alice-pw"),
                          json={"patient_id": "GATE-1", "purpose": "research", "evidence": "signed form"})
        assert r.status_code == 201, r.text
        assert orthanc.post(f"/gdpr/jobs/{refused['id']}/retry").status_code == 200
        delivered = wait_for(lambda: (j := orthanc.get_json(f"/gdpr/jobs/{refused['id']}"))["status"] in ("done", "failed", "refused") and j, 30)
        assert delivered["status"] == "done" and delivered["sent"] == 1, delivered
        storescp.wait_for_files(1)

        # Restriction: research refused even with consent; care still flows.
        requests.post(f"{base}/api/flags", auth=("alice", "alice-pw"), json={"patient_id": "GATE-1", "kind": "restriction"})
        blocked = route(s1, "research-consent")
        assert blocked["status"] == "refused" and "restricted" in blocked["reason"], blocked
        care = route(s1, "care")
        assert care["status"] == "done", care
        records = requests.get(f"{base}/api/audit/records", auth=("dora", "dora-pw"),
                               params={"event": "consent.standing"}).json()
        assert len(records) >= 3 and all(r["actor"].startswith("token:") for r in records)
