"""The one audit store: hash chain over service and plugin records, ``orthanc-gdpr audit verify``
finding edited/inserted/deleted entries, FHIR AuditEvent export (BALP), the breach query."""
from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from orthanc_gdpr.audit import AuditLog
from orthanc_gdpr.cli import main as cli
from orthanc_server import make_ct_study
from portability import chain
from portability.db import Database
from test_rights_common import DPO, STAFF, client_for, rights_db, rights_pg_url  # noqa: F401


def run_cli(capsys, *args) -> tuple[int, str]:
    code = cli(["audit", *args])
    return code, capsys.readouterr().out


def fill(db_url: str, plugin_log) -> Database:
    db = Database(db_url)
    db.migrate()
    log = AuditLog(plugin_log)
    log.append("route.done", user="auto-routing", level="studies", resource="study-a", destination="modality:RESEARCH",
               rule="r", profile="research", purpose="research", lawful_basis="research", sent=2)
    log.append("download", user="bob", level="studies", resource="study-b", profile="basic", purpose="download")
    chain.ingest_plugin_log(db, plugin_log)
    for i in range(4):
        chain.append(db, "consent.recorded", actor="alice", consent_id=i, patient_id=f"P{i}", purpose="research")
    return db


def test_verify_detects_edited_inserted_and_deleted_entries_and_says_where(rights_db, tmp_path, capsys):
    plugin_log = tmp_path / "audit.jsonl"
    db = fill(rights_db, plugin_log)
    code, out = run_cli(capsys, "verify", "--database-url", rights_db, "--plugin-log", str(plugin_log))
    assert code == 0 and "intact (6 entries)" in out and "plugin log" in out, out
    # Ingest is idempotent: nothing new the second time.
    assert chain.ingest_plugin_log(db, plugin_log) == {"imported": 0, "already": 2, "file": str(plugin_log),
                                                       "breaks": []}

    engine = sa.create_engine(rights_db)

    def sql(q, **kw):
        with engine.begin() as c:
            return c.execute(sa.text(q), kw)

    def incidents() -> list[dict]:
        return [r for r in chain.records(db) if r["event"] == "security.audit-broken"]

    # 1. an edited entry (the hashed record itself): reported, and raised as an incident once
    original = sql("SELECT record FROM portability_audit WHERE seq = 4").scalar()
    sql("UPDATE portability_audit SET record = :r WHERE seq = 4", r=original.replace('"P1"', '"P9"'))
    code, out = run_cli(capsys, "verify", "--database-url", rights_db)
    assert code == 1 and "BROKEN at entry seq 4" in out and "edited" in out and "security.audit-broken" in out, out
    assert run_cli(capsys, "verify", "--database-url", rights_db)[0] == 1
    assert [i["broken"]["seq"] for i in incidents()] == [4]  # once, however often it is verified
    sql("UPDATE portability_audit SET record = :r WHERE seq = 4", r=original)
    # ... or only the queryable columns
    sql("UPDATE portability_audit SET event = 'consent.withdrawn' WHERE seq = 5")
    code, out = run_cli(capsys, "verify", "--database-url", rights_db)
    assert code == 1 and "seq 5" in out and "edited" in out, out
    sql("UPDATE portability_audit SET event = 'consent.recorded' WHERE seq = 5")
    assert run_cli(capsys, "verify", "--database-url", rights_db)[0] == 0

    # 2. a deleted entry (in the middle, then at the end)
    from portability.models import AuditEvent

    def take(seq: int) -> dict:
        with db.session() as s:
            row = s.query(AuditEvent).filter_by(seq=seq).one()
            saved = {c.name: getattr(row, c.name) for c in AuditEvent.__table__.columns}
        sql("DELETE FROM portability_audit WHERE seq = :seq", seq=seq)
        return saved

    def put_back(saved: dict) -> None:
        with db.session() as s:
            s.add(AuditEvent(**{k: v for k, v in saved.items() if k != "id"}))

    saved = take(3)
    code, out = run_cli(capsys, "verify", "--database-url", rights_db)
    assert code == 1 and "BROKEN at entry seq 4" in out and ("deleted" in out), out
    put_back(saved)
    assert run_cli(capsys, "verify", "--database-url", rights_db)[0] == 0
    last = sql("SELECT max(seq) FROM portability_audit").scalar()
    saved = take(last)
    code, out = run_cli(capsys, "verify", "--database-url", rights_db)
    assert code == 1 and "newest entries were deleted" in out and f"seq {last}" in out, out
    # The incident is recorded after the gap: the gap stays visible (a deletion before that record).
    code, out = run_cli(capsys, "verify", "--database-url", rights_db)
    assert code == 1 and f"BROKEN at entry seq {last + 1}" in out and "deleted" in out, out
    put_back(saved)
    assert run_cli(capsys, "verify", "--database-url", rights_db)[0] == 0

    # 3. an inserted entry (forged with a correct-looking hash of its own)
    db2_url = rights_db
    sql("UPDATE portability_audit SET seq = seq + 100 WHERE seq >= 5")
    forged = {"v": 1, "seq": 5, "ts": "2024-01-01T00:00:00+00:00", "event": "consent.recorded", "source": "service",
              "actor": "mallory", "prev": "0" * 64}
    from orthanc_gdpr.audit import _digest
    forged["hash"] = _digest(forged)
    sql("INSERT INTO portability_audit (at, event, actor, fields, seq, source, prev, hash, record) VALUES "
        "(:at, 'consent.recorded', 'mallory', '{}', 5, 'service', :prev, :hash, :record)",
        at=datetime.now(timezone.utc), prev=forged["prev"], hash=forged["hash"], record=json.dumps(forged))
    code, out = run_cli(capsys, "verify", "--database-url", db2_url)
    assert code == 1 and "BROKEN at entry seq 5" in out and "inserted" in out, out
    engine.dispose()

    # 4. the plugin's own log: an edited line is found; the import leaves it out and goes on
    lines = plugin_log.read_text().splitlines()
    lines[1] = lines[1].replace('"bob"', '"eve"')
    plugin_log.write_text("\n".join(lines) + "\n")
    code, out = run_cli(capsys, "verify", "--database-url", rights_db, "--plugin-log", str(plugin_log))
    assert code == 1 and "BROKEN at line 2" in out, out
    AuditLog(plugin_log).append("download", user="carol", level="studies", resource="study-c", profile="basic")
    result = chain.ingest_plugin_log(db, plugin_log)
    assert result["imported"] == 1 and [(b["line"], b["store_seq"]) for b in result["breaks"]] == [(2, 2)]
    assert [r["origin"]["user"] for r in chain.records(db) if r["source"] == "plugin"] == ["auto-routing", "bob", "carol"]
    db.dispose()


