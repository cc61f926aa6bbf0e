"""A series as one array in modality units, with its voxel spacing: the input of aggregates.

Slices are ordered along the slice normal (Image Position Patient projected on the cross product
of Image Orientation Patient), else by Instance Number; frames of a multi-frame instance follow
in their order. Spacing: Pixel Spacing in the plane; between slices, the median distance of
their positions, else Slice Thickness, else 1 mm. A series of one slice is a 2-D image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ..pixels import render
from ..pixels.codecs import CodecError
from .refusal import Refused
from .series import Series, not_an_image


@dataclass
class Volume:
    values: np.ndarray  #: float32, (slices, rows, columns) or (rows, columns)
    spacing: tuple[float, ...]  #: mm per voxel along each axis of ``values``


def _floats(value, count: int) -> list[float] | None:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == count else None


def _position(ds: Dataset) -> float | None:
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    if orientation is None or position is None:
        return None
    return float(np.dot(np.cross(orientation[:3], orientation[3:]), position))


def load_volume(series: Series, name: str) -> Volume:
    """The whole series ``name`` (for refusals) as a :class:`Volume`."""
    planes: list[tuple[float, int, np.ndarray]] = []
    first: Dataset | None = None
    positions: list[float | None] = []
    for member in series.members:
        ds = member.load()
        reason = not_an_image(ds)
        if reason:
            raise Refused("inputs", "not-an-image", f"{name} holds an object that is not an image ({reason})")
        if render.is_colour(ds):
            raise Refused("inputs", "grey-only", f"{name} is in colour: aggregates are made of grey images")
        try:
            frames = render.frames(ds)
        except CodecError as exc:
            raise Refused("inputs", "undecodable", f"{name}: {exc}") from None
        first = first or ds
        pos = _position(ds)
        positions.append(pos)
        for i, frame in enumerate(frames):
            key = pos if pos is not None and len(frames) == 1 else float(member.instance_number or 0) + i / 1e4
            planes.append((key, i, render.modality_values(ds, frame)))
    assert first is not None
    shapes = {p[2].shape for p in planes}
    if len(shapes) != 1:
        raise Refused("inputs", "mixed-sizes", f"{name} mixes image sizes {sorted(shapes)}")
    planes.sort(key=lambda p: (p[0], p[1]))
    row, col = _floats(first.get("PixelSpacing"), 2) or [1.0, 1.0]
    if len(planes) == 1:
        return Volume(planes[0][2], (row, col))
    known = sorted(p for p in positions if p is not None)
    gaps = np.diff(known) if len(known) == len(positions) and len(known) > 1 else np.array([])
    between = float(np.median(gaps)) if gaps.size and np.median(gaps) > 0 else float(first.get("SliceThickness") or 1)
    return Volume(np.stack([p[2] for p in planes]).astype(np.float32), (between, row, col))
