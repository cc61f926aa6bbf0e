"""Release gate, end to end against a real Orthanc (plugin), the service and DCMTK storescp:
a rule with "review": "required" sends nothing until a reviewer approves in the browser, then
exactly what was reviewed; a rejection cancels the job with its reason; a study changed after
approval voids the release; an unreviewed job expires; the evidence document is self-contained."""
from __future__ import annotations

import base64
import io
import time

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from browser import LiveService, free_port
from orthanc_server import make_ct_study, wait_for, write_rules
from portability.app import create_app
from portability.settings import Settings

TOKEN = "plugin-release-token-1"
USERS = {"rita": ("rita-pw-1", "reviewer")}
RITA = {"Authorization": "Basic " + base64.b64encode(b"rita:rita-pw-1").decode()}


def rule(name: str, modality: str) -> dict:
    return {"name": name, "match": {"Modality": [modality]}, "destination": {"type": "modality", "name": "scp"},
            "profile": "research", "purpose": "research", "lawful_basis": "research", "review": "required"}


def jobs(orthanc, rule_name: str) -> list[dict]:
    return [j for j in orthanc.get_json("/gdpr/jobs") if j["rule"] == rule_name]


def upload_study(orthanc, count: int, modality: str, patient_id: str) -> tuple[str, list[bytes]]:
    files = make_ct_study(count, patient_id=patient_id, series=1, modality=modality)
    for data in files:
        orthanc.upload(data)
    study = orthanc.post_json("/tools/find", {"Level": "Study", "Query": {"PatientID": patient_id}})
    return study[0], files


@pytest.fixture
def gated(orthanc_factory, storescp, tmp_path):
    port = free_port()
    token_file = tmp_path / "service.token"
    token_file.write_text(TOKEN)
    rules = write_rules(tmp_path / "rules.json", rule("research-review", "CT"), rule("by-hand-review", "XX"))
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()}, stable_age=1, gdpr={
        "RoutingRules": str(rules), "ReleaseServiceUrl": f"http://127.0.0.1:{port}",
        "ReleaseServiceTokenFile": str(token_file), "ReviewPollSeconds": 1})
    settings = Settings(data_dir=tmp_path / "service", orthanc_url=orthanc.url, orthanc_username=orthanc.username,
                        orthanc_password=orthanc.password, staff_users=dict(USERS), staff_tokens={TOKEN: "staff"},
                        worker=False, plugin_key_file=orthanc.key_file)
    app = create_app(settings)
    with LiveService(app, port) as url:
        yield orthanc, app, url


def decide_in_browser(browser, study: str, decision: str, rationale: str) -> None:
    browser.visit(f"/ui/studies/{study}/review?profile=research", f"review-{decision}")
    browser.driver.find_element("css selector", "select#rule option[value='research-review']").click()
    browser.choose("decision" if decision == "approve" else "decision-2")
    browser.fill("rationale", rationale)
    browser.press("Record decision")
    browser.check(f"release-{decision}")


