"""Criterion 1: population aggregates, without metadata beyond geometry.

:func:`export_aggregate` refuses fewer than k series or fewer than k distinct patients (k from
the :class:`~.limits.Limits` in force; patients are told apart by their Orthanc patient ID, so
that one patient under two series counts once). The statistic is taken voxel by voxel, in
modality units, on one grid:

* ``mean``, ``median``, ``std`` (population standard deviation): every series resampled
  (linearly, corners aligned) to the first series' grid (series in Orthanc ID order);
* ``template``: every series resampled in millimetres, centred, to an isotropic grid of
  ``spacing`` mm spanning the first series' field of view, then averaged where covered.

3-D results are NIfTI-1 files (``.nii``, uncompressed: gzip would store a time) holding float32
values and an affine of voxel sizes only (origin 0, no description, no extension); 2-D results are
PNG, 16-bit with a linear value mapping or 8-bit with a stated window, the mapping kept in the
decision record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from scipy import ndimage as ndi

from ..pixels import render
from . import png
from .decision import AGGREGATE, Decision
from .limits import Limits
from .refusal import Refused
from .series import NON_IMAGE_MODALITIES, Series
from .staging import Staging
from .volumes import Volume, load_volume

STATISTICS = ("mean", "median", "std", "template")
FORMATS = ("auto", "nifti", "png16", "png8")


@dataclass(frozen=True)
class AggregateRequest:
    statistic: str
    decided_by: str
    format: str = "auto"  #: auto: NIfTI for 3-D, 16-bit PNG for 2-D
    window: render.Window | str | None = None  #: png8 only
    spacing: float | None = None  #: template: voxel size in mm (default: the finest of the first series)
    clinician: str | None = None
    statement: str | None = None


@dataclass
class AggregateExport:
    out: Path
    decision: Decision
    audit: dict[str, Any]


def check_request(request: AggregateRequest) -> None:
    """Refuse bad options before any data is read."""
    if request.statistic not in STATISTICS:
        raise Refused("--statistic", "unknown-statistic", f"one of {', '.join(STATISTICS)}")
    if request.format not in FORMATS:
        raise Refused("--format", "unknown-format", f"one of {', '.join(FORMATS)}")
    if not request.decided_by.strip():
        raise Refused("--decided-by", "required", "name the person who decides that the export is anonymous")
    if request.spacing is not None and not 0.1 <= request.spacing <= 20:
        raise Refused("--spacing", "range", "between 0.1 and 20 mm")


def _onto(vol: Volume, shape: tuple[int, ...]) -> np.ndarray:
    """``vol`` resampled linearly to ``shape``, first and last voxels aligned."""
    if vol.values.shape == shape:
        return vol.values
    scale = [(i - 1) / (o - 1) if o > 1 else 0.0 for i, o in zip(vol.values.shape, shape)]
    return ndi.affine_transform(vol.values, np.array(scale), output_shape=shape, order=1, mode="nearest")


def _in_mm(vol: Volume, shape: tuple[int, ...], spacing: float) -> np.ndarray:
    """``vol`` resampled to ``shape`` voxels of ``spacing`` mm, centres aligned; NaN outside it."""
    matrix = np.array([spacing / s for s in vol.spacing])
    centre_in = (np.array(vol.values.shape) - 1) / 2
    centre_out = (np.array(shape) - 1) / 2
    return ndi.affine_transform(vol.values, matrix, offset=centre_in - matrix * centre_out, output_shape=shape,
                                order=1, mode="constant", cval=np.nan)


class _Accumulator:
    """Voxel-wise sums (mean, std, template) or the stack (median), fed one series at a time."""

    def __init__(self, statistic: str) -> None:
        self.statistic = statistic
        self.total = self.squares = self.count = None
        self.stack: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        if self.statistic == "median":
            self.stack.append(values.astype(np.float32))
            return
        covered = np.isfinite(values)
        v = np.where(covered, values, 0).astype(np.float64)
        if self.total is None:
            self.total, self.squares, self.count = np.zeros_like(v), np.zeros_like(v), np.zeros(v.shape, np.int64)
        self.total += v
        self.squares += v * v
        self.count += covered

    def result(self) -> np.ndarray:
        if self.statistic == "median":
            return np.median(np.stack(self.stack), axis=0).astype(np.float32)
        n = np.maximum(self.count, 1)
        mean = self.total / n
        if self.statistic == "std":
            return np.sqrt(np.maximum(self.squares / n - mean * mean, 0)).astype(np.float32)
        if self.statistic == "template":
            mean[self.count == 0] = mean[self.count > 0].min() if (self.count > 0).any() else 0
        return mean.astype(np.float32)


def _nifti(values: np.ndarray, spacing: tuple[float, ...]) -> bytes:
    import nibabel as nib

    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])  # NIfTI axes: columns, rows, slices
    image = nib.Nifti1Image(np.ascontiguousarray(values.transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=2)
    image.set_sform(affine, code=2)
    return image.to_bytes()


def _image_2d(values: np.ndarray, request: AggregateRequest) -> tuple[bytes, str, dict[str, Any]]:
    if request.format == "png8":
        window = render.choose_window(Dataset(), values, request.window)
        return png.encode(render.apply_window(values, window)), ".png", {
            "window": window.describe(), "window_center": window.center, "window_width": window.width}
    lo, hi = float(values.min()), float(values.max())
    step = (hi - lo) / 65535 if hi > lo else 1.0
    pixels = np.clip(np.rint((values - lo) / step), 0, 65535).astype(np.uint16)
    return png.encode(pixels), ".png", {"value_offset": lo, "value_step": step,
                                        "mapping": "modality value = value_offset + png * value_step"}


def export_aggregate(series: list[Series], request: AggregateRequest, out: str | Path, limits: Limits,
                     record: Callable[[Decision], dict[str, Any]]) -> AggregateExport:
    """Write the aggregate of ``series`` into ``out`` (see the module docstring); ``record``
    stores the decision (the audit chain) and returns the stored record."""
    check_request(request)
    limits.check_aggregate(len(series), len({s.patient_key for s in series}))
    for s in series:
        if s.modality in NON_IMAGE_MODALITIES:
            raise Refused("inputs", "not-an-image", f"a series holds {s.modality} objects, not images")
    ordered = sorted(series, key=lambda s: s.orthanc_id)
    acc = _Accumulator(request.statistic)
    grid: tuple[tuple[int, ...], tuple[float, ...]] | None = None
    for number, s in enumerate(ordered, start=1):
        vol = load_volume(s, f"series {number} of {len(ordered)}")
        if grid is None:
            if request.statistic == "template":
                spacing = request.spacing or min(vol.spacing)
                extent = np.array(vol.values.shape) * np.array(vol.spacing)
                grid = tuple(max(1, int(round(e / spacing))) for e in extent), (spacing,) * vol.values.ndim
            else:
                grid = vol.values.shape, vol.spacing
        if vol.values.ndim != len(grid[0]):
            raise Refused("inputs", "mixed-dimensions", "the series mix 2-D images and 3-D volumes")
        acc.add(_in_mm(vol, grid[0], grid[1][0]) if request.statistic == "template" else _onto(vol, grid[0]))
        del vol
    assert grid is not None
    result = acc.result()
    three_d = result.ndim == 3
    if three_d and request.format in ("png8", "png16"):
        raise Refused("--format", "nifti-for-volumes", "a 3-D aggregate is written as NIfTI")
    if not three_d and request.format == "nifti":
        raise Refused("--format", "png-for-images", "a 2-D aggregate is written as PNG (png16 or png8)")
    with Staging(out) as staging:
        if three_d:
            data, suffix, how = _nifti(result, grid[1]), ".nii", {"format": "nifti", "dtype": "float32"}
        else:
            data, suffix, how = _image_2d(result, request)
            how["format"] = "png8" if request.format == "png8" else "png16"
        entry = staging.write(data, suffix)
        output = {**entry, "statistic": request.statistic, "shape": list(result.shape),
                  "spacing_mm": [round(float(v), 6) for v in grid[1]], **how}
        patients = len({s.patient_key for s in series})
        decision = Decision(
            criterion=1, classification=AGGREGATE, decided_by=request.decided_by, clinician=request.clinician,
            statement=request.statement, source_series=[s.orthanc_id for s in ordered], outputs=[output],
            limits=limits.to_dict(),
            rationale=(f"{request.statistic} over {len(series)} series from {patients} distinct patients (at least "
                       f"{limits.min_aggregate_patients} of each); one {'NIfTI volume' if three_d else 'PNG image'} "
                       "with no metadata beyond geometry (voxel size, origin 0); no DICOM metadata."),
            checks={"series": len(series), "patients": patients},
            method={"statistic": request.statistic, "resampling": "linear",
                    "grid": "template in mm, centred" if request.statistic == "template" else "first series"})
        out_dir, stored = staging.release(lambda: record(decision))
        return AggregateExport(out_dir, decision, stored)
