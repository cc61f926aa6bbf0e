"""Audit writes behind one function, ``record(event, **fields)``.

Today: one row per event in ``portability_audit``. A hash-chained audit store can replace
:class:`AuditSink` later without touching the callers.
"""
from __future__ import annotations

from typing import Any, Callable

from .models import AuditEvent

_sink: Callable[..., None] | None = None


class AuditSink:
    def __init__(self, db) -> None:
        self.db = db

    def __call__(self, event: str, **fields: Any) -> None:
        actor = fields.pop("actor", None)
        request_id = fields.pop("request_id", None)
        with self.db.session() as s:
            s.add(AuditEvent(event=event, actor=actor, request_id=request_id,
                             fields={k: v for k, v in fields.items() if v is not None}))


def configure(sink: Callable[..., None] | None) -> None:
    global _sink
    _sink = sink


def record(event: str, **fields: Any) -> None:
    """Record one audit event (``actor=``, ``request_id=`` and free-form JSON-able fields)."""
    if _sink is None:
        raise RuntimeError("audit sink not configured (create_app() does it)")
    _sink(event, **fields)
