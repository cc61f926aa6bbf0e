"""A persistent routing queue in SQLite: an Orthanc restart loses nothing. Or, for several
Orthanc replicas, one shared queue in PostgreSQL (:class:`PostgresJobQueue`, :func:`open_queue`).

A job is one resource (study or series) to deliver under one rule. Delivered instances are
recorded per destination, so a retried or re-queued job never sends an instance twice.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    level TEXT NOT NULL,
    resource TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(status, next_attempt);
CREATE TABLE IF NOT EXISTS deliveries (
    destination TEXT NOT NULL,
    profile TEXT NOT NULL,
    instance TEXT NOT NULL,
    job INTEGER NOT NULL,
    delivered REAL NOT NULL,
    PRIMARY KEY (destination, profile, instance)
);
"""

#: pending: waiting for its turn (or for a retry); awaiting-review: its rule needs a person's
#: release first (checked again every few seconds); running: being delivered now; done: every
#: instance delivered; failed: gave up or some instances held back; refused: no lawful basis;
#: cancelled: stopped by a user or by a rejected release; expired: left unreviewed too long.
STATUSES = ("pending", "awaiting-review", "running", "done", "failed", "refused", "cancelled", "expired")
WAITING = ("pending", "awaiting-review")
ACTIVE = ("pending", "awaiting-review", "running")


@dataclass(frozen=True)
class Job:
    id: int
    rule: str
    level: str  #: "studies" or "series"
    resource: str  #: Orthanc ID of the study or series
    requested_by: str
    status: str
    attempts: int
    next_attempt: float
    created: float
    updated: float
    detail: dict

    def to_dict(self) -> dict:
        return {"id": self.id, "rule": self.rule, "level": self.level, "resource": self.resource,
                "requested_by": self.requested_by, "status": self.status, "attempts": self.attempts,
                "next_attempt": self.next_attempt, "created": self.created, "updated": self.updated,
                **self.detail}


def _waiting(status: str) -> str:
    """The status a job waits in: ``awaiting-review`` when asked for, else ``pending``."""
    return status if status in WAITING else "pending"


def _job(row: sqlite3.Row) -> Job:
    return Job(**{**dict(row), "detail": json.loads(row["detail"])})