def test_concurrent_writers_keep_one_unbroken_chain(rights_db, tmp_path):
    db = Database(rights_db)
    db.migrate()

    def write(n):
        for i in range(15):
            chain.append(db, "test.event", actor=f"w{n}", i=i)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert chain.verify(db) == []
    assert [r["seq"] for r in chain.records(db)] == list(range(1, 61))
    db.dispose()


def test_audit_event_export_is_balp_shaped_and_parses_as_fhir(rights_db, tmp_path, capsys):
    from fhir.resources.R4B.auditevent import AuditEvent
    from fhir.resources.R4B.bundle import Bundle

    plugin_log = tmp_path / "audit.jsonl"
    db = fill(rights_db, plugin_log)
    chain.append(db, "rectification.applied", rectification_id=1, patient_id="P1", old_values={"PatientName": "A^B"},
                 new_values={"PatientName": "C^D"})
    chain.append(db, "access.refused", status=403, reason="needs role 'dpo'")
    out_file = tmp_path / "audit-fhir.json"
    code, _ = run_cli(capsys, "export", "--database-url", rights_db, "-o", str(out_file))
    assert code == 0
    bundle = Bundle.model_validate(json.loads(out_file.read_text()))
    assert all(e.fullUrl.startswith("urn:uuid:") and str(uuid.UUID(e.fullUrl[9:])) == e.fullUrl[9:]
               for e in bundle.entry)
    events = [AuditEvent.model_validate(e.resource.model_dump()) for e in bundle.entry]
    by_event = {next(s.code for s in e.subtype): e for e in events}
    export = by_event["route.done"]
    assert (export.type.system, export.type.code) == ("http://dicom.nema.org/resources/ontology/DCM", "110106")
    assert export.source.observer.display == "orthanc-gdpr plugin"
    assert any(a.who.display == "modality:RESEARCH" and a.requestor is False for a in export.agent)
    assert by_event["download"].type.code == "110106"
    update = by_event["rectification.applied"]
    assert update.type.code == "110110" and update.action == "U"
    assert any(ent.role and ent.role.code == "1" and ent.what.identifier.value == "P1" for ent in update.entity)
    assert by_event["access.refused"].type.code == "110113" and by_event["access.refused"].outcome == "4"
    assert len(events) == 8
    with client_for(None, rights_db, tmp_path) as c:
        r = c.get("/api/audit/fhir", headers=DPO)
        assert r.status_code == 200 and r.json()["total"] >= 8
        assert c.get("/api/audit/fhir", headers=STAFF).status_code == 403
    db.dispose()


