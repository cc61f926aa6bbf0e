"""Synthetic series for the anonymous-export tests: CT volumes of a phantom, one patient each.

Deterministic (a fixed seed per patient), small (64 x 64), real DICOM written with pydicom:
single-frame CT series, a multi-frame instance, a slice with a name and ID burned in, an SR.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (CTImageStorage, EncapsulatedPDFStorage, EnhancedCTImageStorage, ExplicitVRLittleEndian,
                         BasicTextSRStorage, generate_uid)

from pixel_corpus import fonts

SIZE = 128
BURNED_TEXT = "ZYXWVUT QWERTY 77881234"


def phantom(index: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Stored values (12-bit, intercept -1024): an ellipse of soft tissue, brighter to the centre."""
    y, x = np.mgrid[0:size, 0:size]
    r = ((x - size / 2) / (size * 0.4)) ** 2 + ((y - size / 2) / (size * 0.3)) ** 2
    edge = 1 / (1 + np.exp((np.sqrt(r) - 1) * 6))  # a soft body outline: a step would read as ink
    img = (24 + 1040 * edge).astype(np.int32)  # 40 HU inside, -1000 HU outside
    img += (np.exp(-3 * r) * (60 + index)).astype(np.int32)  # a smooth core: no edge reads as a letter
    img += np.random.default_rng(seed * 1000 + index).integers(0, 20, img.shape)
    return img.astype(np.uint16)


def burn_text(img: np.ndarray, text: str = BURNED_TEXT) -> np.ndarray:
    """``img`` with ``text`` drawn in the brightest value, large enough for OCR."""
    canvas = Image.new("L", (img.shape[1] * 4, img.shape[0] * 4), 0)
    ImageDraw.Draw(canvas).text((4, 4), text[:12], fill=255, font=ImageFont.truetype(str(fonts()[0]), 40))
    ink = np.array(canvas.resize(img.shape[::-1], Image.LANCZOS)) > 100
    out = img.copy()
    out[ink] = 4095
    return out


def _base(sop_class: str, patient: str, study: str, series: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID = f"Zyxwvut^{patient}", patient
    ds.PatientBirthDate, ds.StudyDate = "19700101", "20240301"
    ds.InstitutionName = "St. Example Hospital"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality, ds.SeriesNumber = modality, 1
    return ds


def _image(ds: Dataset, pixels: np.ndarray) -> Dataset:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def write_series(folder: Path, slices: int = 60, *, patient: str = "PAT-0001", seed: int = 0,
                 text_on: tuple[int, ...] = (), size: int = SIZE) -> Path:
    """A CT series of ``slices`` single-frame instances (instance numbers 1..slices) in ``folder``;
    the slices in ``text_on`` have a name and ID burned in."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    for i in range(1, slices + 1):
        pixels = phantom(i, seed, size)
        if i in text_on:
            pixels = burn_text(pixels)
        ds = _image(_base(CTImageStorage, patient, study, series, "CT"), pixels)
        ds.InstanceNumber = i
        ds.ImagePositionPatient = [0, 0, 2.0 * i]
        ds.save_as(folder / f"ct{i:04d}.dcm", enforce_file_format=True)
    return folder


def write_multiframe(folder: Path, frames: int = 60, patient: str = "PAT-MF") -> Path:
    """One enhanced CT instance (instance number 1) of ``frames`` frames."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = _image(_base(EnhancedCTImageStorage, patient, generate_uid(), generate_uid(), "CT"),
                np.stack([phantom(i) for i in range(1, frames + 1)]))
    ds.NumberOfFrames, ds.InstanceNumber = frames, 1
    path = folder / "multiframe.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_documents(folder: Path, kind: str, count: int = 30, patient: str = "PAT-DOC") -> Path:
    """A series of ``count`` basic text SR (``kind="SR"``) or encapsulated PDF (``"DOC"``) instances."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    for i in range(1, count + 1):
        if kind == "SR":
            ds = _base(BasicTextSRStorage, patient, study, series, "SR")
            ds.ValueType = "CONTAINER"
        else:
            ds = _base(EncapsulatedPDFStorage, patient, study, series, "DOC")
            ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
            ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
        ds.InstanceNumber = i
        ds.save_as(folder / f"doc{i:03d}.dcm", enforce_file_format=True)
    return folder
