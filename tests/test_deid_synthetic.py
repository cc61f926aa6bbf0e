"""Hand-built instances for what public corpora rarely contain.

Names hidden in nested sequences, private blocks (safe and unsafe), curves and overlays, file meta,
identifiers typed into kept free text (the safety net), the de-identification marks and the
per-patient date shift.
"""

from __future__ import annotations

import io
from datetime import date

import pydicom
import pytest
from pydicom.dataset import Dataset

from corpus import PROFILES, make_instance, quiet_pydicom_in_test, sequence_of, to_bytes  # noqa: F401
from orthanc_gdpr.deid import Deidentifier, Keyring, deidentify_bytes, load_profile
from orthanc_gdpr.deid.profile import parse_profile

KEY = b"synthetic-test-key-0123456789abc"
SAFE_CREATOR, SAFE_GROUP, SAFE_ELEMENT = "GEMS_PARM_01", 0x0043, 0x27  # E.3.10-1: Scan Pitch Ratio


def deidentify(ds: Dataset, profile="basic", key: bytes = KEY):
    """De-identify through bytes, as the CLI does; returns (output data set, bytes, report)."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    _, data, report = deidentify_bytes(Deidentifier(profile, Keyring(key)), to_bytes(ds))
    return pydicom.dcmread(io.BytesIO(data)), data, report


def names_everywhere() -> Dataset:
    ds = make_instance(patient_name="Wolfeschlegel^Hubert", patient_id="HW0042")
    content = Dataset()
    content.ValueType = "PNAME"
    content.PersonName = "Observerova^Olga"
    ds.ContentSequence = sequence_of(content)
    request = Dataset()
    request.ReferringPhysicianName = "Requestingham^Rudolf"
    request.RequestedProcedureDescription = "CT head"
    ds.RequestAttributesSequence = sequence_of(request)
    region = Dataset()  # an unlisted standard sequence: walked, its PatientName pseudonymised
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-A0100", "SRT", "Brain"
    region.PatientName = "Hiddenhausen^Harald"
    ds.AnatomicRegionSequence = sequence_of(region)
    block = ds.private_block(0x0029, "ACME PRIVATE SEQ", create=True)
    inner = Dataset()
    inner.PatientName = "Privatmann^Paul"
    block.add_new(0x10, "SQ", sequence_of(inner))
    return ds


@pytest.mark.parametrize("profile", PROFILES)
def test_names_nested_in_sequences_are_gone(profile):
    out, data, _ = deidentify(names_everywhere(), profile)
    for name in (b"Wolfeschlegel", b"Hubert", b"Observerova", b"Requestingham", b"Hiddenhausen", b"Privatmann"):
        assert name not in data, name
    assert "Brain" == out.AnatomicRegionSequence[0].CodeMeaning
    assert out.AnatomicRegionSequence[0].PatientName == out.PatientName  # the same pseudonym


def private_instance() -> Dataset:
    ds = make_instance()
    safe = ds.private_block(SAFE_GROUP, SAFE_CREATOR, create=True)
    safe.add_new(SAFE_ELEMENT, "SH", "1.375:1")
    safe.add_new(0x28, "LO", "unsafe neighbour")  # same block, not in E.3.10-1
    other = ds.private_block(0x0011, "ACME 1.0", create=True)
    other.add_new(0x01, "LO", "ACME secret")
    other.add_new(0x02, "OB", b"\x01" * 70_000)  # a huge private value
    return ds


def test_private_attributes_removed_without_option():
    out, data, _ = deidentify(private_instance(), "basic")
    assert not any(elem.tag.is_private for elem in out)
    assert b"ACME" not in data and b"1.375:1" not in data


def test_retain_safe_private_keeps_exactly_the_safe_attribute_and_its_creator():
    out, _, report = deidentify(private_instance(), load_profile("basic").with_options(["retain-safe-private"]))
    private = {int(elem.tag): elem.value for elem in out if elem.tag.is_private}
    block = SAFE_GROUP << 16 | 0x10 << 8
    assert private == {SAFE_GROUP << 16 | 0x0010: SAFE_CREATOR, block | SAFE_ELEMENT: "1.375:1"}
    kept = [a for a in report.actions if a[1] == "K" and "E.3.10-1" in a[2]]
    assert len(kept) == 1


def test_curves_and_overlay_groups_go_entirely():
    ds = make_instance()
    ds.add_new(0x50000005, "US", 2)  # Curve Dimensions
    ds.add_new(0x50003000, "OW", b"\0\1" * 8)  # Curve Data
    ds.add_new(0x60000010, "US", 4)  # Overlay Rows
    ds.add_new(0x60000011, "US", 4)  # Overlay Columns
    ds.add_new(0x60000022, "LO", "Drawn by Dr. Overlayer")  # Overlay Description
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60003000, "OW", b"\xff\x00" * 8)  # Overlay Data
    for profile in PROFILES:
        out, data, _ = deidentify(ds, profile)
        assert not [e for e in out if 0x5000 <= e.tag.group <= 0x60FF and e.tag.group < 0x7000], profile
        assert b"Overlayer" not in data


def test_file_meta_is_rewritten():
    ds = make_instance()
    out, data, _ = deidentify(ds)
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert b"SENDER_AE_X1" not in data
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != ds.SOPInstanceUID


def free_text_profile():
    return parse_profile({
        "name": "free-text",
        "options": {"clean-descriptors": "descriptions select series",
                    "retain-safe-private": "vendor parameters"},
        "overrides": [{"keyword": "ImageComments", "action": "K", "purpose": "the reader's notes"}],
    }, "test profile")


def test_safety_net_removes_the_patients_identifiers_from_kept_text():
    ds = make_instance(patient_name="Smithers^Waylon", patient_id="WS778899", birth="19610304",
                       accession="ACC5566")
    ds.ImageComments = "Waylon Smithers, WS778899, born 04.03.1961, acc ACC5566: lesion left lobe"
    ds.StudyDescription = "CT of Smithers ACC5566 thorax"
    safe = ds.private_block(SAFE_GROUP, SAFE_CREATOR, create=True)
    safe.add_new(SAFE_ELEMENT, "SH", "SMITHERS 1:1")
    out, data, report = deidentify(ds, free_text_profile())
    for token in (b"Smithers", b"SMITHERS", b"Waylon", b"WS778899", b"04.03.1961", b"ACC5566"):
        assert token not in data, token
    assert "lesion left lobe" in out.ImageComments
    assert "thorax" in out.StudyDescription
    hits = dict(report.safety_net)
    assert hits["ImageComments"] >= 4 and hits["StudyDescription"] >= 2
    assert any(path.startswith("(0043,") for path in hits)


@pytest.mark.parametrize("profile, longitudinal", [("basic", "REMOVED"), ("research", "MODIFIED"),
                                                   ("teaching", "REMOVED"), ("clinical-trial", "MODIFIED")])
def test_marks(profile, longitudinal):
    out, _, _ = deidentify(make_instance(), profile)
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == longitudinal
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes[0] == "113100"
    assert sorted(codes[1:]) == sorted(o.code for o in load_profile(profile).options)
    assert all(item.CodingSchemeDesignator == "DCM" for item in out.DeidentificationMethodCodeSequence)


def test_full_dates_option_marks_unmodified():
    out, _, _ = deidentify(make_instance(), load_profile("basic").with_options(["retain-longitudinal-full-dates"]))
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert out.StudyDate == "20200102"


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def test_date_shift_keeps_a_patients_intervals_and_differs_between_patients():
    first, _, _ = deidentify(make_instance(study_date="20200102"), "research")
    second, _, _ = deidentify(make_instance(study_date="20210315"), "research")
    assert first.StudyInstanceUID != second.StudyInstanceUID
    assert (_day(second.StudyDate) - _day(first.StudyDate)).days == (date(2021, 3, 15) - date(2020, 1, 2)).days
    assert first.StudyDate != "20200102"
    offsets = set()
    for i in range(6):
        out, _, _ = deidentify(make_instance(patient_id=f"PAT{i:05d}", study_date="20200102"), "research")
        offsets.add((_day(out.StudyDate) - date(2020, 1, 2)).days)
    assert len(offsets) >= 5 and all(-3650 <= d <= -365 for d in offsets)


def test_bad_date_is_emptied_not_a_crash():
    ds = make_instance()
    ds.add_new(0x00181012, "DA", "garbage!")  # Date of Secondary Capture (unlisted: shifted)
    ds.StudyDate = "20201340"
    out, _, _ = deidentify(ds, "research")
    assert out.DateOfSecondaryCapture in ("", None)
    assert out.StudyDate in ("", None)


def test_references_follow_the_referenced_instance():
    image = make_instance()
    report_ds = make_instance()
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    report_ds.ReferencedImageSequence = sequence_of(ref)
    new_image, _, _ = deidentify(image)
    new_report, _, _ = deidentify(report_ds)
    assert new_report.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_image.SOPInstanceUID
    assert new_report.ReferencedImageSequence[0].ReferencedSOPClassUID == image.SOPClassUID


def test_preamble_is_zeroed():
    ds = make_instance()
    ds.preamble = b"II*\0 TIFF header of Doe^John ".ljust(128, b"\0")
    _, data, _ = deidentify(ds)
    assert data[:132] == b"\0" * 128 + b"DICM"
