"""Background bundle jobs: a DB-backed queue, claimed by a worker thread.

Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several service processes can
share one queue; on SQLite a plain transaction (one process). A failed job keeps its error; a retry
is a new job. Bundles are written to ``<data>/bundles/``; a partial ZIP never survives a failure.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import select

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


def claim(db, worker: str) -> int | None:
    with db.session() as s:
        q = select(Job).where(Job.status == "queued").order_by(Job.id).limit(1)
        if db.is_postgresql:
            q = q.with_for_update(skip_locked=True)
        job = s.scalars(q).first()
        if job is None:
            return None
        job.status, job.claimed_by, job.started_at, job.phase = "running", worker, utcnow(), "starting"
        return job.id


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
    def __init__(self, db, settings, make_client) -> None:
        super().__init__(name="portability-worker", daemon=True)
        self.db, self.settings, self.make_client = db, settings, make_client
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.ident_str = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                job_id = claim(self.db, self.ident_str)
            except Exception:  # noqa: BLE001 - DB hiccup: try again later
                log.exception("claim failed")
                job_id = None
            if job_id is None:
                self.wake.wait(self.settings.worker_poll_seconds)
                self.wake.clear()
                continue
            run_job(self.db, self.settings, self.make_client, job_id)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=30)
