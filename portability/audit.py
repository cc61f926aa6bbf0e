"""Audit writes behind one function, ``record(event, **fields)``.

Every record is appended to the hash-chained store of :mod:`portability.chain` (one chain for the
service and the imported plugin records).

Records about a patient (any call with ``patient_id=``) never store the patient in clear: the
audit layer replaces the identifying and free-text fields (:data:`SEALED_FIELDS`, e.g.
``patient_id``, ``issuer``, ``old_values``, ``evidence``, ``reason``) by ``patient_pseudonym`` (a
keyed pseudonym) and ``sealed`` (those fields encrypted under the patient's own key), see
:mod:`portability.patient_keys`. Callers need not do anything: they pass the fields as before.
An erasure shreds the key, and the sealed fields of every record of that patient become unreadable
while the chain stays intact.

Reading back: :func:`readable` opens the sealed fields of records (while the key exists);
:func:`records_for_patient` finds every record of one patient.
"""
from __future__ import annotations

from typing import Any, Callable

_sink: Callable[..., Any] | None = None
_roles: dict[str, str] = {}  #: name -> role of each person or machine authenticated in this process

#: fields that identify a patient or may (free text) say who the patient is: sealed whenever the
#: record names a patient (``patient_id``)
SEALED_FIELDS = frozenset({
    "patient_id", "issuer", "patient_name", "patient_birth_date", "birth_date", "names", "accession_number",
    "accession_numbers", "orthanc_patient", "orthanc_patient_id", "patient", "studies", "study_uids",
    "old_values", "new_values", "changes", "evidence", "grounds", "reason", "notes", "identity_notes", "text",
    "new_studies", "close_reason",
})


class AuditSink:
    def __init__(self, db) -> None:
        self.db = db

    def __call__(self, event: str, **fields: Any) -> dict:
        from . import chain

        return chain.append(self.db, event, **protect(self.db, fields))


def protect(db, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as stored: when they name a patient, the identifying ones sealed (see module doc)."""
    from . import patient_keys
    from .chain import canonical

    if not fields.get("patient_id"):
        return fields
    secret = canonical({k: v for k, v in fields.items() if k in SEALED_FIELDS and v is not None})
    ref, sealed = patient_keys.seal(db, str(fields["patient_id"]), fields.get("issuer"), secret)
    return {**{k: v for k, v in fields.items() if k not in SEALED_FIELDS}, "patient_pseudonym": ref, "sealed": sealed}


def readable(db, records: list[dict]) -> list[dict]:
    """Chain records with their sealed fields opened (``sealed`` removed); the keys are read once
    for all. A record of an erased patient (key shredded) keeps ``sealed`` and gets ``"erased": true``."""
    from . import patient_keys

    found = patient_keys.keys(db, {r["patient_pseudonym"] for r in records if "sealed" in r and "patient_pseudonym" in r})
    out = []
    for r in records:
        if "sealed" not in r or "patient_pseudonym" not in r:
            out.append(r)
            continue
        opened = patient_keys.unseal(found.get(r["patient_pseudonym"]), r["patient_pseudonym"], r["sealed"])
        out.append({**r, "erased": True} if opened is None else
                   {**{k: v for k, v in r.items() if k != "sealed"}, **opened})
    return out


def records_for_patient(patient_id: str, issuer: str = "", db=None) -> list[dict]:
    """Every service record about one patient (PatientID and issuer), oldest first, sealed fields
    opened (:func:`readable`). This is how to find "every disclosure of this patient" among the
    service's records (e.g. for Art. 15): records name patients by pseudonym only, so a search on
    ``patient_id`` in the raw records finds nothing. (Plugin records name Orthanc resources, not
    patients: match them by the patient's Orthanc ids.) ``db``: the service database (default: the
    one the audit sink was configured with)."""
    from . import chain, patient_keys

    db = db or getattr(_sink, "db", None)
    if db is None:
        raise RuntimeError("audit sink not configured (create_app() does it)")
    ref = patient_keys.pseudonym(db, patient_id, issuer)
    return readable(db, [r for r in chain.records(db) if r.get("patient_pseudonym") == ref])


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
    every record of a human action names the person and the role they acted in. Patient fields
    are sealed (see the module doc)."""
    if _sink is None:
        raise RuntimeError("audit sink not configured (create_app() does it)")
    actor = fields.get("actor")
    if isinstance(actor, str) and actor in _roles and "actor_role" not in fields:
        fields["actor_role"] = _roles[actor]
    return _sink(event, **fields)
