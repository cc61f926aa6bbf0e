"""Anonymous aggregates (criterion 1): ``orthanc-gdpr export-aggregate``.

Mean, median and standard deviation equal the voxel-wise statistics of the inputs; the NIfTI
file has geometry and nothing else; fewer than k patients is refused with nothing written; the
decision record is in the audit chain and in the anonymity report.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from anonymous_data import write_series
from orthanc_gdpr.anonymous.png import chunks
from orthanc_gdpr.cli import main as cli
from test_anonymous_slices import assert_refused, decisions, nothing_left


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> list[Path]:
    """Ten patients, one 6-slice 32 x 32 CT series each."""
    root = tmp_path_factory.mktemp("cohort")
    return [write_series(root / f"p{n}", 6, patient=f"PAT-{n:04d}", seed=n, size=32) for n in range(10)]


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'audit.sqlite'}"


def run(store: str, inputs, out: Path, statistic: str, *extra: str) -> int:
    return cli(["export-aggregate", *map(str, inputs), "--statistic", statistic, "--out", str(out),
                "--database-url", store, "--decided-by", "researcher-rita", *extra])


def hu_volume(folder: Path) -> np.ndarray:
    slices = sorted((pydicom.dcmread(p) for p in folder.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                     for d in slices])


@pytest.mark.parametrize("statistic, oracle", [("mean", np.mean), ("median", np.median), ("std", np.std)])
def test_statistic_equals_the_voxelwise_statistic_of_the_inputs(cohort, store, tmp_path, statistic, oracle):
    out = tmp_path / "out"
    assert run(store, cohort, out, statistic) == 0
    [path] = out.iterdir()
    assert path.suffix == ".nii" and len(path.stem) == 16
    image = nib.load(path)
    values = np.asarray(image.dataobj).transpose(2, 1, 0)  # NIfTI (x, y, z) back to (slice, row, column)
    expected = oracle(np.stack([hu_volume(f) for f in cohort]), axis=0)
    assert values.dtype == np.float32 and values.shape == expected.shape
    assert np.allclose(values, expected, atol=1e-3)
    [record] = decisions(store)
    assert (record["criterion"], record["classification"]) == (1, "anonymous-aggregate")
    assert record["checks"] == {"series": 10, "patients": 10} and len(record["source_series"]) == 10
    assert record["outputs"][0]["statistic"] == statistic and "10 distinct patients" in record["rationale"]


def test_nifti_carries_geometry_and_nothing_else(cohort, store, tmp_path):
    out = tmp_path / "out"
    assert run(store, cohort, out, "mean") == 0
    [path] = out.iterdir()
    data = path.read_bytes()
    assert not data.startswith(b"\x1f\x8b")  # not gzip: no time, no file name
    for phi in (b"Zyxwvut", b"PAT-0", b"Example Hospital", b"19700101", b"20240301"):
        assert phi not in data
    header = nib.load(path).header
    for key in ("descrip", "aux_file", "intent_name", "db_name"):
        assert header[key].item() in (b"", ""), key
    assert not header.extensions
    assert np.allclose(nib.load(path).affine, np.diag([0.8, 0.8, 2.0, 1.0]))
    assert header.get_xyzt_units()[0] == "mm"


def test_fewer_than_k_patients_is_refused(cohort, store, tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused(run(store, cohort[:9], out, "mean"), capsys, "inputs", "9 distinct patient(s)",
                   "at least 10 series from at least 10 distinct patients")
    nothing_left(tmp_path, out)
    twice = write_series(tmp_path / "again", 6, patient="PAT-0000", seed=99, size=32)  # a 2nd series of patient 0
    assert_refused(run(store, [*cohort[:9], twice], out, "mean"), capsys, "inputs", "10 series from 9 distinct")
    nothing_left(tmp_path, out)
    assert [r["rule"] for r in decisions(store)] == ["min-patients", "min-patients"]


def test_site_k_and_a_template_over_different_grids(cohort, store, tmp_path):
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"min_aggregate_patients": 3}))
    bigger = write_series(tmp_path / "big", 9, patient="PAT-BIG", seed=7, size=40)
    out = tmp_path / "out"
    assert run(store, [cohort[0], cohort[1], bigger], out, "template", "--spacing", "2", "--limits", str(limits)) == 0
    [path] = out.iterdir()
    image = nib.load(path)
    values = np.asarray(image.dataobj)
    assert np.isfinite(values).all() and np.allclose(np.diag(image.affine)[:3], 2.0)
    [record] = decisions(store)
    assert record["limits"]["min_aggregate_patients"] == 3 and record["method"]["grid"] == "template in mm, centred"


def test_two_dimensional_aggregate_is_a_16_bit_png_with_its_mapping_recorded(tmp_path, store):
    singles = [write_series(tmp_path / f"dx{n}", 1, patient=f"DX-{n}", seed=n, size=32) for n in range(10)]
    out = tmp_path / "out"
    assert run(store, singles, out, "mean") == 0
    [path] = out.iterdir()
    assert set(chunks(path.read_bytes())) == {"IHDR", "IDAT", "IEND"}
    [record] = decisions(store)
    entry = record["outputs"][0]
    values = entry["value_offset"] + np.array(Image.open(path)).astype(np.float64) * entry["value_step"]
    expected = np.mean([hu_volume(f)[0] for f in singles], axis=0)
    assert np.allclose(values, expected, atol=entry["value_step"])


def test_aggregate_decision_in_the_anonymity_report(cohort, store, tmp_path, capsys):
    assert run(store, cohort, tmp_path / "out", "median") == 0
    capsys.readouterr()
    assert cli(["audit", "anonymity-report", "--database-url", store, "--format", "csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["classification"], row["criterion"], row["decided_by"]) == ("anonymous-aggregate", "1",
                                                                             "researcher-rita")
    assert len(row["source_series"].split()) == 10 and json.loads(row["limits"])["min_aggregate_patients"] == 10


def test_two_dimensional_aggregate_as_a_windowed_8_bit_png(tmp_path, store):
    singles = [write_series(tmp_path / f"dx{n}", 1, patient=f"DX-{n}", seed=n, size=32) for n in range(10)]
    out = tmp_path / "out"
    assert run(store, singles, out, "median", "--format", "png8", "--window", "40,400") == 0
    [path] = out.iterdir()
    entry = decisions(store)[0]["outputs"][0]
    assert entry["window"] == "custom (C 40, W 400)"
    median = np.median([hu_volume(f)[0] for f in singles], axis=0)
    expected = np.clip(np.rint(((median - 39.5) / 399 + 0.5) * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(np.array(Image.open(path)), expected)
    assert run(store, singles, tmp_path / "nifti", "mean", "--format", "nifti") == 2  # 2-D is never NIfTI here
