"""Anonymous slices (criterion 2) from local files: ``orthanc-gdpr export-slices``.

Round trips (the PNG equals the windowed DICOM; png16 equals the stored values), files that carry
nothing but pixels, every refusal with nothing left behind, the burned-in slice refused or masked
on request, and the decision record in the audit chain and in ``audit anonymity-report``.
"""
from __future__ import annotations

import csv
import hashlib
import html.parser
import io
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from anonymous_data import BURNED_TEXT, write_documents, write_multiframe, write_series
from orthanc_gdpr.anonymous.png import chunks
from orthanc_gdpr.anonymous.series import series_from_files
from orthanc_gdpr.cli import main as cli
from orthanc_gdpr.pixels import text_detection
from portability import chain
from portability.db import Database

CLINICIAN, STATEMENT = "Dr. Maria Borg", "No rare or obvious features; routine anatomy."


@pytest.fixture(scope="module")
def series60(tmp_path_factory) -> Path:
    """60 CT slices; slice 30 has a name and ID burned in."""
    return write_series(tmp_path_factory.mktemp("ct") / "series", 60, text_on=(30,))


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'audit.sqlite'}"


def export(store: str, inputs, out: Path, *extra: str, slices: str = "12,40,50", attest: bool = True) -> int:
    args = ["export-slices", *map(str, inputs if isinstance(inputs, list) else [inputs]), "--slices", slices,
            "--out", str(out), "--database-url", store, "--decided-by", "researcher-rita", *extra]
    if attest:
        args += ["--clinician", CLINICIAN, "--statement", STATEMENT]
    return cli(args)


def decisions(store: str) -> list[dict]:
    db = Database(store)
    db.migrate()
    try:
        return [r for r in chain.records(db) if r["event"].startswith("anonymity.")]
    finally:
        db.dispose()


def pixels_of(series: Path, number: int) -> tuple[pydicom.Dataset, np.ndarray]:
    ds = pydicom.dcmread(series / f"ct{number:04d}.dcm")
    return ds, ds.pixel_array


