"""Shared fixtures and helpers of the data-subject rights tests (rectification, consent, erasure,
audit trail). Imported by those modules; holds no tests itself."""
from __future__ import annotations

import base64
import time

import pytest
from fastapi.testclient import TestClient

from portability.app import create_app
from portability.settings import Settings
from pg import empty_schema, throwaway_database


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


STAFF = basic("alice", "alice-pw")
REVIEWER = basic("rita", "rita-pw")
DPO = basic("dora", "dora-pw")
PLUGIN_TOKEN = "plugin-consent-token"


@pytest.fixture(scope="session")
def rights_pg_url():
    with throwaway_database("rights_test") as url:
        yield url


def _db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite'}", None
    url = request.getfixturevalue("rights_pg_url")
    empty_schema(url)
    return url, url


@pytest.fixture(params=["sqlite", "postgresql"])
def rights_db(request, tmp_path):
    url, pg = _db_url(request, tmp_path)
    yield url
    if pg:
        empty_schema(pg)


@pytest.fixture(params=["sqlite"])
def sqlite_db(request, tmp_path):
    url, _ = _db_url(request, tmp_path)
    yield url


def settings_for(orthanc, database_url, tmp_path, **overrides) -> Settings:
    values = dict(data_dir=tmp_path / "service-data", database_url=database_url,
                  orthanc_url=orthanc.url if orthanc else "http://127.0.0.1:9",
                  orthanc_username=orthanc.username if orthanc else None,
                  orthanc_password=orthanc.password if orthanc else None,
                  issuer="St. Example Hospital",
                  staff_users={"alice": ("alice-pw", "staff"), "rita": ("rita-pw", "reviewer"),
                               "dora": ("dora-pw", "dpo")},
                  staff_tokens={PLUGIN_TOKEN: "staff"}, worker_poll_seconds=0.1, rights_retry_seconds=0.5,
                  rights_max_retry_seconds=1.0)
    if orthanc is not None:
        values.update(plugin_audit_log=orthanc.state_dir / "audit.jsonl", plugin_key_file=orthanc.key_file)
    values.update(overrides)
    return Settings(**values)


def client_for(orthanc, database_url, tmp_path, **overrides) -> TestClient:
    return TestClient(create_app(settings_for(orthanc, database_url, tmp_path, **overrides)))


def wait_status(client, path: str, statuses: tuple[str, ...], timeout: float = 60, headers=STAFF) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = client.get(path, headers=headers).json()
        if last.get("status") in statuses:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {statuses}: {last}")
