"""Audit records about a patient name the patient by keyed pseudonym, with the identifying fields
sealed under the patient's key; shredding the key makes them unreadable while the chain stays
intact; records_for_patient finds one patient's records. SQLite and PostgreSQL."""
from __future__ import annotations

from pathlib import Path

from portability import audit, chain, patient_keys
from portability.db import Database
from test_rights_common import rights_db, rights_pg_url  # noqa: F401

PID, NAME, EVIDENCE = "KEY-PAT-0042", "Keyholder^Berenike", "signed form seen, Berenike Keyholder, ref 77"


def test_patient_fields_are_sealed_found_by_patient_and_shredded_with_the_key(rights_db, tmp_path):
    db = Database(rights_db)
    db.migrate()
    audit.configure(audit.AuditSink(db))
    try:
        audit.record("consent.recorded", actor="alice", consent_id=1, patient_id=PID, issuer="HOSP",
                     purpose="research", evidence=EVIDENCE)
        audit.record("rectification.applied", rectification_id=3, patient_id=PID, issuer="HOSP",
                     old_values={"PatientName": NAME}, new_values={"PatientName": "Keyholder^Bea"})
        audit.record("consent.recorded", actor="alice", consent_id=2, patient_id="OTHER-1", purpose="research")
        audit.record("user.created", actor="dora", account="carl", role="clinician")  # no patient: as it was

        raw = chain.records(db)
        text = "".join(r["record"] for r in _rows(db))
        for value in (PID, NAME, "Berenike", "HOSP"):
            assert value not in text, value  # neither in the hashed records nor in the query columns
        ref = patient_keys.pseudonym(db, PID, "HOSP")
        assert [r["patient_pseudonym"] for r in raw[:2]] == [ref, ref] and raw[3]["account"] == "carl"
        assert ref != patient_keys.pseudonym(db, PID, "")  # the issuer is part of the identity

        mine = audit.records_for_patient(PID, "HOSP")
        assert [r["event"] for r in mine] == ["consent.recorded", "rectification.applied"]
        assert mine[0]["evidence"] == EVIDENCE and mine[1]["old_values"] == {"PatientName": NAME}
        assert mine[0]["patient_id"] == PID and "sealed" not in mine[0]

        patient_keys.shred(db, PID, "HOSP")
        db.compact()
        gone = audit.records_for_patient(PID, "HOSP")
        assert len(gone) == 2 and all(r["erased"] and "evidence" not in r and "patient_id" not in r for r in gone)
        assert audit.records_for_patient("OTHER-1")[0]["patient_id"] == "OTHER-1"  # others unaffected
        assert chain.verify(db) == []  # the chain covers the ciphertext: still intact
        if rights_db.startswith("sqlite"):
            files = [p for p in Path(rights_db[len("sqlite:///"):]).parent.iterdir() if p.is_file()]
            for p in files:
                assert PID.encode() not in p.read_bytes() and b"Berenike" not in p.read_bytes(), p

        # The patient comes back (new data under the same ID): a new key, old records stay closed.
        audit.record("consent.recorded", actor="alice", consent_id=9, patient_id=PID, issuer="HOSP", purpose="care")
        again = audit.records_for_patient(PID, "HOSP")
        assert [r.get("erased", False) for r in again] == [True, True, False] and again[2]["consent_id"] == 9
    finally:
        audit.configure(None)
        db.dispose()


def _rows(db):
    from portability.models import AuditEvent

    with db.session() as s:
        return [{"record": (e.record or "") + str(e.fields) + str(e.actor)} for e in s.query(AuditEvent)]
