"""The portability service end to end, on SQLite and on PostgreSQL, against a real Orthanc.

Journey: request created -> identity verified -> bundle job -> progress -> token link ->
download with Range -> audit. Faults: unknown patient, Orthanc down (job fails cleanly, retry
works), bad / expired / revoked tokens, staff auth and roles.
"""
from __future__ import annotations

import base64
import io
import time
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from orthanc_server import make_ct_study
from portability.app import create_app
from portability.models import DownloadLink, one_month_after
from portability.settings import Settings, SettingsError
from pg import empty_schema, throwaway_database

@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL database for this session (dropped afterwards)."""
    with throwaway_database("portability_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    empty_schema(url)  # each test starts from an empty schema (migrations run again)


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


STAFF = basic("alice", "alice-pw")
DPO = basic("dora", "dora-pw")


@pytest.fixture
def service(orthanc, database_url, tmp_path):
    def make(orthanc_server=orthanc, **overrides):
        settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                            orthanc_url=orthanc_server.url, orthanc_username=orthanc_server.username,
                            orthanc_password=orthanc_server.password, issuer="St. Example Hospital",
                            staff_users={"alice": ("alice-pw", "staff"), "dora": ("dora-pw", "dpo")},
                            staff_tokens={"tok-reviewer": "reviewer"}, worker_poll_seconds=0.1,
                            **overrides)
        return TestClient(create_app(settings))
    return make


def wait_job(client, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}", headers=STAFF).json()
        seen.append((job["phase"], job["done"], job["total"]))
        if job["status"] in ("done", "failed"):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {seen[-3:]}")


def new_request(client, patient_id="SVC-1", verify=True):
    r = client.post("/requests", json={"patient_id": patient_id}, headers=STAFF)
    assert r.status_code == 201, r.text
    req = r.json()
    if verify:
        r = client.post(f"/requests/{req['id']}/identity", json={"method": "id-card-in-person"}, headers=STAFF)
        assert r.status_code == 200, r.text
    return req


def test_full_journey_request_to_audited_ranged_download(orthanc, service):
    for data in make_ct_study(6, patient_id="SVC-1", patient_name="Doe^Jane", series=2):
        orthanc.upload(data)
    with service() as client:
        req = new_request(client, verify=False)
        assert req["status"] == "received" and req["fee_eur"] == 0 and req["copy_number"] == 1
        received = datetime.fromisoformat(req["received_at"])
        assert datetime.fromisoformat(req["due_at"]) == one_month_after(received)

        r = client.post(f"/requests/{req['id']}/bundle", headers=STAFF)
        assert r.status_code == 409 and "identity" in r.json()["detail"]
        r = client.post(f"/requests/{req['id']}/identity", json={"method": "id-card-in-person",
                                                                 "notes": "passport checked"}, headers=STAFF)
        assert r.json()["status"] == "identity_verified" and r.json()["identity_verified_by"] == "alice"

        job = client.post(f"/requests/{req['id']}/bundle", headers=STAFF).json()
        job, seen = wait_job(client, job["id"])
        assert job["status"] == "done", job
        assert job["done"] == job["total"] == 6 and job["size"] > 0
        assert any(phase == "downloading" for phase, _, _ in seen) or seen[-1][0] == "done"
        assert client.get(f"/requests/{req['id']}", headers=STAFF).json()["status"] == "ready"

        link = client.post(f"/jobs/{job['id']}/links", json={"ttl_hours": 1}, headers=STAFF).json()
        whole = client.get(link["url"])
        assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
        assert len(whole.content) == job["size"]
        assert zipfile.ZipFile(io.BytesIO(whole.content)).testzip() is None
        part = client.get(link["url"], headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == whole.content[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{job['size']}"
        tail = client.get(link["url"], headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == whole.content[-10:]
        assert client.get(link["url"], headers={"Range": f"bytes={job['size'] + 5}-"}).status_code == 416

        events = client.get("/audit", params={"request_id": req["id"]}, headers=DPO).json()
        kinds = [e["event"] for e in events]
        for k in ("request.created", "request.identity_verified", "bundle.queued", "bundle.built",
                  "link.created"):
            assert k in kinds
        [built] = [e for e in events if e["event"] == "bundle.built"]
        assert built["fields"]["classification"] == "identified"  # the patient's own copy: never anonymous
        downloads = [e for e in events if e["event"] == "bundle.download"]
        assert [d["fields"]["status"] for d in downloads] == [200, 206, 206]
        assert client.get("/audit", headers=STAFF).status_code == 403  # DPO only


def test_preferred_language_is_kept_and_an_unknown_one_refused(orthanc, service):
    orthanc.upload(make_ct_study(1, patient_id="SVC-L", series=1)[0])
    with service() as client:
        r = client.post("/requests", json={"patient_id": "SVC-L", "language": "pl"}, headers=STAFF)
        assert r.status_code == 201 and r.json()["language"] == "pl"
        assert client.get(f"/requests/{r.json()['id']}", headers=STAFF).json()["language"] == "pl"
        bad = client.post("/requests", json={"patient_id": "SVC-L", "language": "xq"}, headers=STAFF)
        assert bad.status_code == 422 and "language" in bad.text and "must be one of en, de" in bad.text
        assert "xq" not in bad.text


def test_requests_near_or_past_due_are_listed(orthanc, service):
    for data in make_ct_study(1, patient_id="DUE-1"):
        orthanc.upload(data)
    with service() as client:
        old = datetime.now(timezone.utc) - timedelta(days=40)
        near = datetime.now(timezone.utc) - timedelta(days=27)
        fresh = datetime.now(timezone.utc)
        ids = []
        for when in (old, near, fresh):
            r = client.post("/requests", json={"patient_id": "DUE-1", "received_at": when.isoformat()},
                            headers=STAFF)
            ids.append(r.json()["id"])
        assert [r["copy_number"] for r in client.get("/requests", headers=STAFF).json()] == [1, 2, 3]
        due = client.get("/requests/due", params={"within_days": 7}, headers=STAFF).json()
        assert [r["id"] for r in due] == ids[:2]
        assert due[0]["overdue"] is True and due[1]["overdue"] is False


def test_unknown_patient_and_bad_credentials_are_clear_errors(service):
    with service() as client:
        r = client.post("/requests", json={"patient_id": "NOBODY"}, headers=STAFF)
        assert r.status_code == 404 and r.json()["error"] == "unknown-patient"
        assert client.post("/requests", json={"patient_id": "X"}).status_code == 401
        assert client.post("/requests", json={"patient_id": "X"}, headers=basic("alice", "nope")).status_code == 401
        assert client.post("/requests", json={}, headers=STAFF).status_code == 422
        assert client.get("/requests/999", headers=STAFF).status_code == 404
        ok = client.get("/requests", headers={"Authorization": "Bearer tok-reviewer"})
        assert ok.status_code == 200


def test_orthanc_down_job_fails_cleanly_and_retry_works(orthanc, service, tmp_path):
    for data in make_ct_study(4, patient_id="DOWN-1"):
        orthanc.upload(data)
    with service() as client:
        req = new_request(client, "DOWN-1")
        orthanc.stop()
        job, _ = wait_job(client, client.post(f"/requests/{req['id']}/bundle", headers=STAFF).json()["id"])
        assert job["status"] == "failed" and "unreachable" in job["error"]
        bundles = tmp_path / "data" / "bundles"
        assert not [p for p in bundles.iterdir()], "nothing half-built may remain"
        assert client.post(f"/jobs/{job['id']}/links", json={}, headers=STAFF).status_code == 409
        orthanc.start()
        retry = client.post(f"/jobs/{job['id']}/retry", headers=STAFF).json()
        done, _ = wait_job(client, retry["id"])
        assert done["status"] == "done" and done["done"] == 4
        assert [p.name for p in bundles.iterdir()] == [f"request-{req['id']}-job-{retry['id']}.zip"]
        assert client.post(f"/jobs/{done['id']}/retry", headers=STAFF).status_code == 409


def test_bad_expired_and_revoked_tokens_deliver_nothing(orthanc, service):
    for data in make_ct_study(2, patient_id="TOK-1"):
        orthanc.upload(data)
    with service() as client:
        req = new_request(client, "TOK-1")
        job, _ = wait_job(client, client.post(f"/requests/{req['id']}/bundle", headers=STAFF).json()["id"])
        assert client.get("/download/not-a-token").status_code == 404

        revoked = client.post(f"/jobs/{job['id']}/links", json={}, headers=STAFF).json()
        assert client.head(revoked["url"]).status_code == 200
        assert client.post(f"/links/{revoked['id']}/revoke", headers=STAFF).json()["revoked_at"]
        r = client.get(revoked["url"])
        assert r.status_code == 410 and "revoked" in r.json()["detail"] and not r.content.startswith(b"PK")

        expired = client.post(f"/jobs/{job['id']}/links", json={"ttl_hours": 1}, headers=STAFF).json()
        with client.app.state.db.session() as s:
            s.get(DownloadLink, expired["id"]).expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        r = client.get(expired["url"])
        assert r.status_code == 410 and "expired" in r.json()["detail"]

        refused = client.get("/audit", params={"event": "download.refused"}, headers=DPO).json()
        assert sorted(e["fields"]["reason"] for e in refused) == ["expired", "revoked", "unknown-token"]


def test_password_protected_link_serves_an_aes_zip(orthanc, service):
    import pyzipper

    for data in make_ct_study(2, patient_id="AES-1"):
        orthanc.upload(data)
    with service() as client:
        req = new_request(client, "AES-1")
        job, _ = wait_job(client, client.post(f"/requests/{req['id']}/bundle", headers=STAFF).json()["id"])
        link = client.post(f"/jobs/{job['id']}/links", json={"password_protected": True}, headers=STAFF).json()
        assert link["password"]
        body = client.get(link["url"]).content
        with pyzipper.AESZipFile(io.BytesIO(body)) as zf:
            with pytest.raises(RuntimeError):
                zf.read("DICOMDIR")  # no password
            zf.setpassword(link["password"].encode())
            assert zf.read("DICOMDIR")[128:132] == b"DICM"
            assert all(i.flag_bits & 0x1 for i in zf.infolist())  # every entry encrypted


def test_settings_from_environment(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    s = Settings.from_env({"ORTHANC_GDPR_SERVICE_DATA_DIR": str(tmp_path),
                           "ORTHANC_GDPR_SERVICE_ORTHANC_USERNAME": "svc",
                           "ORTHANC_GDPR_SERVICE_ORTHANC_PASSWORD_FILE": str(pw),
                           "ORTHANC_GDPR_SERVICE_STAFF_TOKENS": "tok:clinician",
                           "ORTHANC_GDPR_SERVICE_TOKEN_TTL_HOURS": "2"})
    assert s.orthanc_auth == ("svc", "s3cret") and s.token_ttl_hours == 2
    assert s.staff_tokens == {"tok": "clinician"} and s.staff_users == {}
    # no password is ever read from the environment: the old variable is refused, saying what to do
    with pytest.raises(SettingsError, match="orthanc-gdpr users add"):
        Settings.from_env({"ORTHANC_GDPR_SERVICE_STAFF_USERS": "a:b:staff"})
    assert s.database_url == f"sqlite:///{tmp_path / 'portability.sqlite'}"
    assert one_month_after(datetime(2025, 1, 31)) == datetime(2025, 2, 28)
