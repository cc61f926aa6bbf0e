"""Append-only, hash-chained audit records (format version 1).

One JSON object per line. Every record carries ``v`` (format version), ``seq`` (1, 2, ...),
``ts`` (UTC, ISO 8601), ``event``, the event's fields, ``prev`` (the previous record's hash, 64
zeros for the first) and ``hash`` = SHA-256 of the record's canonical JSON without ``hash``.
Editing, inserting or deleting a line breaks the chain at that point (see :func:`verify`).

Records name who, what resource, profile, destination, purpose, lawful basis, result and counts;
they never carry PHI values (Orthanc resource IDs and de-identified UIDs only).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

FORMAT_VERSION = 1
GENESIS = "0" * 64


def _digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _last(path: Path) -> tuple[int, str]:
    """Sequence number and hash of the last record in ``path`` (0, GENESIS when empty)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0, GENESIS
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        lines = f.read().splitlines()
    record = json.loads(lines[-1])
    return int(record["seq"]), str(record["hash"])


class AuditLog:
    """A hash-chained JSON-lines file; safe for several threads and several processes.

    Each append takes an exclusive lock on the file and links to the record actually last in it,
    so writers in other processes (the supervisor of ``serve``, a second plugin instance) extend
    one chain instead of forking it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, event: str, **fields: object) -> dict:
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                seq, prev = _last(self.path)
                record = {"v": FORMAT_VERSION, "seq": seq + 1,
                          "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                          "event": event, **fields, "prev": prev}
                record["hash"] = _digest(record)
                os.write(fd, (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)  # releases the lock
            return record


@dataclass(frozen=True)
class ChainBreak:
    line: int
    reason: str


def verify(path: str | os.PathLike) -> list[ChainBreak]:
    """Check the whole chain; returns where it breaks (empty list: intact)."""
    breaks: list[ChainBreak] = []
    prev, seq = GENESIS, 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                breaks.append(ChainBreak(number, "not a JSON record"))
                continue
            if record.get("hash") != _digest(record):
                breaks.append(ChainBreak(number, "record content does not match its hash (edited)"))
            if record.get("prev") != prev:
                breaks.append(ChainBreak(number, "previous-hash link broken (record inserted or deleted before it)"))
            if record.get("seq") != seq + 1:
                breaks.append(ChainBreak(number, f"sequence jumps from {seq} to {record.get('seq')}"))
            prev, seq = str(record.get("hash")), int(record.get("seq") or seq + 1)
    return breaks
