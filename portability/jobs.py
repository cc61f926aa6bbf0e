"""Background bundle jobs: a DB-backed queue, claimed by a worker thread.

Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several service processes can
share one queue; on SQLite a plain transaction (one process). A failed job keeps its error; a retry
is a new job. Bundles are written to ``<data>/bundles/``; a partial ZIP never survives a failure.

A claim is a lease: on PostgreSQL the claiming transaction also takes a session-level advisory
lock on the job, kept on a connection of its own until the job is finished. When the process dies
(kill -9, OOM, lost host) its connection closes and the lock goes with it; every worker
periodically runs :func:`reclaim`, which queues such orphaned ``running`` jobs again (audited
``bundle.reclaimed``). No clock and no heartbeat are involved. On SQLite (one host) the owner of
a ``running`` job is known by ``claimed_by`` (``host:pid:...``): a dead pid means an orphan.
Every claim is audited (``bundle.claimed``, with the worker), so "each job ran once" is checkable.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import select, text, update

from . import audit
from .bundle import build_bundle
from .models import Job, PortabilityRequest, utcnow

log = logging.getLogger("portability.jobs")


def enqueue(db, request_id: int) -> int:
    with db.session() as s:
        job = Job(request_id=request_id, status="queued", done=0, total=0, kind="bundle")
        s.add(job)
        req = s.get(PortabilityRequest, request_id)
        req.status = "in_progress"
        s.flush()
        return job.id


#: advisory lock namespace (first key of ``pg_advisory_lock(int, int)``): "GDPR bundle jobs"
LOCK_CLASS = 0x47445042


class Lease:
    """A claimed job. On PostgreSQL it holds the job's advisory lock on its own connection."""

    def __init__(self, job_id: int, conn=None) -> None:
        self.job_id, self.conn = job_id, conn

    def release(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.execute(text("SELECT pg_advisory_unlock(:c, :j)"), {"c": LOCK_CLASS, "j": self.job_id})
            self.conn.commit()
        except Exception:  # noqa: BLE001 - never pool a connection that may still hold the lock
            log.warning("could not release the lease of job %s", self.job_id, exc_info=True)
            self.conn.invalidate()
        finally:
            self.conn.close()
            self.conn = None


def claim_lease(db, worker: str) -> Lease | None:
    """Take the oldest queued job: mark it running, claimed by ``worker``, and hold its lease."""
    if not db.is_postgresql:
        with db.session() as s:
            job = s.scalars(select(Job).where(Job.status == "queued").order_by(Job.id).limit(1)).first()
            if job is None:
                return None
            job.status, job.claimed_by, job.started_at, job.phase = "running", worker, utcnow(), "starting"
            lease = Lease(job.id)
            request_id = job.request_id
    else:
        conn = db.engine.connect()
        try:
            row = conn.execute(select(Job.id, Job.request_id).where(Job.status == "queued").order_by(Job.id)
                               .limit(1).with_for_update(skip_locked=True)).first()
            if row is None:
                conn.rollback()
                conn.close()
                return None
            # inside the claiming transaction: no moment where the job is running without a lease
            conn.execute(text("SELECT pg_advisory_lock(:c, :j)"), {"c": LOCK_CLASS, "j": row.id})
            conn.execute(update(Job).where(Job.id == row.id).values(
                status="running", claimed_by=worker, started_at=utcnow(), phase="starting"))
            conn.commit()
        except BaseException:
            conn.invalidate()  # closes the session: a lock taken before the failure goes with it
            conn.close()
            raise
        lease, request_id = Lease(row.id, conn), row.request_id
    audit.record("bundle.claimed", request_id=request_id, job_id=lease.job_id, worker=worker)
    return lease


def _pid_alive(claimed_by: str | None) -> bool:
    """SQLite: is the ``host:pid:...`` owner of a running job alive (unknown owners count as alive)?"""
    parts = (claimed_by or "").split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim(db) -> list[int]:
    """Queue again the running jobs whose worker is gone (its lease lock is free); audited."""
    reclaimed: list[tuple[int, int, str | None]] = []
    if db.is_postgresql:
        with db.engine.connect() as conn:
            rows = conn.execute(select(Job.id, Job.request_id, Job.claimed_by).where(Job.status == "running")
                                .with_for_update(skip_locked=True)).all()
            for row in rows:
                # transaction-level: released at commit; succeeds only if no live lease holds it
                if conn.execute(text("SELECT pg_try_advisory_xact_lock(:c, :j)"),
                                {"c": LOCK_CLASS, "j": row.id}).scalar():
                    reclaimed.append((row.id, row.request_id, row.claimed_by))
            for job_id, _, _ in reclaimed:
                conn.execute(update(Job).where(Job.id == job_id).values(
                    status="queued", claimed_by=None, started_at=None, phase=None, done=0, total=0))
            conn.commit()
    else:
        with db.session() as s:
            for job in s.scalars(select(Job).where(Job.status == "running")).all():
                if not _pid_alive(job.claimed_by):
                    reclaimed.append((job.id, job.request_id, job.claimed_by))
                    job.status, job.claimed_by, job.started_at, job.phase = "queued", None, None, None
                    job.done = job.total = 0
    for job_id, request_id, previous in reclaimed:
        log.warning("job %s: worker %s is gone; queued again", job_id, previous)
        audit.record("bundle.reclaimed", request_id=request_id, job_id=job_id, previous_worker=previous)
    return [r[0] for r in reclaimed]


def run_job(db, settings, make_client, job_id: int) -> None:
    with db.session() as s:
        job = s.get(Job, job_id)
        req = s.get(PortabilityRequest, job.request_id)
        params = dict(patient_id=req.patient_id, orthanc_patient=req.orthanc_patient_id,
                      issuer_of_patient_id=req.issuer, study_uids=req.study_uids)
        request_id = req.id
    out = Path(settings.bundles_dir) / f"request-{request_id}-job-{job_id}.zip"
    last = [0.0, None]

    def progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == last[1] and now - last[0] < 0.5 and done != total:
            return
        last[0], last[1] = now, phase
        with db.session() as s:
            j = s.get(Job, job_id)
            j.phase, j.done, j.total = phase, done, total

    try:
        result = build_bundle(make_client(), out, issuer=settings.issuer, progress=progress, **params)
    except Exception as e:  # noqa: BLE001 - every failure is recorded on the job
        log.warning("job %s failed: %s", job_id, e)
        with db.session() as s:
            j = s.get(Job, job_id)
            j.status, j.error, j.finished_at = "failed", f"{type(e).__name__}: {e}", utcnow()
            s.get(PortabilityRequest, request_id).status = "failed"
        audit.record("bundle.failed", request_id=request_id, job_id=job_id, error=str(e)[:500])
        return
    with db.session() as s:
        j = s.get(Job, job_id)
        j.status, j.phase, j.finished_at = "done", "done", utcnow()
        j.result_path, j.size, j.sha256 = str(result.path), result.size, result.sha256
        j.done = j.total = result.instances
        s.get(PortabilityRequest, request_id).status = "ready"
    audit.record("bundle.built", request_id=request_id, job_id=job_id, size=result.size,
                 sha256=result.sha256, instances=result.instances)


class Worker(threading.Thread):
    def __init__(self, db, settings, make_client, reclaim_seconds: float = 5.0) -> None:
        super().__init__(name="portability-worker", daemon=True)
        self.db, self.settings, self.make_client = db, settings, make_client
        self.reclaim_seconds = reclaim_seconds
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.ident_str = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._next_reclaim = 0.0

    def _reclaim(self) -> None:
        if time.monotonic() < self._next_reclaim:
            return
        self._next_reclaim = time.monotonic() + self.reclaim_seconds
        try:
            reclaim(self.db)
        except Exception:  # noqa: BLE001 - DB hiccup: try again later
            log.exception("reclaim failed")

    def run(self) -> None:
        while not self.stopping.is_set():
            self._reclaim()
            try:
                lease = claim_lease(self.db, self.ident_str)
            except Exception:  # noqa: BLE001 - DB hiccup: try again later
                log.exception("claim failed")
                lease = None
            if lease is None:
                self.wake.wait(self.settings.worker_poll_seconds)
                self.wake.clear()
                continue
            try:
                run_job(self.db, self.settings, self.make_client, lease.job_id)
            finally:
                lease.release()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=30)
