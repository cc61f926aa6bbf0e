"""Art. 19 notices have a lifecycle: a person who downloaded a patient's data gets a notice after a
rectification and after an erasure; staff mark one sent (who, when, channel, evidence) and close
the other with a reason; overdue notices are listed. Real Orthanc with the plugin."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from orthanc_server import make_ct_study
from portability.models import utcnow
from test_rights_common import DPO, REVIEWER, STAFF, client_for, rights_db, rights_pg_url, wait_status  # noqa: F401


def downloaded(orthanc, patient_id: str) -> None:
    ids = [orthanc.upload(f) for f in make_ct_study(1, patient_id=patient_id, patient_name="Notice^Pat", series=1)]
    study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    assert orthanc.get(f"/gdpr/studies/{study}/archive").status_code == 200  # a de-identified download by a person


def test_download_recipients_get_notices_marked_sent_or_closed_and_overdue_ones_are_listed(orthanc, rights_db, tmp_path):
    downloaded(orthanc, "NOTE-1")
    downloaded(orthanc, "NOTE-2")
    person = f"user:{orthanc.username}"
    with client_for(orthanc, rights_db, tmp_path) as c:
        rect = c.post("/api/rectifications", headers=STAFF, json={
            "patient_id": "NOTE-1", "changes": [{"attribute": "PatientSex", "current": "O", "proposed": "F"}]}).json()
        c.post(f"/api/rectifications/{rect['id']}/decision", headers=REVIEWER, json={"approve": True, "reason": "seen"})
        assert wait_status(c, f"/api/rectifications/{rect['id']}", ("applied", "failed"))["status"] == "applied"
        erasure = c.post("/api/erasures", headers=STAFF, json={"patient_id": "NOTE-2"}).json()
        c.post(f"/api/erasures/{erasure['id']}/decision", headers=DPO, json={"grant": True, "reason": "no duty left"})
        assert wait_status(c, f"/api/erasures/{erasure['id']}", ("erased", "failed"))["status"] == "erased"

        open_ = c.get("/api/notices", params={"state": "to-send"}, headers=STAFF).json()
        assert [(n["right"], n["recipient"], n["recipient_kind"]) for n in open_] == [
            ("rectification", person, "user-download"), ("erasure", person, "user-download")]
        assert all(not n["overdue"] and n["due_at"] > n["created_at"] for n in open_)
        assert c.get("/api/notices", params={"overdue": "true"}, headers=STAFF).json() == []
        told, closing = open_

        # A month passes for the rectification's notice: it is overdue.
        import sqlalchemy

        engine = sqlalchemy.create_engine(rights_db)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE recipient_notices SET due_at = :d WHERE id = :id"),
                         {"d": utcnow() - timedelta(days=1), "id": told["id"]})
        engine.dispose()
        overdue = c.get("/api/notices", params={"overdue": "true"}, headers=STAFF).json()
        assert [n["id"] for n in overdue] == [told["id"]] and overdue[0]["overdue"] is True

        bad = c.post(f"/api/notices/{told['id']}/sent", headers=STAFF, json={"channel": "pigeon", "evidence": "x"})
        assert bad.status_code == 422 and "pigeon" not in bad.text
        assert {f["field"] for f in bad.json()["fields"]} == {"body.channel", "body.evidence"}
        r = c.post(f"/api/notices/{told['id']}/sent", headers=STAFF,
                   json={"channel": "email", "evidence": "message-id <n-17@hospital.example>"})
        assert r.status_code == 200, r.text
        sent = r.json()
        assert (sent["state"], sent["sent_by"], sent["channel"], sent["overdue"]) == ("sent", "alice", "email", False)
        assert sent["sent_at"] and sent["evidence"] == "message-id <n-17@hospital.example>"
        assert c.post(f"/api/notices/{told['id']}/sent", headers=STAFF,
                      json={"channel": "email", "evidence": "again"}).status_code == 409
        assert c.post(f"/api/notices/{told['id']}/close", headers=STAFF, json={"reason": "sent already"}).status_code == 409

        r = c.post(f"/api/notices/{closing['id']}/close", headers=REVIEWER,
                   json={"reason": "impossible: the account was removed and the person left the hospital"})
        assert r.status_code == 200 and r.json()["state"] == "closed" and r.json()["closed_by"] == "rita"
        assert c.get(f"/api/notices/{closing['id']}", headers=STAFF).json()["close_reason"].startswith("impossible")
        assert c.get("/api/notices", params={"state": "to-send"}, headers=STAFF).json() == []
        assert c.get("/api/notices/999", headers=STAFF).status_code == 404
        assert c.get("/api/notices").status_code == 401

        events = {e["event"]: e for e in c.get("/api/audit/records", headers=DPO).json()}
        assert events["notice.sent"]["actor"] == "alice" and events["notice.sent"]["channel"] == "email"
        assert events["notice.closed"]["actor"] == "rita" and events["notice.closed"]["notice_id"] == closing["id"]
