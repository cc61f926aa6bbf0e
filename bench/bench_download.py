"""Benchmark (on demand, not part of pytest): a de-identified study download from a real Orthanc.

Stores a generated N-instance 512x512 16-bit CT study (default 500, ~0.5 MB per instance) in a
temporary Orthanc with the orthanc-gdpr plugin, then times

  A. ours:     GET  /gdpr/studies/{id}/archive?profile=basic        (de-identified ZIP, streamed)
  B. Orthanc:  POST /studies/{id}/anonymize  + GET /studies/{new}/archive  (built-in anonymization)

and prints seconds, MB/s (of stored study data) and the ratio B/A. Usage::

    .venv/bin/python bench/bench_download.py [--instances 500] [--repeat 1] [--keep]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from orthanc_server import OrthancServer, make_ct_study  # noqa: E402


def timed_get(server: OrthancServer, path: str, encoding: str = "identity", **params) -> tuple[float, int]:
    """Seconds and bytes of a GET; ``encoding`` is the client's Accept-Encoding (Orthanc gzips
    non-streamed answers, such as the plugin's ZIP under plugin 4.0, when the client accepts it)."""
    start = time.perf_counter()
    size = 0
    headers = {"Accept-Encoding": encoding}
    with server.session.get(server.url + path, params=params, headers=headers, stream=True, timeout=3600) as r:
        r.raise_for_status()
        for chunk in r.iter_content(1 << 20):
            size += len(chunk)
    return time.perf_counter() - start, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method (best is kept)")
    parser.add_argument("--profile", default="basic")
    parser.add_argument("--keep", action="store_true", help="keep the temporary Orthanc directory")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-download-"))
    server = OrthancServer(workdir / "orthanc", stable_age=3600, gdpr={"DownloadProfiles": [args.profile]})
    server.start()
    try:
        t0 = time.perf_counter()
        files = make_ct_study(args.instances, series=4, rows=512)
        t1 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(server.upload, files))
        t2 = time.perf_counter()
        stored_mb = sum(len(f) for f in files) / 1e6
        del files
        study = server.get_json(f"/instances/{ids[0]}/study")["ID"]
        print(f"study: {args.instances} instances, 512x512x16 bit, {stored_mb:.0f} MB "
              f"(generated in {t1 - t0:.1f} s, uploaded in {t2 - t1:.1f} s)")

        # The first download de-identifies UIDs never seen before (the realistic case); later ones
        # find the engine's caches warm. Both are shown.
        cold_s, _ = timed_get(server, f"/gdpr/studies/{study}/archive", profile=args.profile)
        ours, ours_gzip = [], []
        for _ in range(args.repeat):
            ours.append(timed_get(server, f"/gdpr/studies/{study}/archive", profile=args.profile))
            ours_gzip.append(timed_get(server, f"/gdpr/studies/{study}/archive", "gzip, deflate",
                                       profile=args.profile))
        builtin = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            r = server.post(f"/studies/{study}/anonymize", json={"Force": True}, timeout=3600)
            r.raise_for_status()
            anonymized = r.json()["ID"]
            t_anon = time.perf_counter() - start
            t_zip, size = timed_get(server, f"/studies/{anonymized}/archive")
            builtin.append((t_anon + t_zip, size, t_anon, t_zip))
            server.session.delete(f"{server.url}/studies/{anonymized}", timeout=600)

        a_s, a_size = min(ours)
        g_s, g_size = min(ours_gzip)
        b_s, b_size, b_anon, b_zip = min(builtin)
        print(f"A0 orthanc-gdpr, first (cold) download:                 {cold_s:7.2f} s  "
              f"{stored_mb / cold_s:7.1f} MB/s")
        # MB/s of study data (the stored DICOM), comparable whatever each ZIP compresses to.
        print(f"A  orthanc-gdpr GET (warm) /gdpr/studies/{{id}}/archive?profile={args.profile}: "
              f"{a_s:7.2f} s  {stored_mb / a_s:7.1f} MB/s  (ZIP {a_size / 1e6:.1f} MB)")
        print(f"A' the same, client accepts gzip (Orthanc re-compresses the ZIP): "
              f"{g_s:7.2f} s  {stored_mb / g_s:7.1f} MB/s  (ZIP {g_size / 1e6:.1f} MB after gunzip)")
        print(f"B  Orthanc POST anonymize + GET archive:                {b_s:7.2f} s  {stored_mb / b_s:7.1f} MB/s  "
              f"(ZIP {b_size / 1e6:.1f} MB; anonymize {b_anon:.2f} s, archive {b_zip:.2f} s)")
        print(f"ratio B/A: {b_s / a_s:.2f}  ({'ours faster' if a_s < b_s else 'built-in faster'}); "
              f"B/A': {b_s / g_s:.2f}; B/A0 (cold): {b_s / cold_s:.2f}")
    finally:
        server.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