class JobQueue:
    """Thread-safe; one SQLite file in the plugin's state directory (one Orthanc).

    Replicas share a :class:`PostgresJobQueue` instead (see :func:`open_queue`).
    """

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)
            # A job that was running when Orthanc stopped is simply due again.
            self._db.execute("UPDATE jobs SET status='pending' WHERE status='running'")

    def _one(self, sql: str, args: tuple = ()) -> Job | None:
        row = self._db.execute(sql, args).fetchone()
        return _job(row) if row else None

    def add(self, rule: str, level: str, resource: str, requested_by: str) -> Job:
        """Queue a job, unless the same rule already has an active job for the resource."""
        now = time.time()
        with self._lock:
            existing = self._one("SELECT * FROM jobs WHERE rule=? AND level=? AND resource=?"
                                 " AND status IN ('pending', 'awaiting-review')", (rule, level, resource))
            if existing:
                return existing
            cur = self._db.execute(
                "INSERT INTO jobs (rule, level, resource, requested_by, status, next_attempt, created, updated)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)", (rule, level, resource, requested_by, now, now, now))
            return self._one("SELECT * FROM jobs WHERE id=?", (cur.lastrowid,))  # type: ignore[return-value]

    def claim(self) -> Job | None:
        """Take the oldest due job and mark it running."""
        with self._lock:
            return self._one(
                "UPDATE jobs SET status='running', attempts=attempts+1, updated=? WHERE id = ("
                " SELECT id FROM jobs WHERE status IN ('pending', 'awaiting-review') AND next_attempt<=?"
                " ORDER BY next_attempt, id LIMIT 1)"
                " RETURNING *", (time.time(), time.time()))

    def finish(self, job_id: int, status: str, detail: dict, retry_in: float | None = None) -> None:
        """Record the outcome; with ``retry_in`` the job waits again (``pending``, or
        ``awaiting-review`` when that is the ``status`` given) until that delay has passed."""
        now = time.time()
        with self._lock:
            if retry_in is not None:
                # Waiting for a review is not a failed attempt: the retry budget starts afresh.
                self._db.execute("UPDATE jobs SET status=?, next_attempt=?, updated=?, detail=?,"
                                 " attempts=CASE WHEN ?='awaiting-review' THEN 0 ELSE attempts END"
                                 " WHERE id=? AND status='running'",
                                 (_waiting(status), now + retry_in, now, json.dumps(detail), _waiting(status), job_id))
            else:
                self._db.execute("UPDATE jobs SET status=?, updated=?, detail=? WHERE id=? AND status='running'",
                                 (status, now, json.dumps(detail), job_id))

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._one("SELECT * FROM jobs WHERE id=?", (job_id,))

    def list(self, status: str | None = None, limit: int = 200) -> list[Job]:
        with self._lock:
            if status:
                rows = self._db.execute("SELECT * FROM jobs WHERE status=? ORDER BY id DESC LIMIT ?", (status, limit))
            else:
                rows = self._db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
            return [_job(r) for r in rows.fetchall()]

    def retry(self, job_id: int) -> bool:
        """Make a failed, refused, cancelled or expired job due now (attempts start again)."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status='pending', attempts=0, next_attempt=?, updated=?"
                                   " WHERE id=? AND status IN ('failed', 'refused', 'cancelled', 'expired')",
                                   (time.time(), time.time(), job_id))
            return cur.rowcount == 1

    def cancel(self, job_id: int) -> bool:
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status='cancelled', updated=?"
                                   " WHERE id=? AND status IN ('pending', 'awaiting-review', 'running')",
                                   (time.time(), job_id))
            return cur.rowcount == 1

    def is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            row = self._db.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
            return row is not None and row["status"] == "cancelled"

    def is_delivered(self, destination: str, profile: str, instance: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM deliveries WHERE destination=? AND profile=? AND instance=?",
                                    (destination, profile, instance)).fetchone() is not None

    def mark_delivered(self, destination: str, profile: str, instance: str, job_id: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, ?)",
                             (destination, profile, instance, job_id, time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --------------------------------------------------------------------- shared queue (PostgreSQL)

#: advisory lock namespace (first key of ``pg_advisory_lock(int, int)``): "GDPR routing jobs"
LOCK_CLASS = 0x47445052

_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS gdpr_routing_jobs (
    id BIGSERIAL PRIMARY KEY,
    rule TEXT NOT NULL,
    level TEXT NOT NULL,
    resource TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt DOUBLE PRECISION NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    claimed_by TEXT
);
CREATE INDEX IF NOT EXISTS gdpr_routing_jobs_due ON gdpr_routing_jobs (status, next_attempt);
-- one pending job per (rule, level, resource): replicas queueing the same study collapse into one
CREATE UNIQUE INDEX IF NOT EXISTS gdpr_routing_jobs_one_pending
    ON gdpr_routing_jobs (rule, level, resource) WHERE status = 'pending';
-- and one running: two jobs for the same resource never deliver side by side
CREATE UNIQUE INDEX IF NOT EXISTS gdpr_routing_jobs_one_running
    ON gdpr_routing_jobs (rule, level, resource) WHERE status = 'running';
CREATE TABLE IF NOT EXISTS gdpr_routing_deliveries (
    destination TEXT NOT NULL,
    profile TEXT NOT NULL,
    instance TEXT NOT NULL,
    job BIGINT NOT NULL,
    delivered DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (destination, profile, instance)
);
"""
_COLUMNS = "id, rule, level, resource, requested_by, status, attempts, next_attempt, created, updated, detail"


def _pg_job(row: dict) -> Job:
    return Job(**{k: row[k] for k in _COLUMNS.split(", ") if k != "detail"}, detail=json.loads(row["detail"]))


