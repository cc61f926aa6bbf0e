"""Routing against real servers: Orthanc (with the plugin) -> DCMTK storescp / another Orthanc.

Every test starts real processes (see ``orthanc_server.py``); nothing of Orthanc is mocked.
"""
from __future__ import annotations

import io
import json
import shutil
import statistics
import time
from pathlib import Path

import pydicom
import pytest
import requests

from orthanc_gdpr.deid import Deidentifier, Keyring, deidentify_bytes, load_key, load_profile
from orthanc_gdpr.deid.profile import DEFAULT_PROFILES_DIR
from orthanc_server import (
    PHI_ID,
    PHI_NAME,
    OrthancServer,
    StoreScp,
    free_port,
    make_ct_study,
    stop_all,
    wait_for,
    write_rules,
)

PHI_STRINGS = [PHI_NAME, *PHI_NAME.split("^"), PHI_ID]


def rule(name: str, destination: dict, *, match: dict | None = None, profile: str = "research",
         purpose: str = "research", lawful_basis: str = "research") -> dict:
    return {"name": name, "match": match if match is not None else {"Modality": ["CT"]},
            "destination": destination, "profile": profile, "purpose": purpose, "lawful_basis": lawful_basis}


NEVER = {"Modality": ["NO-SUCH-MODALITY"]}  # a rule only used by hand (POST /gdpr/route)


def original_uids(files: list[bytes]) -> set[str]:
    uids = set()
    for data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        uids |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID}
    return uids


def assert_no_phi(data: bytes, forbidden: set[str], where: str) -> None:
    for s in forbidden:
        assert s.encode() not in data, f"{where}: original value {s!r} found in the bytes"


def local_outputs(server: OrthancServer, profile: str, files: list[bytes]) -> dict[str, bytes]:
    """What the engine produces locally with the server's key: {de-identified SOP UID: bytes}."""
    engine = Deidentifier(load_profile(profile), Keyring(load_key(server.key_file)))
    out = {}
    for data in files:
        ds, dicom, _ = deidentify_bytes(engine, data)
        out[str(ds.SOPInstanceUID)] = dicom
    return out


def upload_all(server: OrthancServer, files: list[bytes]) -> list[str]:
    return [server.upload(f) for f in files]


def study_of(server: OrthancServer, instance_id: str) -> str:
    return server.get_json(f"/instances/{instance_id}/study")["ID"]


def jobs(server: OrthancServer, status: str | None = None) -> list[dict]:
    return server.get_json("/gdpr/jobs" + (f"?status={status}" if status else ""))


def job_in(server: OrthancServer, statuses: tuple[str, ...], timeout: float = 30, **match) -> dict:
    def find():
        for j in jobs(server):
            if j["status"] in statuses and all(j.get(k) == v for k, v in match.items()):
                return j
        return None
    return wait_for(find, timeout, message=f"a job {match} in {statuses}")


def one_more_instance(like: bytes) -> bytes:
    """A new instance (fresh SOP UID) in the same study and series as ``like``."""
    ds = pydicom.dcmread(io.BytesIO(make_ct_study(1)[0]))
    first = pydicom.dcmread(io.BytesIO(like))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def sop_uids(paths: list[Path]) -> list[str]:
    return [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]


@pytest.fixture
def scp(tmp_path: Path):
    """A storescp whose port is reserved but which is NOT started (tests start/stop it)."""
    s = StoreScp(tmp_path / "scp")
    s.reserve_port()
    try:
        yield s
    finally:
        s.stop()


