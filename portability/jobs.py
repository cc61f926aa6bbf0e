"""Background bundle jobs: a DB-backed queue, claimed by a worker thread.

Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several service processes can
share one queue; on SQLite a conditional ``UPDATE`` (a job changes hands once). A failed job keeps
its error; a retry is a new job. Bundles are written to ``<data>/bundles/``; a partial ZIP never
survives a failure.

A claim is a lease (:class:`LeasedQueue`, shared with the rights jobs of :mod:`.rights`): on
PostgreSQL the claiming transaction also takes a session-level advisory lock on the job, kept on a
connection of its own until the job is finished. When the process dies (kill -9, OOM, lost host)
its connection closes and the lock goes with it; every worker periodically runs :func:`reclaim`,
which queues such orphaned ``running`` jobs again (audited ``bundle.reclaimed``). No clock and no
heartbeat are involved. On SQLite (one host) the owner of a ``running`` job is known by
``claimed_by`` (``host:pid:...``): a dead pid means an orphan, and so does a job of this very
process whose lease was released without finishing it.
Every claim is audited (``bundle.claimed``, with the worker), so "each job ran once" is checkable.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update

from orthanc_gdpr.anonymous.decision import IDENTIFIED

from . import audit
from .bundle import build_bundle
from .bundle.notice import SiteNotice
from .bundle.viewer import ViewerOptions
from .disclosures import disclosures_for
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


# ----------------------------------------------------------------------------- leases (generic)
#: leases held by this process, keyed (database url, lock class, job id): on SQLite a ``running``
#: job owned by this pid but absent here was let go without being finished (a crashed job run)
_held: set[tuple[str, int, int]] = set()
_held_lock = threading.Lock()


def _hold(key: tuple[str, int, int], held: bool) -> None:
    with _held_lock:
        (_held.add if held else _held.discard)(key)


class Lease:
    """A claimed job. On PostgreSQL it holds the job's advisory lock on its own connection."""

    def __init__(self, job_id: int, conn=None, lock_class: int | None = None, db_url: str = "") -> None:
        self.job_id, self.conn = job_id, conn
        self.lock_class = LOCK_CLASS if lock_class is None else lock_class
        self._key = (db_url, self.lock_class, job_id)

    def release(self) -> None:
        _hold(self._key, False)
        if self.conn is None:
            return
        try:
            self.conn.execute(text("SELECT pg_advisory_unlock(:c, :j)"), {"c": self.lock_class, "j": self.job_id})
            self.conn.commit()
        except Exception:  # noqa: BLE001 - never pool a connection that may still hold the lock
            log.warning("could not release the lease of job %s", self.job_id, exc_info=True)
            self.conn.invalidate()
        finally:
            self.conn.close()
            self.conn = None


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


def _nothing(*_: Any) -> dict:
    return {}


