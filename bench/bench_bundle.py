"""Benchmark: portability bundle build vs Orthanc's own ``/studies/{id}/media``, same study, same run.

Starts a real Orthanc (tests/orthanc_server.py), stores one generated CT study of about
``--megabytes`` MB (512x512 16-bit slices), then measures

* ``GET /studies/{id}/media`` (Orthanc's DICOMDIR ZIP), streamed to disk: wall time;
* ``orthanc-gdpr bundle --study UID`` in a subprocess: wall time and peak RSS (``wait4`` ru_maxrss).

Targets: bundle >= 3x faster than /media, peak RSS <= 300 MB.

    .venv/bin/python bench/bench_bundle.py --megabytes 1000
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import pydicom  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from orthanc_server import OrthancServer  # noqa: E402

ROWS = 512


def instances(count: int):
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study, frame = generate_uid(), generate_uid()
    series = [generate_uid() for _ in range(4)]
    rng_pixels = [os.urandom(ROWS * ROWS * 2) for _ in range(8)]
    for i in range(count):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.PatientID, ds.PatientName = "BENCH-1", "Bench^Mark"
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = study, frame
        ds.SeriesInstanceUID = series[i % 4]
        ds.SeriesNumber, ds.InstanceNumber = i % 4 + 1, i + 1
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Rows = ds.Columns = ROWS
        ds.PixelData = rng_pixels[i % 8]
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        yield study, buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megabytes", type=int, default=1000)
    args = ap.parse_args()
    count = max(4, args.megabytes * 1024 * 1024 // (ROWS * ROWS * 2 + 2000))
    with tempfile.TemporaryDirectory(prefix="bench-bundle-", dir=REPO / "bench") as tmp:
        work = Path(tmp)
        server = OrthancServer(work / "orthanc", stable_age=60).start()
        try:
            t = time.monotonic()
            study_uid = None
            with ThreadPoolExecutor(4) as pool:
                futs = []
                for study_uid, data in instances(count):
                    futs.append(pool.submit(server.upload, data))
                    if len(futs) > 32:
                        futs.pop(0).result()
                for f in futs:
                    f.result()
            stats = server.get_json("/statistics")
            print(f"stored {count} instances, {int(stats['TotalDiskSizeMB'])} MB in {time.monotonic() - t:.0f} s")
            study_id = server.post_json("/tools/lookup", None, data=study_uid)[0]["ID"]

            t = time.monotonic()
            with server.session.get(f"{server.url}/studies/{study_id}/media", stream=True, timeout=3600) as r:
                r.raise_for_status()
                with open(work / "media.zip", "wb") as f:
                    for chunk in r.iter_content(1 << 20):
                        f.write(chunk)
            media_s = time.monotonic() - t
            media_size = (work / "media.zip").stat().st_size
            (work / "media.zip").unlink()

            url = server.url.replace("http://", f"http://{server.username}:{server.password}@")
            argv = [str(REPO / ".venv" / "bin" / "orthanc-gdpr"), "bundle", "--quiet", "--orthanc", url,
                    "--patient", "BENCH-1", "--study", study_uid, str(work / "bundle.zip")]
            t = time.monotonic()
            proc = subprocess.Popen(argv)
            _, status, usage = os.wait4(proc.pid, 0)
            bundle_s = time.monotonic() - t
            if status != 0:
                print("bundle command failed", file=sys.stderr)
                return 1
            bundle_size = (work / "bundle.zip").stat().st_size
            rss_mb = usage.ru_maxrss / 1024
            print(f"Orthanc /studies/{{id}}/media: {media_s:6.1f} s  ({media_size / 1e6:.0f} MB)")
            print(f"orthanc-gdpr bundle:          {bundle_s:6.1f} s  ({bundle_size / 1e6:.0f} MB), "
                  f"peak RSS {rss_mb:.0f} MB")
            print(f"speed-up {media_s / bundle_s:.1f}x (target >= 3x); peak RSS target <= 300 MB: "
                  f"{'met' if rss_mb <= 300 else 'MISSED'}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
