"""The raw-element fast path (deid/raw.py) gives exactly the engine's result.

For every corpus file and a set of synthetic instances (sequences of defined and undefined
length, private blocks, names and identifiers planted where the safety net must find them,
character sets, padding the writer would change, trailing padding, numbers and ambiguous VRs),
each also written out again by pydicom in Implicit VR Little Endian, under every shipped
profile: where the fast path answers, its output bytes, its per-instance report and its output
path equal the engine's (``files.deidentify_bytes``), and every other case is declined with
:class:`raw.NotCovered`, never with another error. The synthetic set must mostly be answered
by the fast path, so that the comparison proves something.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from corpus import corpus_files, make_instance, quiet_pydicom_in_test, report_files, to_bytes  # noqa: F401
from orthanc_gdpr.deid import Deidentifier, Keyring, files, load_profile, raw
from orthanc_gdpr.deid.engine import DeidentificationError
from orthanc_gdpr.deid.profile import available

KEY = b"raw-path-test-key-0123456789abcd"


def _item(**values) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _undefined(ds: Dataset, keyword: str | int) -> Dataset:
    """Write ``keyword``'s sequence, and its items, with undefined lengths."""
    ds[keyword].is_undefined_length = True
    for item in ds[keyword].value:
        item.is_undefined_length_sequence_item = True
    return ds


def _synthetic() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, Dataset | bytes]] = []
    base = make_instance()
    cases.append(("plain", base))

    ds = make_instance(charset="ISO_IR 100", patient_name="Müller^Jürgen")
    ds.StudyDescription = "CT THORAX MÜLLER"
    ds.ProcedureCodeSequence = Sequence([_item(CodeValue="CT123", CodingSchemeDesignator="L",
                                               CodeMeaning="CT THORAX MÜLLER")])
    ds.RequestAttributesSequence = Sequence([_item(RequestedProcedureDescription="THORAX ROUTINE",
                                                   ScheduledProcedureStepID="SPS12345")])
    ds.ImageComments = "seen by Dr. Meyer, PID4711, THORAX ROUTINE follow-up"
    ds.ReferencedImageSequence = Sequence([_item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                                                 ReferencedSOPInstanceUID=generate_uid())])
    cases.append(("planted values, Latin-1", ds))

    ds = make_instance()
    ds.ReferencedImageSequence = Sequence([_item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                                                 ReferencedSOPInstanceUID=generate_uid()) for _ in range(3)])
    ds.ProcedureCodeSequence = Sequence([_item(CodeValue="X1", CodeMeaning="ACC99887766")])
    _undefined(ds, "ReferencedImageSequence")
    _undefined(ds, "ProcedureCodeSequence")
    ds.OtherPatientIDsSequence = Sequence([_item(PatientID="OTHER-ID-77", IssuerOfPatientID="ELSEWHERE")])
    ds.add_new(0x00090010, "LO", "ACME 1.1")
    ds.add_new(0x00091001, "LO", "PID4711")
    ds.add_new(0x00091002, "SH", "X")
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x0019100C, "DS", "12.5")
    ds.add_new(0x00080000, "UL", 0)  # a retired group length
    cases.append(("undefined lengths, private blocks, group length", ds))

    ds = make_instance()
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.OtherPatientIDs = ["PID4711", "A-9876543"]
    ds.AcquisitionDateTime = "20200102101010.123"
    ds.InstanceCreationDate = "20200103"  # unlisted in some profiles: shifted or kept
    ds.ContentTime = ""
    ds.SeriesDescription = ""
    ds.ReferencedFrameOfReferenceUID = [generate_uid(), generate_uid()]
    cases.append(("multi-valued and empty values", ds))

    ds = make_instance(patient_id="")
    ds.PatientName = "Nobody^Known"
    cases.append(("no patient ID", ds))

    ds = make_instance(charset="ISO_IR 100", patient_name="Müller^Jürgen=MYU^JU=")
    ds.PerformingPhysicianName = "Who^Doctor=="
    ds.OperatorsName = ["Oper^One", "Oper^Two"]
    ds.NameOfPhysiciansReadingStudy = "  "
    cases.append(("person names with groups, values and padding", ds))

    ds = make_instance(charset="ISO_IR 100", patient_id="PID\x1b(B4711")  # an escape in a single-byte set
    ds.OtherPatientIDs = "PID\x1b(B4711"
    ds.StudyComments = "knee\x1b(B follow-up"  # cleaned and kept by clean-descriptors: decoded
    ds.SeriesDescription = "KNEE\x1b(B AXIAL"
    ds.InstitutionalDepartmentName = "Radiology \x1b(B 2"
    cases.append(("escape sequences in a single-byte character set", ds))

    data = bytearray(to_bytes(make_instance()))
    data += struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, 4) + b"\0\0\0\0"
    cases.append(("trailing padding", bytes(data)))

    # values as some writers pad them: "CT  " or a UID padded with a space, kept by the profile
    padded = make_instance()
    padded.Modality = "CT  "
    padded.Manufacturer = "ACME "
    cases.append(("padding the writer changes", padded))

    # values whose VR an implicit VR file does not state: ambiguous (US or SS), numbers and
    # decimal strings that pydicom decodes and writes back, a private block in pydicom's
    # private dictionary, an unknown private sequence of undefined length
    ds = make_instance()
    ds.SmallestImagePixelValue = 0
    ds.LargestImagePixelValue = 4095
    ds.PixelPaddingValue = 0
    ds.SliceThickness = "1.25"
    ds.PixelSpacing = ["0.5", "0.5 "]
    ds.WindowCenter = " 40"
    ds.InstanceNumber = "7"
    ds.ImagePositionPatient = ["-125", "-125.0", "100.5"]
    ds.SpacingBetweenSlices = 1.5
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.add_new(0x00180050, "DS", "1.25 ")
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x0019100C, "DS", "12.5")
    ds.add_new(0x00191011, "SS", 3)
    ds.add_new(0x00290010, "LO", "UNKNOWN CREATOR")
    ds.add_new(0x00291001, "SQ", Sequence([_item(PatientID="PID4711")]))
    _undefined(ds, 0x00291001)
    ds.add_new(0x00291002, "LO", "PID4711")
    cases.append(("numbers, ambiguous VRs, private dictionary", ds))

    ds = make_instance()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    cases.append(("deflated: declined", ds))
    ds = make_instance()
    del ds.PixelData
    cases.append(("header-only: declined", ds))
    ds = make_instance()
    ds.PatientIdentityRemoved = "YES"
    cases.append(("already marked: declined", ds))
    truncated = to_bytes(make_instance())[:-40]
    cases.append(("truncated: declined", truncated))
    explicit = [(name, case if isinstance(case, bytes) else to_bytes(case)) for name, case in cases]
    return explicit + _as_implicit(explicit)


