"""Benchmark (on demand, not part of pytest): first view of the review page of a big study.

Stores a generated N-instance 512x512 16-bit CT study (default 500 instances in 4 series) in a
temporary Orthanc with the orthanc-gdpr plugin, starts the portability service on a loopback
port (SQLite, the plugin's key), signs a reviewer in, and times

  A. ours, first view (cold: new service process state): GET the review page, then its pictures
     (before and after, one per series) six at a time, as a browser fetches them;
  A'. the same page again (warm: the de-identified instances are cached);
  B. Orthanc's own look at the same images: GET /instances/{id}/preview and
     /instances/{id}/simplified-tags for each series' middle image (what Orthanc Explorer shows),
     six at a time.

and prints seconds, the ratio A/B and the load average (timing on a shared machine moves with
other load). Usage::

    .venv/bin/python bench/bench_review.py [--instances 500] [--series 4] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from browser import LiveService  # noqa: E402
from orthanc_server import OrthancServer, make_ct_study  # noqa: E402

PROFILE = "research"


def sign_in(url: str, name: str, password: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{url}/ui/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = s.post(f"{url}/ui/login", data={"name": name, "password": password, "csrf_token": token},
               allow_redirects=False)
    r.raise_for_status()
    return s


def first_view(url: str, session: requests.Session, study: str) -> tuple[float, float, int]:
    """(seconds for the page, seconds for page + all pictures, number of pictures)."""
    start = time.perf_counter()
    r = session.get(f"{url}/ui/studies/{study}/review", params={"profile": PROFILE})
    r.raise_for_status()
    page_s = time.perf_counter() - start
    images = [src.replace("&amp;", "&") for src in re.findall(r'<img src="([^"]+)"', r.text)]
    with ThreadPoolExecutor(6) as pool:
        for answer in pool.map(lambda src: session.get(url + src), images):
            answer.raise_for_status()
    return page_s, time.perf_counter() - start, len(images)


def orthanc_view(server: OrthancServer, instances: list[str]) -> float:
    start = time.perf_counter()

    def one(instance: str) -> None:
        server.get(f"/instances/{instance}/preview").raise_for_status()
        server.get(f"/instances/{instance}/simplified-tags").raise_for_status()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, instances))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="cold first views (each in a fresh service)")
    args = parser.parse_args()

    from portability.app import create_app
    from portability.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="bench-review-"))
    server = OrthancServer(workdir / "orthanc", stable_age=3600)
    server.start()
    try:
        files = make_ct_study(args.instances, series=args.series, rows=512)
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(server.upload, files))
        del files
        study = server.get_json(f"/instances/{ids[0]}/study")["ID"]
        middles = []
        for series in server.get_json(f"/studies/{study}/series"):
            members = sorted(server.get_json(f"/series/{series['ID']}/instances"),
                             key=lambda i: int(i["MainDicomTags"].get("InstanceNumber", 0)))
            middles.append(members[len(members) // 2]["ID"])
        print(f"study: {args.instances} instances in {args.series} series, 512x512x16 bit")
        cold, cold_pages, warm, peer = [], [], [], []
        for run in range(args.runs):
            settings = Settings(data_dir=workdir / f"service-{run}", orthanc_url=server.url,
                                orthanc_username=server.username, orthanc_password=server.password,
                                staff_users={"rita": ("rita-bench-pw", "reviewer")}, worker=False,
                                plugin_key_file=server.key_file)
            with LiveService(create_app(settings)) as url:
                session = sign_in(url, "rita", "rita-bench-pw")
                page_s, total_s, pictures = first_view(url, session, study)
                cold.append(total_s)
                cold_pages.append(page_s)
                warm.append(first_view(url, session, study)[1])
            peer.append(orthanc_view(server, middles))
            load = os.getloadavg()
            print(f"run {run + 1}: first view {total_s:.2f} s (page {page_s:.2f} s + {pictures} pictures), "
                  f"warm {warm[-1]:.2f} s; Orthanc preview+tags {peer[-1]:.2f} s; "
                  f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        a, b = statistics.median(cold), statistics.median(peer)
        print(f"A  first view (page + pictures), median of {args.runs}: {a:.2f} s "
              f"[{min(cold):.2f}-{max(cold):.2f}]; page alone {statistics.median(cold_pages):.2f} s")
        print(f"A' warm view, median: {statistics.median(warm):.2f} s")
        print(f"B  Orthanc preview + tags of the same {len(middles)} images, median: {b:.2f} s")
        print(f"ratio A/B: {a / b:.1f}  (goal: A <= 2 s: {'met' if a <= 2.0 else 'NOT met'})")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
