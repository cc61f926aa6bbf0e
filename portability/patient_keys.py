"""Keyed pseudonyms and per-patient keys: what lets kept records outlive an erasure.

Records the service must keep after a patient is erased (the hash-chained audit store, the erasure
record itself) never hold the patient's identifiers in clear:

* they name the patient by a **keyed pseudonym**, ``HMAC-SHA256(secret, issuer, PatientID)``; the
  secret is generated once per database (``pseudonym_secret``), so every service process sharing the
  database derives the same pseudonym and lookups work by pseudonym only;
* their identifying and free-text fields are **sealed** (AES-256-GCM) under a random key of that
  patient (``patient_keys``), with the pseudonym as associated data.

Erasure **shreds** the patient's key (:func:`shred`): the sealed fields become unreadable
everywhere at once (audit records, database pages, backups), while the hash chain, which covers
the ciphertext, stays intact. What remains is the pseudonym: it proves that an erasure happened
and what was done, and it can be linked to a person only by someone who holds the secret *and*
already knows that person's PatientID. (A patient whose ID shows up again gets a new key.)

Storage notes: on SQLite the service runs with ``PRAGMA secure_delete=ON`` and checkpoints the
write-ahead log (``TRUNCATE``) after an erasure (:meth:`portability.db.Database.compact`), so the
shredded key leaves the files. PostgreSQL keeps dead row versions until they are vacuumed: after
an erasure run ``VACUUM FULL patient_keys`` (and see ``docs/ERASURE.md`` for the other tables).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .models import PatientKey, PseudonymSecret, utcnow

SEALED_PREFIX = "aesgcm1."


def _secret(s) -> bytes:
    row = s.get(PseudonymSecret, 1)
    if row is None:  # created by the migration; a race of first writers keeps the first secret
        try:
            with s.begin_nested():
                s.add(PseudonymSecret(id=1, secret=os.urandom(32)))
        except IntegrityError:
            pass
        row = s.get(PseudonymSecret, 1)
    return bytes(row.secret)


def pseudonym_in(s, patient_id: str, issuer: str | None) -> str:
    """The keyed pseudonym of (PatientID, issuer), 64 hex characters (within session ``s``)."""
    message = json.dumps([issuer or "", patient_id], ensure_ascii=False).encode()
    return hmac.new(_secret(s), message, hashlib.sha256).hexdigest()


def pseudonym(db, patient_id: str, issuer: str | None) -> str:
    with db.session() as s:
        return pseudonym_in(s, patient_id, issuer)


def _key(s, ref: str, create: bool) -> bytes | None:
    row = s.get(PatientKey, ref)
    if row is not None and row.key is not None:
        return bytes(row.key)
    if not create:
        return None
    if row is None:
        try:
            with s.begin_nested():
                s.add(PatientKey(pseudonym=ref, key=os.urandom(32), created_at=utcnow()))
        except IntegrityError:  # another writer created it first
            pass
        row = s.get(PatientKey, ref)
        s.refresh(row)
    elif row.key is None:  # erased earlier, and the patient is back: a new key for new records
        row.key, row.created_at, row.shredded_at = os.urandom(32), utcnow(), None
        s.flush()
    return bytes(row.key)


def seal(db, patient_id: str, issuer: str | None, fields: dict[str, Any]) -> tuple[str, str]:
    """(pseudonym, sealed text) of ``fields`` (JSON) under the patient's key (created when needed)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with db.session() as s:
        ref = pseudonym_in(s, patient_id, issuer)
        key = _key(s, ref, create=True)
    nonce = os.urandom(12)
    data = json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str).encode()
    return ref, SEALED_PREFIX + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, data, ref.encode())).decode()


def keys(db, refs) -> dict[str, bytes]:
    """The existing keys of these pseudonyms, read at once (shredded or unknown ones are absent)."""
    refs = set(refs)
    if not refs:
        return {}
    with db.session() as s:
        rows = s.execute(select(PatientKey.pseudonym, PatientKey.key).where(PatientKey.pseudonym.in_(refs))).all()
    return {ref: bytes(key) for ref, key in rows if key is not None}


def unseal(key: bytes | None, ref: str, sealed: str) -> dict | None:
    """The fields sealed for pseudonym ``ref`` with ``key`` (from :func:`keys`); None when the key
    was shredded (erased) or the text was sealed under an earlier, shredded key."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if key is None or not isinstance(sealed, str) or not sealed.startswith(SEALED_PREFIX):
        return None
    raw = base64.b64decode(sealed[len(SEALED_PREFIX):])
    try:
        return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], ref.encode()))
    except InvalidTag:
        return None


def shred(db, patient_id: str, issuer: str | None) -> str:
    """Destroy the patient's key; returns the pseudonym (kept: the record of the erasure)."""
    with db.session() as s:
        ref = pseudonym_in(s, patient_id, issuer)
        row = s.get(PatientKey, ref)
        if row is None:
            s.add(PatientKey(pseudonym=ref, key=None, created_at=utcnow(), shredded_at=utcnow()))
        else:
            row.key, row.shredded_at = None, utcnow()
    return ref

