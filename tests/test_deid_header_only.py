"""Instances without Pixel Data (nor Float / Double Float Pixel Data) are header-only objects:
de-identified and noted in the report, never held back as "truncated"; pixel options that need
pixels say per instance why they did not apply."""
from __future__ import annotations

import io

import pydicom
import pytest

from corpus import make_instance, quiet_pydicom_in_test, to_bytes  # noqa: F401
from orthanc_gdpr.deid import Deidentifier, DeidentificationError, Keyring, deidentify_bytes, deidentify_tree, load_profile
from orthanc_gdpr.deid.engine import HEADER_ONLY_NOTE

KEY = b"h" * 32


def engine(*options: str) -> Deidentifier:
    profile = load_profile("basic")
    return Deidentifier(profile.with_options(list(options)) if options else profile, Keyring(KEY))


def header_only(**kwargs) -> bytes:
    ds = make_instance(**kwargs)
    del ds.PixelData  # Rows, Columns, Bits Allocated... stay: an image module without its pixels
    return to_bytes(ds)


def test_image_without_pixel_data_is_deidentified_as_header_only():
    data = header_only()
    _, out, report = deidentify_bytes(engine(), data)
    ds = pydicom.dcmread(io.BytesIO(out))
    assert ds.PatientIdentityRemoved == "YES" and "PixelData" not in ds and ds.Rows == 4
    assert report.notes == [HEADER_ONLY_NOTE]
    assert report.to_dict()["notes"] == [HEADER_ONLY_NOTE]
    assert b"PID4711" not in out and b"Doe" not in out


@pytest.mark.parametrize("option", ["clean-pixel-data", "clean-recognizable-visual-features"])
def test_pixel_options_without_pixels_are_a_reason_not_a_failure(option):
    data = header_only() if option == "clean-pixel-data" else _head_ct_header()
    _, _, report = deidentify_bytes(engine(option), data)
    assert HEADER_ONLY_NOTE in report.notes
    assert f"{option} not applied: the instance has no pixel data" in report.notes
    assert report.pixels is None


def _head_ct_header() -> bytes:
    ds = make_instance()
    ds.BodyPartExamined = "HEAD"
    del ds.PixelData
    return to_bytes(ds)


def test_float_pixel_data_is_not_header_only_and_says_why_it_is_not_masked():
    ds = make_instance()
    del ds.PixelData
    ds.BitsAllocated = 32
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.FloatPixelData = bytes(64)
    _, out, report = deidentify_bytes(engine("clean-pixel-data"), to_bytes(ds))
    assert HEADER_ONLY_NOTE not in report.notes
    assert any(n.startswith("clean-pixel-data not applied: Float") for n in report.notes)
    assert pydicom.dcmread(io.BytesIO(out)).FloatPixelData == bytes(64)


def test_truncated_is_kept_for_files_that_end_inside_an_element():
    data = to_bytes(make_instance(pixels=bytes(2048)))
    with pytest.raises(DeidentificationError, match="truncated"):
        deidentify_bytes(engine(), data[:-100])  # inside Pixel Data
    with pytest.raises(DeidentificationError, match="truncated"):
        deidentify_bytes(engine(), data[:-2048 - 6])  # inside the Pixel Data element's header


def test_a_folder_with_header_only_images_holds_nothing_back(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.dcm").write_bytes(header_only())
    (inputs / "b.dcm").write_bytes(to_bytes(make_instance()))
    run = deidentify_tree([inputs], tmp_path / "out", load_profile("basic"), KEY, workers=1)
    assert run.held_back == [] and len(run.instances) == 2
    assert [i.get("notes", []) for i in run.instances] == [[HEADER_ONLY_NOTE], []]


def test_head_slice_with_pixels_is_still_held_back_without_its_series():
    """The reader keeps native Pixel Data apart (it is copied verbatim); the slice still has pixels
    and a face, so Clean Recognizable Visual Features still holds it back on its own."""
    ds = make_instance()
    ds.BodyPartExamined = "HEAD"
    with pytest.raises(DeidentificationError, match="whole series"):
        deidentify_bytes(engine("clean-recognizable-visual-features"), to_bytes(ds))
