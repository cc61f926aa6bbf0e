"""Bundle-job leases without a server: a claim holds a lease, a dead holder's job is queued again.

PostgreSQL: the lease is an advisory lock held on the claimer's connection; closing that
connection (what a killed process does) frees the job for :func:`portability.jobs.reclaim`, and a
live lease is never taken over. SQLite: a ``running`` job whose ``host:pid`` owner is gone.
"""
from __future__ import annotations

import contextlib
import os
import socket

import pytest

from portability import audit, chain, jobs
from portability.db import Database
from portability.models import Job, PortabilityRequest, utcnow
from leases import dead_pid, reclaim_soon
from pg import throwaway_database

@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            database = Database(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
        else:
            database = Database(stack.enter_context(throwaway_database("reclaim")))
        database.migrate()
        audit.configure(audit.AuditSink(database))
        try:
            yield database
        finally:
            audit.configure(None)
            database.dispose()


def queue_jobs(db, n: int) -> list[int]:
    with db.session() as s:
        req = PortabilityRequest(patient_id="P", status="identity_verified", due_at=utcnow(),
                                 identity_method="known-to-staff")
        s.add(req)
        s.flush()
        request_id = req.id
    return [jobs.enqueue(db, request_id) for _ in range(n)]


def status(db, job_id: int) -> tuple[str, str | None]:
    with db.session() as s:
        job = s.get(Job, job_id)
        return job.status, job.claimed_by


def test_a_live_lease_is_kept_and_a_dead_one_is_reclaimed(db):
    first, second = queue_jobs(db, 2)
    me = f"{socket.gethostname()}:{os.getpid()}:live"
    live = jobs.claim_lease(db, me)
    assert live is not None and live.job_id == first and status(db, first) == ("running", me)

    if db.is_postgresql:
        gone = jobs.claim_lease(db, f"elsewhere:{dead_pid()}:gone")
        assert gone is not None and gone.job_id == second
        assert jobs.reclaim(db) == []  # both leases are held: nothing to take over
        gone.conn.invalidate()  # its session ends, as when its process dies: the lock goes with it
    else:  # SQLite: one host; the claimer's pid tells whether it is alive
        gone = jobs.claim_lease(db, f"{socket.gethostname()}:{dead_pid()}:gone")
        assert gone is not None and gone.job_id == second
    assert reclaim_soon(jobs.reclaim, db) == [second]
    assert status(db, second) == ("queued", None) and status(db, first) == ("running", me)
    assert jobs.reclaim(db) == []

    again = jobs.claim_lease(db, me)  # the reclaimed job is claimed anew
    assert again is not None and again.job_id == second
    live.release()
    again.release()
    records = chain.records(db)
    assert [r["job_id"] for r in records if r["event"] == "bundle.claimed"] == [first, second, second]
    assert [r["job_id"] for r in records if r["event"] == "bundle.reclaimed"] == [second]
    assert chain.verify(db) == []


def test_claims_never_overlap(db):
    """Many claimers racing for a few jobs: each job goes to one claimer only."""
    from concurrent.futures import ThreadPoolExecutor

    ids = queue_jobs(db, 10)

    def claimer(n: int) -> list:
        taken = []
        while (lease := jobs.claim_lease(db, f"{socket.gethostname()}:{os.getpid()}:{n}")):
            taken.append(lease)
        return taken

    workers = 4 if db.is_postgresql else 1
    with ThreadPoolExecutor(workers) as pool:
        leases = [lease for batch in pool.map(claimer, range(workers)) for lease in batch]
    assert sorted(lease.job_id for lease in leases) == sorted(ids)
    for lease in leases:
        lease.release()