class PostgresJobQueue:
    """The same queue on PostgreSQL, shared by several Orthanc replicas (same interface as
    :class:`JobQueue`).

    Claims use ``FOR UPDATE SKIP LOCKED``; a claim is a lease: the claiming transaction takes a
    session-level advisory lock on the job, released when the job is finished. A replica that dies
    loses its connection and with it its locks: the others find its ``running`` jobs unlocked and
    make them due again (instead of SQLite's "running -> pending at start-up", which would steal
    the jobs of live replicas). Delivered instances are recorded in one shared table, so a job
    retried elsewhere never sends an instance twice.
    """

    def __init__(self, url: str, reclaim_seconds: float = 5.0):
        import psycopg
        from psycopg.rows import dict_row

        self._psycopg, self._dict_row = psycopg, dict_row
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.reclaim_seconds = reclaim_seconds
        self._next_reclaim = 0.0
        self._lock = threading.Lock()
        self._db = self._connect()
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))  # replicas start together
            for statement in filter(str.strip, _PG_SCHEMA.split(";")):
                self._db.execute(statement)

    def _connect(self):
        return self._psycopg.connect(self.url, autocommit=True, row_factory=self._dict_row)

    def _conn(self):
        if self._db.closed or self._db.broken:  # PostgreSQL restarted: our leases went with it
            self._db = self._connect()
        return self._db

    def _one(self, sql: str, args: tuple = ()) -> Job | None:
        row = self._conn().execute(sql, args).fetchone()
        return _pg_job(row) if row else None

    def add(self, rule: str, level: str, resource: str, requested_by: str) -> Job:
        """Queue a job, unless the same rule already has a waiting job for the resource (on any replica)."""
        now = time.time()
        with self._lock:
            waiting = self._one(f"SELECT {_COLUMNS} FROM gdpr_routing_jobs WHERE rule=%s AND level=%s"
                                f" AND resource=%s AND status='awaiting-review'", (rule, level, resource))
            if waiting:
                return waiting
            for _ in range(10):  # the pending one may get claimed between the two statements
                job = self._one(
                    f"INSERT INTO gdpr_routing_jobs (rule, level, resource, requested_by, status, next_attempt,"
                    f" created, updated) VALUES (%s, %s, %s, %s, 'pending', %s, %s, %s)"
                    f" ON CONFLICT (rule, level, resource) WHERE status = 'pending' DO NOTHING RETURNING {_COLUMNS}",
                    (rule, level, resource, requested_by, now, now, now))
                job = job or self._one(f"SELECT {_COLUMNS} FROM gdpr_routing_jobs WHERE rule=%s AND level=%s"
                                       f" AND resource=%s AND status='pending'", (rule, level, resource))
                if job:
                    return job
            raise RuntimeError(f"could not queue {level}/{resource} under rule {rule!r}")

    def reclaim(self) -> list[int]:
        """Make due again the running jobs of replicas that are gone (their lease lock is free)."""
        with self._lock:
            return self._reclaim()

    def _reclaim(self) -> list[int]:
        conn, ids = self._conn(), []
        with conn.transaction():
            rows = conn.execute("SELECT id FROM gdpr_routing_jobs WHERE status='running' AND claimed_by <> %s"
                                " FOR UPDATE SKIP LOCKED", (self.owner,)).fetchall()
            for row in rows:
                if conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s) AS free",
                                (LOCK_CLASS, row["id"])).fetchone()["free"]:
                    try:
                        with conn.transaction():  # a pending twin may exist: then this one is dropped
                            conn.execute("UPDATE gdpr_routing_jobs SET status='pending', claimed_by=NULL,"
                                         " updated=%s WHERE id=%s", (time.time(), row["id"]))
                    except self._psycopg.errors.UniqueViolation:
                        conn.execute("UPDATE gdpr_routing_jobs SET status='cancelled', claimed_by=NULL, updated=%s,"
                                     " detail=%s WHERE id=%s", (time.time(), json.dumps(
                                         {"error": "its replica died; a pending job for the same resource takes over"}),
                                         row["id"]))
                    ids.append(row["id"])
        return ids

    def claim(self) -> Job | None:
        """Take the oldest due job no other replica works on, mark it running and hold its lease."""
        with self._lock:
            if time.monotonic() >= self._next_reclaim:
                self._next_reclaim = time.monotonic() + self.reclaim_seconds
                self._reclaim()
            conn, now = self._conn(), time.time()
            try:
                with conn.transaction():
                    row = conn.execute(
                        "SELECT j.id FROM gdpr_routing_jobs j WHERE j.status IN ('pending', 'awaiting-review')"
                        " AND j.next_attempt<=%s"
                        " AND NOT EXISTS (SELECT 1 FROM gdpr_routing_jobs r WHERE r.status='running'"
                        " AND r.rule=j.rule AND r.level=j.level AND r.resource=j.resource)"
                        " ORDER BY j.next_attempt, j.id LIMIT 1 FOR UPDATE SKIP LOCKED", (now,)).fetchone()
                    if row is None:
                        return None
                    conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, row["id"]))
                    try:
                        return self._one(f"UPDATE gdpr_routing_jobs SET status='running', attempts=attempts+1,"
                                         f" updated=%s, claimed_by=%s WHERE id=%s RETURNING {_COLUMNS}",
                                         (now, self.owner, row["id"]))
                    except BaseException:
                        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, row["id"]))
                        raise
            except self._psycopg.errors.UniqueViolation:  # another replica started the twin just now
                return None

    def _unlock(self, job_id: int) -> None:
        self._conn().execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, job_id))

    def finish(self, job_id: int, status: str, detail: dict, retry_in: float | None = None) -> None:
        now = time.time()
        with self._lock:
            if retry_in is not None:
                try:
                    self._conn().execute(
                        "UPDATE gdpr_routing_jobs SET status=%s, next_attempt=%s, updated=%s, detail=%s,"
                        " claimed_by=NULL, attempts=CASE WHEN %s='awaiting-review' THEN 0 ELSE attempts END"
                        " WHERE id=%s AND status='running'",
                        (_waiting(status), now + retry_in, now, json.dumps(detail), _waiting(status), job_id))
                except self._psycopg.errors.UniqueViolation:  # a newer pending twin will do it
                    self._conn().execute("UPDATE gdpr_routing_jobs SET status='cancelled', updated=%s, detail=%s"
                                         " WHERE id=%s AND status='running'",
                                         (now, json.dumps({**detail, "superseded": True}), job_id))
            else:
                self._conn().execute("UPDATE gdpr_routing_jobs SET status=%s, updated=%s, detail=%s"
                                     " WHERE id=%s AND status='running'", (status, now, json.dumps(detail), job_id))
            self._unlock(job_id)

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._one(f"SELECT {_COLUMNS} FROM gdpr_routing_jobs WHERE id=%s", (job_id,))

    def list(self, status: str | None = None, limit: int = 200) -> list[Job]:
        with self._lock:
            if status:
                rows = self._conn().execute(f"SELECT {_COLUMNS} FROM gdpr_routing_jobs WHERE status=%s"
                                            f" ORDER BY id DESC LIMIT %s", (status, limit))
            else:
                rows = self._conn().execute(f"SELECT {_COLUMNS} FROM gdpr_routing_jobs ORDER BY id DESC LIMIT %s",
                                            (limit,))
            return [_pg_job(r) for r in rows.fetchall()]

    def retry(self, job_id: int) -> bool:
        with self._lock:
            try:
                cur = self._conn().execute(
                    "UPDATE gdpr_routing_jobs SET status='pending', attempts=0, next_attempt=%s, updated=%s"
                    " WHERE id=%s AND status IN ('failed', 'refused', 'cancelled', 'expired')",
                    (time.time(), time.time(), job_id))
            except self._psycopg.errors.UniqueViolation:  # already pending under another job
                return False
            return cur.rowcount == 1

    def cancel(self, job_id: int) -> bool:
        with self._lock:
            cur = self._conn().execute("UPDATE gdpr_routing_jobs SET status='cancelled', updated=%s"
                                       " WHERE id=%s AND status IN ('pending', 'awaiting-review', 'running')",
                                       (time.time(), job_id))
            return cur.rowcount == 1

    def is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            row = self._conn().execute("SELECT status FROM gdpr_routing_jobs WHERE id=%s", (job_id,)).fetchone()
            return row is not None and row["status"] == "cancelled"

    def is_delivered(self, destination: str, profile: str, instance: str) -> bool:
        with self._lock:
            return self._conn().execute(
                "SELECT 1 FROM gdpr_routing_deliveries WHERE destination=%s AND profile=%s AND instance=%s",
                (destination, profile, instance)).fetchone() is not None

    def mark_delivered(self, destination: str, profile: str, instance: str, job_id: int) -> None:
        with self._lock:
            self._conn().execute("INSERT INTO gdpr_routing_deliveries VALUES (%s, %s, %s, %s, %s)"
                                 " ON CONFLICT DO NOTHING", (destination, profile, instance, job_id, time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()  # ends the session: any lease still held is released


def open_queue(path: str | Path, database_url: str = "") -> "JobQueue | PostgresJobQueue":
    """The plugin's routing queue: the PostgreSQL queue shared by replicas when
    ``database_url`` (the "Gdpr.QueueDatabaseUrl" setting) is set, otherwise this Orthanc's own
    SQLite file ``path``."""
    return PostgresJobQueue(database_url) if database_url else JobQueue(path)
