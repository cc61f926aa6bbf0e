"""The audit verified whole (store and plugin log), a break raised as an incident that blocks
nothing, and ``audit verify`` refusing to answer about a store that is not there. Real Orthanc."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from orthanc_gdpr.cli import main as cli
from orthanc_server import make_ct_study
from test_rights_common import DPO, REVIEWER, STAFF, client_for, rights_db, rights_pg_url, wait_status  # noqa: F401

OLD, NEW = "Tamper^Before", "Tamper^After"


def cli_verify(capsys, *args) -> tuple[int, str]:
    code = cli(["audit", "verify", *args])
    return code, capsys.readouterr().out


def test_an_edited_plugin_line_is_reported_by_both_paths_raised_once_and_blocks_nothing(orthanc, rights_db, tmp_path,
                                                                                        capsys):
    ids = [orthanc.upload(f) for f in make_ct_study(2, patient_id="TAMPER-1", patient_name=OLD, series=1)]
    study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    for _ in range(2):  # two de-identified downloads: two plugin audit lines
        assert orthanc.get(f"/gdpr/studies/{study}/archive").status_code == 200
    log = orthanc.state_dir / "audit.jsonl"
    with client_for(orthanc, rights_db, tmp_path) as c:
        assert c.post("/api/audit/ingest", headers=DPO).json()["imported"] == 2
        assert c.get("/api/audit/verify", headers=DPO).json()["intact"] is True

        lines = log.read_text().splitlines()
        edited = json.loads(lines[0])
        edited["user"] = "someone-else"
        lines[0] = json.dumps(edited, separators=(",", ":"))
        log.write_text("\n".join(lines) + "\n")

        api = c.get("/api/audit/verify", headers=DPO).json()
        assert api["intact"] is False and api["store"]["intact"] is True
        assert api["first_break"]["source"] == "plugin-log" and api["first_break"]["line"] == 1
        assert "edited" in api["first_break"]["reason"] and api["first_break"]["store_seq"] == 1
        code, out = cli_verify(capsys, "--database-url", rights_db, "--plugin-log", str(log), "--json")
        assert code == 1
        assert {k: v for k, v in json.loads(out).items()} == api  # the same answer, word for word
        code, out = cli_verify(capsys, "--database-url", rights_db, "--plugin-log", str(log))
        assert code == 1 and "BROKEN at line 1" in out, out
        incidents = c.get("/api/audit/records", params={"event": "security.audit-broken"}, headers=DPO).json()
        assert len(incidents) == 1 and incidents[0]["broken"]["line"] == 1  # raised once, not once per look

        # Nothing is blocked: the breach query answers, and an approved rectification is applied.
        now = datetime.now(timezone.utc)
        r = c.get("/api/audit/breach", headers=DPO, params={
            "since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(hours=1)).isoformat(),
            "user": orthanc.username})
        assert r.status_code == 200, r.text
        rect = c.post("/api/rectifications", headers=STAFF, json={
            "patient_id": "TAMPER-1", "changes": [{"attribute": "PatientName", "current": OLD, "proposed": NEW}]})
        assert rect.status_code == 201, rect.text
        assert c.post(f"/api/rectifications/{rect.json()['id']}/decision", headers=REVIEWER,
                      json={"approve": True, "reason": "evidence checked"}).status_code == 200
        done = wait_status(c, f"/api/rectifications/{rect.json()['id']}", ("applied", "failed"))
        assert done["status"] == "applied", done
        # The download recipient was still found (from the sound line), and the edited line stays left out.
        notices = c.get("/api/notices", params={"right": "rectification"}, headers=STAFF).json()
        assert [n["recipient"] for n in notices] == [f"user:{orthanc.username}"]
        again = c.get("/api/audit/verify", headers=DPO).json()
        assert again["first_break"] == api["first_break"] and again["incidents"] == api["incidents"]


def test_audit_verify_without_a_store_is_an_error_not_an_empty_intact_chain(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ORTHANC_GDPR_SERVICE_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli(["audit", "verify"]) == 2
    err = capsys.readouterr().err
    assert "no audit store configured" in err
    assert cli(["audit", "verify", "--database-url", f"sqlite:///{tmp_path / 'nothing.sqlite'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no database was created on the way


def test_a_cut_last_plugin_line_starts_a_new_segment_and_downloads_go_on(orthanc, rights_db, tmp_path):
    from orthanc_gdpr.audit import verify

    ids = [orthanc.upload(f) for f in make_ct_study(1, patient_id="TAMPER-2", series=1)]
    study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    assert orthanc.get(f"/gdpr/studies/{study}/archive").status_code == 200
    assert orthanc.get(f"/gdpr/studies/{study}/archive").status_code == 200
    log = orthanc.state_dir / "audit.jsonl"
    text = log.read_text()
    log.write_text(text[: len(text) - 40])  # the last record cut short, as by a crash or an edit

    assert orthanc.get(f"/gdpr/studies/{study}/archive").status_code == 200  # recording goes on
    records = log.read_text().splitlines()
    newest = json.loads(records[-1])
    assert newest["event"] == "download" and newest["seq"] == 3
    assert newest["segment"] == {"after_line": 2, "reason": "the last line is not a readable record"}
    assert [(b.line, b.reason) for b in verify(log)] == [(2, "not a JSON record")]  # the break, once
    with client_for(orthanc, rights_db, tmp_path) as c:
        answer = c.get("/api/audit/verify", headers=DPO).json()
        assert answer["first_break"]["line"] == 2 and len(answer["plugin_log"]["breaks"]) == 1
        imported = c.post("/api/audit/ingest", headers=DPO).json()
        assert imported["imported"] == 2 and [b["line"] for b in imported["breaks"]] == [2]
        plugin = c.get("/api/audit/records", params={"source": "plugin"}, headers=DPO).json()
        assert [r["origin"]["seq"] for r in plugin] == [1, 3]  # the sound records, the cut one left out
