"""One append-only, hash-chained audit store for the service *and* the plugin.

Each row of ``portability_audit`` keeps, in ``record``, the canonical JSON of one record::

    {"v": 1, "seq": N, "ts": ..., "event": ..., "source": "service"|"plugin", <fields>,
     "prev": <hash of record N-1, 64 zeros for the first>, "hash": SHA-256(record without "hash")}

The digest is the plugin's own (``orthanc_gdpr.audit._digest``: sorted keys, compact separators,
UTF-8), so both chains are checked by one algorithm. Plugin records are imported whole, under
``origin`` (their own seq/prev/hash kept and re-checked), idempotently by (source, source_seq).

Appends are serialised on the single ``audit_chain_head`` row: ``SELECT ... FOR UPDATE`` on
PostgreSQL (several service processes share one chain), an immediate write lock plus a process
lock on SQLite.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import select, text, update

from orthanc_gdpr.audit import FORMAT_VERSION, GENESIS, _digest
from orthanc_gdpr.audit import verify as verify_plugin_file

from .models import AuditChainHead, AuditEvent, utcnow

ENVELOPE = ("v", "seq", "ts", "event", "source", "actor", "request_id", "prev", "hash", "origin")
PLUGIN_ENVELOPE = ("v", "seq", "ts", "event", "prev", "hash")
_process_lock = threading.Lock()


def canonical(value: Any) -> Any:
    """JSON-safe copy (datetimes and other objects as strings), as it will be hashed."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def fields_of(record: dict) -> dict:
    """The free-form fields of a record (for plugin records: the plugin's fields)."""
    if record.get("source") == "plugin" and isinstance(record.get("origin"), dict):
        return {k: v for k, v in record["origin"].items() if k not in PLUGIN_ENVELOPE}
    return {k: v for k, v in record.items() if k not in ENVELOPE}


def _lock_head(s, postgresql: bool) -> AuditChainHead:
    head = s.get(AuditChainHead, 1, with_for_update=postgresql)
    if head is None:
        s.add(AuditChainHead(id=1, seq=0, hash=GENESIS))
        s.flush()
        head = s.get(AuditChainHead, 1, with_for_update=postgresql)
    if not postgresql:  # take SQLite's write lock now, before reading the head
        s.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(seq=AuditChainHead.seq))
        s.refresh(head)
    return head


def _append(s, head: AuditChainHead, event: str, body: dict, *, actor=None, request_id=None,
            source: str = "service", source_seq: int | None = None) -> AuditEvent:
    record = {"v": FORMAT_VERSION, "seq": head.seq + 1, "ts": _now(), "event": event, "source": source,
              **canonical(body), "prev": head.hash}
    if actor is not None:
        record["actor"] = actor
    if request_id is not None:
        record["request_id"] = request_id
    record["hash"] = _digest(record)
    row = AuditEvent(at=utcnow(), event=event, actor=actor, request_id=request_id, fields=fields_of(record),
                     seq=record["seq"], source=source, source_seq=source_seq, prev=record["prev"],
                     hash=record["hash"], record=json.dumps(record, ensure_ascii=False, sort_keys=True))
    s.add(row)
    head.seq, head.hash = record["seq"], record["hash"]
    s.flush()
    return row


def append(db, event: str, *, actor=None, request_id=None, **fields: Any) -> dict:
    """Append one service record; returns it (with seq and hash)."""
    body = {k: v for k, v in fields.items() if v is not None}
    with _process_lock, db.session() as s:
        head = _lock_head(s, db.is_postgresql)
        row = _append(s, head, event, body, actor=actor, request_id=request_id)
        return json.loads(row.record)


# ------------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class Break:
    seq: int | None  #: the seq the broken entry claims (or the row id when it has none)
    reason: str

    def __str__(self) -> str:
        return f"entry seq {self.seq}: {self.reason}"