@dataclass(frozen=True)
class LeasedQueue:
    """A table of jobs taken under a lease: claim (advisory lock / owner pid), release, reclaim.

    ``model`` needs ``id``, ``status`` and ``claimed_by`` columns. A job is claimable when its status
    is one of ``ready`` and the clauses of ``ready_when()`` hold (e.g. a retry's due time); the
    oldest by ``order_by`` goes first. Claiming sets ``status="running"``, ``claimed_by`` and
    ``on_claim()`` (column -> value or SQL expression); reclaiming an orphan sets
    ``claimed_by=None`` and ``on_reclaim()`` (which must set a ready status). ``columns`` are read
    with each claimed / reclaimed job and turned by ``describe(row)`` into the audit fields of
    ``claimed_event`` / ``reclaimed_event``. ``lock_class`` is the first key of
    ``pg_advisory_lock(int, int)`` (the job id is the second): one per queue.
    """
    model: Any
    lock_class: int
    ready: tuple[str, ...]
    reclaimed_event: str
    claimed_event: str | None = None
    columns: tuple = ()
    describe: Callable[[Any], dict] = _nothing
    ready_when: Callable[[], list] = lambda: []
    order_by: tuple = ()
    on_claim: Callable[[], dict] = _nothing
    on_reclaim: Callable[[], dict] = field(default=lambda: {"status": "queued"})

    def _candidates(self):
        m = self.model
        return (select(m.id, *self.columns).where(m.status.in_(self.ready), *self.ready_when())
                .order_by(*(self.order_by or (m.id,))))

    def claim(self, db, worker: str) -> Lease | None:
        """Take the first claimable job: mark it running, claimed by ``worker``, and hold its lease."""
        m = self.model
        if not db.is_postgresql:
            while True:
                with db.session() as s:
                    row = s.execute(self._candidates().limit(1)).first()
                    if row is None:
                        return None
                    key = (db.url, self.lock_class, row.id)
                    _hold(key, True)  # before the commit: no moment where a running job of ours looks let go
                    try:
                        # conditional: of racing claimers (threads, processes) one only changes the status
                        taken = s.execute(update(m).where(m.id == row.id, m.status.in_(self.ready)).values(
                            status="running", claimed_by=worker, **self.on_claim())).rowcount
                        s.commit()
                    except BaseException:
                        _hold(key, False)
                        raise
                if taken:
                    lease = Lease(row.id, None, self.lock_class, db.url)
                    break
                _hold(key, False)
        else:
            conn = db.engine.connect()
            try:
                row = conn.execute(self._candidates().limit(1).with_for_update(skip_locked=True)).first()
                if row is None:
                    conn.rollback()
                    conn.close()
                    return None
                # inside the claiming transaction: no moment where the job is running without a lease
                conn.execute(text("SELECT pg_advisory_lock(:c, :j)"), {"c": self.lock_class, "j": row.id})
                conn.execute(update(m).where(m.id == row.id).values(
                    status="running", claimed_by=worker, **self.on_claim()))
                conn.commit()
            except BaseException:
                conn.invalidate()  # closes the session: a lock taken before the failure goes with it
                conn.close()
                raise
            lease = Lease(row.id, conn, self.lock_class, db.url)
            _hold(lease._key, True)
        if self.claimed_event:
            audit.record(self.claimed_event, **self.describe(row), job_id=lease.job_id, worker=worker)
        return lease

    def _orphaned_here(self, db, job_id: int, claimed_by: str | None) -> bool:
        """SQLite: the owner is dead, or is this process and no longer holds the lease."""
        parts = (claimed_by or "").split(":")
        if len(parts) >= 2 and parts[0] == socket.gethostname() and parts[1] == str(os.getpid()):
            with _held_lock:
                return (db.url, self.lock_class, job_id) not in _held
        return not _pid_alive(claimed_by)

    def reclaim(self, db) -> list[int]:
        """Make claimable again the running jobs whose worker is gone (its lease is free); audited."""
        m = self.model
        running = select(m.id, m.claimed_by, *self.columns).where(m.status == "running").order_by(m.id)
        reclaimed: list = []
        if db.is_postgresql:
            with db.engine.connect() as conn:
                for row in conn.execute(running.with_for_update(skip_locked=True)).all():
                    # transaction-level: released at commit; succeeds only if no live lease holds it
                    if conn.execute(text("SELECT pg_try_advisory_xact_lock(:c, :j)"),
                                    {"c": self.lock_class, "j": row.id}).scalar():
                        reclaimed.append(row)
                for row in reclaimed:
                    conn.execute(update(m).where(m.id == row.id).values(claimed_by=None, **self.on_reclaim()))
                conn.commit()
        else:
            with db.session() as s:
                for row in s.execute(running).all():
                    if self._orphaned_here(db, row.id, row.claimed_by):
                        # conditional: a finished job, or one another reclaimer took, is left alone
                        if s.execute(update(m).where(m.id == row.id, m.status == "running",
                                                     m.claimed_by == row.claimed_by)
                                     .values(claimed_by=None, **self.on_reclaim())).rowcount:
                            reclaimed.append(row)
        for row in reclaimed:
            log.warning("%s job %s: worker %s is gone; queued again", m.__tablename__, row.id, row.claimed_by)
            audit.record(self.reclaimed_event, **self.describe(row), job_id=row.id, previous_worker=row.claimed_by)
        return [row.id for row in reclaimed]


