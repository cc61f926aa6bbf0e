"""Which audit records are disclosures of a patient's data (Art. 15(1)(c)): routes that sent
something, staff downloads, the patient's own bundle downloads; never the internal machine
records, never another patient's. Against a real store (SQLite) and a real plugin audit log."""
from __future__ import annotations

from orthanc_gdpr.audit import AuditLog
from portability import chain
from portability.db import Database
from portability.disclosures import disclosures_for
from portability.models import PortabilityRequest, utcnow
from portability.settings import Settings

MINE, OTHERS = {"study-1", "series-1", "inst-1"}, "study-2"


def test_only_disclosures_of_this_patient_and_every_one(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    route = dict(user="auto-routing", level="studies", rule="r", profile="research", destination="modality:PACS2",
                 purpose="research", lawful_basis="research")
    log.append("route.requested", user="alice", level="studies", resource="study-1", rule="r", job=1)
    log.append("route.done", **route, resource="study-1", job=1, sent=3, instances=3)
    log.append("route.done", **route, resource="study-1", job=2, sent=0, already_delivered=3, instances=3)
    log.append("route.retry", **route, resource="study-1", job=3, error="down", attempt=1)
    log.append("route.done", **route, resource=OTHERS, job=4, sent=2, instances=2)
    log.append("download", user="bob", level="series", resource="series-1", profile="basic", purpose="care",
               result="sent", instances=2, held_back=0)
    log.append("download.refused", user="eve", level="studies", resource="study-1", reason="no consent")
    db = Database(f"sqlite:///{tmp_path / 's.sqlite'}")
    db.migrate()
    with db.session() as s:
        mine = PortabilityRequest(patient_id="P1", orthanc_patient_id="pat-1", due_at=utcnow())
        other = PortabilityRequest(patient_id="P2", orthanc_patient_id="pat-2", due_at=utcnow())
        s.add_all([mine, other])
        s.flush()
        mine_id, other_id = mine.id, other.id
    for request_id, status, method in ((mine_id, 200, "GET"), (mine_id, 206, "GET"), (mine_id, 200, "HEAD"),
                                       (mine_id, 416, "GET"), (other_id, 200, "GET")):
        chain.append(db, "bundle.download", request_id=request_id, status=status, method=method)
    chain.append(db, "bundle.claimed", request_id=mine_id, job_id=1, worker="w")
    settings = Settings(data_dir=tmp_path, database_url=db.url, plugin_audit_log=tmp_path / "audit.jsonl")
    got = disclosures_for(db, settings, patient_id="P1", orthanc_patient="pat-1", resources=MINE)
    assert [(d.kind, d.recipient, d.purpose, d.lawful_basis, d.profile) for d in got] == [
        ("route", "modality:PACS2", "research", "research", "research"),
        ("download", "bob", "care", None, "basic"),
        ("bundle", f"request:{mine_id}", "portability", "data-subject-request", None)]
    assert [d.identified for d in got] == [False, False, True]
    db.dispose()
