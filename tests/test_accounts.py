"""Staff accounts: the DPO manages people through /api/users and `orthanc-gdpr users`; logins are
checked against the account store (Argon2), throttled and audited; on SQLite and PostgreSQL.

Also: the API documentation needs a staff login and loads nothing from the internet, and the
access log names route templates, never a query string with a patient's identifier.
"""
from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import subprocess
import sys

import pytest
from starlette.requests import Request

from portability import auth, chain
from portability.models import AuditEvent
from test_rights_common import DPO, STAFF, basic, client_for, rights_db, rights_pg_url  # noqa: F401

CLI = [sys.executable, "-m", "orthanc_gdpr.cli"]
STRONG = "Harbour-lantern-47-quietly"


def records(client, event: str) -> list[dict]:
    with client.app.state.db.session() as s:
        rows = s.query(AuditEvent).filter(AuditEvent.event == event).order_by(AuditEvent.seq).all()
        return [json.loads(r.record) for r in rows]


def test_dpo_adds_a_clinician_who_logs_in_and_is_disabled_and_reset(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as client:
        r = client.post("/api/users", json={"name": "carl", "role": "clinician"}, headers=DPO)
        assert r.status_code == 201, r.text
        answer = r.json()
        carl_pw = answer["generated_password"]
        assert answer["user"] == {**answer["user"], "name": "carl", "role": "clinician", "enabled": True,
                                  "created_by": "dora"}
        assert len(carl_pw) == 20 and carl_pw[0].isalpha()
        carl = basic("carl", carl_pw)
        assert client.get("/requests", headers=carl).status_code == 200  # clinician ranks as staff
        assert client.get("/audit", headers=carl).status_code == 403  # not the dpo

        r = client.post("/api/users", json={"name": "rob", "role": "reviewer", "password": STRONG}, headers=DPO)
        assert r.status_code == 201 and r.json()["generated_password"] is None
        listed = client.get("/api/users", headers=DPO).json()
        assert [(u["name"], u["role"], u["enabled"]) for u in listed if u["name"] in ("carl", "rob")] == [
            ("carl", "clinician", True), ("rob", "reviewer", True)]
        assert STRONG not in json.dumps(listed) and "hash" not in json.dumps(listed)

        assert client.post("/api/users/carl/disable", headers=DPO).json()["enabled"] is False
        assert client.get("/requests", headers=carl).status_code == 401
        r = client.post("/api/users/carl/password", json={}, headers=DPO)
        new_pw = r.json()["generated_password"]
        assert r.status_code == 200 and new_pw != carl_pw
        assert client.post("/api/users/carl/enable", headers=DPO).json()["enabled"] is True
        assert client.get("/requests", headers=carl).status_code == 401  # the old password is gone
        assert client.get("/requests", headers=basic("carl", new_pw)).status_code == 200

        created = records(client, "user.created")
        carl_created = next(r for r in created if r.get("account") == "carl")
        assert carl_created["actor"] == "dora" and carl_created["actor_role"] == "dpo"
        assert [r["event"] for r in records(client, "user.disabled") + records(client, "user.password-reset")] == [
            "user.disabled", "user.password-reset"]
        failed = records(client, "login.failed")
        assert any(r["actor"] == "carl" and r["reason"] == "account disabled" for r in failed)
        text = json.dumps(created + failed + records(client, "user.password-reset"))
        assert carl_pw not in text and new_pw not in text and STRONG not in text


def test_bad_account_input_is_refused_with_the_field_and_rule_and_audited(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as client:
        cases = [
            ({"name": "nina", "role": "superuser", "password": STRONG}, 422, "role: must be one of"),
            ({"name": "alice", "role": "staff", "password": STRONG}, 409, "name: an account with this name already exists"),
            ({"name": "nina", "role": "staff", "password": "short1"}, 422, "password: must be at least 12 characters"),
            ({"name": "nina", "role": "staff", "password": "password1234"}, 422, "password: too easy to guess"),
            ({"name": "nina", "role": "staff", "password": "nina-" + STRONG}, 422, "must not contain the user name"),
            ({"name": "Nina Smith", "role": "staff", "password": STRONG}, 422, "name: 2 to 64 characters"),
        ]
        for body, status, message in cases:
            r = client.post("/api/users", json=body, headers=DPO)
            assert r.status_code == status and message in r.json()["detail"], (body, r.text)
            assert body["password"] not in r.text and "superuser" not in r.text  # nothing submitted echoed
        refused = records(client, "user.refused")
        assert [(r["field"], r["actor"]) for r in refused] == [
            ("role", "dora"), ("name", "dora"), ("password", "dora"), ("password", "dora"), ("password", "dora"),
            ("name", "dora")]
        assert not any(STRONG in json.dumps(r) for r in refused)
        # only a dpo manages accounts; the refusal is audited like every other
        assert client.post("/api/users", json={"name": "nina", "role": "staff"}, headers=STAFF).status_code == 403
        assert client.get("/api/users", headers=STAFF).status_code == 403
        assert any(r["status"] == 403 and "alice" in r["reason"] for r in records(client, "access.refused"))
        assert client.post("/api/users/nobody/disable", headers=DPO).status_code == 404
        # the last enabled dpo cannot lock everybody out
        r = client.post("/api/users/dora/disable", headers=DPO)
        assert r.status_code == 409 and "last enabled dpo" in r.json()["detail"]
        assert "nina" not in [u["name"] for u in client.get("/api/users", headers=DPO).json()]  # nothing half-saved


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as client:
        for _ in range(5):
            assert client.get("/requests", headers=basic("alice", "not-her-password")).status_code == 401
        r = client.get("/requests", headers=STAFF)
        assert r.status_code == 429 and "Retry-After" in r.headers
        assert client.get("/requests", headers=DPO).status_code == 200  # another account is not locked
        failed = [r for r in records(client, "login.failed") if r["actor"] == "alice"]
        assert len(failed) == 5 and all(r["client"] == "testclient" and r["channel"] == "api" for r in failed)
        assert "not-her-password" not in json.dumps(failed)
        throttled = records(client, "login.throttled")
        assert throttled and throttled[0]["actor"] == "alice"


def test_unknown_names_from_one_address_are_throttled_per_address(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as client:
        for i in range(20):
            assert client.get("/requests", headers=basic(f"guess{i}", "x")).status_code == 401
        assert client.get("/requests", headers=STAFF).status_code == 429  # the address is locked


def _request(app, client=("10.1.2.3", 5000)) -> Request:
    return Request({"type": "http", "app": app, "client": client, "headers": [], "method": "POST", "path": "/ui/login"})


def test_check_password_and_lookup_staff_follow_the_account_store(rights_db, tmp_path):
    """The two functions the web workspace's session login calls."""
    with client_for(None, rights_db, tmp_path) as client:
        request = _request(client.app)
        assert auth.check_password(request, "alice", "alice-pw") == auth.Staff("alice", "staff")
        assert auth.check_password(request, "alice", "wrong") is None
        assert auth.check_password(request, "nobody", "alice-pw") is None
        assert auth.lookup_staff(request, "dora") == auth.Staff("dora", "dpo")
        client.post("/api/users", json={"name": "carl", "role": "clinician", "password": STRONG}, headers=DPO)
        assert auth.check_password(request, "carl", STRONG).may_act_for_care
        client.post("/api/users/carl/disable", headers=DPO)
        assert auth.lookup_staff(request, "carl") is None
        assert auth.check_password(request, "carl", STRONG) is None
        web = [r for r in records(client, "login.failed") if r["channel"] == "web"]
        assert [(r["actor"], r["client"]) for r in web] == [("alice", "10.1.2.3"), ("nobody", "10.1.2.3"),
                                                           ("carl", "10.1.2.3")]


def test_api_docs_need_a_staff_login_and_load_nothing_from_the_internet(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=basic("alice", "wrong")).status_code == 401, path
        for path in ("/docs", "/redoc"):
            page = client.get(path, headers=STAFF)
            assert page.status_code == 200
            urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page.text)
            assert urls and all(u.startswith("/") for u in urls), urls
            assert "http://" not in page.text and "https://" not in page.text
            policy = page.headers["content-security-policy"]
            assert policy.startswith("default-src 'self'; script-src 'self'") and "img-src 'self' data:" in policy
            for url in urls:
                assert client.get(url, headers=STAFF).status_code == 200, url
        doc = client.get("/openapi.json", headers=STAFF).json()
        schemes = doc["components"]["securitySchemes"]
        assert schemes["staffLogin"] == {**schemes["staffLogin"], "type": "http", "scheme": "basic"}
        assert schemes["machineToken"]["scheme"] == "bearer" and schemes["patientToken"]["in"] == "header"
        assert doc["security"] and "/api/users" in doc["paths"]
        operations = [op["operationId"] for route in doc["paths"].values() for op in route.values()]
        assert len(operations) == len(set(operations))  # OpenAPI: every operationId is unique


def test_access_log_names_the_route_template_never_the_query_string(rights_db, tmp_path, caplog):
    with client_for(None, rights_db, tmp_path) as client, caplog.at_level(logging.INFO, "portability.access"):
        client.get("/api/consents/standing", params={"patient_id": "PAT-SECRET-77", "purpose": "research"},
                   headers=STAFF)
        client.get("/requests/12345", headers=STAFF)
    lines = [r.getMessage() for r in caplog.records if r.name == "portability.access"]
    assert any('"GET /api/consents/standing" 200' in line for line in lines), lines
    assert any('"GET /requests/{request_id}" 404' in line for line in lines), lines
    assert not any("PAT-SECRET-77" in line or "12345" in line for line in lines)


# ------------------------------------------------------------------ the command line
def run_cli(args: list[str], db_url: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC_GDPR_SERVICE_")}
    env["ORTHANC_GDPR_SERVICE_DATABASE_URL"] = db_url
    return subprocess.run([*CLI, "users", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_users_command_adds_lists_disables_and_resets_accounts(rights_db, tmp_path):
    r = run_cli(["add", "rita", "--role", "reviewer", "--password-stdin"], rights_db, STRONG + "\n")
    assert r.returncode == 0 and "account rita created (role reviewer)" in r.stdout, r.stderr
    assert STRONG not in r.stdout + r.stderr
    for args, stdin, code, message in [
        (["add", "rita", "--role", "staff", "--password-stdin"], STRONG, 2, "name: an account with this name already exists"),
        (["add", "nina", "--role", "nurse", "--password-stdin"], STRONG, 2, "role: must be one of staff, clinician, reviewer, dpo"),
        (["add", "nina", "--role", "staff", "--password-stdin"], "12345678", 2, "password: must be at least 12"),
        (["disable", "nobody"], None, 3, "name: no account with this name"),
    ]:
        r = run_cli(args, rights_db, stdin)
        assert r.returncode == code and message in r.stderr, (args, r.stdout, r.stderr)
    r = run_cli(["add", "nina", "--role", "staff"], rights_db)  # a pipe: a generated password would be logged
    assert r.returncode == 2 and "not a terminal" in r.stderr and "--password-stdin" in r.stderr
    assert run_cli(["disable", "rita"], rights_db).returncode == 0
    assert run_cli(["reset-password", "rita", "--password-stdin"], rights_db, "Second-" + STRONG).returncode == 0
    listing = run_cli(["list"], rights_db)
    assert re.search(r"^rita\s+reviewer\s+disabled\s", listing.stdout, re.M), listing.stdout
    assert "nina" not in listing.stdout and STRONG not in listing.stdout

    with client_for(None, rights_db, tmp_path) as client:
        assert client.get("/requests", headers=basic("rita", "Second-" + STRONG)).status_code == 401  # disabled
        run_cli(["enable", "rita"], rights_db)
        assert client.get("/requests", headers=basic("rita", "Second-" + STRONG)).status_code == 200
        events = [(r["event"], r.get("channel")) for r in records(client, "user.created")
                  + records(client, "user.disabled") + records(client, "user.password-reset")]
        assert events == [("user.created", "cli"), ("user.disabled", "cli"), ("user.password-reset", "cli")]
        assert all(r["actor"].endswith("(command line)") for r in records(client, "user.refused"))
        assert len(records(client, "user.refused")) == 4


def test_users_command_shows_a_generated_password_once_on_a_terminal(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'accounts.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC_GDPR_SERVICE_")}
    env["ORTHANC_GDPR_SERVICE_DATABASE_URL"] = db_url
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*CLI, "users", "add", "carl", "--role", "clinician"], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 4096) if ready else b""
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0, out
    shown = re.search(rb"generated password for carl \(shown once[^)]*\): ([A-Za-z0-9]{20})", out)
    assert shown, out
    password = shown.group(1).decode()
    from portability.db import Database

    db = Database(db_url)
    try:
        from portability import logins

        assert logins.authenticate(db, "carl", password, "127.0.0.1", "test").role == "clinician"
        with db.session() as s:
            assert password not in json.dumps([r.record for r in s.query(AuditEvent)])
        assert chain.verify(db) == []
    finally:
        db.dispose()
    assert (tmp_path / "accounts.sqlite").stat().st_mode & 0o777 == 0o600
