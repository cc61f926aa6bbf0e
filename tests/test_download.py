"""De-identified downloads from a real Orthanc, and the filter on Orthanc's plain export routes."""
from __future__ import annotations

import io
import json
import zipfile

import pydicom
import requests

from orthanc_gdpr.deid import Deidentifier, Keyring, deidentify_bytes, load_key, load_profile
from orthanc_server import PHI_ID, PHI_NAME, make_ct_study
from test_routing import PHI_STRINGS, assert_no_phi, original_uids


def forbidden_values(files: list[bytes]) -> set[str]:
    return set(PHI_STRINGS) | original_uids(files)


def test_deidentified_study_series_and_instance_downloads_are_clean_and_audited(orthanc_factory):
    server = orthanc_factory(gdpr={"DownloadProfiles": ["basic", "research"]})
    files = make_ct_study(4, series=2)
    ids = [server.upload(f) for f in files]
    study = server.get_json(f"/instances/{ids[0]}/study")["ID"]
    series = server.get_json(f"/studies/{study}")["Series"]
    forbidden = forbidden_values(files)

    r = server.get(f"/gdpr/studies/{study}/archive", params={"profile": "research"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/zip")
    assert f"{study}-research.zip" in r.headers.get("Content-Disposition", "")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = zf.namelist()
        assert "deidentification-report.json" in names and "HELD_BACK.txt" not in names
        dicoms = [n for n in names if n.endswith(".dcm")]
        assert len(dicoms) == 4, names
        engine = Deidentifier(load_profile("research"), Keyring(load_key(server.key_file)))
        expected = {str(deidentify_bytes(engine, f)[0].SOPInstanceUID) for f in files}
        got = set()
        for n in dicoms:
            data = zf.read(n)
            assert_no_phi(data, forbidden, n)
            assert_no_phi(n.encode(), forbidden, "file name")
            ds = pydicom.dcmread(io.BytesIO(data))
            assert ds.PatientIdentityRemoved == "YES" and ds.PatientID != PHI_ID
            got.add(str(ds.SOPInstanceUID))
        assert got == expected  # the same key and profile give the engine's local result
        report = json.loads(zf.read("deidentification-report.json"))
        assert report["profile"] == "research"
        assert_no_phi(zf.read("deidentification-report.json"), forbidden, "report")

    r = server.get(f"/gdpr/series/{series[0]}/archive")  # default profile: basic
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".dcm")]) == 2
        for n in zf.namelist():
            assert_no_phi(zf.read(n), forbidden, n)

    r = server.get(f"/gdpr/instances/{ids[0]}/file", params={"profile": "research"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/dicom")
    assert_no_phi(r.content, forbidden, "instance file")
    assert pydicom.dcmread(io.BytesIO(r.content)).PatientIdentityRemoved == "YES"

    assert server.get_json("/gdpr/profiles") == {"download": ["basic", "research"], "default": "basic",
                                                 "routing_rules": [], "rules": [], "workspace": ""}

    # Errors: a profile not offered -> 400; missing resources -> 404.
    assert server.get(f"/gdpr/studies/{study}/archive", params={"profile": "no-such"}).status_code == 400
    assert server.get(f"/gdpr/studies/{study}/archive", params={"profile": "teaching"}).status_code == 400
    assert server.get("/gdpr/studies/does-not-exist/archive").status_code == 404
    assert server.get("/gdpr/series/does-not-exist/archive").status_code == 404
    assert server.get("/gdpr/instances/does-not-exist/file").status_code == 404
    assert server.post(f"/gdpr/studies/{study}/archive").status_code == 405

    downloads = [r for r in server.audit_records if r["event"] == "download"]
    assert [(d["level"], d["profile"], d["instances"]) for d in downloads] == [
        ("studies", "research", 4), ("series", "basic", 2), ("instances", "research", 1)]
    assert all(d["user"] == server.username for d in downloads)
    assert {d["classification"] for d in downloads} == {"pseudonymised"}  # whatever the profile
    assert any(r["event"] == "download.refused" for r in server.audit_records)
    assert_no_phi((server.state_dir / "audit.jsonl").read_bytes(), forbidden, "audit log")


def test_restricted_identified_export_blocks_other_users_but_not_deidentified_downloads(orthanc_factory):
    admin, viewer = "gdpr-admin", "viewer"
    server = orthanc_factory(
        username=admin, password="admin-secret",
        extra={"RegisteredUsers": {admin: "admin-secret", viewer: "viewer-secret"}},
        gdpr={"RestrictIdentifiedExport": True, "IdentifiedExportUsers": [admin]})
    files = make_ct_study(2, series=1)
    ids = [server.upload(f) for f in files]
    study = server.get_json(f"/instances/{ids[0]}/study")["ID"]

    as_viewer = requests.Session()
    as_viewer.auth = (viewer, "viewer-secret")
    plain_archive = as_viewer.get(f"{server.url}/studies/{study}/archive", timeout=30)
    assert plain_archive.status_code == 403
    assert as_viewer.get(f"{server.url}/instances/{ids[0]}/file", timeout=30).status_code == 403
    assert as_viewer.post(f"{server.url}/studies/{study}/anonymize", json={}, timeout=30).status_code == 403
    assert as_viewer.get(f"{server.url}/studies/{study}", timeout=30).status_code == 200  # browsing is fine
    ours = as_viewer.get(f"{server.url}/gdpr/studies/{study}/archive", timeout=60)
    assert ours.status_code == 200
    with zipfile.ZipFile(io.BytesIO(ours.content)) as zf:
        for n in zf.namelist():
            assert_no_phi(zf.read(n), forbidden_values(files), n)

    r = server.get(f"/studies/{study}/archive")  # the admin keeps the plain, identified archive
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert any(PHI_ID.encode() in zf.read(n) for n in zf.namelist())
    assert server.get(f"/instances/{ids[0]}/file").content == files[0]

    refused = [r for r in server.audit_records if r["event"] == "export.refused"]
    assert {r["user"] for r in refused} == {viewer}
    assert {r["uri"] for r in refused} >= {f"/studies/{study}/archive", f"/instances/{ids[0]}/file"}
    download = [r for r in server.audit_records if r["event"] == "download"]
    assert [d["user"] for d in download] == [viewer]


def test_downloaded_instance_does_not_carry_the_original_preamble(orthanc_factory):
    server = orthanc_factory()
    data = bytearray(make_ct_study(1, series=1)[0])
    marker = f"scanned for {PHI_NAME} {PHI_ID}".encode()
    data[: len(marker)] = marker  # the preamble is free for the application: PHI can hide there
    iid = server.upload(bytes(data))
    r = server.get(f"/gdpr/instances/{iid}/file")
    assert r.status_code == 200
    assert_no_phi(r.content, set(PHI_STRINGS), "instance file")


# --------------------------------------------------------------- consent registry (Art. 18 / 21)
def with_issuer(data: bytes, issuer: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.IssuerOfPatientID = issuer
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_restricted_or_objecting_patient_is_refused_for_every_purpose_but_care(orthanc_factory, tmp_path):
    consents = tmp_path / "consents.json"
    consents.write_text(json.dumps({"restrictions": [
        {"patient_id": "RESTRICTED-1", "issuer": "", "kind": "restriction"},
        {"patient_id": "OBJECTED-2", "issuer": "HOSP-B", "kind": "objection"}]}))
    # Care for a restricted patient is open to clinicians only: without staff accounts, the Orthanc
    # users listed in "CareUsers" (tests/test_orthanc_accounts.py: a staff account is refused).
    server = orthanc_factory(gdpr={"ConsentFile": str(consents), "DownloadProfiles": ["basic", "research"],
                                   "CareUsers": ["gdpr-test"]})
    restricted = [server.upload(f) for f in make_ct_study(2, series=1, patient_id="RESTRICTED-1")]
    objected = [server.upload(with_issuer(f, "HOSP-B")) for f in make_ct_study(1, series=1, patient_id="OBJECTED-2")]
    # Same PatientID under another issuer: another patient, not covered by the objection.
    other = [server.upload(with_issuer(f, "HOSP-C")) for f in make_ct_study(1, series=1, patient_id="OBJECTED-2")]
    study = server.get_json(f"/instances/{restricted[0]}/study")["ID"]
    series = server.get_json(f"/instances/{restricted[0]}/series")["ID"]
    objected_study = server.get_json(f"/instances/{objected[0]}/study")["ID"]
    other_study = server.get_json(f"/instances/{other[0]}/study")["ID"]

    for params in ({}, {"purpose": "download"}, {"purpose": "research", "profile": "research"}):
        r = server.get(f"/gdpr/studies/{study}/archive", params=params)
        assert r.status_code == 403, (params, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
        assert "restricted (Art. 18)" in r.json()["error"] and "care" in r.json()["error"]
    assert server.get(f"/gdpr/series/{series}/archive", params={"purpose": "teaching"}).status_code == 403
    assert server.get(f"/gdpr/instances/{restricted[0]}/file").status_code == 403
    r = server.get(f"/gdpr/studies/{objected_study}/archive", params={"purpose": "research"})
    assert r.status_code == 403 and "objected to this processing (Art. 21)" in r.json()["error"], r.text

    r = server.get(f"/gdpr/studies/{study}/archive", params={"purpose": "care"})
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".dcm")]) == 2
    assert server.get(f"/gdpr/instances/{restricted[0]}/file", params={"purpose": "care"}).status_code == 200
    assert server.get(f"/gdpr/studies/{other_study}/archive", params={"purpose": "research"}).status_code == 200
    assert server.get(f"/gdpr/studies/{study}/archive", params={"purpose": "Research; DROP"}).status_code == 400

    # The registry is read on every download: lifting the restriction takes effect at once.
    consents.write_text(json.dumps({"restrictions": [
        {"patient_id": "RESTRICTED-1", "issuer": "", "kind": "restriction", "lifted_at": "2026-01-01T00:00:00"}]}))
    assert server.get(f"/gdpr/studies/{study}/archive").status_code == 200

    refused = [r for r in server.audit_records if r["event"] == "download.refused"]
    assert [(r["resource"], r["purpose"]) for r in refused if "purpose" in r] == [
        (study, "download"), (study, "download"), (study, "research"), (series, "teaching"),
        (restricted[0], "download"), (objected_study, "research")]
    assert all("Art." in r["reason"] and r["user"] == server.username for r in refused if "purpose" in r)
    sent = [(r["resource"], r["purpose"]) for r in server.audit_records if r["event"] == "download"]
    assert sent == [(study, "care"), (restricted[0], "care"), (other_study, "research"), (study, "download")]


def test_unreachable_consent_service_refuses_downloads_with_503(orthanc_factory):
    from orthanc_server import free_port

    server = orthanc_factory(gdpr={"ConsentServiceUrl": f"http://127.0.0.1:{free_port()}"})
    ids = [server.upload(f) for f in make_ct_study(1, series=1)]
    study = server.get_json(f"/instances/{ids[0]}/study")["ID"]
    for path, params in ((f"/gdpr/studies/{study}/archive", {}), (f"/gdpr/studies/{study}/archive", {"purpose": "care"}),
                         (f"/gdpr/instances/{ids[0]}/file", {"purpose": "research"})):
        r = server.get(path, params=params)
        assert r.status_code == 503, (path, params, r.text)
        assert "consent source unavailable" in r.json()["error"]
    refused = [r for r in server.audit_records if r["event"] == "download.refused"]
    assert len(refused) == 3 and all("unavailable" in r["reason"] for r in refused)
    assert not [r for r in server.audit_records if r["event"] == "download"]
    assert server.get("/gdpr/studies/does-not-exist/archive").status_code == 404


def test_export_filter_lets_only_the_workers_own_token_through_and_only_to_read_files():
    from types import SimpleNamespace

    from orthanc_gdpr.deid.parallel import Source
    from orthanc_gdpr.runtime import Runtime

    token = "Bearer plugin-generated-token"
    rt = SimpleNamespace(settings=SimpleNamespace(restrict_identified_export=True, identified_export_users=("admin",)),
                         pool=SimpleNamespace(source=Source("http://127.0.0.1:8042", token)))
    rt.is_own_request = lambda a: Runtime.is_own_request(rt, a)
    allowed = lambda uri, user="", auth="": Runtime.may_export_identified(rt, uri, user, auth)  # noqa: E731
    assert allowed("/instances/abc/file", auth=token)
    assert not allowed("/instances/abc/file")
    assert not allowed("/instances/abc/file", auth=token + "x")
    assert not allowed("/instances/abc/file", auth="Bearer plugin-generated-toke")
    assert not allowed("/instances/abc/file", user="viewer", auth="Basic dmlld2VyOnM=")
    assert not allowed("/studies/abc/archive", auth=token)  # the token opens the workers' route only
    assert not allowed("/instances/abc/export", auth=token)
    assert allowed("/studies/abc/archive", user="admin")
    assert allowed("/studies/abc")  # browsing is not filtered
    assert repr(rt.pool.source).count("plugin-generated-token") == 0  # never logged
    rt.pool = None  # no worker source: no token passes
    assert not allowed("/instances/abc/file", auth=token)


def test_data_without_a_patient_id_is_refused_with_a_4xx_naming_it(orthanc_factory, tmp_path):
    """No PatientID: the consent registry cannot answer, ever. Downloads and routing by hand get a
    422 naming PatientID (not a 503 "try again later"); an auto-routed job is refused, not retried."""
    from orthanc_server import write_rules
    from test_routing import NEVER, job_in, rule

    consents = tmp_path / "consents.json"
    consents.write_text(json.dumps({"consents": [], "restrictions": []}))
    rules = write_rules(tmp_path / "rules.json",
                        rule("ct-to-peer", {"type": "peer", "name": "peer"}),
                        rule("manual", {"type": "peer", "name": "peer"}, match=NEVER))
    peer = orthanc_factory(plugin=False)
    server = orthanc_factory(gdpr={"ConsentFile": str(consents), "RoutingRules": str(rules)},
                             peers={"peer": peer.as_peer()}, stable_age=1)
    ids = [server.upload(f) for f in make_ct_study(2, series=1, patient_id="")]
    study = server.get_json(f"/instances/{ids[0]}/study")["ID"]
    for path in (f"/gdpr/studies/{study}/archive", f"/gdpr/instances/{ids[0]}/file"):
        r = server.get(path)
        assert r.status_code == 422, (path, r.text)
        assert "PatientID (0010,0020)" in r.json()["error"], r.text
    r = server.post("/gdpr/route", json={"level": "study", "id": study, "rule": "manual"})
    assert r.status_code == 422 and "PatientID (0010,0020)" in r.json()["error"], r.text
    auto = job_in(server, ("refused", "failed", "done"), resource=study)
    assert auto["status"] == "refused" and auto["attempts"] <= 1, auto
    assert not peer.get_json("/instances")
    refused = [r for r in server.audit_records if r["event"] in ("download.refused", "route.refused")]
    assert len(refused) >= 4 and all("PatientID" in r["reason"] for r in refused), refused
