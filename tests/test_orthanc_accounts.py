"""One identity for Orthanc and the service, under `orthanc-gdpr serve` (real Orthanc, real service),
on SQLite and on PostgreSQL: staff accounts log into Orthanc's REST API and Explorer; Orthanc's own
routes that hand out identified data are audited with person, role and purpose; a restricted
patient's data leaves only for care and only for a clinician; the plugin fails closed when the
account service does not answer.
"""
from __future__ import annotations

import io
import os
import signal
import time
import zipfile

import pytest
import requests

from orthanc_server import make_ct_study
from pg import throwaway_database
from test_serve import ServeProcess

pytestmark = pytest.mark.integration

ALICE = ("alice", "Front-desk-lantern-31")  # staff
CARL = ("carl", "Ward-round-harbour-58")  # clinician


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path):
    """`serve` with alice (staff) and carl (clinician) added by the first dpo through /api/users."""
    env = {}
    if request.param == "postgresql":
        database = throwaway_database("accounts_serve")
        env["ORTHANC_GDPR_SERVICE_DATABASE_URL"] = database.__enter__()
    server = ServeProcess(tmp_path / "data", env=env)
    try:
        server.start()
        server.wait_service()
        for name, password, role in ((*ALICE, "staff"), (*CARL, "clinician")):
            r = requests.post(server.service_url + "/api/users", json={"name": name, "role": role, "password": password},
                              auth=server.dpo_auth, timeout=30)
            assert r.status_code == 201, r.text
        yield server
    finally:
        server.stop()
        if request.param == "postgresql":
            database.__exit__(None, None, None)


