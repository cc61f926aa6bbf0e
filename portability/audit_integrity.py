"""The audit verified whole: the service's store *and* the plugin's log, one answer for
``GET /api/audit/verify`` and ``orthanc-gdpr audit verify``.

A break (an edited, inserted or deleted record in either place) is raised as a security incident:
a ``security.audit-broken`` record in the store, once per break. It names the break and starts a
new segment: what is recorded after it is checked on its own, and nothing is blocked (recording,
imports of the plugin's sound records, rights jobs and breach queries go on).

Answer of :func:`verify_whole`::

    {"intact": bool, "entries": N (records in the store),
     "first_break": {"source": "store"|"plugin-log", "seq": .., "line": .., "reason": ..} | None,
     "store": {"entries": N, "intact": bool, "breaks": [...]},
     "plugin_log": {"path": ..., "records": N, "intact": bool, "breaks": [...]} | None,
     "incidents": [seq of the security.audit-broken record of each break]}
"""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from . import chain
from .models import AuditEvent

INCIDENT = "security.audit-broken"


def _key(brk: dict) -> str:
    """What identifies one break across runs (so it is raised once)."""
    where = f"line {brk['line']}" if brk["source"] == "plugin-log" else f"seq {brk['seq']}"
    return f"{brk['source']}:{where}:{brk['reason']}"


def raise_incident(db, brk: dict, actor: str) -> int:
    """Record ``security.audit-broken`` for this break unless it was recorded already; its seq."""
    key = _key(brk)
    with db.session() as s:
        for seq, record in s.execute(select(AuditEvent.seq, AuditEvent.record).where(AuditEvent.event == INCIDENT)):
            if json.loads(record).get("break_key") == key:
                return seq
    rec = chain.append(db, INCIDENT, actor=actor, break_key=key, broken=brk, severity="high",
                       segment="records after this one form a new segment; the break it names stays reported")
    return rec["seq"]


def ingest(db, path: Path, actor: str) -> dict:
    """Import the plugin's sound records (:func:`chain.ingest_plugin_log`); each break is raised."""
    result = chain.ingest_plugin_log(db, path)
    result["incidents"] = [raise_incident(db, b, actor) for b in result["breaks"]]
    return result


def _store_break(b: chain.Break) -> dict:
    return {"source": "store", "seq": b.seq, "line": None, "reason": b.reason}


def verify_whole(db, plugin_log: Path | None, actor: str) -> dict:
    """Check the store and the plugin's log; raise an incident for each break (see module doc)."""
    store = [_store_break(b) for b in chain.verify(db)]
    plugin = None
    if plugin_log is not None:
        breaks: list[dict] = []
        records = 0
        if plugin_log.exists():
            found, lines = chain.plugin_breaks(db, plugin_log)
            breaks, records = [b.as_dict() for b in found], len(lines)
        plugin = {"path": str(plugin_log), "exists": plugin_log.exists(), "records": records,
                  "intact": not breaks, "breaks": breaks}
    every = store + (plugin["breaks"] if plugin else [])
    incidents = [raise_incident(db, b, actor) for b in every]
    with db.session() as s:
        entries = s.scalar(select(func.count()).select_from(AuditEvent))
    return {"intact": not every, "first_break": every[0] if every else None, "entries": entries,
            "store": {"entries": entries, "intact": not store, "breaks": store},
            "plugin_log": plugin, "incidents": sorted(set(incidents))}
