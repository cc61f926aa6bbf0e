"""Release decisions over the API, stored on SQLite and on PostgreSQL: validation names the
field and the rule, an approval records fingerprint and manifest (never the key), the plugin's
standing query and void, roles, and an evidence document that escapes what people typed."""
from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from orthanc_server import TEST_KEY_HEX, make_ct_study
from pg import throwaway_database
from portability.app import create_app
from portability.settings import Settings

USERS = {"sam": ("sam-pw-1", "staff"), "rita": ("rita-pw-1", "reviewer"), "dora": ("dora-pw-1", "dpo")}


def basic(user: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{USERS[user][0]}".encode()).decode()}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite'}"
        return
    with throwaway_database("releases_test") as url:
        yield url


@pytest.fixture
def client(orthanc, database_url, tmp_path):
    for data in make_ct_study(3, series=1):
        orthanc.upload(data)
    settings = Settings(data_dir=tmp_path / "service", database_url=database_url, orthanc_url=orthanc.url,
                        orthanc_username=orthanc.username, orthanc_password=orthanc.password,
                        staff_users=dict(USERS), staff_tokens={"machine-token-1": "staff"}, worker=False,
                        plugin_key_file=orthanc.key_file)
    with TestClient(create_app(settings)) as c:
        c.study = orthanc.get_json("/studies")[0]
        yield c


def test_release_records_on_both_databases(client):
    study = client.study
    body = {"study": study, "profile": "research", "decision": "approve", "classification": "anonymous-slices",
            "rationale": "<script>alert(1)</script> single slices for teaching"}
    r = client.post("/api/releases", json=body, headers=basic("rita"))
    assert r.status_code == 422
    assert "clinician_name" in r.text and "clinician_statement" in r.text
    assert client.post("/api/releases", json=body, headers=basic("sam")).status_code == 403
    attested = {**body, "clinician_name": "Dr. Who", "clinician_statement": "No rare features; nothing burned in."}
    r = client.post("/api/releases", json={**attested, "rule": "no-such-rule"}, headers=basic("rita"))
    assert r.status_code == 422 and "rule" in r.text
    r = client.post("/api/releases", json=attested, headers=basic("rita"))
    assert r.status_code == 201, r.text
    release = r.json()
    assert release["instances"] == 3 and len(release["manifest_sha256"]) == 64
    assert release["key_fingerprint"].startswith("hmac-sha256:") and TEST_KEY_HEX not in r.text
    assert release["audit_seq"] and release["residual_risks"]
    # The plugin's questions (machine token, role staff): only for its exact rule.
    token = {"Authorization": "Bearer machine-token-1"}
    standing = client.get("/api/releases/standing", params={"study": study, "rule": "r", "profile": "research"},
                          headers=token).json()
    assert standing == {"decision": "none"}
    evidence = client.get(f"/api/releases/{release['id']}/evidence", headers=basic("rita"))
    assert "&lt;script&gt;" in evidence.text and "<script>" not in evidence.text
    assert release["manifest_sha256"] in evidence.text and TEST_KEY_HEX not in evidence.text
    void = client.post(f"/api/releases/{release['id']}/void", json={"reason": "study changed"}, headers=token)
    assert void.status_code == 200 and void.json()["status"] == "void"
    again = client.post(f"/api/releases/{release['id']}/void", json={"reason": "again"}, headers=token)
    assert again.status_code == 409
    assert client.get("/api/releases/999", headers=basic("rita")).status_code == 404
    verified = client.get("/api/audit/verify", headers=basic("dora"))
    assert verified.status_code == 200, verified.text