def verify_rows(rows: Iterable[AuditEvent]) -> list[Break]:
    """Check a chain of rows in seq order: content vs hash, prev links, seq continuity, and that
    the query columns (event, fields) still say what the hashed record says."""
    breaks: list[Break] = []
    prev, seq = GENESIS, 0
    for row in rows:
        where = row.seq if row.seq is not None else f"row id {row.id}"
        try:
            record = json.loads(row.record or "")
        except json.JSONDecodeError:
            breaks.append(Break(where, "not a JSON record (no hash chain entry)"))
            continue
        if record.get("hash") != _digest(record) or record.get("hash") != row.hash:
            breaks.append(Break(where, "record content does not match its hash (edited)"))
        elif row.event != record.get("event") or canonical(row.fields) != fields_of(record):
            breaks.append(Break(where, "the event/fields columns differ from the hashed record (edited)"))
        if record.get("prev") != prev:
            breaks.append(Break(where, "previous-hash link broken (an entry was inserted or deleted before it)"))
        if record.get("seq") != seq + 1 or row.seq != record.get("seq"):
            breaks.append(Break(where, f"sequence jumps from {seq} to {record.get('seq')}"
                                       " (an entry was deleted or inserted)"))
        origin = record.get("origin")
        if record.get("source") == "plugin" and (not isinstance(origin, dict) or origin.get("hash") != _digest(origin)):
            breaks.append(Break(where, "imported plugin record does not match the plugin's own hash"))
        prev, seq = str(record.get("hash")), int(record.get("seq") or seq + 1)
    return breaks


def verify(db) -> list[Break]:
    with db.session() as s:
        rows = s.scalars(select(AuditEvent).order_by(AuditEvent.seq.is_(None), AuditEvent.seq, AuditEvent.id)).all()
        breaks = verify_rows(rows)
        head = s.get(AuditChainHead, 1)
        last = rows[-1] if rows else None
        if head is not None and last is not None and (head.seq != last.seq or head.hash != last.hash):
            breaks.append(Break(head.seq, f"the newest entries were deleted: the chain head says seq {head.seq}, "
                                          f"the store ends at {last.seq}"))
        return breaks