def test_approval_in_the_browser_releases_exactly_the_reviewed_study_and_rejection_cancels(gated, storescp, browser):
    orthanc, app, url = gated
    approved, _ = upload_study(orthanc, 3, "CT", "GATE-APPROVE-1")
    rejected, _ = upload_study(orthanc, 2, "CT", "GATE-REJECT-2")
    wait_for(lambda: len([j for j in jobs(orthanc, "research-review") if j["status"] == "awaiting-review"]) == 2,
             timeout=60, message="two jobs awaiting review")
    time.sleep(2.5)  # several polls: still nothing sent
    assert storescp.received_files() == []

    browser.base = url
    browser.sign_in("rita", "rita-pw-1")
    browser.visit("/ui/releases", "waiting-for-review")
    links = browser.driver.find_elements("partial link text", "Review job")
    assert len(links) == 2 and all("profile=research" in a.get_attribute("href") for a in links)
    # A missing rationale is refused with an error summary linking to the field.
    browser.visit(f"/ui/studies/{approved}/review?profile=research", "review-before-decision")
    browser.choose("decision")
    browser.press("Record decision")
    browser.check("decision-errors")
    assert "Explain the decision" in browser.text()
    decide_in_browser(browser, approved, "approve", "Research cohort XYZ; shifted dates and device data accepted.")
    assert "Approved by rita" in browser.text()

    received = storescp.wait_for_files(3, timeout=60)
    assert len(received) == 3
    for path in received:
        ds = pydicom.dcmread(path)
        assert ds.PatientID != "GATE-APPROVE-1" and ds.PatientIdentityRemoved == "YES"
    done = wait_for(lambda: [j for j in jobs(orthanc, "research-review")
                             if j["resource"] == approved and j["status"] == "done"], timeout=60, message="job done")
    assert done[0]["sent"] == 3

    decide_in_browser(browser, rejected, "reject", "Burned-in text risk not acceptable for this recipient.")
    cancelled = wait_for(lambda: [j for j in jobs(orthanc, "research-review")
                                  if j["resource"] == rejected and j["status"] == "cancelled"], timeout=60,
                         message="cancelled")
    assert "Burned-in text risk" in cancelled[0]["reason"]
    time.sleep(1.5)
    assert len(storescp.received_files()) == 3

    events = [r["event"] for r in orthanc.audit_records]
    assert "route.awaiting-review" in events and "route.done" in events and "route.cancelled" in events
    with TestClient(app) as c:
        release = c.get("/api/releases", headers=RITA).json()
        evidence = c.get(f"/api/releases/{release[-1]['id']}/evidence", headers=RITA)
        assert evidence.status_code == 200 and "<script" not in evidence.text
        assert evidence.headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
        assert release[-1]["manifest_sha256"] and "key" not in evidence.text.lower().replace("key fingerprint", "")


def test_a_study_changed_after_approval_voids_the_release(gated, storescp):
    orthanc, app, url = gated
    study, files = upload_study(orthanc, 2, "MR", "GATE-VOID-3")
    with TestClient(app) as c:
        r = c.post("/api/releases", headers=RITA, json={
            "study": study, "profile": "research", "rule": "by-hand-review", "decision": "approve",
            "rationale": "Approved for the MR cohort.", "classification": "pseudonymised"})
        assert r.status_code == 201, r.text
        assert r.json()["instances"] == 2
        extra = pydicom.dcmread(io.BytesIO(files[0]))
        extra.SOPInstanceUID = generate_uid()
        extra.file_meta.MediaStorageSOPInstanceUID = extra.SOPInstanceUID
        buf = io.BytesIO()
        extra.save_as(buf, enforce_file_format=True)
        orthanc.upload(buf.getvalue())  # the stored study changes after the review
        orthanc.post_json("/gdpr/route", {"level": "study", "id": study, "rule": "by-hand-review"})
        waiting = wait_for(lambda: [j for j in jobs(orthanc, "by-hand-review")
                                    if "void" in j.get("awaiting", "")], timeout=60, message="release void")
        assert waiting[0]["status"] == "awaiting-review"
        assert c.get(f"/api/releases/{r.json()['id']}", headers=RITA).json()["status"] == "void"
    assert storescp.received_files() == []


def test_unreviewed_jobs_expire_and_an_unreachable_service_never_means_send(orthanc_factory, storescp, tmp_path):
    rules = write_rules(tmp_path / "rules.json", rule("research-review", "CT"))
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()}, stable_age=1, gdpr={
        "RoutingRules": str(rules), "ReleaseServiceUrl": f"http://127.0.0.1:{free_port()}",
        "ReviewPollSeconds": 1, "ReviewExpiryDays": 0.00005})  # about 4 s
    upload_study(orthanc, 2, "CT", "GATE-EXPIRE-4")
    expired = wait_for(lambda: [j for j in jobs(orthanc, "research-review") if j["status"] == "expired"],
                       timeout=40, message="expired")
    assert "not released within" in expired[0]["error"]
    assert "route.expired" in [r["event"] for r in orthanc.audit_records]
    assert storescp.received_files() == []