def test_breach_query_lists_patients_by_destination_or_user_as_csv_and_json(orthanc, rights_db, tmp_path, capsys):
    a = orthanc.get_json(f"/instances/{orthanc.upload(make_ct_study(1, patient_id='BREACH-A', series=1)[0])}/study")["ID"]
    b = orthanc.get_json(f"/instances/{orthanc.upload(make_ct_study(1, patient_id='BREACH-B', series=1)[0])}/study")["ID"]
    plugin_log = tmp_path / "plugin-audit.jsonl"
    log = AuditLog(plugin_log)
    log.append("route.done", user="auto-routing", level="studies", resource=a, destination="modality:RESEARCH",
               rule="r", profile="research", purpose="research", lawful_basis="research", sent=1)
    log.append("route.done", user="auto-routing", level="studies", resource=b, destination="modality:OTHER",
               rule="o", profile="research", purpose="research", lawful_basis="research", sent=1)
    log.append("download", user="bob", level="studies", resource=b, profile="basic", purpose="download", instances=1)
    now = datetime.now(timezone.utc)
    t1, t2 = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    with client_for(orthanc, rights_db, tmp_path, plugin_audit_log=plugin_log) as c:
        r = c.get("/api/audit/breach", params={"since": t1, "until": t2, "destination": "RESEARCH"}, headers=DPO)
        assert r.status_code == 200, r.text
        assert [p["patient_id"] for p in r.json()["patients"]] == ["BREACH-A"]
        r = c.get("/api/audit/breach", params={"since": t1, "until": t2, "user": "bob", "format": "csv"}, headers=DPO)
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert r.headers["content-type"].startswith("text/csv")
        assert [(x["patient_id"], x["user"], x["event"]) for x in rows] == [("BREACH-B", "bob", "download")]
        earlier = (now - timedelta(hours=3)).isoformat()
        r = c.get("/api/audit/breach", params={"since": earlier, "until": t1, "destination": "RESEARCH"}, headers=DPO)
        assert r.json()["patient_count"] == 0
        assert c.get("/api/audit/breach", params={"since": t1, "until": t2, "destination": "RESEARCH"},
                     headers=STAFF).status_code == 403
        assert "audit.breach-query" in [e["event"] for e in c.get("/api/audit/records", headers=DPO).json()]
    code, out = run_cli(capsys, "breach", "--database-url", rights_db, "--plugin-log", str(plugin_log),
                        "--destination", "modality:RESEARCH", "--since", t1, "--until", t2, "--format", "json",
                        "--orthanc", f"http://{orthanc.username}:{orthanc.password}@127.0.0.1:{orthanc.http_port}")
    assert code == 0 and json.loads(out)["patients"][0]["patient_id"] == "BREACH-A", out
