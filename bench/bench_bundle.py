"""Benchmark: portability bundle build vs Orthanc's own ``/studies/{id}/media``, same study, same run.

Starts a real Orthanc (tests/orthanc_server.py), stores one generated CT study of about
``--megabytes`` MB (512x512 16-bit slices), then measures

* ``GET /studies/{id}/media`` (Orthanc's DICOMDIR ZIP), streamed to disk: wall time, twice:
  as a client gets it by default (requests' ``Accept-Encoding: gzip, deflate``, like a browser)
  and with ``Accept-Encoding: identity``; the comparison uses the faster of the two;
* ``orthanc-gdpr bundle --study UID`` in a subprocess: wall time and peak RSS (``wait4`` ru_maxrss),
  plus the CPU seconds Orthanc spent serving it (both share the machine's cores).

With ``--repeat N`` the three are run in N alternating rounds and the best time of each compared
(on a shared machine, load from elsewhere moves single runs by ±50 %); peak RSS is the worst.

``--py-spy OUT`` records the bundle process with py-spy (raw folded stacks) in addition.

Targets: bundle >= 3x faster than /media, peak RSS <= 300 MB.

    .venv/bin/python bench/bench_bundle.py --megabytes 1000

``--viewer`` measures the offline viewer's overhead instead: a CT study of ``--instances``
512x512 slices of a body phantom (air, soft tissue, lungs, spine, 15 HU noise: JPEG sizes depend
on content, so noise alone would be unfair), then the bundle without the viewer (``--no-viewer``,
the build as it was before the viewer) against the bundle with it (settings from the
environment: ``ORTHANC_GDPR_SERVICE_VIEWER_SIZE`` / ``..._VIEWER_QUALITY``), in alternating rounds.
Targets: build time +30 % at most, bundle size +25 % at most. The load average is printed.

    .venv/bin/python bench/bench_bundle.py --viewer --instances 500 --repeat 3
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
import requests  # noqa: E402
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


def phantom_slices(distinct: int = 16) -> list[bytes]:
    """``distinct`` 512x512 CT slices (stored values, Rescale Intercept -1024) of a body phantom."""
    import numpy as np

    rng = np.random.default_rng(3)
    y, x = np.mgrid[-1:1:ROWS * 1j, -1:1:ROWS * 1j]
    out = []
    for k in range(distinct):
        grow = 1 + 0.03 * np.sin(k / distinct * np.pi)
        hu = np.full((ROWS, ROWS), -1000.0)
        hu[(x / (0.85 * grow)) ** 2 + (y / (0.6 * grow)) ** 2 < 1] = 40
        for side in (-1, 1):
            hu[((x - side * 0.38) / (0.28 * grow)) ** 2 + ((y + 0.05) / (0.4 * grow)) ** 2 < 1] = -820
        hu[(x / 0.1) ** 2 + ((y - 0.4) / 0.1) ** 2 < 1] = 700
        hu += rng.normal(0, 15, hu.shape)
        out.append(np.clip(hu + 1024, 0, 4095).astype(np.uint16).tobytes())
    return out


def ct_instances(count: int):
    """A 512x512 CT study of ``count`` phantom slices in one series."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    slices = phantom_slices()
    for i in range(count):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.PatientID, ds.PatientName = "BENCH-1", "Bench^Mark"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Rows = ds.Columns = ROWS
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = slices[i % len(slices)]
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        yield study, buf.getvalue()


