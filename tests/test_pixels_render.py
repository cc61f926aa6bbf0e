"""Windowing a frame for a person to look at (orthanc_gdpr.pixels.render)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from orthanc_gdpr.pixels import codecs, render


def _grey(values: np.ndarray, **attrs) -> Dataset:
    ds = Dataset()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, attrs.pop("photometric", "MONOCHROME2")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.Rows, ds.Columns = values.shape
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def test_linear_window_follows_ps33_c11_2_1_2_1():
    window = render.Window(40, 400, "soft-tissue")
    values = np.array([-1000, -160.5, 40, 239.5, 1000], dtype=np.float32)
    out = render.apply_window(values, window)
    assert out[0] == 0 and out[-1] == 255
    assert out[2] == 128  # the centre maps to mid-grey
    assert out[1] <= 1 and out[3] >= 254


def test_ct_rescale_then_named_preset():
    stored = np.array([[0, 1024, 2048]], dtype=np.int16)
    ds = _grey(stored, Modality="CT", RescaleSlope=1, RescaleIntercept=-1024)
    pixels, used = render.to_8bit(ds, stored, "lung")
    assert used == render.CT_PRESETS["lung"]
    assert pixels.tolist() == [[55, 230, 255]]  # air -1024 HU dark grey, water 0 HU bright (lung: -1350..150)
    assert [w.name for w in render.windows_for(ds, render.modality_values(ds, stored))] == [
        "auto", "soft-tissue", "lung", "bone", "brain"]


def test_declared_window_is_the_default_and_monochrome1_is_inverted():
    stored = np.array([[99, 200, 301]], dtype=np.int16)
    ds = _grey(stored, WindowCenter=200, WindowWidth=201)
    assert render.to_8bit(ds, stored)[0].tolist() == [[0, 128, 255]]
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert render.to_8bit(ds, stored)[0].tolist() == [[255, 127, 0]]


def test_unknown_preset_is_named():
    stored = np.zeros((2, 2), dtype=np.int16)
    with pytest.raises(ValueError, match="unknown window preset 'fancy'"):
        render.to_8bit(_grey(stored), stored, "fancy")


@pytest.mark.parametrize("name", ["CT_small.dcm", "US1_J2KR.dcm", "MR_small.dcm"])
def test_real_files_render(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    frames = render.frames(ds)
    image = render.render(ds, frames[0])
    assert image.size == (int(ds.Columns), int(ds.Rows))
    assert np.asarray(image).std() > 5  # not a flat picture


def _native_grey_files() -> list[str]:
    names = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_padded.dcm", "emri_small.dcm",
             "image_dfl.dcm", "vlut_04.dcm", "mlut_18.dcm", "examples_overlay.dcm", "MR2_UNCR.dcm")
    return [get_testdata_file(n) for n in names]


@pytest.mark.parametrize("path", _native_grey_files(), ids=lambda p: p.rsplit("/", 1)[-1])
def test_uncompressed_grey_frames_are_read_as_pydicom_decodes_them(path):
    ds = pydicom.dcmread(path)
    native = codecs.native_grey(ds)
    decoded = codecs.decode(ds)
    assert native is not None
    assert native.dtype == decoded.dtype and native.shape == decoded.shape
    assert np.array_equal(native, decoded)
    assert np.array_equal(render.frames(ds), decoded)


@pytest.mark.parametrize("signed", [False, True])
def test_bits_above_bits_stored_are_cleared_or_sign_extended(signed):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    stored = np.array([[0, 1, 2047, -2048 if signed else 4095, -1 if signed else 2048]], dtype=np.int16)
    raw = stored.astype(np.uint16) | np.uint16(0xA000)  # garbage in the 4 unused high bits
    ds.Rows, ds.Columns, ds.BitsStored, ds.HighBit = 1, raw.shape[1], 12, 11
    ds.PixelRepresentation = int(signed)
    ds.PixelData = raw.tobytes()
    assert np.array_equal(codecs.native_grey(ds), codecs.decode(ds))
    assert codecs.native_grey(ds)[0].tolist() == stored.tolist()


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_RLE.dcm", "US1_UNCR.dcm"])
def test_big_endian_compressed_and_colour_data_are_left_to_the_decoders(name):
    assert codecs.native_grey(pydicom.dcmread(get_testdata_file(name))) is None


def test_sampled_window_reads_pixels_only_for_an_automatic_window():
    stored = np.random.default_rng(0).normal(100, 30, (64, 64)).astype(np.int16)
    declared = _grey(stored, WindowCenter=40, WindowWidth=400)
    assert render.sampled_window(declared, None) == render.Window(40, 400, "default")
    assert render.sampled_window(declared, None, "lung") == render.CT_PRESETS["lung"]
    auto = render.sampled_window(_grey(stored), stored)
    whole = render.default_window(_grey(stored), render.modality_values(_grey(stored), stored))
    assert auto.name == "auto" and abs(auto.center - whole.center) < 3 and abs(auto.width / whole.width - 1) < 0.1