def expected_window(stored: np.ndarray, ds, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear VOI on modality values, written out here as the oracle."""
    hu = stored.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    y = ((hu - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def test_png8_round_trip_equals_the_windowed_dicom_and_the_window_is_stated(series60, store, tmp_path, capsys):
    out = tmp_path / "out"
    assert export(store, series60, out, "--window", "soft-tissue") == 0
    [record] = decisions(store)
    by_slice = {o["slice"]: o for o in record["outputs"]}
    assert sorted(by_slice) == ["12", "40", "50"]
    for number in (12, 40, 50):
        entry = by_slice[str(number)]
        assert entry["window"] == "soft-tissue (C 40, W 400)"
        ds, stored = pixels_of(series60, number)
        png = np.array(Image.open(out / entry["file"]))
        assert png.dtype == np.uint8
        assert np.array_equal(png, expected_window(stored, ds, entry["window_center"], entry["window_width"]))
    printed = capsys.readouterr().out
    assert "criterion 2" in printed and f"seq {record['seq']}" in printed


def test_png16_round_trip_holds_the_stored_values(series60, store, tmp_path):
    out = tmp_path / "out"
    assert export(store, series60, out, "--format", "png16", slices="7,33") == 0
    [record] = decisions(store)
    for entry in record["outputs"]:
        ds, stored = pixels_of(series60, int(entry["slice"]))
        image = Image.open(out / entry["file"])
        assert image.mode == "I;16"
        assert np.array_equal(np.array(image).astype(np.int64) - entry["offset"], stored.astype(np.int64))
        assert (entry["rescale_slope"], entry["rescale_intercept"]) == (1.0, -1024.0)


def test_exported_files_carry_pixels_only(series60, store, tmp_path):
    out = tmp_path / "out"
    assert export(store, series60, out) == 0
    files = sorted(out.iterdir())
    assert len(files) == 3
    for path in files:
        assert re.fullmatch(r"[0-9a-f]{16}\.png", path.name)  # random: no UID, no slice number
        data = path.read_bytes()
        assert chunks(data) == ["IHDR"] + ["IDAT"] * (len(chunks(data)) - 2) + ["IEND"]
        for phi in (b"Zyxwvut", b"PAT-0001", b"Example Hospital", b"19700101", b"DICM"):
            assert phi not in data
        assert path.stat().st_mode & 0o077 == 0
        image = Image.open(path)
        assert not image.info and not image.getexif()


def test_decision_record_is_in_the_chain_with_hashes_limits_and_source(series60, store, tmp_path, capsys):
    out = tmp_path / "out"
    assert export(store, series60, out) == 0
    [record] = decisions(store)
    assert record["event"] == "anonymity.decision" and record["actor"] == "researcher-rita"
    assert record["criterion"] == 2 and record["classification"] == "anonymous-slices"
    assert (record["clinician"], record["statement"], record["decided_by"]) == (CLINICIAN, STATEMENT, "researcher-rita")
    assert record["limits"] == {"max_slices_per_series": 5, "max_series_fraction": 0.1, "min_aggregate_patients": 10}
    assert record["checks"]["burned_in_text"] == "none found"
    assert record["checks"]["detector"].startswith("text-detector ")  # with its models' version
    assert "3 of 60 slices" in record["rationale"] and CLINICIAN in record["rationale"]
    [only] = series_from_files([series60])
    assert record["source_series"] == [only.orthanc_id]
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert {o["file"]: o["sha256"] for o in record["outputs"]} == on_disk
    db = Database(store)
    assert chain.verify(db) == []
    db.dispose()
    capsys.readouterr()
    assert cli(["audit", "export", "--database-url", store]) == 0
    [event] = [e["resource"] for e in json.loads(capsys.readouterr().out)["entry"]
               if e["resource"]["subtype"][0]["code"] == "anonymity.decision"]
    assert event["type"]["code"] == "110106" and event["outcome"] == "0"  # BALP: an export


def assert_refused(code: int, capsys, field: str, *words: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"refused: {field}:"), err
    for word in words:
        assert word in err, err
    assert "Zyxwvut" not in err and "PAT-" not in err
    return err


def nothing_left(tmp_path: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".anonymous-")]


@pytest.mark.parametrize("slices, field, words", [
    ("1,2,3,4,5,6", "--slices", ("limit is 5 slices per series",)),
    ("all", "--slices", ("whole volume",)),
    ("1-60", "--slices", ("whole volume",)),
    ("99", "--slices", ("slice 99 is not in the series", "instance numbers 1-60")),
    ("12,x", "--slices", ("not N, N-M, N:F or N:F-G",)),
    ("12:2", "--slices", ("has 1 frame",)),
])
def test_bad_selections_are_refused_naming_the_rule(series60, store, tmp_path, capsys, slices, field, words):
    out = tmp_path / "out"
    assert_refused(export(store, series60, out, slices=slices), capsys, field, *words)
    nothing_left(tmp_path, out)


def test_fewer_than_ten_percent_of_the_series(tmp_path, store, capsys):
    series = write_series(tmp_path / "s30", 30)
    out = tmp_path / "out"
    assert_refused(export(store, series, out, slices="1,10,20"), capsys, "--slices",
                   "10.0 % of the series", "fewer than 10 %")
    nothing_left(tmp_path, out)
    [refusal] = decisions(store)
    assert refusal["event"] == "anonymity.refused" and refusal["rule"] == "max-fraction"
    assert export(store, series, out, slices="1,20") == 0


def test_site_limits_file_tightens_and_is_recorded(series60, store, tmp_path, capsys):
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"max_slices_per_series": 2, "purpose": "teaching set: two slices at most"}))
    out = tmp_path / "out"
    assert_refused(export(store, series60, out, "--limits", str(limits)), capsys, "--slices", "limit is 2 slices")
    assert export(store, series60, out, "--limits", str(limits), slices="5,9") == 0
    assert decisions(store)[-1]["limits"]["max_slices_per_series"] == 2


@pytest.mark.parametrize("missing", ["--clinician", "--statement"])
def test_no_export_without_the_clinicians_attestation(series60, store, tmp_path, capsys, missing):
    out = tmp_path / "out"
    args = ["--clinician", CLINICIAN, "--statement", STATEMENT]
    i = args.index(missing)
    del args[i:i + 2]
    assert_refused(export(store, series60, out, *args, attest=False), capsys, missing, "criterion 2")
    nothing_left(tmp_path, out)
    assert decisions(store) == []


def test_no_export_without_an_audit_store(series60, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ORTHANC_GDPR_SERVICE_DATABASE_URL", raising=False)
    out = tmp_path / "out"
    code = cli(["export-slices", str(series60), "--slices", "12", "--out", str(out), "--clinician", CLINICIAN,
                "--statement", STATEMENT])
    assert_refused(code, capsys, "--data-dir", "audit store")
    nothing_left(tmp_path, out)


def test_burned_in_slice_is_refused_and_nothing_is_written(series60, store, tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused(export(store, series60, out, slices="12,30"), capsys, "--slices", "slice 30", "burned-in text",
                   "masked")
    nothing_left(tmp_path, out)
    assert BURNED_TEXT not in capsys.readouterr().err
    [refusal] = decisions(store)
    assert refusal["rule"] == "burned-in-text"


def test_burned_in_text_is_masked_only_on_request_and_the_record_says_so(series60, store, tmp_path):
    out = tmp_path / "out"
    assert export(store, series60, out, "--mask-text", slices="30") == 0
    [record] = decisions(store)
    assert record["checks"]["burned_in_text"] == "masked"
    [masked] = record["checks"]["masked"]
    assert masked["slice"] == "30" and masked["boxes"]
    png = np.array(Image.open(out / record["outputs"][0]["file"]))
    for x0, y0, x1, y1 in masked["boxes"]:
        assert not png[y0:y1, x0:x1].any()
    assert "masked" in record["rationale"]


def test_multiframe_instance_needs_a_frame_number(tmp_path, store, capsys):
    path = write_multiframe(tmp_path / "mf", 60)
    out = tmp_path / "out"
    assert_refused(export(store, path, out, slices="1"), capsys, "--slices", "instance 1 has 60 frames", "1:FRAME")
    nothing_left(tmp_path, out)
    assert export(store, path, out, slices="1:7,1:30") == 0
    ds = pydicom.dcmread(path)
    [record] = decisions(store)[-1:]
    entry = {o["slice"]: o for o in record["outputs"]}["1:7"]
    expected = expected_window(ds.pixel_array[6], ds, entry["window_center"], entry["window_width"])
    assert np.array_equal(np.array(Image.open(out / entry["file"])), expected)


@pytest.mark.parametrize("kind", ["SR", "DOC"])
def test_reports_and_pdfs_are_not_images(tmp_path, store, capsys, kind):
    out = tmp_path / "out"
    assert_refused(export(store, write_documents(tmp_path / kind, kind), out, slices="3"), capsys, "inputs",
                   f"holds {kind} objects, not images")
    nothing_left(tmp_path, out)


def test_an_object_without_pixels_inside_an_image_series_is_refused(tmp_path, store, capsys):
    series = write_series(tmp_path / "s", 60)
    ds = pydicom.dcmread(series / "ct0012.dcm")
    del ds.PixelData
    ds.save_as(series / "ct0012.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    assert_refused(export(store, series, out, slices="5,12"), capsys, "--slices", "slice 12 is not an image",
                   "no pixel data")
    nothing_left(tmp_path, out)


def test_one_series_at_a_time_and_an_existing_output_is_kept(series60, tmp_path, store, capsys):
    other = write_series(tmp_path / "other", 60, patient="PAT-0002", seed=2)
    assert_refused(export(store, [series60, other], tmp_path / "out"), capsys, "inputs", "2 series")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert_refused(export(store, series60, taken), capsys, "--out", "not empty")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]


class _Cells(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.title = ""
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "td":
            self.cells.append(data)
        elif self._in == "title":
            self.title += data


def test_anonymity_report_lists_decisions_and_calls_pseudonymised_exports_pseudonymised(series60, store, tmp_path,
                                                                                         capsys):
    from orthanc_gdpr.audit import AuditLog

    out = tmp_path / "out"
    assert export(store, series60, out) == 0
    log = AuditLog(tmp_path / "plugin-audit.jsonl")  # a download with the research profile, an older record
    log.append("download", user="bob", level="studies", resource="study-b", profile="research", purpose="research")
    [record] = decisions(store)
    db = Database(store)  # a study released after review, its approver calling it anonymous
    chain.append(db, "release.approved", actor="rita", study="study-c", profile="research",
                 classification="anonymous-slices", clinician=CLINICIAN)
    db.dispose()
    capsys.readouterr()
    assert cli(["audit", "anonymity-report", "--database-url", store, "--plugin-log", str(log.path),
                "--format", "csv", "--since", "2000-01-01T00:00:00+00:00"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    by_event = {r["event"]: r for r in rows}
    decision = by_event["anonymity.decision"]
    assert (decision["classification"], decision["criterion"], decision["clinician"]) == \
        ("anonymous-slices", "2", CLINICIAN)
    assert decision["statement"] == STATEMENT and decision["audit_seq"] == str(record["seq"])
    assert decision["sha256"].split() == [o["sha256"] for o in record["outputs"]]
    assert by_event["download"]["classification"] == "pseudonymised"
    release = by_event["release.approved"]
    assert release["classification"] == "pseudonymised" and "recorded as anonymous-slices" in release["note"]
    assert cli(["audit", "anonymity-report", "--database-url", store, "--format", "html",
                "-o", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    parsed = _Cells()
    parsed.feed(page)
    assert parsed.title == "Anonymity report" and "style=" not in page and "<script" not in page
    assert CLINICIAN in parsed.cells and "pseudonymised" in parsed.cells and "anonymous-slices" in parsed.cells
    assert cli(["audit", "anonymity-report", "--database-url", store, "--format", "csv",
                "--until", "2000-01-01T00:00:00+00:00"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1  # header only: the period filters


def test_no_export_when_the_text_check_cannot_run(series60, store, tmp_path, capsys, monkeypatch):
    models = tmp_path / "broken-models"  # the detector's models cannot be loaded
    models.mkdir()
    for name in (text_detection.DETECTION_MODEL, text_detection.RECOGNITION_MODEL):
        (models / name).write_bytes(b"not an onnx model")
    monkeypatch.setenv(text_detection.MODELS_ENV, str(models))
    text_detection.unload_models()
    out = tmp_path / "out"
    try:
        assert_refused(export(store, series60, out, slices="30"), capsys, "--slices", "text check cannot run")
    finally:
        text_detection.unload_models()
    nothing_left(tmp_path, out)


def test_anonymity_report_page_in_a_browser(series60, store, tmp_path, browser):
    assert export(store, series60, tmp_path / "out") == 0
    report = tmp_path / "report.html"
    assert cli(["audit", "anonymity-report", "--database-url", store, "-o", str(report)]) == 0
    browser.driver.get(report.as_uri())
    browser.check("anonymity-report")
    assert browser.driver.title == "Anonymity report"
    assert CLINICIAN in browser.text() and "Criterion" not in browser.driver.title


def test_a_truncated_slice_is_refused_cleanly(tmp_path, store, capsys):
    series = write_series(tmp_path / "s", 60)
    path = series / "ct0012.dcm"
    path.write_bytes(path.read_bytes()[:-1000])  # pixel data cut short
    out = tmp_path / "out"
    assert_refused(export(store, series, out, slices="5,12"), capsys, "--slices", "slice 12")
    nothing_left(tmp_path, out)


def test_an_export_whose_record_fails_is_removed(series60, tmp_path):
    from orthanc_gdpr.anonymous import Limits
    from orthanc_gdpr.anonymous.selection import parse_slices
    from orthanc_gdpr.anonymous.slices import SliceRequest, export_slices

    [series] = series_from_files([series60])
    request = SliceRequest(parse_slices("12"), "researcher-rita", CLINICIAN, STATEMENT)

    def store_down(decision):
        raise ConnectionError("the audit store is down")

    out = tmp_path / "out"
    with pytest.raises(ConnectionError):
        export_slices(series, request, out, Limits(), store_down)
    nothing_left(tmp_path, out)
