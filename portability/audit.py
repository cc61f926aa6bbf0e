"""Audit writes behind one function, ``record(event, **fields)``.

Every record is appended to the hash-chained store of :mod:`portability.chain` (one chain for the
service and the imported plugin records).
"""
from __future__ import annotations

from typing import Any, Callable

_sink: Callable[..., Any] | None = None


class AuditSink:
    def __init__(self, db) -> None:
        self.db = db

    def __call__(self, event: str, **fields: Any) -> dict:
        from . import chain

        return chain.append(self.db, event, **fields)


def configure(sink: Callable[..., Any] | None) -> None:
    global _sink
    _sink = sink


def record(event: str, **fields: Any) -> dict:
    """Record one audit event (``actor=``, ``request_id=`` and free-form JSON-able fields)."""
    if _sink is None:
        raise RuntimeError("audit sink not configured (create_app() does it)")
    return _sink(event, **fields)
