"""Scale-out of the portability service: two service processes (real uvicorn subprocesses) on one
PostgreSQL database and one real Orthanc share a burst of bundle jobs.

* every job is done exactly once: one ``bundle.claimed`` and one ``bundle.built`` audit record per
  job, one ZIP per job in the data directory of the process that claimed it, both processes took
  a share, and the one audit chain they both append to is intact;
* a service process killed (SIGKILL) in the middle of a job loses nothing: the surviving process
  sees the dead worker's lease (a PostgreSQL advisory lock held by its connection) gone, queues
  the job again (``bundle.reclaimed``) and builds it; no other job ran twice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from orthanc_server import REPO, free_port, make_ct_study
from pg import throwaway_database

pytestmark = pytest.mark.integration

DPO = ("dora", "Scale-out-harbour-lantern-47")
PATIENTS = [f"SCALE-{i}" for i in range(4)]


@pytest.fixture
def pg_url():
    """A throw-away PostgreSQL database (dropped afterwards)."""
    with throwaway_database("scale_out") as url:
        yield url


class Service:
    """``python -m portability.server`` as a subprocess on a free loopback port."""

    def __init__(self, name: str, workdir: Path, database_url: str, orthanc) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / name
        self.log_path = workdir / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC_GDPR_SERVICE_")}
        self.env.update({f"ORTHANC_GDPR_SERVICE_{k}": v for k, v in {
            "DATABASE_URL": database_url, "DATA_DIR": str(self.data_dir), "ORTHANC_URL": orthanc.url,
            "ORTHANC_USERNAME": orthanc.username, "ORTHANC_PASSWORD": orthanc.password,
            "HOST": "127.0.0.1", "PORT": str(self.port)}.items()})
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugin")])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Service":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "portability.server"], env=self.env, cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}"
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not up within {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def owns(self, claimed_by: str | None) -> bool:
        return (claimed_by or "").split(":")[1:2] == [str(self.pid)]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()

    def post(self, path: str, **kwargs) -> dict:
        r = requests.post(self.url + path, auth=DPO, timeout=30, **kwargs)
        assert r.status_code in (200, 201, 202), (path, r.status_code, r.text)
        return r.json()


@pytest.fixture
def cluster(orthanc, pg_url, tmp_path):
    """One Orthanc with four small patients, and two services on one PostgreSQL database."""
    def upload(patient: str) -> None:
        for dicom in make_ct_study(6, patient_id=patient, series=2, rows=96):
            orthanc.upload(dicom)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, PATIENTS))
    a = Service("service-a", tmp_path, pg_url, orthanc)
    b = Service("service-b", tmp_path, pg_url, orthanc)
    added = subprocess.run([sys.executable, "-m", "orthanc_gdpr.cli", "users", "add", DPO[0], "--role", "dpo",
                            "--password-stdin"], input=DPO[1], env=a.env, cwd=REPO, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr  # the one account both services know (one database)
    try:
        a.start()  # one after the other: the first start runs the migrations
        b.start()
        yield a, b, pg_url
    finally:
        a.stop()
        b.stop()


def burst(services: list[Service], count: int) -> list[int]:
    """``count`` portability requests spread over the services, each started as a bundle job,
    all at once from 8 client threads; returns the job ids."""
    def one(i: int) -> int:
        svc = services[i % len(services)]
        req = svc.post("/requests", json={"patient_id": PATIENTS[i % len(PATIENTS)]})
        svc.post(f"/requests/{req['id']}/identity", json={"method": "known-to-staff"})
        return svc.post(f"/requests/{req['id']}/bundle")["id"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def jobs_table(url: str) -> dict[int, dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text("SELECT id, status, claimed_by, result_path, done, total, error "
                                     "FROM portability_jobs")).mappings().all()
    finally:
        engine.dispose()
    return {r["id"]: dict(r) for r in rows}


def wait_all_finished(url: str, ids: list[int], timeout: float = 120) -> dict[int, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = jobs_table(url)
        if all(jobs[i]["status"] in ("done", "failed") for i in ids):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"jobs not finished: {Counter(j['status'] for j in jobs.values())}")


def chain_of(url: str) -> tuple[list[dict], list]:
    from portability import chain
    from portability.db import Database

    db = Database(url)
    try:
        return chain.records(db), chain.verify(db)
    finally:
        db.dispose()


def per_job(records: list[dict], event: str) -> Counter:
    return Counter(r["job_id"] for r in records if r["event"] == event)


def test_burst_of_bundle_jobs_each_done_once_by_two_services(cluster):
    a, b, url = cluster
    started = time.monotonic()
    ids = burst([a, b], 20)
    jobs = wait_all_finished(url, ids)
    elapsed = time.monotonic() - started
    assert len(set(ids)) == 20
    assert {jobs[i]["status"] for i in ids} == {"done"}, [jobs[i]["error"] for i in ids if jobs[i]["error"]]
    assert all(jobs[i]["done"] == 6 for i in ids)

    records, breaks = chain_of(url)
    assert breaks == []  # two processes appended to one chain: still intact
    claims, built = per_job(records, "bundle.claimed"), per_job(records, "bundle.built")
    assert claims == Counter({i: 1 for i in ids}), claims  # each job claimed exactly once ...
    assert built == Counter({i: 1 for i in ids}), built  # ... and built exactly once
    assert per_job(records, "bundle.reclaimed") == Counter()

    # the work was shared, and each ZIP lies with the process that claimed its job
    by = {s.name: [i for i in ids if s.owns(jobs[i]["claimed_by"])] for s in (a, b)}
    assert sorted(by["service-a"] + by["service-b"]) == sorted(ids)
    assert by["service-a"] and by["service-b"], by
    for s in (a, b):
        zips = sorted(p.name for p in (s.data_dir / "bundles").glob("*.zip"))
        assert zips == sorted(Path(jobs[i]["result_path"]).name for i in by[s.name])
    print(f"\n20 bundle jobs in {elapsed:.1f} s: service-a built {len(by['service-a'])}, "
          f"service-b built {len(by['service-b'])}")


def test_a_killed_service_loses_no_job(cluster):
    a, b, url = cluster
    ids = burst([a, b], 12)
    # Freeze b while it holds a running job (SIGSTOP, checked in the database), then kill it.
    deadline, victim = time.monotonic() + 60, None
    while victim is None and time.monotonic() < deadline:
        jobs = jobs_table(url)
        if any(j["status"] == "running" and b.owns(j["claimed_by"]) for j in jobs.values()):
            os.kill(b.pid, signal.SIGSTOP)
            running = [i for i, j in jobs_table(url).items() if j["status"] == "running" and b.owns(j["claimed_by"])]
            if running:
                victim = running[0]
                break
            os.kill(b.pid, signal.SIGCONT)
        time.sleep(0.01)
    assert victim is not None, "service-b never held a running job"
    finished_by_b = {i for i, j in jobs_table(url).items() if j["status"] == "done" and b.owns(j["claimed_by"])}
    os.kill(b.pid, signal.SIGKILL)
    b.proc.wait()

    jobs = wait_all_finished(url, ids)
    assert {jobs[i]["status"] for i in ids} == {"done"}, [jobs[i]["error"] for i in ids if jobs[i]["error"]]
    assert a.owns(jobs[victim]["claimed_by"])  # finished by the survivor
    records, breaks = chain_of(url)
    assert breaks == []
    claims, built = per_job(records, "bundle.claimed"), per_job(records, "bundle.built")
    reclaimed = [r for r in records if r["event"] == "bundle.reclaimed"]
    assert [r["job_id"] for r in reclaimed] == [victim] and b.owns(reclaimed[0]["previous_worker"])
    assert claims == Counter({i: 2 if i == victim else 1 for i in ids}), claims
    assert built == Counter({i: 1 for i in ids}), built  # none lost, none built twice
    assert (Path(jobs[victim]["result_path"]).parent.parent == a.data_dir)
    print(f"\nkilled service-b (pid {b.pid}) during job {victim}; it had finished {len(finished_by_b)}; "
          f"service-a reclaimed job {victim} and finished all {len(ids)}")
