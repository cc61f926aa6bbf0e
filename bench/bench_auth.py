"""Benchmark (on demand, not part of pytest): what checking every Orthanc request against the staff
accounts costs, per request.

In one run it starts, on free loopback ports with temporary storage:

  A. Orthanc alone: the same Debian Orthanc, its own user list (``RegisteredUsers``), no plugin;
  B. ``orthanc-gdpr serve``: Orthanc with the plugin, whose request filter checks every request's
     login with the portability service (accounts, Argon2), caching verified logins briefly.

It then sends ``--requests`` small GETs (``/system``, ``/patients``) to A and B in alternation,
over one keep-alive connection each, with the same account name and password on both, and prints
p50/p90 per server and the added latency B - A at p50 (the goal: at most 2 ms). It also times the
first request of a fresh login on B (a cache miss: the service verifies the Argon2 hash).
Usage::

    .venv/bin/python bench/bench_auth.py [--requests 2000] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from orthanc_server import OrthancServer, free_port  # noqa: E402

PASSWORD = "Quiet-harbour-lantern-47"
PATHS = ("/system", "/patients")


def start_serve(data: Path) -> tuple[subprocess.Popen, str, str]:
    http, service = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC_GDPR_")}
    log = open(data.parent / "serve.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "orthanc_gdpr.cli", "serve", "--data-dir", str(data),
                             "--orthanc-http-port", str(http), "--orthanc-dicom-port", str(free_port()),
                             "--service-port", str(service)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, cwd=REPO)
    url, service_url = f"http://127.0.0.1:{http}", f"http://127.0.0.1:{service}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            dpo = ("dpo", (data / "dpo-password").read_text().strip())
            if requests.get(service_url + "/health", timeout=2).ok and \
                    requests.get(url + "/system", auth=dpo, timeout=5).ok:
                r = requests.post(service_url + "/api/users", auth=dpo, timeout=30,
                                  json={"name": "bench", "role": "staff", "password": PASSWORD})
                assert r.status_code == 201, r.text
                return proc, url, service_url
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    raise SystemExit(f"serve did not start: see {data.parent / 'serve.out'}")


def session(url: str) -> requests.Session:
    s = requests.Session()
    s.auth = ("bench", PASSWORD)
    s.headers["Accept-Encoding"] = "identity"
    s.get(url + "/system", timeout=30).raise_for_status()  # warm: connection open, login verified
    return s


def once(s: requests.Session, url: str) -> float:
    start = time.perf_counter()
    r = s.get(url, timeout=30)
    elapsed = time.perf_counter() - start
    r.raise_for_status()
    return elapsed * 1000


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per server")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    plain = OrthancServer(workdir / "plain", plugin=False, username="bench", password=PASSWORD)
    plain.start()
    proc, url, service_url = start_serve(workdir / "serve")
    try:
        a, b = session(plain.url), session(url)
        times: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(args.requests):
            path = PATHS[i % len(PATHS)]
            order = (("A", a, plain.url), ("B", b, url)) if i % 2 else (("B", b, url), ("A", a, plain.url))
            for name, s, base in order:
                times[name].append(once(s, base + path))
        misses = []
        dpo = ("dpo", (workdir / "serve" / "dpo-password").read_text().strip())
        for i in range(5):  # a new login each time: the filter asks the service (Argon2 verification)
            name = f"fresh{i}"
            r = requests.post(service_url + "/api/users", timeout=30, auth=dpo,
                              json={"name": name, "role": "staff", "password": PASSWORD})
            assert r.status_code == 201, r.text
            start = time.perf_counter()
            requests.get(url + "/system", auth=(name, PASSWORD), timeout=30).raise_for_status()
            misses.append((time.perf_counter() - start) * 1000)
        load = os.getloadavg()
        print(f"{args.requests} requests per server, alternating, one keep-alive connection each; "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(f"{'server':44} {'p50 ms':>8} {'p90 ms':>8}")
        for name, label in (("A", "A. Orthanc alone (RegisteredUsers, no plugin)"),
                            ("B", "B. serve: plugin filter + service accounts")):
            print(f"{label:44} {pct(times[name], 50):8.2f} {pct(times[name], 90):8.2f}")
        added = pct(times["B"], 50) - pct(times["A"], 50)
        print(f"added per request at p50: {added:.2f} ms (goal: at most 2 ms)")
        print(f"first request of a new login (cache miss, Argon2 in the service): median "
              f"{statistics.median(misses):.0f} ms over {len(misses)}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        plain.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
