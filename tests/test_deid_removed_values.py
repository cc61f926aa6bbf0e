"""No removed value survives: what the profile removes, empties or replaces is hunted in every
kept value at every depth (code meanings and code values, CS elements, kept private elements).
A kept value equal to a removed one gets the removed attribute's action; inside longer text it
is cut out. The report names the attribute and the rule, never the value."""
from __future__ import annotations

import io
import json

import pydicom
from pydicom.dataset import Dataset

from corpus import make_instance, quiet_pydicom_in_test, to_bytes  # noqa: F401
from orthanc_gdpr.deid import Deidentifier, Keyring, deidentify_bytes, load_profile
from orthanc_gdpr.deid.removed import MIN_LENGTH

KEY = b"r" * 32
STUDY = "Knee arthroscopy left side"
REQUESTED = "MRI of the left knee"
PERFORMED = "Left knee MRI with contrast"
SERIES = "Sagittal PD fat sat"
PATIENT_ID = "PID4711"


def code(meaning: str, value: str = "KNEE01") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99LOCAL", meaning
    return item


def planted() -> Dataset:
    ds = make_instance(patient_id=PATIENT_ID)
    ds.StudyDescription = STUDY  # X in the basic profile
    ds.RequestedProcedureDescription = REQUESTED  # Z
    ds.PerformedProcedureStepDescription = PERFORMED  # X
    ds.SeriesDescription = SERIES  # X
    ds.ProcedureCodeSequence = [code(STUDY)]
    ds.RequestedProcedureCodeSequence = [code(REQUESTED.upper())]  # case does not hide it
    ds.ScheduledProtocolCodeSequence = [code(SERIES, value="ROUTINE")]
    ds.PerformedProtocolCodeSequence = [code(f"Protocol: {PERFORMED} 3T")]
    ds.ScanOptions = PATIENT_ID  # a coded (CS) element
    ds.BodyPartExamined = "KNEE"
    ds.ProcedureCodeSequence[0].ModifierCodeSequence = [code("Left", value=PATIENT_ID)]  # two levels down
    return ds


def run(ds: Dataset, profile: str = "basic") -> tuple[bytes, dict]:
    _, out, report = deidentify_bytes(Deidentifier(load_profile(profile), Keyring(KEY)), to_bytes(ds))
    return out, report.to_dict()


def test_removed_descriptions_do_not_survive_as_code_meanings():
    out, report = run(planted())
    for value in (STUDY, REQUESTED, PERFORMED, SERIES, PATIENT_ID):
        assert value.upper().encode() not in out.upper(), value
    ds = pydicom.dcmread(io.BytesIO(out))
    assert "CodeMeaning" not in ds.ProcedureCodeSequence[0]  # equal to StudyDescription: X, as it was
    assert ds.RequestedProcedureCodeSequence[0].CodeMeaning in ("", None)  # equal to a Z value: emptied
    assert "CodeMeaning" not in ds.ScheduledProtocolCodeSequence[0]
    assert ds.PerformedProtocolCodeSequence[0].CodeMeaning == "Protocol: 3T"  # cut out of longer text
    assert ds.BodyPartExamined == "KNEE" and ds.ProcedureCodeSequence[0].CodeValue == "KNEE01"  # the rest stays
    actions = {(a["attribute"], a["action"], a["rule"]) for a in report["actions"]}
    assert ("ProcedureCodeSequence[0]/CodeMeaning", "X",
            "safety net: the value removed from StudyDescription (X (E.1-1 basic))") in actions, actions
    assert any(a[0] == "PerformedProtocolCodeSequence[0]/CodeMeaning" and "PerformedProcedureStepDescription" in a[2]
               for a in actions)
    hits = {h["attribute"] for h in report["safety_net"]}
    assert {"ProcedureCodeSequence[0]/CodeMeaning", "RequestedProcedureCodeSequence[0]/CodeMeaning",
            "ScheduledProtocolCodeSequence[0]/CodeMeaning", "PerformedProtocolCodeSequence[0]/CodeMeaning",
            "ScanOptions", "ProcedureCodeSequence[0]/ModifierCodeSequence[0]/CodeValue"} <= hits
    text = json.dumps(report)
    for value in (STUDY, REQUESTED, PERFORMED, SERIES, PATIENT_ID):
        assert value not in text  # attribute and rule only, never the value


def test_patient_id_in_a_kept_private_element_is_removed():
    ds = planted()
    block = ds.private_block(0x01E1, "ELSCINT1", create=True)  # (01E1,xx26): safe (E.3.10-1), CS
    block.add_new(0x26, "CS", PATIENT_ID)
    out, report = run(ds, "research")  # research keeps safe private attributes
    assert PATIENT_ID.encode() not in out
    assert any(h["attribute"].startswith("(01E1,1026)") for h in report["safety_net"]), report["safety_net"]


def test_short_and_partial_values_are_left_alone():
    ds = make_instance()
    ds.StudyDescription = "KNEE"  # shorter than the minimum: never hunted
    ds.SeriesDescription = "Sagittal"  # long enough, but only whole words match
    ds.BodyPartExamined = "KNEE"
    ds.ProcedureCodeSequence = [code("Sagittally reformatted knee", value="KNEE")]
    out, report = run(ds)
    assert len("KNEE") < MIN_LENGTH <= len("Sagittal")
    result = pydicom.dcmread(io.BytesIO(out))
    assert result.BodyPartExamined == "KNEE"
    assert result.ProcedureCodeSequence[0].CodeMeaning == "Sagittally reformatted knee"
    assert not report["safety_net"]