# --------------------------------------------------------------------------- 1. DICOM destination
def test_stable_ct_study_arrives_deidentified_at_dicom_destination(orthanc_factory, storescp, tmp_path):
    rules = write_rules(tmp_path / "rules.json", rule("ct-research", {"type": "modality", "name": "scp"}))
    src = orthanc_factory(modalities={"scp": storescp.as_modality()}, stable_age=1,
                          gdpr={"RoutingRules": str(rules)})
    files = make_ct_study(4)
    ids = upload_all(src, files)
    study = study_of(src, ids[0])

    job = job_in(src, ("done", "failed", "refused"), resource=study)
    assert job["status"] == "done", job
    assert (job["rule"], job["level"], job["requested_by"]) == ("ct-research", "studies", "auto-routing")
    assert (job["instances"], job["sent"], job["held_back"]) == (4, 4, 0)

    received = storescp.wait_for_files(4)
    assert len(received) == 4
    forbidden = set(PHI_STRINGS) | original_uids(files)
    expected = local_outputs(src, "research", files)
    for path in received:
        raw = path.read_bytes()
        assert_no_phi(raw, forbidden, path.name)
        ds = pydicom.dcmread(path)
        assert str(ds.PatientName) not in ("", PHI_NAME) and ds.PatientID not in ("", PHI_ID)
        assert ds.PatientIdentityRemoved == "YES"
        # Same key + same profile => exactly what the engine produces locally (UIDs included).
        assert ds.SOPInstanceUID in expected
        local = pydicom.dcmread(io.BytesIO(expected[ds.SOPInstanceUID]))
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "PatientID", "PatientName"):
            assert ds[kw].value == local[kw].value, kw
        assert ds == local  # every data element identical (storescp writes its own file meta)
    assert len({pydicom.dcmread(p).PatientID for p in received}) == 1  # one patient, one pseudonym

    # The source still holds the originals, untouched, and no de-identified copies.
    assert sorted(src.get_json("/instances")) == sorted(ids)
    for iid, data in zip(ids, files):
        assert src.get(f"/instances/{iid}/file").content == data

    records = src.audit_records
    done = [r for r in records if r["event"] == "route.done" and r["job"] == job["id"]]
    assert len(done) == 1
    assert done[0]["destination"] == "modality:scp" and done[0]["profile"] == "research"
    assert (done[0]["purpose"], done[0]["lawful_basis"], done[0]["sent"]) == ("research", "research", 4)
    assert done[0]["classification"] == "pseudonymised"
    assert_no_phi((src.state_dir / "audit.jsonl").read_bytes(), forbidden, "audit log")