def _as_implicit(cases: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Each Explicit VR Little Endian case written out again by pydicom in Implicit VR Little
    Endian (those pydicom reads and writes), named "implicit: <name>"."""
    converted = []
    for name, data in cases:
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
            if ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.1":
                continue
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
        except Exception:  # a file pydicom cannot read or write as implicit VR: nothing to compare
            continue
        converted.append((f"implicit: {name}", out.getvalue()))
    return converted


def _inputs() -> list[tuple[str, bytes]]:
    corpus = [(p.name, p.read_bytes()) for p in corpus_files() + report_files()]
    return corpus + _as_implicit(corpus) + _synthetic()


def _reference(engine: Deidentifier, data: bytes) -> tuple[bytes, dict, Path] | str:
    try:
        ds, out, report = files.deidentify_bytes(engine, data)
    except DeidentificationError as e:
        return f"{type(e).__name__}: {e}"
    return out, report.to_dict(), files.output_path(ds, report)


@pytest.mark.parametrize("profile", available())
def test_fast_path_equals_engine(profile: str) -> None:
    engine = Deidentifier(load_profile(profile), Keyring(KEY))
    fast, synthetic_fast, implicit_fast = 0, 0, 0
    synthetic = {name for name, _ in _synthetic()}
    for name, data in _inputs():
        try:
            result = raw.deidentify(engine, data)
        except raw.NotCovered:
            continue
        _assert_engines_result(engine, data, result, name)
        fast += 1
        synthetic_fast += name in synthetic
        implicit_fast += _syntax(data) == ImplicitVRLittleEndian
    assert fast >= 20
    assert synthetic_fast >= 12
    assert implicit_fast >= 20


def _assert_engines_result(engine: Deidentifier, data: bytes, result, where: str) -> None:
    """The fast path's ``result`` for ``data`` is the engine's: same bytes, report and output path
    (and never one the engine would refuse)."""
    reference = _reference(engine, data)
    assert not isinstance(reference, str), f"{where}: the engine refused ({reference}), the fast path did not"
    out, report, path = reference
    assert result.head + bytes(result.pixels) == out, f"{where}: output bytes differ"
    assert result.report.to_dict() == report, f"{where}: report differs"
    assert files._output_path(result.report, result.study_uid, result.series_uid) == path, where


def _syntax(data: bytes) -> str:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID


def test_declines_what_it_does_not_cover() -> None:
    engine = Deidentifier(load_profile("basic"), Keyring(KEY))
    for name, data in _synthetic():
        if name.endswith("declined"):
            with pytest.raises(raw.NotCovered):
                raw.deidentify(engine, data)


def test_pixel_options_go_to_the_engine() -> None:
    engine = Deidentifier(load_profile("basic").with_options(["clean-pixel-data"]), Keyring(KEY))
    assert not raw.covers(engine)
    with pytest.raises(raw.NotCovered):
        raw.deidentify(engine, to_bytes(make_instance()))


@pytest.mark.parametrize("profile", ["basic", "research"])
def test_damaged_headers_are_declined_or_give_the_engines_result(profile: str) -> None:
    """Every header byte of two instances changed in turn (to 00, FF, its successor and a
    backslash): lengths, tags, VRs, delimiters, UIDs, values. The fast path declines, or its
    result is the engine's (never one the engine would refuse)."""
    engine = Deidentifier(load_profile(profile), Keyring(KEY))
    cases = dict(_synthetic())
    answered = 0
    names = ("planted values, Latin-1", "undefined lengths, private blocks, group length")
    for name in names + tuple(f"implicit: {name}" for name in names):
        data = cases[name]
        for pos in range(128, data.find(b"\xe0\x7f\x10\x00") + 12, 3):
            for byte in {0x00, 0xFF, (data[pos] + 1) & 0xFF, 0x5C} - {data[pos]}:
                damaged = data[:pos] + bytes([byte]) + data[pos + 1:]
                try:
                    result = raw.deidentify(engine, damaged)
                except raw.NotCovered:
                    continue
                _assert_engines_result(engine, damaged, result, f"{name}, byte {pos} set to {byte:02X}")
                answered += 1
    assert answered > 1400
