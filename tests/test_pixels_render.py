"""Windowing a frame for a person to look at (orthanc_gdpr.pixels.render)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from orthanc_gdpr.pixels import render


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
