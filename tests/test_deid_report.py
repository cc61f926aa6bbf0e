"""The per-run JSON report: what happened to each attribute and why, residual risk, no identifiers."""

from __future__ import annotations

import json

from corpus import corpus_files, make_instance, quiet_pydicom_in_test, sensitive_values, to_bytes  # noqa: F401
from orthanc_gdpr.deid import Deidentifier, Keyring, deidentify_tree, load_profile, read

KEY = b"report-test-key-0123456789abcdef"


def instance_report(profile: str):
    ds = make_instance(patient_name="Reportman^Rachel", patient_id="RR-31337")
    ds.StudyDescription = "CT of Reportman RR-31337"
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "secret")
    return Deidentifier(load_profile(profile), Keyring(KEY)).deidentify(ds).to_dict()


def test_each_action_names_its_rule():
    report = instance_report("research")
    actions = {a["attribute"]: (a["action"], a["rule"]) for a in report["actions"]}
    assert actions["PatientName"] == ("D", "keyed pseudonym")
    assert actions["AccessionNumber"][0] in "ZD" and "E.1-1 basic" in actions["AccessionNumber"][1]
    assert actions["StudyInstanceUID"] == ("U", "U (E.1-1 basic)")
    assert actions["StudyDescription"][0] == "C" and "Clean Descriptors" in actions["StudyDescription"][1]
    assert actions["PatientSex"][0] == "K" and "Retain Patient Characteristics" in actions["PatientSex"][1]
    assert actions["StudyDate"][0] == "C"  # shifted (Modified Dates)
    assert actions["(0011,1001)"][0] == "X"
    assert report["counts"]["K"] >= 1 and report["counts"]["X"] >= 1
    assert report["safety_net"] and report["patient_pseudonym"].startswith("RES")


def test_residual_risk_summary():
    risk = instance_report("research")["residual_risk"]
    assert "StudyDate" in risk["dates (shifted)"]
    assert "PatientSex" in risk["retained by Retain Patient Characteristics"]
    assert instance_report("basic")["residual_risk"] == {}


def test_run_report_holds_no_identifying_values(tmp_path):
    inputs = tmp_path / "Doe_John_PID4711"  # identifying folder names must not reach the report
    inputs.mkdir()
    sample = [p for p in corpus_files() if p.suffix == ".dcm"][:60]
    for i, path in enumerate(sample):
        (inputs / f"{i:03d}_{path.name}").write_bytes(path.read_bytes())
    (inputs / "Doe_John.dcm").write_bytes(to_bytes(make_instance())[:500])  # held back
    profile = load_profile("research")
    run = deidentify_tree([inputs], tmp_path / "out", profile, KEY, workers=1)
    text = json.dumps(run.to_dict())
    assert run.held_back and "Doe_John" not in text and "PID4711" not in text
    identifying = set()
    for path in sample:
        identifying |= {v for v in sensitive_values(read(path), profile) if not v.startswith(("1.", "2."))}
    assert len(identifying) > 100
    assert sorted(v for v in identifying if v in text) == []
    summary = run.to_dict()["summary"]
    assert summary["instances_written"] == len(sample) and summary["instances_held_back"] == 1
    assert summary["residual_risk"] and summary["actions"]["X"] > 0
