"""Clean Recognizable Visual Features (PS3.15 E.3.2): removing the face from head CT and MR.

The slices are stacked along the slice normal (sorted by Image Position (Patient)) into a
volume. The cranial cavity is found from the skull: for CT, bone (above :data:`BONE_HU`) closed
per slice; its interior is the brain. For MR, where bone gives no signal, the brain is taken
as the head's upper part eroded by :data:`MR_SCALP_MM`. A plane at 45 degrees, tilted down and
forward, is then placed :data:`MARGIN_MM` in front of and below the brain's most
anterior-inferior point; every voxel beyond it (the face: skin and soft tissue in front of and
below the skull base, the nose, the eyes, the jaw) is set to air. The brain, behind the plane by
construction, keeps its values exactly. Masked slices are written back with
:func:`.codecs.encode`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from scipy import ndimage as ndi

from .codecs import CodecError, decode, encode

BONE_HU = 300
AIR_HU = -1000
MARGIN_MM = 5.0
MR_SCALP_MM = 12.0


class DefaceError(ValueError):
    """The series cannot be defaced (not a volume, no head found, ...)."""


@dataclass(frozen=True)
class DefaceReport:
    slices: int
    voxels_removed: int
    brain_voxels: int
    method: str


def _geometry(slices: list[Dataset]) -> tuple[list[Dataset], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slices sorted along the normal, and the origin and per-index steps (mm) in patient space."""
    try:
        iop = np.array(slices[0].ImageOrientationPatient, float)
        row, col = iop[:3], iop[3:]
        normal = np.cross(row, col)
        ordered = sorted(slices, key=lambda s: float(np.dot(normal, np.array(s.ImagePositionPatient, float))))
        first, last = (np.array(s.ImagePositionPatient, float) for s in (ordered[0], ordered[-1]))
        spacing = np.array(ordered[0].PixelSpacing, float)
    except (AttributeError, IndexError, ValueError) as exc:
        raise DefaceError(f"slices lack geometry: {exc}") from exc
    step_k = (last - first) / max(1, len(ordered) - 1)
    return ordered, first, step_k, col * spacing[0], row * spacing[1]


def _hounsfield(ds: Dataset, frame: np.ndarray) -> np.ndarray:
    return frame * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    return labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)


def _brain(volume: np.ndarray, ct: bool, voxel_mm: float) -> np.ndarray:
    if ct:
        bone = volume > BONE_HU
        closed = np.stack([ndi.binary_fill_holes(ndi.binary_closing(s, iterations=2)) for s in bone])
        return _largest(closed & ~bone & (volume > AIR_HU / 2))
    head = volume > np.percentile(volume, 60) * 0.3
    head = np.stack([ndi.binary_fill_holes(s) for s in _largest(head)])
    return ndi.binary_erosion(head, iterations=max(1, int(MR_SCALP_MM / voxel_mm)))


def deface_volume(slices: list[Dataset], reencode: str = "lossless") -> DefaceReport:
    """Remove the face from a head CT or MR series in place (see the module docstring)."""
    if len(slices) < 3:
        raise DefaceError("a volume needs at least 3 slices")
    ordered, origin, step_k, step_r, step_c = _geometry(slices)
    ct = str(ordered[0].get("Modality", "")).upper() == "CT"
    stored = np.stack([decode(s)[0] for s in ordered])
    volume = np.stack([_hounsfield(s, f) for s, f in zip(ordered, stored)]) if ct else stored.astype(np.float64)
    brain = _brain(volume, ct, float(min(np.linalg.norm(step_r), np.linalg.norm(step_c))))
    if not brain.any():
        raise DefaceError("no brain found: is this a head?")
    # score = anterior (-y) + inferior (-z) distance, in mm, of every voxel: linear in the indices
    direction = np.array([0.0, -1.0, -1.0]) / np.sqrt(2)
    k, r, c = np.ogrid[0:volume.shape[0], 0:volume.shape[1], 0:volume.shape[2]]
    score = (direction @ origin + (direction @ step_k) * k + (direction @ step_r) * r + (direction @ step_c) * c)
    face = score > score[brain].max() + MARGIN_MM
    if ct:
        air = np.round((AIR_HU - float(ordered[0].get("RescaleIntercept", 0) or 0))
                       / float(ordered[0].get("RescaleSlope", 1) or 1))
        air = max(air, stored.min())
    else:
        air = stored.min()
    removed = int((face & (stored != air)).sum())
    for i, ds in enumerate(ordered):
        if face[i].any():
            frame = stored[i].copy()
            frame[face[i]] = air
            try:
                encode(ds, frame[None, ...], reencode)
            except CodecError as exc:
                raise DefaceError(str(exc)) from exc
    return DefaceReport(len(ordered), removed, int(brain.sum()), "CT skull plane" if ct else "MR head plane")
