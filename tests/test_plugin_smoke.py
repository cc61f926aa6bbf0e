"""The plugin is live inside a real Orthanc, and the test harness itself behaves."""
from __future__ import annotations

import ast
import os
import sys

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file

import orthanc_gdpr
from orthanc_server import ENTRY_SCRIPT, OrthancServer, StoreScp

CT_SMALL = get_testdata_file("CT_small.dcm")


# --------------------------------------------------------------------------- plugin is live
def test_health_answers_with_version(orthanc: OrthancServer) -> None:
    r = orthanc.get("/gdpr/health")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "ok"
    assert body["plugin"] == "orthanc-gdpr"
    assert body["version"] == orthanc_gdpr.__version__
    # The interpreter embedded in Orthanc is the system one the venv is built on.
    assert body["python"].split()[0] == sys.version.split()[0]


def test_health_requires_authentication(orthanc: OrthancServer) -> None:
    assert requests.get(orthanc.url + "/gdpr/health", timeout=10).status_code == 401
    wrong = requests.get(orthanc.url + "/gdpr/health", auth=(orthanc.username, "nope"), timeout=10)
    assert wrong.status_code == 401


def test_health_is_get_only(orthanc: OrthancServer) -> None:
    assert orthanc.post("/gdpr/health", data=b"{}").status_code == 405


def test_log_shows_the_script_was_loaded(orthanc: OrthancServer) -> None:
    log = orthanc.log_path.read_text()
    assert "Registering plugin 'python'" in log
    assert f'Using Python script "{ENTRY_SCRIPT.name}" from directory: {ENTRY_SCRIPT.parent}' in log
    assert f"orthanc-gdpr {orthanc_gdpr.__version__} ready:" in log


def test_upload_and_read_back(orthanc: OrthancServer) -> None:
    instance_id = orthanc.upload(CT_SMALL)
    assert instance_id in orthanc.get_json("/instances")
    tags = orthanc.get_json(f"/instances/{instance_id}/simplified-tags")
    assert tags["SOPInstanceUID"] == pydicom.dcmread(CT_SMALL).SOPInstanceUID
    stored = orthanc.get(f"/instances/{instance_id}/file")
    assert stored.status_code == 200
    with open(CT_SMALL, "rb") as f:
        assert stored.content == f.read()
    assert orthanc.upload(CT_SMALL) == instance_id  # AlreadyStored is not an error


# --------------------------------------------------------------------------- harness
def test_stop_by_pid_ends_the_process(orthanc: OrthancServer) -> None:
    pid = orthanc.pid
    os.kill(pid, 0)  # alive
    orthanc.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(orthanc.url + "/system", timeout=2)
    orthanc.stop()  # idempotent


def test_restart_keeps_storage_and_ports(orthanc: OrthancServer) -> None:
    instance_id = orthanc.upload(CT_SMALL)
    old_pid, old_url = orthanc.pid, orthanc.url
    orthanc.restart()
    assert orthanc.pid != old_pid and orthanc.url == old_url
    assert orthanc.get_json("/instances") == [instance_id]
    assert orthanc.get_json("/gdpr/health")["status"] == "ok"


def test_config_is_loopback_only_with_caller_sections(orthanc_factory) -> None:
    server = orthanc_factory(
        start=False,
        modalities={"scp": ["SCP", "127.0.0.1", 11112]},
        extra={"Gdpr": {"Profile": "basic"}},
        stable_age=7,
    )
    server.http_port, server.dicom_port = 1, 2  # not started: any ports will do
    cfg = server.config()
    assert cfg["RemoteAccessAllowed"] is False
    assert cfg["AuthenticationEnabled"] is True
    assert cfg["RegisteredUsers"] == {server.username: server.password}
    assert cfg["PythonScript"] == str(ENTRY_SCRIPT)
    assert cfg["DicomModalities"] == {"scp": ["SCP", "127.0.0.1", 11112]}
    assert cfg["StableAge"] == 7
    assert cfg["Gdpr"] == {"Profile": "basic"}


def test_two_servers_are_distinct_and_can_be_peers(orthanc_factory) -> None:
    peer = orthanc_factory()
    source = orthanc_factory(peers={"peer": peer.as_peer()}, modalities={"peer": peer.as_modality()})
    assert source.aet != peer.aet
    assert {source.http_port, source.dicom_port}.isdisjoint({peer.http_port, peer.dicom_port})
    instance_id = source.upload(CT_SMALL)
    job = source.post_json("/peers/peer/store", {"Resources": [instance_id], "Synchronous": True})
    assert job is not None
    assert peer.get_json("/instances") == [instance_id]  # same DICOM UIDs, same Orthanc id
    echo = source.post("/modalities/peer/echo", json={})
    assert echo.status_code == 200, echo.text


def test_storescp_receives_what_orthanc_sends(orthanc_factory, storescp: StoreScp) -> None:
    source = orthanc_factory(modalities={"scp": storescp.as_modality()})
    instance_id = source.upload(CT_SMALL)
    source.post_json("/modalities/scp/store", {"Resources": [instance_id], "Synchronous": True})
    (received,) = storescp.wait_for_files(1)
    assert pydicom.dcmread(received).SOPInstanceUID == pydicom.dcmread(CT_SMALL).SOPInstanceUID
    pid = storescp.pid
    storescp.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --------------------------------------------------------------------------- entry script
ALLOWED_EARLY_IMPORTS = {"sys", "os", "pathlib"}


def _imported_roots(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0]}
    return set()


def _mutates_sys_path(node: ast.stmt) -> bool:
    return any(
        isinstance(n, ast.Attribute) and n.attr == "path"
        and isinstance(n.value, ast.Name) and n.value.id == "sys"
        for n in ast.walk(node)
    ) and not isinstance(node, (ast.Import, ast.ImportFrom))


def test_entry_script_imports_only_stdlib_before_path_wiring() -> None:
    tree = ast.parse(ENTRY_SCRIPT.read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    wiring = next(i for i, n in enumerate(body) if _mutates_sys_path(n))
    early = set().union(*(_imported_roots(n) for n in body[:wiring]))
    assert early <= ALLOWED_EARLY_IMPORTS, early
    # No import hides inside the wiring itself (e.g. in a function or a loop).
    for node in body[: wiring + 1]:
        for inner in ast.walk(node):
            if inner is not node and isinstance(inner, (ast.Import, ast.ImportFrom)):
                pytest.fail(f"import nested in the wiring at line {inner.lineno}")
    late = [r for n in body[wiring:] for r in _imported_roots(n)]
    assert "orthanc" in late and "orthanc_gdpr" in late
    assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in body), "keep it tiny"
