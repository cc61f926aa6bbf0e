"""Append-only, hash-chained audit records (format version 1).

One JSON object per line. Every record carries ``v`` (format version), ``seq`` (1, 2, ...),
``ts`` (UTC, ISO 8601), ``event``, the event's fields, ``prev`` (the previous record's hash, 64
zeros for the first) and ``hash`` = SHA-256 of the record's canonical JSON without ``hash``.
Editing, inserting or deleting a line breaks the chain at that point (see :func:`verify`).

A broken chain never stops recording. When the last line cannot be read (edited into something
that is not a record, or cut short), the next record starts a new *segment*: it carries
``"segment": {"after_line": N, "reason": ...}`` naming the break, and its ``prev`` is the SHA-256
of that unreadable line as it stands. :func:`verify` reports the break once, at that line.

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


def _raw_digest(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\r\n")).hexdigest()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _last(path: Path) -> tuple[int, str, dict | None]:
    """Sequence number and hash of the last record in ``path`` (0, GENESIS when empty), and the
    segment a new record must name when that last line is not a readable record."""
    if not path.exists() or path.stat().st_size == 0:
        return 0, GENESIS, None
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        lines = f.read().splitlines()
    try:
        record = json.loads(lines[-1])
        return int(record["seq"]), str(record["hash"]), None
    except (ValueError, KeyError, TypeError, IndexError):
        pass
    seq = 0  # the unreadable line takes the seq after the last readable one
    for line in reversed(lines[:-1]):
        try:
            seq = int(json.loads(line)["seq"])
            break
        except (ValueError, KeyError, TypeError):
            continue
    number = sum(1 for _ in open(path, "rb"))
    return seq + 1, _raw_digest(lines[-1]), {"after_line": number, "reason": "the last line is not a readable record"}


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
                seq, prev, segment = _last(self.path)
                record = {"v": FORMAT_VERSION, "seq": seq + 1,
                          "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                          "event": event, **fields, **({"segment": segment} if segment else {}), "prev": prev}
                record["hash"] = _digest(record)
                line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
                if segment and not _ends_with_newline(self.path):  # a cut line stays a line of its own
                    line = "\n" + line
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)  # releases the lock
            return record


@dataclass(frozen=True)
class ChainBreak:
    line: int
    reason: str


def verify(path: str | os.PathLike) -> list[ChainBreak]:
    """Check the whole chain; returns where it breaks (empty list: intact). A record that starts a
    new segment after an unreadable line links to that line's raw SHA-256: the break is reported
    once, at the unreadable line."""
    breaks: list[ChainBreak] = []
    prev, seq, raw = GENESIS, 0, ""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                breaks.append(ChainBreak(number, "not a JSON record"))
                prev, seq, raw = None, seq + 1, _raw_digest(line)
                continue
            if record.get("hash") != _digest(record):
                breaks.append(ChainBreak(number, "record content does not match its hash (edited)"))
            segment = isinstance(record.get("segment"), dict) and record["segment"].get("after_line") == number - 1
            if record.get("prev") != (raw if segment and prev is None else prev):
                breaks.append(ChainBreak(number, "previous-hash link broken (record inserted or deleted before it)"))
            if record.get("seq") != seq + 1:
                breaks.append(ChainBreak(number, f"sequence jumps from {seq} to {record.get('seq')}"))
            prev, seq = str(record.get("hash")), int(record.get("seq") or seq + 1)
    return breaks
