"""Rights-job leases (rectification / erasure jobs), on SQLite and PostgreSQL.

Rights jobs are claimed under the lease of the bundle jobs (:class:`portability.jobs.LeasedQueue`):
a job whose worker is alive is never taken over; one whose worker died (a killed process, a closed
PostgreSQL session, a dead pid on SQLite) is made claimable again, audited ``rights.reclaimed``,
and then completes; racing claimers never take the same job; the retry back-off is kept.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from portability import audit, chain, rights
from portability.db import Database
from portability.models import RightsJob, aware, utcnow

from leases import dead_pid, reclaim_soon
from pg import throwaway_database

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rights.sqlite'}"
    else:
        with throwaway_database("rights_reclaim") as url:
            yield url


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    database.migrate()
    audit.configure(audit.AuditSink(database))
    try:
        yield database
    finally:
        audit.configure(None)
        database.dispose()


def me(tag: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:rights:{tag}"


def job(db, job_id: int) -> RightsJob:
    with db.session() as s:
        return s.get(RightsJob, job_id)


def events(db, name: str) -> list[dict]:
    return [r for r in chain.records(db) if r["event"] == name]


def test_a_live_lease_is_kept_and_a_dead_one_is_reclaimed(db):
    first = rights.enqueue(db, "rectification", 11)
    second = rights.enqueue(db, "erasure", 22)
    live = rights.claim(db, me("live"))
    assert live is not None and live.job_id == first
    assert (job(db, first).status, job(db, first).claimed_by, job(db, first).attempts) == ("running", me("live"), 1)

    if db.is_postgresql:
        gone = rights.claim(db, f"elsewhere:{dead_pid()}:rights:gone")
        assert gone is not None and gone.job_id == second
        assert rights.reclaim(db) == []  # both leases are held: nothing to take over
        gone.conn.invalidate()  # its session ends, as when its process dies: the lock goes with it
    else:  # SQLite: one host; the claimer's pid tells whether it is alive
        gone = rights.claim(db, f"{socket.gethostname()}:{dead_pid()}:rights:gone")
        assert gone is not None and gone.job_id == second
    assert reclaim_soon(rights.reclaim, db) == [second]
    j = job(db, second)
    assert (j.status, j.claimed_by, j.attempts) == ("retrying", None, 1)  # the lost attempt counts
    assert aware(j.next_attempt_at) <= utcnow()  # due at once: no back-off for a crash
    assert job(db, first).status == "running" and job(db, first).claimed_by == me("live")
    assert rights.reclaim(db) == []

    again = rights.claim(db, me("again"))  # the reclaimed job is claimed anew
    assert again is not None and again.job_id == second and job(db, second).attempts == 2
    assert rights.reclaim(db) == []
    live.release()
    again.release()
    assert [r["job_id"] for r in events(db, "rights.claimed")] == [first, second, second]
    reclaimed = events(db, "rights.reclaimed")
    assert [(r["job_id"], r["kind"], r["erasure_id"]) for r in reclaimed] == [(second, "erasure", 22)]
    assert reclaimed[0]["previous_worker"].endswith(":rights:gone")
    assert not events(db, "bundle.reclaimed")  # the bundle queue is another lease namespace
    assert chain.verify(db) == []


def test_a_lease_let_go_without_finishing_is_reclaimed(db):
    """A worker of this very process whose job run crashed: the job is running, its lease is gone."""
    job_id = rights.enqueue(db, "rectification", 5)
    lease = rights.claim(db, me("crashed"))
    assert rights.reclaim(db) == []
    lease.release()
    assert rights.reclaim(db) == [job_id] and job(db, job_id).status == "retrying"


def test_retry_back_off_is_kept(db):
    later = rights.enqueue(db, "rectification", 1)
    with db.session() as s:
        j = s.get(RightsJob, later)
        j.status, j.attempts, j.next_attempt_at = "retrying", 1, utcnow() + timedelta(hours=1)
    assert rights.claim(db, me("early")) is None  # not due yet
    for status in ("done", "failed"):
        finished = rights.enqueue(db, "erasure", 2)
        with db.session() as s:
            s.get(RightsJob, finished).status = status
    assert rights.claim(db, me("early")) is None
    assert rights.reclaim(db) == []  # finished and waiting jobs are no orphans
    with db.session() as s:
        s.get(RightsJob, later).next_attempt_at = utcnow() - timedelta(seconds=1)
    lease = rights.claim(db, me("due"))
    assert lease is not None and lease.job_id == later and job(db, later).attempts == 2
    lease.release()


def test_claims_never_overlap(db):
    """Many claimers racing for a few jobs: each job goes to one claimer only."""
    ids = [rights.enqueue(db, "rectification", n) for n in range(12)]
    start = threading.Barrier(4)

    def claimer(n: int) -> list:
        start.wait()
        taken = []
        while (lease := rights.claim(db, me(f"racer{n}"))):
            taken.append(lease)
        return taken

    with ThreadPoolExecutor(4) as pool:
        leases = [lease for batch in pool.map(claimer, range(4)) for lease in batch]
    assert sorted(lease.job_id for lease in leases) == sorted(ids)
    with db.session() as s:
        assert all(j.attempts == 1 and j.status == "running" for j in s.query(RightsJob))
    assert sorted(r["job_id"] for r in events(db, "rights.claimed")) == sorted(ids)
    for lease in leases:
        lease.release()


CLAIMER = textwrap.dedent("""
    import os, socket, sys, time
    from portability import audit, rights
    from portability.db import Database
    db = Database(sys.argv[1])
    audit.configure(audit.AuditSink(db))
    lease = rights.claim(db, f"{socket.gethostname()}:{os.getpid()}:rights:child")
    print(lease.job_id if lease else "none", flush=True)
    time.sleep(600)
