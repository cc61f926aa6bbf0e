"""Anonymous slices of a study in a real Orthanc, through the service (reviewer role and above)."""
from __future__ import annotations

import base64
import io
import zipfile

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from anonymous_data import write_multiframe, write_series
from orthanc_gdpr.anonymous.png import chunks
from orthanc_gdpr.anonymous.series import series_from_files
from portability import chain
from portability.app import create_app
from portability.settings import Settings
from test_anonymous_slices import CLINICIAN, STATEMENT, expected_window

REVIEWER = {"Authorization": "Bearer tok-reviewer"}
STAFF = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()}


@pytest.fixture
def loaded(orthanc, tmp_path):
    """Orthanc with a 60-slice CT series (slice 30 with burned-in text) and a multi-frame one."""
    folder = write_series(tmp_path / "ct", 60, text_on=(30,))
    for path in sorted(folder.iterdir()):
        orthanc.upload(path)
    multiframe = write_multiframe(tmp_path / "mf", 60)
    orthanc.upload(multiframe)
    [series] = series_from_files([folder])
    [mf] = series_from_files([multiframe])
    return folder, series.orthanc_id, mf.orthanc_id


@pytest.fixture
def client(orthanc, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'service.sqlite'}",
                        orthanc_url=orthanc.url, orthanc_username=orthanc.username,
                        orthanc_password=orthanc.password, staff_users={"alice": ("alice-pw", "staff")},
                        staff_tokens={"tok-reviewer": "reviewer"}, worker=False)
    with TestClient(create_app(settings)) as c:
        yield c


def study_of(orthanc, series_id: str) -> str:
    return orthanc.get_json(f"/series/{series_id}")["ParentStudy"]


def post(client, study, headers=REVIEWER, **body):
    payload = {"clinician": CLINICIAN, "statement": STATEMENT, **body}
    return client.post(f"/studies/{study}/anonymous-slices", json=payload, headers=headers)


def records(client, event):
    return [r for r in chain.records(client.app.state.db) if r["event"] == event]


def test_reviewer_exports_slices_of_a_study_in_orthanc(orthanc, loaded, client):
    folder, series_id, _ = loaded
    assert series_id in orthanc.get_json("/series"), "the Orthanc ID computed from the files is Orthanc's own"
    r = post(client, study_of(orthanc, series_id), series=series_id, slices="12,40", window="soft-tissue")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    [record] = records(client, "anonymity.decision")
    assert r.headers["x-audit-seq"] == str(record["seq"])
    assert record["actor"] == "token:tok-…" and record["source_series"] == [series_id]
    assert (record["criterion"], record["clinician"], record["statement"]) == (2, CLINICIAN, STATEMENT)
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(i.filename for i in archive.infolist()) == sorted(o["file"] for o in record["outputs"])
    for info in archive.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0) and not info.comment and not info.extra
    for entry in record["outputs"]:
        data = archive.read(entry["file"])
        assert set(chunks(data)) == {"IHDR", "IDAT", "IEND"}
        ds = pydicom.dcmread(folder / f"ct{int(entry['slice']):04d}.dcm")
        assert np.array_equal(np.array(Image.open(io.BytesIO(data))),
                              expected_window(ds.pixel_array, ds, entry["window_center"], entry["window_width"]))
    assert not list((client.app.state.settings.data_dir / "anonymous").iterdir())  # nothing kept on the server


def test_staff_below_reviewer_is_refused(orthanc, loaded, client):
    _, series_id, _ = loaded
    r = post(client, study_of(orthanc, series_id), headers=STAFF, series=series_id, slices="12")
    assert r.status_code == 403
    assert records(client, "anonymity.decision") == []


@pytest.mark.parametrize("body, field, rule", [
    ({"slices": "1-6"}, "--slices", "max-slices"),
    ({"slices": "all"}, "--slices", "whole-volume"),
    ({"slices": "99"}, "--slices", "out-of-range"),
    ({"slices": "30"}, "--slices", "burned-in-text"),
    ({"slices": "12", "clinician": ""}, "--clinician", "attestation-required"),
])
def test_refusals_name_the_rule_and_are_audited(orthanc, loaded, client, body, field, rule):
    _, series_id, _ = loaded
    r = post(client, study_of(orthanc, series_id), series=series_id, **body)
    assert r.status_code == 422, r.text
    assert r.json() == {"error": "refused", "field": field, "rule": rule, "detail": r.json()["detail"]}
    assert "Zyxwvut" not in r.text and "PAT-" not in r.text
    assert records(client, "anonymity.decision") == []
    refused = records(client, "anonymity.refused")
    if rule in ("max-slices", "out-of-range", "burned-in-text"):  # checks made on the series
        assert [x["rule"] for x in refused] == [rule] and refused[0]["source_series"] == [series_id]


def test_multiframe_in_orthanc_needs_a_frame(orthanc, loaded, client):
    _, _, mf_id = loaded
    study = study_of(orthanc, mf_id)
    r = post(client, study, slices="1")
    assert r.status_code == 422 and r.json()["rule"] == "frame-required"
    r = post(client, study, slices="1:5", format="png16")
    assert r.status_code == 200, r.text
    [record] = records(client, "anonymity.decision")
    assert record["outputs"][0]["slice"] == "1:5" and record["outputs"][0]["format"] == "png16"


def test_unknown_study_or_foreign_series(orthanc, loaded, client):
    _, series_id, mf_id = loaded
    assert post(client, "0" * 8 + "-00000000" * 4, slices="1").json()["rule"] == "not-found"
    assert post(client, "../patients", slices="1").status_code in (404, 422)  # not an Orthanc ID
    r = post(client, study_of(orthanc, series_id), series=mf_id, slices="1:5")
    assert r.status_code == 422 and r.json()["rule"] == "not-in-study"


def test_aggregate_of_series_in_orthanc_matches_the_same_export_from_files(orthanc, client, tmp_path):
    """Ten patients in Orthanc: the service's mean is byte for byte the command line's on the same files."""
    from orthanc_gdpr.cli import main as cli

    folders = [write_series(tmp_path / f"p{n}", 4, patient=f"AGG-{n:02d}", seed=n, size=32) for n in range(10)]
    for folder in folders:
        for path in sorted(folder.iterdir()):
            orthanc.upload(path)
    ids = [s.orthanc_id for f in folders for s in series_from_files([f])]
    r = client.post("/anonymous-aggregates", json={"series": ids, "statistic": "mean"}, headers=REVIEWER)
    assert r.status_code == 200, r.text
    [record] = records(client, "anonymity.decision")
    assert record["criterion"] == 1 and sorted(record["source_series"]) == sorted(ids)
    [name] = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert name.endswith(".nii")
    store = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert cli(["export-aggregate", *map(str, folders), "--statistic", "mean", "--out", str(tmp_path / "local"),
                "--database-url", store]) == 0
    [local] = (tmp_path / "local").iterdir()
    assert zipfile.ZipFile(io.BytesIO(r.content)).read(name) == local.read_bytes()

    r = client.post("/anonymous-aggregates", json={"series": ids[:9], "statistic": "mean"}, headers=REVIEWER)
    assert r.status_code == 422 and r.json()["rule"] == "min-patients"
    assert [x["rule"] for x in records(client, "anonymity.refused")] == ["min-patients"]
    r = client.post("/anonymous-aggregates", json={"series": ids, "statistic": "mean"}, headers=STAFF)
    assert r.status_code == 403