def service_records(site, event: str) -> list[dict]:
    r = requests.get(site.service_url + "/api/audit/records", params={"event": event}, auth=site.dpo_auth, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def upload(site, patient_id: str) -> str:
    ids = [requests.post(site.url + "/instances", data=d, auth=site.dpo_auth, timeout=30).json()["ID"]
           for d in make_ct_study(2, patient_id=patient_id, series=1)]
    return requests.get(f"{site.url}/instances/{ids[0]}/study", auth=site.dpo_auth, timeout=10).json()["ID"]


def test_staff_accounts_log_into_orthanc_rest_and_explorer(site):
    assert requests.get(site.url + "/system", auth=ALICE, timeout=10).status_code == 200
    page = requests.get(site.url + "/app/explorer.html", auth=ALICE, timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert requests.get(site.service_url + "/requests", auth=ALICE, timeout=10).status_code == 200  # same account

    # a browser without a login is asked for one at /gdpr-login, then sent on to Explorer
    challenge = requests.get(site.url + "/gdpr-login", timeout=10)
    assert challenge.status_code == 401 and challenge.headers["WWW-Authenticate"].startswith("Basic ")
    login = requests.get(site.url + "/gdpr-login", auth=CARL, timeout=10, allow_redirects=False)
    assert login.status_code == 303 and login.headers["Location"].endswith("/app/explorer.html")
    assert login.headers["Cache-Control"] == "no-store"  # never a cached (301) skip of the login dialog
    assert requests.get(site.url + "/app/explorer.html", timeout=10).status_code == 403  # no login, no page

    # wrong password, unknown user: refused, and the service audits the attempt for Orthanc
    assert requests.get(site.url + "/system", auth=(ALICE[0], "not-her-password"), timeout=10).status_code == 403
    assert requests.get(site.url + "/system", auth=("mallory", "guess-123456"), timeout=10).status_code == 403
    failed = [r for r in service_records(site, "login.failed") if r.get("channel") == "orthanc"]
    assert {r["actor"] for r in failed} == {"alice", "mallory"} and all(r["client"] == "127.0.0.1" for r in failed)

    # a disabled account is refused (it was never used on Orthanc, so nothing is cached for it)
    requests.post(site.service_url + "/api/users", json={"name": "bob", "role": "staff", "password": "Quiet-" + ALICE[1]},
                  auth=site.dpo_auth, timeout=30)
    requests.post(site.service_url + "/api/users/bob/disable", auth=site.dpo_auth, timeout=30)
    assert requests.get(site.url + "/system", auth=("bob", "Quiet-" + ALICE[1]), timeout=10).status_code == 403
    assert any(r["actor"] == "bob" and r["reason"] == "account disabled" for r in service_records(site, "login.failed"))

    # five wrong passwords through Orthanc lock the account: the right one is refused too
    requests.post(site.service_url + "/api/users", json={"name": "dave", "role": "staff", "password": "Blue-" + ALICE[1]},
                  auth=site.dpo_auth, timeout=30)
    for _ in range(5):
        assert requests.get(site.url + "/system", auth=("dave", "wrong-password"), timeout=10).status_code == 403
    assert requests.get(site.url + "/system", auth=("dave", "Blue-" + ALICE[1]), timeout=10).status_code == 403
    assert any(r["actor"] == "dave" and r.get("channel") == "orthanc" for r in service_records(site, "login.throttled"))


def test_restricted_patient_leaves_orthanc_only_for_care_by_a_clinician(site):
    restricted, other = upload(site, "RESTRICT-ACC-1"), upload(site, "FREE-ACC-2")
    r = requests.post(site.service_url + "/api/flags", auth=ALICE, timeout=30,
                      json={"patient_id": "RESTRICT-ACC-1", "kind": "restriction", "reason": "contested accuracy"})
    assert r.status_code == 201, r.text

    def get(who, path, **params):
        return requests.get(site.url + path, auth=who, params=params, timeout=60)

    # clinician carl, for care: the identified archive and the de-identified download
    care = get(CARL, f"/studies/{restricted}/archive", purpose="care")
    assert care.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(care.content)).namelist()) == 2
    assert get(CARL, f"/gdpr/studies/{restricted}/archive", purpose="care").status_code == 200
    # front-desk alice: refused even for care; carl without the purpose care: refused
    assert get(ALICE, f"/studies/{restricted}/archive", purpose="care").status_code == 403
    assert get(ALICE, f"/studies/{restricted}/media", purpose="care").status_code == 403
    instance = requests.get(f"{site.url}/studies/{restricted}/instances", auth=CARL, timeout=10).json()[0]["ID"]
    assert get(ALICE, f"/instances/{instance}/file", purpose="care").status_code == 403
    assert get(ALICE, f"/gdpr/studies/{restricted}/archive", purpose="care").status_code == 403
    assert get(CARL, f"/studies/{restricted}/archive").status_code == 403
    # a body route (several resources at once) is gated the same way
    r = requests.post(site.url + "/tools/create-archive", auth=ALICE, timeout=60,
                      json={"Resources": [restricted], "Purpose": "care"})
    assert r.status_code == 403 and "clinician" in r.json()["error"]
    r = requests.post(site.url + "/tools/create-archive", auth=CARL, timeout=60, headers={"X-Purpose": "care"},
                      json={"Resources": [restricted]})
    assert r.status_code == 200 and r.content[:2] == b"PK"
    # a patient without a restriction: anyone with an account, audited
    assert get(ALICE, f"/studies/{other}/archive").status_code == 200

    records = site.audit_records()
    sent = [(r["user"], r["role"], r["route"], r["purpose"]) for r in records if r["event"] == "export"]
    assert ("carl", "clinician", "studies/archive", "care") in sent
    assert ("carl", "clinician", "tools/create-archive", "care") in sent
    assert ("alice", "staff", "studies/archive", "unspecified") in sent
    refused = [(r["user"], r["role"], r["route"]) for r in records if r["event"] == "export.refused"]
    assert {("alice", "staff", "studies/archive"), ("alice", "staff", "studies/media"),
            ("alice", "staff", "instances/file"), ("carl", "clinician", "studies/archive"),
            ("alice", "staff", "tools/create-archive")} <= set(refused)
    assert all("Art. 18" in r["reason"] for r in records if r["event"] == "export.refused")
    downloads = [(r["event"], r["user"], r["role"]) for r in records if r["event"].startswith("download")]
    assert ("download", "carl", "clinician") in downloads and ("download.refused", "alice", "staff") in downloads
    # the service's own records of these people name the role they acted in
    flag = service_records(site, "restriction.recorded")[0]
    assert flag["actor"] == "alice" and flag["actor_role"] == "staff"


