"""Hostile and broken input: a clear per-file error, the file held back, the run goes on."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from corpus import deep_sequence_file, make_instance, quiet_pydicom_in_test, sample_file, to_bytes  # noqa: F401
from orthanc_gdpr.deid import (DeidentificationError, Deidentifier, Keyring, deidentify_bytes,
                               deidentify_tree, load_profile)

KEY = b"bad-input-test-key-0123456789abc"


@pytest.fixture(scope="module")
def engine():
    return Deidentifier(load_profile("clinical-trial"), Keyring(KEY))


def held_back(engine, data) -> str:
    with pytest.raises(DeidentificationError) as info:
        deidentify_bytes(engine, data)
    return str(info.value)


def test_truncated_file(engine):
    data = sample_file("CT_small.dcm").read_bytes()
    assert "truncated" in held_back(engine, data[: len(data) // 3])  # inside Pixel Data
    assert "truncated" in held_back(engine, data[:3000])  # inside an element header


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "rtplan_truncated.dcm"])
def test_pydicoms_truncated_files(engine, name):
    assert "truncated" in held_back(engine, sample_file(name))


def test_not_dicom(engine):
    assert "not a DICOM file" in held_back(engine, b"hello, I am a text file\n" * 40)
    assert "not a DICOM file" in held_back(engine, b"")


def test_missing_file(engine, tmp_path):
    assert "cannot read input" in held_back(engine, tmp_path / "nope.dcm")


def test_no_sop_instance_uid(engine):
    ds = make_instance()
    del ds.SOPInstanceUID
    assert "SOP Instance UID" in held_back(engine, to_bytes(ds))


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_sequences_nested_thousands_deep(engine, depth):
    assert "nested too deep" in held_back(engine, deep_sequence_file(depth))


def test_nesting_beyond_the_walk_limit_is_refused_not_truncated(engine):
    assert "nested deeper than 64" in held_back(engine, deep_sequence_file(70))
    deidentify_bytes(engine, deep_sequence_file(20))  # ordinary SR depth is fine


def test_wrong_vr_values_do_not_crash(engine):
    ds = make_instance()
    ds.add_new(0x00080021, "DA", "not a date")  # Series Date
    ds.add_new(0x0008002A, "DT", "20")  # Acquisition DateTime, too short to shift
    ds.add_new(0x00181012, "DA", "2020-13-45")
    _, data, _ = deidentify_bytes(engine, to_bytes(ds))
    out = pydicom.dcmread(io.BytesIO(data))
    assert not out.SeriesDate and not out.get("DateOfSecondaryCapture")
    assert b"not a date" not in data


def test_huge_private_blocks(engine):
    ds = make_instance()
    block = ds.private_block(0x0099, "HUGE VENDOR", create=True)
    for element in range(0x00, 0x100):
        block.add_new(element, "LO", f"vendor value {element}")
    block2 = ds.private_block(0x0099, "HUGE VENDOR 2", create=True)
    block2.add_new(0x01, "OB", b"\x07" * 4_000_000)
    _, data, _ = deidentify_bytes(engine, to_bytes(ds))
    assert b"vendor value" not in data and len(data) < 100_000


@pytest.mark.parametrize("charset, name", [("ISO_IR 100", "Müller^Jürgen"), ("ISO_IR 192", "山田^太郎"),
                                           ("ISO_IR 192", "Ødegård^Åse=Ødegård^Åse")])
def test_odd_character_sets(engine, charset, name):
    ds = make_instance(patient_name=name, charset=charset)
    ds.ImageComments = f"patient {name.split('^')[0]} seen"
    _, data, _ = deidentify_bytes(engine, to_bytes(ds))
    out = pydicom.dcmread(io.BytesIO(data))
    for part in name.replace("=", "^").split("^"):
        for codec in ("utf-8", "latin-1"):
            try:
                assert part.encode(codec) not in data
            except UnicodeEncodeError:
                pass
    assert str(out.PatientName).startswith("SUBJECT^")


def test_tree_holds_back_bad_files_and_goes_on(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a_good.dcm").write_bytes(to_bytes(make_instance()))
    (inputs / "b_text.dcm").write_text("not dicom")
    (inputs / "c_truncated.dcm").write_bytes(sample_file("CT_small.dcm").read_bytes()[:3000])
    (inputs / "d_deep.dcm").write_bytes(deep_sequence_file(5_000))
    (inputs / "e_good.dcm").write_bytes(to_bytes(make_instance(patient_id="OTHER1")))
    out = tmp_path / "out"
    run = deidentify_tree([inputs], out, load_profile("basic"), KEY, workers=1)
    assert len(run.instances) == 2
    assert [h["input"] for h in run.held_back] == [1, 2, 3]
    assert all(h["error"] for h in run.held_back)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == 2 and not [p for p in out.rglob(".partial-*")]
    assert all(p.suffix == ".dcm" for p in written)


def test_tree_with_worker_processes(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(12):
        (inputs / f"{i:02d}.dcm").write_bytes(to_bytes(make_instance(patient_id=f"P{i % 3:04d}")))
    (inputs / "zz.dcm").write_text("garbage")
    run = deidentify_tree([inputs], tmp_path / "out", load_profile("basic"), KEY, workers=2)
    assert len(run.instances) == 12 and len(run.held_back) == 1
    assert len({i["patient_pseudonym"] for i in run.instances}) == 3
    assert len(list(Path(tmp_path / "out").rglob("*.dcm"))) == 12
