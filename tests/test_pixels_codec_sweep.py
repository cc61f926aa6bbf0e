"""Every image file of the public corpora (pydicom's test files, pydicom-data, deid-data) through
Clean Pixel Data: decoded, a corner masked, written back, decoded again.

OCR is off and a single mask rule matching every image masks its top-left corner, so the sweep
proves the codecs (every transfer syntax of the corpora: native little and big endian, Deflated,
RLE, JPEG Baseline, Extended 12-bit, Lossless, JPEG-LS, JPEG 2000) in seconds, not Tesseract.
The only files left out are listed in :data:`BROKEN`, each with the upstream reason.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from corpus import _installed_data_dirs, quiet_pydicom_in_test  # noqa: F401
from orthanc_gdpr import pixels
from orthanc_gdpr.deid import endian
from orthanc_gdpr.pixels.codecs import black_value, decode
from orthanc_gdpr.pixels.masks import MaskRule, MaskRules
from orthanc_gdpr.pixels.ultrasound import outside_regions

CORNER = (0, 0, 3, 2)  # x0, y0, x1, y1: every image has at least 3 x 2 pixels
EVERYWHERE = MaskRules((MaskRule("sweep", (), (CORNER,), "tests: a corner of every image"),))

#: Files that no decoder can read, with the reason their maintainers give.
BROKEN = {
    "JPEG2000-embedded-sequence-delimiter.dcm": "pydicom test_files/README.txt: JPEG2000.dcm with 4 bytes of "
                                                "the codestream overwritten, 'almost certainly not a valid JPEG "
                                                "anymore' (a parser test)",
    "MR_truncated.dcm": "pydicom test_files: truncated inside Pixel Data (the engine holds it back as truncated)",
    "badVR.dcm": "pydicom test_files: Bits Allocated holds '1A', not a number",
    "nested_priv_SQ.dcm": "pydicom test_files: Pixel Data without Bits Allocated, Rows or Columns",
    "meta_missing_tsyntax.dcm": "pydicom test_files: no Transfer Syntax UID, and Pixel Data without Bits Allocated",
}


def _image_files() -> list[Path]:
    candidates = [Path(p) for p in pydicom.data.get_testdata_files() if Path(p).is_file()]
    for directory in _installed_data_dirs():
        candidates += [p for p in directory.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc", ".md", ".zip")]
    images = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(set(candidates)):
            try:
                ds = pydicom.dcmread(path, defer_size=1024)
            except Exception:  # noqa: BLE001 - not DICOM: not an image file
                continue
            if "PixelData" in ds:
                images.append(path)
    return images


IMAGE_FILES = _image_files()


def test_the_sweep_covers_every_transfer_syntax():
    syntaxes = {str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.get("TransferSyntaxUID", ""))
                for p in IMAGE_FILES}
    expected = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
                "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
                "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
    assert expected <= syntaxes, expected - syntaxes
    assert len(IMAGE_FILES) > 150
    assert set(BROKEN) <= {p.name for p in IMAGE_FILES}


@pytest.mark.parametrize("path", [p for p in IMAGE_FILES if p.name not in BROKEN], ids=lambda p: p.name)
def test_clean_pixel_data_decodes_masks_and_writes_back(path: Path):
    ds = pydicom.dcmread(path)
    if endian.is_big_endian(ds):
        endian.to_little_endian(ds)  # as the engine does first
    before = decode(ds).copy()
    black = black_value(ds)
    masked = np.zeros(before.shape[1:3], bool)
    x0, y0, x1, y1 = CORNER
    masked[y0:y1, x0:x1] = True
    if str(ds.get("Modality", "")).upper() == "US" and (outside := outside_regions(ds)) is not None:
        masked |= outside  # ultrasound: everything outside the regions goes too
    report = pixels.clean_pixel_data(ds, ocr=False, masks=EVERYWHERE)
    assert report.methods[0] == "mask-rule:sweep" and report.masked_pixels == masked.sum()
    after = decode(ds)
    assert after.shape == before.shape
    assert (after[:, masked] == black).all()
    before[:, masked] = black
    assert np.array_equal(after, before)  # written back losslessly: nothing else changed
    assert ds.BurnedInAnnotation == "NO"


def test_jpeg_with_a_malformed_scan_header_decodes_like_its_fixed_version():
    """pydicom's JPEG-lossy.dcm (NEMA NM1_JPLY, JPEG Extended 12-bit) says Se = 0 in its scan
    header, which strict decoders refuse; JPGExtended.dcm is the same image with Se = 63."""
    broken = pydicom.dcmread(pydicom.data.get_testdata_file("JPEG-lossy.dcm"))
    fixed = pydicom.dcmread(pydicom.data.get_testdata_file("JPGExtended.dcm"))
    original = broken.PixelData
    assert np.array_equal(decode(broken), decode(fixed))
    assert broken.PixelData == original  # decoded from a repaired copy; the instance keeps its own