def bench_viewer(args) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-viewer-", dir=REPO / "bench") as tmp:
        work = Path(tmp)
        server = OrthancServer(work / "orthanc", stable_age=60).start()
        try:
            study_uid = None
            with ThreadPoolExecutor(4) as pool:
                for study_uid, data in ct_instances(args.instances):
                    pool.submit(server.upload, data)
            url = server.url.replace("http://", f"http://{server.username}:{server.password}@")
            base = [str(REPO / ".venv" / "bin" / "orthanc-gdpr"), "bundle", "--quiet", "--orthanc", url,
                    "--patient", "BENCH-1", "--study", study_uid]
            runs: dict[str, list] = {"without viewer": [], "with viewer": []}
            for _ in range(args.repeat):
                for label, extra in (("without viewer", ["--no-viewer"]), ("with viewer", [])):
                    out = work / "bundle.zip"
                    load = os.getloadavg()[0]
                    orthanc_cpu = _cpu_seconds(server.pid)
                    t = time.monotonic()
                    proc = subprocess.Popen([*base, *extra, str(out)])
                    _, status, usage = os.wait4(proc.pid, 0)
                    if status != 0:
                        print("bundle command failed", file=sys.stderr)
                        return 1
                    runs[label].append((time.monotonic() - t, out.stat().st_size, load,
                                        usage.ru_utime + usage.ru_stime, _cpu_seconds(server.pid) - orthanc_cpu))
                    out.unlink()
            for label, r in runs.items():
                secs, size, _, _, _ = min(r)
                cpu = min(x[3] for x in r)
                orthanc = min(x[4] for x in r)
                print(f"{label:15} best {secs:6.2f} s  {size / 1e6:7.1f} MB  bundle CPU {cpu:5.2f} s  Orthanc CPU "
                      f"{orthanc:5.2f} s  [runs: " + ", ".join(f"{x[0]:.2f} s (load {x[2]:.1f})" for x in r) + "]")
            (t0, s0, *_), (t1, s1, *_) = min(runs["without viewer"]), min(runs["with viewer"])
            c0 = min(x[3] + x[4] for x in runs["without viewer"])
            c1 = min(x[3] + x[4] for x in runs["with viewer"])
            print(f"viewer overhead: build time +{(t1 / t0 - 1) * 100:.0f} % (target <= 30 %), CPU (bundle + "
                  f"Orthanc) +{(c1 / c0 - 1) * 100:.0f} %, size +{(s1 / s0 - 1) * 100:.0f} % (target <= 25 %); "
                  "load average now " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
        finally:
            server.stop()
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megabytes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of /media + bundle; best of each")
    ap.add_argument("--py-spy", metavar="OUT", help="also record the bundle process with py-spy (raw)")
    ap.add_argument("--viewer", action="store_true", help="measure the offline viewer's overhead instead")
    ap.add_argument("--instances", type=int, default=500, help="--viewer: CT slices in the study")
    args = ap.parse_args()
    if args.viewer:
        return bench_viewer(args)
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

            url = server.url.replace("http://", f"http://{server.username}:{server.password}@")
            argv = [str(REPO / ".venv" / "bin" / "orthanc-gdpr"), "bundle", "--quiet", "--orthanc", url,
                    "--patient", "BENCH-1", "--study", study_uid, str(work / "bundle.zip")]
            if args.py_spy:
                argv = [str(REPO / ".venv" / "bin" / "py-spy"), "record", "-r", "50", "-f", "raw", "-o",
                        args.py_spy, "--", *argv]

            # Rounds alternate /media and the bundle, so that load from elsewhere on the machine
            # hits both alike; the best time of each is compared.
            media: dict[str, list] = {"default": [], "identity": []}
            bundles = []
            for _ in range(args.repeat):
                for label, encoding in (("default", None), ("identity", "identity")):
                    session = requests.Session()
                    session.auth = server.session.auth
                    if encoding:
                        session.headers["Accept-Encoding"] = encoding
                    t = time.monotonic()
                    with session.get(f"{server.url}/studies/{study_id}/media", stream=True, timeout=3600) as r:
                        r.raise_for_status()
                        content_encoding = r.headers.get("Content-Encoding", "none")
                        with open(work / "media.zip", "wb") as f:
                            for chunk in r.iter_content(1 << 20):  # decoded, as a client sees it
                                f.write(chunk)
                    media[label].append((time.monotonic() - t, (work / "media.zip").stat().st_size,
                                         session.headers["Accept-Encoding"], content_encoding))
                    (work / "media.zip").unlink()

                orthanc_cpu = _cpu_seconds(server.pid)
                t = time.monotonic()
                proc = subprocess.Popen(argv)
                _, status, usage = os.wait4(proc.pid, 0)
                bundle_s = time.monotonic() - t
                orthanc_cpu = _cpu_seconds(server.pid) - orthanc_cpu
                if status != 0:
                    print("bundle command failed", file=sys.stderr)
                    return 1
                bundles.append((bundle_s, (work / "bundle.zip").stat().st_size, usage.ru_maxrss / 1024,
                                usage.ru_utime + usage.ru_stime, orthanc_cpu))
                (work / "bundle.zip").unlink()

            for label, runs in media.items():
                secs, size, accept, content_encoding = min(runs)
                print(f"Orthanc /studies/{{id}}/media: {secs:6.1f} s  ({size / 1e6:.0f} MB)  "
                      f"Accept-Encoding: {accept} -> Content-Encoding: {content_encoding}"
                      f"  [runs: {', '.join(f'{r[0]:.1f}' for r in runs)}]")
            bundle_s, bundle_size, _, cpu, orthanc_cpu = min(bundles)
            rss_mb = max(b[2] for b in bundles)
            print(f"orthanc-gdpr bundle:          {bundle_s:6.1f} s  ({bundle_size / 1e6:.0f} MB), "
                  f"peak RSS {rss_mb:.0f} MB, bundle CPU {cpu:.1f} s, Orthanc CPU {orthanc_cpu:.1f} s"
                  f"  [runs: {', '.join(f'{b[0]:.1f}' for b in bundles)}]")
            media_default, media_identity = min(media["default"])[0], min(media["identity"])[0]
            media_s = min(media_default, media_identity)
            print(f"speed-up {media_default / bundle_s:.1f}x vs /media as a client gets it by default, "
                  f"{media_identity / bundle_s:.1f}x vs /media without gzip")
            print(f"speed-up {media_s / bundle_s:.1f}x vs the faster /media (target >= 3x); "
                  f"peak RSS target <= 300 MB: {'met' if rss_mb <= 300 else 'MISSED'}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