def test_orthanc_refuses_new_logins_while_the_account_service_does_not_answer(site):
    requests.post(site.service_url + "/api/users", json={"name": "erin", "role": "staff", "password": "Green-" + CARL[1]},
                  auth=site.dpo_auth, timeout=30)
    pid = site.service_pid()
    os.kill(pid, signal.SIGSTOP)  # alive but silent: the plugin's check times out
    try:
        start = time.monotonic()
        assert requests.get(site.url + "/system", auth=("erin", "Green-" + CARL[1]), timeout=30).status_code == 403
        assert time.monotonic() - start < 15
    finally:
        os.kill(pid, signal.SIGCONT)
    assert requests.get(site.url + "/system", auth=("erin", "Green-" + CARL[1]), timeout=30).status_code == 200
    log = (site.data_dir / "orthanc.log").read_text(errors="replace")
    assert "the account service does not answer" in log


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_orthanc_explorer_works_in_a_browser_with_a_staff_account(site, browser):
    """Headless Chromium opens /gdpr-login and Orthanc Explorer with carl's account, as a browser
    does once the person has typed the login into its dialog (then it sends it with every
    request; headless Chromium has no dialog, so the header is set through DevTools). Every one of
    Explorer's requests is checked against the account store (screenshots in tests/artifacts/)."""
    import base64

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upload(site, "EXPLORER-ACC-1")
    browser.driver.get(site.url + "/app/explorer.html")
    assert "403" in browser.driver.find_element(By.TAG_NAME, "body").text  # no login, no Explorer
    login = base64.b64encode(f"{CARL[0]}:{CARL[1]}".encode()).decode()
    browser.driver.execute_cdp_cmd("Network.enable", {})
    browser.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {login}"}})
    browser.driver.get(site.url + "/gdpr-login")
    WebDriverWait(browser.driver, 30).until(lambda d: d.current_url.endswith("/app/explorer.html"))
    WebDriverWait(browser.driver, 60).until(lambda d: "Do lookup" in d.find_element(By.TAG_NAME, "body").text)
    browser.check("orthanc-explorer-lookup-as-carl", allow_problems=True)  # Orthanc's own page: checked not blank
    browser.driver.find_element(By.LINK_TEXT, "All patients").click()
    WebDriverWait(browser.driver, 60).until(
        lambda d: "EXPLORER-ACC-1" in d.find_element(By.TAG_NAME, "body").text)  # the patient list came in
    browser.check("orthanc-explorer-patients-as-carl", allow_problems=True)
    records = site.audit_records()
    assert not [r for r in records if r["event"] == "export.refused"]


def test_identified_egress_routes_are_recognised_and_their_purpose_read():
    """Which Orthanc requests let identified data out (no Orthanc needed: pure functions)."""
    from orthanc_gdpr.egress import classify, purpose_of, purpose_of_post, resources_of_body

    assert classify("/studies/s1/archive", "GET", {}).resources == (("studies", "s1"),)
    assert classify("/patients/p1/media", "GET", {}).route == "patients/media"
    assert classify("/instances/i1/file", "GET", {}).route == "instances/file"
    assert classify("/instances/i1/attachments/dicom/data", "GET", {}).route == "instances/attachments"
    assert classify("/instances/i1/export", "POST", {}).route == "instances/export"
    assert classify("/dicom-web/studies/1.2.3/series/1.2.4/metadata", "GET", {}).uids == ("1.2.3", "1.2.4")
    assert classify("/wado", "GET", {"studyUID": "1.2", "objectUID": "1.2.5"}).uids == ("1.2", "1.2.5")
    for uri, method in (("/studies/s1", "GET"), ("/patients", "GET"), ("/studies/s1/archive", "DELETE"),
                        ("/dicom-web/studies", "GET"), ("/app/explorer.html", "GET"), ("/tools/find", "POST")):
        assert classify(uri, method, {}) is None, uri
    assert purpose_of({}) == "unspecified" and purpose_of({"purpose": "care"}) == "care"
    assert purpose_of({"purpose": "Care; DROP"}) is None
    assert resources_of_body(b"abc") == ["abc"]
    assert resources_of_body(b'["a", "b"]') == ["a", "b"]
    assert resources_of_body(b'{"Resources": ["a", {"ID": "b"}], "Synchronous": true}') == ["a", "b"]
    with pytest.raises(ValueError):
        resources_of_body(b"[]")
    purpose, body = purpose_of_post({}, b'{"Resources": ["a"], "Purpose": "care"}')
    assert purpose == "care" and b"Purpose" not in body  # Orthanc never sees the extra key
    assert purpose_of_post({"X-Purpose": "care"}, b'["a"]') == ("care", b'["a"]')


