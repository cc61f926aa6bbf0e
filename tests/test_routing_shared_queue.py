"""Two Orthanc replicas, one routing queue in PostgreSQL: a study both receive is delivered once.

Each replica runs the plugin with "Gdpr.QueueDatabaseUrl" pointing at the same database. In the
first test each replica has its own SQLite index (a modality sending to both); the Orthanc IDs
of a study are the same on both, so their stable-study events queue the same (rule, level,
resource): the pending-unique index collapses them, SKIP LOCKED gives the job to one replica,
and the shared delivery record stops a later twin from sending anything again. In the second,
both replicas run on one PostgreSQL index and one storage area, as a scaled-out deployment does.
"""
from __future__ import annotations

import time

import pydicom
import pytest
import sqlalchemy as sa

from orthanc_server import (POSTGRESQL_INDEX_PLUGIN, PYTHON_PLUGIN, StoreScp, make_ct_study, wait_for,
                            write_rules)
from pg import throwaway_database

pytestmark = pytest.mark.integration

@pytest.fixture
def queue_url():
    """A throw-away PostgreSQL database for the shared queue (plain libpq URL)."""
    with throwaway_database("routing_queue") as url:
        yield url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def scp(tmp_path):
    s = StoreScp(tmp_path / "scp", extra_args=["--unique-filenames"])  # a second copy = a second file
    try:
        yield s.start()
    finally:
        s.stop()


def queue_rows(url: str) -> list[dict]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as c:
            return [dict(r) for r in c.execute(sa.text(
                "SELECT id, rule, level, resource, status, attempts, claimed_by, detail FROM gdpr_routing_jobs"
                " ORDER BY id")).mappings()]
    finally:
        engine.dispose()


def test_two_replicas_deliver_a_study_they_both_receive_once(queue_url, orthanc_factory, scp, tmp_path):
    rules = write_rules(tmp_path / "rules.json", {
        "name": "ct-research", "match": {"Modality": ["CT"]}, "destination": {"type": "modality", "name": "scp"},
        "profile": "research", "purpose": "research", "lawful_basis": "research"})
    replicas = [orthanc_factory(modalities={"scp": scp.as_modality()}, stable_age=1,
                                gdpr={"RoutingRules": str(rules), "QueueDatabaseUrl": queue_url}) for _ in range(2)]
    studies = [make_ct_study(4, patient_id=f"REPL-{n}", series=2) for n in range(3)]
    study_ids = set()
    for files in studies:  # each study to both replicas, as a modality sending to both would
        for replica in replicas:
            ids = [replica.upload(f) for f in files]
            study_ids.add(replica.get_json(f"/instances/{ids[0]}/study")["ID"])
    assert len(study_ids) == 3  # same Orthanc IDs on both replicas

    def settled():
        rows = queue_rows(queue_url)
        done = {r["resource"] for r in rows if r["status"] == "done"}
        return rows if done == study_ids and not any(r["status"] in ("pending", "running") for r in rows) else None

    rows = wait_for(settled, 60, message="every study routed")
    time.sleep(3)  # give a late twin every chance to send again (StableAge 1 s, worker idle 1 s)
    rows = queue_rows(queue_url)
    assert not any(r["status"] in ("pending", "running", "failed") for r in rows), rows

    received = scp.wait_for_files(12)
    sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in received]
    assert len(received) == 12 and len(set(sops)) == 12, sorted(sops)  # 3 studies x 4 instances, once each

    import json

    sent = sum(json.loads(r["detail"]).get("sent", 0) for r in rows if r["status"] == "done")
    assert sent == 12, rows
    # both replicas share one queue: each lists the same jobs
    assert {j["id"] for j in replicas[0].get_json("/gdpr/jobs")} == {j["id"] for j in replicas[1].get_json("/gdpr/jobs")}
    # the work was done by the replicas' workers (claimed_by: host:pid:...), at most once per study per job
    per_study = {s: [r for r in rows if r["resource"] == s] for s in study_ids}
    for study, jobs in per_study.items():
        assert sum(json.loads(r["detail"]).get("sent", 0) for r in jobs) == 4, jobs
    workers = {r["claimed_by"] for r in rows}
    audit_sent = sum(r.get("sent", 0) for rep in replicas for r in rep.audit_records if r["event"] == "route.done")
    assert audit_sent == 12
    print(f"\n{len(rows)} job(s) for 3 studies received by 2 replicas ({len(workers)} worker(s)); "
          f"12 instances delivered once")


def test_replicas_on_one_postgresql_index_share_the_routing_work(queue_url, orthanc_factory, scp, tmp_path):
    """Two Orthancs on one PostgreSQL index (Debian's orthanc-postgresql) and one storage area:
    studies sent to one replica are routed by whichever replica's worker claims the job, once."""
    index_db = queue_url.rsplit("/", 1)[1]  # the index tables live beside the queue's
    shared = {"Plugins": [PYTHON_PLUGIN, POSTGRESQL_INDEX_PLUGIN], "StorageDirectory": str(tmp_path / "storage"),
              "PostgreSQL": {"EnableIndex": True, "EnableStorage": False, "Host": "127.0.0.1", "Port": 5432,
                             "Database": index_db, "Username": "postgres", "Password": "", "Lock": False}}
    rules = write_rules(tmp_path / "rules.json", {
        "name": "ct-research", "match": {"Modality": ["CT"]}, "destination": {"type": "modality", "name": "scp"},
        "profile": "research", "purpose": "research", "lawful_basis": "research"})
    first = orthanc_factory(modalities={"scp": scp.as_modality()}, stable_age=1, extra=shared,
                            gdpr={"RoutingRules": str(rules), "QueueDatabaseUrl": queue_url})
    second = orthanc_factory(modalities={"scp": scp.as_modality()}, stable_age=1, extra=shared,
                             gdpr={"RoutingRules": str(rules), "QueueDatabaseUrl": queue_url})
    studies = [make_ct_study(3, patient_id=f"IDX-{n}") for n in range(6)]
    for files in studies:
        for f in files:
            first.upload(f)
    assert len(second.get_json("/studies")) == 6  # one index: the second replica sees them all

    def settled():
        rows = queue_rows(queue_url)
        return rows if len(rows) >= 6 and all(r["status"] == "done" for r in rows) else None

    rows = wait_for(settled, 90, message="every study routed")
    received = scp.wait_for_files(18)
    sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in received]
    assert len(received) == 18 and len(set(sops)) == 18  # 6 studies x 3 instances, each delivered once
    assert len({r["resource"] for r in rows}) == 6 and len(rows) == 6  # one job per study
    workers = {r["claimed_by"].split(":")[1] for r in rows}
    print(f"\n6 studies routed by {len(workers)} replica worker(s) sharing one index and one queue")
