"""The retired Explicit VR Big Endian transfer syntax: converted to Explicit VR Little Endian,
de-identified, with pixels equal to what pydicom decodes from the big endian input."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from corpus import quiet_pydicom_in_test, sample_file  # noqa: F401
from orthanc_gdpr.deid import Deidentifier, Keyring, deidentify_bytes, load_profile
from orthanc_gdpr.deid.endian import CONVERSION_NOTE
from orthanc_server import PHI_ID, PHI_NAME, big_endian, make_ct_study

#: pydicom's big endian test files: 16-bit OW, 8-bit colour in OW (odd size) and in OB, 1-bit OB,
#: 32-bit multi-frame dose in OW.
BIG_ENDIAN_FILES = ["MR_small_bigendian.dcm", "MR_small_expb.dcm", "SC_rgb_small_odd_big_endian.dcm",
                    "ExplVR_BigEnd.dcm", "liver_expb_1frame.dcm", "rtdose_expb.dcm", "rtdose_expb_1frame.dcm"]


@pytest.fixture(scope="module")
def engine():
    return Deidentifier(load_profile("basic"), Keyring(b"k" * 32))


@pytest.mark.parametrize("name", BIG_ENDIAN_FILES)
def test_big_endian_file_becomes_little_endian_with_equal_pixels(engine, name):
    source = sample_file(name)
    before = pydicom.dcmread(source)
    _, data, report = deidentify_bytes(engine, source.read_bytes())
    after = pydicom.dcmread(io.BytesIO(data))
    assert after.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert after.original_encoding == (False, True)
    assert CONVERSION_NOTE in report.notes and CONVERSION_NOTE in report.to_dict()["notes"]
    assert after.PatientIdentityRemoved == "YES"
    assert np.array_equal(before.pixel_array, after.pixel_array)
    for keyword in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel"):  # numbers decoded, re-encoded
        assert after[keyword].value == before[keyword].value


def test_big_endian_made_by_dcmtk_is_deidentified_like_its_little_endian_original(engine, tmp_path):
    original = make_ct_study(1, series=1)[0]
    _, from_le, _ = deidentify_bytes(engine, original)
    _, from_be, report = deidentify_bytes(engine, big_endian(original, tmp_path))
    le, be = pydicom.dcmread(io.BytesIO(from_le)), pydicom.dcmread(io.BytesIO(from_be))
    assert CONVERSION_NOTE in report.notes
    assert np.array_equal(le.pixel_array, be.pixel_array)
    assert le.SOPInstanceUID == be.SOPInstanceUID and le.PatientID == be.PatientID
    for text in (PHI_NAME, PHI_ID, *PHI_NAME.split("^")):
        assert text.encode() not in from_be