def test_dicomweb_retrieval_of_a_restricted_patient_is_refused_and_audited(orthanc_factory, tmp_path):
    """With Orthanc's DICOMweb plugin loaded beside ours, WADO-RS and WADO-URI retrieval of a
    restricted patient is refused to a user who is no clinician, and every retrieval is audited."""
    import json

    from orthanc_server import DICOMWEB_PLUGIN, PYTHON_PLUGIN

    consents = tmp_path / "consents.json"
    consents.write_text(json.dumps({"restrictions": [{"patient_id": "DICOMWEB-R-1", "issuer": "", "kind": "restriction"}]}))
    server = orthanc_factory(gdpr={"ConsentFile": str(consents)},
                             extra={"Plugins": [PYTHON_PLUGIN, DICOMWEB_PLUGIN],
                                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}})

    def uids(patient_id: str) -> tuple[str, str, str]:
        instance = [server.upload(d) for d in make_ct_study(1, patient_id=patient_id, series=1)][0]
        tags = server.get_json(f"/instances/{instance}/simplified-tags")
        return tags["StudyInstanceUID"], tags["SeriesInstanceUID"], tags["SOPInstanceUID"]

    restricted, free = uids("DICOMWEB-R-1"), uids("DICOMWEB-F-2")
    for params in ({}, {"purpose": "care"}):  # not even for care: the user is no clinician
        assert server.get(f"/dicom-web/studies/{restricted[0]}/metadata", params=params).status_code == 403
        assert server.get(f"/dicom-web/studies/{restricted[0]}/series/{restricted[1]}", params=params).status_code == 403
    wado = {"requestType": "WADO", "studyUID": restricted[0], "seriesUID": restricted[1], "objectUID": restricted[2],
            "contentType": "application/dicom"}
    assert server.get("/wado", params=wado).status_code == 403
    r = server.get(f"/dicom-web/studies/{free[0]}/metadata")
    assert r.status_code == 200 and r.json()[0]["0020000D"]["Value"] == [free[0]]

    refused = [r for r in server.audit_records if r["event"] == "export.refused"]
    assert [r["route"] for r in refused] == ["dicomweb", "dicomweb", "dicomweb", "dicomweb", "wado"]
    assert all(r["user"] == server.username and r["role"] == "staff" and "Art. 18" in r["reason"] for r in refused)
    sent = [r for r in server.audit_records if r["event"] == "export"]
    assert [(r["route"], r["uids"], r["purpose"]) for r in sent] == [("dicomweb", [free[0]], "unspecified")]


def test_store_to_a_modality_of_a_restricted_patient_needs_care_and_a_clinician(orthanc_factory, storescp, tmp_path):
    """Orthanc's own C-STORE route: the plugin answers it, gates it, audits it, then hands it to
    Orthanc. Without staff accounts, the Orthanc users in "CareUsers" count as clinicians."""
    import json

    consents = tmp_path / "consents.json"
    consents.write_text(json.dumps({"restrictions": [{"patient_id": "STORE-R-1", "issuer": "", "kind": "restriction"}]}))
    server = orthanc_factory(modalities={"scp": storescp.as_modality()},
                             gdpr={"ConsentFile": str(consents), "CareUsers": ["gdpr-test"]})
    instances = [server.upload(d) for d in make_ct_study(2, patient_id="STORE-R-1", series=1)]
    study = server.get_json(f"/instances/{instances[0]}/study")["ID"]

    r = server.post("/modalities/scp/store", json={"Resources": [study], "Synchronous": True})
    assert r.status_code == 403 and "Art. 18" in r.json()["error"]
    r = server.post("/modalities/scp/store", json={"Resources": [study], "Synchronous": True, "Purpose": "care"})
    assert r.status_code == 200, r.text
    assert len(storescp.wait_for_files(2)) == 2
    assert server.post("/modalities/scp/store", data=b"[]").status_code == 400  # no resource named

    records = [r for r in server.audit_records if r["event"].startswith("export")]
    assert [(r["event"], r["route"], r["destination"], r["purpose"]) for r in records] == [
        ("export.refused", "modalities/*/store", "scp", "unspecified"),
        ("export", "modalities/*/store", "scp", "care")]
    assert records[1]["user"] == "gdpr-test" and records[1]["role"] == "clinician"
