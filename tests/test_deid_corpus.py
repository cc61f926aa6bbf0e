"""The engine over public corpora (pydicom's test files, pydicom-data, deid-data), every profile.

Proves: no value of an attribute the profile does not keep survives anywhere in the output
bytes; every output re-reads; pixel data is byte-identical (pixel-equal for big endian inputs,
converted to little endian); UIDs are remapped consistently
(across files and runs, per key) and references follow them; dciodvfy finds no new errors.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest

from corpus import (PROFILES, corpus_files, dciodvfy_errors, report_files, iter_datasets, leaks,  # noqa: F401
                    make_instance, quiet_pydicom_in_test, quiet_pydicom_restored, sample_file, sensitive_values,
                    to_bytes)
from orthanc_gdpr.deid import Deidentifier, InstanceDropped, Keyring, deidentify_bytes, load_profile, read

KEY = b"corpus-test-key-0123456789abcdef"
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def run_corpus(profile_name: str, key: bytes = KEY) -> dict[Path, tuple[pydicom.Dataset, bytes]]:
    engine = Deidentifier(load_profile(profile_name), Keyring(key))
    with quiet_pydicom_restored():  # also for module-scoped fixtures, which run outside a test
        return {path: (read(path), deidentify_bytes(engine, path)[1]) for path in corpus_files()}


@pytest.fixture(scope="module", params=PROFILES)
def outputs(request):
    return request.param, run_corpus(request.param)


def test_corpus_is_substantial():
    assert len(corpus_files()) >= 150


def test_no_leak_anywhere_in_output_bytes(outputs):
    name, results = outputs
    profile = load_profile(name)
    found = {path.name: leaks(ds, out, profile) for path, (ds, out) in results.items()}
    assert {k: v for k, v in found.items() if v} == {}
    checked = sum(len(sensitive_values(ds, profile)) for ds, _ in results.values())
    assert checked > 2000  # the checker really looked at thousands of values


def test_leak_checker_catches_an_untouched_file():
    profile = load_profile("basic")
    path = sample_file("CT_small.dcm")
    assert "CompressedSamples^CT1" in leaks(read(path), path.read_bytes(), profile)


def test_every_output_rereads_and_is_marked(outputs):
    _, results = outputs
    for path, (_, out) in results.items():
        ds = pydicom.dcmread(io.BytesIO(out))
        ds.remove_private_tags()
        list(iter_datasets(ds))  # every element decodes
        assert ds.PatientIdentityRemoved == "YES", path.name
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in ds.file_meta


def test_pixel_data_byte_identical(outputs):
    _, results = outputs
    compared = 0
    for path, (ds, out) in results.items():
        if "PixelData" not in ds:
            continue
        new = pydicom.dcmread(io.BytesIO(out))
        if ds.original_encoding[1] is False:  # big endian, converted: equal pixels, swapped bytes
            assert np.array_equal(new.pixel_array, ds.pixel_array), path.name
        else:
            assert bytes(new.PixelData) == bytes(ds.PixelData), path.name
        compared += 1
    assert compared > 100


def _uids(results) -> dict[str, set[str]]:
    mapping: dict[str, set[str]] = {}
    for ds, out in results.values():
        new = pydicom.dcmread(io.BytesIO(out))
        for keyword in UID_KEYWORDS:
            if keyword in ds and keyword in new:
                mapping.setdefault(str(ds[keyword].value), set()).add(str(new[keyword].value))
    return mapping


def test_uids_remapped_consistently_across_files_and_runs():
    first, again, other = run_corpus("basic"), run_corpus("basic"), run_corpus("basic", b"another-key-" * 3)
    mapping = _uids(first)
    assert len(mapping) > 200  # image objects only: report-bearing ones are dropped
    assert all(len(new) == 1 for new in mapping.values())  # one source UID -> one new UID
    assert not [old for old, new in mapping.items() if old in new]  # none survives
    studies = [str(ds.get("StudyInstanceUID")) for ds, _ in first.values()]
    assert any(studies.count(uid) > 1 for uid in mapping), "the corpus has studies with several instances"
    assert _uids(again) == mapping  # same key, same UIDs
    other_mapping = _uids(other)
    assert all(other_mapping[old].isdisjoint(new) for old, new in mapping.items())


def test_references_follow_their_instances():
    results = run_corpus("basic")
    new_sop = {}
    for ds, out in results.values():
        new_sop[str(ds.SOPInstanceUID)] = str(pydicom.dcmread(io.BytesIO(out)).SOPInstanceUID)
    checked = 0
    for ds, out in results.values():
        refs_in = {str(d.ReferencedSOPInstanceUID) for d in iter_datasets(ds) if "ReferencedSOPInstanceUID" in d}
        refs_out = {str(d.ReferencedSOPInstanceUID)
                    for d in iter_datasets(pydicom.dcmread(io.BytesIO(out))) if "ReferencedSOPInstanceUID" in d}
        for ref in refs_in & new_sop.keys():
            assert new_sop[ref] in refs_out
            checked += 1
    assert checked >= 1


DCIODVFY_SAMPLE = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "test-SR.dcm",
                   "JPEG2000.dcm", "SC_rgb.dcm", "US1_UNCR.dcm", "MR2_UNCR.dcm", "ctbrain1.dcm",
                   "GREYSCALE_IMAGE.dcm", "image1.dcm", "cat.dcm")


@pytest.mark.parametrize("profile_name", ["basic", "research"])
def test_dciodvfy_finds_no_new_errors(profile_name, tmp_path):
    engine = Deidentifier(load_profile(profile_name), Keyring(KEY))
    sample = [p for p in corpus_files() if p.name in DCIODVFY_SAMPLE]
    assert len(sample) >= 10
    counts = {}
    for path in sample:
        out = tmp_path / path.name
        out.write_bytes(deidentify_bytes(engine, path)[1])
        before, after = dciodvfy_errors(path), dciodvfy_errors(out)
        counts[path.name] = (len(before), len(after))
        assert len(after) <= len(before), (path.name, sorted(set(after) - set(before)))
    print(f"dciodvfy errors (input, output) with {profile_name}: {counts}")


def test_file_and_bytes_inputs_give_the_same_output():
    engine = Deidentifier(load_profile("research"), Keyring(KEY))
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm"):
        path = sample_file(name)
        assert deidentify_bytes(engine, path)[1] == deidentify_bytes(engine, path.read_bytes())[1], name


def test_an_engine_that_needs_pixels_gets_them():
    engine = Deidentifier(load_profile("basic"), Keyring(KEY))
    data = to_bytes(make_instance(pixels=bytes(range(256)) * 256))
    fast_ds, fast, _ = deidentify_bytes(engine, data)
    engine.pixel_data_untouched = False
    full_ds, full, _ = deidentify_bytes(engine, data)
    assert "PixelData" not in fast_ds and "PixelData" in full_ds
    assert fast == full


def test_report_bearing_objects_of_the_corpora_are_dropped_by_default():
    engine = Deidentifier(load_profile("basic"), Keyring(b"corpus-test-key-0123456789abcdef"))
    assert report_files(), "the corpora hold SR and document objects"
    for path in report_files():
        with pytest.raises(InstanceDropped, match="report-bearing object dropped"):
            deidentify_bytes(engine, path)


def test_trailing_padding_after_the_pixel_data_is_removed_and_pixels_copied_verbatim():
    path = sample_file("CT_small.dcm")  # ends with (FFFC,FFFC) Data Set Trailing Padding
    assert b"\xfc\xff\xfc\xff" in path.read_bytes()[-200:]
    engine = Deidentifier(load_profile("basic"), Keyring(KEY))
    out = pydicom.dcmread(io.BytesIO(deidentify_bytes(engine, path)[1]))
    assert 0xFFFCFFFC not in out
    assert out.PixelData == pydicom.dcmread(path).PixelData