def records(db, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    with db.session() as s:
        q = select(AuditEvent.record).where(AuditEvent.record.is_not(None)).order_by(AuditEvent.seq)
        out = [json.loads(r) for r in s.scalars(q)]
    if since or until:
        out = [r for r in out if _in(effective_ts(r), since, until)]
    return out


def effective_ts(record: dict) -> datetime:
    ts = record.get("origin", {}).get("ts") if record.get("source") == "plugin" else record.get("ts")
    dt = datetime.fromisoformat(str(ts or record.get("ts")))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _in(dt: datetime, since: datetime | None, until: datetime | None) -> bool:
    if since and dt < (since if since.tzinfo else since.replace(tzinfo=timezone.utc)):
        return False
    if until and dt > (until if until.tzinfo else until.replace(tzinfo=timezone.utc)):
        return False
    return True


# ------------------------------------------------------------------------------- plugin import
@dataclass(frozen=True)
class PluginBreak:
    """A record of the plugin's log that was not imported: ``line`` in the file, its ``seq`` when
    readable, why, and ``store_seq`` of the copy imported before it was altered (if any)."""
    line: int
    seq: int | None
    reason: str
    store_seq: int | None = None

    def as_dict(self) -> dict:
        return {"source": "plugin-log", "line": self.line, "seq": self.seq, "reason": self.reason,
                "store_seq": self.store_seq}


def plugin_breaks(db, path: Path, source: str = "plugin") -> tuple[list[PluginBreak], list[dict | None]]:
    """Verify the plugin's log and compare it with the copies already imported. Returns the breaks
    and the file's records (None for a line that is not JSON)."""
    lines: list[dict | None] = []
    texts = path.read_text(encoding="utf-8").split("\n")  # numbered as verify_plugin_file numbers them
    for text_line in texts[:-1] if texts[-1] == "" else texts:
        try:
            rec = json.loads(text_line)
        except json.JSONDecodeError:
            rec = None
        lines.append(rec if isinstance(rec, dict) else None)
    known: dict[int, int] = {}  # plugin seq -> store seq of its copy
    stored: dict[int, str] = {}  # plugin seq -> the plugin hash of that copy
    with db.session() as s:
        for plugin_seq, store_seq, rec in s.execute(select(AuditEvent.source_seq, AuditEvent.seq, AuditEvent.record)
                                                    .where(AuditEvent.source == source)).all():
            known[plugin_seq], stored[plugin_seq] = store_seq, json.loads(rec).get("origin", {}).get("hash")
    found: dict[int, PluginBreak] = {}
    for b in verify_plugin_file(path):
        rec = lines[b.line - 1] if b.line <= len(lines) else None
        seq = rec.get("seq") if rec else None
        found.setdefault(b.line, PluginBreak(b.line, seq, b.reason, known.get(seq)))
    for number, rec in enumerate(lines, start=1):
        seq = rec.get("seq") if rec else None
        if seq in stored and stored[seq] != rec.get("hash") and number not in found:
            found[number] = PluginBreak(number, seq, "differs from the copy imported earlier (the log was rewritten)",
                                        known.get(seq))
    return [found[k] for k in sorted(found)], lines


def ingest_plugin_log(db, path: str | Path, source: str = "plugin") -> dict:
    """Import the plugin's JSONL audit log into the store; idempotent (by the plugin's seq).

    Only verified records are imported: a line whose hash, link or sequence is broken, or that
    differs from the copy imported earlier, is left out and returned in ``breaks`` (the copy
    already in the store stays as it was). Nothing is refused: the sound records still come in,
    so work that reads the store goes on. Raising the incident is the caller's part
    (:func:`portability.audit_integrity.ingest`)."""
    path = Path(path)
    if not path.exists():
        return {"imported": 0, "already": 0, "file": str(path), "breaks": [], "note": "no plugin log yet"}
    breaks, lines = plugin_breaks(db, path, source)
    skip = {b.line for b in breaks}
    imported = already = 0
    with _process_lock, db.session() as s:
        head = _lock_head(s, db.is_postgresql)
        known = set(s.scalars(select(AuditEvent.source_seq).where(AuditEvent.source == source)))
        for number, rec in enumerate(lines, start=1):
            if rec is None or number in skip:
                continue
            seq = int(rec["seq"])
            if seq in known:
                already += 1
                continue
            _append(s, head, str(rec.get("event")), {"origin": rec}, actor=rec.get("user"),
                    source=source, source_seq=seq)
            known.add(seq)
            imported += 1
    return {"imported": imported, "already": already, "file": str(path), "breaks": [b.as_dict() for b in breaks]}


def chain_existing_rows(conn) -> None:
    """Migration helper: give rows written before the chain existed a place in it (id order)."""
    rows = conn.execute(text("SELECT id, at, event, actor, request_id, fields FROM portability_audit "
                             "ORDER BY id")).all()
    prev, seq = GENESIS, 0
    for row in rows:
        fields = row.fields if isinstance(row.fields, dict) else json.loads(row.fields or "{}")
        seq += 1
        record = {"v": FORMAT_VERSION, "seq": seq, "ts": str(row.at), "event": row.event, "source": "service",
                  **canonical(fields), "prev": prev}
        if row.actor is not None:
            record["actor"] = row.actor
        if row.request_id is not None:
            record["request_id"] = row.request_id
        record["hash"] = _digest(record)
        conn.execute(text("UPDATE portability_audit SET seq=:seq, source='service', prev=:prev, hash=:hash, "
                          "record=:record WHERE id=:id"),
                     dict(seq=seq, prev=prev, hash=record["hash"], id=row.id,
                          record=json.dumps(record, ensure_ascii=False, sort_keys=True)))
        prev = record["hash"]
    conn.execute(text("DELETE FROM audit_chain_head"))
    conn.execute(text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, :seq, :hash)"),
                 dict(seq=seq, hash=prev))
