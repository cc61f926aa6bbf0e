"""Audit writes behind one function, ``record(event, **fields)``.

Every record is appended to the hash-chained store of :mod:`portability.chain` (one chain for the
service and the imported plugin records).
"""
from __future__ import annotations

from typing import Any, Callable

_sink: Callable[..., Any] | None = None
_roles: dict[str, str] = {}  #: name -> role of each person or machine authenticated in this process


class AuditSink:
    def __init__(self, db) -> None:
        self.db = db

    def __call__(self, event: str, **fields: Any) -> dict:
        from . import chain

        return chain.append(self.db, event, **fields)


def configure(sink: Callable[..., Any] | None) -> None:
    global _sink
    _sink = sink


def note_role(name: str, role: str | None) -> None:
    """Remember the role ``name`` authenticated with, for the records of what they do next."""
    if role:
        _roles[name] = role


def record(event: str, **fields: Any) -> dict:
    """Record one audit event (``actor=``, ``request_id=`` and free-form JSON-able fields).

    A record whose ``actor`` authenticated in this process also names the role (``actor_role``):
    every record of a human action names the person and the role they acted in."""
    if _sink is None:
        raise RuntimeError("audit sink not configured (create_app() does it)")
    actor = fields.get("actor")
    if isinstance(actor, str) and actor in _roles and "actor_role" not in fields:
        fields["actor_role"] = _roles[actor]
    return _sink(event, **fields)
