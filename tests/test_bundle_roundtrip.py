"""The staff command line: ``orthanc-gdpr bundle`` from Orthanc A, ``import-bundle`` into Orthanc B;
and what happens on bad input and faults (unknown patient, Orthanc down mid-build, disk full,
tampered bundle)."""
from __future__ import annotations

import hashlib
import io
import os
import resource
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom
import pytest

from orthanc_server import make_ct_study
from portability.bundle import BundleError, build_bundle
from portability.orthanc import OrthancClient, OrthancError

CLI = [sys.executable, "-m", "orthanc_gdpr.cli"]


def cli(*args, env=None, preexec_fn=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)


def pixels_by_sop(server) -> dict[str, tuple[str, str, str]]:
    out = {}
    for iid in server.get_json("/instances"):
        ds = pydicom.dcmread(io.BytesIO(server.get(f"/instances/{iid}/file").content))
        out[str(ds.SOPInstanceUID)] = (hashlib.sha256(ds.PixelData).hexdigest(), str(ds.PatientID),
                                       str(ds.PatientName))
    return out


def test_cli_bundle_then_import_bundle_round_trip_between_two_orthancs(orthanc_factory, tmp_path):
    a, b = orthanc_factory(), orthanc_factory()
    for data in make_ct_study(5, patient_id="RT-1", patient_name="Round^Trip", series=2):
        a.upload(data)
    for data in make_ct_study(2, patient_id="OTHER", patient_name="Some^One"):
        a.upload(data)  # another patient: must not travel
    out = tmp_path / "rt.zip"
    # credentials in the URL itself
    url_a = a.url.replace("http://", f"http://{a.username}:{a.password}@")
    r = cli("bundle", "--quiet", "--orthanc", url_a, "--patient", "RT-1", out)
    assert r.returncode == 0, r.stderr
    assert "5 instances" in r.stdout
    # credentials from the environment
    r = cli("import-bundle", "--quiet", "--orthanc", b.url, out,
            env={"ORTHANC_GDPR_ORTHANC_USERNAME": b.username, "ORTHANC_GDPR_ORTHANC_PASSWORD": b.password})
    assert r.returncode == 0, r.stderr
    assert "5 instances uploaded" in r.stdout
    src = {k: v for k, v in pixels_by_sop(a).items() if v[1] == "RT-1"}
    assert pixels_by_sop(b) == src  # same SOP Instance UIDs, same pixel data, same patient
    assert len(b.get_json("/patients")) == 1


def test_import_refuses_a_tampered_bundle_and_uploads_nothing(orthanc_factory, tmp_path):
    a, b = orthanc_factory(), orthanc_factory()
    for data in make_ct_study(2, patient_id="TAMPER"):
        a.upload(data)
    good = tmp_path / "good.zip"
    build_bundle(OrthancClient(a.url, (a.username, a.password)), good, patient_id="TAMPER")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith("PT") and info.filename.endswith("IM000000"):
                data = data[:-4] + b"\x00\x00\x00\x01"
            zout.writestr(info, data)
    r = cli("import-bundle", "--orthanc", b.url, "--username", b.username, bad,
            env={"ORTHANC_GDPR_ORTHANC_PASSWORD": b.password})
    assert r.returncode == 5 and "checksum mismatch" in r.stderr
    assert b.get_json("/instances") == []


def test_unknown_patient_is_a_clear_error_and_writes_nothing(orthanc, tmp_path):
    out = tmp_path / "none.zip"
    password_file = tmp_path / "orthanc-password"
    password_file.write_text(orthanc.password + "\n")
    r = cli("bundle", "--orthanc", orthanc.url, "--username", orthanc.username, "--password-file",
            password_file, "--patient", "NOBODY", out)
    assert r.returncode == 3 and "unknown patient" in r.stderr
    assert list(tmp_path.iterdir()) == [p for p in tmp_path.iterdir() if p.name.startswith("orthanc")]


def test_orthanc_down_mid_build_removes_the_partial_and_retry_works(orthanc, tmp_path):
    for data in make_ct_study(12, patient_id="MID-1", series=3):
        orthanc.upload(data)
    client = OrthancClient(orthanc.url, (orthanc.username, orthanc.password))
    out = tmp_path / "out" / "mid.zip"

    def kill_midway(phase, done, total):
        if phase == "downloading" and done == 3:
            orthanc.stop()

    with pytest.raises((OrthancError, BundleError)):
        build_bundle(client, out, patient_id="MID-1", progress=kill_midway, workers=1)
    assert list(out.parent.iterdir()) == []  # no partial ZIP, no staging directory
    orthanc.start()
    result = build_bundle(client, out, patient_id="MID-1")
    assert result.instances == 12 and zipfile.ZipFile(out).testzip() is None


def _small_file_limit():
    # "Disk full" for this process only: writes past 1 MB fail (EFBIG) instead of killing it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_disk_full_fails_cleanly_and_leaves_nothing(orthanc, tmp_path):
    for data in make_ct_study(12, patient_id="FULL-1", rows=256):
        orthanc.upload(data)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = cli("bundle", "--quiet", "--orthanc", orthanc.url, "--username", orthanc.username,
            "--patient", "FULL-1", out_dir / "full.zip", preexec_fn=_small_file_limit,
            env={"ORTHANC_GDPR_ORTHANC_PASSWORD": orthanc.password})
    assert r.returncode == 4 and "not enough disk space" in r.stderr, r.stderr
    assert list(out_dir.iterdir()) == []