# --------------------------------------------------------------------------- 2. Orthanc peer
def test_peer_receives_only_deidentified_studies_by_rule_and_by_hand(orthanc_factory, tmp_path):
    peer = orthanc_factory(plugin=False)
    rules = write_rules(tmp_path / "rules.json",
                        rule("ct-to-peer", {"type": "peer", "name": "research-peer"}),
                        rule("manual-to-peer", {"type": "peer", "name": "research-peer"}, match=NEVER,
                             profile="basic"))
    src = orthanc_factory(peers={"research-peer": peer.as_peer()}, stable_age=1, gdpr={"RoutingRules": str(rules)})

    ct = make_ct_study(3)
    mr = make_ct_study(4, modality="MR", series=2)  # no rule matches MR: routed by hand only
    ct_ids, mr_ids = upload_all(src, ct), upload_all(src, mr)
    ct_study, mr_study = study_of(src, ct_ids[0]), study_of(src, mr_ids[0])
    auto = job_in(src, ("done", "failed"), resource=ct_study)
    assert auto["status"] == "done" and auto["sent"] == 3, auto
    wait_for(lambda: len(peer.get_json("/instances")) == 3, 15, message="3 instances on the peer")

    # By hand: one series of the MR study, then the whole MR study (the series is not sent twice).
    series = src.get_json(f"/studies/{mr_study}")["Series"]
    first = src.post_json("/gdpr/route", {"level": "series", "id": series[0], "rule": "manual-to-peer"})
    assert first["requested_by"] == src.username and first["level"] == "series"
    j = job_in(src, ("done", "failed"), id=first["id"])
    assert j["status"] == "done" and j["sent"] == 2, j
    whole = src.post_json("/gdpr/route", {"level": "study", "id": mr_study, "rule": "manual-to-peer"})
    j = job_in(src, ("done", "failed"), id=whole["id"])
    assert (j["status"], j["sent"], j["already_delivered"]) == ("done", 2, 2), j

    # Bad requests are refused clearly.
    assert src.post("/gdpr/route", json={"level": "study", "id": mr_study, "rule": "nope"}).status_code == 400
    assert src.post("/gdpr/route", json={"level": "study", "id": "missing", "rule": "manual-to-peer"}).status_code == 404
    assert src.get("/gdpr/route").status_code == 405

    # The peer holds de-identified data only: 2 studies, 7 instances, no original value anywhere.
    forbidden = set(PHI_STRINGS) | original_uids(ct + mr)
    peer_instances = peer.get_json("/instances")
    assert len(peer_instances) == 7
    assert len(peer.get_json("/studies")) == 2
    for iid in peer_instances:
        raw = peer.get(f"/instances/{iid}/file").content
        assert_no_phi(raw, forbidden, f"peer instance {iid}")
        assert pydicom.dcmread(io.BytesIO(raw)).PatientIdentityRemoved == "YES"
    # ... and it is what the engine makes locally (CT with research, MR with basic).
    expected = set(local_outputs(src, "research", ct)) | set(local_outputs(src, "basic", mr))
    assert {peer.get_json(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in peer_instances} == expected
    # The source keeps only its originals.
    assert len(src.get_json("/instances")) == 7
    assert any(r["event"] == "route.requested" and r["user"] == src.username for r in src.audit_records)


# --------------------------------------------------------------------------- 3. retries, exactly once
def test_destination_down_job_retries_with_backoff_then_delivers_exactly_once(orthanc_factory, scp, tmp_path):
    rules = write_rules(tmp_path / "rules.json", rule("ct", {"type": "modality", "name": "scp"}),
                        rule("manual", {"type": "modality", "name": "scp"}, match=NEVER))
    src = orthanc_factory(modalities={"scp": scp.as_modality()}, stable_age=1,
                          gdpr={"RoutingRules": str(rules),
                                "Retry": {"FirstDelaySeconds": 1, "MaxDelaySeconds": 2, "MaxAttempts": 50}})
    files = make_ct_study(3)
    ids = upload_all(src, files)
    study = study_of(src, ids[0])

    # storescp is down: the job goes back to pending, with growing delays, and nothing is lost.
    waiting = wait_for(lambda: [j for j in jobs(src) if j["resource"] == study and j["attempts"] >= 3
                                and j["status"] == "pending"], 20, message="3 failed attempts")[0]
    assert "scp" in waiting["error"] and waiting["sent"] == 0, waiting
    retries = [r for r in src.audit_records if r["event"] == "route.retry" and r["job"] == waiting["id"]]
    assert [r["retry_in_seconds"] for r in retries[:3]] == [1, 2, 2]  # backoff, capped at MaxDelay

    scp.start()
    done = job_in(src, ("done",), id=waiting["id"])
    assert done["sent"] == 3
    assert sorted(sop_uids(scp.wait_for_files(3))) == sorted(local_outputs(src, "research", files))

    # The study becomes stable again (one more instance): only the new instance is sent.
    src.upload(one_more_instance(files[0]))
    again = wait_for(lambda: [j for j in jobs(src, "done") if j["resource"] == study and j["id"] != done["id"]],
                     15, message="the second auto-routing job")[0]
    assert (again["sent"], again["already_delivered"]) == (1, 3), again

    # Routing the same study by hand, and retrying the finished job, send nothing again.
    by_hand = src.post_json("/gdpr/route", {"level": "study", "id": study, "rule": "ct"})
    by_hand = job_in(src, ("done",), id=by_hand["id"])
    assert (by_hand["sent"], by_hand["already_delivered"]) == (0, 4)
    assert src.post(f"/gdpr/jobs/{done['id']}/retry").status_code == 409
    time.sleep(1.5)
    received = scp.wait_for_files(4)
    uids = sop_uids(received)
    assert len(received) == 4 and len(set(uids)) == 4, uids


# --------------------------------------------------------------------------- 4. restart
def test_pending_job_survives_orthanc_restart_and_is_delivered_after(orthanc_factory, scp, tmp_path):
    rules = write_rules(tmp_path / "rules.json", rule("ct", {"type": "modality", "name": "scp"}))
    src = orthanc_factory(modalities={"scp": scp.as_modality()}, stable_age=1,
                          gdpr={"RoutingRules": str(rules),
                                "Retry": {"FirstDelaySeconds": 1, "MaxDelaySeconds": 1, "MaxAttempts": 100}})
    files = make_ct_study(3)
    study = study_of(src, upload_all(src, files)[0])
    pending = job_in(src, ("pending",), resource=study)
    wait_for(lambda: src.get_json(f"/gdpr/jobs/{pending['id']}")["attempts"] >= 1, 10, message="an attempt")

    src.stop()
    assert (src.state_dir / "routing-queue.sqlite").exists()
    scp.start()
    src.start()
    done = job_in(src, ("done",), id=pending["id"])
    assert done["sent"] == 3 and done["resource"] == study
    assert len(scp.wait_for_files(3)) == 3
    assert len([j for j in jobs(src) if j["resource"] == study]) == 1  # no duplicate job after restart


# --------------------------------------------------------------------------- 5. fail closed
def undecodable_pixels(data: bytes) -> bytes:
    """``data`` claiming JPEG Baseline pixel data that is no JPEG: Orthanc stores it as it is, and
    Clean Pixel Data cannot decode it."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8 not a JPEG \xff\xd9"])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_instance_the_engine_holds_back_is_not_sent_and_job_fails_listing_it(orthanc_factory, storescp, tmp_path):
    profiles = tmp_path / "profiles"
    shutil.copytree(DEFAULT_PROFILES_DIR, profiles)
    research = json.loads((DEFAULT_PROFILES_DIR / "research.json").read_text())
    research["options"]["clean-pixel-data"] = "Burned-in text is masked before images leave."
    (profiles / "research.json").write_text(json.dumps(research))
    rules = write_rules(tmp_path / "rules.json", rule("ct", {"type": "modality", "name": "scp"}))
    src = orthanc_factory(modalities={"scp": storescp.as_modality()}, stable_age=1,
                          gdpr={"RoutingRules": str(rules), "ProfilesDirectory": str(profiles)})
    files = make_ct_study(3, series=1)
    # An instance Orthanc stores but the engine refuses. (Sequences nested deeper than the engine's
    # limit of 64 cannot be used: Orthanc 1.10.1 already drops the upload at ~50 levels.)
    held = undecodable_pixels(one_more_instance(files[0]))
    ids = upload_all(src, files)
    held_id = src.upload(held)
    study = study_of(src, ids[0])

    job = job_in(src, ("done", "failed"), resource=study)
    assert job["status"] == "failed", job
    assert (job["instances"], job["sent"], job["held_back"]) == (4, 3, 1)
    assert [h["instance"] for h in job["held_back_instances"]] == [held_id]
    assert "pixel data cannot be cleaned" in job["held_back_instances"][0]["error"]
    assert "could not be de-identified" in job["error"]
    received = storescp.wait_for_files(3)
    assert sorted(sop_uids(received)) == sorted(local_outputs(src, "research", files))

    # Retrying the failed job holds the same instance back again and re-sends nothing.
    assert src.post(f"/gdpr/jobs/{job['id']}/retry").status_code == 200
    again = wait_for(lambda: (j := src.get_json(f"/gdpr/jobs/{job['id']}"))["status"] == "failed"
                     and j["attempts"] == 1 and j["updated"] > job["updated"] and j, 15, message="the retry")
    assert (again["sent"], again["already_delivered"], again["held_back"]) == (0, 3, 1)
    time.sleep(0.5)
    assert len(storescp.received_files()) == 3
    failed = [r for r in src.audit_records if r["event"] == "route.failed"]
    assert failed and failed[-1]["held_back"] == 1 and "held_back_instances" not in failed[-1]


# --------------------------------------------------------------------------- 6. consent gate
def test_consent_gate_refuses_without_consent_allows_after_and_restriction_blocks_research_only(
        orthanc_factory, storescp, tmp_path):
    consents = tmp_path / "consents.json"  # does not exist yet: nobody consented
    dest = {"type": "modality", "name": "scp"}
    rules = write_rules(tmp_path / "rules.json",
                        rule("research-consent", dest, match=NEVER, lawful_basis="consent"),
                        rule("research", dest, match=NEVER, profile="basic"),
                        rule("care", dest, match=NEVER, profile="basic", purpose="care", lawful_basis="care"))
    src = orthanc_factory(modalities={"scp": storescp.as_modality()},
                          gdpr={"RoutingRules": str(rules), "ConsentFile": str(consents)})
    p1 = make_ct_study(2, patient_id="CONSENT-P1", series=1)
    p2 = make_ct_study(2, patient_id="RESTRICT-P2", series=1)
    s1, s2 = study_of(src, upload_all(src, p1)[0]), study_of(src, upload_all(src, p2)[0])

    def route(study: str, rule_name: str) -> dict:
        job = src.post_json("/gdpr/route", {"level": "study", "id": study, "rule": rule_name})
        return job_in(src, ("done", "failed", "refused"), id=job["id"])

    refused = route(s1, "research-consent")
    assert refused["status"] == "refused" and "no recorded consent" in refused["reason"], refused
    time.sleep(0.5)
    assert storescp.received_files() == []

    consents.write_text(json.dumps({
        "consents": [{"patient_id": "CONSENT-P1", "issuer": "", "purpose": "research", "expires": "2999-01-01"}],
        "restrictions": [{"patient_id": "RESTRICT-P2", "issuer": "", "kind": "restriction"}]}))
    assert src.post(f"/gdpr/jobs/{refused['id']}/retry").status_code == 200
    allowed = job_in(src, ("done", "failed", "refused"), id=refused["id"])
    assert allowed["status"] == "done" and allowed["sent"] == 2, allowed
    storescp.wait_for_files(2)

    blocked = route(s2, "research")
    assert blocked["status"] == "refused" and "restricted" in blocked["reason"], blocked
    care = route(s2, "care")
    assert care["status"] == "done" and care["sent"] == 2, care
    assert len(storescp.wait_for_files(4)) == 4
    events = [(r["event"], r.get("rule")) for r in src.audit_records if r["event"].startswith("route.")]
    assert ("route.refused", "research-consent") in events and ("route.refused", "research") in events
    assert_no_phi((src.state_dir / "audit.jsonl").read_bytes(), {"CONSENT-P1", "RESTRICT-P2"}, "audit log")


def test_unreachable_consent_service_keeps_job_pending_never_sent(orthanc_factory, storescp, tmp_path):
    rules = write_rules(tmp_path / "rules.json",
                        rule("consent", {"type": "modality", "name": "scp"}, match=NEVER, lawful_basis="consent"))
    src = orthanc_factory(modalities={"scp": storescp.as_modality()},
                          gdpr={"RoutingRules": str(rules), "ConsentServiceUrl": f"http://127.0.0.1:{free_port()}",
                                "Retry": {"FirstDelaySeconds": 1, "MaxDelaySeconds": 1, "MaxAttempts": 100}})
    study = study_of(src, upload_all(src, make_ct_study(2, series=1))[0])
    job = src.post_json("/gdpr/route", {"level": "study", "id": study, "rule": "consent"})
    waiting = wait_for(lambda: (j := src.get_json(f"/gdpr/jobs/{job['id']}"))["attempts"] >= 3 and j,
                       15, message="3 attempts")
    assert waiting["status"] in ("pending", "running"), waiting
    assert "consent source unavailable" in src.get_json(f"/gdpr/jobs/{job['id']}")["error"]
    assert storescp.received_files() == []
    assert not [r for r in src.audit_records if r["event"] in ("route.done", "route.failed")]

    # A user can cancel the waiting job; it then stays cancelled and nothing is sent.
    cancelled = src.post(f"/gdpr/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert src.post(f"/gdpr/jobs/{job['id']}/cancel").status_code == 409
    assert src.get("/gdpr/jobs/999999").status_code == 404
    time.sleep(1.5)
    assert src.get_json(f"/gdpr/jobs/{job['id']}")["status"] == "cancelled"
    assert [j["id"] for j in jobs(src, "cancelled")] == [job["id"]]
    assert storescp.received_files() == []


# --------------------------------------------------------------------------- latency while routing
def test_rest_api_stays_responsive_while_a_100_instance_study_is_routed(orthanc_factory, storescp, tmp_path):
    rules = write_rules(tmp_path / "rules.json", rule("ct", {"type": "modality", "name": "scp"}))
    src = orthanc_factory(modalities={"scp": storescp.as_modality()}, stable_age=1,
                          gdpr={"RoutingRules": str(rules)})
    files = make_ct_study(100, series=4)
    study = study_of(src, upload_all(src, files)[0])
    job_in(src, ("pending", "running", "done"), resource=study, timeout=15)
    latencies, errors = [], 0
    session = requests.Session()
    session.auth = src.session.auth
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        start = time.perf_counter()
        r = session.get(src.url + "/system", timeout=30)
        latencies.append(time.perf_counter() - start)
        errors += r.status_code != 200
        state = src.get_json(f"/gdpr/jobs?status=done")
        if any(j["resource"] == study for j in state):
            break
        time.sleep(0.02)
    routing_seconds = time.monotonic() - t0
    job = job_in(src, ("done",), resource=study)
    assert job["sent"] == 100 and errors == 0
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\nGET /system while routing 100 instances ({routing_seconds:.1f} s, {len(latencies)} requests): "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    assert len(storescp.wait_for_files(100)) == 100
