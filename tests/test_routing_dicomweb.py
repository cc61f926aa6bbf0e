"""Routing to a DICOMweb destination: STOW-RS into a real Orthanc with Debian's DICOMweb plugin."""

from __future__ import annotations

import io

import pydicom

from orthanc_server import DICOMWEB_PLUGIN, make_ct_study, wait_for, write_rules
from test_routing import (PHI_STRINGS, assert_no_phi, job_in, jobs, local_outputs, original_uids, rule,
                          study_of, upload_all)


def test_stable_study_is_stored_deidentified_by_stow_rs(orthanc_factory, tmp_path):
    receiver = orthanc_factory(plugin=False, extra={"Plugins": [DICOMWEB_PLUGIN],
                                                   "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}})
    password_file = tmp_path / "receiver.password"
    password_file.write_text(receiver.password + "\n")
    destination = {"type": "dicomweb", "url": receiver.url + "/dicom-web", "username": receiver.username,
                   "password_file": str(password_file)}
    rules = write_rules(tmp_path / "rules.json", rule("ct-by-stow", destination))
    source = orthanc_factory(stable_age=1, gdpr={"RoutingRules": str(rules)})

    files = make_ct_study(3)
    study = study_of(source, upload_all(source, files)[0])
    job = job_in(source, ("done", "failed"), resource=study)
    assert (job["status"], job["sent"]) == ("done", 3), job

    stored = receiver.get_json("/instances")
    assert len(stored) == 3
    forbidden = set(PHI_STRINGS) | original_uids(files)
    for instance in stored:
        raw = receiver.get(f"/instances/{instance}/file").content
        assert_no_phi(raw, forbidden, f"STOW-RS instance {instance}")
        assert pydicom.dcmread(io.BytesIO(raw)).PatientIdentityRemoved == "YES"
    expected = set(local_outputs(source, "research", files))
    assert {receiver.get_json(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in stored} == expected
    assert any(r["event"] == "route.done" and r["destination"].startswith("dicomweb:") for r in source.audit_records)


def test_dicomweb_destination_with_wrong_password_is_retried_not_sent_anyway(orthanc_factory, tmp_path):
    receiver = orthanc_factory(plugin=False, extra={"Plugins": [DICOMWEB_PLUGIN],
                                                   "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}})
    password_file = tmp_path / "wrong.password"
    password_file.write_text("not-the-password\n")
    destination = {"type": "dicomweb", "url": receiver.url + "/dicom-web", "username": receiver.username,
                   "password_file": str(password_file)}
    rules = write_rules(tmp_path / "rules.json", rule("ct-by-stow", destination))
    source = orthanc_factory(stable_age=1, gdpr={"RoutingRules": str(rules), "Retry": {"FirstDelaySeconds": 1}})

    study = study_of(source, upload_all(source, make_ct_study(2))[0])
    job = wait_for(lambda: next((j for j in jobs(source) if j["resource"] == study and j["attempts"] >= 2), None),
                   30, message="a second attempt")
    assert job["status"] in ("pending", "running") and "HTTP 401" in job["error"], job
    assert receiver.get_json("/instances") == []