class Reclaimer:
    """Run ``queue.reclaim(db)`` at most every ``seconds`` (called from a worker's loop)."""

    def __init__(self, queue: LeasedQueue, db, seconds: float = 5.0) -> None:
        self.queue, self.db, self.seconds = queue, db, seconds
        self._next = 0.0

    def __call__(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.seconds
        try:
            self.queue.reclaim(self.db)
        except Exception:  # noqa: BLE001 - DB hiccup: try again later
            log.exception("reclaim of %s failed", self.queue.model.__tablename__)


# ----------------------------------------------------------------------------- bundle jobs
#: advisory lock namespace (first key of ``pg_advisory_lock(int, int)``): "GDPB", GDPR bundle jobs
LOCK_CLASS = 0x47445042

BUNDLE_JOBS = LeasedQueue(
    model=Job, lock_class=LOCK_CLASS, ready=("queued",),
    claimed_event="bundle.claimed", reclaimed_event="bundle.reclaimed",
    columns=(Job.request_id,), describe=lambda row: {"request_id": row.request_id},
    on_claim=lambda: {"started_at": utcnow(), "phase": "starting"},
    on_reclaim=lambda: {"status": "queued", "started_at": None, "phase": None, "done": 0, "total": 0},
)


def claim_lease(db, worker: str) -> Lease | None:
    """Take the oldest queued job: mark it running, claimed by ``worker``, and hold its lease."""
    return BUNDLE_JOBS.claim(db, worker)


def reclaim(db) -> list[int]:
    """Queue again the running jobs whose worker is gone (its lease lock is free); audited."""
    return BUNDLE_JOBS.reclaim(db)


def run_job(db, settings, make_client, job_id: int) -> None:
    with db.session() as s:
        job = s.get(Job, job_id)
        req = s.get(PortabilityRequest, job.request_id)
        params = dict(patient_id=req.patient_id, orthanc_patient=req.orthanc_patient_id,
                      issuer_of_patient_id=req.issuer, study_uids=req.study_uids)
        request_id, language = req.id, req.language
        patient = dict(patient_id=req.patient_id, issuer=req.issuer, orthanc_patient=req.orthanc_patient_id)
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
        result = build_bundle(
            make_client(), out, issuer=settings.issuer, progress=progress,
            site=SiteNotice.from_settings(settings, language), viewer=ViewerOptions.from_settings(settings),
            disclosures=lambda resources: disclosures_for(db, settings, resources=resources, **patient), **params)
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
                 sha256=result.sha256, instances=result.instances, classification=IDENTIFIED)


class LeaseWorker(threading.Thread):
    """Claims the jobs of one leased queue and runs them; reclaims orphans as it goes.

    ``run(db, settings, make_client, job_id)`` does one job. A job whose run raises stays
    ``running`` and is reclaimed once its lease is released.
    """

    def __init__(self, label: str, queue: LeasedQueue, run, db, settings, make_client,
                 reclaim_seconds: float = 5.0) -> None:
        super().__init__(name=f"{label}-worker", daemon=True)
        self.queue, self.run_one = queue, run
        self.db, self.settings, self.make_client = db, settings, make_client
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.ident_str = f"{socket.gethostname()}:{os.getpid()}:{label}:{id(self):x}"
        self._reclaim = Reclaimer(queue, db, reclaim_seconds)

    def run(self) -> None:
        while not self.stopping.is_set():
            self._reclaim()
            try:
                lease = self.queue.claim(self.db, self.ident_str)
            except Exception:  # noqa: BLE001 - DB hiccup: try again later
                log.exception("%s: claim failed", self.name)
                lease = None
            if lease is None:
                self.wake.wait(self.settings.worker_poll_seconds)
                self.wake.clear()
                continue
            try:
                self.run_one(self.db, self.settings, self.make_client, lease.job_id)
            except Exception:  # noqa: BLE001 - keep the worker alive; the job, still running, is reclaimed
                log.exception("%s: job %s crashed", self.name, lease.job_id)
            finally:
                lease.release()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=30)


def bundle_worker(db, settings, make_client, reclaim_seconds: float = 5.0) -> LeaseWorker:
    """The bundle-job worker."""
    return LeaseWorker("bundle", BUNDLE_JOBS, run_job, db, settings, make_client, reclaim_seconds)