""")


def run_worker_until(db, settings, done, timeout: float = 30) -> None:
    worker = rights.rights_worker(db, settings, make_client=lambda: None, reclaim_seconds=0.1)
    worker.start()
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()


def test_a_killed_claimer_s_job_is_reclaimed_and_completes(db, db_url, monkeypatch):
    job_id = rights.enqueue(db, "erasure", 7)
    child = subprocess.Popen([sys.executable, "-c", CLAIMER, db_url], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().strip() == str(job_id)
        assert job(db, job_id).status == "running"
        assert rights.reclaim(db) == []  # the child is alive: its job is never taken over
        assert rights.claim(db, me("thief")) is None
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert job(db, job_id).claimed_by.endswith(f":{child.pid}:rights:child")

    applied = []
    monkeypatch.setattr(rights, "apply_erasure", lambda db_, settings_, client, ref_id: applied.append(ref_id))
    settings = SimpleNamespace(worker_poll_seconds=0.05, rights_max_attempts=5, rights_retry_seconds=1,
                               rights_max_retry_seconds=10)
    run_worker_until(db, settings, lambda: job(db, job_id).status == "done")
    j = job(db, job_id)
    assert (j.status, j.attempts, j.error) == ("done", 2, None) and applied == [7]
    assert j.claimed_by.startswith(f"{socket.gethostname()}:{os.getpid()}:rights:")
    assert [r["job_id"] for r in events(db, "rights.reclaimed")] == [job_id]
    assert [r["worker"].split(":")[1] for r in events(db, "rights.claimed")] == [str(child.pid), str(os.getpid())]
    assert chain.verify(db) == []


def test_the_worker_reclaims_a_job_its_own_run_crashed(db, monkeypatch):
    """A crash past run_job's own handling (e.g. the DB failing while the job's outcome is
    recorded) leaves the job running with its lease let go: the worker's reclaim picks it up."""
    job_id = rights.enqueue(db, "rectification", 3)
    applied, runs = [], []
    monkeypatch.setattr(rights, "apply_rectification", lambda db_, settings_, client, ref_id: applied.append(ref_id))
    real_run = rights.run_job

    def run_job(db_, settings_, make_client, jid):
        runs.append(jid)
        if len(runs) == 1:
            raise RuntimeError("crash before anything is recorded on the job")
        return real_run(db_, settings_, make_client, jid)

    monkeypatch.setattr(rights, "run_job", run_job)
    settings = SimpleNamespace(worker_poll_seconds=0.05, rights_max_attempts=5, rights_retry_seconds=1,
                               rights_max_retry_seconds=10)
    run_worker_until(db, settings, lambda: job(db, job_id).status == "done")
    assert (job(db, job_id).status, job(db, job_id).attempts) == ("done", 2)
    assert runs == [job_id, job_id] and applied == [3]
    assert [r["job_id"] for r in events(db, "rights.reclaimed")] == [job_id]
