"""A persistent routing queue in SQLite: an Orthanc restart loses nothing.

A job is one resource (study or series) to deliver under one rule. Delivered instances are
recorded per destination, so a retried or re-queued job never sends an instance twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
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

#: pending: waiting for its turn (or for a retry); running: being delivered now; done: every
#: instance delivered; failed: gave up or some instances held back; refused: no lawful basis;
#: cancelled: stopped by a user.
STATUSES = ("pending", "running", "done", "failed", "refused", "cancelled")
ACTIVE = ("pending", "running")


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


def _job(row: sqlite3.Row) -> Job:
    return Job(**{**dict(row), "detail": json.loads(row["detail"])})


class JobQueue:
    """Thread-safe; one SQLite file in the plugin's state directory."""

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
            existing = self._one("SELECT * FROM jobs WHERE rule=? AND level=? AND resource=? AND status='pending'",
                                 (rule, level, resource))
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
                " SELECT id FROM jobs WHERE status='pending' AND next_attempt<=? ORDER BY next_attempt, id LIMIT 1)"
                " RETURNING *", (time.time(), time.time()))

    def finish(self, job_id: int, status: str, detail: dict, retry_in: float | None = None) -> None:
        """Record the outcome; with ``retry_in`` the job goes back to pending after that delay."""
        now = time.time()
        with self._lock:
            if retry_in is not None:
                self._db.execute("UPDATE jobs SET status='pending', next_attempt=?, updated=?, detail=?"
                                 " WHERE id=? AND status='running'", (now + retry_in, now, json.dumps(detail), job_id))
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
        """Make a failed, refused or cancelled job due now (attempts start again)."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status='pending', attempts=0, next_attempt=?, updated=?"
                                   " WHERE id=? AND status IN ('failed', 'refused', 'cancelled')",
                                   (time.time(), time.time(), job_id))
            return cur.rowcount == 1

    def cancel(self, job_id: int) -> bool:
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status='cancelled', updated=?"
                                   " WHERE id=? AND status IN ('pending', 'running')",
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
